"""``POST /responses`` exchanges are validated like compaction ones: record, replay, check, proxy.

Answers come from the embedded server (real ``/responses`` bodies and streams with
server-side compaction), passed through a loopback upstream that can alter them on the way;
clients are the openai SDK and httpx over 127.0.0.1; verdicts are read from the cassette files,
the recording counters and the ``check`` command's output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from http.client import HTTPConnection  # bound before vcrpy patches the module attribute
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from support.loopback import Loopback, QuietHandler

from pytest_compaction import CompactionProxy, CompactionServer, check_paths
from pytest_compaction.cassette._exchange import CassetteData, Exchange
from pytest_compaction.cassette._file import load_cassette, save_cassette
from pytest_compaction.cli import main
from pytest_compaction.contract._judge import RESPONSE_CONTRACT, outside_contract
from pytest_compaction.replay._recorder import ReplayError, use_cassette

MAY = "2026-05-13"
NEWEST = "2026-08-21"
CONTEXT = [{"type": "compaction", "compact_threshold": 1000}]
ASIDE = "outside the compaction contract: not a failure"

Alter = Callable[[dict[str, Any]], None]


class Relay:
    """A loopback upstream passing requests to the embedded server, answers altered on the way.

    ``alter`` edits a JSON answer; ``alter_event`` edits each event of a stream (by position);
    ``cut`` ends a stream after that many events.
    """

    def __init__(self, server: CompactionServer) -> None:
        self.alter: Alter | None = None
        self.alter_event: Callable[[int, dict[str, Any]], None] | None = None
        self.cut: int | None = None
        relay = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                # Not through httpx: a cassette in use would record this hop too.
                connection = HTTPConnection("127.0.0.1", server.port, timeout=10)
                headers = {"content-type": "application/json", "authorization": "Bearer x"}
                connection.request("POST", self.path, raw, headers)
                answer = connection.getresponse()
                body = answer.read()
                connection.close()
                kind = answer.headers["content-type"]
                if kind.startswith("text/event-stream"):
                    body = relay._stream(body)
                elif relay.alter is not None:
                    data = json.loads(body)
                    relay.alter(data)
                    body = json.dumps(data).encode()
                self.send_response(answer.status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.loopback = Loopback(Handler)
        self.base_url = self.loopback.origin + "/v1"

    def _stream(self, body: bytes) -> bytes:
        blocks = [b for b in body.decode().split("\n\n") if b.strip()]
        out = []
        for index, block in enumerate(blocks[: self.cut]):
            name, data = block.split("\n", 1)
            event = json.loads(data.removeprefix("data: "))
            if self.alter_event is not None:
                self.alter_event(index, event)
            out.append(f"{name}\ndata: {json.dumps(event)}\n\n")
        return "".join(out).encode()

    def close(self) -> None:
        self.loopback.close()


@pytest.fixture
def relay() -> Iterator[Relay]:
    with CompactionServer(deterministic=True) as server:
        upstream = Relay(server)
        try:
            yield upstream
        finally:
            upstream.close()


def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=10)


def conversation(client: openai.OpenAI, *, stream: bool = False) -> None:
    """Two turns with server-side compaction, the second continuing the first's output."""
    history: list[Any] = [{"role": "user", "content": "tell me about the fox " * 400}]
    for turn in range(2):
        if stream:
            events = list(
                client.responses.create(
                    model="gpt-5.4", input=history, context_management=CONTEXT, stream=True
                )
            )
            last = events[-1]
            assert last.type == "response.completed"
            items = last.response.output  # type: ignore[union-attr]
            output = [i.model_dump(mode="json", exclude_unset=True) for i in items]
        else:
            answer = client.responses.create(
                model="gpt-5.4", input=history, context_management=CONTEXT
            )
            output = [i.model_dump(mode="json", exclude_unset=True) for i in answer.output]
        history = [*history, *output, {"role": "user", "content": f"and then? ({turn})"}]


# -- record and replay -----------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_responses_exchanges_are_validated_when_recorded_and_replayed(
    relay: Relay, tmp_path: Path, stream: bool
) -> None:
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once", version=NEWEST) as rec:
        conversation(sdk(relay.base_url), stream=stream)
    assert (rec.recorded, rec.validated, rec.violations, rec.notes) == (2, 2, [], [])
    kinds = [ex.response_headers["content-type"][0] for ex in load_cassette(path).exchanges]
    assert all(k.startswith("text/event-stream" if stream else "application/json") for k in kinds)

    with use_cassette(path) as again:
        conversation(sdk("https://api.openai.com/v1"), stream=stream)
    assert (again.replayed, again.validated, again.violations) == (2, 2, [])


def test_an_answer_that_breaks_the_contract_is_not_written(relay: Relay, tmp_path: Path) -> None:
    def bad_status(body: dict[str, Any]) -> None:
        body["status"] = "finished"

    relay.alter = bad_status
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once", raise_on_exit=False) as rec:
        sdk(relay.base_url).responses.create(model="gpt-5.4", input="hi")
    assert not path.exists()
    (line,) = rec.violations
    assert line.startswith("exchange 0 response (status 200) /status: status: ")
    assert '"finished" is not one of' in line
    message = rec.failure() or ""
    assert f"exchange 0 of cassette {path} does not conform to schema version" in message
    assert "The cassette was not written." in message


def test_a_request_below_the_compaction_threshold_minimum_is_a_violation(
    relay: Relay, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    too_low = [{"type": "compaction", "compact_threshold": 5}]
    with use_cassette(path, record_mode="once", raise_on_exit=False) as rec:
        httpx.post(
            relay.base_url + "/responses",
            json={"model": "gpt-5.4", "input": "hi", "context_management": too_low},
            timeout=10,
        )
    assert any(
        v.startswith("exchange 0 request /context_management/0/compact_threshold: ")
        for v in rec.violations
    ), rec.violations
    assert not path.exists()


def test_an_edited_cassette_fails_at_replay_naming_exchange_and_pointer(
    relay: Relay, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once"):
        conversation(sdk(relay.base_url))
    data = load_cassette(path)
    answer = json.loads(data.exchanges[1].response_body)
    answer["output"][0]["type"] = "thought"
    data.exchanges[1].response_body = json.dumps(answer).encode()
    save_cassette(path, data)

    with pytest.raises(ReplayError) as caught, use_cassette(path):
        conversation(sdk("https://api.openai.com/v1"))
    text = str(caught.value)
    assert f"exchange 1 of cassette {path} does not conform" in text
    assert "response (status 200) /output/0/type: " in text and '"thought"' in text


# -- what the compaction contract does not read ----------------------------------------------
def test_properties_outside_the_contract_are_notes_unless_strict(
    relay: Relay, tmp_path: Path
) -> None:
    """The live service sends null for two strings of the 2026-05-13 spec; so does this relay."""

    def like_the_service(body: dict[str, Any]) -> None:
        body["prompt_cache_key"] = None
        body["safety_identifier"] = None

    relay.alter = like_the_service
    lenient = tmp_path / "lenient.yaml"
    with use_cassette(lenient, record_mode="once", version=MAY) as rec:
        sdk(relay.base_url).responses.create(model="gpt-5.4", input="hi")
    assert rec.violations == [] and rec.validated == 1 and lenient.exists()
    assert rec.notes == [
        f"exchange 0 response /{name}: {name}: expected string, got null ({ASIDE})"
        for name in ("prompt_cache_key", "safety_identifier")
    ]

    strict = tmp_path / "strict.yaml"
    with use_cassette(
        strict, record_mode="once", version=MAY, strict=True, raise_on_exit=False
    ) as rec:
        sdk(relay.base_url).responses.create(model="gpt-5.4", input="hi")
    assert {
        f"exchange 0 response (status 200) /{name}: {name}: expected string, got null"
        for name in ("prompt_cache_key", "safety_identifier")
    } <= set(rec.violations)
    assert not any(ASIDE in n for n in rec.notes)
    assert not strict.exists()


def test_the_contract_covers_what_a_compaction_client_reads() -> None:
    assert {"output", "usage", "previous_response_id", "status", "id"} <= RESPONSE_CONTRACT
    assert outside_contract("/prompt_cache_key")
    assert outside_contract("/reasoning/effort")
    assert not outside_contract("/output/1/encrypted_content")
    assert not outside_contract("")  # the body itself
    assert outside_contract("/response/safety_identifier", event=True)
    assert not outside_contract("/item/encrypted_content", event=True)
    assert not outside_contract("/response/usage/input_tokens", event=True)


# -- streams ---------------------------------------------------------------------------------
def test_a_stream_with_a_broken_compaction_item_fails_and_check_names_the_event(
    relay: Relay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def drop_content(index: int, event: dict[str, Any]) -> None:
        item = event.get("item")
        if isinstance(item, dict) and item.get("type") == "compaction":
            del item["encrypted_content"]

    relay.alter_event = drop_content
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once", raise_on_exit=False) as rec:
        conversation(sdk(relay.base_url), stream=True)
    assert not path.exists()
    assert rec.violations and all(
        "(response.output_item." in v and "encrypted_content" in v for v in rec.violations
    ), rec.violations
    assert "the event stream of exchange" in (rec.failure() or "")

    # The same exchanges saved as they are: check reports each broken event by position.
    exchanges = list(rec.exchanges)
    broken = tmp_path / "broken.yaml"
    save_cassette(broken, CassetteData(exchanges))
    assert main(["check", str(broken)]) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("  FAIL  exchange ")]
    assert failed and all("POST /v1/responses" in line for line in failed)
    assert "response: event " in out and "(response.output_item.added)" in out
    assert "missing required property 'encrypted_content'" in out


def test_a_stream_cut_short_is_recorded_and_noted(relay: Relay, tmp_path: Path) -> None:
    relay.cut = 3
    path = tmp_path / "c.yaml"
    with (
        use_cassette(path, record_mode="once") as rec,
        httpx.stream(
            "POST",
            relay.base_url + "/responses",
            json={"model": "gpt-5.4", "input": "hi", "stream": True},
            timeout=10,
        ) as response,
    ):
        assert sum(1 for line in response.iter_lines() if line.startswith("data: ")) == 3
    assert rec.violations == [] and rec.validated == 1 and path.exists()
    (note,) = rec.notes
    assert note.startswith("exchange 0 the stream ends after event 2 (")
    assert note.endswith("without response.completed")

    result = check_paths([path])
    (exchange,) = result.exchanges
    assert exchange.passed and exchange.baseline.notes == (note.removeprefix("exchange 0 "),)


# -- check and the proxy ---------------------------------------------------------------------
def test_check_judges_responses_exchanges_and_lists_their_notes(
    relay: Relay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once", version=NEWEST):
        conversation(sdk(relay.base_url))
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("  pass  exchange ") == 2 and "2 exchange(s) in 1 cassette(s)" in out

    data = load_cassette(path)
    for ex in data.exchanges:
        body = json.loads(ex.response_body)
        body["prompt_cache_key"] = None
        ex.response_body = json.dumps(body).encode()
    save_cassette(path, CassetteData(data.exchanges, schema_version=MAY))
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("        note: response /prompt_cache_key: ") == 2 and ASIDE in out
    assert out.splitlines()[-1].endswith("2 passed, 0 failed; 2 note(s)")
    assert main(["check", str(path), "--strict"]) == 1
    assert "response: prompt_cache_key: expected string, got null" in capsys.readouterr().out


def test_the_proxy_validates_responses_exchanges(relay: Relay, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    with CompactionProxy(relay.base_url, path, record_mode="once") as proxy:
        conversation(sdk(proxy.url))
    assert (proxy.recorded, proxy.validated, proxy.violations) == (2, 2, [])
    assert len(load_cassette(path).exchanges) == 2

    def no_output(body: dict[str, Any]) -> None:
        del body["output"]

    relay.alter = no_output
    other = tmp_path / "other.yaml"
    with CompactionProxy(relay.base_url, other, record_mode="once") as proxy:
        httpx.post(proxy.url + "/responses", json={"model": "gpt-5.4", "input": "hi"}, timeout=10)
    (line,) = proxy.violations
    assert "response (status 200) /output: " in line and "missing required property" in line
    assert not other.exists() or load_cassette(other).exchanges == []


def test_exchange_model_round_trips_headers(tmp_path: Path) -> None:
    """A stream is known by its content type, whatever the header's case in the cassette."""
    body = b'event: response.created\ndata: {"type": "response.created"}\n\n'
    ex = Exchange(
        method="POST",
        uri="https://api.openai.com/v1/responses",
        request_headers={},
        request_body=b'{"model": "gpt-5.4", "input": "hi", "stream": true}',
        status=200,
        reason="OK",
        response_headers={"Content-Type": ["text/event-stream; charset=utf-8"]},
        response_body=body,
    )
    path = tmp_path / "c.yaml"
    save_cassette(path, CassetteData([ex], schema_version=NEWEST))
    (result,) = check_paths([path]).exchanges
    assert result.baseline.response is not None
    assert result.baseline.response.kind == "responses.event"
    assert not result.passed  # a response.created event without its response
