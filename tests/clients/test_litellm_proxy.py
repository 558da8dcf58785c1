"""The real LiteLLM proxy in front of the embedded server, recorded through with the openai SDK.

The proxy (``litellm[proxy]`` from PyPI) runs as a subprocess on 127.0.0.1 with the embedded
server as its OpenAI upstream: no database, a master key, the local model price list. LiteLLM
pins ``openai<3``, so the proxy runs from its own virtual environment (see
tests/support/litellm_env.py) while this process records through it with the ``openai>=3``
SDK. A socket audit hook installed in the proxy process logs every connection and name lookup,
so the test proves the proxy never reached beyond the loopback interface. The exchanges are
recorded, then replayed with both processes stopped and validated under the ``litellm`` dialect
profile.

Deselect with ``-m "not integration"``: starting the proxy takes tens of seconds.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from support.litellm_env import PROXY_MODULES, Venv, litellm_env, require_venv, unavailable

from pytest_compaction import CompactionServer
from pytest_compaction.contract._dialects import validate_with_dialect
from pytest_compaction.replay._recorder import Recording, use_cassette

pytestmark = pytest.mark.integration

MODEL = "gpt-5.4"
MASTER_KEY = "sk-proxy-master-0123456789"
UPSTREAM_KEY = "sk-upstream-0123456789"
STARTUP_TIMEOUT = 180.0  # seconds; a cold start on two busy cores has taken over 30
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]

# Runs in the proxy's interpreter: log every TCP connection and every lookup of a name that is
# not local, then start the proxy exactly as the ``litellm`` command does.
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
class Run:
    """What one proxy session recorded, kept for the checks that examine it."""

    cassette: Path
    recording: Recording
    proxy_url: str
    responses: list[Any]
    errors: list[openai.APIStatusError]
    upstream: list[tuple[str, str, bytes]]
    netlog: str
    upstream_port: int
    server: CompactionServer  # stopped; it still opens its own compaction tokens


def start_proxy(
    venv: Venv, workdir: Path, upstream: str
) -> tuple[subprocess.Popen[bytes], str, Path]:
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
        "general_settings": {
            "master_key": MASTER_KEY,
            # With a master key, LiteLLM otherwise encrypts response ids with it: this keeps the
            # documented resp_ + base64("litellm:custom_llm_provider:...") form.
            "disable_responses_id_security": True,
        },
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    netlog = workdir / "net.log"
    stderr = workdir / "proxy.stderr"
    command = [str(venv.python), "-c", LAUNCHER, str(netlog), "--config", "config.yaml"]
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
                f"the LiteLLM proxy ({venv.python}, litellm {venv.litellm_version}) exited "
                f"with status {proc.returncode} before it was ready; stderr:\n{tail(stderr)}"
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
                f"the LiteLLM proxy ({venv.python}) did not answer /health/liveliness within "
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


def client(proxy_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy_url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=60)


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


@pytest.fixture
def run(tmp_path: Path) -> Run:
    venv = require_venv(PROXY_MODULES)
    cassette = tmp_path / "through-litellm.yaml"
    server = CompactionServer(deterministic=True).start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        upstream_port = server.port
        proc, url, netlog = start_proxy(venv, tmp_path, server.base_url)
        with use_cassette(
            cassette, record_mode="once", dialect="litellm", raise_on_exit=False
        ) as rec:
            responses, errors = scenario(client(url))
        upstream = [(r.method, r.path, r.body) for r in server.requests]
    finally:
        if proc is not None:
            stop_proxy(proc)
        server.stop()
    return Run(
        cassette=cassette,
        recording=rec,
        proxy_url=url,
        responses=responses,
        errors=errors,
        upstream=upstream,
        netlog=netlog.read_text() if netlog.exists() else "",
        upstream_port=upstream_port,
        server=server,
    )


def interactions(run: Run) -> list[dict[str, Any]]:
    doc = yaml.safe_load(run.cassette.read_text())
    items: list[dict[str, Any]] = doc["interactions"]
    return items


def body_of(interaction: dict[str, Any]) -> Any:
    return json.loads(interaction["response"]["body"]["string"])


def decoded(response_id: str) -> dict[str, str]:
    """LiteLLM's id: resp_ + base64 of 'litellm:custom_llm_provider:P;model_id:M;response_id:R'."""
    assert response_id.startswith("resp_")
    text = base64.b64decode(response_id.removeprefix("resp_"), validate=True).decode()
    assert text.startswith("litellm:"), text
    return dict(part.split(":", 1) for part in text.removeprefix("litellm:").split(";"))


def check_recorded_through_the_proxy_and_validated_under_the_litellm_profile(run: Run) -> None:
    rec = run.recording
    assert (rec.recorded, rec.replayed, rec.validated) == (5, 0, 5)
    assert rec.violations == [] and rec.problems == []
    doc = yaml.safe_load(run.cassette.read_text())
    assert doc["compaction"]["dialect"] == "litellm"
    uris = [i["request"]["uri"] for i in doc["interactions"]]
    assert uris == [run.proxy_url + "/v1/responses/compact"] * 5
    codes = [i["response"]["status"]["code"] for i in doc["interactions"]]
    assert codes == [200, 200, 200, 400, 400]
    text = run.cassette.read_text()
    assert MASTER_KEY not in text and UPSTREAM_KEY not in text


def check_response_ids_are_litellms_and_route_back_to_the_upstream(run: Run) -> None:
    bodies = [body_of(i) for i in interactions(run)[:3]]
    assert [b["id"] for b in bodies] == [r.id for r in run.responses]
    model_id = interactions(run)[0]["response"]["headers"]["x-litellm-model-id"][0]
    ids = [decoded(b["id"]) for b in bodies]
    assert {i["custom_llm_provider"] for i in ids} == {"openai"}
    assert {i["model_id"] for i in ids} == {model_id}

    # Each decodes to the upstream's own id: the embedded server keeps what it answered, and
    # the chained call found the second answer by the id the proxy turned back.
    compacts = [json.loads(body) for _, path, body in run.upstream if path.endswith("/compact")]
    assert [c["model"] for c in compacts] == [MODEL] * 4  # the unknown model never got through
    assert compacts[2]["previous_response_id"] == ids[1]["response_id"]
    assert len({i["response_id"] for i in ids}) == 3
    assert all(i["response_id"].startswith("resp_") for i in ids)
    *_, new_turn, compaction = bodies[2]["output"]
    assert new_turn["content"] == [{"type": "input_text", "text": "And 5+5?"}]
    assert run.server.open_token(compaction["encrypted_content"])

    # The compaction token went through the proxy both ways untouched.
    token = bodies[0]["output"][-1]["encrypted_content"]
    assert compacts[1]["input"][-2] == {"id": "cmp_0001", "type": "compaction"} | {
        "encrypted_content": token
    }


def check_proxy_errors_keep_the_envelope_with_the_status_as_code(run: Run) -> None:
    own, passed_on = (body_of(i)["error"] for i in interactions(run)[3:])
    assert [e.status_code for e in run.errors] == [400, 400]
    assert own["code"] == passed_on["code"] == "400"
    assert own["type"] == passed_on["type"] == "invalid_request_error"
    assert "no-such-model" in own["message"]
    # The upstream's error arrives as text inside LiteLLM's message; its param is dropped.
    assert passed_on["message"].startswith("litellm.BadRequestError: OpenAIException - ")
    assert "cmp_forged could not be verified" in passed_on["message"]
    assert passed_on["param"] is None


def check_replayed_with_proxy_and_server_stopped(run: Run) -> None:
    with use_cassette(run.cassette) as rec:
        responses, errors = scenario(client(run.proxy_url))
    assert rec.dialect == "litellm"
    assert (rec.recorded, rec.replayed, rec.validated) == (0, 5, 5)
    assert rec.violations == [] and rec.problems == []
    rec.assert_all_played()
    replayed = [r.model_dump(warnings=False) for r in responses]
    assert replayed == [r.model_dump(warnings=False) for r in run.responses]
    assert [e.status_code for e in errors] == [400, 400]
    assert [e.body for e in errors] == [e.body for e in run.errors]


def check_the_proxy_only_ever_talked_to_loopback(run: Run) -> None:
    lines = run.netlog.splitlines()
    assert [line for line in lines if line.startswith("outside")] == []
    # The hook did watch the proxy's traffic: its calls to the embedded server are logged.
    assert f"loopback connect 127.0.0.1:{run.upstream_port}" in lines


def check_the_plain_openai_profile_rejects_what_the_litellm_profile_allows(run: Run) -> None:
    """LiteLLM writes ``created_by: null`` on compaction items, which OpenAI's schema forbids;
    the many other fields it adds (mostly null) are drift under the plain profile."""
    body = body_of(interactions(run)[0])
    compaction = len(body["output"]) - 1
    assert body["output"][compaction]["created_by"] is None
    litellm = validate_with_dialect("response", body, dialect="litellm")
    plain = validate_with_dialect("response", body, dialect="openai")
    assert litellm.valid, litellm.violations
    assert [v.path for v in plain.violations] == [f"/output/{compaction}/created_by"]
    assert {"/model", "/usage/cost", "/status"} <= {d.path for d in plain.drift}


def test_litellm_proxy_in_front_of_the_embedded_server(run: Run) -> None:
    # One test, one proxy: under xdist, separate tests could each start a proxy of their own.
    check_recorded_through_the_proxy_and_validated_under_the_litellm_profile(run)
    check_response_ids_are_litellms_and_route_back_to_the_upstream(run)
    check_proxy_errors_keep_the_envelope_with_the_status_as_code(run)
    check_the_proxy_only_ever_talked_to_loopback(run)
    check_the_plain_openai_profile_rejects_what_the_litellm_profile_allows(run)
    check_replayed_with_proxy_and_server_stopped(run)
