"""The embedded server and the shapes the API sends today (openai SDK 3.57.0 and 3.60.0).

Compacting progress events, the streamed ``compaction_trigger`` flow, ``response.completed``
without its output, ``configuration_update`` items and the ``image`` option, the compact
request's ``safety_identifier`` (3.60.0), and the beta compact route. Driven over real HTTP on
127.0.0.1 through the openai SDK, with httpx for the raw server-sent events; only shapes the
newest bundled schema version knows are validated.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from support.today import (
    BETA,
    CONFIGURATION_UPDATE,
    MULTI_AGENT_ITEMS,
    STORY,
    THRESHOLD,
    TRIGGER_ID,
    USER,
)

from pytest_compaction import CompactionServer, newest_version, resolve_version, validate
from pytest_compaction.server._checks import declares_value
from pytest_compaction.server._faults import FaultSyntaxError, parse_fault
from pytest_compaction.server._stream import COMPACTING, MAX_COMPACTING_EVENTS

# The newest bundled version that declares neither configuration_update nor image.
OLDER = "2026-08-21_f85dbe223d40"


@pytest.fixture
def server() -> Iterator[CompactionServer]:
    with CompactionServer(deterministic=True, compacting_events=True) as srv:
        yield srv


@pytest.fixture
def client(server: CompactionServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10
    ) as sdk:
        yield sdk


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` for each event of a raw stream."""
    out = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if lines:
            assert lines[0].startswith("event: ") and lines[1].startswith("data: ")
            out.append((lines[0][7:], json.loads(lines[1][6:])))
    return out


def post(
    server: CompactionServer, path: str, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, headers=headers, timeout=10)


def assert_valid(kind: str, body: Any) -> None:
    report = validate(kind, body, version=newest_version())  # type: ignore[arg-type]
    assert report.valid, [v.message for v in report.violations]


def trigger_body(**extra: Any) -> dict[str, Any]:
    """A streamed, unstored request whose last input item asks for a compaction."""
    return {
        "model": "gpt-4.1",
        "input": [USER, {"type": "compaction_trigger", "id": TRIGGER_ID}],
        "store": False,
        "stream": True,
        **extra,
    }


def done_items(events: list[Any]) -> list[Any]:
    return [e.item for e in events if e.type == "response.output_item.done"]


# -- compacting progress events ------------------------------------------------------------------
def test_a_streamed_threshold_compaction_sends_compacting_events_before_the_item_is_done(
    client: openai.OpenAI,
) -> None:
    stream = client.responses.create(
        model="gpt-4.1", input=STORY, context_management=THRESHOLD, stream=True
    )
    events = list(stream)
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(set(numbers)) and numbers == list(range(len(events)))
    compacting = [e for e in events if e.type == COMPACTING]
    assert 1 <= len(compacting) <= MAX_COMPACTING_EVENTS
    assert {type(e).__name__ for e in compacting} == {"ResponseCompactionCompactingEvent"}
    compaction = [i for i in done_items(events) if i.type == "compaction"]
    assert len(compaction) == 1
    index = events.index(compacting[0])
    added, done = events[index - 1], events[index + len(compacting)]
    assert added.type == "response.output_item.added" and added.item.type == "compaction"
    assert done.type == "response.output_item.done" and done.item.id == compaction[0].id
    for event in compacting:
        assert (event.item_id, event.output_index) == (compaction[0].id, done.output_index)
    completed = events[-1]
    assert completed.type == "response.completed"
    assert [o.id for o in completed.response.output][-1] == compaction[0].id


def test_compacting_events_on_the_wire_carry_only_their_four_fields(
    server: CompactionServer,
) -> None:
    body = {"model": "gpt-4.1", "input": STORY, "context_management": THRESHOLD, "stream": True}
    answer = post(server, "/responses", body)
    assert answer.status_code == 200
    events = sse_events(answer.text)
    compacting = [data for name, data in events if name == COMPACTING]
    assert compacting
    for data in compacting:
        assert set(data) == {"type", "item_id", "output_index", "sequence_number"}
        assert data["type"] == COMPACTING
    numbers = [data["sequence_number"] for _, data in events]
    assert all(a < b for a, b in itertools.pairwise(numbers))
    for name, data in events:
        if name != COMPACTING:
            assert_valid("responses.event", data)


def test_compacting_events_follow_the_schema_version_unless_told() -> None:
    assert declares_value(newest_version(), "responses.event", COMPACTING)
    assert not declares_value(resolve_version("2026-08-21"), "responses.event", COMPACTING)
    body = trigger_body()

    def names(**options: Any) -> list[str]:
        with CompactionServer(deterministic=True, **options) as server:
            return [name for name, _ in sse_events(post(server, "/responses", body).text)]

    default = names()  # the newest version declares them
    assert COMPACTING in default
    assert COMPACTING not in names(schema_version="2026-08-21")
    off = names(compacting_events=False)
    assert COMPACTING not in off
    assert COMPACTING in names(compacting_events=True, schema_version="2026-08-21")
    assert [n for n in default if n != COMPACTING] == off


# -- the compaction_trigger flow -----------------------------------------------------------------
def test_a_streamed_unstored_trigger_answers_one_compaction_item_and_its_progress(
    client: openai.OpenAI, server: CompactionServer
) -> None:
    body = trigger_body()
    assert_valid("responses.request", {k: v for k, v in body.items() if k != "stream"})
    stream = client.responses.create(**body)
    events = list(stream)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    items = done_items(events)
    assert [i.type for i in items] == ["message", "compaction"]
    compaction = items[1]
    compacting = [e for e in events if e.type == COMPACTING]
    assert compacting and {e.item_id for e in compacting} == {compaction.id}
    assert {type(e).__name__ for e in compacting} == {"ResponseCompactionCompactingEvent"}
    final = events[-1].response
    assert [o.type for o in final.output].count("compaction") == 1
    assert final.output[1].id == compaction.id
    state = server.open_token(compaction.encrypted_content)
    assert [i.get("role") for i in state["items"]] == ["user", "assistant"]
    assert all(i.get("type") != "compaction_trigger" for i in state["items"])
    # store: false keeps nothing to continue from
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4.1", input="next", previous_response_id=final.id)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "previous_response_not_found"


def test_the_plain_trigger_answer_is_unchanged(client: openai.OpenAI) -> None:
    body = {k: v for k, v in trigger_body().items() if k != "stream"}
    response = client.responses.create(**body)
    assert [o.type for o in response.output] == ["message", "compaction"]
    assert_valid("responses.response", response.model_dump(mode="json", exclude_unset=True))


# -- response.completed without output -----------------------------------------------------------
@pytest.mark.parametrize("form", ["empty", "null", "missing"])
def test_a_completed_event_without_output_as_clients_see_it(
    client: openai.OpenAI, server: CompactionServer, form: str
) -> None:
    fault = {"x-compaction-fault": f"completed-output:{form}"}
    answer = post(server, "/responses", trigger_body(), **fault)
    events = sse_events(answer.text)
    name, completed = events[-1]
    assert name == "response.completed"
    if form == "missing":
        assert "output" not in completed["response"]
    else:
        assert completed["response"]["output"] == ([] if form == "empty" else None)
    done = [d["item"] for n, d in events if n == "response.output_item.done"]
    assert [i["type"] for i in done] == ["message", "compaction"]
    assert completed["response"]["usage"]["total_tokens"] > 0

    # the SDK's raw events carry what was sent
    raw_final = list(client.responses.create(**trigger_body(), extra_headers=fault))[-1]
    assert raw_final.type == "response.completed"
    assert getattr(raw_final.response, "output", None) == ([] if form == "empty" else None)
    assert ("output" in raw_final.response.model_fields_set) is (form != "missing")

    # the stream helper rebuilds a null or missing output from the done events, not an empty one
    body = {k: v for k, v in trigger_body().items() if k != "stream"}
    with client.responses.stream(**body, extra_headers=fault) as stream:
        seen = list(stream)
        final = stream.get_final_response()
    items = done_items(seen)
    if form == "empty":
        assert final.output == []
    else:
        assert [(o.type, o.id) for o in final.output] == [(i.type, i.id) for i in items]
        assert final.output_text == "Echo: summarize the plan"


def test_the_completed_output_fault_is_set_per_server_and_spares_plain_answers(
    client: openai.OpenAI, server: CompactionServer
) -> None:
    server.set_fault("completed-output:empty")
    try:
        streamed = list(client.responses.create(model="gpt-4.1", input="hello", stream=True))
        plain = client.responses.create(model="gpt-4.1", input="hello")
    finally:
        server.set_fault(None)
    assert streamed[-1].response.output == []
    assert_valid("responses.event", streamed[-1].model_dump(mode="json", exclude_unset=True))
    assert plain.output_text == "Echo: hello"
    assert server.requests[-1].fault == "completed-output:empty"
    again = list(client.responses.create(model="gpt-4.1", input="hello", stream=True))
    assert [o.type for o in again[-1].response.output] == ["message"]


@pytest.mark.parametrize("spec", ["completed-output", "completed-output:none", "completed-output:"])
def test_a_completed_output_fault_names_one_of_its_forms(spec: str) -> None:
    with pytest.raises(FaultSyntaxError):
        parse_fault(spec)
    assert parse_fault("completed-output:null;times=1").form == "null"


# -- configuration_update and image ----------------------------------------------------------------
@pytest.fixture(params=[OLDER, "newest"])
def any_version_client(request: pytest.FixtureRequest) -> Iterator[openai.OpenAI]:
    """A client of a server checking against a version without the newer shapes, or the newest."""
    version = None if request.param == "newest" else request.param
    with (
        CompactionServer(deterministic=True, schema_version=version) as srv,
        openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0, timeout=10) as sdk,
    ):
        yield sdk


def test_compact_accepts_a_configuration_update_and_echoes_the_image_policy(
    any_version_client: openai.OpenAI, server: CompactionServer, client: openai.OpenAI
) -> None:
    compacted = any_version_client.responses.compact(
        model="gpt-4.1",
        input=[USER, CONFIGURATION_UPDATE],  # type: ignore[list-item]
        image={"context_compression": "disabled"},
    )
    assert type(compacted).__name__ == "CompactedResponse"
    assert compacted.image is not None and compacted.image.context_compression == "disabled"
    assert [o.type for o in compacted.output] == ["message", "compaction"]
    plain = any_version_client.responses.compact(model="gpt-4.1", input="no image option")
    assert "image" not in plain.model_fields_set
    # the update is folded into the token verbatim
    mine = client.responses.compact(model="gpt-4.1", input=[USER, CONFIGURATION_UPDATE])  # type: ignore[list-item]
    sealed = server.open_token(mine.output[-1].encrypted_content)  # type: ignore[union-attr]
    assert sealed["items"][-1] == CONFIGURATION_UPDATE


def test_create_accepts_a_configuration_update_and_the_image_option(
    any_version_client: openai.OpenAI,
) -> None:
    client = any_version_client
    response = client.responses.create(
        model="gpt-4.1",
        input=[CONFIGURATION_UPDATE, USER],  # type: ignore[list-item]
        image={"context_compression": "auto"},
    )
    assert response.output_text == "Echo: summarize the plan"
    assert response.image is not None and response.image.context_compression == "enabled"
    streamed = list(
        client.responses.create(
            model="gpt-4.1",
            input=[USER, CONFIGURATION_UPDATE, {"type": "compaction_trigger"}],  # type: ignore[list-item]
            image={"context_compression": "enabled"},
            stream=True,
        )
    )
    final = streamed[-1].response
    assert final.image is not None and final.image.context_compression == "enabled"
    assert [o.type for o in final.output] == ["message", "compaction"]


@pytest.mark.parametrize(
    ("path", "body", "param", "code"),
    [
        (
            "/responses",
            {"image": {"context_compression": "always"}},
            "image.context_compression",
            "invalid_value",
        ),
        ("/responses/compact", {"image": "auto"}, "image", "invalid_type"),
        ("/responses/compact", {"image": {"detail": "low"}}, "image.detail", "unknown_parameter"),
        (
            "/responses",
            {"input": [USER, {"type": "configuration_update"}]},
            "input[1]",
            "invalid_value",
        ),
        (
            "/responses/compact",
            {"input": [{"type": "configuration_update", "reasoning": {"effort": "huge"}}]},
            "input[0].reasoning.effort",
            "invalid_value",
        ),
        (
            "/responses",
            {"input": [{"type": "configuration_update", "text": {}}]},
            "input[0].text.format",
            "missing_required_parameter",
        ),
    ],
)
def test_malformed_newer_shapes_are_refused_by_the_servers_own_rules(
    path: str, body: dict[str, Any], param: str, code: str
) -> None:
    with CompactionServer(deterministic=True, schema_version=OLDER) as older:
        answer = post(older, path, {"model": "gpt-4.1", "input": "x", **body})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert_valid("error", answer.json())


# -- safety_identifier (openai SDK 3.60.0) ---------------------------------------------------------
SAFETY_IDENTIFIER = "user-7f3a"
# The version before the one that declares safety_identifier (the openai 3.60.0 overlay).
BEFORE_SAFETY_IDENTIFIER = "2026-11-19_openai-3.57.0"


def safety_compact(sdk: openai.OpenAI, route: str) -> Any:
    """A compact call through the SDK's own ``safety_identifier`` argument, raw."""
    if route == "beta":
        return sdk.beta.responses.with_raw_response.compact(
            model="gpt-6.2-astra-healthcare",
            input="summarize the plan",
            safety_identifier=SAFETY_IDENTIFIER,
            betas=BETA,  # type: ignore[arg-type]
        )
    return sdk.responses.with_raw_response.compact(
        model="gpt-6.2-sol-healthcare",
        input="summarize the plan",
        safety_identifier=SAFETY_IDENTIFIER,
    )


@pytest.mark.parametrize("route", ["plain", "beta"])
def test_a_compact_with_a_safety_identifier_is_taken_by_the_newest_version(
    route: str, server: CompactionServer, client: openai.OpenAI
) -> None:
    raw = safety_compact(client, route)
    assert raw.status_code == 200, raw.text
    kind = "beta.request" if route == "beta" else "request"
    sent = server.requests[-1].json()
    assert sent["safety_identifier"] == SAFETY_IDENTIFIER
    assert validate(kind, sent, version=newest_version(), strict=True).valid  # type: ignore[arg-type]
    body = json.loads(raw.text)
    # Not echoed: the SDK's CompactedResponse.safety_identifier is "A stable identifier that was
    # used for safety monitoring and abuse detection", not a statement that the API returns
    # what the request sent.
    assert "safety_identifier" not in body and "service_tier" not in body
    kind = "beta.response" if route == "beta" else "response"
    assert validate(kind, body, version=newest_version(), strict=True).valid  # type: ignore[arg-type]


@pytest.mark.parametrize("route", ["plain", "beta"])
def test_a_compact_with_a_safety_identifier_is_refused_by_the_version_before(route: str) -> None:
    with (
        CompactionServer(deterministic=True, schema_version=BEFORE_SAFETY_IDENTIFIER) as srv,
        openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0, timeout=10) as sdk,
        pytest.raises(openai.BadRequestError) as refused,
    ):
        safety_compact(sdk, route)
    assert refused.value.status_code == 400
    error = refused.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"], error["message"]) == (
        "safety_identifier",
        "unknown_parameter",
        "Unknown parameter: 'safety_identifier'.",
    )


# -- the beta compact route ------------------------------------------------------------------------
def test_a_beta_compact_passes_multi_agent_items_through(
    client: openai.OpenAI, server: CompactionServer
) -> None:
    items = [USER, *MULTI_AGENT_ITEMS]
    raw = client.beta.responses.with_raw_response.compact(
        model="gpt-4.1",
        input=items,  # type: ignore[arg-type]
        betas=BETA,  # type: ignore[arg-type]
    )
    compacted = raw.parse()
    assert type(compacted).__name__ == "BetaCompactedResponse"
    assert [o.type for o in compacted.output] == ["message", "compaction"]
    assert compacted.output[0].content[0].text == "summarize the plan"  # type: ignore[union-attr]
    sealed = server.open_token(compacted.output[-1].encrypted_content)  # type: ignore[union-attr]
    assert [i["type"] for i in sealed["items"]] == [
        "message",
        "multi_agent_call",
        "multi_agent_call_output",
        "agent_message",
    ]
    assert sealed["items"][1:] == MULTI_AGENT_ITEMS
    request = server.requests[-1]
    assert request.path == "/v1/responses/compact?beta=true"
    assert request.headers["openai-beta"] == BETA[0]
    assert_valid("beta.request", request.json())
    assert_valid("beta.response", json.loads(raw.text))


def test_the_beta_route_is_chosen_by_header_as_by_query(server: CompactionServer) -> None:
    body = {"model": "gpt-4.1", "input": [USER, *MULTI_AGENT_ITEMS]}
    by_header = post(server, "/responses/compact", body, **{"openai-beta": BETA[0]})
    assert by_header.status_code == 200, by_header.text
    assert by_header.json()["object"] == "response.compaction"
    plain = post(server, "/responses/compact", body)
    assert plain.status_code == 400
    assert plain.json()["error"]["param"] == "input[1].type"


def test_a_beta_compact_opens_in_the_next_beta_compact_and_echoes_image(
    client: openai.OpenAI,
) -> None:
    first = client.beta.responses.with_raw_response.compact(
        model="gpt-4.1",
        input=[USER, *MULTI_AGENT_ITEMS],  # type: ignore[list-item]
        betas=BETA,  # type: ignore[arg-type]
    )
    returned = json.loads(first.text)["output"]
    follow = client.beta.responses.compact(
        model="gpt-4.1",
        input=[*returned, USER],
        image={"context_compression": "disabled"},
        betas=BETA,  # type: ignore[arg-type]
    )
    assert follow.image is not None and follow.image.context_compression == "disabled"
    assert [o.type for o in follow.output] == ["message", "message", "compaction"]


@pytest.mark.parametrize(("flag", "expected"), [("on", True), ("off", False), ("auto", None)])
def test_the_serve_command_takes_the_compacting_events_choice(
    flag: str, expected: bool | None
) -> None:
    import argparse

    from pytest_compaction.cli._serve import _COMPACTING_EVENTS, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).compacting_events == "auto"
    args = parser.parse_args(["--compacting-events", flag, "--fault", "completed-output:missing"])
    assert _COMPACTING_EVENTS[args.compacting_events] is expected
    server = CompactionServer(fault=args.fault, compacting_events=expected)
    assert server.dialect == "openai"
