"""Replay never touches the network: every client, and raw sockets, fail fast and clearly.

A live server on 127.0.0.1 counts the TCP connections it accepts. In record mode ``none`` each
client tries to reach it; each must fail with an error that names the cause, and the server must
have seen no connection at all. Positive controls show the same calls do connect once the guard
is off, so the count is a real measurement.

The bypasses a plain patch of ``socket.socket.connect`` misses are tried too, each in a replay
through ``use_cassette`` and through a real pytest run with the plugin: connections opened before
the replay (HTTP keep-alive, raw, TLS, asyncio, connected UDP), sockets made from the C type
``_socket.socket``, UDP ``sendmsg``, and the other lookup functions. Servers counting
connections, requests and datagrams must see nothing new, and each replay must fail with the
refusal named, also when the code catches the error and carries on.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import http.client
import itertools
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    """Answers every GET/POST with a small JSON body; counts accepted connections and requests.

    With ``tls``, each accepted connection is wrapped (the handshake is done before it counts).
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.connections = 0
        self.requests = 0
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self._answer()

            def _answer(self) -> None:
                owner.requests += 1
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
                sock, address = super().get_request()
                if tls is not None:
                    sock = tls.wrap_socket(sock, server_side=True)
                owner.connections += 1
                return sock, address

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


# -------------------------------------------------------------------------------------------------
# Bypasses: connections opened before the replay, lookups and sockets the patches do not see,
# and refusals the code swallows.


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate for a TLS server")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1")
    subject = ("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
    subprocess.run(
        [openssl, "req", "-x509", *ec, *subject, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


class DatagramCounter:
    """A UDP socket on 127.0.0.1 that keeps every datagram it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self._received: list[bytes] = []
        self._changed = threading.Condition()
        self._markers = itertools.count()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            with self._changed:
                self._received.append(data)
                self._changed.notify_all()

    def received(self) -> list[bytes]:
        """What arrived, once every datagram sent before this call has (loopback keeps order)."""
        marker = b"marker %d" % next(self._markers)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(marker, ("127.0.0.1", self.port))
        with self._changed:
            assert self._changed.wait_for(lambda: marker in self._received, timeout=5)
            return [d for d in self._received if not d.startswith(b"marker ")]

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


@dataclass
class Targets:
    """The live servers a bypass tries to reach: HTTP, HTTPS and UDP, all on 127.0.0.1."""

    tcp: CountingServer
    tls: CountingServer
    udp: DatagramCounter
    client_tls: ssl.SSLContext

    def snapshot(self) -> tuple[int, int, int, int, int]:
        """What reached them so far (call it outside a replay: it sends a UDP marker)."""
        tcp, tls = self.tcp, self.tls
        return (
            tcp.connections,
            tcp.requests,
            tls.connections,
            tls.requests,
            len(self.udp.received()),
        )


@pytest.fixture
def targets(certificate: tuple[Path, Path]) -> Iterator[Targets]:
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(*certificate)
    client_tls = ssl.create_default_context(cafile=str(certificate[0]))
    with contextlib.ExitStack() as stack:
        tcp = CountingServer()
        stack.callback(tcp.close)
        tls = CountingServer(tls=server_tls)
        stack.callback(tls.close)
        udp = DatagramCounter()
        stack.callback(udp.close)
        yield Targets(tcp, tls, udp, client_tls)


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "the server did not see the connection"
        time.sleep(0.01)


# A bypass is prepared before the replay (it may open a connection then) and returns the attempt
# the replaying code makes. Each attempt that gets through completes an exchange, so the server
# has counted it by the time the attempt returns.
Attempt = Callable[[], object]
Prepare = Callable[[Targets, contextlib.ExitStack], Attempt]
UNRESOLVABLE = "compaction-replay.invalid"
TEST_NET = "192.0.2.1"  # documentation range: no host has it


def _http_client_kept_alive(t: Targets, stack: contextlib.ExitStack) -> Attempt:
    conn = http.client.HTTPConnection("127.0.0.1", t.tcp.port, timeout=5)
    stack.callback(conn.close)
    conn.request("GET", "/before")
    conn.getresponse().read()

    def attempt() -> object:
        conn.request("GET", "/during")
        return conn.getresponse().read()

    return attempt


def _asyncio_stream_opened_earlier(t: Targets, stack: contextlib.ExitStack) -> Attempt:
    seen = t.tcp.connections + 1
    loop = asyncio.new_event_loop()
    stack.callback(loop.close)
    reader, writer = loop.run_until_complete(asyncio.open_connection("127.0.0.1", t.tcp.port))
    stack.callback(writer.transport.abort)
    _until(lambda: t.tcp.connections >= seen)

    async def exchange() -> bytes:
        writer.write(REQUEST)  # the transport sends with socket.send
        await writer.drain()
        return await reader.readexactly(5)

    return lambda: loop.run_until_complete(exchange())


def _socket_opened_earlier(t: Targets, stack: contextlib.ExitStack) -> Attempt:
    seen = t.tcp.connections + 1
    sock = stack.enter_context(socket.create_connection(("127.0.0.1", t.tcp.port), timeout=5))
    _until(lambda: t.tcp.connections >= seen)

    def attempt() -> object:
        sock.sendall(REQUEST)
        return sock.recv(5)

    return attempt


def _tls_socket_opened_earlier(t: Targets, stack: contextlib.ExitStack) -> Attempt:
    seen = t.tls.connections + 1
    raw = socket.create_connection(("127.0.0.1", t.tls.port), timeout=5)
    sock = stack.enter_context(t.client_tls.wrap_socket(raw, server_hostname="127.0.0.1"))
    _until(lambda: t.tls.connections >= seen)  # the server's side of the handshake may lag

    def attempt() -> object:
        sock.sendall(REQUEST)  # SSLSocket.sendall writes through SSLSocket.send
        return sock.recv(5)

    return attempt


def _udp_connected_earlier(t: Targets, stack: contextlib.ExitStack) -> socket.socket:
    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.connect(("127.0.0.1", t.udp.port))
    return sock


def _udp_send_connected_earlier(t: Targets, stack: contextlib.ExitStack) -> Attempt:
    sock = _udp_connected_earlier(t, stack)
    return lambda: sock.send(b"datagram")


def _udp_sendmsg_connected_earlier(t: Targets, stack: contextlib.ExitStack) -> Attempt:
    sock = _udp_connected_earlier(t, stack)
    return lambda: sock.sendmsg([b"datagram"])


def _udp_sendmsg_to_address(t: Targets, stack: contextlib.ExitStack) -> Attempt:
    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    return lambda: sock.sendmsg([b"datagram"], [], 0, ("127.0.0.1", t.udp.port))


def _c_socket(stack: contextlib.ExitStack, kind: int) -> _socket.socket:
    # _socket.socket is the C type: none of socket.socket's Python methods are in the way.
    sock = _socket.socket(socket.AF_INET, kind)
    stack.callback(sock.close)
    sock.settimeout(5)
    return sock


def _c_socket_connect(t: Targets, stack: contextlib.ExitStack) -> Attempt:
    def attempt() -> object:
        sock = _c_socket(stack, socket.SOCK_STREAM)
        sock.connect(("127.0.0.1", t.tcp.port))
        sock.send(REQUEST)
        return sock.recv(5)

    return attempt


def _c_socket_connect_ex(t: Targets, stack: contextlib.ExitStack) -> Attempt:
    def attempt() -> object:
        sock = _c_socket(stack, socket.SOCK_STREAM)
        assert sock.connect_ex(("127.0.0.1", t.tcp.port)) == 0
        sock.send(REQUEST)
        return sock.recv(5)

    return attempt


def _c_socket_sendto(t: Targets, stack: contextlib.ExitStack) -> Attempt:
    return lambda: _c_socket(stack, socket.SOCK_DGRAM).sendto(
        b"datagram", ("127.0.0.1", t.udp.port)
    )


def _call(function: Callable[..., object], *args: object) -> Prepare:
    return lambda t, stack: lambda: function(*args)


def _send_to(server: str) -> Callable[[Targets], str]:
    def what(t: Targets) -> str:
        port = getattr(t, server).port
        return f"a send to 127.0.0.1:{port} over a connection opened earlier"

    return what


def _connection_to(server: str) -> Callable[[Targets], str]:
    return lambda t: f"a connection to 127.0.0.1:{getattr(t, server).port}"


# (prepare, what the refusal names), by id
BYPASSES: dict[str, tuple[Prepare, Callable[[Targets], str]]] = {
    "http.client-kept-alive": (_http_client_kept_alive, _send_to("tcp")),
    "asyncio-stream-opened-earlier": (_asyncio_stream_opened_earlier, _send_to("tcp")),
    "socket-opened-earlier": (_socket_opened_earlier, _send_to("tcp")),
    "tls-socket-opened-earlier": (_tls_socket_opened_earlier, _send_to("tls")),
    "udp-send-connected-earlier": (_udp_send_connected_earlier, _send_to("udp")),
    "udp-sendmsg-connected-earlier": (_udp_sendmsg_connected_earlier, _send_to("udp")),
    "udp-sendmsg-to-address": (_udp_sendmsg_to_address, _connection_to("udp")),
    "_socket-connect": (_c_socket_connect, _connection_to("tcp")),
    "_socket-connect_ex": (_c_socket_connect_ex, _connection_to("tcp")),
    "_socket-sendto": (_c_socket_sendto, _connection_to("udp")),
    "gethostbyname": (
        _call(socket.gethostbyname, UNRESOLVABLE),
        lambda t: f"a DNS lookup of {UNRESOLVABLE!r}",
    ),
    "gethostbyname_ex": (
        _call(socket.gethostbyname_ex, UNRESOLVABLE),
        lambda t: f"a DNS lookup of {UNRESOLVABLE!r}",
    ),
    "_socket-getaddrinfo": (
        _call(_socket.getaddrinfo, UNRESOLVABLE, 443),
        lambda t: f"a DNS lookup of {UNRESOLVABLE!r}",
    ),
    "gethostbyaddr": (
        _call(socket.gethostbyaddr, TEST_NET),
        lambda t: f"a reverse DNS lookup of {TEST_NET!r}",
    ),
    "getnameinfo": (
        _call(socket.getnameinfo, (TEST_NET, 443), 0),
        lambda t: f"a reverse DNS lookup of {TEST_NET!r}",
    ),
}
# asyncio hands a failed write to the protocol: the writer only sees "Connection lost".
LOST = {"asyncio-stream-opened-earlier"}
# Lookups reach no server that counts: they show they were stopped by raising NetworkBlocked
# (unguarded, these names give the resolver's own error or answer).
LOOKUPS = {
    "gethostbyname",
    "gethostbyname_ex",
    "_socket-getaddrinfo",
    "gethostbyaddr",
    "getnameinfo",
}


def _refusal_lines(what: str, path: object) -> list[str]:
    return [
        f"compaction: {what} was refused while cassette {path} replayed (record mode 'none')",
        "the test fails even when the code caught the error and carried on",
        "record the cassette (record mode 'once' or 'new_episodes')",
        "list the host in ignore_hosts (ignore_localhost for 127.0.0.1)",
    ]


def _swallowing(attempt: Attempt) -> None:
    with contextlib.suppress(Exception):  # a library that falls back to a cache, say
        attempt()


@pytest.mark.parametrize("kind", sorted(BYPASSES))
def test_each_bypass_is_refused_and_fails_the_replay_even_when_swallowed(
    tmp_path: Path, targets: Targets, kind: str
) -> None:
    prepare, describe = BYPASSES[kind]
    path = tmp_path / "c.yaml"
    with contextlib.ExitStack() as stack:
        raised, swallowed = prepare(targets, stack), prepare(targets, stack)
        before = targets.snapshot()
        with pytest.raises(Exception) as info, use_cassette(path, record_mode="none") as rec:
            raised()
        what = describe(targets)
        if kind not in LOST:
            # The error the code sees: the existing message, raised or wrapped by the client.
            blocked = f"compaction: {what} was blocked: cassette {path} is replaying"
            assert blocked in str(info.value)
        assert all(line in "\n".join(rec.problems) for line in _refusal_lines(what, path))
        with pytest.raises(ReplayError) as failed, use_cassette(path, record_mode="none") as rec:
            _swallowing(swallowed)
        assert all(line in str(failed.value) for line in _refusal_lines(what, path))
        assert "Traceback" not in str(failed.value)
        assert targets.snapshot() == before, "a replay reached a live server"
        assert not is_blocking()
        if kind not in LOOKUPS:
            # Control: without the guard the same attempt does reach the server.
            prepare(targets, stack)()
            assert targets.snapshot() != before


class _OpenedEarlier:
    """A pytest plugin: a session fixture that prepares every bypass before any test replays."""

    def __init__(self, targets: Targets) -> None:
        self.targets = targets
        self.before: tuple[int, ...] | None = None

    @pytest.fixture(scope="session")
    def bypass(self) -> Iterator[dict[tuple[str, str], Attempt]]:
        with contextlib.ExitStack() as stack:
            attempts = {
                (kind, variant): BYPASSES[kind][0](self.targets, stack)
                for kind in BYPASSES
                for variant in ("raised", "swallowed")
            }
            self.before = self.targets.snapshot()
            yield attempts


PLUGIN_BYPASSES = """
import pytest

KINDS = {kinds!r}


@pytest.mark.compaction
@pytest.mark.parametrize("kind", KINDS)
def test_raised(bypass, kind):
    bypass[kind, "raised"]()


@pytest.mark.compaction
@pytest.mark.parametrize("kind", KINDS)
def test_swallowed(bypass, kind):
    try:
        bypass[kind, "swallowed"]()
    except Exception:
        pass
"""


def test_the_plugin_fails_each_bypass_even_when_the_test_swallows_it(
    pytester: pytest.Pytester, targets: Targets
) -> None:
    kinds = sorted(BYPASSES)
    pytester.makepyfile(test_net=PLUGIN_BYPASSES.format(kinds=kinds))
    plugin = _OpenedEarlier(targets)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", plugins=[plugin])
    result.assert_outcomes(failed=2 * len(kinds))
    reports = {r.nodeid: r.longreprtext for r in result.reprec.getfailures()}  # type: ignore[attr-defined]
    for kind in kinds:
        what = BYPASSES[kind][1](targets)
        for test in ("test_raised", "test_swallowed"):
            text = reports[f"test_net.py::{test}[{kind}]"]
            assert "compaction: " + what + " was refused while cassette " in text, (kind, text)
            assert all(line in text for line in _refusal_lines(what, "")[1:]), (kind, text)
            assert "Traceback" not in text
    assert plugin.before is not None
    assert targets.snapshot() == plugin.before, "a replayed test reached a live server"
    assert not is_blocking()


def test_connections_opened_earlier_to_allowed_hosts_keep_working(
    tmp_path: Path, targets: Targets
) -> None:
    with contextlib.ExitStack() as stack:
        by_address = _http_client_kept_alive(targets, stack)
        by_name = _http_client_kept_alive(targets, stack)  # 127.0.0.1, allowed as "localhost"
        tls = _tls_socket_opened_earlier(targets, stack)
        with use_cassette(tmp_path / "a.yaml", record_mode="none", ignore_localhost=True):
            assert json.loads(bytes(by_address()))["path"] == "/during"  # type: ignore[arg-type]
            assert tls() == b"HTTP/"
        with use_cassette(tmp_path / "b.yaml", record_mode="none", ignore_hosts=["localhost"]):
            assert json.loads(bytes(by_name()))["path"] == "/during"  # type: ignore[arg-type]
    assert targets.tcp.requests == 4 and targets.tls.requests == 1


def test_numeric_and_loopback_lookups_stay_allowed(tmp_path: Path) -> None:
    with use_cassette(tmp_path / "c.yaml", record_mode="none") as rec:
        numeric = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
        assert socket.getnameinfo((TEST_NET, 443), numeric) == (TEST_NET, "443")
        assert socket.gethostbyname("127.0.0.1") == "127.0.0.1"
        socket.gethostbyaddr("127.0.0.1")
    assert rec.problems == []


def test_a_refusal_swallowed_in_another_thread_fails_the_replay(
    tmp_path: Path, targets: Targets
) -> None:
    path = tmp_path / "c.yaml"
    with contextlib.ExitStack() as stack:
        attempt = _socket_opened_earlier(targets, stack)
        before = targets.snapshot()
        with pytest.raises(ReplayError) as failed, use_cassette(path, record_mode="none"):
            worker = threading.Thread(target=_swallowing, args=(attempt,))
            worker.start()
            worker.join()
        assert targets.snapshot() == before
    what = f"a send to 127.0.0.1:{targets.tcp.port} over a connection opened earlier"
    assert all(line in str(failed.value) for line in _refusal_lines(what, path))
