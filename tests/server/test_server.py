"""The compaction server over real HTTP on 127.0.0.1: openai SDK (sync, async) and httpx."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from pytest_compaction import CompactionServer
from pytest_compaction.server import ServerError

CONVERSATION: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
    {"role": "assistant", "content": "3 + 3 = 6."},
]


@pytest.fixture
def server() -> Iterator[CompactionServer]:
    with CompactionServer() as srv:
        yield srv


@pytest.fixture
def http(server: CompactionServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        yield client


def sdk(server: CompactionServer, **options: Any) -> openai.OpenAI:
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", 5)
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", **options)


def canonical_tokens(value: object) -> int:
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return math.ceil(len(data) / 4)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


# -- success shape -----------------------------------------------------------------------------


def assert_compaction_shape(body: dict[str, Any], user_texts: list[str]) -> None:
    assert body["object"] == "response.compaction"
    assert body["id"].startswith("resp_")
    assert isinstance(body["created_at"], int)
    *messages, compaction = body["output"]
    assert [m["content"] for m in messages] == [
        [{"type": "input_text", "text": text}] for text in user_texts
    ]
    for message in messages:
        assert message["id"].startswith("msg_")
        assert (message["type"], message["role"], message["status"]) == (
            "message",
            "user",
            "completed",
        )
    assert set(compaction) == {"id", "type", "encrypted_content"}
    assert compaction["type"] == "compaction"
    assert compaction["id"].startswith("cmp_")
    usage = body["usage"]
    assert usage["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["output_tokens"] == canonical_tokens(body["output"])


def test_sdk_sync_compact_keeps_user_turns_and_folds_the_rest(server: CompactionServer) -> None:
    client = sdk(server)
    result = client.responses.compact(
        model="gpt-4.1", input=CONVERSATION, instructions="Give short answers."
    )
    body = result.model_dump(mode="json", exclude_unset=True, warnings=False)
    assert_compaction_shape(body, ["What is 2+2?", "And 3+3?"])
    state = server.open_token(body["output"][-1]["encrypted_content"])
    assert state["instructions"] == ["Give short answers."]
    assert state["model"] == "gpt-4.1"
    folded = [i for i in state["items"] if i.get("role") == "assistant"]
    assert [i["content"] for i in folded] == ["2 + 2 = 4.", "3 + 3 = 6."]
    # The estimate is the documented one, over what the model would read.
    counted = {"instructions": "Give short answers.", "items": state["items"]}
    assert body["usage"]["input_tokens"] == canonical_tokens(counted)


def test_sdk_async_compact(server: CompactionServer) -> None:
    async def run() -> dict[str, Any]:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=5
        ) as client:
            result = await client.responses.compact(model="gpt-4.1", input=CONVERSATION)
            return result.model_dump(mode="json", exclude_unset=True, warnings=False)

    assert_compaction_shape(asyncio.run(run()), ["What is 2+2?", "And 3+3?"])


def test_string_input_is_one_user_message(http: httpx.Client) -> None:
    response = http.post("/responses/compact", json={"model": "gpt-4.1", "input": "Hello!"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")
    assert_compaction_shape(response.json(), ["Hello!"])


def test_tool_calls_reasoning_and_system_turns_are_folded(
    server: CompactionServer, http: httpx.Client
) -> None:
    items: list[dict[str, Any]] = [
        {"role": "system", "content": "Be terse."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"type": "function_call", "call_id": "call_1", "name": "add", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "4"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"role": "developer", "content": "Use tools."},
    ]
    response = http.post("/responses/compact", json={"model": "gpt-4.1", "input": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_compaction_shape(body, ["Hi"])
    state = server.open_token(body["output"][-1]["encrypted_content"])
    kinds = [(i.get("type"), i.get("role")) for i in state["items"]]
    assert kinds == [
        (None, "system"),
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
        ("reasoning", None),
        (None, "developer"),
    ]


def test_every_compact_route_answers(server: CompactionServer) -> None:
    routes = [
        "/v1/responses/compact",
        "/openai/v1/responses/compact",
        "/responses/compact",
        "/api/llm/responses/compact",
        "/v1/responses/compact?beta=true",
    ]
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for route in routes:
            response = client.post(route, json={"model": "gpt-4.1", "input": "x"})
            assert response.status_code == 200, (route, response.text)
            assert response.json()["object"] == "response.compaction"


def test_chunked_request_body_is_read(http: httpx.Client) -> None:
    data = json.dumps({"model": "gpt-4.1", "input": "chunked"}).encode()
    chunks = iter([data[:10], data[10:]])
    response = http.post(
        "/responses/compact", content=chunks, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["output"][0]["content"][0]["text"] == "chunked"


def test_concurrent_requests_all_succeed(server: CompactionServer) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=5) as client:
            for i in range(5):
                r = client.post("/responses/compact", json={"model": "m", "input": f"{n}-{i}"})
                with lock:
                    results.append(r.status_code)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [200] * 30
    assert len(server.requests) == 30


# -- tokens carry state ------------------------------------------------------------------------


def test_compaction_item_in_input_is_unpacked(server: CompactionServer) -> None:
    client = sdk(server)
    first = client.responses.compact(model="gpt-4.1", input=CONVERSATION)
    # The documented pattern: the previous output, then the turns since.
    next_input = [
        item.model_dump(mode="json", exclude_unset=True, warnings=False) for item in first.output
    ]
    next_input += [
        {"role": "user", "content": "And 4+4?"},
        {"role": "assistant", "content": "4 + 4 = 8."},
    ]
    second = client.responses.compact(model="gpt-4.1", input=next_input)
    body = second.model_dump(mode="json", exclude_unset=True, warnings=False)
    assert_compaction_shape(body, ["What is 2+2?", "And 3+3?", "And 4+4?"])
    # Re-issued turns keep the ids they were given.
    assert [m["id"] for m in body["output"][:2]] == [m.id for m in first.output[:2]]  # type: ignore[union-attr]
    state = server.open_token(body["output"][-1]["encrypted_content"])
    texts = [
        i["content"] if isinstance(i["content"], str) else i["content"][0]["text"]
        for i in state["items"]
    ]
    # The whole conversation, in order, each turn once.
    assert texts == [
        "What is 2+2?",
        "2 + 2 = 4.",
        "And 3+3?",
        "3 + 3 = 6.",
        "And 4+4?",
        "4 + 4 = 8.",
    ]


def test_only_the_compaction_item_still_carries_earlier_turns(
    server: CompactionServer, http: httpx.Client
) -> None:
    first = http.post("/responses/compact", json={"model": "m", "input": CONVERSATION}).json()
    compaction = first["output"][-1]
    second = http.post(
        "/responses/compact",
        json={"model": "m", "input": [compaction, {"role": "user", "content": "And 4+4?"}]},
    ).json()
    assert_compaction_shape(second, ["And 4+4?"])
    state = server.open_token(second["output"][-1]["encrypted_content"])
    assert len(state["items"]) == 5
    assert state["items"][1]["content"] == "2 + 2 = 4."


def test_tampered_token_is_rejected_naming_the_item(server: CompactionServer) -> None:
    client = sdk(server)
    first = client.responses.compact(model="gpt-4.1", input=CONVERSATION)
    compaction = first.output[-1].model_dump(mode="json", exclude_unset=True, warnings=False)
    token = compaction["encrypted_content"]
    middle = len(token) // 2
    compaction["encrypted_content"] = (
        token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.compact(
            model="gpt-4.1",
            input=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, compaction],
        )
    error = caught.value
    assert error.status_code == 400
    assert error.code == "invalid_encrypted_content"
    assert error.param == "input[2].encrypted_content"
    assert compaction["id"] in error.message


def test_foreign_and_garbage_tokens_are_rejected(server: CompactionServer) -> None:
    with CompactionServer() as other, httpx.Client(timeout=5) as client:
        foreign = client.post(
            f"{other.base_url}/responses/compact", json={"model": "m", "input": "x"}
        ).json()["output"][-1]
        for item in (foreign, {"type": "compaction", "encrypted_content": "not a token!"}):
            response = client.post(
                f"{server.base_url}/responses/compact", json={"model": "m", "input": [item]}
            )
            assert response.status_code == 400
            error = error_of(response)
            assert error["code"] == "invalid_encrypted_content"
            assert error["param"] == "input[0].encrypted_content"
            assert error["type"] == "invalid_request_error"
            assert "could not be verified" in error["message"]


def test_servers_sharing_a_key_accept_each_others_tokens() -> None:
    key = b"k" * 32
    with CompactionServer(key=key) as a, CompactionServer(key=key) as b:
        with httpx.Client(timeout=5) as client:
            made = client.post(
                f"{a.base_url}/responses/compact", json={"model": "m", "input": CONVERSATION}
            ).json()
            again = client.post(
                f"{b.base_url}/responses/compact",
                json={"model": "m", "input": [made["output"][-1]]},
            )
        assert again.status_code == 200, again.text
        assert len(b.open_token(again.json()["output"][-1]["encrypted_content"])["items"]) == 4


def test_random_nonces_make_distinct_tokens_for_the_same_state(http: httpx.Client) -> None:
    payload = {"model": "m", "input": CONVERSATION}
    one = http.post("/responses/compact", json=payload).json()
    two = http.post("/responses/compact", json=payload).json()
    assert one["output"][-1]["encrypted_content"] != two["output"][-1]["encrypted_content"]
    # the input estimate never depends on the nonce
    assert one["usage"]["input_tokens"] == two["usage"]["input_tokens"]


# -- previous_response_id --------------------------------------------------------------------


def test_previous_response_id_chain(server: CompactionServer) -> None:
    client = sdk(server)
    first = client.responses.compact(model="gpt-4.1", input=CONVERSATION)
    second = client.responses.compact(
        model="gpt-4.1",
        previous_response_id=first.id,
        input=[{"role": "user", "content": "And 4+4?"}],
    )
    third = client.responses.compact(model="gpt-4.1", previous_response_id=second.id, input=[])
    body = third.model_dump(mode="json", exclude_unset=True, warnings=False)
    assert_compaction_shape_cached(body, ["What is 2+2?", "And 3+3?", "And 4+4?"])
    assert [m["id"] for m in body["output"][:2]] == [m.id for m in first.output[:2]]  # type: ignore[union-attr]
    state = server.open_token(body["output"][-1]["encrypted_content"])
    assert [i.get("role") for i in state["items"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]


def assert_compaction_shape_cached(body: dict[str, Any], user_texts: list[str]) -> None:
    details = body["usage"]["input_tokens_details"]
    assert 0 < details["cached_tokens"] <= body["usage"]["input_tokens"]
    body = {**body, "usage": {**body["usage"], "input_tokens_details": {**details}}}
    body["usage"]["input_tokens_details"]["cached_tokens"] = 0
    assert_compaction_shape(body, user_texts)


def test_unknown_previous_response_id(server: CompactionServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(server).responses.compact(model="gpt-4.1", previous_response_id="resp_nope", input=[])
    assert caught.value.param == "previous_response_id"
    assert caught.value.code == "previous_response_not_found"
    assert "resp_nope" in caught.value.message


# -- request errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "param", "code"),
    [
        ({"input": "x"}, "model", "missing_required_parameter"),
        # missing ``model`` is reported before a wrong sibling at the same depth
        ({"input": 5}, "model", "missing_required_parameter"),
        (
            {"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
            "missing_required_parameter",
        ),
        ({"model": 123, "input": "x"}, "model", "invalid_type"),
        ({"model": "m", "input": "x", "temperature": 0.2}, "temperature", "unknown_parameter"),
        ({"model": "m", "stream": True}, "stream", "unknown_parameter"),
        (
            {"model": "m", "input": [{"role": "wizard", "content": "x"}]},
            "input[0].role",
            "invalid_value",
        ),
        (
            {"model": "m", "input": [{"type": "context_compaction"}]},
            "input[0].type",
            "invalid_value",
        ),
        ({"model": "m", "input": 5}, "input", "invalid_type"),
    ],
)
def test_invalid_requests_name_the_parameter(
    http: httpx.Client, payload: dict[str, Any], param: str, code: str
) -> None:
    response = http.post("/responses/compact", json=payload)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["param"], error["code"], error["type"]) == (
        param,
        code,
        "invalid_request_error",
    )
    assert error["message"]


def test_unknown_parameter_message_matches_the_api(http: httpx.Client) -> None:
    response = http.post(
        "/responses/compact", json={"model": "m", "input": "x", "include": ["reasoning"]}
    )
    assert error_of(response)["message"] == "Unknown parameter: 'include'."


def test_unknown_parameter_through_the_sdk(server: CompactionServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(server).responses.compact(model="gpt-4.1", input="x", extra_body={"store": True})
    assert (caught.value.param, caught.value.code) == ("store", "unknown_parameter")


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b""])
def test_body_that_is_not_json(http: httpx.Client, content: bytes) -> None:
    response = http.post(
        "/responses/compact", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = error_of(response)
    assert "could not parse the JSON body" in error["message"]


def test_body_that_is_not_an_object(http: httpx.Client) -> None:
    response = http.post("/responses/compact", json=[{"model": "m"}])
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_type"


@pytest.mark.parametrize("path", ["/responses/compact", "/responses"])
def test_a_valid_body_nested_past_the_validators_depth_is_a_400(
    http: httpx.Client, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A tool's input schema is free-form JSON: the body is valid however deep it nests.
    schema = '{"a":' * 600 + "1" + "}" * 600
    tools = f'[{{"name": "t", "input_schema": {schema}}}]'
    item = f'{{"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "s", "tools": {tools}}}'
    body = f'{{"model": "m", "input": [{{"role": "user", "content": "hi"}}, {item}]}}'
    response = http.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert error_of(response) == {
        "message": "Invalid '': body: nesting deeper than 250 levels",
        "type": "invalid_request_error",
        "param": "",
        "code": "invalid_value",
    }
    assert not [r for r in caplog.records if r.exc_info], "an error was logged with a traceback"


def test_input_over_the_context_window() -> None:
    with CompactionServer(context_window=50) as small, httpx.Client(timeout=5) as client:
        fits = client.post(
            f"{small.base_url}/responses/compact", json={"model": "m", "input": "hi"}
        )
        assert fits.status_code == 200, fits.text
        response = client.post(
            f"{small.base_url}/responses/compact", json={"model": "m", "input": "x" * 400}
        )
    assert response.status_code == 400
    assert error_of(response) == {
        "message": "Your input exceeds the context window of this model. "
        "Please adjust your input and try again.",
        "type": "invalid_request_error",
        "param": "input",
        "code": "context_length_exceeded",
    }


def test_unknown_route_and_wrong_method(server: CompactionServer) -> None:
    with httpx.Client(base_url=server.url, timeout=5) as client:
        missing = client.post("/v1/chat/completions", json={})
        assert missing.status_code == 404
        assert error_of(missing)["message"] == "Invalid URL (POST /v1/chat/completions)"
        wrong = client.get("/v1/responses/compact")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "POST"
        error_of(wrong)


# -- faults ------------------------------------------------------------------------------------


def compact(http: httpx.Client, fault: str | None = None, text: str = "x") -> httpx.Response:
    headers = {"x-compaction-fault": fault} if fault else {}
    return http.post("/responses/compact", json={"model": "m", "input": text}, headers=headers)


def test_rate_limit_fault_has_retry_after(http: httpx.Client) -> None:
    response = compact(http, "429;retry-after=7")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    error = error_of(response)
    assert error["code"] == "rate_limit_exceeded"
    default = compact(http, "429")
    assert default.headers["retry-after"] == "1"


@pytest.mark.parametrize("status", [500, 503, 502, 418])
def test_status_faults(http: httpx.Client, status: int) -> None:
    response = compact(http, str(status))
    assert response.status_code == status
    error = error_of(response)
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error")


def test_sdk_retries_past_a_fault_that_fails_once(server: CompactionServer) -> None:
    client = sdk(server, max_retries=2)
    result = client.responses.compact(
        model="gpt-4.1",
        input="retry me",
        extra_headers={"x-compaction-fault": "500;times=1;retry-after=0.01"},
    )
    assert result.output[0].content[0].text == "retry me"  # type: ignore[union-attr]
    statuses = [r.status for r in server.requests]
    assert statuses == [500, 200]
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1"]


def test_sdk_retries_past_rate_limits_and_a_dropped_connection(server: CompactionServer) -> None:
    client = sdk(server, max_retries=3)
    result = client.responses.compact(
        model="gpt-4.1",
        input="x",
        extra_headers={"x-compaction-fault": "429;times=2;retry-after=0.01"},
    )
    assert result.object == "response.compaction"
    assert [r.status for r in server.requests] == [429, 429, 200]
    server.clear_requests()
    dropped = client.responses.compact(
        model="gpt-4.1", input="y", extra_headers={"x-compaction-fault": "drop;times=1"}
    )
    assert dropped.object == "response.compaction"
    assert [r.fault for r in server.requests] == ["drop;times=1", None]


def test_sdk_gives_up_on_a_persistent_fault(server: CompactionServer) -> None:
    with pytest.raises(openai.InternalServerError):
        sdk(server, max_retries=1).responses.compact(
            model="gpt-4.1", input="x", extra_headers={"x-compaction-fault": "503;retry-after=0.01"}
        )
    assert [r.status for r in server.requests] == [503, 503]


def test_times_counts_attempts_per_request_without_retry_header(http: httpx.Client) -> None:
    assert compact(http, "500;times=2", "a").status_code == 500
    assert compact(http, "500;times=2", "b").status_code == 500  # a different request
    assert compact(http, "500;times=2", "a").status_code == 500
    assert compact(http, "500;times=2", "a").status_code == 200
    keyed = {"x-compaction-fault": "503;times=1", "idempotency-key": "k1"}
    first = http.post("/responses/compact", json={"model": "m", "input": "1"}, headers=keyed)
    second = http.post("/responses/compact", json={"model": "m", "input": "2"}, headers=keyed)
    assert (first.status_code, second.status_code) == (503, 200)


def test_slow_fault_delays_and_times_out_clients(http: httpx.Client) -> None:
    started = time.monotonic()
    response = compact(http, "slow:0.2")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2
    with pytest.raises(httpx.ReadTimeout):
        http.post(
            "/responses/compact",
            json={"model": "m", "input": "x"},
            headers={"x-compaction-fault": "slow:0.2"},
            timeout=0.05,
        )


def test_malformed_json_fault(server: CompactionServer, http: httpx.Client) -> None:
    response = compact(http, "malformed-json")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(json.JSONDecodeError):
        response.json()
    # The SDK surfaces the undecodable body as a JSON error rather than a result.
    with pytest.raises(json.JSONDecodeError):
        sdk(server).responses.compact(
            model="gpt-4.1", input="x", extra_headers={"x-compaction-fault": "malformed-json"}
        )


def test_truncated_and_dropped_answers_are_client_errors(http: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        compact(http, "truncated")
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        compact(http, "drop")
    assert compact(http).status_code == 200  # the client recovers on a new connection


def test_sdk_reports_a_dropped_connection(server: CompactionServer) -> None:
    with pytest.raises(openai.APIConnectionError):
        sdk(server).responses.compact(
            model="gpt-4.1", input="x", extra_headers={"x-compaction-fault": "truncated"}
        )


@pytest.mark.parametrize(
    "spec",
    [
        "teapot",
        "200",
        "slow:abc",
        "slow:1e308",
        "slow:inf",
        "500;times=0",
        "500;retry=1",
        "429;retry-after=-1",
        "429;retry-after=1e308",
    ],
)
def test_bad_fault_header_is_a_clear_400(http: httpx.Client, spec: str) -> None:
    response = compact(http, spec)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["param"], error["code"]) == ("x-compaction-fault", "invalid_fault")


def test_server_wide_and_next_n_faults() -> None:
    with CompactionServer(fault="503") as srv, httpx.Client(base_url=srv.base_url) as client:
        assert compact(client).status_code == 503
        assert compact(client, "418").status_code == 418  # the header wins
        srv.set_fault(None)
        srv.inject_fault("429;retry-after=0", count=2)
        assert [compact(client).status_code for _ in range(3)] == [429, 429, 200]
        with pytest.raises(ServerError, match="unknown fault"):
            srv.inject_fault("boom")
    with pytest.raises(ServerError, match="invalid fault"):
        CompactionServer(fault="slow:")


# -- determinism and lifecycle -----------------------------------------------------------------


def exchange_bytes(server: CompactionServer) -> list[bytes]:
    """Raw answers (status line, headers, body) to a fixed sequence of requests."""
    payloads = [
        {"model": "m", "input": CONVERSATION, "instructions": "short"},
        {"model": "m", "input": [{"role": "wizard"}]},
        {"model": "m", "previous_response_id": "resp_0001", "input": "more"},
    ]
    answers = []
    for payload in payloads:
        data = json.dumps(payload).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/responses/compact HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
                b"content-type: application/json\r\ncontent-length: "
                + str(len(data)).encode()
                + b"\r\n\r\n"
                + data
            )
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        answers.append(b"".join(chunks))
    return answers


def test_deterministic_servers_answer_byte_for_byte_alike() -> None:
    with CompactionServer(deterministic=True) as a, CompactionServer(deterministic=True) as b:
        first, second = exchange_bytes(a), exchange_bytes(b)
    assert first == second
    head, _, body = first[0].partition(b"\r\n\r\n")
    assert b"\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n" in head
    parsed = json.loads(body)
    assert parsed["id"] == "resp_0001"
    assert parsed["created_at"] == 1_767_225_600
    assert first[2].startswith(b"HTTP/1.1 200")  # the chain resolved the counter id


def test_stop_is_clean_with_idle_and_busy_connections() -> None:
    # Only this server's threads count: an earlier test in this process may have left its own.
    earlier = set(threading.enumerate())
    srv = CompactionServer().start()
    port = srv.port
    idle = httpx.Client(base_url=srv.base_url, timeout=5)
    assert compact(idle).status_code == 200  # leaves a kept-alive connection open
    busy_error: list[BaseException] = []

    def slow_call() -> None:
        try:
            with httpx.Client(base_url=srv.base_url, timeout=5) as client:
                compact(client, "slow:30")
        except BaseException as exc:
            busy_error.append(exc)

    caller = threading.Thread(target=slow_call)
    caller.start()
    while not any(r.fault == "slow:30" for r in srv.requests) and caller.is_alive():
        time.sleep(0.01)
    before = set(threading.enumerate())
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 3
    caller.join(5)
    assert not caller.is_alive()
    assert busy_error and isinstance(busy_error[0], httpx.TransportError)
    assert not [t for t in before - earlier if t.is_alive() and t.name.startswith("Thread-")]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    idle.close()
    srv.stop()  # stopping twice is harmless


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ServerError, match="unknown dialect"):
        CompactionServer(dialect="nope")
    with pytest.raises(ServerError, match="context_window"):
        CompactionServer(context_window=0)
    with pytest.raises(ServerError, match="not started"):
        _ = CompactionServer().base_url
    with CompactionServer() as taken, pytest.raises(ServerError, match="cannot listen"):
        CompactionServer(port=taken.port).start()


def test_schema_version_option() -> None:
    with CompactionServer(schema_version="2026-04-13") as old, httpx.Client(timeout=5) as client:
        # prompt_cache_retention is not declared before 2026-05-13: unknown to that server.
        response = client.post(
            f"{old.base_url}/responses/compact",
            json={"model": "m", "input": "x", "prompt_cache_retention": "24h"},
        )
    assert (response.status_code, error_of(response)["param"]) == (400, "prompt_cache_retention")
    with pytest.raises(ServerError, match="unknown schema version"):
        CompactionServer(schema_version="1999-01-01")
