"""A validating record/replay reverse proxy, for clients vcrpy cannot see (curl, Node, Perl, Go...).

::

    pytest-compaction proxy --upstream https://api.openai.com/v1 --cassette c.yaml --record once
    OPENAI_BASE_URL=http://127.0.0.1:PORT node client.js

A request to the proxy's path ``P`` goes to the upstream URL followed by ``P`` (the upstream's
own path is a prefix, as a reverse proxy's ``proxy_pass`` does), so the proxy's URL stands in for
the upstream URL. Record modes behave as in :func:`~pytest_compaction.use_cassette`: ``none``
answers from the cassette only and never opens a connection; ``once`` records when the cassette
does not exist yet, else replays; ``new_episodes`` replays what matches and records the rest;
``all`` records everything, replacing the recorded exchanges that match. Requests match by the
same rules (method, normalized path, query, JSON body by value; host and headers ignored).

Recorded exchanges are filtered and scanned for secrets as the pytest plugin does (the
credentials clients sent are remembered and searched for in every byte; ``allow_secrets``
lets fake keys through), validated
when they are ``/responses/compact`` or ``/responses`` calls (see :mod:`._judge`), and written
atomically to the cassette in the same format: each exchange is scanned and turned into cassette
text once, and is in the file before its client has read the answer to its end (see
:mod:`._writer`), so a proxy killed with SIGKILL loses no exchange a client saw answered in full.
An exchange that violates
the schemas, or still holds a secret-looking value, is answered but not written: it is
reported in the log and the summary (``failure()``), and with ``fail_on_violation`` the client
gets that status instead of the answer. A request the cassette cannot answer gets
:data:`MISS_STATUS` with a JSON error body naming the cassette and the closest recorded
request, never a pass-through.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from .._errors import CompactionError, counted
from .._listener import LocalService
from ..cassette._body import MAX_SIZE_ENV, decode_body, max_cassette_bytes
from ..cassette._document import scan_document
from ..cassette._exchange import CassetteError, Exchange
from ..cassette._file import CassetteNotFound, interaction_text, load_cassette, recording_time
from ..cassette._find import cassette_file
from ..cassette._redact import (
    DEFAULT_FILTER_HEADERS,
    DEFAULT_FILTER_QUERY,
    SecretFound,
    check_no_secrets,
    redact_exchange,
    redact_query,
)
from ..cassette._secrets import Finding, scan_exchange
from ..contract._dialects import (
    Dialect,
    all_auth_headers,
    dialect_for,
    get_dialect,
)
from ..contract._judge import Judged, judge_exchange
from ..contract._routes import is_compact_path, normalize_path, route_of
from ..contract._tally import Tallied, Tally, does_not_conform, totals
from ..replay._credentials import PROXY_ADVICE, Credentials, advice_lines, refusal
from ..replay._match import BodyCache, closest, closest_lines, make_matchers, rerecord_line
from ..replay._recorder import DEFAULT_MATCH_ON, check_record_mode
from ..schema._report import Report
from ..schema._versions import resolve_version
from ._http import (
    FRAMING,
    NO_BODY_STATUSES,
    Incoming,
    ProxyHandler,
    ProxyHTTPServer,
    RawHeaders,
    as_mapping,
    end_to_end,
    error_body,
)
from ._writer import CassetteWriter, Snapshot

log = logging.getLogger("pytest_compaction.proxy")

# A request the cassette cannot answer. Not a 5xx, which SDKs retry, and not a status the API
# gives compaction calls for a reason of its own that a client might handle.
MISS_STATUS = 404
PROXY_HEADER = "x-compaction-proxy"
Action = Literal["recorded", "replayed"]
_Verdict = tuple[Report | None, Judged]  # what the schemas found in a request and its answer


class ProxyError(CompactionError):
    """The proxy cannot be configured or started as asked."""


@dataclass(frozen=True)
class _Prepared:
    """What keeping a recorded exchange takes time to find, found before the lock is taken."""

    verdict: _Verdict | None  # None: not a validated route
    findings: list[Finding]  # secret-looking places (exchange index still to be set)
    text: bytes | None  # its cassette text (UTF-8), when it may be written
    failure: str | None  # why it cannot be written at all


@dataclass
class ProxyRecord:
    """One exchange that went through the proxy, in the order the answers were completed.

    ``index`` is its position in the cassette, or None when it was not written (violations,
    a secret, an unreadable body). ``violations`` lists what the schemas found wrong.
    """

    action: Action
    exchange: Exchange
    index: int | None
    violations: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.violations


@dataclass
class _Req:
    """What the matchers compare (they read ``method``, ``uri``, ``path`` and ``body``)."""

    method: str
    uri: str
    body: bytes | None

    @property
    def path(self) -> str:
        return urlsplit(self.uri).path


def filter_header_names(dialect: Dialect | None, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Headers whose values never reach the cassette: what :func:`use_cassette` filters."""
    auth = dialect.auth_headers if dialect else all_auth_headers()
    return tuple(dict.fromkeys((*DEFAULT_FILTER_HEADERS, *auth, *extra)))


def _check_upstream(upstream: str) -> str:
    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProxyError(f"upstream {upstream!r} is not an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ProxyError(f"upstream {upstream!r} must not carry a query or fragment")
    return urlunsplit(parts._replace(path=parts.path.rstrip("/")))


class CompactionProxy(LocalService[ProxyHTTPServer], Tallied):
    """A reverse proxy recording to, or replaying from, one cassette.

    ``start()`` listens on ``host:port`` (any free port by default) in background threads;
    ``url`` is what a client takes as its base URL in place of ``upstream``. ``stop()`` waits for
    exchanges in flight (up to ``drain_timeout`` seconds), writes the cassette and closes.
    ``failure()`` returns the problems seen (violations, secrets, misses, upstream errors).
    """

    _role = "proxy"
    _error = ProxyError

    def __init__(
        self,
        upstream: str,
        cassette: str | Path,
        *,
        record_mode: str = "none",
        version: str | None = None,
        strict: bool = False,
        dialect: str | None = None,
        filter_headers: Sequence[str] = (),
        filter_query_parameters: Sequence[str] = (),
        allow_playback_repeats: bool = False,
        fail_on_violation: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        upstream_ca: str | Path | None = None,
        timeout: float = 600.0,
        drain_timeout: float = 30.0,
        hint: Callable[[str], str] | None = None,
        allow_secrets: Any = None,
        keep_volatile_headers: bool = False,
    ) -> None:
        self.upstream = _check_upstream(upstream)
        self.keep_volatile_headers = keep_volatile_headers
        self.record_mode = check_record_mode(record_mode)
        self.cassette_path = path = cassette_file(cassette)
        if fail_on_violation is not None and not 400 <= fail_on_violation <= 599:
            raise ProxyError(
                f"fail_on_violation must be a status from 400 to 599, not {fail_on_violation}"
            )
        self.fail_on_violation = fail_on_violation
        self.strict = strict
        self.allow_playback_repeats = allow_playback_repeats
        self.profile = None if dialect in (None, "", "auto") else get_dialect(dialect)
        self.filter_headers = filter_header_names(self.profile, filter_headers)
        self.filter_query = (*DEFAULT_FILTER_QUERY, *filter_query_parameters)
        self.hint = hint or (lambda mode: f"--record {mode}")
        # The allowed secrets and the credentials clients used (memory only, never written).
        self._credentials = Credentials.allowing(allow_secrets)
        self._host = host
        self._port = port
        self._upstream_ca = upstream_ca
        if upstream_ca is not None:
            self._upstream_context()  # a CA file that cannot be used stops the start, not a call
        self._timeout = timeout
        self._drain_timeout = drain_timeout

        # The cassette, as vcrpy keeps it: loaded exchanges first, then those recorded now.
        self.extra: dict[str, Any] = {}
        self.cassette_dialect: str | None = None
        self.rewound = False  # the cassette existed: its exchanges may be replayed
        try:
            data = load_cassette(path)
        except CassetteNotFound:
            data = None
        if data is not None:
            self.rewound = True
            self.extra = data.extra
            self.cassette_dialect = data.dialect
        self.data: list[Exchange] = list(data.exchanges) if data else []
        self.loaded_count = len(self.data)
        # A file that keeps loaded exchanges keeps their date; one of this run's only is dated now.
        self._loaded_recorded_at = data.recorded_at if data else None
        self._recorded_at = recording_time()
        self.play_counts = [0] * len(self.data)
        self.version = resolve_version(version or (data.schema_version if data else None))

        self._bodies = BodyCache()
        canonical = self.profile.canonical_path if self.profile else normalize_path
        self._canonical = canonical
        matchers = make_matchers(self._bodies, canonical)
        self._matchers = [matchers[name] for name in DEFAULT_MATCH_ON]
        self._stored = [self._req_of(ex) for ex in self.data]
        self._reports: dict[int, _Verdict] = {}
        # The cassette text of each recorded exchange (loaded ones: at the first write), the
        # dialect each compact exchange names, and the loaded exchanges that ``all`` replaced.
        self._texts: list[bytes | None] = [None] * len(self.data)
        self._compact_dialects = [self._compact_dialect(ex) for ex in self.data]
        self._replaced: set[int] = set()
        if self.record_mode == "rewrite":  # the file will hold this run's exchanges only
            self._replaced.update(range(self.loaded_count))
        self._loaded_texts: list[bytes] | None = None
        self._kept = 0  # exchanges kept so far: what a write must reach
        self._writer = CassetteWriter(path, self._snapshot)

        self.session: list[ProxyRecord] = []
        self.recorded = 0
        self.replayed = 0
        # notes: what recorded streams do, properties outside the contract
        self.tally = Tally()
        self.misses: list[str] = []
        self.problems: list[str] = []
        self.save_error: str | None = None  # why the last write failed
        self._reported = 0
        self._lock = threading.RLock()
        self._client: Any = None
        self._closed = False

    # -- lifecycle (start, stop, a with block: see LocalService) ----------------------------------

    def _listen(self) -> ProxyHTTPServer:
        return ProxyHTTPServer(
            (self._host, self._port), self.serve, self._upstream_url, self._credentials.mask
        )

    def _started(self) -> None:
        self._closed = False
        log.info(
            "listening on %s for %s (record mode %s, cassette %s)",
            self.url,
            self.upstream,
            self.record_mode,
            self.cassette_path,
        )

    def _close(self, httpd: ProxyHTTPServer) -> None:
        """Let exchanges in flight end, write the cassette, close everything."""
        with httpd.cond:
            busy = sum(httpd.connections.values())
        log.info("stopping: %d exchange(s) in flight", busy)
        if not httpd.drain(self._drain_timeout):
            log.warning("exchanges still in flight after %.0f s were cut off", self._drain_timeout)
            httpd.abort_all()
            httpd.drain(5.0)
        httpd.close_connections()
        httpd.server_close()
        with self._lock:
            self._closed = True
            kept = self._kept
            client, self._client = self._client, None
        self._flush(kept)
        if client is not None:
            client.close()
        log.info("stopped")  # the command prints summary_text() itself, once

    # -- results --------------------------------------------------------------------------------

    @property
    def dialect(self) -> str | None:
        """The dialect named for this cassette (option or cassette header); None: detected."""
        return self.profile.name if self.profile else self.cassette_dialect

    @property
    def exchanges(self) -> list[Exchange]:
        """What the cassette holds now (what is, or will be, written)."""
        with self._lock:
            return [self.data[i] for i in self._to_write()]

    @property
    def written(self) -> bool:
        """The cassette file was written by this proxy."""
        return self._writer.written

    def failure(self) -> str | None:
        """Problems not reported yet, as one message (then they count as reported)."""
        with self._lock:
            new = self.problems[self._reported :]
            self._reported = len(self.problems)
        return "\n\n".join(new) if new else None

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "cassette": str(self.cassette_path),
                "record_mode": self.record_mode,
                "schema_version": self.version,
                "recorded": self.recorded,
                "replayed": self.replayed,
                "validated": self.validated,
                "violations": list(self.violations),
                "drift": list(self.drift),
                "notes": list(self.notes),
                "misses": len(self.misses),
                "problems": len(self.problems),
                "exchanges_in_cassette": len(self._to_write()),
                "written": self.written,
            }

    def summary_text(self) -> str:
        s = self.summary()
        state = "written" if s["written"] else "not written (nothing new)"
        if self.save_error is not None:
            state = "NOT written (see above)"
        return (
            f"{s['recorded']} exchange(s) recorded, {s['replayed']} replayed, "
            f"{totals(s['validated'], len(s['violations']), len(s['drift']))}, "
            f"{s['misses']} request(s) not in the cassette, "
            f"{s['problems']} problem(s); cassette {s['cassette']} "
            f"({counted(s['exchanges_in_cassette'], 'exchange')}) {state}"
        )

    # -- the cassette ---------------------------------------------------------------------------

    def _req_of(self, ex: Exchange) -> _Req:
        return _Req(ex.method.upper(), ex.uri, ex.request_body)

    def _matches(self, live: _Req, stored: _Req) -> bool:
        return all(matcher(live, stored) for matcher in self._matchers)

    @property
    def write_protected(self) -> bool:
        return (self.rewound and self.record_mode == "once") or self.record_mode == "none"

    def _find(self, live: _Req) -> int | None:
        """The exchange to replay for ``live`` (marked played), as vcrpy chooses it."""
        if self.record_mode in ("all", "rewrite") or not (
            self.rewound or self.allow_playback_repeats
        ):
            return None
        for index, stored in enumerate(self._stored):
            if self._matches(live, stored) and (
                self.play_counts[index] == 0 or self.allow_playback_repeats
            ):
                self.play_counts[index] += 1
                return index
        return None

    def _to_write(self) -> list[int]:
        """The indices of the exchanges the cassette holds (``all``: less those replaced)."""
        return [i for i in range(len(self.data)) if i not in self._replaced]

    def _compact_dialect(self, ex: Exchange) -> str | None:
        return dialect_for(ex.uri).name if is_compact_path(ex.uri) else None

    def _dialect_to_store(self, indices: Sequence[int]) -> str | None:
        if self.dialect:
            return get_dialect(self.dialect).name
        found = {self._compact_dialects[i] for i in indices} - {None}
        return found.pop() if len(found) == 1 else None

    def _loaded(self) -> list[bytes]:
        """The loaded exchanges' texts, filtered and scanned once, at the first write."""
        if self._loaded_texts is None:
            exchanges = [
                redact_exchange(
                    ex,
                    self.filter_headers,
                    self.filter_query,
                    keep_volatile_headers=self.keep_volatile_headers,
                )
                for ex in self.data[: self.loaded_count]
            ]
            path = str(self.cassette_path)
            policy = self._credentials.policy()
            try:
                check_no_secrets(path, exchanges, policy)
                found = scan_document(self.extra, policy)
                if found:
                    raise SecretFound(path, found)
            except SecretFound as exc:
                raise refusal(exc, PROXY_ADVICE) from None
            as_json = self._writer.as_json
            self._loaded_texts = [
                interaction_text(ex, as_json=as_json).encode("utf-8") for ex in exchanges
            ]
        return self._loaded_texts

    def _snapshot(self) -> Snapshot:
        """What the next write holds (called by the writer, one write at a time)."""
        loaded = self._loaded() if self.loaded_count else []
        with self._lock:
            indices = self._to_write()
            texts = [loaded[i] if i < self.loaded_count else self._texts[i] for i in indices]
            keeps_loaded = any(i < self.loaded_count for i in indices)
            return Snapshot(
                self._kept,
                self.extra,
                self.version,
                self._dialect_to_store(indices),
                [text for text in texts if text is not None],
                self._loaded_recorded_at if keeps_loaded else self._recorded_at,
            )

    def _flush(self, generation: int) -> None:
        """Return once the file holds the exchanges kept up to ``generation`` (or say why not)."""
        error = self._writer.flush(generation)
        with self._lock:
            if error is None:
                if self._writer.written:
                    self.save_error = None
                return
            self.save_error = error
            self._problem(f"compaction proxy: {error}")

    # -- validation -----------------------------------------------------------------------------

    def _validate(self, ex: Exchange) -> _Verdict:
        """What the schemas find in an exchange's request and answer (see ``judge_exchange``)."""
        is_json, body = self._bodies.parse(ex.request_body)
        return judge_exchange(
            ex,
            version=self.version,
            dialect=dialect_for(ex.uri, self.dialect),
            strict=self.strict,
            request_body=body if is_json else None,
        )

    def _judge(
        self,
        ex: Exchange,
        label: str,
        when: Action,
        verdict: _Verdict | None = None,
    ) -> tuple[list[str], list[str]]:
        """Validate (unless ``verdict`` is given), count, report violations; lock held."""
        if route_of(ex.method, ex.uri) is None:
            return [], []
        request, response = verdict if verdict is not None else self._validate(ex)
        # The lines quote values (a key in service_tier): masked before they are kept.
        mask = self._credentials
        lines, drift = self.tally.record(
            label, mask.mask_report(request), mask.mask_judged(response), ex.status
        )
        if lines:
            profile = dialect_for(ex.uri, self.dialect)
            after = "The exchange was not written to the cassette." if when == "recorded" else None
            subject = f"compaction proxy: {label} of cassette {self.cassette_path}"
            self._problem(
                does_not_conform(
                    subject, self.version, lines, dialect=profile.name, when=when, after=after
                )
            )
        return lines, drift

    def _problem(self, text: str) -> None:
        text = self._credentials.mask(text)
        log.warning("%s", text)
        if text not in self.problems:
            self.problems.append(text)

    # -- one request ----------------------------------------------------------------------------

    def _upstream_url(self, target: str) -> str:
        if "://" in target:  # absolute form, as sent to a forward proxy
            parts = urlsplit(target)
            target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        if not target.startswith("/"):
            target = "/" + target
        return self.upstream + target

    def serve(self, handler: ProxyHandler, incoming: Incoming) -> None:
        """Answer one request: replay it, record it, or say why neither is possible."""
        live = _Req(
            incoming.method.upper(),
            redact_query(incoming.upstream_url, self.filter_query),
            incoming.decoded_body,
        )
        # What the client really sent, before any filter: searched for in every byte written.
        self._credentials.learn(
            incoming.headers, self.filter_headers, incoming.upstream_url, self.filter_query
        )
        path = self._credentials.mask(urlsplit(incoming.upstream_url).path)  # quoted in messages
        with self._lock:
            index = self._find(live)
            miss = self._miss(live) if index is None and self.write_protected else None
        if miss is not None:
            handler.send_plain(miss[0], miss[1], {PROXY_HEADER: "not-recorded"})
        elif index is not None:
            self._replay(handler, index, path)
        else:
            self._record(handler, incoming, path)

    def _replay(self, handler: ProxyHandler, index: int, path: str) -> None:
        ex = self.data[index]
        label = f"exchange {index} ({ex.method} {path})"
        with self._lock:
            self.replayed += 1
            if index not in self._reports and route_of(ex.method, ex.uri) is not None:
                self._reports[index] = self._validate(ex)  # the stored bytes never change
            lines, drift = self._judge(ex, label, "replayed", self._reports.get(index))
            self.session.append(ProxyRecord("replayed", ex, index, lines, drift))
        log.info("replayed exchange %d: %s %s -> %d", index, ex.method, path, ex.status)
        if lines and self.fail_on_violation is not None:
            body = self._violation_body(label, lines, ex.status)
            handler.send_plain(self.fail_on_violation, body, {PROXY_HEADER: "violation"})
            return
        headers = [(k, v) for k, vs in ex.response_headers.items() for v in vs]
        headers = end_to_end(headers, *FRAMING, PROXY_HEADER)
        headers.append((PROXY_HEADER, "replayed"))
        handler.send_whole(ex.status, ex.reason, headers, ex.response_body)

    def _miss(self, live: _Req) -> tuple[int, bytes]:
        """The answer to a request the cassette cannot give; called with the lock held."""
        head = f"compaction proxy: {live.method} {urlsplit(live.uri).path} cannot be replayed"
        details: dict[str, Any] = {
            "cassette": str(self.cassette_path),
            "record_mode": self.record_mode,
            "request": {"method": live.method, "uri": live.uri},
            "closest": None,
        }
        if not self.rewound:
            reason = "cassette_not_found"
            lines = [
                f"{head}: cassette {self.cassette_path} does not exist; record it with "
                f"{self.hint('once')}"
            ]
        else:
            lines = [f"{head} (record mode {self.record_mode!r})."]
            lines.append(
                f"Cassette: {self.cassette_path} ({counted(len(self.data), 'exchange')}, "
                f"{sum(self.play_counts)} replayed)"
            )
            matching = [i for i, s in enumerate(self._stored) if self._matches(live, s)]
            if matching:
                reason = "already_played"
                lines.append(
                    f"It matches exchange {matching[0]}, which was already replayed; allow "
                    "playback repeats to replay it again, or record the repeated request."
                )
                stored = self._stored[matching[0]]
                details["closest"] = {
                    "index": matching[0],
                    "method": stored.method,
                    "uri": stored.uri,
                    "diff": [],
                }
            else:
                reason = "no_match"
                found = closest(live, self._stored, self._bodies, self._canonical)
                lines += closest_lines(found, self._stored)
                if found is not None:
                    index, diff = found
                    stored = self._stored[index]
                    details["closest"] = {
                        "index": index,
                        "method": stored.method,
                        "uri": stored.uri,
                        "diff": diff,
                    }
            lines.append(rerecord_line(((r.method, r.uri) for r in self._stored), self.hint))
        details["reason"] = reason
        # The path, the query and the body diff quote the request: keys are masked.
        message = self._credentials.mask("\n".join(lines))
        self.misses.append(message)
        self._problem(message)
        details = self._credentials.mask_data(details)
        return MISS_STATUS, error_body(message, "request_not_recorded", reason, **details)

    def _violation_body(self, label: str, lines: list[str], status: int) -> bytes:
        message = does_not_conform(f"compaction proxy: {label}", self.version, lines)
        return error_body(
            message,
            "compaction_violation",
            "schema_violation",
            cassette=str(self.cassette_path),
            violations=lines,
            upstream_status=status,
        )

    def _upstream_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=str(self._upstream_ca))
        except (OSError, ssl.SSLError) as exc:
            raise ProxyError(
                f"upstream CA file {self._upstream_ca} cannot be used: {exc}"
            ) from None

    def _http_client(self) -> Any:
        with self._lock:
            if self._client is None:
                import httpx

                verify: ssl.SSLContext | bool = True
                if self._upstream_ca is not None:
                    verify = self._upstream_context()
                client = httpx.Client(
                    timeout=httpx.Timeout(self._timeout, connect=30.0),
                    follow_redirects=False,
                    verify=verify,
                )
                # Send exactly the client's headers: no default user-agent, accept-encoding...
                client.headers = httpx.Headers()
                self._client = client
            return self._client

    def _record(self, handler: ProxyHandler, incoming: Incoming, path: str) -> None:
        import httpx

        headers = end_to_end(incoming.headers, "host", "content-length")
        label = f"{incoming.method} {path}"
        try:
            client = self._http_client()
            request = client.build_request(
                incoming.method, incoming.upstream_url, headers=headers, content=incoming.body
            )
            response = client.send(request, stream=True)
        except (httpx.HTTPError, ProxyError) as exc:
            # A protocol error may quote the header value it refused: masked.
            message = self._credentials.mask(
                f"compaction proxy: {label} could not be forwarded to {self.upstream}: "
                f"{type(exc).__name__}: {exc}"
            )
            with self._lock:
                self._problem(message)
            handler.send_plain(
                502,
                error_body(
                    message, "upstream_error", "upstream_unreachable", upstream=self.upstream
                ),
                {PROXY_HEADER: "upstream-error"},
            )
            return
        handler.track(response)
        try:
            self._relay(handler, incoming, response, label)
        finally:
            handler.untrack(response)
            response.close()

    def _relay(self, handler: ProxyHandler, incoming: Incoming, response: Any, label: str) -> None:
        """Pass the answer on (chunk by chunk unless it must be judged first), then record it.

        The end of the answer (its last byte, or the last chunk's terminator) waits until the
        exchange is in the cassette file: a client that has read an answer to its end finds it
        recorded, whatever happens to the proxy after.
        """
        import httpx

        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw]
        status = int(response.status_code)
        reason = str(response.reason_phrase or "")
        validated = route_of(incoming.method, incoming.upstream_url) is not None
        judge_first = validated and self.fail_on_violation is not None
        limit = max_cassette_bytes()
        chunks = bytearray()
        too_large = False
        sent = not judge_first
        if sent:
            out_headers = end_to_end(raw_headers, PROXY_HEADER)
            out_headers.append((PROXY_HEADER, "recorded"))
            bodyless = incoming.method == "HEAD" or status in NO_BODY_STATUSES or status < 200
            if not handler.begin(status, reason, out_headers, bodyless):
                return
        held = b""  # the last byte of a sized answer, sent once the exchange is written
        try:
            for chunk in response.iter_raw():
                if not too_large or not sent:  # an answer held back is needed whole
                    chunks += chunk
                    too_large = len(chunks) > limit
                if sent:
                    chunk, held = handler.hold_last(held + chunk)
                    if not handler.write_chunk(chunk):
                        log.warning(
                            "%s: the client went away before the answer ended; not recorded",
                            label,
                        )
                        return
        except httpx.HTTPError as exc:
            message = self._credentials.mask(
                f"compaction proxy: {label}: the upstream answer broke off: {exc}"
            )
            with self._lock:
                self._problem(message)
            if sent:
                handler.abort()
            else:
                handler.send_plain(
                    502, error_body(message, "upstream_error", "upstream_broke_off"), {}
                )
            return
        ex, failure = self._exchange(
            incoming, status, reason, raw_headers, bytes(chunks), too_large
        )
        prepared = self._prepare(ex, failure)
        kept: int | None = None
        with self._lock:
            if self._closed:
                log.warning("%s ended after the proxy stopped; not recorded", label)
                lines: list[str] = []
            else:
                lines, kept = self._keep(ex, prepared, label)
        if kept is not None:
            self._flush(kept)
        if sent:
            handler.finish_body(held)
        elif lines and self.fail_on_violation is not None:
            handler.send_plain(
                self.fail_on_violation,
                self._violation_body(label, lines, status),
                {PROXY_HEADER: "violation"},
            )
        else:
            out_headers = end_to_end(raw_headers, PROXY_HEADER, "content-length")
            out_headers.append((PROXY_HEADER, "recorded"))
            handler.send_whole(status, reason, out_headers, bytes(chunks))

    def _exchange(
        self,
        incoming: Incoming,
        status: int,
        reason: str,
        raw_headers: RawHeaders,
        raw_body: bytes,
        too_large: bool,
    ) -> tuple[Exchange | None, str | None]:
        """The exchange as it is stored (bodies decoded, secrets filtered), or why it cannot be."""
        if too_large:
            return None, (
                f"the answer is larger than the {max_cassette_bytes() // 2**20} MB cassette "
                f"limit; raise {MAX_SIZE_ENV} to record it"
            )
        host = urlsplit(incoming.upstream_url).netloc
        request_headers = [
            (k, host) if k.lower() == "host" else (k, v)
            for k, v in end_to_end(incoming.headers, "content-encoding", "content-length")
        ]
        if incoming.decoded_body:
            request_headers.append(("content-length", str(len(incoming.decoded_body))))
        try:
            response_headers, body = decode_body(as_mapping(end_to_end(raw_headers)), raw_body)
        except CassetteError as exc:
            return None, f"the answer's body cannot be decoded: {exc}"
        ex = Exchange(
            method=incoming.method.upper(),
            uri=incoming.upstream_url,
            request_headers=as_mapping(request_headers),
            request_body=incoming.decoded_body,
            status=status,
            reason=reason,
            response_headers=response_headers,
            response_body=body,
        )
        return redact_exchange(
            ex,
            self.filter_headers,
            self.filter_query,
            keep_volatile_headers=self.keep_volatile_headers,
        ), None

    def _prepare(self, ex: Exchange | None, failure: str | None) -> _Prepared:
        """Validate, scan and turn into cassette text a recorded exchange, once, outside the
        lock: the time it takes is that exchange's, and other requests go on meanwhile."""
        if ex is None:
            return _Prepared(None, [], None, failure)
        verdict = self._validate(ex) if route_of(ex.method, ex.uri) is not None else None
        findings = scan_exchange(ex, 0, self._credentials.policy())
        if findings:
            return _Prepared(verdict, findings, None, None)
        try:
            text = interaction_text(ex, as_json=self._writer.as_json).encode("utf-8")
        except CassetteError as exc:
            return _Prepared(verdict, [], None, str(exc))
        return _Prepared(verdict, [], text, None)

    def _keep(
        self, ex: Exchange | None, prepared: _Prepared, label: str
    ) -> tuple[list[str], int | None]:
        """Count a recorded exchange and add it to the cassette if it is clean (lock held).

        Returns the violation lines, and the generation the file must reach for it to be
        written (None when it is not kept).
        """
        self.recorded += 1
        if ex is None or prepared.failure is not None:
            self._problem(f"compaction proxy: {label} was not recorded: {prepared.failure}")
            return [], None
        index = len(self.data)
        lines, drift = self._judge(ex, f"exchange {index} ({label})", "recorded", prepared.verdict)
        findings = [dataclasses.replace(f, exchange=index) for f in prepared.findings]
        if findings:
            shown = [f"  {f}" for f in findings[:20]]
            self._problem(
                "\n".join(
                    [
                        f"compaction proxy: {label} was not written to cassette "
                        f"{self.cassette_path}: it would contain what looks like a secret",
                        *shown,
                        *advice_lines(findings, PROXY_ADVICE),
                    ]
                )
            )
        kept = not lines and not findings
        self.session.append(ProxyRecord("recorded", ex, index if kept else None, lines, drift))
        log.info(
            "recorded %s -> %d%s",
            label,
            ex.status,
            f" as exchange {index}" if kept else " (not written)",
        )
        if not kept:
            return lines, None
        req = self._req_of(ex)
        if self.record_mode == "all":  # it replaces the loaded exchanges it matches
            self._replaced.update(
                i
                for i in range(self.loaded_count)
                if i not in self._replaced and self._matches(req, self._stored[i])
            )
        self.data.append(ex)
        self.play_counts.append(0)
        self._stored.append(req)
        self._texts.append(prepared.text)
        self._compact_dialects.append(self._compact_dialect(ex))
        self._kept += 1
        return lines, self._kept
