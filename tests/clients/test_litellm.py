"""The LiteLLM SDK as a client: ``litellm.compact_responses`` recorded against the embedded server.

The SDK comes with the dev extra (tests/support/litellm_env.py) and runs in a subprocess of
this interpreter: tests/clients/litellm_client/sdk_session.py drives it under the recorder while
this process owns the embedded servers and examines the cassettes, the report and the output it
leaves behind.

LiteLLM sends synchronous calls through an ``httpx.Client`` and asynchronous ones through an
``httpx.AsyncClient`` whose transport is aiohttp, so both of vcrpy's httpx and aiohttp
interceptions are exercised. Every exchange is recorded with the embedded servers running, then
replayed in a second run with them stopped; a socket audit hook in the client process proves
nothing left the loopback interface.

Deselect with ``-m "not integration"``: each client run imports litellm, which takes seconds.
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from support.litellm_env import ROOT, SDK_MODULES, LiteLLM, litellm_env, require_litellm

from pytest_compaction import CompactionServer
from pytest_compaction.cassette._exchange import CassetteData, Exchange
from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.server._tokens import DETERMINISTIC_KEY
from pytest_compaction.server._wire import decode_litellm_id, open_litellm_id

pytestmark = pytest.mark.integration

CLIENT = Path(__file__).parent / "litellm_client" / "sdk_session.py"
API_KEY = "sk-test-litellm-sdk-0123456789"  # as in the client
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]
LITELLM_ID_PREFIX = "litellm:custom_llm_provider:openai;"
RUN_TIMEOUT = 300.0  # seconds; importing litellm on two busy cores takes several
SERVERS = ("sync", "broken", "async", "dialect")


@dataclass
class Phase:
    """One run of the client: what it reported and printed."""

    report: dict[str, Any]
    stdout: str
    stderr: str

    def step(self, name: str) -> dict[str, Any]:
        step: dict[str, Any] = self.report["steps"][name]
        return step


@dataclass
class Session:
    cassettes: Path
    servers: dict[str, CompactionServer]  # stopped; they still open their own tokens
    urls: dict[str, str]  # each server's base URL
    upstream: dict[str, list[Any]]  # the requests each server received
    recorded: Phase
    replayed: Phase


def run_client(litellm: LiteLLM, phase: str, workdir: Path, urls: dict[str, str]) -> Phase:
    report = workdir / f"{phase}.json"
    command = [str(litellm.python), str(CLIENT), phase, str(workdir), str(report)]
    command += [f"{name}={url}" for name, url in urls.items()]
    # This checkout's package comes first, whichever the environment has installed.
    env = litellm_env(PYTHONPATH=str(ROOT))
    done = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert done.returncode == 0, (
        f"the LiteLLM client's {phase} run exited with {done.returncode}\n"
        f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    return Phase(json.loads(report.read_text()), done.stdout, done.stderr)


@pytest.fixture
def session(tmp_path: Path) -> Session:
    litellm = require_litellm(SDK_MODULES)
    servers = {
        name: CompactionServer(deterministic=True, dialect="litellm" if name == "dialect" else None)
        for name in SERVERS
    }
    try:
        urls = {name: server.start().base_url for name, server in servers.items()}
        recorded = run_client(litellm, "record", tmp_path, urls)
    finally:
        for server in servers.values():
            server.stop()
    upstream = {name: server.requests for name, server in servers.items()}
    replayed = run_client(litellm, "replay", tmp_path, urls)
    return Session(tmp_path, servers, urls, upstream, recorded, replayed)


# -- reading what the client left ------------------------------------------------------------


def litellm_id(upstream_id: str, model_id: str | None = None) -> str:
    text = f"{LITELLM_ID_PREFIX}model_id:{model_id};response_id:{upstream_id}"
    return "resp_" + base64.b64encode(text.encode()).decode()


def decoded(response_id: str) -> str:
    assert response_id.startswith("resp_")
    return base64.b64decode(response_id.removeprefix("resp_"), validate=True).decode()


def bodies(exchanges: list[Exchange]) -> list[tuple[dict[str, Any], int, dict[str, Any]]]:
    return [
        (json.loads(ex.request_body or b""), ex.status, json.loads(ex.response_body))
        for ex in exchanges
    ]


def assert_clean(step: dict[str, Any], *, recorded: int = 0, replayed: int = 0) -> None:
    rec = step["recording"]
    assert (rec["recorded"], rec["replayed"]) == (recorded, replayed)
    assert rec["validated"] == recorded + replayed
    assert rec["violations"] == []
    assert rec["problems"] == []
    assert rec["unplayed"] is None


def connects(step: dict[str, Any]) -> list[str]:
    return [entry for entry in step["seen"] if " connect " in entry]


def outside(entries: list[str]) -> list[str]:
    return [entry for entry in entries if entry.startswith("outside")]


# -- checks ----------------------------------------------------------------------------------


def check_the_client_ran_both_phases_on_loopback(s: Session) -> None:
    for phase in (s.recorded, s.replayed):
        assert outside(phase.report["import_seen"]) == [], "importing litellm reached out"
        assert all(outside(step["seen"]) == [] for step in phase.report["steps"].values())
        assert "Traceback" not in phase.stderr, phase.stderr
        assert "Give Feedback" not in phase.stdout + phase.stderr
    assert s.recorded.stdout.splitlines() == [
        "record sync: recorded 4, replayed 0",
        "record broken: recorded 1, replayed 0",
        "record unseen: recorded 0, replayed 0",
        "record async: recorded 2, replayed 0",
        "record dialect: recorded 4, replayed 0",
    ]
    assert s.replayed.stdout.splitlines() == [
        "replay sync: recorded 0, replayed 4",
        "replay async: recorded 0, replayed 2",
        "replay dialect: recorded 0, replayed 4",
    ]
    # The audit hook did watch: recording connected to the servers, replay to nothing.
    seen = s.recorded.step("sync")["seen"]
    assert f"loopback connect 127.0.0.1:{urlsplit(s.urls['sync']).port}" in seen, seen
    assert all(connects(step) == [] for step in s.replayed.report["steps"].values())


def check_sync_calls_over_httpx_recorded(s: Session) -> None:
    step = s.recorded.step("sync")
    assert_clean(step, recorded=4)
    assert step["recording"]["record_mode"] == "once"
    path = s.cassettes / "litellm-sdk.yaml"
    cassette = load_cassette(path)
    assert cassette.dialect in (None, "openai")

    # On the wire: the provider prefix is gone, the compaction token went back untouched, and
    # the SDK decoded its own id back into the upstream's for previous_response_id.
    wire = s.upstream["sync"]
    assert [r.path for r in wire] == ["/v1/responses/compact"] * 4
    assert [r.json()["model"] for r in wire] == ["gpt-5.4"] * 4
    assert [ex.path for ex in cassette.exchanges] == ["/v1/responses/compact"] * 4
    (req1, _, resp1), (req2, _, resp2), (req3, _, resp3), (_, status, failed) = bodies(
        cassette.exchanges
    )
    assert req1 == {"model": "gpt-5.4", "input": HISTORY, "instructions": "Be brief."}
    assert req2["input"][-2] == resp1["output"][-1]
    assert s.servers["sync"].open_token(resp1["output"][-1]["encrypted_content"])
    assert req3 == {
        "model": "gpt-5.4",
        "input": [{"role": "user", "content": "And 5+5?"}],
        "previous_response_id": resp2["id"],
    }
    assert status == 400 and failed["error"]["code"] == "invalid_encrypted_content"
    assert failed["error"]["param"] == "input[0].encrypted_content"

    # The SDK rewrites ids after the wire: resp_ + base64 naming the provider and upstream id.
    first, second, third = step["responses"]
    assert first["id"] == litellm_id(resp1["id"])
    assert decoded(second["id"]) == f"{LITELLM_ID_PREFIX}model_id:None;response_id:{resp2['id']}"
    assert third["id"] == litellm_id(resp3["id"])
    assert len({resp1["id"], resp2["id"], resp3["id"]}) == 3
    assert first["object"] == "response.compaction"
    assert [item["type"] for item in first["output"]] == ["message", "message", "compaction"]
    error = step["error"]
    assert error["type"] == "BadRequestError" and error["status_code"] == 400
    assert "cmp_forged could not be verified" in error["message"]

    text = path.read_text()
    assert API_KEY not in text and "REDACTED" in text


def check_sync_replayed_offline(s: Session) -> None:
    recorded, step = s.recorded.step("sync"), s.replayed.step("sync")
    assert_clean(step, replayed=4)
    assert step["recording"]["record_mode"] == "none"
    assert step["responses"] == recorded["responses"]
    # The cassette stores bodies canonically, so compare the error by value, not by text.
    assert step["error"]["status_code"] == recorded["error"]["status_code"]
    assert "cmp_forged could not be verified" in step["error"]["message"]


def check_an_invalid_upstream_answer_is_caught_and_not_written(s: Session) -> None:
    rec = s.recorded.step("broken")["recording"]
    assert rec["recorded"] == 1
    assert any("usage" in v for v in rec["violations"]), rec["violations"]
    assert "The cassette was not written." in "\n".join(rec["problems"])
    assert not (s.cassettes / "broken.yaml").exists()
    assert len(s.upstream["broken"]) == 1  # the SDK itself got the unspoiled answer
    assert "usage" in s.recorded.step("broken")["responses"][0]


def check_async_calls_go_through_aiohttp(s: Session) -> None:
    # LiteLLM's async client hands requests to aiohttp: with vcrpy's aiohttp patch left out,
    # the call goes straight to the server and nothing is recorded.
    unseen = s.recorded.step("unseen")
    assert unseen["recording"]["recorded"] == 0 and unseen["recording"]["replayed"] == 0
    assert connects(unseen), "the unpatched call did not reach the server"
    assert not (s.cassettes / "unseen.yaml").exists()

    step = s.recorded.step("async")
    assert_clean(step, recorded=2)
    assert len(s.upstream["async"]) == 1 + 2
    (_, _, resp1), (req2, _, resp2) = bodies(
        load_cassette(s.cassettes / "litellm-async.yaml").exchanges
    )
    assert req2["previous_response_id"] == resp1["id"]
    first, second = step["responses"]
    assert first["id"] == litellm_id(resp1["id"]) and second["id"] == litellm_id(resp2["id"])

    again = s.replayed.step("async")
    assert_clean(again, replayed=2)
    assert again["responses"] == step["responses"]


def check_litellm_dialect_validates_under_its_profile(s: Session) -> None:
    """Against a LiteLLM-speaking server the id arrives sealed; the SDK wraps it as any id."""
    step = s.recorded.step("dialect")
    assert_clean(step, recorded=4)
    cassette: CassetteData = load_cassette(s.cassettes / "litellm-dialect.yaml")
    assert cassette.dialect == "litellm"
    (_, _, resp1), (_, _, resp2), (_, _, resp3), (_, status, failed) = bodies(cassette.exchanges)

    # The SDK does not know the sealed form: it wraps it in its own routing id, as any
    # upstream's, and unwraps it again for previous_response_id.
    assert [r["id"] for r in step["responses"]] == [
        litellm_id(resp1["id"]),
        litellm_id(resp2["id"]),
        litellm_id(resp3["id"]),
    ]
    # Sealed as the proxy does with a master key; the routing id inside names the upstream's.
    assert decode_litellm_id(resp2["id"]) is None
    plain = open_litellm_id(resp2["id"], DETERMINISTIC_KEY)
    assert plain is not None and decoded(plain).startswith(LITELLM_ID_PREFIX + "model_id:")
    assert decoded(plain).endswith(";response_id:resp_0002")
    # The SDK sent the sealed id back untouched; the server opened it to its own.
    assert s.upstream["dialect"][2].json()["previous_response_id"] == resp2["id"]
    assert status == 400 and failed["error"]["code"] == "400"
    assert str(step["error"]["status_code"]) == failed["error"]["code"]

    again = s.replayed.step("dialect")
    assert again["recording"]["dialect"] == "litellm"
    assert_clean(again, replayed=4)
    assert again["responses"] == step["responses"]


def test_litellm_sdk_records_then_replays_offline(session: Session) -> None:
    # One test, two client runs: under xdist, separate tests would each import litellm twice.
    check_the_client_ran_both_phases_on_loopback(session)
    check_sync_calls_over_httpx_recorded(session)
    check_sync_replayed_offline(session)
    check_an_invalid_upstream_answer_is_caught_and_not_written(session)
    check_async_calls_go_through_aiohttp(session)
    check_litellm_dialect_validates_under_its_profile(session)
