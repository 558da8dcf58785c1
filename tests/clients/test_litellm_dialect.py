"""The ``litellm`` dialect's rules, exercised without LiteLLM itself.

tests/clients/test_litellm_proxy.py measures the real proxy (1.108.7) and checks these rules
against its recordings; here each rule is checked on its own, with the embedded server's answers
over real HTTP: the overlay keyword that relaxes required properties, the stream's ``[DONE]``
line, the compaction items LiteLLM mints for models it bridges to Anthropic, the embedded
server's sealed ids and plain-text refusal, and the rule that CI fails rather than skips when
litellm is missing.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest

from pytest_compaction import CompactionServer, available_versions
from pytest_compaction.contract._dialects import (
    DialectError,
    dialect_validator,
    overlaid_document,
    validate_with_dialect,
)
from pytest_compaction.contract._events import check_stream
from pytest_compaction.server._tokens import DETERMINISTIC_KEY
from pytest_compaction.server._wire import (
    decode_litellm_id,
    encode_litellm_id,
    open_litellm_id,
    seal_litellm_id,
)

KEY = "sk-litellm-dialect-0123456789"
AUTH = {"authorization": f"Bearer {KEY}"}
LONG_INPUT = "What is 2+2? " + "Please be precise. " * 300  # over 1000 tokens: a compaction
CONTEXT_MANAGEMENT = [{"type": "compaction", "compact_threshold": 1000}]


def responses_answer(*, stream: bool) -> httpx.Response:
    """POST /v1/responses with a server-side compaction, from the embedded litellm dialect."""
    body = {"model": "gpt-5.4", "input": LONG_INPUT, "context_management": CONTEXT_MANAGEMENT}
    with CompactionServer(dialect="litellm", deterministic=True) as server:
        url = f"{server.base_url}/responses"
        return httpx.post(url, json={**body, "stream": stream}, headers=AUTH)


def minted(encrypted_content: str, item_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "compaction",
        "id": item_id or f"cmp_{uuid.uuid4()}",
        "encrypted_content": encrypted_content,
    }


# -- the overlay keyword x-optional ------------------------------------------------------------


BASE: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$ref": "#/$defs/Thing",
    "$defs": {
        "Part": {"type": "object", "required": ["kept"]},
        "Thing": {
            "allOf": [
                {"$ref": "#/$defs/Part"},
                {"type": "object", "required": ["a", "b", "c"]},
            ]
        },
    },
}


def test_x_optional_drops_only_the_named_properties_of_that_definition() -> None:
    overlay = {"x-overlay": "extend", "$defs": {"Thing": {"x-optional": ["a", "c"]}}}
    document = overlaid_document(BASE, overlay, "test overlay")
    assert document["$defs"]["Thing"]["allOf"][1]["required"] == ["b"]
    assert document["$defs"]["Part"]["required"] == ["kept"]  # referenced parts are left alone
    assert "x-optional" not in json.dumps(document)
    assert BASE["$defs"]["Thing"]["allOf"][1]["required"] == ["a", "b", "c"]  # not modified


@pytest.mark.parametrize(
    ("optional", "message"),
    [
        (["a", "kept"], r"\$defs/Thing: x-optional names \['kept'\], which it does not require"),
        ("a", r"x-optional must be a list of property names"),
    ],
)
def test_x_optional_refuses_what_it_cannot_relax(optional: Any, message: str) -> None:
    overlay = {"x-overlay": "extend", "$defs": {"Thing": {"x-optional": optional}}}
    with pytest.raises(DialectError, match=message):
        overlaid_document(BASE, overlay, "test overlay")


@pytest.mark.parametrize("version", available_versions())
def test_the_litellm_overlays_apply_to_every_bundled_version(version: str) -> None:
    for kind in ("response", "error", "responses.response", "responses.event"):
        for strict in (False, True):
            report = dialect_validator(kind, version, "litellm").validate({}, strict=strict)
            assert not report.valid  # built, and an empty body is still refused


# -- streams: the relaxed Response and the [DONE] line -----------------------------------------


def test_litellm_stream_responses_may_lack_exactly_three_required_properties() -> None:
    events = [
        line.removeprefix("data: ")
        for line in responses_answer(stream=True).text.splitlines()
        if line.startswith("data: ")
    ]
    dropped = []
    for line in events:
        event = json.loads(line)
        if "response" in event:
            for name in ("error", "incomplete_details", "instructions"):
                event["response"].pop(name)
        dropped.append(json.dumps(event))
    body = "".join(f"data: {line}\n\n" for line in dropped).encode()
    assert check_stream(body, dialect="litellm").violations == []
    plain = check_stream(body, dialect="openai").violations
    assert {line.split(" ")[3] for line in plain} == {
        "/response/error:",
        "/response/incomplete_details:",
        "/response/instructions:",
    }
    # Nothing more is relaxed: without its output a Response is refused under the dialect too.
    for index, line in enumerate(dropped):
        event = json.loads(line)
        if "response" in event:
            event["response"].pop("output")
            dropped[index] = json.dumps(event)
    body = "".join(f"data: {line}\n\n" for line in dropped).encode()
    found = check_stream(body, dialect="litellm").violations
    assert found and all("missing required property 'output'" in v for v in found), found


def test_done_is_accepted_as_the_last_line_under_litellm_only() -> None:
    stream = responses_answer(stream=True).content
    ended = stream + b"data: [DONE]\n\n"
    assert check_stream(ended, dialect="litellm").notes == []
    assert any("'[DONE]'" in note for note in check_stream(ended, dialect="openai").notes)
    first, _, rest = stream.partition(b"\n\n")
    inside = first + b"\n\ndata: [DONE]\n\n" + rest
    notes = check_stream(inside, dialect="litellm").notes
    assert any("the data is not JSON: '[DONE]'" in note for note in notes), notes


# -- compaction items LiteLLM mints for models it bridges to Anthropic -------------------------


def test_minted_compaction_items_must_carry_litellms_json() -> None:
    answer = responses_answer(stream=False).json()
    blocks = json.dumps([{"type": "compaction", "content": "The user asked about 2+2."}])
    good = {**answer, "output": [*answer["output"], minted(blocks)]}
    assert validate_with_dialect("responses.response", good, dialect="litellm").valid
    assert validate_with_dialect("responses.response", good, dialect="litellm", strict=True).valid

    opaque = answer["output"][-1]["encrypted_content"]  # the embedded server's Fernet token
    index = len(answer["output"])
    for content in (opaque, json.dumps([{"type": "text", "text": "x"}]), "[]"):
        bad = {**answer, "output": [*answer["output"], minted(content)]}
        report = validate_with_dialect("responses.response", bad, dialect="litellm")
        assert [v.path for v in report.violations] == [f"/output/{index}/encrypted_content"]
    # An id of another form is OpenAI's item: its content stays opaque.
    for other in ("cmp_0001", f"cmp_{uuid.uuid4().hex}"):
        item = minted(opaque, item_id=other)
        fine = {**answer, "output": [*answer["output"], item]}
        assert validate_with_dialect("responses.response", fine, dialect="litellm").valid


def test_minted_compaction_items_are_checked_in_streams_too() -> None:
    blocks = json.dumps([{"type": "compaction", "content": "Summary."}])
    for content, valid in ((blocks, True), ("gAAAAABopaque", False)):
        event = {
            "type": "response.output_item.done",
            "output_index": 1,
            "sequence_number": 9,
            "item": minted(content),
        }
        body = f"data: {json.dumps(event)}\n\n".encode()
        assert (check_stream(body, dialect="litellm").violations == []) is valid


# -- the embedded server's litellm dialect -----------------------------------------------------


def test_the_embedded_litellm_dialect_refuses_requests_without_credentials() -> None:
    with CompactionServer(dialect="litellm") as server:
        bare = httpx.post(f"{server.base_url}/responses/compact", json={"model": "m"})
        keyed = httpx.post(
            f"{server.base_url}/responses/compact",
            json={"model": "m", "input": "hi"},
            headers={"x-litellm-api-key": KEY},
        )
    assert (bare.status_code, bare.headers["content-type"], bare.text) == (
        500,
        "text/plain; charset=utf-8",
        "Internal Server Error",
    )
    assert keyed.status_code == 200


def test_the_embedded_litellm_dialect_seals_one_id_per_response_even_in_a_stream() -> None:
    body = {"model": "gpt-5.4", "input": LONG_INPUT, "context_management": CONTEXT_MANAGEMENT}
    key = b"a key of the embedded server 0123"
    with CompactionServer(dialect="litellm", key=key) as server:  # random nonces and ids
        stream = httpx.post(
            f"{server.base_url}/responses", json={**body, "stream": True}, headers=AUTH
        )
        again = httpx.post(f"{server.base_url}/responses", json=body, headers=AUTH).json()
    events = [json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data:")]
    ids = {e["response"]["id"] for e in events if "response" in e}
    assert len(ids) == 1  # response.created, .in_progress and .completed show the same id
    (sealed,) = ids
    plain = open_litellm_id(sealed, key)
    assert plain is not None
    upstream = decode_litellm_id(plain)
    assert upstream is not None and upstream.startswith("resp_") and upstream not in sealed
    other = open_litellm_id(again["id"], key)
    assert other is not None and decode_litellm_id(other) not in (None, upstream)


def test_sealed_ids_open_only_with_their_key() -> None:
    plain = encode_litellm_id("resp_abc", "0" * 64)
    sealed = seal_litellm_id(plain, DETERMINISTIC_KEY)
    assert open_litellm_id(sealed, DETERMINISTIC_KEY) == plain
    assert open_litellm_id(sealed, b"k" * 32) is None
    assert open_litellm_id(plain, DETERMINISTIC_KEY) is None  # the plain form is not sealed
    raw = base64.urlsafe_b64decode(sealed.removeprefix("resp_"))
    text = f"litellm_proxy:responses_api:response_id:{plain};user_id:default_user_id;team_id:"
    assert len(raw) == 24 + 16 + len(text)
    with pytest.raises(ValueError, match="the nonce must be 24 bytes"):
        seal_litellm_id(plain, DETERMINISTIC_KEY, nonce=b"short")


# -- CI fails rather than skips ------------------------------------------------------------------


NEEDS_MISSING = """
from support.litellm_env import require_litellm


def test_needs_it():
    require_litellm(("litellm", "no_such_module_for_this_test"))
"""


def test_missing_litellm_fails_under_ci_and_skips_elsewhere(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_needs=NEEDS_MISSING)
    monkeypatch.delenv("CI", raising=False)
    skipped = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*no_such_module_for_this_test not importable*[dev]*"])
    monkeypatch.setenv("CI", "1")
    failed = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*CI is set, so this fails instead of skipping*"])
