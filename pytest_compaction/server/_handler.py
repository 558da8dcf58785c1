"""The HTTP side: routing, body reading, faults, and writing answers byte by byte.

Built on ``http.server`` rather than a framework because faults need control below HTTP
semantics: a wrong Content-Length, half a body, a connection closed with no answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from .._errors import VersionError
from .._listener import LoopbackHandler, LoopbackServer
from ..contract._routes import is_beta, route_of
from ..schema._versions import load_schema_set, resolve_version
from ._apierror import ApiError
from ._checks import check_request, declares_value, parse_body
from ._compact import Compactor
from ._faults import FAULT_HEADER, Fault, FaultPlan, FaultSyntaxError
from ._responses import Responder
from ._stream import COMPACTING, encode, events
from ._wire import ALL_ROUTES, Call, GatewayError, PlainText, Wire

log = logging.getLogger("pytest_compaction.server")

# Every route a supported gateway exposes; the plain server answers them all, a dialect its own.
COMPACT_ROUTES = ALL_ROUTES
MAX_BODY = 64 * 1024 * 1024
RequestKind = Literal["request", "beta.request", "responses.request"]
# A fixed Date header in deterministic mode, so whole answers repeat byte for byte.
FIXED_HTTP_DATE = "Thu, 01 Jan 2026 00:00:00 GMT"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it (kept in memory only)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    fault: str | None = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ServerState:
    compactor: Compactor
    responder: Responder
    faults: FaultPlan
    deterministic: bool
    schema_version: str | None
    dialect: str
    wire: Wire = field(default_factory=Wire)
    stopping: threading.Event = field(default_factory=threading.Event)
    requests: list[RecordedRequest] = field(default_factory=list)
    record: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    request_counter: int = 0
    compacting_events: bool | None = None  # None: as the schema version in force declares

    def sends_compacting_events(self) -> bool:
        """Whether streamed compactions carry ``response.compaction.compacting`` events."""
        if self.compacting_events is not None:
            return self.compacting_events
        try:
            version = resolve_version(self.schema_version)
            return declares_value(version, "responses.event", COMPACTING)
        except VersionError:
            return False

    def next_request_id(self) -> str:
        with self.lock:
            self.request_counter += 1
            return f"req_{self.request_counter:04d}"


def request_kind(
    method: str, uri: str, headers: Mapping[str, str], version: str | None
) -> RequestKind:
    """The request schema a call is checked against, and so how it is answered.

    ``POST /responses`` is ``responses.request``; a compaction call that asks for the beta
    contract (``_routes.is_beta``) is ``beta.request`` when ``version`` has one, else, like any
    other compaction call, ``request``.
    """
    if route_of(method, uri) == "responses":
        return "responses.request"
    if is_beta(uri, headers) and load_schema_set(version).has_beta:
        return "beta.request"
    return "request"


class CompactionHTTPServer(LoopbackServer):
    daemon_threads = False  # stop() joins every handler thread
    block_on_close = True

    def __init__(self, address: tuple[str, int], state: ServerState) -> None:
        self.state = state
        super().__init__(address, CompactionHandler)


class CompactionHandler(LoopbackHandler):
    server_version = "pytest-compaction"
    server: CompactionHTTPServer
    logger = log

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        if self.server.state.deterministic:
            return FIXED_HTTP_DATE
        return super().date_time_string(timestamp)

    # -- dispatch -----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        started = time.monotonic()
        state = self.server.state
        wire = state.wire
        parts = urlsplit(self.path)
        path = parts.path
        call = Call(path=path)
        try:
            raw = self._read_body()
        except ApiError as exc:
            self.close_connection = True
            self._send_json(exc.status, wire.error(call, exc), exc.headers, started)
            return
        fault: Fault | None = None
        status: int | None = None
        stream: list[dict[str, Any]] | None = None
        try:
            if path not in wire.routes:
                raise GatewayError(404, f"Invalid URL ({self.command} {path})")
            if self.command != "POST":
                raise GatewayError(
                    405,
                    f"Method {self.command} is not allowed on {path}; use POST.",
                    code="method_not_allowed",
                    headers={"allow": "POST"},
                )
            headers = {k.lower(): v for k, v in self.headers.items()}
            wire.admit(call, parse_qs(parts.query, keep_blank_values=True), headers)
            # Parsed before faults so that a gateway can name the model in a fault's answer; a
            # body that is not JSON is still answered after any fault, as before.
            body: dict[str, Any] | None = None
            unparsed: ApiError | None = None
            try:
                body = parse_body(raw)
            except ApiError as exc:
                unparsed = exc
            model = body.get("model") if body is not None else None
            call.model = model if isinstance(model, str) else None
            try:
                fault = state.faults.choose(
                    self.headers.get(FAULT_HEADER),
                    method=self.command,
                    path=path,
                    body=raw,
                    idempotency_key=self.headers.get("idempotency-key"),
                    retry_count=self.headers.get("x-stainless-retry-count"),
                )
            except FaultSyntaxError as exc:
                raise GatewayError(
                    400, str(exc), param=FAULT_HEADER, code="invalid_fault"
                ) from None
            if fault is not None:
                if fault.kind == "drop":
                    status = 0
                    self._drop()
                    return
                if fault.kind == "status":
                    raise fault.error()
                refused = fault.refusal(body, state.compactor.issued)
                if refused is not None:
                    raise refused
                if fault.kind == "slow" and state.stopping.wait(fault.seconds):
                    status = 0
                    self._drop()  # shutting down: do not hold the server for a slow answer
                    return
            if body is None:
                raise unparsed or ApiError(400, "Empty body.", param=None, code=None)
            body = wire.upstream_request(call, body)
            kind = request_kind(self.command, self.path, headers, state.schema_version)
            check_request(body, version=state.schema_version, kind=kind)
            if kind == "responses.request":
                turn = state.responder.respond(body)
                if body.get("stream") is True:
                    told = events(
                        turn,
                        state.responder.reseal,
                        compacting=state.sends_compacting_events(),
                        completed_output=fault.form if fault and fault.form else None,
                    )
                    stream = wire.stream(call, told)
                answer = turn.response
            else:
                answer = state.compactor.compact(body)
            if not state.deterministic:
                call.latency_ms = int((time.monotonic() - started) * 1000)
            status, payload, headers = 200, wire.response(call, answer), {}
        except ApiError as exc:
            status, payload, headers = exc.status, wire.error(call, exc), exc.headers
        except Exception:  # a bug must still get an answer, never a dead connection
            log.exception("unexpected error answering %s %s", self.command, path)
            status, headers = 500, {}
            payload = wire.error(
                call,
                ApiError(
                    500,
                    "The server had an error while processing your request. Sorry about that!",
                    param=None,
                    code=None,
                    type="server_error",
                ),
            )
        finally:
            if state.record:
                self._record(raw, status, fault)
        if stream is not None and status == 200:
            self._send_stream(stream, started, fault)
        elif fault is not None and fault.kind == "malformed-json":
            data = _dump(payload)
            self._send_bytes(status, data[: max(1, len(data) // 2)], headers, started)
        elif fault is not None and fault.kind == "truncated":
            self._send_truncated(status, _dump(payload), headers, started)
        else:
            self._send_json(status, payload, headers, started)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _record(self, raw: bytes, status: int | None, fault: Fault | None) -> None:
        state = self.server.state
        entry = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=raw,
            status=status,
            fault=fault.spec if fault else None,
        )
        with state.lock:
            state.requests.append(entry)

    # -- reading ----------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("content-length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            raise GatewayError(
                400, f"Invalid Content-Length header: {length_text!r}.", param=None, code=None
            ) from None
        if length > MAX_BODY:
            raise GatewayError(
                413,
                f"Request body of {length} bytes exceeds the limit of {MAX_BODY} bytes.",
                param=None,
                code="request_too_large",
            )
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024).strip()
            try:
                size = int(line.split(b";")[0], 16)
                if size < 0:
                    raise ValueError(size)
            except ValueError:
                raise GatewayError(400, "Malformed chunked body.", param=None, code=None) from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise GatewayError(
                    413,
                    f"Request body exceeds the limit of {MAX_BODY} bytes.",
                    param=None,
                    code="request_too_large",
                )
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)

    # -- writing ----------------------------------------------------------------------------

    def _common_headers(self, started: float) -> dict[str, str]:
        state = self.server.state
        elapsed = 0 if state.deterministic else int((time.monotonic() - started) * 1000)
        return {
            "content-type": "application/json",
            "openai-version": "2020-10-01",
            "openai-processing-ms": str(elapsed),
            "x-request-id": state.next_request_id(),
        }

    def _send_json(
        self, status: int, payload: Any, headers: dict[str, str], started: float
    ) -> None:
        if isinstance(payload, PlainText):  # a gateway answering outside any JSON envelope
            text_headers = {**headers, "content-type": PlainText.CONTENT_TYPE}
            self._send_bytes(status, payload.encode("utf-8"), text_headers, started)
            return
        self._send_bytes(status, _dump(payload), headers, started)

    def _send_head(self, status: int, headers: dict[str, str], started: float) -> None:
        """The status line, the common headers and ``headers`` (the head is not ended)."""
        self.send_response(status)
        for name, value in {**self._common_headers(started), **headers}.items():
            self.send_header(name, value)

    def _send_bytes(
        self, status: int, data: bytes, headers: dict[str, str], started: float
    ) -> None:
        self._send_head(status, headers, started)
        self.send_header("content-length", str(len(data)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_truncated(
        self, status: int, data: bytes, headers: dict[str, str], started: float
    ) -> None:
        self._send_head(status, headers, started)
        self.send_header("content-length", str(len(data)))  # more than what follows
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self._drop()

    def _send_stream(
        self, stream: list[dict[str, Any]], started: float, fault: Fault | None
    ) -> None:
        """Server-sent events, one chunk each, flushed as they go.

        Faults: ``truncated`` ends the stream halfway without ``response.completed`` (the
        connection closes mid-body); ``malformed-json`` cuts one event's data line short.
        """
        headers = {
            "content-type": "text/event-stream; charset=utf-8",
            "transfer-encoding": "chunked",
        }
        self._send_head(200, headers, started)
        self.end_headers()
        cut = len(stream) // 2 if fault is not None else -1
        try:
            for index, event in enumerate(stream):
                data = encode(event)
                if index == cut and fault is not None and fault.kind == "truncated":
                    self.wfile.flush()
                    self._drop()
                    return
                if index == cut and fault is not None and fault.kind == "malformed-json":
                    line = data.split(b"\n")[1]
                    data = data.split(b"\n")[0] + b"\n" + line[: len(line) // 2] + b"\n\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client hung up mid-stream

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _dump(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
