"""Every message masks keys: replay misses, schema violations, upstream protocol errors.

A message quotes what it is about: the request's path and the closest recorded body (a replay
miss), the offending value (a key given as ``service_tier``, or as a property name), the header
line an upstream sent malformed. Test logs and proxy logs are often public, so each of these
is driven over real HTTP here and the key, in any of its forms, must appear nowhere: not in the
exception text, not in the proxy's HTTP answer, not in its log or its command's stderr, not in
pytest's output.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.echo import Echo, Reply
from support.leaks import shown

from pytest_compaction import CompactionServer
from pytest_compaction.proxy._proxy import MISS_STATUS, CompactionProxy
from pytest_compaction.replay._recorder import ReplayError, use_cassette

SK = "sk-proj-" + "Vb3nQ8" * 9
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIiwic2NvcGUiOiJhcGkifQ."
    "c2lnbmF0dXJlLW9mLXRoZS10b2tlbi0xMjM0NTY"
)
OWN = "Qx7mKp2Wd9.Lz4Rt8Ys1-gateway"  # the client's own credential: no pattern knows it
KEYS = [SK, JWT, OWN]
AUTH = {"authorization": f"Bearer {OWN}"}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server() -> Iterator[CompactionServer]:
    with CompactionServer() as srv:
        yield srv


# ---------------------------------------------------------------------------------------------
# Replay misses


def _miss_requests(base: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", f"{base}/keys/{SK}/usage", None),
        ("GET", f"{base}/models?token={JWT}", None),
        ("POST", f"{base}/responses/compact", {"model": "gpt-5.4", "input": f"note {SK}"}),
        ("POST", f"{base}/responses/compact", {"model": "gpt-5.4", "input": HI, "user": OWN}),
    ]


def test_a_proxy_replay_miss_masks_keys_in_its_answer_its_log_and_its_failure(
    tmp_path: Path, server: CompactionServer, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.yaml"
    with CompactionProxy(server.base_url, path, record_mode="once") as proxy:
        httpx.post(proxy.url + "/responses/compact", json={"model": "gpt-5.4", "input": HI})
    caplog.set_level("INFO", logger="pytest_compaction.proxy")
    with CompactionProxy(server.base_url, path, record_mode="none") as proxy:
        answers = [
            httpx.request(method, url, json=body, headers=AUTH)
            for method, url, body in _miss_requests(proxy.url + "/v1")
        ]
    assert [a.status_code for a in answers] == [MISS_STATUS] * 4
    details = answers[2].json()["compaction_proxy"]
    assert details["reason"] == "no_match" and details["closest"]["diff"]  # the diff is there
    for answer in answers:
        assert "cannot be replayed" in answer.json()["error"]["message"]
        assert shown(answer.content, KEYS) == [], answer.text
    assert shown(proxy.failure() or "", KEYS) == []
    assert "cannot be replayed" in caplog.text and shown(caplog.text, KEYS) == []


def test_a_recorder_replay_miss_masks_keys(tmp_path: Path, server: CompactionServer) -> None:
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once"):
        httpx.post(server.base_url + "/responses/compact", json={"model": "gpt-5.4", "input": HI})
    for method, url, body in _miss_requests(server.base_url):
        with pytest.raises(ReplayError) as info, use_cassette(path, record_mode="none"):
            httpx.request(method, url, json=body, headers=AUTH)
        assert "cannot be replayed" in str(info.value)
        assert shown(str(info.value), KEYS) == [], str(info.value)


# ---------------------------------------------------------------------------------------------
# Schema violations quote the offending value


BAD_BODIES = {
    "a key as service_tier": {"model": "gpt-5.4", "input": HI, "service_tier": SK},
    "a JWT as service_tier": {"model": "gpt-5.4", "input": HI, "service_tier": JWT},
    "the own key as service_tier": {"model": "gpt-5.4", "input": HI, "service_tier": OWN},
    "a key as a property name": {"model": "gpt-5.4", "input": HI, SK: True},
    "a key as a prompt_cache_key too long": {
        "model": "gpt-5.4",
        "input": HI,
        "prompt_cache_key": SK * 2,
    },
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_a_violation_quoting_a_key_is_masked_by_the_recorder(
    tmp_path: Path, server: CompactionServer, case: str
) -> None:
    path = tmp_path / "c.yaml"
    with (
        pytest.raises(ReplayError) as info,
        use_cassette(path, record_mode="once", strict=True) as rec,
    ):
        httpx.post(server.base_url + "/responses/compact", json=BAD_BODIES[case], headers=AUTH)
    message = str(info.value)
    assert "does not conform to schema version" in message and "request /" in message
    assert shown(message, KEYS) == [], message
    assert rec.violations and shown("\n".join(rec.violations + rec.drift), KEYS) == []


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_a_violation_quoting_a_key_is_masked_by_the_proxy(
    tmp_path: Path, server: CompactionServer, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.yaml"
    with CompactionProxy(
        server.base_url, path, record_mode="once", strict=True, fail_on_violation=422
    ) as proxy:
        answer = httpx.post(proxy.url + "/responses/compact", json=BAD_BODIES[case], headers=AUTH)
    assert answer.status_code == 422
    assert "does not conform" in answer.json()["error"]["message"]
    failure = proxy.failure() or ""
    assert "does not conform to schema version" in failure
    for text in (answer.text, failure, caplog.text, "\n".join(proxy.violations)):
        assert shown(text, KEYS) == [], text


PLUGIN_TESTS = """
import os

import httpx
import pytest

BASE = os.environ["MASK_BASE_URL"]


@pytest.mark.compaction
def test_service_tier_is_a_key():
    body = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}],
            "service_tier": os.environ["MASK_KEY"]}
    httpx.post(BASE + "/responses/compact", json=body)
"""


def test_through_the_plugin_no_output_quotes_the_key(
    pytester: pytest.Pytester, server: CompactionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASK_BASE_URL", server.base_url)
    monkeypatch.setenv("MASK_KEY", SK)
    pytester.makepyfile(test_mask=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("--compaction-record=once", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str() + result.stderr.str()
    assert "/service_tier" in out and "is not one of" in out
    assert "violation: exchange 0 request /service_tier" in out  # the terminal summary
    assert shown(out, KEYS) == []


# ---------------------------------------------------------------------------------------------
# Upstream protocol errors quote the header line they choke on


class _MalformedUpstream(socketserver.ThreadingTCPServer):
    """Answers with a header line without a colon that quotes the caller's key."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Malformed)
        self.origin = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}).start()


class _Malformed(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        request = self.request.recv(65536).decode("latin-1")
        token = next(
            (
                line.split(" ", 2)[-1]
                for line in request.split("\r\n")
                if line.lower().startswith("authorization:")
            ),
            "",
        )
        self.request.sendall(
            f"HTTP/1.1 200 OK\r\nx-echo {token} {SK}\r\ncontent-length: 2\r\n\r\nok".encode()
        )


@pytest.fixture
def malformed() -> Iterator[_MalformedUpstream]:
    upstream = _MalformedUpstream()
    try:
        yield upstream
    finally:
        upstream.shutdown()
        upstream.server_close()


def test_an_upstream_protocol_error_is_reported_without_the_header_values(
    tmp_path: Path, malformed: _MalformedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.yaml"
    with CompactionProxy(malformed.origin, path, record_mode="once") as proxy:
        answer = httpx.get(proxy.url + "/v1/models", headers=AUTH)
    assert answer.status_code == 502
    assert "could not be forwarded" in answer.json()["error"]["message"]
    assert "illegal header line" in answer.json()["error"]["message"]
    failure = proxy.failure() or ""
    for text in (answer.text, failure, caplog.text):
        assert shown(text, KEYS) == [], text


def test_a_header_the_upstream_client_refuses_is_reported_without_its_value(
    tmp_path: Path, server: CompactionServer
) -> None:
    path = tmp_path / "c.yaml"
    with CompactionProxy(server.base_url, path, record_mode="once") as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(
                (
                    "GET /models HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                    f"authorization: Bearer {OWN}\r\n"
                    f"x-debug: a\x00b {SK}\r\nconnection: close\r\n\r\n"
                ).encode()
            )
            raw = b""
            with contextlib.suppress(OSError):
                while chunk := conn.recv(65536):
                    raw += chunk
    assert raw.startswith(b"HTTP/1.1 502"), raw[:200]
    assert b"Illegal header value" in raw
    assert shown(raw, KEYS) == [] and shown(proxy.failure() or "", KEYS) == []


def test_the_proxy_command_prints_no_key(tmp_path: Path, server: CompactionServer) -> None:
    path = tmp_path / "c.yaml"
    command = [sys.executable, "-m", "pytest_compaction", "proxy"]
    process = subprocess.Popen(
        [*command, "--upstream", server.base_url, "--cassette", str(path), "--record", "once",
         "--strict", "--fail-on-violation", "422"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        body = {"model": "gpt-5.4", "input": HI, "service_tier": SK}
        bad = httpx.post(url + "/responses/compact", json=body, headers=AUTH)
        other = httpx.get(url + f"/keys/{OWN}/{SK}", headers=AUTH)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert bad.status_code == 422 and other.status_code == 404  # the server's own answer
    assert "is not one of" in err and "was not written to cassette" in err
    assert shown(out + err + bad.text, [SK, OWN]) == [], err


def test_messages_quoting_an_echoing_upstream_are_masked(tmp_path: Path) -> None:
    # A recorded answer that echoes the key is refused; the refusal names places only.
    with Echo() as echo:
        echo.route("/v1/models", lambda seen: Reply(status=500, body=f"boom {SK}".encode()))
        with CompactionProxy(echo.base_url, tmp_path / "c.yaml", record_mode="once") as proxy:
            httpx.get(proxy.url + "/models", headers=AUTH)
    failure = proxy.failure() or ""
    assert "response body (text) line 1: looks like" in failure
    assert "A body or URL holds it, which the proxy cannot scrub" in failure
    assert shown(failure, KEYS) == []
