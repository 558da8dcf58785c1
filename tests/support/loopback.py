"""The loopback HTTP server behind the tests' stand-in upstreams.

A test that needs an upstream the embedded compaction server cannot play (slow event streams,
TLS, altered or secret-bearing answers, counted connections) writes only its request handler,
usually a :class:`QuietHandler`, and serves it with :class:`Loopback`: a threaded stdlib server
on 127.0.0.1 at a free port, stopped by :meth:`Loopback.close` or by leaving a ``with`` block.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler speaking HTTP/1.1 (keep-alive, as the real API does) that logs nothing."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY each answer waits
    # ~40 ms on Nagle's algorithm and the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a line per request on stderr would bury the test's own output


class Loopback:
    """``handler`` served on 127.0.0.1 at a free port, each connection in its own daemon thread.

    ``server_class`` is for servers that change how connections are accepted or how their
    errors are reported (TLS, counting, clients killed mid-request). ``poll_interval`` is how
    often the serving loop looks for a shutdown request, so how long :meth:`close` may wait.
    """

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
        poll_interval: float = 0.5,
    ) -> None:
        # Port 0: the system picks a free one, so tests running side by side never collide.
        self.server = server_class(("127.0.0.1", 0), handler)
        # A handler may be blocked on a client that never comes back: it must not keep the
        # interpreter alive, and close() must not wait for it.
        self.server.daemon_threads = True
        self.port: int = self.server.server_port
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()  # waits for the serving loop, not for handlers still running
        self.server.server_close()

    def __enter__(self) -> Loopback:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
