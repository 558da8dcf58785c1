"""A web page cannot talk to the embedded server or the proxy on loopback.

DNS rebinding makes a browser send a foreign name as ``Host`` to 127.0.0.1; a cross-site request
carries the page's ``Origin``. Both are answered 403 with an OpenAI-shaped error, and the proxy
neither forwards nor records them. Clients that name a loopback host are served as before, and
a listener beyond loopback serves any name, with a warning from the command.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pytest_compaction import CompactionServer
from pytest_compaction.proxy._proxy import CompactionProxy

BODY = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hello"}]}
AUTH = {"authorization": "Bearer sk-host-" + "5" * 40}

REFUSED = [
    {"host": "evil.example"},
    {"host": "evil.example:8080"},
    {"host": "127.0.0.1.evil.example"},
    {"host": "localhost.evil.example"},
    {"host": "[::2]"},
    {"origin": "http://evil.example"},
    {"origin": "null"},
    {"origin": "http://127.0.0.1.evil.example:3000"},
]
SERVED = [
    {},
    {"host": "localhost"},
    {"host": "LOCALHOST:1234"},
    {"host": "app.localhost"},
    {"host": "127.0.0.2"},
    {"host": "[::1]:80"},
    {"origin": "http://localhost:3000"},
    {"origin": "http://127.0.0.1:5173"},
]


@pytest.fixture(scope="module")
def server() -> Iterator[CompactionServer]:
    with CompactionServer() as srv:
        yield srv


def compact(base: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        base + "/responses/compact", json=BODY, headers={**AUTH, **headers}, timeout=30
    )


@pytest.mark.parametrize("headers", REFUSED, ids=lambda h: f"{next(iter(h))}={h[next(iter(h))]}")
def test_the_server_refuses_a_request_a_web_page_may_have_sent(
    server: CompactionServer, headers: dict[str, str]
) -> None:
    answer = compact(server.base_url, headers)
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert error["code"] == "host_not_allowed" and error["type"] == "invalid_request_error"
    shown = next(iter(headers.values()))
    assert f"{shown!r} is not a loopback" in error["message"]
    assert "DNS rebinding" in error["message"]


@pytest.mark.parametrize(
    "headers", SERVED, ids=lambda h: "+".join(f"{k}={v}" for k, v in h.items())
)
def test_the_server_serves_clients_that_name_a_loopback_host(
    server: CompactionServer, headers: dict[str, str]
) -> None:
    answer = compact(server.base_url, headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["object"] == "response.compaction"


def test_the_proxy_refuses_them_without_forwarding_or_recording(
    tmp_path: Path, server: CompactionServer
) -> None:
    cassette = tmp_path / "c.yaml"
    with CompactionProxy(server.base_url, cassette, record_mode="all") as proxy:
        for headers in REFUSED:
            answer = compact(proxy.url, headers)
            assert answer.status_code == 403, (headers, answer.text)
            assert answer.json()["error"]["code"] == "host_not_allowed"
        assert proxy.recorded == 0
        assert compact(proxy.url, {"host": "localhost"}).status_code == 200
    assert proxy.recorded == 1 and cassette.exists()


def test_a_listener_beyond_loopback_serves_any_name_and_the_command_warns() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_compaction", "serve", "--host", "0.0.0.0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://0.0.0.0:"), url
        local = url.replace("0.0.0.0", "127.0.0.1")
        answer = compact(local, {"host": "gateway.internal", "origin": "http://evil.example"})
        assert answer.status_code == 200, answer.text
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert f"pytest-compaction serve: warning: listening on {url}, beyond loopback" in stderr


def test_a_loopback_listener_prints_no_warning() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_compaction", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("http://127.0.0.1:")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert "warning" not in stderr
