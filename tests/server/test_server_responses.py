"""``POST /v1/responses`` on the embedded server: the stand-in reply and server-side compaction.

Driven over real HTTP on 127.0.0.1 through the openai SDK (plain and streamed) and httpx for
the raw server-sent events; every answer and every event is validated against the schemas
derived for ``POST /responses``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from pytest_compaction import CompactionServer, available_versions, newest_version, validate
from pytest_compaction.server._responses import REPLY_LIMIT, REPLY_PREFIX

THRESHOLD = [{"type": "compaction", "compact_threshold": 1000}]
SENTENCE = "the fox walked through the quiet forest and looked at every tree. "
STORY = SENTENCE * 30  # about 500 estimated tokens
# about 190 tokens, and the reply as many: two turns stay under 1000, the third crosses it
TURN = SENTENCE * 11


def tokens(value: object) -> int:
    """The server's documented estimate: a quarter of the canonical JSON's UTF-8 bytes."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return math.ceil(len(data.encode()) / 4)


@pytest.fixture
def server() -> Iterator[CompactionServer]:
    with CompactionServer(deterministic=True) as srv:
        yield srv


@pytest.fixture
def client(server: CompactionServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10
    ) as sdk:
        yield sdk


def raw(response: Any) -> dict[str, Any]:
    """What the server sent, as the SDK model holds it (fields it did not send left out)."""
    data: dict[str, Any] = response.model_dump(mode="json", exclude_unset=True)
    return data


def assert_valid(kind: str, body: Any) -> None:
    """Valid and nothing undocumented under the newest spec; valid under every version."""
    report = validate(kind, body, version=newest_version(), strict=True)  # type: ignore[arg-type]
    assert report.valid, [v.message for v in report.violations]
    for version in available_versions():
        report = validate(kind, body, version=version)  # type: ignore[arg-type]
        assert report.valid, (version, [v.message for v in report.violations])


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if not lines:
            continue
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: ")
        out.append((lines[0][7:], json.loads(lines[1][6:])))
    return out


def post(server: CompactionServer, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}/responses", json=body, headers=headers, timeout=10)


# -- the reply and the compaction item ---------------------------------------------------------
def test_a_reply_below_the_threshold_is_one_assistant_message(
    client: openai.OpenAI, server: CompactionServer
) -> None:
    response = client.responses.create(
        model="gpt-4.1", input="Hello!", context_management=THRESHOLD
    )
    body = raw(response)
    assert_valid("responses.response", body)
    assert body["object"] == "response" and body["status"] == "completed"
    [message] = body["output"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["status"] == "completed"
    assert message["content"] == [
        {"type": "output_text", "text": "Echo: Hello!", "annotations": [], "logprobs": []}
    ]
    assert response.output_text == "Echo: Hello!"
    usage = body["usage"]
    counted = tokens(
        {"instructions": None, "items": [{"type": "message", "role": "user", "content": "Hello!"}]}
    )
    assert usage["input_tokens"] == counted
    assert usage["output_tokens"] == tokens([message])
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert server.requests[-1].path == "/v1/responses"


def test_compaction_follows_the_message_once_the_conversation_crosses_the_threshold(
    client: openai.OpenAI, server: CompactionServer
) -> None:
    """As in the recorded stateless conversation: two turns below, the third compacts."""
    history: list[dict[str, Any]] = []
    outputs = []
    for turn in range(3):
        history.append({"role": "user", "content": f"Turn {turn}: {TURN}"})
        response = client.responses.create(
            model="gpt-4.1", input=history, context_management=THRESHOLD
        )
        body = raw(response)
        assert_valid("responses.response", body)
        outputs.append([item["type"] for item in body["output"]])
        history.append({"role": "assistant", "content": response.output_text})
        usage = body["usage"]
        reply = tokens([body["output"][0]])
        crossed = usage["input_tokens"] + reply >= 1000
        assert crossed == (turn == 2), (turn, usage)
    assert outputs == [["message"], ["message"], ["message", "compaction"]]
    compaction = body["output"][1]
    assert set(compaction) == {"id", "type", "encrypted_content"}
    assert compaction["id"].startswith("cmp_")
    sealed = server.open_token(compaction["encrypted_content"])
    # the whole conversation, the reply that came with the compaction included
    assert [i.get("role") for i in sealed["items"]] == ["user", "assistant"] * 3
    assert sealed["items"][-1]["content"][0]["text"] == response.output_text
    assert sealed["model"] == "gpt-4.1"


def test_no_context_management_means_no_compaction(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4.1", input=STORY * 4)
    assert [item.type for item in response.output] == ["message"]
    long = client.responses.create(
        model="gpt-4.1", input=STORY * 4, context_management=[{"type": "compaction"}]
    )
    # a null threshold is a share of the server's context window, far above this
    assert [item.type for item in long.output] == ["message"]


def test_the_reply_repeats_at_most_the_documented_length(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-4.1",
        input=[
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "input_text", "text": "x" * 5000}]},
        ],
    )
    assert response.output_text == REPLY_PREFIX + "x" * REPLY_LIMIT


# -- chaining -----------------------------------------------------------------------------------
def compacted(client: openai.OpenAI) -> tuple[list[dict[str, Any]], Any]:
    """A conversation whose answer carries a compaction item, and that answer."""
    history: list[dict[str, Any]] = [{"role": "user", "content": STORY * 3}]
    response = client.responses.create(model="gpt-4.1", input=history, context_management=THRESHOLD)
    assert [item.type for item in response.output] == ["message", "compaction"]
    return history, response


def test_a_returned_compaction_item_stands_for_everything_before_it(
    client: openai.OpenAI, server: CompactionServer
) -> None:
    history, response = compacted(client)
    output = [item.model_dump(exclude_none=True) for item in response.output]
    new = {"role": "user", "content": "What is 2+2?"}
    # stateless: the whole history, the output as returned, then the new turn
    full = client.responses.create(
        model="gpt-4.1", input=[*history, *output, new], context_management=THRESHOLD
    )
    # allowed: drop what came before the most recent compaction item
    pruned = client.responses.create(
        model="gpt-4.1", input=[output[1], new], context_management=THRESHOLD
    )
    for answer in (full, pruned):
        assert_valid("responses.response", raw(answer))
        assert answer.output_text == "Echo: What is 2+2?"
    assert full.usage is not None and pruned.usage is not None
    assert full.usage.input_tokens == pruned.usage.input_tokens
    # the compaction item shows as the user turns it seals: the folded reply costs nothing
    shown = [history[0], new]
    assert pruned.usage.input_tokens == tokens({"instructions": None, "items": shown})


def test_a_changed_encrypted_content_is_refused_like_the_live_api(client: openai.OpenAI) -> None:
    _, response = compacted(client)
    item = response.output[1].model_dump(exclude_none=True)
    token = item["encrypted_content"]
    item["encrypted_content"] = token[:-8] + ("A" if token[-8] != "A" else "B") + token[-7:]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4.1", input=[item, {"role": "user", "content": "hi"}])
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "invalid_encrypted_content"
    assert error["param"] == "input[0].encrypted_content"
    assert f"for item {item['id']}" in error["message"]
    assert_valid("error", {"error": error})


def test_previous_response_id_continues_from_the_stored_window(
    client: openai.OpenAI, server: CompactionServer
) -> None:
    first = client.responses.create(model="gpt-4.1", input="Remember 7.")
    second = client.responses.create(
        model="gpt-4.1", input="And now?", previous_response_id=first.id
    )
    body = raw(second)
    assert_valid("responses.response", body)
    assert body["previous_response_id"] == first.id
    held = [
        {"type": "message", "role": "user", "content": "Remember 7."},
        first.output[0].model_dump(mode="json", exclude_unset=True),
    ]
    assert body["usage"]["input_tokens_details"]["cached_tokens"] == tokens({"items": held})
    # after a compaction the window is the compaction item alone
    _, response = compacted(client)
    third = client.responses.create(
        model="gpt-4.1", input="Short.", previous_response_id=response.id
    )
    sealed_users = [{"role": "user", "content": STORY * 3}]
    assert third.usage is not None
    assert third.usage.input_tokens_details.cached_tokens == tokens({"items": sealed_users})
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4.1", input="x", previous_response_id="resp_unknown")
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "previous_response_not_found"
    unstored = client.responses.create(model="gpt-4.1", input="x", store=False)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4.1", input="y", previous_response_id=unstored.id)


def test_compaction_items_of_either_endpoint_open_in_the_other(
    client: openai.OpenAI, server: CompactionServer
) -> None:
    _, response = compacted(client)
    output = [item.model_dump(exclude_none=True) for item in response.output]
    standalone = client.responses.compact(
        model="gpt-4.1", input=[*output, {"role": "user", "content": "next"}]
    )
    assert [item.type for item in standalone.output][-1] == "compaction"
    again = client.responses.create(
        model="gpt-4.1",
        # as sent: the SDK types re-issued user turns (input_text parts) as output messages
        input=[item.model_dump(mode="json", warnings=False) for item in standalone.output],
        context_management=THRESHOLD,
    )
    assert again.output_text == "Echo: next"
    # stateful across endpoints: compact what /responses holds, then continue from the compaction
    plain = client.responses.create(model="gpt-4.1", input="Hello there")
    held = client.responses.compact(model="gpt-4.1", input=[], previous_response_id=plain.id)
    sealed = held.output[-1].model_dump(mode="json", warnings=False)["encrypted_content"]
    client_state = client.responses.create(
        model="gpt-4.1", input="And then?", previous_response_id=held.id
    )
    assert client_state.output_text == "Echo: And then?"
    assert client_state.usage is not None
    assert client_state.usage.input_tokens_details.cached_tokens > 0
    # the compact endpoint sealed the /responses turn and its reply
    items = server.open_token(sealed)["items"]
    assert [(i["role"], i["content"][0]["text"]) for i in items][-1] == (
        "assistant",
        "Echo: Hello there",
    )


def test_a_final_compaction_trigger_compacts_whatever_the_count(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-4.1",
        input=[{"role": "user", "content": "tiny"}, {"type": "compaction_trigger"}],  # type: ignore[list-item]
    )
    assert [item.type for item in response.output] == ["message", "compaction"]
    assert_valid("responses.response", raw(response))
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="gpt-4.1",
            input=[{"type": "compaction_trigger"}, {"role": "user", "content": "x"}],  # type: ignore[list-item]
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "input[0]"
    # a spec that does not declare the item refuses it, as the request schema says
    with CompactionServer(schema_version="2026-05-13") as older:
        refused = post(older, {"model": "m", "input": [{"type": "compaction_trigger"}]})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "input[0].type"


# -- request checks -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "m", "context_managment": []}, "context_managment", "unknown_parameter"),
        (
            {"model": "m", "context_management": [{"type": "compaction", "compact_threshold": 10}]},
            "context_management[0].compact_threshold",
            "invalid_value",
        ),
        (
            {"model": "m", "context_management": [{"type": "truncation"}]},
            "context_management[0].type",
            "invalid_value",
        ),
        ({"model": "m", "stream": "yes"}, "stream", "invalid_type"),
        ({"input": "hi"}, "model", "missing_required_parameter"),
        (
            {"model": "m", "input": [{"type": "compaction", "id": "cmp_1"}]},
            "input[0].encrypted_content",
            "missing_required_parameter",
        ),
    ],
)
def test_bad_requests_are_refused_like_the_compaction_endpoint_refuses(
    server: CompactionServer, body: dict[str, Any], param: str, code: str
) -> None:
    answer = post(server, body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert_valid("error", answer.json())


# -- streaming ---------------------------------------------------------------------------------
MESSAGE_EVENTS = [
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


def collapse(types: list[str]) -> list[str]:
    """Runs of deltas as one entry."""
    out: list[str] = []
    for kind in types:
        if not (out and kind == out[-1] == "response.output_text.delta"):
            out.append(kind)
    return out


def test_the_sdk_iterates_the_stream_event_by_event_in_order(
    client: openai.OpenAI, server: CompactionServer
) -> None:
    text = STORY * 3
    stream = client.responses.create(
        model="gpt-4.1", input=text, context_management=THRESHOLD, stream=True
    )
    events = list(stream)
    types = [event.type for event in events]
    assert collapse(types) == [
        "response.created",
        "response.in_progress",
        *MESSAGE_EVENTS,
        "response.output_item.added",
        *["response.compaction.compacting"] * types.count("response.compaction.compacting"),
        "response.output_item.done",
        "response.completed",
    ]
    # the newest version declares the progress events, so the server sends them
    assert types.count("response.compaction.compacting") >= 1
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 50
    reply = "".join(deltas)
    assert reply == REPLY_PREFIX + text[:REPLY_LIMIT]
    completed = events[-1]
    assert completed.type == "response.completed"
    final = completed.response
    assert final.output_text == reply and final.status == "completed"
    assert events[0].type == "response.created"
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    # the stream's answer is the plain answer, re-encrypted
    plain = client.responses.create(model="gpt-4.1", input=text, context_management=THRESHOLD)
    assert plain.output_text == reply
    assert final.usage == plain.usage


def test_the_compaction_item_is_reencrypted_for_each_event_that_carries_it(
    client: openai.OpenAI, server: CompactionServer
) -> None:
    stream = client.responses.create(
        model="gpt-4.1", input=STORY * 3, context_management=THRESHOLD, stream=True
    )
    events = list(stream)
    carried = [
        e.item
        for e in events
        if e.type in ("response.output_item.added", "response.output_item.done")
        and e.item.type == "compaction"
    ]
    completed = events[-1]
    assert completed.type == "response.completed"
    carried.append(completed.response.output[1])
    tokens_seen = [item.encrypted_content for item in carried]  # type: ignore[union-attr]
    assert len(tokens_seen) == 3 and len(set(tokens_seen)) == 3
    assert len({item.id for item in carried}) == 1
    states = [server.open_token(token) for token in tokens_seen]
    assert states[0] == states[1] == states[2]
    # any of them chains
    for token in tokens_seen:
        item = {"type": "compaction", "id": carried[0].id, "encrypted_content": token}
        follow = client.responses.create(
            model="gpt-4.1",
            input=[item, {"role": "user", "content": "ok"}],  # type: ignore[list-item]
        )
        assert follow.output_text == "Echo: ok"


def test_every_raw_event_validates_and_the_stream_repeats_byte_for_byte(
    server: CompactionServer,
) -> None:
    body = {"model": "gpt-4.1", "input": STORY * 3, "context_management": THRESHOLD, "stream": True}
    first = post(server, body)
    assert first.status_code == 200
    assert first.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert first.headers["transfer-encoding"] == "chunked"
    events = sse_events(first.text)
    names = {name for name, _ in events}
    assert {"response.created", "response.output_text.delta", "response.completed"} <= names
    for name, data in events:
        assert data["type"] == name
        if name != "response.compaction.compacting":
            assert_valid("responses.event", data)
            continue
        # newer than the spec files: the newest version knows it, 2026-08-21 names the first
        # version that does
        assert validate("responses.event", data, strict=True).valid
        (unknown,) = validate("responses.event", data, version="2026-08-21").violations
        assert unknown.message.endswith(
            "; this traffic is newer than the contract: schema version 2026-11-19_openai-3.57.0 "
            "knows it"
        )
    assert "response.compaction.compacting" in names
    assert_valid("responses.response", events[-1][1]["response"])
    with CompactionServer(deterministic=True) as twin:
        again = post(twin, body)
    assert again.content == first.content


def test_streams_by_dialect_prefix_and_a_plain_answer_validates(server: CompactionServer) -> None:
    for dialect, model in (("azure", "gpt-4.1"), ("litellm", "openai/gpt-4.1")):
        with CompactionServer(dialect=dialect, deterministic=True) as gateway:
            assert gateway.base_url != server.base_url
            body = {"model": model, "input": STORY * 3, "context_management": THRESHOLD}
            plain = post(gateway, body, authorization="Bearer sk-test")
            assert plain.status_code == 200, plain.text
            assert [o["type"] for o in plain.json()["output"]] == ["message", "compaction"]
            assert_valid("responses.response", plain.json())
            streamed = post(gateway, {**body, "stream": True}, authorization="Bearer sk-test")
            events = sse_events(streamed.text)
            ids = {d["response"]["id"] for _, d in events if "response" in d}
            assert len(ids) == 1  # the gateway dresses every snapshot alike
            assert events[-1][0] == "response.completed"


def test_a_truncated_stream_ends_without_response_completed(
    client: openai.OpenAI, server: CompactionServer
) -> None:
    seen: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for event in client.responses.create(
            model="gpt-4.1",
            input="one two three four five six",
            stream=True,
            extra_headers={"x-compaction-fault": "truncated"},
        ):
            seen.append(event.type)
    assert seen[:2] == ["response.created", "response.in_progress"]
    assert "response.completed" not in seen
    assert server.requests[-1].fault == "truncated"


def test_a_malformed_event_line_is_sent_as_asked(server: CompactionServer) -> None:
    body = {"model": "gpt-4.1", "input": "one two three four five six", "stream": True}
    answer = post(server, body, **{"x-compaction-fault": "malformed-json"})
    blocks = [b for b in answer.text.split("\n\n") if b]
    broken = []
    for block in blocks:
        data = block.splitlines()[1][6:]
        try:
            json.loads(data)
        except ValueError:
            broken.append(block)
    assert len(broken) == 1
    assert blocks[-1].startswith("event: response.completed")
