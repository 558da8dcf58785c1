"""The detection's own contract: masking where a key decoded, allowed values in every form,
known credentials, and names that never repeat a secret.

Recording over HTTP is in ``test_secret_forms``; these drive ``check_no_secrets`` and the text
helpers the recorders and ``pytest-compaction scan --fix`` build on, on real exchanges.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import tracemalloc
from pathlib import Path
from urllib.parse import quote

import pytest

from pytest_compaction.cassette._exchange import Exchange
from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.cassette._redact import (
    DEFAULT_FILTER_HEADERS,
    SecretFound,
    check_no_secrets,
    redact_exchange,
)
from pytest_compaction.cassette._secrets import (
    SecretPolicy,
    find_in_text,
    known_credentials,
    mask_secrets,
    scan_exchange,
    sub_secrets,
)

SK = "sk-proj-" + "Qm7vX2" * 20
AWS_ID = "AKIA" + "Q7ZX3M2W9KD4PL6T"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "Q7ZX3M2W9K"
FAKE = "sk-test-" + "0" * 40
ODD = "correct horse/battery+staple"


def _ex(body: object = None, **changes: object) -> Exchange:
    ex = Exchange(
        method="POST",
        uri="https://api.example/v1/responses/compact",
        request_headers={"content-type": ["application/json"]},
        request_body=json.dumps(body).encode() if body is not None else b'{"input":[]}',
        response_headers={"content-type": ["application/json"]},
        response_body=b'{"id":"resp_1"}',
    )
    for key, value in changes.items():
        setattr(ex, key, value)
    return ex


@pytest.mark.parametrize(
    "text",
    [
        "next=%2Fv1%3Fkey%3D" + SK + "&x=1",
        '{"note": "' + SK[:3] + "\\u0070" + SK[4:] + '"}',
        "a=1&b=note%3Dsk%2Dproj%2D" + SK[8:] + "&c=2",
        "resp_" + SK,
        "line\\n" + SK + "\\n",
    ],
)
def test_masking_replaces_the_run_the_key_was_found_in(text: str) -> None:
    masked = mask_secrets(text)
    assert "<secret>" in masked
    assert SK[12:40] not in masked
    seen: list[str] = []
    sub_secrets(text, lambda found: seen.append(found) or "X")
    assert all(SK[12:40] in found for found in seen)


def test_an_aws_pair_is_masked_whole() -> None:
    text = f"[default]\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n"
    masked = mask_secrets(text)
    assert AWS_ID not in masked and AWS_SECRET not in masked
    assert masked.startswith("[default]\naws_access_key_id = <secret>")


def test_a_body_compressed_without_a_header_is_inflated_within_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTEST_COMPACTION_MAX_CASSETTE_MB", "2")
    bomb = gzip.compress(b"\0" * 200 * 2**20 + SK.encode())
    small = gzip.compress(json.dumps({"note": SK}).encode())
    tracemalloc.start()
    try:
        assert scan_exchange(_ex(request_body=bomb), 0) == []  # too large to read: not inflated
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20
    (finding,) = scan_exchange(_ex(request_body=small), 0)
    assert finding.location == "body (gzip-compressed) /note"


def test_masking_replaces_one_run_per_place() -> None:
    assert mask_secrets(f"GET /v1/x?a=1&key={SK}&b=2") == "GET /v1/x?a=1<secret>&b=2"
    assert mask_secrets(f"Authorization: Bearer {SK}") == "Authorization: <secret>"
    calls: list[str] = []
    sub_secrets(f"u?key={SK}", lambda found: calls.append(found) or "")
    assert calls == [f"?key={SK}"]  # one run per place, whatever rules matched inside it


def test_free_text_is_judged_as_it_decodes() -> None:
    assert find_in_text("keys:\\n" + SK) == "an API key (sk-...)"
    assert find_in_text("https://a.example/cb?next=%252Fv%253Fapi_key%253D" + SK) is not None
    assert (
        find_in_text("a base64 token " + base64.urlsafe_b64encode(b"\x00" * 900).decode()) is None
    )
    assert find_in_text("plain words about a token and a key") is None


def test_known_credentials_are_the_usual_variables_set_long_enough() -> None:
    environ = {
        "OPENAI_API_KEY": "  abcdefgh-1  ",
        "AZURE_OPENAI_API_KEY": "short",
        "ANTHROPIC_API_KEY": "abcdefgh-1",
        "XAI_API_KEY": "xai-12345678",
        "UNRELATED": "unrelated-value",
    }
    assert known_credentials(environ) == ("abcdefgh-1", "xai-12345678")
    assert known_credentials({}) == ()


def test_allowed_values_are_not_reported_in_any_form() -> None:
    ex = _ex(
        {"input": [{"role": "user", "content": f"use {FAKE}"}], "note": quote(FAKE)},
        request_headers={"x-api-key": [FAKE], "x-form": [f"k%3D{FAKE}"]},
        response_body=json.dumps({"out": json.dumps({"key": FAKE})}).encode(),
    )
    policy = SecretPolicy(allow_values=frozenset({FAKE}))
    check_no_secrets("c.yaml", [ex], policy)
    check_no_secrets("c.yaml", [ex], SecretPolicy(allow_patterns=(re.compile(r"sk-test-0+"),)))
    ex.response_headers["x-echo"] = [SK]
    with pytest.raises(SecretFound) as info:
        check_no_secrets("c.yaml", [ex], policy)
    assert [f.location for f in info.value.findings] == ["header 'x-echo'"]


def test_known_credentials_are_found_whatever_their_shape_and_encoding() -> None:
    policy = SecretPolicy(known=(ODD, "short"))
    packed = base64.b64encode(b"xy" + ODD.encode() + b"z").decode()
    ex = _ex(
        {"a": f"see {quote(ODD, safe='')}", "b": "short", ODD: 1},
        response_body=f"blob {packed}\n".encode(),
        reason="OK short",
    )
    found = {(f.part, f.location) for f in scan_exchange(ex, 0, policy)}
    assert found == {
        ("request", "body /a"),
        ("request", "body /<secret-looking name>"),
        ("response", "body (text) line 1"),
    }
    assert scan_exchange(ex, 0) == []  # nothing looks like a key without the policy
    for finding in scan_exchange(ex, 0, policy):
        assert ODD not in str(finding) and "short" not in str(finding)


def test_the_reference_recordings_hold_nothing_once_filtered(reference: Path) -> None:
    files = sorted((reference / "recorded").glob("pydantic-ai*/*.yaml"))
    assert files
    policy = SecretPolicy(known=("sk-proj-" + "Zz9" * 30, "0123456789abcdef0123"))
    tokens = 0
    for path in files:
        for i, ex in enumerate(load_cassette(path).exchanges):
            clean = redact_exchange(ex, DEFAULT_FILTER_HEADERS)
            assert scan_exchange(clean, i, policy) == [], path.name
            tokens += ex.response_body.count(b'"encrypted_content"')
    assert tokens > 10
