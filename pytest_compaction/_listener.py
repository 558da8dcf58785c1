"""What the embedded server and the proxy share as local HTTP services.

Where one listens (address family and URL), its listener and handler (:class:`LoopbackServer`,
:class:`LoopbackHandler`: the backlog, HTTP/1.1 keep-alive, the open connections), its life
(:class:`LocalService`: started, served from a background thread, stopped), and how a command
keeps one up until SIGINT or SIGTERM.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar
from urllib.parse import urlsplit

# How often serve_forever looks for shutdown(): short, so that stopping a service is quick.
POLL_INTERVAL = 0.05


def is_loopback(host: str) -> bool:
    """``localhost``, a ``*.localhost`` name (RFC 6761) or a loopback address literal."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def foreign_origin(headers: Any, also: str = "") -> str | None:
    """Why a request to a loopback listener may come from a web page, else None.

    A page on another site can reach ``127.0.0.1`` by DNS rebinding (its own name resolving
    to the loopback address; the browser then sends that name as ``Host``) or by a plain
    cross-site request (the browser sends the page's ``Origin``). Clients that are not
    browsers send the loopback name they dialled and no ``Origin``. ``also``: one more name
    allowed (the one the listener was given, when it resolves to a loopback address).
    """

    def allowed(name: str | None) -> bool:
        return name is not None and (is_loopback(name) or name == also.lower())

    host = headers.get("host")
    if host is not None and not allowed(_hostname("//" + host)):
        return f"Host {host!r} is not a loopback name"
    origin = headers.get("origin")
    if origin is not None and not allowed(_hostname(origin)):
        return f"Origin {origin!r} is not a loopback origin"
    return None


def _hostname(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:  # an invalid IPv6 literal in brackets
        return None


def http_url(host: str, port: int) -> str:
    """``http://host:port``; an IPv6 literal goes in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class LoopbackServer(ThreadingHTTPServer):
    """What the embedded server and the proxy share as listeners.

    The backlog is the system's maximum, so that a burst of parallel clients is queued rather
    than reset; a client that resets or drops its connection mid-exchange is its own business,
    not a traceback on the terminal. Listening on a loopback address, it answers only requests
    that name a loopback host and come from no foreign origin (see :func:`foreign_origin`).
    The listener knows its open connections and which are in an exchange (``connections``,
    guarded by ``cond``; see :class:`LoopbackHandler`), so that stopping can end idle
    keep-alive connections at once.
    """

    request_queue_size = socket.SOMAXCONN
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[LoopbackHandler]) -> None:
        self.connections: dict[socket.socket, bool] = {}  # connection -> in an exchange
        self.cond = threading.Condition()
        self.address_family = address_family(address[0])
        super().__init__(address, handler)
        self.name = address[0]  # as given: a name that resolves to loopback is allowed as Host
        self.loopback_only = is_loopback(str(self.server_address[0]))

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # reset, broken pipe, aborted
            return
        super().handle_error(request, client_address)

    def close_connections(self, *, idle_only: bool = False) -> None:
        """Shut the open connections down (``idle_only``: those not in an exchange).

        A handler thread blocked reading an idle keep-alive connection wakes and ends.
        """
        with self.cond:
            targets = [c for c, busy in self.connections.items() if not (idle_only and busy)]
        for conn in targets:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class LoopbackHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; each connection is in the listener's ``connections`` while open."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY each answer
    # waits ~40 ms on Nagle's algorithm and the client's delayed ACK.
    disable_nagle_algorithm = True
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    server: LoopbackServer
    logger: ClassVar[logging.Logger]  # where each request's line goes, at debug level

    def setup(self) -> None:
        super().setup()
        with self.server.cond:
            self.server.connections[self.connection] = False

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the peer or a fault already closed the socket
        finally:
            with self.server.cond:
                self.server.connections.pop(self.connection, None)
                self.server.cond.notify_all()

    def log_message(self, format: str, *args: Any) -> None:
        self.logger.debug("%s - %s", self.address_string(), format % args)

    def parse_request(self) -> bool:
        """Read the request line and headers; refuse (403) what a web page may have sent."""
        if not super().parse_request():
            return False
        server = self.server
        why = foreign_origin(self.headers, server.name) if server.loopback_only else None
        if why is None:
            return True
        message = (
            f"{why}: a web page may have sent this request (DNS rebinding or a cross-site "
            "request), so it is refused; clients name 127.0.0.1, ::1 or localhost. To serve "
            "another name, listen with it as --host."
        )
        self.logger.warning("%s", message)
        doc = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "host_not_allowed",
            }
        }
        body = json.dumps(doc).encode("utf-8")
        self.close_connection = True
        self.send_response_only(403)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)
        return False


def address_family(host: str) -> socket.AddressFamily:
    """IPv6 for an IPv6 literal (``::1``), else IPv4: socketserver binds IPv4 only by default."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def serve_in_background(httpd: socketserver.BaseServer, name: str) -> threading.Thread:
    """Run ``httpd.serve_forever`` in a started daemon thread named ``name``."""
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": POLL_INTERVAL},
        name=name,
        daemon=True,
    )
    thread.start()
    return thread


L = TypeVar("L", bound=LoopbackServer)


class LocalService(Generic[L]):
    """A service on ``host:port`` served from a background thread.

    Use as a context manager (``with Service(...) as service: ...``) or call :meth:`start` and
    :meth:`stop`; ``port`` and ``url`` say where it listens once started. A service sets
    ``_host`` and ``_port`` and says how it listens (:meth:`_listen`) and what it closes after
    the serving thread has ended (:meth:`_close`); :meth:`_started` and :meth:`_stopping` run
    just before serving begins and just before it ends.
    """

    _role: ClassVar[str]  # "server", "proxy": in messages and in the serving thread's name
    _error: ClassVar[type[Exception]]  # what a bad address or a service not started raises
    _host: str
    _port: int
    _httpd: L | None = None
    _thread: threading.Thread | None = None

    def _listen(self) -> L:
        raise NotImplementedError

    def _started(self) -> None:
        """Listening, not serving yet."""

    def _stopping(self) -> None:
        """Still serving, about to stop."""

    def _close(self, httpd: L) -> None:
        """The serving thread has ended: close the listener and what else the service holds."""
        raise NotImplementedError

    def start(self) -> Self:
        """Listen and serve from a background thread; a started service is left as it is."""
        if self._httpd is not None:
            return self
        try:
            httpd = self._listen()
        except OSError as exc:
            raise self._error(f"cannot listen on {self._host}:{self._port}: {exc}") from None
        self._httpd = httpd
        self._started()
        self._thread = serve_in_background(httpd, f"compaction-{self._role}-{self.port}")
        return self

    def stop(self) -> None:
        """Stop serving, join the serving thread, then close (see the service's ``_close``)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping()
        httpd.shutdown()
        if thread is not None:
            thread.join()
        self._close(httpd)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise self._error(f"the {self._role} is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Where it listens, e.g. ``http://127.0.0.1:8123``."""
        return http_url(self._host, self.port)

    @property
    def beyond_loopback(self) -> bool:
        """It listens where other machines can reach it (``0.0.0.0``, a network address)."""
        return self._httpd is not None and not self._httpd.loopback_only


@contextmanager
def stop_on_signal() -> Iterator[threading.Event]:
    """An event SIGINT and SIGTERM set while the block runs; the old handlers come back after."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_until_signal(url: str, stop: Callable[[], None]) -> None:
    """Print ``url`` for the caller and wait for SIGINT or SIGTERM, then ``stop()``.

    The handlers stay installed while ``stop`` runs: a second signal must not cut short the
    writing of a cassette or the end of exchanges in flight.
    """
    with stop_on_signal() as signalled:
        try:
            print(url, flush=True)
            while not signalled.wait(0.2):  # a timed wait: signal handlers run between waits
                pass
        finally:
            stop()
