"""What the embedded server and the proxy share as local HTTP services.

Where one listens (address family and URL), how it serves from a background thread, and how a
command keeps one up until SIGINT or SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

# How often serve_forever looks for shutdown(): short, so that stopping a service is quick.
POLL_INTERVAL = 0.05


def http_url(host: str, port: int) -> str:
    """``http://host:port``; an IPv6 literal goes in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class LoopbackServerMixin:
    """What the embedded server and the proxy share as listeners.

    The backlog is the system's maximum, so that a burst of parallel clients is queued rather
    than reset; a client that resets or drops its connection mid-exchange is its own business,
    not a traceback on the terminal.
    """

    request_queue_size = socket.SOMAXCONN

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # reset, broken pipe, aborted
            return
        super().handle_error(request, client_address)  # type: ignore[misc]


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
