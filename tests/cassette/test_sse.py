"""Event streams in cassettes: parsing, storage as reviewable events, validation, and replay
event by event, over real HTTP on 127.0.0.1 through the openai SDK, httpx and httpx2."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
import vcr
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.loopback import Loopback, QuietHandler

from pytest_compaction.cassette._exchange import CassetteData, CassetteError, Exchange
from pytest_compaction.cassette._file import (
    dump_cassette,
    load_cassette,
    parse_cassette,
    save_cassette,
)
from pytest_compaction.cassette._sse import (
    EntryError,
    parse_stream,
    render_entries,
    render_entry,
    stream_entries,
)
from pytest_compaction.contract._events import check_stream
from pytest_compaction.replay._recorder import ReplayError, use_cassette
from pytest_compaction.schema._validate import get_validator
from pytest_compaction.server import CompactionServer

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

KEY = "sk-test-" + "e4" * 20
VERSION = "2026-05-13"
SSE_HEADERS = {"content-type": ["text/event-stream; charset=utf-8"]}
REQUEST = {
    "model": "gpt-5.4",
    "input": [{"role": "user", "content": "tell me about foxes " * 120}],
    "context_management": [{"type": "compaction", "compact_threshold": 1000}],
    "stream": True,
}


def sse(data: dict[str, Any]) -> bytes:
    """One event as the live service writes it."""
    text = json.dumps(data, separators=(",", ":"))
    return f"event: {data['type']}\ndata: {text}\n\n".encode()


def ends(body: bytes) -> list[int]:
    """Offsets just after each blank line: where the events of a ``\\n`` stream end."""
    return [m.end() for m in re.finditer(rb"\n\n", body)]


def stream_exchange(body: bytes, uri: str = "https://api.test/v1/responses") -> Exchange:
    return Exchange(
        "POST",
        uri,
        {"content-type": ["application/json"]},
        json.dumps(REQUEST).encode(),
        200,
        "OK",
        dict(SSE_HEADERS),
        body,
    )


class StreamServer:
    """Answers each POST with the chunks configured for its path, one HTTP chunk each."""

    def __init__(self, streams: dict[str, list[bytes]]) -> None:
        self.streams = streams
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                chunks = outer.streams[self.path]
                self.send_response(200)
                self.send_header("content-type", "text/event-stream; charset=utf-8")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for chunk in chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

        self.loopback = Loopback(Handler)
        self.base_url = self.loopback.origin + "/v1"

    def close(self) -> None:
        self.loopback.close()


@pytest.fixture(scope="module")
def base_events() -> list[dict[str, Any]]:
    """A valid stream's events (assistant message + compaction item) from the embedded server."""
    with CompactionServer(deterministic=True) as srv:
        response = httpx2.post(
            srv.base_url + "/responses", json=REQUEST, headers={"authorization": "Bearer " + KEY}
        )
    assert response.status_code == 200, response.text
    events = [
        json.loads(block.split(b"\ndata: ", 1)[1])
        for block in response.content.split(b"\n\n")
        if block
    ]
    assert [e["type"] for e in events][-1] == "response.completed"
    assert any(e.get("item", {}).get("type") == "compaction" for e in events)
    return events


# ---------------------------------------------------------------------------------------------
# Parsing and rendering


def test_a_stream_parses_into_events_that_keep_every_byte() -> None:
    body = (
        b": keep-alive\n\n"
        b'id: 7\nevent: response.created\ndata: {"type":"response.created"}\nretry: 3000\n\n'
        b"data: first line\ndata: second line\n\n"
        b'event: crlf\r\ndata: {"a": 1}\r\n\r\n'
        b"data:no-space\n\n"
    )
    events = parse_stream(body)
    assert b"".join(e.raw for e in events) == body
    assert [e.name for e in events] == [None, "response.created", None, "crlf", None]
    assert events[0].comments == [" keep-alive"] and events[0].data is None
    assert (events[1].id, events[1].retry) == ("7", "3000")
    assert events[1].json() == (True, {"type": "response.created"})
    assert events[2].data == "first line\nsecond line"
    assert events[3].json() == (True, {"a": 1}) and events[4].data == "no-space"
    assert not any(e.problems for e in events)

    entries = stream_entries(body)
    assert entries == [
        {"comment": " keep-alive"},
        {
            "id": "7",
            "event": "response.created",
            "data": {"type": "response.created"},
            "retry": "3000",
        },
        {"text": "first line\nsecond line"},
        {"raw": 'event: crlf\r\ndata: {"a": 1}\r\n\r\n'},  # CRLF: kept as received
        {"raw": "data:no-space\n\n"},
    ]
    assert render_entries(entries) == body


def test_malformed_lines_and_a_cut_off_event_are_reported_and_kept() -> None:
    body = (
        b'event: response.created\ndata: {"type":"response.created"}\n\n'
        b"event: response.in_progress\nthis line has no colon\nbogus: field\nretry: soon\n"
        b'data: {"type":"response.in_progress"}\n\n'
        b"\xff\xfe\n\n"
        b'event: response.output_item.added\ndata: {"type":"response.output'
    )
    events = parse_stream(body)
    assert b"".join(e.raw for e in events) == body
    assert len(events) == 4
    assert events[0].problems == ()
    assert events[1].problems == (
        "line 5: 'this line has no colon' has no ':'; clients read it as a field named like the "
        "whole line and ignore it",
        "line 6: unknown field 'bogus'; clients ignore it",
        "line 7: retry 'soon' is not a number of ms",
    )
    assert events[1].json() == (True, {"type": "response.in_progress"})
    assert events[2].problems[0] == "line 10: not UTF-8 (byte 0 of the line)"
    assert not events[3].terminated
    assert events[3].problems[-1].startswith("line 13: the stream ends inside this event")
    # the UTF-8 part of a stream still renders back exactly, the broken events as raw text
    text_body = body.replace(b"\xff\xfe", b"??")
    entries = stream_entries(text_body)
    assert entries is not None
    assert [("raw" in e) for e in entries] == [False, True, True, True]
    assert render_entries(entries) == text_body
    assert stream_entries(body) is None  # not UTF-8: the cassette keeps the body as bytes


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"event": "x", "colour": "red"}, "unknown key(s) colour"),
        ({"data": {"a": 1}, "text": "a"}, "has both data and text"),
        ({"raw": "data: 1\n\n", "event": "x"}, "'raw' stands alone; remove event"),
        ({"event": "two\nlines", "data": 1}, "event holds a line break"),
        ({"data": {"when": __import__("datetime").date(2026, 1, 1)}}, "data is not JSON data"),
        ({}, "an event needs at least one of"),
        ("event: x", "expected a mapping, got str"),
    ],
)
def test_an_entry_that_cannot_render_is_a_clear_error(entry: Any, message: str) -> None:
    with pytest.raises(EntryError, match=re.escape(message)):
        render_entry(entry, "event 3")


LINES = st.sampled_from(
    [
        "event: response.output_text.delta",
        'data: {"type":"response.output_text.delta","delta":" a\\u00e9"}',
        'data: {"spaced": true}',
        "data: [DONE]",
        "data:",
        "data",
        ": comment",
        ":",
        "id: 12",
        "id: a\0b",
        "retry: 500",
        "retry: x",
        "garbage without colon",
        "weird: field",
        "",
        "\ufeffdata: 1",
        "data: é ☃ \u2028 \x85",
    ]
)


@st.composite
def streams(draw: Any) -> bytes:
    parts = []
    for line in draw(st.lists(st.one_of(LINES, st.text(max_size=12)), max_size=14)):
        parts.append(line + draw(st.sampled_from(["\n", "\n", "\n", "\r\n", "\r"])))
    text = "".join(parts)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode("utf-8", "surrogatepass")


@settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(streams())
def test_any_stream_is_stored_and_loaded_byte_identical(body: bytes) -> None:
    assert b"".join(e.raw for e in parse_stream(body)) == body
    entries = stream_entries(body)
    if entries is not None:
        assert render_entries(entries) == body
    text = dump_cassette(CassetteData([stream_exchange(body)]))
    assert parse_cassette(text).exchanges[0].response_body == body
    # stock YAML (what vcrpy uses) reads the same body string
    doc = yaml.load(text, Loader=yaml.CSafeLoader)
    string = doc["interactions"][0]["response"]["body"]["string"]
    assert (string.encode("utf-8", "surrogatepass") if isinstance(string, str) else string) == body


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text()
    | st.sampled_from(["1e3", "null", "~", "yes", "0x10", "2026-01-01", "1_000", ".inf", "- a"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(JSON, min_size=1, max_size=4))
def test_parsed_json_data_survives_the_yaml_round_trip(values: list[Any]) -> None:
    body = b"".join(
        b"event: e\ndata: "
        + json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
        + b"\n\n"
        for v in values
    )
    text = dump_cassette(CassetteData([stream_exchange(body)]))
    assert parse_cassette(text).exchanges[0].response_body == body


# ---------------------------------------------------------------------------------------------
# Storage in the cassette


def test_streams_are_stored_as_events_that_stock_vcrpy_still_replays(
    tmp_path: Path, base_events: list[dict[str, Any]]
) -> None:
    body = b"".join(sse(e) for e in base_events)
    path = tmp_path / "stream.yaml"
    save_cassette(path, CassetteData([stream_exchange(body)], VERSION))
    text = path.read_text()
    doc = yaml.load(text, Loader=yaml.CSafeLoader)
    response = doc["interactions"][0]["response"]
    # the review reads events: name and parsed data, in order
    assert [e["event"] for e in response["events"]] == [e["type"] for e in base_events]
    assert [e["data"] for e in response["events"]] == base_events
    assert response["body"]["string"].encode() == body
    assert (
        "    - event: response.output_text.delta\n      data: {type: response.output_text.delta,"
        in text
    )
    assert load_cassette(path).exchanges[0].response_body == body

    # stock vcrpy ignores the events and replays the same bytes
    with vcr.use_cassette(str(path), record_mode="none") as cassette:
        replayed = httpx.post("https://api.test/v1/responses", json=REQUEST)
        assert cassette.play_count == 1
    assert replayed.content == body


def _edited(path: Path, edit: Any) -> None:
    doc = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    edit(doc["interactions"][0]["response"])
    path.write_text(yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True))


def test_a_hand_edit_to_an_event_is_what_replays(
    tmp_path: Path, base_events: list[dict[str, Any]]
) -> None:
    body = b"".join(sse(e) for e in base_events)
    path = tmp_path / "edit.yaml"
    exchange = stream_exchange(body)
    exchange.response_headers["content-length"] = [str(len(body))]
    save_cassette(path, CassetteData([exchange], VERSION))
    delta = next(i for i, e in enumerate(base_events) if e["type"] == "response.output_text.delta")

    def edit(response: dict[str, Any]) -> None:
        response["events"][delta]["data"]["delta"] = "EDITED BY HAND"

    _edited(path, edit)
    client = openai.OpenAI(base_url="https://api.test/v1", api_key=KEY, max_retries=0)
    with use_cassette(path, version=VERSION) as rec:
        with client.responses.with_streaming_response.create(**REQUEST) as raw:
            content = raw.read()
            assert int(raw.headers["content-length"]) == len(content)
        assert rec.replayed == 1 and rec.validated == 1
    assert b'"delta":"EDITED BY HAND"' in content
    assert content.count(b"\n\n") == len(base_events)


def test_an_edit_to_the_body_string_alone_replays_and_conflicting_edits_are_refused(
    tmp_path: Path, base_events: list[dict[str, Any]]
) -> None:
    body = b"".join(sse(e) for e in base_events)
    path = tmp_path / "body.yaml"
    save_cassette(path, CassetteData([stream_exchange(body)], VERSION))
    original = path.read_text()

    def edit_string(response: dict[str, Any]) -> None:
        response["body"]["string"] = response["body"]["string"].replace('"delta":', '"delta": ', 1)

    _edited(path, edit_string)
    loaded = load_cassette(path).exchanges[0].response_body
    assert loaded == body.replace(b'"delta":', b'"delta": ', 1)

    def edit_both(response: dict[str, Any]) -> None:
        edit_string(response)
        response["events"][-1]["data"]["sequence_number"] = 999

    path.write_text(original)
    _edited(path, edit_both)
    with pytest.raises(CassetteError) as info:
        load_cassette(path)
    first = next(i for i, e in enumerate(base_events) if e["type"] == "response.output_text.delta")
    assert (
        f"{path}: interaction 0: the response body.string and its events were both edited"
        in str(info.value)
    )
    assert f"(from event {first} on)" in str(info.value)

    def break_entry(response: dict[str, Any]) -> None:
        response["events"][4] = {"event": "x", "dta": "typo"}

    path.write_text(original)
    _edited(path, break_entry)
    with pytest.raises(
        CassetteError, match=r"interaction 0: response events: event 4: unknown key\(s\) dta"
    ):
        load_cassette(path)


# ---------------------------------------------------------------------------------------------
# Recording over HTTP, replaying offline


def test_a_stream_records_and_replays_event_by_event(tmp_path: Path) -> None:
    path = tmp_path / "embedded.yaml"
    with CompactionServer() as srv:
        with use_cassette(path, record_mode="once", version=VERSION) as rec:
            wire = httpx2.post(
                srv.base_url + "/responses",
                json=REQUEST,
                headers={"authorization": "Bearer " + KEY},
            ).content
        base_url = srv.base_url
    assert rec.recorded == 1 and rec.validated == 1 and rec.violations == [] and rec.notes == []
    body = load_cassette(path).exchanges[0].response_body
    assert body == wire
    expected = [json.loads(b.split(b"\ndata: ", 1)[1]) for b in wire.split(b"\n\n") if b]

    # Offline (the server is gone), with every client: the SDK gets the events one at a time...
    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    with use_cassette(path, version=VERSION, allow_playback_repeats=True) as rec:
        stream = client.responses.create(**REQUEST)
        got, downloaded = [], []
        for event in stream:
            got.append(event.model_dump(mode="json", exclude_unset=True))
            downloaded.append(stream.response.num_bytes_downloaded)
        # ...httpx and httpx2 receive one chunk per event, sync and async.
        with httpx2.Client() as h2, h2.stream("POST", base_url + "/responses", json=REQUEST) as r:
            chunks2 = list(r.iter_bytes())
        with httpx.Client() as h1, h1.stream("POST", base_url + "/responses", json=REQUEST) as r:
            chunks1 = list(r.iter_bytes())

        async def go() -> list[bytes]:
            async with (
                httpx2.AsyncClient() as client,
                client.stream("POST", base_url + "/responses", json=REQUEST) as r,
            ):
                return [chunk async for chunk in r.aiter_bytes()]

        chunks3 = asyncio.run(go())
    assert rec.replayed == 4 and rec.validated == 4 and rec.violations == []
    assert got == expected
    assert downloaded == ends(wire)  # each event arrived before the next was read
    per_event = [wire[a:b] for a, b in zip([0, *ends(wire)], ends(wire), strict=False)]
    assert len(per_event) == len(expected) > 1
    assert chunks1 == chunks2 == chunks3 == per_event

    # The compaction item is re-encrypted for added, done and completed: replayed as recorded.
    tokens = [
        *(
            e["item"]["encrypted_content"]
            for e in got
            if e.get("item", {}).get("type") == "compaction"
        ),
        *(
            i["encrypted_content"]
            for i in got[-1]["response"]["output"]
            if i["type"] == "compaction"
        ),
    ]
    assert len(tokens) == 3 and len(set(tokens)) == 3


def _stream_cases(base: list[dict[str, Any]]) -> dict[str, tuple[list[bytes], list[str]]]:
    """Streams a server may send, with the notes each must produce (exchange 0 of its cassette)."""
    head = [sse(e) for e in base[:4]]
    n = len(head)
    error = {
        "type": "error",
        "code": "server_error",
        "message": "The server had an error while processing your request.",
        "param": None,
        "sequence_number": n,
    }
    malformed = head[1].replace(b"\ndata:", b"\nnot a field line\ndata:")
    return {
        "cut": (
            [*head, sse(base[4])[:40]],
            [
                f"exchange 0 event {n}: line {3 * n + 2}: the stream ends inside this event (no "
                "blank line after it); clients drop it",
                f"exchange 0 the stream ends after event {n - 1} ({base[n - 1]['type']}) without "
                "response.completed",
            ],
        ),
        "error": (
            [*head, sse(error)],
            [
                f"exchange 0 event {n} (error): the stream reports an error: server_error: The "
                "server had an error while processing your request."
            ],
        ),
        "malformed": (
            [head[0], malformed, *head[2:], *(sse(e) for e in base[4:])],
            [
                "exchange 0 event 1: line 5: 'not a field line' has no ':'; clients read it as a "
                "field named like the whole line and ignore it"
            ],
        ),
    }


def test_streams_cut_short_with_errors_or_malformed_lines_record_faithfully(
    tmp_path: Path, base_events: list[dict[str, Any]]
) -> None:
    cases = _stream_cases(base_events)
    server = StreamServer({f"/{name}/v1/responses": chunks for name, (chunks, _) in cases.items()})
    origin = server.base_url[: -len("/v1")]
    live: dict[str, list[str]] = {}
    recorded: dict[str, Any] = {}
    try:
        for name in cases:
            client = openai.OpenAI(base_url=f"{origin}/{name}/v1", api_key=KEY, max_retries=0)
            with use_cassette(
                tmp_path / f"{name}.yaml", record_mode="once", version=VERSION
            ) as rec:
                live[name] = [e.type for e in client.responses.create(**REQUEST)]
            recorded[name] = rec
    finally:
        server.close()
    assert live["cut"] == [e["type"] for e in base_events[:4]]
    assert live["error"][-1] == "error"
    for name, (chunks, notes) in cases.items():
        rec = recorded[name]
        assert rec.recorded == 1 and rec.violations == [] and rec.notes == notes, name
        body = b"".join(chunks)
        assert load_cassette(tmp_path / f"{name}.yaml").exchanges[0].response_body == body, name
        # offline: the same bytes, cut where the server cut them, and the same events
        url = f"{origin}/{name}/v1"
        client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0)
        with use_cassette(tmp_path / f"{name}.yaml", allow_playback_repeats=True) as again:
            with httpx2.Client() as h, h.stream("POST", url + "/responses", json=REQUEST) as r:
                replayed = list(r.iter_bytes())
            assert [e.type for e in client.responses.create(**REQUEST)] == live[name]
        assert replayed == chunks, name
        assert again.notes == notes and again.validated == 2, name


def test_the_plugin_lists_what_a_stream_does_in_its_summary(
    pytester: pytest.Pytester, base_events: list[dict[str, Any]]
) -> None:
    chunks, notes = _stream_cases(base_events)["cut"]
    folder = pytester.path / "cassettes" / "test_notes"
    save_cassette(folder / "cut.yaml", CassetteData([stream_exchange(b"".join(chunks))], VERSION))
    pytester.makepyfile(
        test_notes=f"""
import httpx2
import pytest


@pytest.mark.compaction("cut")
def test_cut(compaction_cassette):
    url = "https://api.test/v1/responses"
    with httpx2.Client() as h, h.stream("POST", url, json={REQUEST!r}) as r:
        assert len(list(r.iter_bytes())) == {len(chunks)}
    assert compaction_cassette.notes == {notes!r}
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*0 exchange(s) recorded, 1 replayed, 1 validated; 0 violation(s)*"]
    )
    assert [line for line in result.stdout.lines if line.startswith("  note: ")] == [
        f"  note: {note}" for note in notes
    ]


def test_an_invalid_event_fails_the_recording_naming_exchange_and_event(
    tmp_path: Path, base_events: list[dict[str, Any]]
) -> None:
    events = [dict(e) for e in base_events]
    added = next(
        i
        for i, e in enumerate(events)
        if e["type"] == "response.output_item.added" and e["item"]["type"] == "compaction"
    )
    events[added] = {**events[added], "item": {"type": "compaction", "id": "cmp_1"}}
    server = StreamServer({"/v1/responses": [sse(e) for e in events]})
    path = tmp_path / "invalid.yaml"
    try:
        with (
            pytest.raises(ReplayError) as info,
            use_cassette(path, record_mode="once", version=VERSION),
        ):
            httpx2.post(server.base_url + "/responses", json=REQUEST)
    finally:
        server.close()
    message = str(info.value)
    assert f"the event stream of exchange 0 of cassette {path} does not conform" in message
    assert (
        f"event {added} (response.output_item.added) /item/encrypted_content: item "
        "(type=compaction): missing required property 'encrypted_content'"
    ) in message
    assert "The cassette was not written." in message
    assert not path.exists()

    # A hand edit that breaks an event fails the replay the same way.
    save_cassette(path, CassetteData([stream_exchange(b"".join(sse(e) for e in base_events))]))

    def drop_token(response: dict[str, Any]) -> None:
        del response["events"][added]["data"]["item"]["encrypted_content"]

    _edited(path, drop_token)
    with pytest.raises(ReplayError) as info, use_cassette(path, version=VERSION):
        httpx2.post("https://api.test/v1/responses", json=REQUEST)
    message = str(info.value)
    assert f"the event stream of exchange 0 of cassette {path} does not conform" in message
    assert f"event {added} (response.output_item.added) /item/encrypted_content:" in message
    assert "(replayed)" in message


def test_grouped_findings_name_every_event() -> None:
    bad = {
        "type": "response.output_item.added",
        "output_index": 0,
        "item": {"type": "compaction", "id": "cmp_1"},
    }
    body = b"".join(sse({**bad, "sequence_number": n}) for n in range(8))
    report = check_stream(body, version=VERSION)
    assert report.validated and report.events == 8
    assert report.violations == [
        "event 0 (response.output_item.added) /item/encrypted_content: item (type=compaction): "
        "missing required property 'encrypted_content' (also events 1, 2, 3, 4, 5 and 2 more)",
    ]
    assert report.notes == [
        "the stream ends after event 7 (response.output_item.added) without response.completed"
    ]


def test_secrets_in_stream_data_stop_the_write(
    tmp_path: Path, base_events: list[dict[str, Any]]
) -> None:
    leak = {**base_events[3], "delta": "sk-proj-" + "Zx9" * 12}
    escaped = sse(base_events[4]).replace(b'"delta":"', b'"delta":"\\u0073k-proj-' + b"Qw8" * 12, 1)
    server = StreamServer(
        {
            "/v1/plain": [sse(base_events[0]), sse(leak)],
            "/v1/escaped": [sse(base_events[0]), escaped],
        }
    )
    try:
        for name in ("plain", "escaped"):
            path = tmp_path / f"{name}.yaml"
            with (
                pytest.raises(ReplayError, match="secret"),
                use_cassette(path, record_mode="once", version=VERSION),
            ):
                httpx2.post(f"{server.base_url}/{name}", json=REQUEST)
            assert not path.exists(), name
    finally:
        server.close()
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# The real recordings


def _events_of(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(b.split(b"\ndata: ", 1)[1]) for b in body.split(b"\n\n") if b]


@pytest.mark.parametrize("layout", ["pydantic-ai-stock-vcrpy", "pydantic-ai"])
def test_the_real_streams_replay_through_the_sdk_and_validate(
    tmp_path: Path, reference: Path, layout: str
) -> None:
    source = (
        reference / "recorded" / layout / "test_openai_responses_compact_stateful_mode_stream.yaml"
    )
    path = tmp_path / source.name
    shutil.copy(source, path)
    exchanges = load_cassette(path).exchanges
    if layout == "pydantic-ai-stock-vcrpy":  # the bodies as stock YAML reads them
        doc = yaml.load(source.read_text(), Loader=yaml.CSafeLoader)
        assert [ex.response_body for ex in exchanges] == [
            i["response"]["body"]["string"].encode() for i in doc["interactions"]
        ]
    client = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="none", max_retries=0)
    with use_cassette(path, version=VERSION, raise_on_exit=False) as rec:
        for ex in exchanges:
            stream = client.responses.create(**json.loads(ex.request_body or b""))
            got, downloaded = [], []
            for event in stream:
                got.append(event.model_dump(mode="json", exclude_unset=True))
                downloaded.append(stream.response.num_bytes_downloaded)
            assert got == _events_of(ex.response_body)
            assert downloaded == ends(ex.response_body)
    assert rec.replayed == rec.validated == len(exchanges) == 4
    assert rec.violations == []
    rec.assert_all_played()
    assert path.read_bytes() == source.read_bytes()  # replay rewrites nothing

    # The third turn compacted: its item was encrypted anew in added, done and completed.
    third = _events_of(exchanges[2].response_body)
    tokens = [
        *(
            e["item"]["encrypted_content"]
            for e in third
            if e.get("item", {}).get("type") == "compaction"
        ),
        *(
            i["encrypted_content"]
            for i in third[-1]["response"]["output"]
            if i["type"] == "compaction"
        ),
    ]
    assert len(tokens) == 3 and len(set(tokens)) == 3

    # Each event was validated. The only findings are the nulls the service sends where the
    # 2026-05-13 spec declares strings, outside what the compaction contract reads: notes.
    validator = get_validator("responses.event", VERSION)  # type: ignore[arg-type]
    for index, ex in enumerate(exchanges):
        events = _events_of(ex.response_body)
        found = {
            (n, v.path) for n, e in enumerate(events) for v in validator.validate(e).violations
        }
        assert {path for _, path in found} == {
            "/response/prompt_cache_key",
            "/response/safety_identifier",
        }
        noted = [n for n in rec.notes if n.startswith(f"exchange {index} ")]
        assert len(noted) == 2 and all("outside the compaction contract" in n for n in noted)
        for line in noted:
            match = re.match(rf"exchange {index} event (\d+) \(([\w.]+)\) (/\S+):", line)
            assert match, line
            first = min(n for n, p in found if p == match[3])
            assert int(match[1]) == first and events[first]["type"] == match[2]

    # Saved in this project's layout, the events replay the same bytes, one chunk per event.
    ours = tmp_path / "ours.yaml"
    save_cassette(ours, CassetteData(exchanges, VERSION))
    assert "events:" in ours.read_text()
    with use_cassette(ours, raise_on_exit=False) as again:
        for ex in exchanges:
            with httpx2.Client() as h, h.stream("POST", ex.uri, content=ex.request_body) as r:
                chunks = list(r.iter_bytes())
            assert b"".join(chunks) == ex.response_body and len(chunks) == len(
                ends(ex.response_body)
            )
    assert again.replayed == 4


@pytest.mark.parametrize("layout", ["pydantic-ai-stock-vcrpy", "pydantic-ai"])
def test_the_real_stateful_cassette_replays_without_streaming(
    tmp_path: Path, reference: Path, layout: str
) -> None:
    source = reference / "recorded" / layout / "test_openai_responses_compact_stateful_mode.yaml"
    path = tmp_path / source.name
    shutil.copy(source, path)
    exchanges = load_cassette(path).exchanges
    client = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="none", max_retries=0)
    with use_cassette(path, version=VERSION) as rec:
        for ex in exchanges:
            body = json.loads(ex.request_body or b"")
            expected = json.loads(ex.response_body)
            if ex.uri.endswith("/responses/compact"):
                out: Any = client.responses.compact(**body)
            else:
                out = client.responses.create(**body)
            assert out.id == expected["id"]
            assert [i.type for i in out.output] == [i["type"] for i in expected["output"]]
    assert rec.replayed == len(exchanges) and rec.violations == []
