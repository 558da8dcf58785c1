"""Replay never touches the network: every client, and raw sockets, fail fast and clearly.

A live server on 127.0.0.1 counts the TCP connections it accepts. In record mode ``none`` each
client tries to reach it; each must fail with an error that names the cause, and the server must
have seen no connection at all. Positive controls show the same calls do connect once the guard
is off, so the count is a real measurement.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from support.loopback import Loopback, QuietHandler

from pytest_compaction.replay._netguard import NetworkBlocked, block_network, is_blocking
from pytest_compaction.replay._recorder import ReplayError, RequestNotRecorded, use_cassette

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class CountingServer:
    """Answers every GET/POST with a small JSON body; counts accepted connections."""

    def __init__(self) -> None:
        self.connections = 0
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self._answer()

            def _answer(self) -> None:
                body = json.dumps({"object": "other", "path": self.path}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # raw clients hang up once they have read the status line

            def get_request(self) -> tuple[socket.socket, Any]:
                request = super().get_request()
                owner.connections += 1
                return request

        self.loopback = Loopback(Handler, server_class=Server, poll_interval=0.05)
        self.port = self.loopback.port
        self.origin = self.loopback.origin

    def close(self) -> None:
        self.loopback.close()


@pytest.fixture
def live() -> Iterator[CountingServer]:
    server = CountingServer()
    try:
        yield server
    finally:
        server.close()


# Each raw call completes an HTTP exchange, so a connection that got through is counted.
REQUEST = b"GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def _raw_socket(server: CountingServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(REQUEST)
        assert sock.recv(5) == b"HTTP/"


def _raw_socket_ipv4_connect(server: CountingServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(REQUEST)
        assert sock.recv(5) == b"HTTP/"


def _raw_socket_connect_ex(server: CountingServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        assert sock.connect_ex(("127.0.0.1", server.port)) == 0
        sock.sendall(REQUEST)
        assert sock.recv(5) == b"HTTP/"


def _asyncio_stream(server: CountingServer) -> None:
    async def go() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(REQUEST)
        assert await reader.readexactly(5) == b"HTTP/"
        writer.close()
        await writer.wait_closed()

    asyncio.run(go())


def _httpx_sync(server: CountingServer) -> None:
    httpx.get(server.origin + "/v1/models", timeout=5)


def _httpx_async(server: CountingServer) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            await client.post(server.origin + "/v1/other", json={"model": "m"})

    asyncio.run(go())


def _httpx2_sync(server: CountingServer) -> None:
    httpx2.get(server.origin + "/v1/models", timeout=5)


def _httpx2_async(server: CountingServer) -> None:
    async def go() -> None:
        async with httpx2.AsyncClient(timeout=5) as client:
            await client.get(server.origin + "/v1/models")

    asyncio.run(go())


def _requests(server: CountingServer) -> None:
    requests = pytest.importorskip("requests", reason="requests is not installed")
    requests.post(server.origin + "/v1/other", json={"model": "m"}, timeout=5)


def _urllib3(server: CountingServer) -> None:
    urllib3 = pytest.importorskip("urllib3", reason="urllib3 is not installed")
    with urllib3.PoolManager(retries=False) as pool:
        pool.request("GET", server.origin + "/v1/models", timeout=5)


def _urllib_request(server: CountingServer) -> None:
    with urllib.request.urlopen(server.origin + "/v1/models", timeout=5) as response:
        response.read()


# (client, the error class a replay must raise, text the message must contain)
HTTP_CLIENTS: dict[str, Callable[[CountingServer], None]] = {
    "httpx": _httpx_sync,
    "httpx-async": _httpx_async,
    "httpx2": _httpx2_sync,
    "httpx2-async": _httpx2_async,
    "requests": _requests,
    "urllib3": _urllib3,
    "urllib.request": _urllib_request,
}
RAW: dict[str, Callable[[CountingServer], None]] = {
    "socket.create_connection": _raw_socket,
    "socket.connect": _raw_socket_ipv4_connect,
    "socket.connect_ex": _raw_socket_connect_ex,
    "asyncio.open_connection": _asyncio_stream,
}


@pytest.mark.parametrize("client", sorted(HTTP_CLIENTS))
def test_http_clients_get_a_replay_error_and_no_connection_is_made(
    tmp_path: Path, live: CountingServer, client: str
) -> None:
    call = HTTP_CLIENTS[client]
    path = tmp_path / "c.yaml"
    with pytest.raises(RequestNotRecorded) as info, use_cassette(path, record_mode="none"):
        call(live)
    message = str(info.value)
    assert "cannot be replayed" in message and str(path) in message
    assert "does not exist; record it with" in message
    assert live.connections == 0
    assert not is_blocking()
    # Control: recording, the same call does reach the server.
    with use_cassette(path, record_mode="once"):
        call(live)
    assert live.connections >= 1


@pytest.mark.parametrize("client", sorted(RAW))
def test_raw_sockets_are_refused_while_replaying(
    tmp_path: Path, live: CountingServer, client: str
) -> None:
    call = RAW[client]
    path = tmp_path / "c.yaml"
    with pytest.raises(ReplayError) as outer, use_cassette(path, record_mode="none"):
        with pytest.raises(NetworkBlocked) as info:
            call(live)
        httpx.get(live.origin + "/v1/models")  # an unrecorded request still fails at exit too
    message = str(info.value)
    assert f"a connection to 127.0.0.1:{live.port} was blocked" in message
    assert f"cassette {path} is replaying (record mode 'none')" in message
    assert "ignore_localhost" in message
    assert isinstance(info.value, ConnectionRefusedError)  # clients close their socket
    assert "cannot be replayed" in str(outer.value)
    assert live.connections == 0
    # Control: outside the block the guard is gone and the same call connects.
    assert not is_blocking()
    call(live)
    assert live.connections == 1


def test_host_names_are_not_resolved_so_offline_runs_fail_with_the_cause(tmp_path: Path) -> None:
    with use_cassette(tmp_path / "c.yaml", record_mode="none", raise_on_exit=False):
        with pytest.raises(NetworkBlocked, match=r"a DNS lookup of 'api\.openai\.com' was blocked"):
            socket.create_connection(("api.openai.com", 443), timeout=5)
        with pytest.raises(NetworkBlocked, match="DNS lookup"):
            socket.getaddrinfo("example.invalid", 80)
        # Local names and literals involve no query and stay usable (e.g. to bind a server).
        assert socket.getaddrinfo("localhost", 80)
        assert socket.getaddrinfo("127.0.0.1", 80)


def test_other_threads_are_blocked_too_and_unix_sockets_are_not(
    tmp_path: Path, live: CountingServer
) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            _raw_socket(live)
        except BaseException as exc:
            errors.append(exc)

    with use_cassette(tmp_path / "c.yaml", record_mode="none", raise_on_exit=False):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        left, right = socket.socketpair(socket.AF_UNIX)
        with left, right:
            left.sendall(b"ok")
            assert right.recv(2) == b"ok"
    assert len(errors) == 1 and isinstance(errors[0], NetworkBlocked)
    assert live.connections == 0


def test_ignore_localhost_lets_replay_reach_a_local_service(
    tmp_path: Path, live: CountingServer
) -> None:
    with use_cassette(tmp_path / "c.yaml", record_mode="none", ignore_localhost=True):
        _raw_socket(live)
        assert httpx.get(live.origin + "/v1/models").json()["object"] == "other"
    assert live.connections == 2


def test_a_recorded_exchange_replays_offline_through_every_http_client(
    tmp_path: Path, live: CountingServer
) -> None:
    clients = {k: v for k, v in HTTP_CLIENTS.items() if k not in ("requests", "urllib3")}
    for name in ("requests", "urllib3"):
        try:
            __import__(name)
        except ImportError:
            continue
        clients[name] = HTTP_CLIENTS[name]
    for name, call in clients.items():
        path = tmp_path / f"{name}.yaml"
        with use_cassette(path, record_mode="once"):
            call(live)
    seen = live.connections
    live.close()
    for name, call in clients.items():
        with use_cassette(tmp_path / f"{name}.yaml", record_mode="none") as rec:
            call(live)
        assert rec.replayed == 1, name
    assert live.connections == seen


def test_nested_guards_and_restoration() -> None:
    original = socket.socket.connect
    with block_network(["127.0.0.1"], reason="outer"):
        with block_network([], reason="inner"), pytest.raises(NetworkBlocked, match="inner"):
            socket.create_connection(("127.0.0.1", 9), timeout=1)
        assert is_blocking()
    assert not is_blocking()
    assert socket.socket.connect is original
    assert "connect" not in vars(socket.socket)


PLUGIN_TEST = """
import socket
import pytest

PORT = {port}


@pytest.mark.compaction
def test_raw_socket_in_a_replayed_test():
    socket.create_connection(("127.0.0.1", PORT), timeout=5).close()
"""


def test_the_plugin_blocks_raw_sockets_during_a_replayed_test(
    pytester: pytest.Pytester, live: CountingServer
) -> None:
    pytester.makepyfile(test_net=PLUGIN_TEST.format(port=live.port))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*NetworkBlocked: compaction: a connection to 127.0.0.1:{live.port} was blocked*"]
    )
    assert live.connections == 0
    assert not is_blocking()
