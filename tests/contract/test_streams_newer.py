"""Streams as newer clients and recorders see them, and conversations that branch.

Evidence is the real pydantic-ai stream recording in ../shared (a ``POST /responses`` stream
conversation with server-side compaction), changed the way newer traffic and recorders change
it: a ``response.completed`` without ``output`` (the output is the
``response.output_item.done`` events'), an event type the contract does not list, a scrubbed
``content-type`` header. Branching conversations are recorded over real HTTP with the openai SDK
against the embedded server, whose compact output re-issues the user messages with the ids it
was given.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import openai
import pytest

from pytest_compaction.cassette._exchange import CassetteData, Exchange
from pytest_compaction.cassette._file import load_cassette, save_cassette
from pytest_compaction.cli import main
from pytest_compaction.contract._chain import ChainViolation, check_chain, check_conversation
from pytest_compaction.contract._judge import is_stream, judge_exchange
from pytest_compaction.replay._recorder import use_cassette
from pytest_compaction.server import CompactionServer

MODEL = "gpt-5.4"
VERSION = "2026-05-13"
RECORDING = "test_openai_responses_compact_stateful_mode_stream.yaml"
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]
SDK_WARNING = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
Events = list[tuple[str, dict[str, Any]]]


# -- helpers ---------------------------------------------------------------------------------------
@pytest.fixture
def stream(reference: Path) -> list[Exchange]:
    """The four exchanges of the real stream recording (stock vcrpy layout)."""
    path = reference / "recorded" / "pydantic-ai-stock-vcrpy" / RECORDING
    if not path.is_file():
        pytest.skip(f"{path} not found (only in a full checkout)")
    return load_cassette(path).exchanges


def events_of(exchange: Exchange) -> Events:
    out = []
    for block in exchange.response_body.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            out.append((lines.get("event", ""), json.loads(lines["data"])))
    return out


def with_events(exchange: Exchange, change: Callable[[Events], Events]) -> Exchange:
    body = "".join(
        f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        for name, data in change(events_of(exchange))
    )
    return replace(exchange, response_body=body.encode())


def completed_output(change: Callable[[dict[str, Any]], None]) -> Callable[[Events], Events]:
    """An event change: ``change`` applied to the ``response`` of ``response.completed``."""

    def apply(events: Events) -> Events:
        for name, data in events:
            if name == "response.completed":
                change(data["response"])
        return events

    return apply


def request_of(exchange: Exchange) -> dict[str, Any]:
    body = json.loads(exchange.request_body or b"")
    assert isinstance(body, dict)
    return body


def with_input(exchange: Exchange, items: list[Any]) -> Exchange:
    body = {**request_of(exchange), "input": items}
    return replace(exchange, request_body=json.dumps(body).encode())


def done_items(exchange: Exchange) -> list[dict[str, Any]]:
    return [d["item"] for n, d in events_of(exchange) if n == "response.output_item.done"]


def assessed(violations: list[ChainViolation]) -> list[tuple[int, int, str]]:
    return [(v.rule, v.exchange, v.pointer) for v in violations]


def checked(tmp_path: Path, exchanges: list[Exchange], *args: str) -> tuple[int, str]:
    path = tmp_path / "stream.yaml"
    save_cassette(path, CassetteData(exchanges=exchanges))
    code = main(["check", str(path), "--version", VERSION, "--format", "json", *args])
    return code, path.name


def exchange_report(capsys: pytest.CaptureFixture[str], index: int = 0) -> dict[str, Any]:
    """What ``check --format json`` says of one exchange's response: lines per finding."""
    payload = json.loads(capsys.readouterr().out)
    (cassette,) = payload["cassettes"]
    baseline = cassette["exchanges"][index]["baseline"]
    response = baseline["response"]
    return {
        "violations": [v["message"] for v in response["violations"]],
        "drift": [d["message"] for d in response["drift"]],
        "notes": list(baseline["notes"]),
    }


EMPTY_OUTPUTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "empty": lambda response: response.update(output=[]),
    "null": lambda response: response.update(output=None),
    "missing": lambda response: response.pop("output"),
}


# -- response.completed without output: the done events' items ------------------------------------
@pytest.mark.parametrize("how", sorted(EMPTY_OUTPUTS))
def test_the_chain_reads_the_done_items_when_completed_has_no_output(
    stream: list[Exchange], how: str
) -> None:
    emptied = [with_events(ex, completed_output(EMPTY_OUTPUTS[how])) for ex in stream]
    assert check_chain(emptied) == []
    sent = request_of(stream[3])["input"]
    (k,) = [i for i, item in enumerate(sent) if item.get("type") == "compaction"]
    # The compaction item exchange 2 streamed (only in its .done event now) must go back.
    pruned = with_input(emptied[3], [*sent[:k], *sent[k + 1 :]])
    (violation,) = check_chain([*emptied[:3], pruned])
    assert (violation.rule, violation.exchange, violation.pointer) == (2, 3, "/input")
    assert (violation.source_exchange, violation.source_pointer) == (2, "/output/1")
    assert "compaction cmp_" in violation.message
    # Exchange 3's answer, known only from its .done event, must be passed on too.
    question = {"role": "user", "content": "And 6+6?"}
    follow = with_input(emptied[3], [sent[k], sent[k + 1], question])
    (violation,) = check_chain([*emptied, follow])
    assert (violation.rule, violation.exchange, violation.pointer) == (2, 4, "/input")
    assert (violation.source_exchange, violation.source_pointer) == (3, "/output/0")
    answer = done_items(stream[3])[0]
    rendered = {"role": "assistant", "content": answer["content"][0]["text"]}
    assert check_chain([*emptied, with_input(emptied[3], [*sent[k:], rendered, question])]) == []


@pytest.mark.parametrize("how", ["null", "missing"])
def test_a_completed_event_without_output_is_judged_with_the_done_items(
    stream: list[Exchange], tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    emptied = with_events(stream[2], completed_output(EMPTY_OUTPUTS[how]))
    code, _ = checked(tmp_path, [emptied])
    report = exchange_report(capsys)
    assert code == 0, report
    notes = [n for n in report["notes"] if "response.output is" in n]
    (note,) = notes
    assert note.startswith("event ") and "(response.completed)" in note
    assert f"response.output is {how}: judged with the 2 item(s) of the " in note
    assert "response.output_item.done events (in output_index order)" in note
    # The rebuilt output is validated: an unknown item type in a done event still fails.
    broken = with_events(
        emptied,
        lambda events: [
            (n, {**d, "item": {**d["item"], "type": "brand_new_item"}})
            if n == "response.output_item.done" and d["item"]["type"] == "message"
            else (n, d)
            for n, d in events
        ],
    )
    code, _ = checked(tmp_path, [broken])
    report = exchange_report(capsys)
    assert code == 1
    lines = report["violations"]
    assert any("/response/output/0/type" in line and "brand_new_item" in line for line in lines)


def test_an_empty_completed_output_beside_done_events_is_noted(
    stream: list[Exchange], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emptied = with_events(stream[2], completed_output(EMPTY_OUTPUTS["empty"]))
    code, _ = checked(tmp_path, [emptied])
    report = exchange_report(capsys)
    assert code == 0, report
    assert any(
        "response.output is empty: the output is the 2 item(s) of the "
        "response.output_item.done events" in n
        for n in report["notes"]
    )


# -- rule 4: every token a stream issued for the item ----------------------------------------------
def test_each_token_a_stream_issued_goes_back(stream: list[Exchange]) -> None:
    sent = request_of(stream[3])["input"]
    (k,) = [i for i, item in enumerate(sent) if item.get("type") == "compaction"]
    tokens = {
        name: d["item"]["encrypted_content"]
        for name, d in events_of(stream[2])
        if name in ("response.output_item.added", "response.output_item.done")
        and d["item"]["type"] == "compaction"
    }
    (completed,) = [
        i["encrypted_content"]
        for n, d in events_of(stream[2])
        if n == "response.completed"
        for i in d["response"]["output"]
        if i["type"] == "compaction"
    ]
    tokens["response.completed"] = completed
    assert len(set(tokens.values())) == 3
    for token in tokens.values():
        items = [*sent[:k], {**sent[k], "encrypted_content": token}, *sent[k + 1 :]]
        assert check_chain([*stream[:3], with_input(stream[3], items)]) == []
    altered = tokens["response.output_item.added"][:-8] + "AAAAAAA="
    items = [*sent[:k], {**sent[k], "encrypted_content": altered}, *sent[k + 1 :]]
    (violation,) = check_chain([*stream[:3], with_input(stream[3], items)])
    assert (violation.rule, violation.pointer) == (4, f"/input/{k}/encrypted_content")
    assert "(nor any of the 3 streamed)" in violation.message
    assert "400" not in violation.message and "invalid_encrypted_content" not in violation.message


# -- a scrubbed content-type -----------------------------------------------------------------------
def scrubbed(exchange: Exchange) -> Exchange:
    headers = {k: v for k, v in exchange.response_headers.items() if k.lower() != "content-type"}
    return replace(exchange, response_headers=headers)


def test_is_stream_without_a_content_type() -> None:
    sse = b'event: response.created\ndata: {"type":"response.created"}\n\n'
    assert is_stream({"Content-Type": ["text/event-stream; charset=utf-8"]})
    assert not is_stream({})
    assert is_stream({}, body=sse)
    assert is_stream({}, body=b": keep-alive\n\n" + sse)
    assert is_stream({}, body=sse.decode())
    assert not is_stream({}, body=b'{"id": "resp_1"}')
    assert not is_stream({"content-type": "application/json"}, body=sse)  # the header decides
    # A body that is neither: the request decides.
    assert is_stream({}, body=b"partial", request_body=b'{"stream": true}')
    assert is_stream({}, body=b"partial", request_body={"stream": True})
    assert not is_stream({}, body=b"partial", request_body={"stream": False})
    assert not is_stream({}, body=b'{"error": {}}', request_body={"stream": True})
    assert not is_stream({}, body=b"", request_body={"stream": True})


def test_a_scrubbed_stream_is_read_as_a_stream(
    stream: list[Exchange], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = [scrubbed(ex) for ex in stream]
    assert all("content-type" not in {k.lower() for k in ex.response_headers} for ex in bare)
    code, _ = checked(tmp_path, bare)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "not JSON" not in out
    payload = json.loads(out)
    assert payload["summary"]["chain_violations"] == 0
    # The chain reads the scrubbed streams: a pruned compaction item is still found.
    sent = request_of(stream[3])["input"]
    pruned = with_input(bare[3], [i for i in sent if i.get("type") != "compaction"])
    assert assessed(check_chain([*bare[:3], pruned])) == [(2, 3, "/input")]
    # Judged directly, the exchange's events are validated as a stream.
    _, judged = judge_exchange(bare[2], version=VERSION)
    assert judged.report is not None and judged.report.kind == "responses.event"


def test_a_stream_known_only_by_its_request(stream: list[Exchange]) -> None:
    """A body that opens with neither field (a stray line) and a request asking for a stream."""
    bodies = [b"retry: 1000\n\n" + ex.response_body for ex in stream]
    bare = [
        replace(scrubbed(ex), response_body=body) for ex, body in zip(stream, bodies, strict=True)
    ]
    sent = request_of(stream[3])["input"]
    pruned = with_input(bare[3], [i for i in sent if i.get("type") != "compaction"])
    assert assessed(check_chain([*bare[:3], pruned])) == [(2, 3, "/input")]
    # The same bodies from a request that did not ask for a stream: nothing to read.
    unasked = [
        replace(ex, request_body=json.dumps({**request_of(ex), "stream": False}).encode())
        for ex in [*bare[:3], pruned]
    ]
    assert check_chain(unasked) == []


# -- unknown event types: drift, not violations ----------------------------------------------------
def with_new_event(exchange: Exchange, kind: str) -> Exchange:
    def insert(events: Events) -> Events:
        at = next(i for i, (n, _) in enumerate(events) if n == "response.output_item.done")
        number = events[at][1]["sequence_number"]
        new = {"type": kind, "sequence_number": number, "output_index": 0}
        shifted = [
            (n, {**d, "sequence_number": d["sequence_number"] + 1}) if i >= at else (n, d)
            for i, (n, d) in enumerate(events)
        ]
        return [*shifted[:at], (kind, new), *shifted[at:]]

    return with_events(exchange, insert)


def test_an_unknown_event_type_is_drift_and_a_violation_under_strict(
    stream: list[Exchange], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newer = with_new_event(stream[0], "response.brand_new.delta")
    code, _ = checked(tmp_path, [newer])
    report = exchange_report(capsys)
    assert code == 0, report
    assert not report["violations"]
    (drift,) = [d for d in report["drift"] if "brand_new" in d]
    assert "(response.brand_new.delta) /type: unknown event type 'response.brand_new.delta'" in (
        drift
    )
    assert "does not list it; clients ignore event types they do not know" in drift
    assert "no schema version here knows it" in drift  # the validator's hint about versions

    code, _ = checked(tmp_path, [newer], "--strict")
    report = exchange_report(capsys)
    assert code == 1
    assert any('unknown type "response.brand_new.delta"' in v for v in report["violations"])


def test_an_unknown_item_type_in_an_event_stays_a_violation(
    stream: list[Exchange], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def retype(events: Events) -> Events:
        return [
            (n, {**d, "item": {**d["item"], "type": "brand_new_item"}})
            if n == "response.output_item.added"
            else (n, d)
            for n, d in events
        ]

    code, _ = checked(tmp_path, [with_events(stream[0], retype)])
    report = exchange_report(capsys)
    assert code == 1
    assert any("/item/type" in v and "brand_new_item" in v for v in report["violations"])


# -- branching conversations -----------------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[CompactionServer]:
    with CompactionServer(deterministic=True) as srv:
        yield srv


def record_branch(
    tmp_path: Path, server: CompactionServer, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> list[Exchange]:
    """Compact, continue the compact output, then continue the first compact output again.

    ``change`` makes the item the branch passes back from the first compaction item.
    """
    path = tmp_path / "branch.yaml"
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10)
    with use_cassette(path, record_mode="once", check_chain=False):
        first = client.responses.compact(model=MODEL, input=HISTORY)  # type: ignore[arg-type]
        returned = [item.to_dict() for item in first.output]
        client.responses.compact(
            model=MODEL, input=[*returned, {"role": "user", "content": "And 5+5?"}]
        )
        *messages, cmp = returned
        branch = [*messages, change(cmp), {"role": "user", "content": "And 7+7?"}]
        # The server refuses a changed token; the request is recorded all the same.
        with contextlib.suppress(openai.BadRequestError):
            client.responses.compact(model=MODEL, input=branch)
    return load_cassette(path).exchanges


@SDK_WARNING
def test_a_branch_is_read_against_the_answer_it_continues(
    tmp_path: Path, server: CompactionServer
) -> None:
    exchanges = record_branch(tmp_path, server, lambda cmp: cmp)
    assert [ex.status for ex in exchanges] == [200, 200, 200]
    first, second = (json.loads(ex.response_body)["output"] for ex in exchanges[:2])
    # The second compact output re-issues the first one's messages, ids and all.
    assert [i["id"] for i in first[:2]] == [i["id"] for i in second[:2]]
    assert check_chain(exchanges) == []


@SDK_WARNING
def test_a_branch_with_a_changed_token_breaks_rule_4_only(
    tmp_path: Path, server: CompactionServer
) -> None:
    def changed(cmp: dict[str, Any]) -> dict[str, Any]:
        token = str(cmp["encrypted_content"])
        return {**cmp, "encrypted_content": token[:40] + ("A" if token[40] != "A" else "B")}

    exchanges = record_branch(tmp_path, server, changed)
    assert [ex.status for ex in exchanges] == [200, 200, 400]
    (violation,) = check_chain(exchanges)
    assert (violation.rule, violation.exchange, violation.pointer) == (
        4,
        2,
        "/input/2/encrypted_content",
    )
    assert (violation.source_exchange, violation.source_pointer) == (0, "/output/2")


@SDK_WARNING
def test_a_branch_that_breaks_rule_1_is_reported_against_the_answer_it_continues(
    tmp_path: Path, server: CompactionServer
) -> None:
    exchanges = record_branch(tmp_path, server, lambda cmp: cmp)
    first, second, cmp, new = request_of(exchanges[2])["input"]
    swapped = with_input(exchanges[2], [second, first, cmp, new])
    found = check_chain([*exchanges[:2], swapped])
    assert assessed(found) == [(1, 2, "/input/0")]
    assert (found[0].source_exchange, found[0].source_pointer) == (0, "/output/1")
    assert "of the compact output of exchange 0 is passed out of order" in found[0].message


def test_a_branch_after_a_reply_worded_alike(stream: list[Exchange]) -> None:
    """Two answers with the same words: the request extending the first one continues it."""
    first = request_of(stream[0])
    (answer,) = done_items(stream[0])
    again = {**answer, "id": "msg_again"}

    def reply(item: dict[str, Any]) -> dict[str, Any]:
        return {"id": "resp_x", "object": "response", "status": "completed", "output": [item]}

    rendered = {"role": "assistant", "content": answer["content"][0]["text"]}
    second = {**first, "input": [*first["input"], rendered, {"role": "user", "content": "Why?"}]}
    branch = {**first, "input": [*first["input"], rendered, {"role": "user", "content": "Sure?"}]}
    turns = [
        (first, reply(answer), "/v1/responses"),
        (second, {**reply(again), "id": "resp_y"}, "/v1/responses"),
        (branch, None, "/v1/responses"),
    ]
    assert check_conversation(turns) == []
