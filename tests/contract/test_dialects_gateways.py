"""The xAI, OpenRouter and Vercel AI Gateway dialects end to end, each profile fact on the wire.

Every test drives real HTTP on 127.0.0.1: the openai SDK against the embedded server in the
dialect, recorded with ``use_cassette``, replayed with the server stopped, and validated under
the dialect's profile (and, where the wire differs, under plain OpenAI's, which then objects).
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
from pytest_compaction.contract._dialects import (
    DIALECTS,
    detect_dialect,
    get_dialect,
    kind_of,
    validate_with_dialect,
)

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

KEY = "sk-gateway-" + "g7" * 16
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Plan the launch."},
    {"role": "assistant", "content": "Step one: a checklist."},
    {"role": "user", "content": "Summarize it."},
]
NEXT = {"role": "user", "content": "And the budget?"}
LONG = "Tell me about the launch plan. " + "Every detail matters here. " * 200  # over 1000 tokens
CONTEXT_MANAGEMENT: list[Any] = [{"type": "compaction", "compact_threshold": 1000}]
DROPPED = "probably dropped context_management"


def client_for(server: CompactionServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=5)


def dumped(items: Any) -> list[dict[str, Any]]:
    return [i.model_dump(mode="json", exclude_none=True, warnings=False) for i in items]


def report_of(path: Path, dialect: str, *, strict: bool) -> tuple[list[str], list[str]]:
    """Violations and drift of every exchange of a cassette under a dialect."""
    violations: list[str] = []
    drift: list[str] = []
    for ex in load_cassette(path).exchanges:
        responses = ex.uri.endswith("/responses")
        asked = "responses.request" if responses else "request"
        answered = "responses.response" if responses and ex.status < 300 else kind_of(ex.status)
        for kind, raw in ((asked, ex.request_body), (answered, ex.response_body)):
            report = validate_with_dialect(kind, raw, dialect=dialect, strict=strict)  # type: ignore[arg-type]
            violations += [f"{kind} {v.path}: {v.message}" for v in report.violations]
            drift += [f"{kind} {d.path}" for d in report.drift]
    return violations, drift


def test_the_gateway_dialects_are_known_everywhere_the_names_are() -> None:
    assert DIALECTS[-3:] == ("xai", "openrouter", "vercel")
    for name in ("xai", "openrouter", "vercel"):
        assert CompactionServer(dialect=name).dialect == name
        # the CLI takes the names: serve, check, proxy and validate read the same list
        with pytest.raises(SystemExit) as shown:
            main(["check", "--dialect", name, "--help"])
        assert shown.value.code == 0


# -- xAI ------------------------------------------------------------------------------------------


def xai_client_run(client: openai.OpenAI) -> list[Any]:
    """A compaction, the conversation continued on its output, one chained by id, one refused."""
    compact = client.responses.with_raw_response.compact
    first = compact(model="grok-4.5", input=HISTORY)  # type: ignore[arg-type]
    parsed = first.parse()
    reply = client.responses.create(model="grok-4.5", input=[*dumped(parsed.output), NEXT])  # type: ignore[list-item]
    chained = compact(model="grok-4.5", input=[NEXT], previous_response_id=parsed.id)  # type: ignore[list-item]
    with pytest.raises(openai.BadRequestError) as refused:
        compact(model="grok-4.5", input="x", previous_response_id="resp_unknown")
    return [
        first.http_response.json(),
        reply.output_text,
        chained.http_response.json(),
        refused.value.response.json(),
    ]


def test_xai_answers_one_compaction_item_and_the_chain_continues(tmp_path: Path) -> None:
    path = tmp_path / "xai.yaml"
    with CompactionServer(dialect="xai", deterministic=True) as server:
        with use_cassette(path, record_mode="once", dialect="xai") as recording:
            live = xai_client_run(client_for(server))
        base_url = server.base_url
    first, reply, chained, refused = live
    # exactly one compaction item, standing in for everything: no user message re-issued
    assert [item["type"] for item in first["output"]] == ["compaction"]
    assert first["id"].startswith("cmp_") and len(first["id"]) == len("cmp_") + 36
    assert first["output"][0]["id"] == first["id"]
    assert first["model"] == "grok-4.5" and first["usage"]["dropped_message_count"] == 3
    # the chain continues: on the compaction item's output, and by the answer's id
    assert reply == "Echo: And the budget?"
    assert [item["type"] for item in chained["output"]] == ["compaction"]
    assert chained["usage"]["input_tokens_details"]["cached_tokens"] > 0
    # xAI's usage details count cached tokens only
    assert {"cached_tokens"} == set(first["usage"]["input_tokens_details"])
    assert refused == {
        "code": "Client specified an invalid argument",
        "error": "Previous response with id 'resp_unknown' not found.",
    }
    assert (recording.recorded, recording.validated) == (4, 4)
    assert recording.violations == [] and recording.drift == [] and recording.notes == []
    assert yaml.safe_load(path.read_text())["compaction"]["dialect"] == "xai"
    assert KEY not in path.read_text()

    # The server is gone: the cassette answers, and its answers validate under xai.
    with use_cassette(path, record_mode="none") as replay:
        client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=5)
        assert xai_client_run(client) == live
    assert (replay.replayed, replay.recorded, replay.dialect) == (4, 0, "xai")
    assert replay.violations == [] and replay.drift == []
    assert report_of(path, "xai", strict=True) == ([], [])
    # Plain OpenAI does not know xAI's additions, nor its error envelope, and the newest
    # version requires cache_write_tokens.
    violations, drift = report_of(path, "openai", strict=False)
    assert {"response /model", "response /usage/dropped_message_count"} <= set(drift)
    assert any(v.startswith("error /error: ") for v in violations), violations
    assert any("cache_write_tokens" in v for v in violations), violations


def test_xai_profile_refuses_reissued_user_turns_and_openai_errors() -> None:
    with CompactionServer(dialect="xai", deterministic=True) as server:
        answer = httpx.post(
            f"{server.base_url}/responses/compact", json={"model": "grok-4.5", "input": HISTORY}
        ).json()
    assert validate_with_dialect("response", answer, dialect="xai", strict=True).valid
    reissued = {
        "id": "msg_1",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_text", "text": "Plan the launch."}],
    }
    as_openai = {**answer, "output": [reissued, *answer["output"]]}
    report = validate_with_dialect("response", as_openai, dialect="xai")
    assert {v.path for v in report.violations} >= {"/output"}, report.violations
    # OpenAI's profile takes the re-issued turn (it misses only xAI's lean usage details)
    as_openai_report = validate_with_dialect("response", as_openai)
    assert [v.path for v in as_openai_report.violations] == [
        "/usage/input_tokens_details/cache_write_tokens"
    ]
    two = {**answer, "output": answer["output"] * 2}  # one compaction per call
    assert not validate_with_dialect("response", two, dialect="xai").valid
    openai_error = {"error": {"message": "m", "type": "t", "param": None, "code": None}}
    report = validate_with_dialect("error", openai_error, dialect="xai")
    assert {v.message for v in report.violations} == {
        "body: missing required property 'code'",
        "error: expected string, got object",
    }


def test_xai_ignores_context_management_and_the_note_says_so(tmp_path: Path) -> None:
    path = tmp_path / "server_side.yaml"
    with CompactionServer(dialect="xai", deterministic=True) as server:
        with use_cassette(path, record_mode="once", dialect="xai") as recording:
            answer = client_for(server).responses.create(
                model="grok-4.5",
                input=LONG,
                context_management=CONTEXT_MANAGEMENT,  # type: ignore[arg-type]
            )
        (sent,) = [r.json() for r in server.requests]
    assert sent["context_management"] == CONTEXT_MANAGEMENT  # the client asked for it
    assert [item.type for item in answer.output] == ["message"]
    assert answer.usage is not None and answer.usage.input_tokens >= 1000
    (note,) = recording.notes
    assert DROPPED in note and "compact_threshold is 1000" in note
    with CompactionServer(deterministic=True) as plain:  # the API itself compacts
        direct = client_for(plain).responses.create(
            model="grok-4.5",
            input=LONG,
            context_management=CONTEXT_MANAGEMENT,  # type: ignore[arg-type]
        )
    assert [item.type for item in direct.output] == ["message", "compaction"]


# -- OpenRouter -----------------------------------------------------------------------------------


def test_openrouter_has_no_compact_route(tmp_path: Path) -> None:
    path = tmp_path / "compact.yaml"
    with CompactionServer(dialect="openrouter", deterministic=True) as server:
        assert server.base_url.endswith("/api/v1")
        with (
            use_cassette(path, record_mode="once") as recording,
            pytest.raises(openai.NotFoundError) as missing,
        ):
            client_for(server).responses.compact(model="openai/gpt-4o", input=HISTORY)  # type: ignore[arg-type]
        assert server.requests[-1].path == "/api/v1/responses/compact"
    assert missing.value.response.json() == {"error": {"message": "Not Found", "code": 404}}
    # detected from the /api/v1 prefix (no name given), validated in OpenRouter's envelope
    assert yaml.safe_load(path.read_text())["compaction"]["dialect"] == "openrouter"
    assert (recording.validated, recording.violations) == (1, [])
    assert report_of(path, "openrouter", strict=True) == ([], [])
    violations, _ = report_of(path, "openai", strict=False)
    assert any("missing required property 'type'" in v for v in violations), violations


def openrouter_run(client: openai.OpenAI) -> list[Any]:
    """Server-side compaction for an OpenAI model, continued statelessly; the same request to a
    translated provider; a model id without its provider."""
    first = client.responses.create(
        model="openai/gpt-4o",
        input=LONG,
        context_management=CONTEXT_MANAGEMENT,  # type: ignore[arg-type]
    )
    history = [{"role": "user", "content": LONG}, *dumped(first.output), NEXT]
    second = client.responses.create(model="openai/gpt-4o", input=history)  # type: ignore[arg-type]
    translated = client.responses.create(
        model="anthropic/claude-sonnet-4.5",
        input=LONG,
        context_management=CONTEXT_MANAGEMENT,  # type: ignore[arg-type]
    )
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="gpt-4o", input="hi")
    return [
        [item.type for item in first.output],
        second.output_text,
        [item.type for item in translated.output],
        translated.usage.input_tokens if translated.usage else None,
        refused.value.response.json(),
    ]


def test_openrouter_compacts_for_openai_models_and_notes_the_dropped_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "openrouter.yaml"
    with CompactionServer(dialect="openrouter", deterministic=True) as server:
        with use_cassette(path, record_mode="once") as recording:
            live = openrouter_run(client_for(server))
        upstream = [r.json() for r in server.requests if r.json().get("model")]
        base_url = server.base_url
    compacted, continued, translated, tokens, refused = live
    assert compacted == ["message", "compaction"]  # openai/: context_management reached it
    assert continued == "Echo: And the budget?"  # the compaction item carried the context on
    assert translated == ["message"] and tokens is not None and tokens >= 1000
    assert refused == {"error": {"message": "gpt-4o is not a valid model ID", "code": 400}}
    assert all("context_management" in body for body in upstream if "context_management" in body)
    # The dropped context_management is noted on the translated provider's answer only.
    (note,) = [n for n in recording.notes if DROPPED in n]
    assert f"compact_threshold is 1000 and its input is {tokens} tokens" in note
    assert recording.violations == [] and recording.drift == []
    assert recording.dialect_for(recording.exchanges[0].uri).name == "openrouter"

    with use_cassette(path, record_mode="none") as replay:
        client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=5)
        assert openrouter_run(client) == live
    assert (replay.replayed, replay.recorded) == (4, 0)
    assert [n for n in replay.notes if DROPPED in n] == [note]
    assert report_of(path, "openrouter", strict=True) == ([], [])

    assert main(["check", str(path), "--dialect", "openrouter"]) == 0
    out = capsys.readouterr().out
    assert out.count(DROPPED) == 1 and "4 passed, 0 failed; 1 note(s)" in out


def test_openrouter_refuses_a_request_without_a_key() -> None:
    with CompactionServer(dialect="openrouter") as server:
        bare = httpx.post(f"{server.base_url}/responses", json={"model": "openai/gpt-4o"})
    assert bare.status_code == 401
    assert bare.json() == {"error": {"message": "No auth credentials found", "code": 401}}
    assert validate_with_dialect("error", bare.json(), dialect="openrouter", strict=True).valid


# -- Vercel AI Gateway ----------------------------------------------------------------------------


def vercel_run(client: openai.OpenAI) -> list[Any]:
    compact = client.responses.with_raw_response.compact
    first = compact(model="openai/gpt-5.4", input=HISTORY)  # type: ignore[arg-type]
    chained = compact(model="openai/gpt-5.4", input=[NEXT], previous_response_id=first.parse().id)  # type: ignore[list-item]
    other = client.responses.create(model="anthropic/claude-sonnet-4.5", input="hi")
    refused = []
    for model in ("gpt-5.4", "anthropic/claude-sonnet-4.5"):
        with pytest.raises(openai.BadRequestError) as error:
            compact(model=model, input=HISTORY)  # type: ignore[arg-type]
        refused.append(error.value.response.json())
    return [first.http_response.json(), chained.http_response.json(), other.output_text, refused]


def test_vercel_needs_provider_model_ids_and_answers_as_openai(tmp_path: Path) -> None:
    path = tmp_path / "vercel.yaml"
    with CompactionServer(dialect="vercel", deterministic=True) as server:
        with use_cassette(path, record_mode="once", dialect="vercel") as recording:
            live = vercel_run(client_for(server))
        upstream = [r.json()["model"] for r in server.requests]
        base_url = server.base_url
    first, chained, other, refused = live
    # OpenAI's answer as it is: the user turns, then one compaction item
    assert [(i["type"], i.get("role")) for i in first["output"]] == [
        ("message", "user"),
        ("message", "user"),
        ("compaction", None),
    ]
    assert chained["usage"]["input_tokens_details"]["cached_tokens"] > 0
    assert other == "Echo: hi"
    assert [r["error"]["param"] for r in refused] == ["model", "model"]
    assert "'provider/model'" in refused[0]["error"]["message"]
    assert "routed to OpenAI" in refused[1]["error"]["message"]
    # forwarded unchanged apart from the model id (the refusals never reach the upstream)
    assert upstream[:3] == ["openai/gpt-5.4", "openai/gpt-5.4", "anthropic/claude-sonnet-4.5"]
    assert recording.violations == [] and recording.drift == []

    with use_cassette(path, record_mode="none") as replay:
        client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=5)
        assert vercel_run(client) == live
    assert (replay.replayed, replay.dialect) == (5, "vercel")
    # no overlay: Vercel's wire is OpenAI's, under either profile
    assert report_of(path, "vercel", strict=True) == report_of(path, "openai", strict=True)
    assert report_of(path, "vercel", strict=True) == ([], [])


def test_vercel_is_detected_by_its_host_only(tmp_path: Path) -> None:
    path = tmp_path / "unnamed.yaml"
    with CompactionServer(dialect="vercel", deterministic=True) as server:
        with use_cassette(path, record_mode="once") as recording:
            client_for(server).responses.compact(model="openai/gpt-5.4", input=HISTORY)  # type: ignore[arg-type]
        origin = server.url
    # 127.0.0.1:<port>/v1 is any OpenAI-compatible server: no guess from the port or the path
    assert recording.dialect_for(recording.exchanges[0].uri).name == "openai"
    assert yaml.safe_load(path.read_text())["compaction"]["dialect"] == "openai"
    moved = recording.exchanges[0].uri.replace(origin, "https://ai-gateway.vercel.sh")
    found = detect_dialect(moved)
    assert found is not None and found.name == "vercel"


# -- detection and the CLI ------------------------------------------------------------------------


DETECTED: list[tuple[str, str | None]] = [
    ("https://api.x.ai/v1/responses/compact", "xai"),
    ("https://us.api.x.ai/v1/responses", "xai"),
    ("https://api.x.ai.example/v1/responses/compact", None),
    ("https://openrouter.ai/api/v1/responses", "openrouter"),
    ("https://openrouter.ai/api/v1/responses/compact", "openrouter"),
    ("http://127.0.0.1:8080/api/v1/responses", "openrouter"),
    ("https://openrouter.ai/api/v1/chat/completions", None),
    ("https://ai-gateway.vercel.sh/v1/responses/compact", "vercel"),
    ("https://ai-gateway.vercel.sh/v1/responses", "vercel"),
    ("http://127.0.0.1:3000/v1/responses/compact", None),
    ("https://gw.example/api/llm/responses", None),  # TrueFoundry: by its compact path only
]


def test_gateways_are_detected_by_host_or_their_own_prefix_never_by_port() -> None:
    found = {uri: detect_dialect(uri) for uri, _ in DETECTED}
    assert {uri: d.name if d else None for uri, d in found.items()} == dict(DETECTED)


def test_openrouter_is_the_only_gateway_serving_api_v1() -> None:
    # TrueFoundry mounts the API under /api/llm; no other profile answers under /api/v1.
    for name in DIALECTS:
        profile = get_dialect(name)
        assert all(not p.startswith("/api/v1/") for p in profile.compact_paths), name
    assert get_dialect("openrouter").compact_paths == ()


@pytest.mark.parametrize(
    ("dialect", "suffix"), [("xai", "/v1"), ("openrouter", "/api/v1"), ("vercel", "/v1")]
)
def test_serve_speaks_the_gateway_dialect(dialect: str, suffix: str) -> None:
    command = [sys.executable, "-c", "from pytest_compaction.cli import main; main()"]
    process = subprocess.Popen(
        [*command, "serve", "--dialect", dialect, "--deterministic"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.endswith(suffix) and "127.0.0.1" in base_url
        client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=5)
        if dialect == "openrouter":
            answer = client.responses.create(model="openai/gpt-4o", input="hi")
            assert answer.output_text == "Echo: hi"
            with pytest.raises(openai.NotFoundError):
                client.responses.compact(model="openai/gpt-4o", input="hi")
        else:
            model = "grok-4.5" if dialect == "xai" else "openai/gpt-5.4"
            out = client.responses.compact(model=model, input="hi")
            kinds = [item.type for item in out.output]
            assert kinds == (["compaction"] if dialect == "xai" else ["message", "compaction"])
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_validate_takes_the_gateway_dialects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "error.json"
    file.write_text(json.dumps({"code": "Some resource has been exhausted", "error": "slow down"}))
    assert main(["validate", "--kind", "error", "--dialect", "xai", str(file)]) == 0
    assert main(["validate", "--kind", "error", "--dialect", "openrouter", str(file)]) == 1
    out = capsys.readouterr().out
    assert "dialect openrouter" in out
