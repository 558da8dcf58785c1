"""Cassette-backed transports injected into real clients: openai SDK, httpx, httpx2."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
import vcr
from conftest import Upstream

import pytest_compaction
from pytest_compaction._errors import CompactionError
from pytest_compaction.cassette._exchange import CassetteData, Exchange
from pytest_compaction.cassette._file import CassetteNotFound, save_cassette
from pytest_compaction.replay._fixtures import load_exchanges
from pytest_compaction.replay._recorder import use_cassette
from pytest_compaction.replay._transport import (
    CassetteReplayer,
    Httpx2CassetteTransport,
    HttpxCassetteTransport,
    RequestNotInCassette,
)

CHAIN = "test_openai_responses_compact_with_auto_previous_response_id_chain.yaml"
ELSEWHERE = "http://replay.invalid/v1"  # never resolved: nothing may reach a network


def _sdk(transport: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=ELSEWHERE,
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )


def _record(path: Path, upstream: Upstream, *texts: str) -> None:
    client = openai.OpenAI(base_url=upstream.base_url, api_key="x", max_retries=0)
    with use_cassette(path, record_mode="once"):
        for text in texts:
            client.responses.compact(model="gpt-5.4", input=[{"role": "user", "content": text}])


@pytest.fixture
def recorded(tmp_path: Path, upstream: Upstream) -> Path:
    path = tmp_path / "history.yaml"
    _record(path, upstream, "first", "second")
    upstream.close()
    return path


# ---------------------------------------------------------------------------------------------
# The openai SDK


def test_openai_sdk_replays_a_real_recording_through_httpx2(reference: Path) -> None:
    path = reference / "recorded" / "pydantic-ai-stock-vcrpy" / CHAIN
    transport = Httpx2CassetteTransport(path)
    client = _sdk(transport)
    for ex in load_exchanges(path):
        if ex.is_compact:
            out = client.responses.compact(**ex.request)
            assert out.output[-1].type == "compaction"
            assert (
                out.output[-1].encrypted_content == ex.response["output"][-1]["encrypted_content"]
            )
        else:
            out = client.responses.create(**ex.request)
        assert out.id == ex.response["id"]
    assert transport.play_count == 8
    transport.assert_all_played()
    assert isinstance(transport, httpx2.MockTransport)


def test_async_openai_sdk(recorded: Path) -> None:
    transport = Httpx2CassetteTransport(recorded)

    async def run() -> list[str]:
        client = openai.AsyncOpenAI(
            base_url=ELSEWHERE,
            api_key="x",
            max_retries=0,
            http_client=httpx2.AsyncClient(transport=transport),
        )
        async with client:
            results = await asyncio.gather(
                client.responses.compact(
                    model="gpt-5.4", input=[{"role": "user", "content": "second"}]
                ),
                client.responses.compact(
                    model="gpt-5.4", input=[{"role": "user", "content": "first"}]
                ),
            )
        return [r.id for r in results]

    assert asyncio.run(run()) == ["resp_0002", "resp_0001"]
    transport.assert_all_played()


def test_streamed_responses_replay_through_the_sdk(reference: Path) -> None:
    path = (
        reference
        / "recorded"
        / "pydantic-ai"
        / "test_openai_responses_compact_stateful_mode_stream.yaml"
    )
    client = _sdk(Httpx2CassetteTransport(path))
    streamed = [ex for ex in load_exchanges(path) if ex.request.get("stream")]
    assert streamed
    for ex in streamed:
        events = list(client.responses.create(**ex.request))
        assert events[0].type == "response.created"
        assert events[-1].type == "response.completed"
        recorded_types = [
            json.loads(line[5:])["type"]
            for line in ex.text.splitlines()
            if line.startswith("data:") and line[5:].strip().startswith("{")
        ]
        assert [e.type for e in events] == recorded_types


def test_an_unrecorded_request_names_the_closest_exchange(recorded: Path) -> None:
    transport = Httpx2CassetteTransport(recorded)
    client = openai.OpenAI(
        base_url=ELSEWHERE, api_key="x", http_client=httpx2.Client(transport=transport)
    )  # the SDK's default retries: the error is not a connection error, so none happen
    with pytest.raises(RequestNotInCassette) as exc:
        client.responses.compact(model="gpt-5.4", input=[{"role": "user", "content": "frist"}])
    assert exc.value.closest == 0
    assert exc.value.method == "POST"
    message = str(exc.value)
    assert f"POST {ELSEWHERE}/responses/compact has no recorded answer in {recorded}" in message
    assert "(2 exchanges, 0 replayed)" in message
    assert "Closest recorded request: exchange 0, POST http://127.0.0.1:" in message
    assert "/input/0/content: 'first' != 'frist'" in message
    assert transport.misses == [message]
    assert transport.play_count == 0


def test_error_responses_reach_the_sdk_as_its_errors(tmp_path: Path) -> None:
    body: dict[str, Any] = {"model": "gpt-5.4", "input": [{"role": "user", "content": "x" * 10}]}
    error = {
        "error": {
            "message": "Your input exceeds the context window of this model.",
            "type": "invalid_request_error",
            "param": "input",
            "code": "context_length_exceeded",
        }
    }
    path = tmp_path / "error.yaml"
    save_cassette(
        path,
        CassetteData(
            [
                Exchange(
                    "POST",
                    "https://api.openai.com/v1/responses/compact",
                    request_headers={"content-type": ["application/json"]},
                    request_body=json.dumps(body).encode(),
                    status=400,
                    reason="Bad Request",
                    response_headers={
                        "content-type": ["application/json"],
                        "x-request-id": ["req_err"],
                    },
                    response_body=json.dumps(error).encode(),
                )
            ]
        ),
    )
    with pytest.raises(openai.BadRequestError) as exc:
        _sdk(Httpx2CassetteTransport(path)).responses.compact(**body)
    assert exc.value.status_code == 400
    assert exc.value.code == "context_length_exceeded"
    assert exc.value.request_id == "req_err"


# ---------------------------------------------------------------------------------------------
# Plain httpx and httpx2


def test_httpx_sync_and_async(recorded: Path) -> None:
    payload = {"model": "gpt-5.4", "input": [{"role": "user", "content": "first"}]}
    transport = HttpxCassetteTransport(recorded)
    assert isinstance(transport, httpx.BaseTransport)
    with httpx.Client(transport=transport, base_url=ELSEWHERE) as client:
        response = client.post("/responses/compact", json=payload)
    assert response.status_code == 200 and response.reason_phrase == "OK"
    assert response.json()["id"] == "resp_0001"
    assert response.headers["openai-organization"] == "REDACTED"
    assert int(response.headers["content-length"]) == len(response.content)

    async def second() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url=ELSEWHERE) as client:
            # key order and whitespace do not matter: bodies match by value
            content = b'{ "input": [{"content": "second", "role": "user"}], "model": "gpt-5.4" }'
            return await client.post("/responses/compact/", content=content)

    assert asyncio.run(second()).json()["id"] == "resp_0002"
    transport.assert_all_played()


def test_httpx2_sync_and_async(recorded: Path) -> None:
    transport = Httpx2CassetteTransport(recorded)
    with httpx2.Client(transport=transport) as client:
        one = client.post(
            ELSEWHERE + "/responses/compact",
            json={"model": "gpt-5.4", "input": [{"role": "user", "content": "first"}]},
        )

    async def run() -> httpx2.Response:
        async with httpx2.AsyncClient(transport=transport) as client:
            return await client.post(
                ELSEWHERE + "/responses/compact",
                json={"model": "gpt-5.4", "input": [{"role": "user", "content": "second"}]},
            )

    two = asyncio.run(run())
    assert [one.json()["id"], two.json()["id"]] == ["resp_0001", "resp_0002"]
    with (
        httpx2.Client(transport=transport) as client,
        pytest.raises(RequestNotInCassette, match="It matches exchange 0, which was already"),
    ):
        client.post(
            ELSEWHERE + "/responses/compact",
            json={"model": "gpt-5.4", "input": [{"role": "user", "content": "first"}]},
        )


def test_compressed_recordings_are_served_decoded(tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "stock.yaml"
    payload = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]}
    with vcr.VCR(record_mode="once").use_cassette(str(path)):  # stock vcrpy keeps the gzip
        httpx.post(
            upstream.base_url + "/responses/compact",
            json=payload,
            headers={"x-test-encoding": "gzip"},
        )
    assert "!!binary" in path.read_text()
    upstream.close()
    with httpx.Client(transport=HttpxCassetteTransport(path)) as client:
        response = client.post(ELSEWHERE + "/responses/compact", json=payload)
    assert "content-encoding" not in response.headers
    assert response.json()["object"] == "response.compaction"


# ---------------------------------------------------------------------------------------------
# Options and errors


def test_repeats_and_matchers(recorded: Path) -> None:
    first: dict[str, Any] = {"model": "gpt-5.4", "input": [{"role": "user", "content": "first"}]}
    repeat = Httpx2CassetteTransport(recorded, allow_playback_repeats=True)
    client = _sdk(repeat)
    ids = [client.responses.compact(**first).id for _ in range(3)]
    assert ids == ["resp_0001"] * 3
    assert repeat.replayer.play_counts == [3, 0]

    # Without the body matcher, requests are answered in recorded order
    loose = CassetteReplayer(recorded, match_on=("method", "path"))
    answers = [loose.answer("POST", ELSEWHERE + "/responses/compact", b"{}") for _ in range(2)]
    assert [json.loads(a.response_body)["id"] for a in answers] == ["resp_0001", "resp_0002"]
    with pytest.raises(RequestNotInCassette, match="already replayed"):
        loose.answer("POST", ELSEWHERE + "/responses/compact", b"{}")
    with pytest.raises(RequestNotInCassette, match=r"method: POST != GET"):
        loose.answer("GET", ELSEWHERE + "/responses/compact", None)
    partial = CassetteReplayer(recorded)
    partial.answer("POST", ELSEWHERE + "/responses/compact", json.dumps(first).encode())
    with pytest.raises(AssertionError, match=r"1 exchange\(s\) never replayed:\n  exchange 1"):
        partial.assert_all_played()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(CassetteNotFound, match="does not exist"):
        Httpx2CassetteTransport(tmp_path / "missing.yaml")
    with pytest.raises(CompactionError, match="unknown matcher"):
        HttpxCassetteTransport([], match_on=("method", "headers"))
    empty = CassetteReplayer([])
    with pytest.raises(RequestNotInCassette, match="The cassette holds no exchanges"):
        empty.answer("GET", "http://x/", None)


def test_public_names() -> None:
    from pytest_compaction.cassette import _scan
    from pytest_compaction.check import _import
    from pytest_compaction.replay import _fixtures, _transport

    for name, module in [
        ("CassetteReplayer", _transport),
        ("HttpxCassetteTransport", _transport),
        ("Httpx2CassetteTransport", _transport),
        ("RequestNotInCassette", _transport),
        ("RecordedExchange", _fixtures),
        ("load_exchanges", _fixtures),
        ("load_compacted_responses", _fixtures),
        ("scan_paths", _scan),
        ("import_cassette", _import),
    ]:
        assert getattr(pytest_compaction, name) is getattr(module, name)
        assert name in pytest_compaction.__all__
    assert issubclass(RequestNotInCassette, pytest_compaction.CompactionError)


# ---------------------------------------------------------------------------------------------
# Validation of what is played


def test_a_real_recording_is_validated_as_it_plays(reference: Path) -> None:
    path = reference / "recorded" / "pydantic-ai-stock-vcrpy" / CHAIN
    transport = Httpx2CassetteTransport(path, version="2026-05-13")
    client = _sdk(transport)
    for ex in load_exchanges(path):
        call = client.responses.compact if ex.is_compact else client.responses.create
        call(**ex.request)
    assert (transport.validated, transport.violations) == (8, [])
    transport.assert_valid()
    # the nulls the service sends where 2026-05-13 declares strings: notes, not violations
    assert transport.notes and all("outside the compaction contract" in n for n in transport.notes)

    # Judged by the newest version, every answer lacks the usage field it made required.
    newest = Httpx2CassetteTransport(path)
    client = _sdk(newest)
    for ex in load_exchanges(path):
        call = client.responses.compact if ex.is_compact else client.responses.create
        call(**ex.request)  # the client still gets every answer
    assert newest.validated == len(newest.violations) == 8
    assert all(
        v.endswith("usage.input_tokens_details: missing required property 'cache_write_tokens'")
        for v in newest.violations
    )
    newest_name = r"2026-11-26_openai-3\.60\.0"
    with pytest.raises(AssertionError, match=rf"8 violation\(s\) of schema version {newest_name}"):
        newest.assert_valid()


def test_an_edited_answer_is_a_violation_named_by_exchange_and_pointer(
    recorded: Path, tmp_path: Path
) -> None:
    data = pytest_compaction.load_cassette(recorded)
    answer = json.loads(data.exchanges[1].response_body)
    answer["output"][-1]["type"] = "summary"
    data.exchanges[1].response_body = json.dumps(answer).encode()
    transport = HttpxCassetteTransport(data)
    with httpx.Client(transport=transport, base_url=ELSEWHERE) as client:
        for text in ("first", "second"):
            body = {"model": "gpt-5.4", "input": [{"role": "user", "content": text}]}
            assert client.post("/responses/compact", json=body).status_code == 200
    assert transport.validated == 2
    (line,) = transport.violations
    assert line.startswith("exchange 1 response (status 200) /output/1/type: ")
    assert '"summary"' in line
    with pytest.raises(AssertionError, match="exchange 1 response"):
        transport.assert_valid()

    # validate=False: a replay only
    quiet = HttpxCassetteTransport(data, validate=False)
    with httpx.Client(transport=quiet, base_url=ELSEWHERE) as client:
        for text in ("first", "second"):
            body = {"model": "gpt-5.4", "input": [{"role": "user", "content": text}]}
            client.post("/responses/compact", json=body)
    assert (quiet.validated, quiet.violations) == (0, [])


def test_the_live_request_is_what_is_validated(recorded: Path) -> None:
    """Matching ignores what the body does not hold by value; validation reads the live one."""
    transport = HttpxCassetteTransport(recorded, match_on=("method", "path"))
    with httpx.Client(transport=transport, base_url=ELSEWHERE) as client:
        client.post("/responses/compact", json={"input": [{"role": "user", "content": "x"}]})
    (line,) = transport.violations
    assert line == "exchange 0 request /model: body: missing required property 'model'"
