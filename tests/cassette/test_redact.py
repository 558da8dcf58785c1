"""Secrets never reach disk: filtered headers, and a scan that stops the write."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import httpx2
import pytest
from conftest import Upstream

from pytest_compaction.cassette._exchange import Exchange
from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.cassette._redact import (
    DEFAULT_FILTER_HEADERS,
    SecretFound,
    check_no_secrets,
    redact_exchange,
    redact_query,
)
from pytest_compaction.cassette._secrets import PLACEHOLDER, scan_exchange
from pytest_compaction.replay._recorder import ReplayError, use_cassette

SK = "sk-proj-" + "Zx9" * 12
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
HEX = "0123456789abcdef0123456789abcdef"


def _ex(**changes: object) -> Exchange:
    ex = Exchange(
        method="POST",
        uri="https://api.example/v1/responses/compact",
        request_headers={"content-type": ["application/json"]},
        request_body=b'{"model":"gpt-5.4","input":[]}',
        status=200,
        reason="OK",
        response_headers={"content-type": ["application/json"]},
        response_body=b'{"id":"resp_1"}',
    )
    for key, value in changes.items():
        setattr(ex, key, value)
    return ex


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"request_headers": {"x-custom-auth": [SK]}}, "request header 'x-custom-auth'"),
        ({"request_headers": {"x-token": [JWT]}}, "request header 'x-token'"),
        ({"request_headers": {"x-azure": [HEX]}}, "request header 'x-azure'"),
        (
            {"uri": f"https://a.example/v1/responses/compact?api-version=1&k={SK}"},
            "query parameter 'k'",
        ),
        ({"uri": f"https://a.example/v1/responses/compact?subscription={HEX}"}, "query parameter"),
        (
            {
                "request_body": json.dumps(
                    {"input": [{"content": [{"text": f"my key is {SK}"}]}]}
                ).encode()
            },
            "request body /input/0/content/0/text",
        ),
        (
            {"response_body": json.dumps({"a": {"api_key": "abcd" * 5}}).encode()},
            "response body /a/api_key",
        ),
        ({"response_body": f'data: {{"t": "{JWT}"}}\n\n'.encode()}, "response body line 1 /t"),
        ({"response_body": f"plain text Bearer {HEX}".encode()}, "response body (text)"),
        (
            {"response_body": json.dumps({"url": f"https://x/p?a=1&api-key={HEX}"}).encode()},
            "response body /url: looks like a key in a URL",
        ),
    ],
)
def test_findings_name_the_place_but_never_the_value(
    changes: dict[str, object], where: str
) -> None:
    ex = _ex(**changes)
    with pytest.raises(SecretFound) as info:
        check_no_secrets("cassettes/t.yaml", [ex])
    message = str(info.value)
    assert where in message
    assert "cassettes/t.yaml was not written" in message
    for secret in (SK, JWT, HEX):
        assert secret not in message


def test_opaque_tokens_and_ids_are_not_findings() -> None:
    token = "gAAAAABpzorV" + "Rpbn-sk-ZOYp5LlfC6IRb_i2RYcRxPEms2SExj" * 20  # "sk-" inside a token
    body = {
        "id": "resp_02b4766d6ec377c90169ce8aceb6dc81979283e16d76d68e8d",
        "output": [{"type": "compaction", "encrypted_content": token, "id": "cmp_" + HEX}],
        "prompt_cache_key": "task-" + HEX,
    }
    ex = _ex(
        response_body=json.dumps(body).encode(), response_headers={"x-request-id": ["req_" + HEX]}
    )
    assert scan_exchange(ex, 0) == []


def test_reference_recordings_are_clean_once_headers_are_filtered(reference: Path) -> None:
    files = sorted((reference / "recorded").glob("pydantic-ai*/*.yaml"))
    assert files
    for path in files:
        exchanges = load_cassette(path).exchanges
        assert any("openai-organization" in ex.response_headers for ex in exchanges)
        cleaned = [redact_exchange(ex, DEFAULT_FILTER_HEADERS) for ex in exchanges]
        check_no_secrets(str(path), cleaned)
        for ex in cleaned:
            assert ex.response_headers.get("openai-organization", [PLACEHOLDER]) == [PLACEHOLDER]
            assert ex.request_headers.get("cookie", [PLACEHOLDER]) == [PLACEHOLDER]


def test_redact_query_keeps_other_parameters() -> None:
    uri = redact_query("https://x.example/p?api-version=2025&api-key=abc&b=1", ["api-key"])
    assert uri == f"https://x.example/p?api-version=2025&api-key={PLACEHOLDER}&b=1"


def test_credentials_sent_by_clients_are_replaced_in_the_file(
    tmp_path: Path, upstream: Upstream
) -> None:
    path = tmp_path / "c.yaml"
    headers = {
        "authorization": f"Bearer {SK}",
        "api-key": HEX,
        "x-goog-api-key": "AIza" + "q" * 35,
        "cookie": "session=abcdef",
        "x-extra-secret": "hunter2-hunter2",
    }
    with use_cassette(path, record_mode="once", filter_headers=["x-extra-secret"]):
        httpx.post(upstream.base_url + "/other?api-key=" + HEX, json={"q": 1}, headers=headers)
        httpx2.post(upstream.base_url + "/other", json={"q": 2}, headers=headers)
    raw = path.read_bytes()
    for value in (
        SK,
        HEX,
        "AIza",
        "session=abcdef",
        "hunter2",
        "org-secretorg",
        "proj_abcdef",
        "__cf_bm",
    ):
        assert value.encode() not in raw
    assert raw.count(PLACEHOLDER.encode()) >= 2 * (len(headers) + 3)
    # replay still matches: the query is redacted on both sides
    with use_cassette(path) as rec:
        httpx.post(upstream.base_url + "/other?api-key=" + HEX, json={"q": 1})
    assert rec.replayed == 1


def test_a_secret_in_a_body_stops_the_write(tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once"):
        httpx.post(upstream.base_url + "/other", json={"q": 1})
    before = path.read_bytes()
    with pytest.raises(ReplayError) as info, use_cassette(path, record_mode="all"):
        response = httpx.post(
            upstream.base_url + "/other", json={"q": 1, "note": f"use {SK} for this"}
        )
        assert response.status_code == 200
    message = str(info.value)
    assert "request body /note: looks like an API key" in message
    assert SK not in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
