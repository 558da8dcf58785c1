"""Plaintext-token servers: Ollama, vLLM and Llama Stack, whose ``encrypted_content`` is JSON.

Every test drives real HTTP on 127.0.0.1: the openai SDK (or httpx) against the embedded server in
the dialect, recorded with ``use_cassette``, replayed with the server stopped, then validated under
the dialect's profile (clean, strict too) and under plain OpenAI's (the missing compaction id, the
missing ``cache_write_tokens`` and the foreign error envelopes are the findings). The plaintext
token itself is a string to every schema: OpenAI's server shows what it is worth by refusing it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from pytest_compaction import CompactionServer, use_cassette
from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.cli import main
from pytest_compaction.contract._chain import check_chain
from pytest_compaction.contract._dialects import (
    DialectError,
    detect_dialect,
    get_dialect,
    kind_of,
    overlaid_document,
    validate_with_dialect,
)
from pytest_compaction.proxy._proxy import CompactionProxy
from pytest_compaction.replay._recorder import ReplayError
from pytest_compaction.schema._versions import load_schema_set
from pytest_compaction.server._tokens import NOT_OLLAMA

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

PLAINTEXT = ("ollama", "vllm", "llamastack")
KEY = "sk-plaintext-" + "p7" * 16
PROVIDER_DATA = json.dumps({"openai_api_key": KEY})
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Plan the launch."},
    {"role": "assistant", "content": "Step one: a checklist."},
    {"role": "user", "content": "Summarize it."},
]
MODELS = {"ollama": "gpt-oss:20b", "vllm": "Qwen/Qwen3-8B", "llamastack": "openai/gpt-4o"}
HEADERS = {"llamastack": {"x-llamastack-provider-data": PROVIDER_DATA}}
# What plain OpenAI's profile finds in each dialect's recording (strict), by body kind and path.
UNDER_OPENAI = {
    "ollama": {
        ("response", "/output/0/id"),
        ("response", "/usage/input_tokens_details/cache_write_tokens"),
    },
    "vllm": {("error", "/error/code")},
    "llamastack": {
        ("response", "/usage/input_tokens_details/cache_write_tokens"),
        ("error", "/error/type"),
        ("error", "/error/param"),
        ("error", "/error/code"),
    },
}


def client_for(base_url: str, dialect: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=base_url,
        api_key=KEY,
        max_retries=0,
        timeout=5,
        default_headers=HEADERS.get(dialect, {}),
    )


def run_client(base_url: str, dialect: str) -> list[Any]:
    """A compaction, its output passed back with a new turn, and a token the server refuses."""
    client = client_for(base_url, dialect)
    compact = client.responses.with_raw_response.compact
    model = MODELS[dialect]
    first = compact(model=model, input=HISTORY)
    passed = first.http_response.json()["output"]  # passed back as returned
    second = compact(model=model, input=[*passed, {"role": "user", "content": "And the budget?"}])
    foreign = {"type": "compaction", "encrypted_content": "gAAAAABnot-a-payload=="}
    with pytest.raises(openai.BadRequestError) as refused:
        compact(model=model, input=[foreign])
    return [first.http_response.json(), second.http_response.json(), refused.value.body]


def findings(path: Path, dialect: str) -> tuple[set[tuple[str, str]], list[str]]:
    """(kind, path) of every violation of the cassette's bodies under ``dialect`` (strict), and
    the drift."""
    found: set[tuple[str, str]] = set()
    drift: list[str] = []
    for ex in load_cassette(path).exchanges:
        for kind, raw in (("request", ex.request_body), (kind_of(ex.status), ex.response_body)):
            report = validate_with_dialect(kind, raw, dialect=dialect, strict=True)  # type: ignore[arg-type]
            found |= {(kind, v.path) for v in report.violations}
            drift += [f"{kind} {d.path}" for d in report.drift]
    return found, drift


def token_of(answer: dict[str, Any]) -> str:
    items = [i for i in answer["output"] if i.get("type") == "compaction"]
    assert len(items) == 1, answer
    token = items[0]["encrypted_content"]
    assert isinstance(token, str)
    return token


# -- record through the SDK, replay offline, validate under the profile and under OpenAI's -----


@pytest.mark.parametrize("dialect", PLAINTEXT)
def test_record_replay_validate_through_the_openai_sdk(dialect: str, tmp_path: Path) -> None:
    path = tmp_path / f"{dialect}.yaml"
    with CompactionServer(dialect=dialect, deterministic=True) as server:
        with use_cassette(path, record_mode="once", dialect=dialect, check_chain=True) as rec:
            live = run_client(server.base_url, dialect)
        base_url = server.base_url
    assert (rec.recorded, rec.validated) == (3, 3)
    assert rec.violations == [] and rec.drift == []

    text = path.read_text()
    doc = yaml.safe_load(text)
    assert doc["compaction"]["dialect"] == dialect
    assert KEY not in text  # the bearer key, and Llama Stack's provider data carrying it
    for name in ("authorization", *HEADERS.get(dialect, {})):
        assert all(ex["request"]["headers"][name] == ["REDACTED"] for ex in doc["interactions"])

    # The server is gone: served from the cassette, the chain checked, strictly validated.
    with use_cassette(path, dialect=dialect, strict=True, check_chain=True) as replay:
        assert run_client(base_url, dialect) == live
    assert (replay.replayed, replay.validated, replay.recorded) == (3, 3, 0)
    assert replay.violations == [] and replay.drift == []

    assert findings(path, dialect) == (set(), [])
    under_openai, drift = findings(path, "openai")
    assert under_openai == UNDER_OPENAI[dialect] and drift == []
    with pytest.raises(ReplayError), use_cassette(path, dialect="openai", strict=True):
        run_client(base_url, dialect)


@pytest.mark.parametrize("dialect", PLAINTEXT)
def test_tokens_are_readable_json_that_the_server_reads_back(dialect: str) -> None:
    client_headers = {"authorization": f"Bearer {KEY}", **HEADERS.get(dialect, {})}
    model = MODELS[dialect]
    with (
        CompactionServer(dialect=dialect, deterministic=True) as server,
        CompactionServer(deterministic=True) as plain,
    ):
        url = f"{server.base_url}/responses/compact"
        first = httpx.post(url, json={"model": model, "input": HISTORY}, headers=client_headers)
        assert first.status_code == 200
        token = token_of(first.json())
        payload = json.loads(token)  # readable: nothing is encrypted
        if dialect == "ollama":
            assert list(payload) == ["type", "version", "summary", "retained"]
            assert (payload["type"], payload["version"]) == ("ollama_compaction", 1)
            carried = payload["retained"]
        else:
            carried = payload["items"]
        assert "Step one: a checklist." in json.dumps(carried)

        # The chain continues through the server: the token is read back, its turns count.
        item = first.json()["output"][-1]
        later = {"model": model, "input": [item, {"role": "user", "content": "And the budget?"}]}
        second = httpx.post(url, json=later, headers=client_headers)
        assert second.status_code == 200
        opened = server.open_token(token_of(second.json()))
        said = json.dumps(opened["items"])
        assert "Plan the launch." in said and "And the budget?" in said
        assert second.json()["usage"]["input_tokens"] > first.json()["usage"]["input_tokens"]

        # OpenAI's own server cannot verify a plaintext token.
        refused = httpx.post(
            f"{plain.base_url}/responses/compact",
            json={"model": "gpt-5.4", "input": [item]},
            headers=client_headers,
        )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_encrypted_content"


def test_plaintext_tokens_are_refused_and_foreign_ones_named_in_each_envelope() -> None:
    foreign = [{"type": "compaction", "encrypted_content": "gAAAAABnot-a-payload=="}]
    auth = {"authorization": f"Bearer {KEY}"}
    bodies: dict[str, tuple[int, Any]] = {}
    for dialect in PLAINTEXT:
        with CompactionServer(dialect=dialect, deterministic=True) as server:
            answer = httpx.post(
                f"{server.base_url}/responses/compact",
                json={"model": MODELS[dialect], "input": foreign},
                headers=auth,
            )
        bodies[dialect] = (answer.status_code, answer.json())
    assert bodies["ollama"] == (
        400,
        {
            "error": {
                "message": NOT_OLLAMA,
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_request_error",
            }
        },
    )
    status, vllm = bodies["vllm"]
    assert status == 400 and vllm["error"]["code"] == 400
    assert vllm["error"]["type"] == "BadRequestError"
    status, llamastack = bodies["llamastack"]
    assert status == 400 and set(llamastack["error"]) == {"message"}
    for dialect, (_, body) in bodies.items():
        assert validate_with_dialect("error", body, dialect=dialect, strict=True).valid, dialect


# -- Ollama's compaction_trigger on POST /v1/responses ---------------------------------------------


TRIGGERED = [*HISTORY, {"type": "compaction_trigger"}]


def test_ollama_compaction_trigger_needs_stream(tmp_path: Path) -> None:
    path = tmp_path / "trigger.yaml"
    with CompactionServer(dialect="ollama", deterministic=True) as server:
        with use_cassette(path, record_mode="once", dialect="ollama") as rec:
            client = client_for(server.base_url, "ollama")
            with pytest.raises(openai.BadRequestError) as unstreamed:
                client.responses.create(model=MODELS["ollama"], input=TRIGGERED)  # type: ignore[arg-type]
            events = list(
                client.responses.create(
                    model=MODELS["ollama"],
                    input=TRIGGERED,  # type: ignore[arg-type]
                    stream=True,
                )
            )
        on_compact = httpx.post(
            f"{server.base_url}/responses/compact",
            json={"model": MODELS["ollama"], "input": TRIGGERED},
        )
        completed = events[-1].response
        item = completed.output[0].model_dump(exclude_none=True)
        follow = httpx.post(
            f"{server.base_url}/responses",
            json={"model": MODELS["ollama"], "input": [item, {"role": "user", "content": "Go."}]},
        )
    assert unstreamed.value.status_code == 400
    assert unstreamed.value.body == {
        "message": "compaction_trigger requires stream=true",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request_error",
    }
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == [0, 1, 2, 3, 4]
    assert [i.type for i in completed.output] == ["compaction"]  # no assistant reply
    assert "id" not in item and json.loads(item["encrypted_content"])["type"] == "ollama_compaction"
    assert on_compact.status_code == 400
    assert on_compact.json()["error"]["message"] == (
        "compaction_trigger is only valid on POST /v1/responses"
    )
    assert follow.status_code == 200  # the triggered item is read back on /v1/responses
    assert follow.json()["output"][0]["content"][0]["text"] == "Echo: Go."

    assert (rec.recorded, rec.validated) == (2, 2)
    assert rec.violations == [] and rec.drift == []
    stream = load_cassette(path).exchanges[1]
    assert b"compaction_trigger" in stream.request_body
    for line in stream.response_body.decode().splitlines():
        if line.startswith("data: "):
            event = json.loads(line[6:])
            assert validate_with_dialect("responses.event", event, dialect="ollama").valid
    last = json.loads([ln for ln in stream.response_body.decode().splitlines() if ln][-1][6:])
    plain = validate_with_dialect("responses.event", last, dialect="openai")
    assert {v.path for v in plain.violations} == {
        "/response/output/0/id",
        "/response/usage/input_tokens_details/cache_write_tokens",
    }


# -- profiles: paths, credentials, detection, error envelopes --------------------------------------


@pytest.mark.parametrize(
    ("dialect", "auth"),
    [
        ("ollama", ("authorization",)),
        ("vllm", ("authorization",)),
        ("llamastack", ("authorization", "x-llamastack-provider-data", "x-ogx-provider-data")),
    ],
)
def test_profile_paths_credentials_and_no_detection(dialect: str, auth: tuple[str, ...]) -> None:
    profile = get_dialect(dialect)
    assert profile.compact_paths == ("/v1/responses/compact",) and profile.base_path == "/v1"
    assert profile.auth_headers == auth and profile.signature_paths == ()
    # OpenAI's own path on a local port: nothing tells these servers apart, so no detection.
    for port in (11434, 8000, 8321):
        assert detect_dialect(f"http://127.0.0.1:{port}/v1/responses/compact") is None
    with CompactionServer(dialect=dialect, deterministic=True) as server:
        assert server.base_url.endswith("/v1")
        body = {"model": MODELS[dialect], "input": "hi"}
        served = httpx.post(
            f"{server.url}/v1/responses/compact", json=body, headers={"authorization": "Bearer k"}
        )
        elsewhere = httpx.post(
            f"{server.url}/openai/v1/responses/compact",
            json=body,
            headers={"authorization": "Bearer k"},
        )
        bare = httpx.post(f"{server.url}/v1/responses/compact", json=body)
    assert served.status_code == 200 and elsewhere.status_code == 404
    if dialect == "ollama":
        assert elsewhere.headers["content-type"].startswith("text/plain")
        assert elsewhere.text == "404 page not found"
        assert bare.status_code == 200  # a local Ollama ignores credentials
    elif dialect == "vllm":
        assert elsewhere.json() == {
            "error": {"message": "Not Found", "type": "NotFoundError", "param": None, "code": 404}
        }
        # As `vllm serve --api-key`: a /v1 request without the bearer token.
        assert (bare.status_code, bare.json()) == (401, {"error": "Unauthorized"})
        assert validate_with_dialect("error", bare.json(), dialect="vllm", strict=True).valid
        assert not validate_with_dialect("error", bare.json(), dialect="openai").valid
    else:
        assert elsewhere.json() == {"detail": "Not Found"}
        assert bare.status_code == 200  # auth only when the stack configures a provider
        assert validate_with_dialect("error", elsewhere.json(), dialect=dialect).valid
        assert not validate_with_dialect("error", elsewhere.json(), dialect="openai").valid


def test_ollama_compact_reads_no_previous_response_id() -> None:
    with CompactionServer(dialect="ollama", deterministic=True) as server:
        url = f"{server.base_url}/responses/compact"
        first = httpx.post(url, json={"model": "m", "input": HISTORY}).json()
        chained = {"model": "m", "input": "more", "previous_response_id": first["id"]}
        second = httpx.post(url, json=chained)
        unknown = httpx.post(url, json={**chained, "previous_response_id": "resp_unknown"})
        missing = httpx.post(url, json={"model": "m"})
    assert second.status_code == 200 and unknown.status_code == 200
    assert second.json()["usage"]["input_tokens_details"] == {"cached_tokens": 0}
    assert "Plan the launch." not in second.json()["output"][0]["encrypted_content"]
    assert (missing.status_code, missing.json()["error"]["message"]) == (400, "input is required")


def test_cli_validate_takes_the_new_dialects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    error = {"message": "Not Found", "type": "NotFoundError", "param": None, "code": 404}
    body = tmp_path / "error.json"
    body.write_text(json.dumps({"error": error}))
    assert main(["validate", "--kind", "error", "--dialect", "vllm", str(body)]) == 0
    assert "valid (error" in capsys.readouterr().out
    assert main(["validate", "--kind", "error", "--dialect", "openai", str(body)]) == 1
    assert "error.code: expected string or null, got integer" in capsys.readouterr().out


# -- nested x-optional --------------------------------------------------------------------------


def test_nested_x_optional_needs_a_declared_or_required_name() -> None:
    base = load_schema_set(None).document("response")
    relaxed = {
        "x-overlay": "extend",
        "$defs": {
            "ResponseUsage": {
                "properties": {"input_tokens_details": {"x-optional": ["cache_write_tokens"]}}
            }
        },
    }
    document = overlaid_document(base, relaxed, "test overlay")
    details = document["$defs"]["ResponseUsage"]["properties"]["input_tokens_details"]
    assert details["required"] == ["cached_tokens"]
    assert (
        "cache_write_tokens"
        in base["$defs"]["ResponseUsage"]["properties"]["input_tokens_details"]["required"]
    )  # the cached document is untouched
    misspelt = json.loads(json.dumps(relaxed).replace('["cache_write_tokens"]', '["cache_writes"]'))
    with pytest.raises(
        DialectError, match=r"input_tokens_details: x-optional names \['cache_writes'\]"
    ):
        overlaid_document(base, misspelt, "test overlay")


# -- the names end to end: serve --dialect, the recording proxy ---------------------------------


def test_serve_speaks_ollama() -> None:
    command = [sys.executable, "-c", "from pytest_compaction.cli import main; main()"]
    process = subprocess.Popen(
        [*command, "serve", "--dialect", "ollama", "--deterministic"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.endswith("/v1")
        client = client_for(base_url, "ollama")
        out = client.responses.compact(model=MODELS["ollama"], input=HISTORY)
        assert [i.type for i in out.output] == ["compaction"]
        assert getattr(out.output[0], "id", None) is None
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("named", ["llamastack", None])
def test_the_proxy_records_llamastack_without_its_provider_keys(
    named: str | None, tmp_path: Path
) -> None:
    path = tmp_path / "proxied.yaml"
    headers = {"authorization": f"Bearer {KEY}", "x-llamastack-provider-data": PROVIDER_DATA}
    body = {"model": MODELS["llamastack"], "input": HISTORY}
    with (
        CompactionServer(dialect="llamastack", deterministic=True) as server,
        CompactionProxy(server.base_url, path, record_mode="once", dialect=named) as proxy,
    ):
        live = httpx.post(f"{proxy.url}/responses/compact", json=body, headers=headers)
    assert live.status_code == 200 and live.headers["x-compaction-proxy"] == "recorded"
    if named is None:  # taken for plain OpenAI: Llama Stack's usage is a violation, not written
        failure = proxy.failure()
        assert failure is not None and "cache_write_tokens" in failure
        assert not path.exists()
        return
    assert proxy.failure() is None
    text = path.read_text()
    assert KEY not in text
    request_headers = yaml.safe_load(text)["interactions"][0]["request"]["headers"]
    assert request_headers["x-llamastack-provider-data"] == ["REDACTED"]
    assert load_cassette(path).dialect == "llamastack"


def test_the_chain_check_takes_plaintext_items_as_returned_and_refuses_edited_ones(
    tmp_path: Path,
) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    recorded: dict[str, Path] = {}
    for dialect in ("ollama", "vllm"):
        path = recorded[dialect] = tmp_path / f"{dialect}.yaml"
        with CompactionServer(dialect=dialect, deterministic=True) as server:
            url = f"{server.base_url}/responses/compact"
            with use_cassette(path, record_mode="once", dialect=dialect, check_chain=False):
                first = httpx.post(url, json={"model": "m", "input": HISTORY}, headers=auth)
                output = first.json()["output"]
                kept = {"model": "m", "input": [*output, {"role": "user", "content": "Next."}]}
                assert httpx.post(url, json=kept, headers=auth).status_code == 200
                # Readable, so editable: the server takes the edited payload, the contract not.
                token = json.loads(output[-1]["encrypted_content"])
                if dialect == "ollama":
                    token["summary"] = "Be brief."
                else:
                    token["instructions"] = ["Be brief."]
                edited = {**output[-1], "encrypted_content": json.dumps(token)}
                turn = {"role": "user", "content": "Next."}
                again = {"model": "m", "input": [*output[:-1], edited, turn]}
                assert httpx.post(url, json=again, headers=auth).status_code == 200
    for dialect, path in recorded.items():
        exchanges = load_cassette(path).exchanges
        assert check_chain(exchanges[:2]) == [], dialect  # passed back as returned: no finding
    vllm = load_cassette(recorded["vllm"]).exchanges
    found = check_chain([vllm[0], vllm[2]])
    assert [(v.rule, v.source_pointer) for v in found] == [(4, "/output/2")]
    assert "encrypted_content of compaction cmp_0001 is not the one exchange 0 returned" in str(
        found[0]
    )
