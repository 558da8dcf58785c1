"""``CompactionServer``: a local, faithful compaction endpoint in a background thread."""

from __future__ import annotations

import os
import time
from typing import Any

from .._errors import CompactionError, VersionError
from .._listener import LocalService
from ..contract._dialects import DIALECTS, DialectError, get_dialect
from ..schema._versions import resolve_version
from ._compact import Compactor
from ._faults import FaultPlan, FaultSyntaxError
from ._handler import CompactionHTTPServer, RecordedRequest, ServerState
from ._ids import IdSource
from ._responses import Responder
from ._tokens import DETERMINISTIC_KEY
from ._wire import make_wire

__all__ = ["DIALECTS", "CompactionServer", "ServerError", "start_server"]
# created_at of every answer in deterministic mode (2026-01-01T00:00:00Z).
FIXED_CREATED_AT = 1_767_225_600


class ServerError(CompactionError):
    """The compaction server cannot be configured or started as asked."""


class CompactionServer(LocalService[CompactionHTTPServer]):
    """An HTTP server answering ``POST /v1/responses/compact`` like the real API.

    It also answers ``POST /v1/responses`` with a stand-in model reply and server-side
    compaction (``context_management``), plain or as server-sent events (see ``_responses``
    and ``_stream``); both endpoints share the key, the ids and the stored responses.

    ``dialect`` makes it speak as a gateway in front of the API, or another implementation of
    the endpoint, does (any name of ``contract._dialects.DIALECTS`` but ``openai``: paths,
    credentials, ids, tokens, extra fields, error envelopes; see ``_wire``), so that
    recordings validate under that dialect's profile.

    ``compacting_events`` makes streamed compactions carry ``response.compaction.compacting``
    progress events (True), or not (False); None, the default, sends them when the schema
    version in force declares them (the newest does: the API sends them today).
    The fault ``completed-output:empty|null|missing`` sends a stream's ``response.completed``
    without its output; ``invalid-encrypted-content`` refuses a compaction item the server
    issued, as the API refuses one after a key rotation (see ``_faults``).

    Use as a context manager (``with CompactionServer() as server: ...``) or call
    :meth:`start` and :meth:`stop`. ``url`` is the root URL, ``base_url`` what an OpenAI client
    takes.
    """

    _role = "server"
    _error = ServerError

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        deterministic: bool = False,
        key: bytes | None = None,
        context_window: int = 400_000,
        dialect: str = "openai",
        fault: str | None = None,
        schema_version: str | None = None,
        record_requests: bool = True,
        compacting_events: bool | None = None,
    ) -> None:
        try:
            profile = get_dialect(dialect)
        except DialectError:
            raise ServerError(
                f"unknown dialect {dialect!r}; expected one of {', '.join(DIALECTS)}"
            ) from None
        if context_window < 1:
            raise ServerError(f"context_window must be positive, got {context_window}")
        if key is not None and len(key) < 16:
            raise ServerError("key must be at least 16 bytes")
        if schema_version is not None:
            try:
                schema_version = resolve_version(schema_version)
            except VersionError as exc:
                raise ServerError(str(exc)) from None
        try:
            faults = FaultPlan(fault)
        except FaultSyntaxError as exc:
            raise ServerError(f"invalid fault: {exc}") from None
        self._host = host
        self._port = port
        self.deterministic = deterministic
        self.dialect = profile.name
        self.profile = profile
        if key is None:
            key = DETERMINISTIC_KEY if deterministic else os.urandom(32)
        clock = (lambda: FIXED_CREATED_AT) if deterministic else time.time
        wire = make_wire(profile.name, key=key, deterministic=deterministic)
        compactor = Compactor(
            key=key,
            ids=IdSource(deterministic=deterministic),
            deterministic=deterministic,
            context_window=context_window,
            clock=clock,
            sealer=wire.sealer(),
            binds_item_ids=wire.binds_item_ids,
        )
        self._state = ServerState(
            compactor=compactor,
            responder=Responder(compactor),
            faults=faults,
            deterministic=deterministic,
            schema_version=schema_version,
            dialect=profile.name,
            wire=wire,
            record=record_requests,
            compacting_events=compacting_events,
        )

    # -- lifecycle (start, stop, a with block: see LocalService) ------------------------------

    def _listen(self) -> CompactionHTTPServer:
        return CompactionHTTPServer((self._host, self._port), self._state)

    def _started(self) -> None:
        self._state.stopping.clear()

    def _stopping(self) -> None:
        self._state.stopping.set()

    def _close(self, httpd: CompactionHTTPServer) -> None:
        """End open connections, join every handler thread and close the socket."""
        httpd.close_connections()
        httpd.server_close()  # joins the handler threads

    @property
    def running(self) -> bool:
        return self._httpd is not None

    # -- addresses --------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url``: the root URL plus the dialect's prefix.

        ``/v1`` for OpenAI and LiteLLM, ``/openai/v1`` for Azure and Bifrost, ``/api/llm`` for
        TrueFoundry.
        """
        return f"{self.url}{self.profile.base_path}"

    # -- faults and inspection --------------------------------------------------------------

    def set_fault(self, spec: str | None) -> None:
        """Apply ``spec`` to every later request (``None`` clears it)."""
        try:
            self._state.faults.set_default(spec)
        except FaultSyntaxError as exc:
            raise ServerError(f"invalid fault: {exc}") from None

    def inject_fault(self, spec: str, count: int = 1) -> None:
        """Apply ``spec`` to the next ``count`` requests (after any already queued)."""
        try:
            self._state.faults.inject(spec, count)
        except FaultSyntaxError as exc:
            raise ServerError(f"invalid fault: {exc}") from None

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    def clear_requests(self) -> None:
        with self._state.lock:
            self._state.requests.clear()

    def open_token(self, encrypted_content: str) -> dict[str, Any]:
        """The state sealed in a compaction item this server (or one sharing its key) made."""
        return self._state.compactor.open_token(encrypted_content)

    def __repr__(self) -> str:
        where = self.base_url if self.running else "not started"
        return f"CompactionServer({where}, dialect={self.dialect!r})"


def start_server(**options: Any) -> CompactionServer:
    """Create and start a server (``options`` as for :class:`CompactionServer`)."""
    return CompactionServer(**options).start()
