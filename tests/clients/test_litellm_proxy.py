"""The real LiteLLM proxy in front of the embedded server, recorded through with the openai SDK.

The proxy (``litellm[proxy]``, pinned by the dev extra) runs from this environment as a
subprocess on 127.0.0.1, once for the module, with the embedded server as its OpenAI upstream: no
database, a master key (so response id security is on, as it is by default since 1.108), the
local model price list. A socket audit hook installed in the proxy process logs every connection
and name lookup, so the tests prove the proxy never reached beyond the loopback interface.

What is measured here is what the ``litellm`` dialect encodes: the compact replies (recorded,
replayed offline, checked ``--strict --dialect litellm``), a streamed server-side compaction
(recorded, replayed offline, judged under the dialect), the sealed response ids, and the error
texts and shapes, compared with what the embedded server's ``litellm`` dialect answers.

Deselect with ``-m "not integration"``: starting the proxy takes seconds.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from support.litellm_env import PROXY_MODULES, litellm_env, require_litellm, unavailable

from pytest_compaction import CompactionServer
from pytest_compaction.cli import main
from pytest_compaction.contract._dialects import validate_with_dialect
from pytest_compaction.replay._recorder import Recording, use_cassette
from pytest_compaction.server._tokens import DETERMINISTIC_KEY
from pytest_compaction.server._wire import decode_litellm_id, open_litellm_id

pytestmark = pytest.mark.integration

MODEL = "gpt-5.4"
MASTER_KEY = "sk-proxy-master-0123456789"
UPSTREAM_KEY = "sk-upstream-0123456789"
STARTUP_TIMEOUT = 180.0  # seconds; a cold start on two busy cores has taken over 30
UNUSED_BASE = "http://127.0.0.1:9/v1"  # the discard port: replay must not need a server
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]
# Long enough for a server-side compaction: LiteLLM and the API refuse a compact_threshold
# under 1000 tokens, and the embedded server counts a quarter of the bytes.
LONG_HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 2+2? " + "Please be precise. " * 300},
    *HISTORY[1:],
]
CONTEXT_MANAGEMENT = [{"type": "compaction", "compact_threshold": 1000}]
SEALED_ID = re.compile(r"^resp_[A-Za-z0-9_-]+=*$")
MANAGED_PREFIX = "litellm_proxy:responses_api:response_id:"

LAUNCHER = r"""
import ipaddress, sys

log = open(sys.argv.pop(1), "a", buffering=1)

def local(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or str(host).lower() in ("", "localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False

def hook(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple):
        where = "loopback" if local(args[1][0]) else "outside"
        log.write(f"{where} connect {args[1][0]}:{args[1][1]}\n")
    elif event == "socket.getaddrinfo" and not local(args[0]):
        log.write(f"outside getaddrinfo {args[0]!r}\n")

sys.addaudithook(hook)
from litellm import run_server

sys.argv[0] = "litellm"
sys.exit(run_server())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(nothing)"


@dataclass
class Proxy:
    """The running proxy and the embedded server behind it."""

    url: str
    server: CompactionServer
    netlog: Path
    workdir: Path


def start_proxy(workdir: Path, upstream: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    python = require_litellm(PROXY_MODULES).python
    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": upstream,
                    "api_key": UPSTREAM_KEY,
                },
            }
        ],
        # With a master key LiteLLM seals every response id (response id security).
        "general_settings": {"master_key": MASTER_KEY},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    netlog = workdir / "net.log"
    stderr = workdir / "proxy.stderr"
    command = [str(python), "-c", LAUNCHER, str(netlog), "--config", "config.yaml"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    started = time.monotonic()
    with (workdir / "proxy.stdout").open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=litellm_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            unavailable(
                f"the LiteLLM proxy exited with status {proc.returncode} before it was ready; "
                f"stderr:\n{tail(stderr)}"
            )
        try:
            with urllib.request.urlopen(url + "/health/liveliness", timeout=2) as answer:
                if answer.status == 200:
                    return proc, url, netlog
        except OSError:
            pass
        if time.monotonic() - started > STARTUP_TIMEOUT:
            stop_proxy(proc)
            unavailable(
                f"the LiteLLM proxy did not answer /health/liveliness within "
                f"{STARTUP_TIMEOUT:.0f} s; stderr:\n{tail(stderr)}"
            )
        time.sleep(0.25)


def stop_proxy(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("litellm-proxy")
    server = CompactionServer(deterministic=True).start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc, url, netlog = start_proxy(workdir, server.base_url)
        yield Proxy(url, server, netlog, workdir)
    finally:
        if proc is not None:
            stop_proxy(proc)
        server.stop()


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=MASTER_KEY, max_retries=0, timeout=60)


# -- the compact scenario, recorded once for the module ----------------------------------------


@dataclass
class Run:
    """What one recording through the proxy left, kept for the tests that examine it."""

    cassette: Path
    recording: Recording
    responses: list[Any]
    errors: list[openai.APIStatusError]
    upstream: list[tuple[str, str, bytes]]  # what the embedded server received meanwhile


def scenario(sdk: openai.OpenAI) -> tuple[list[Any], list[openai.APIStatusError]]:
    """Compact; again statelessly from its output; again by the proxy's id; then two errors."""
    first = sdk.responses.compact(model=MODEL, input=HISTORY, instructions="Be brief.")
    items = [item.model_dump(exclude_none=True, warnings=False) for item in first.output]
    second = sdk.responses.compact(
        model=MODEL, input=[*items, {"role": "user", "content": "And 4+4?"}]
    )
    third = sdk.responses.compact(
        model=MODEL,
        input=[{"role": "user", "content": "And 5+5?"}],
        previous_response_id=second.id,
    )
    errors: list[openai.APIStatusError] = []
    forged = {"type": "compaction", "id": "cmp_forged", "encrypted_content": "forged"}
    for model, history in (("no-such-model", HISTORY), (MODEL, [forged])):
        with pytest.raises(openai.APIStatusError) as info:
            sdk.responses.compact(model=model, input=history)
        errors.append(info.value)
    return [first, second, third], errors


@pytest.fixture(scope="module")
def run(proxy: Proxy) -> Run:
    cassette = proxy.workdir / "through-litellm.yaml"
    seen = len(proxy.server.requests)
    with use_cassette(cassette, record_mode="once", dialect="litellm", raise_on_exit=False) as rec:
        responses, errors = scenario(client(proxy.url + "/v1"))
    upstream = [(r.method, r.path, r.body) for r in proxy.server.requests[seen:]]
    return Run(cassette, rec, responses, errors, upstream)


def interactions(path: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = yaml.safe_load(path.read_text())["interactions"]
    return items


def body_of(interaction: dict[str, Any]) -> Any:
    return json.loads(interaction["response"]["body"]["string"])


def unsealed(response_id: str) -> dict[str, str]:
    """A sealed id opened as LiteLLM does: XSalsa20-Poly1305 under SHA-256 of the master key."""
    import nacl.secret

    raw = base64.urlsafe_b64decode(response_id.removeprefix("resp_"))
    box = nacl.secret.SecretBox(hashlib.sha256(MASTER_KEY.encode()).digest())
    text = box.decrypt(raw).decode()
    assert text.startswith(MANAGED_PREFIX), text
    inner, user, team = text.removeprefix(MANAGED_PREFIX).split(";")
    user, team = user.removeprefix("user_id:"), team.removeprefix("team_id:")
    plain = base64.b64decode(inner.removeprefix("resp_"), validate=True).decode()
    fields = dict(part.split(":", 1) for part in plain.removeprefix("litellm:").split(";"))
    return {"litellm_id": inner, "user": user, "team": team, "raw_bytes": str(len(raw)), **fields}


def test_compact_calls_are_recorded_through_the_proxy_under_the_litellm_profile(run: Run) -> None:
    rec = run.recording
    assert (rec.recorded, rec.replayed, rec.validated) == (5, 0, 5)
    assert rec.violations == [] and rec.problems == []
    doc = yaml.safe_load(run.cassette.read_text())
    assert doc["compaction"]["dialect"] == "litellm"
    codes = [i["response"]["status"]["code"] for i in doc["interactions"]]
    assert codes == [200, 200, 200, 400, 400]
    assert all(i["request"]["uri"].endswith("/v1/responses/compact") for i in doc["interactions"])
    text = run.cassette.read_text()
    assert MASTER_KEY not in text and UPSTREAM_KEY not in text


def test_response_ids_are_sealed_and_route_back_to_the_upstream(run: Run) -> None:
    bodies = [body_of(i) for i in interactions(run.cassette)[:3]]
    ids = [b["id"] for b in bodies]
    assert ids == [r.id for r in run.responses]
    assert all(SEALED_ID.match(i) and len(i) == 397 for i in ids), ids
    model_id = interactions(run.cassette)[0]["response"]["headers"]["x-litellm-model-id"][0]
    opened = [unsealed(i) for i in ids]
    # Sealed: nonce 24 + tag 16 + the managed text; inside, the documented routing id.
    assert {o["raw_bytes"] for o in opened} == {"294"}
    assert {(o["user"], o["team"]) for o in opened} == {("default_user_id", "")}
    assert {(o["custom_llm_provider"], o["model_id"]) for o in opened} == {("openai", model_id)}
    assert [decode_litellm_id(o["litellm_id"]) for o in opened] == [
        o["response_id"] for o in opened
    ]
    compacts = [json.loads(body) for _, path, body in run.upstream if path.endswith("/compact")]
    assert [c["model"] for c in compacts] == [MODEL] * 4  # the unknown model never got through
    assert compacts[2]["previous_response_id"] == opened[1]["response_id"] == "resp_0002"
    assert len({o["response_id"] for o in opened}) == 3
    # Nothing in the sealed id is readable as LiteLLM's plain form.
    assert all(decode_litellm_id(i) is None for i in ids)


def test_what_the_proxy_forwards_to_the_upstream_passes_the_compact_request_check(
    run: Run,
) -> None:
    # Gateways that inject /responses parameters (metadata, user, store...) into a compact
    # call get unknown_parameter from the API; LiteLLM 1.108.7 forwards only what was sent.
    from pytest_compaction.contract._judge import judge_request
    from pytest_compaction.schema._versions import resolve_version

    compacts = [json.loads(body) for _, path, body in run.upstream if path.endswith("/compact")]
    assert len(compacts) == 4
    sent = [
        {"model", "input", "instructions"},
        {"model", "input"},
        {"model", "input", "previous_response_id"},
        {"model", "input"},
    ]
    assert [set(c) for c in compacts] == sent
    version = resolve_version(None)
    for body in compacts:
        report = judge_request(
            "POST", "http://127.0.0.1/v1/responses/compact", body, version=version
        )
        assert report is not None and report.violations == (), report


def test_proxy_errors_have_litellms_texts_and_shapes(run: Run) -> None:
    own, passed_on = (body_of(i)["error"] for i in interactions(run.cassette)[3:])
    assert [e.status_code for e in run.errors] == [400, 400]
    assert own == {
        "message": "/responses/compact: Invalid model name passed in model=no-such-model. "
        "Call `/v1/models` to view available models for your key.",
        "type": "invalid_request_error",
        "param": None,
        "code": "400",
        "provider_specific_fields": {"error": own["message"]},
    }
    assert set(passed_on) == {"message", "type", "param", "code"}
    assert (passed_on["type"], passed_on["param"], passed_on["code"]) == (
        "invalid_request_error",
        None,
        "400",
    )
    # The upstream's whole error body as JSON text, LiteLLM's hint, and the router's verdict.
    prefix = "litellm.BadRequestError: OpenAIException - "
    assert passed_on["message"].startswith(prefix)
    upstream_text, _, rest = passed_on["message"].removeprefix(prefix).partition("\n\n")
    upstream = json.loads(upstream_text)
    assert upstream["error"]["code"] == "invalid_encrypted_content"
    assert upstream["error"]["param"] == "input[0].encrypted_content"
    assert rest.startswith(" This error occurs when load balancing Responses API")
    assert rest.endswith(
        f"\n\nLiteLLM: model group '{MODEL}' failed with the error above. No fallback was "
        "attempted."
    )


def test_strict_litellm_check_passes_the_real_recording_and_fails_a_broken_copy(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(run.cassette), "--strict", "--dialect", "litellm"]) == 0
    capsys.readouterr()
    # Under the plain profile the same replies carry what the spec does not declare.
    assert main(["check", str(run.cassette), "--strict", "--dialect", "openai"]) == 1
    plain = capsys.readouterr().out
    assert "usage.cost: undocumented property" in plain
    assert "output[2].created_by (type=compaction): expected string, got null" in plain

    doc = yaml.safe_load(run.cassette.read_text())
    broken = copy.deepcopy(doc)
    answer = json.loads(broken["interactions"][0]["response"]["body"]["string"])
    answer["usage"]["cost"] = "free"  # declared by the overlay: a number or null
    del answer["usage"]["total_tokens"]  # required by the spec
    broken["interactions"][0]["response"]["body"]["string"] = json.dumps(answer)
    spoiled = tmp_path / "broken.yaml"
    spoiled.write_text(yaml.safe_dump(broken))
    assert main(["check", str(spoiled), "--strict", "--dialect", "litellm"]) == 1
    out = capsys.readouterr().out
    assert "usage.cost: expected null or number, got string" in out
    assert "missing required property 'total_tokens'" in out

    # The same through validate, on the reply as a file.
    reply = tmp_path / "reply.json"
    reply.write_text(json.dumps(body_of(interactions(run.cassette)[0])))
    assert (
        main(["validate", "--kind", "response", "--strict", "--dialect", "litellm", str(reply)])
        == 0
    )
    broken_reply = tmp_path / "broken-reply.json"
    broken_reply.write_text(json.dumps(answer))
    command = ["validate", "--kind", "response", "--strict", "--dialect", "litellm"]
    assert main([*command, str(broken_reply)]) == 1


def test_compact_calls_replay_offline(run: Run) -> None:
    with use_cassette(run.cassette, record_mode="none") as rec:
        responses, errors = scenario(client(UNUSED_BASE))
    assert rec.dialect == "litellm"
    assert (rec.recorded, rec.replayed, rec.validated) == (0, 5, 5)
    assert rec.violations == [] and rec.problems == []
    rec.assert_all_played()
    replayed = [r.model_dump(warnings=False) for r in responses]
    assert replayed == [r.model_dump(warnings=False) for r in run.responses]
    assert [e.body for e in errors] == [e.body for e in run.errors]


# -- a streamed server-side compaction ---------------------------------------------------------


@dataclass
class Streamed:
    cassette: Path
    recording: Recording
    events: list[Any]


def stream_compaction(sdk: openai.OpenAI) -> list[Any]:
    stream = sdk.responses.create(
        model=MODEL, input=LONG_HISTORY, stream=True, context_management=CONTEXT_MANAGEMENT
    )
    return list(stream)


@pytest.fixture(scope="module")
def streamed(proxy: Proxy) -> Streamed:
    cassette = proxy.workdir / "stream-through-litellm.yaml"
    with use_cassette(cassette, record_mode="once", dialect="litellm", raise_on_exit=False) as rec:
        events = stream_compaction(client(proxy.url + "/v1"))
    return Streamed(cassette, rec, events)


def stream_events(path: Path) -> list[str]:
    """The data lines of the recorded stream."""
    (interaction,) = interactions(path)
    text: str = interaction["response"]["body"]["string"]
    return [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data:")]


def test_a_streamed_compaction_through_the_proxy_is_recorded_under_the_litellm_dialect(
    streamed: Streamed,
) -> None:
    rec = streamed.recording
    assert (rec.recorded, rec.validated) == (1, 1)
    assert rec.violations == [] and rec.problems == [], (rec.violations, rec.problems)
    assert streamed.cassette.exists()
    kinds = [event.type for event in streamed.events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.compaction.compacting" in kinds
    final = streamed.events[-1].response
    assert [item.type for item in final.output] == ["message", "compaction"]
    assert SEALED_ID.match(final.id) and unsealed(final.id)["response_id"].startswith("resp_")

    # What the proxy really sends: [DONE] last, and Responses without three required fields.
    lines = stream_events(streamed.cassette)
    assert lines[-1] == "[DONE]"
    events = [json.loads(line) for line in lines[:-1]]
    carried = [e["response"] for e in events if "response" in e]
    assert len(carried) == 3
    assert all({"error", "incomplete_details", "instructions"}.isdisjoint(r) for r in carried)
    assert {e["model"] for e in events} == {MODEL}
    assert len({r["id"] for r in carried}) == 1  # one sealed id for the whole stream


def test_the_litellm_dialect_accepts_exactly_what_the_proxy_changes_in_a_stream(
    streamed: Streamed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(streamed.cassette)
    assert main(["check", path, "--dialect", "litellm"]) == 0
    judged = capsys.readouterr().out
    assert "[DONE]" not in judged
    assert main(["check", path, "--dialect", "openai"]) == 1
    plain = capsys.readouterr().out
    for name in ("error", "incomplete_details", "instructions"):  # instructions: as a note
        assert f"/response/{name}: response: missing required property '{name}'" in plain
    assert "the data is not JSON: '[DONE]'" in plain  # noted under the plain profile

    # A Response that also lacks a required property the proxy keeps still fails under it.
    doc = yaml.safe_load(streamed.cassette.read_text())
    text = doc["interactions"][0]["response"]["body"]["string"]
    spoiled_text = text.replace('"object":"response",', "")
    assert spoiled_text != text
    doc["interactions"][0]["response"]["body"]["string"] = spoiled_text
    del doc["interactions"][0]["response"]["events"]  # so that the edited text replays
    spoiled = tmp_path / "spoiled-stream.yaml"
    spoiled.write_text(yaml.safe_dump(doc))
    assert main(["check", str(spoiled), "--dialect", "litellm"]) == 1
    assert "/response/object: response: missing required property 'object'" in (
        capsys.readouterr().out
    )


def test_a_streamed_compaction_replays_offline(streamed: Streamed) -> None:
    with use_cassette(streamed.cassette, record_mode="none") as rec:
        events = stream_compaction(client(UNUSED_BASE))
    assert rec.dialect == "litellm"
    assert (rec.recorded, rec.replayed, rec.validated) == (0, 1, 1)
    assert rec.violations == [] and rec.problems == []
    rec.assert_all_played()
    dumped = [e.model_dump(warnings=False) for e in events]
    assert dumped == [e.model_dump(warnings=False) for e in streamed.events]


# -- the embedded server's litellm dialect against the proxy's forms ---------------------------


def compare(proxy: Proxy, path: str, **request: Any) -> tuple[httpx.Response, httpx.Response]:
    """The same request to the real proxy and to an embedded server speaking its dialect."""
    with CompactionServer(dialect="litellm", deterministic=True) as embedded:
        real = httpx.post(proxy.url + path, timeout=60, **request)
        own = httpx.post(embedded.url + path, timeout=60, **request)
    return real, own


AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


def test_the_embedded_dialect_answers_errors_as_the_proxy_does(proxy: Proxy) -> None:
    forged = {"type": "compaction", "id": "cmp_forged", "encrypted_content": "forged"}
    cases: dict[str, dict[str, Any]] = {
        "forged token": {"json": {"model": MODEL, "input": [forged]}, "headers": AUTH},
        "no model": {"json": {"input": HISTORY}, "headers": AUTH},
        "no credentials": {"json": {"model": MODEL, "input": HISTORY}},
    }
    for case, request in cases.items():
        real, own = compare(proxy, "/v1/responses/compact", **request)
        assert (own.status_code, own.headers["content-type"]) == (
            real.status_code,
            real.headers["content-type"],
        ), case
        if real.headers["content-type"].startswith("application/json"):
            assert own.json() == real.json(), case
        else:
            assert own.text == real.text, case
    assert real.status_code == 500 and real.text == "Internal Server Error"
    for case in ("forged token", "no model"):
        real, _ = compare(proxy, "/v1/responses/compact", **cases[case])
        report = validate_with_dialect("error", real.json(), dialect="litellm", strict=True)
        assert report.valid, (case, report.violations)


def test_the_embedded_dialect_seals_response_ids_as_the_proxy_does(proxy: Proxy) -> None:
    request = {"json": {"model": MODEL, "input": HISTORY}, "headers": AUTH}
    with CompactionServer(dialect="litellm", deterministic=True) as embedded:
        real = httpx.post(proxy.url + "/v1/responses/compact", timeout=60, **request).json()
        own = httpx.post(embedded.url + "/v1/responses/compact", timeout=60, **request).json()
        again = {"model": MODEL, "input": "And 5+5?", "previous_response_id": own["id"]}
        chained = httpx.post(
            embedded.url + "/v1/responses/compact", json=again, headers=AUTH, timeout=60
        )
    assert SEALED_ID.match(own["id"]) and SEALED_ID.match(real["id"])
    assert len(own["id"]) == len(real["id"]) == 397
    raw = base64.urlsafe_b64decode(own["id"].removeprefix("resp_"))
    assert len(raw) == int(unsealed(real["id"])["raw_bytes"]) == 294
    assert decode_litellm_id(own["id"]) is None
    plain = open_litellm_id(own["id"], DETERMINISTIC_KEY)
    assert plain is not None and decode_litellm_id(plain) == "resp_0001"
    assert open_litellm_id(own["id"], b"another key of 32 bytes........") is None
    # The sealed id goes back as previous_response_id and finds the stored response.
    assert chained.status_code == 200, chained.text
    assert chained.json()["usage"]["input_tokens_details"]["cached_tokens"] > 0
    assert validate_with_dialect("response", own, dialect="litellm", strict=True).valid


def test_the_proxy_only_ever_talked_to_loopback(proxy: Proxy, run: Run, streamed: Streamed) -> None:
    lines = proxy.netlog.read_text().splitlines()
    assert [line for line in lines if line.startswith("outside")] == []
    # The hook did watch the proxy's traffic: its calls to the embedded server are logged.
    assert f"loopback connect 127.0.0.1:{proxy.server.port}" in lines
