"""The listening side of the proxy: HTTP/1.1 connections, request bodies, relayed answers.

The handler reads a request whole (``Content-Length`` or chunked, content coding undone for
matching) and passes it to the proxy's ``serve``; answers go back either whole, or chunk by chunk
as the upstream sends them, so a stream of server-sent events reaches the client event by event.
The server keeps track of which connections are busy, so that stopping can wait for the exchanges
in flight while closing idle keep-alive connections at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._listener import LoopbackHandler, LoopbackServer
from ..cassette._body import decode_body, max_cassette_bytes
from ..cassette._exchange import CassetteError, Headers
from ..cassette._secrets import mask_secrets

log = logging.getLogger("pytest_compaction.proxy")

# Connection-level headers: they describe one hop, so they are neither forwarded nor stored.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
FRAMING = frozenset({"content-length", "content-encoding", "transfer-encoding"})
NO_BODY_STATUSES = frozenset({204, 304})
RawHeaders = list[tuple[str, str]]


@dataclass
class Incoming:
    """One request as read: what is forwarded, and what is matched and stored."""

    method: str
    headers: RawHeaders
    body: bytes | None  # as received (possibly compressed)
    decoded_body: bytes | None  # content-encoding undone, what is matched and stored
    upstream_url: str


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    lname = name.lower()
    return next((v for k, v in headers if k.lower() == lname), None)


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Headers named in ``Connection`` are hop-by-hop too."""
    value = header(headers, "connection") or ""
    return {t.strip().lower() for t in value.split(",") if t.strip()}


def end_to_end(headers: Iterable[tuple[str, str]], *also: str) -> RawHeaders:
    items = list(headers)
    drop = HOP_BY_HOP | _connection_tokens(items) | {a.lower() for a in also}
    return [(k, v) for k, v in items if k.lower() not in drop]


def as_mapping(headers: Iterable[tuple[str, str]]) -> Headers:
    out: Headers = {}
    for key, value in headers:
        out.setdefault(key, []).append(value)
    return out


def error_body(message: str, kind: str, code: str, **details: Any) -> bytes:
    """An OpenAI-shaped error (SDKs show ``error.message``) with the proxy's details beside it."""
    doc = {
        "error": {"message": message, "type": kind, "param": None, "code": code},
        "compaction_proxy": details,
    }
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")


class ProxyHTTPServer(LoopbackServer):
    """Serves the proxy; knows which of its open connections are in an exchange."""

    daemon_threads = True  # stop() waits for exchanges itself, with a bound
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        serve: Callable[[ProxyHandler, Incoming], None],
        upstream_url: Callable[[str], str],
        mask: Callable[[str], str] = mask_secrets,
    ) -> None:
        self.serve = serve
        self.upstream_url = upstream_url
        self.mask = mask  # what every message quoting the request goes through
        self.responses: set[Any] = set()
        super().__init__(address, ProxyHandler)

    def drain(self, timeout: float) -> bool:
        """Wait until no exchange is in flight; idle keep-alive connections are closed."""
        self.close_connections(idle_only=True)
        with self.cond:
            return self.cond.wait_for(lambda: not any(self.connections.values()), timeout)

    def abort_all(self) -> None:
        with self.cond:
            responses = list(self.responses)
        for response in responses:
            with contextlib.suppress(Exception):
                response.close()
        self.close_connections()


class ProxyHandler(LoopbackHandler):
    """Reads one request at a time; answers whole or chunk by chunk."""

    server_version = "pytest-compaction-proxy"
    server: ProxyHTTPServer
    logger = log
    _chunked = False
    _left: int | None = None  # bytes of a sized answer still to send

    def _busy(self, busy: bool) -> None:
        with self.server.cond:
            if self.connection in self.server.connections:
                self.server.connections[self.connection] = busy
            self.server.cond.notify_all()

    def track(self, response: Any) -> None:
        with self.server.cond:
            self.server.responses.add(response)

    def untrack(self, response: Any) -> None:
        with self.server.cond:
            self.server.responses.discard(response)

    # -- methods ----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._busy(True)
        try:
            incoming = self._read()
            if incoming is not None:
                self.server.serve(self, incoming)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # an answer, not a dropped connection, whatever went wrong
            message = self.server.mask(
                f"compaction proxy: internal error: {type(exc).__name__}: {exc}"
            )
            log.error("%s", message)
            log.debug("internal error", exc_info=True)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.send_plain(500, error_body(message, "proxy_error", "internal_error"), {})
        finally:
            self._busy(False)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _read(self) -> Incoming | None:
        headers = [(k, v) for k, v in self.headers.items()]
        limit = max_cassette_bytes()
        body: bytes | None = None
        if (header(headers, "transfer-encoding") or "").lower().endswith("chunked"):
            body = self._read_chunked(limit)
            if body is None:
                return None
        else:
            length_text = header(headers, "content-length")
            if length_text is not None:
                if not length_text.strip().isdigit():  # no sign, no "1_000": int() takes both
                    self._refuse(400, f"content-length {length_text!r} is not a number")
                    return None
                length = int(length_text)
                if length > limit:
                    self._refuse(413, f"the request body is over the {limit // 2**20} MB limit")
                    return None
                body = self.rfile.read(length) if length else b""
        decoded = body
        if body and header(headers, "content-encoding"):
            try:
                _, decoded = decode_body(as_mapping(headers), body)
            except CassetteError as exc:
                self._refuse(400, f"the request body cannot be decoded: {exc}")
                return None
        return Incoming(
            method=self.command,
            headers=headers,
            body=body,
            decoded_body=decoded or None,
            upstream_url=self.server.upstream_url(self.path),
        )

    def _read_chunked(self, limit: int) -> bytes | None:
        out = bytearray()
        while True:
            line = self.rfile.readline(65537)
            digits = line.split(b";", 1)[0].strip()
            if not digits or digits.strip(b"0123456789abcdefABCDEF"):  # int() takes "-5", "0x5"
                self._refuse(400, "malformed chunked request body")
                return None
            size = int(digits, 16)
            if size == 0:
                while self.rfile.readline(65537).strip():  # trailers
                    pass
                return bytes(out)
            if len(out) + size > limit:
                self._refuse(413, f"the request body is over the {limit // 2**20} MB limit")
                return None
            out += self.rfile.read(size)
            self.rfile.readline(3)

    def _refuse(self, status: int, message: str) -> None:
        self.close_connection = True
        text = self.server.mask(f"compaction proxy: {message}")
        self.send_plain(status, error_body(text, "invalid_request_error", "bad_request"), {})

    def log_message(self, format: str, *args: Any) -> None:
        super().log_message("%s", self.server.mask(format % args))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server quotes a request line it cannot parse, a key in its query with it.
        mask = self.server.mask
        super().send_error(
            code,
            None if message is None else mask(message),
            None if explain is None else mask(explain),
        )

    # -- answering ----------------------------------------------------------------------------

    def send_plain(self, status: int, body: bytes, extra: dict[str, str]) -> None:
        headers = [("content-type", "application/json"), *extra.items()]
        self.send_whole(status, None, headers, body)

    def send_whole(self, status: int, reason: str | None, headers: RawHeaders, body: bytes) -> None:
        bodyless = self.command == "HEAD" or status in NO_BODY_STATUSES or status < 200
        self.send_response_only(status, reason or None)
        for key, value in headers:
            if key.lower() not in ("content-length", "transfer-encoding"):
                self.send_header(key, value)
        if not bodyless:
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        if not bodyless and body:
            self.wfile.write(body)
        self.log_request(status)

    def begin(self, status: int, reason: str, headers: RawHeaders, bodyless: bool) -> bool:
        """Send the status line and headers of an answer whose body follows in chunks."""
        length = header(headers, "content-length")
        has_length = length is not None
        self._left = None
        if has_length and not bodyless and (length or "").strip().isdigit():
            self._left = int(length or "")
        self._chunked = not bodyless and not has_length and self.request_version == "HTTP/1.1"
        if not bodyless and not has_length and not self._chunked:
            self.close_connection = True  # an HTTP/1.0 client reads to the end
        try:
            self.send_response_only(status, reason or None)
            for key, value in headers:
                self.send_header(key, value)
            if self._chunked:
                self.send_header("transfer-encoding", "chunked")
            self.end_headers()
        except OSError:
            self.close_connection = True
            return False
        self.log_request(status)
        return True

    def write_chunk(self, chunk: bytes) -> bool:
        if not chunk:
            return True
        try:
            if self._chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                self.wfile.write(chunk)
        except OSError:
            self.close_connection = True
            return False
        return True

    def hold_last(self, data: bytes) -> tuple[bytes, bytes]:
        """Split what is to be sent into what goes now and what waits for :meth:`finish_body`:
        the answer's last byte, when its length says this is it (a chunked answer ends with
        its terminator instead, which always waits)."""
        if self._left is None:
            return data, b""
        if len(data) < self._left:
            self._left -= len(data)
            return data, b""
        cut = max(self._left - 1, 0)
        self._left = 0
        return data[:cut], data[cut:]

    def finish_body(self, held: bytes = b"") -> None:
        """End an answer begun with :meth:`begin`: what was held back, then the terminator."""
        with contextlib.suppress(OSError):
            if held:
                self.write_chunk(held)
            if self._chunked:
                self.wfile.write(b"0\r\n\r\n")

    def abort(self) -> None:
        """End a half-sent answer: the client must not take it for a complete one."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
