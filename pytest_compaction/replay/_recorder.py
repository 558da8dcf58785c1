"""Record and replay on vcrpy, with every compaction exchange validated.

``use_cassette`` works without pytest::

    with use_cassette("cassettes/history.yaml", record_mode="once") as rec:
        client.responses.compact(model="gpt-5.4", input=history)
    print(rec.recorded, rec.replayed, rec.violations)

vcrpy does the interception (httpx and httpx2, sync and async); this module adds the cassette
format, redaction, value-based matching, validation and clear failures. Before a request is
redacted, the credentials it carries are remembered (:mod:`._credentials`): the write gate
searches every byte for them, and every message is masked with them. Failures never surface
as exceptions inside a validated response (that would make SDKs retry): they are collected and
raised when the block ends, or by the pytest plugin when the test ends.

Event streams (``text/event-stream``) replay event by event: the replayed httpx response yields
one chunk per event, so a client's stream iterator receives them one at a time. vcrpy builds
that response in ``vcr.stubs.httpx_stubs._deserialize_response``; a wrapper installed there
swaps in a chunked stream only for responses this module marks, so stock vcrpy cassettes are
untouched. Which bodies are validated, and as what, is :mod:`._judge`'s rule: both ends of
``POST /responses/compact`` and ``POST /responses``, a stream event by event. What a stream does
on purpose (ends early, reports an error, carries a malformed line) is recorded as sent and
listed in ``notes``.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vcr.cassette import Cassette as _VcrCassette
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.persisters.filesystem import CassetteNotFoundError as _VcrNotFound
from vcr.request import Request as _VcrRequest

from .._errors import CompactionError, counted
from .._settings import OPTION_NAMES as OPTION_NAMES
from .._settings import RECORD_MODES as RECORD_MODES
from .._settings import VCR_PASSTHROUGH as _VCR_PASSTHROUGH
from ..cassette import _sse
from ..cassette._body import decode_body
from ..cassette._document import scan_document
from ..cassette._exchange import CassetteData, Exchange
from ..cassette._file import (
    CassetteNotFound,
    format_recorded_at,
    load_cassette,
    recording_time,
    save_cassette,
)
from ..cassette._find import cassette_file
from ..cassette._redact import (
    DEFAULT_FILTER_HEADERS,
    DEFAULT_FILTER_QUERY,
    SecretFound,
    check_no_secrets,
    redact_exchange,
    redact_headers,
    redact_query,
)
from ..contract._dialects import Dialect, all_auth_headers, dialect_for, get_dialect
from ..contract._judge import STREAM_KIND, Judged, is_stream
from ..contract._routes import is_compact_path, normalize_path, route_of
from ..contract._tally import Tallied, Tally, does_not_conform
from ._age import check_action, parse_age, show_age, show_limit, stale_by
from ._credentials import RECORDER_ADVICE, Credentials, refusal
from ._match import BodyCache, closest, closest_lines, make_matchers, rerecord_line
from ._netguard import replay_guard
from ._verify import LiveCall, Verifier

# Key of a replayed vcrpy response dict: its body cut into one chunk per event.
_CHUNKS = "compaction_event_chunks"
DEFAULT_MATCH_ON = ("method", "path", "query", "body")


class StaleCassetteWarning(UserWarning):
    """A cassette older than ``max_age`` replayed (``max_age_action`` ``warn``)."""


class ReplayError(CompactionError):
    """A replayed or recorded exchange failed: no match, missing cassette, or schema violations."""


class RequestNotRecorded(ReplayError, CannotOverwriteExistingCassetteException):  # type: ignore[misc]
    """A request the cassette cannot answer while recording is off.

    Also a vcrpy ``CannotOverwriteExistingCassetteException``, so code written for vcrpy still
    catches it.
    """

    def __init__(self, message: str, *, cassette: Any, failed_request: Any, reason: str) -> None:
        Exception.__init__(self, message)
        self.cassette = cassette
        self.failed_request = failed_request
        self.reason = reason
        self.similar_requests: list[Any] = []


def _is_stream(response: Mapping[str, Any]) -> bool:
    return is_stream(response.get("headers") or {}, body=_bytes(response["body"]["string"]))


@dataclass
class Recording(Tallied):
    """What happened on one cassette: the ``compaction_cassette`` fixture is one of these."""

    path: Path
    record_mode: str
    requested_version: str | None = None
    strict: bool = False
    requested_dialect: str | None = None  # None: the cassette's, else detected per request
    recorded: int = 0
    replayed: int = 0
    # validated, violations, drift and notes (what recorded streams do, not failures)
    tally: Tally = field(default_factory=Tally)
    problems: list[str] = field(default_factory=list)
    cassette_version: str | None = None
    cassette_dialect: str | None = None
    save_error: CompactionError | None = None
    hint: Callable[[str], str] = field(default=lambda mode: f"record_mode={mode!r}")
    # Age: the loaded cassette's compaction.recorded_at (None: it has none, or none was loaded)
    recorded_at: datetime | None = None
    max_age: timedelta | None = None
    max_age_action: str = "warn"
    undated: bool = False  # a cassette was loaded without recorded_at while max_age is set
    stale: str | None = None  # what max_age found and did, one line
    verify: bool = False  # replayed compaction exchanges are also sent live (see _verify)
    _cassette: Any = field(default=None, repr=False)
    # The allowed secrets and the credentials this recording used (memory only).
    _credentials: Credentials = field(default_factory=Credentials, repr=False)
    _version: str | None = field(default=None, repr=False)
    _response_reports: dict[tuple[int, str], Judged] = field(default_factory=dict, repr=False)
    _chunks: dict[int, tuple[bytes, ...]] = field(default_factory=dict, repr=False)
    _block_save: bool = field(default=False, repr=False)
    _reported: int = field(default=0, repr=False)
    _rerecording: bool = field(default=False, repr=False)  # stale, replaced by this run's
    _stamp: datetime | None = field(default=None, repr=False)  # recorded_at to write
    _verifier: Verifier | None = field(default=None, repr=False)

    # -- what a test can look at -------------------------------------------------------------

    @property
    def exchanges(self) -> list[Exchange]:
        """The exchanges now in the cassette (loaded and recorded), as they would be written."""
        if self._cassette is None:
            return []
        replaced = self._replaced()
        return [
            _exchange_of(req, resp)
            for i, (req, resp) in enumerate(self._cassette.data)
            if i not in replaced
        ]

    @property
    def play_count(self) -> int:
        return self.replayed

    @property
    def live_calls(self) -> list[LiveCall]:
        """Under ``verify``: each replayed compaction exchange and its live counterpart."""
        return [] if self._verifier is None else list(self._verifier.calls)

    @property
    def version(self) -> str:
        """The schema version exchanges are validated against."""
        if self._version is None:
            from ..schema._versions import resolve_version

            self._version = resolve_version(self.requested_version or self.cassette_version)
        return self._version

    @property
    def dialect(self) -> str | None:
        """The dialect named for this cassette (option or cassette header); None: detected."""
        return self.requested_dialect or self.cassette_dialect

    def dialect_for(self, uri: str) -> Dialect:
        """The profile an exchange with this URL is validated under."""
        return dialect_for(uri, self.dialect)

    def _dialect_to_store(self, exchanges: Iterable[Exchange]) -> str | None:
        if self.dialect:
            return get_dialect(self.dialect).name
        found = {self.dialect_for(ex.uri).name for ex in exchanges if is_compact_path(ex.uri)}
        return found.pop() if len(found) == 1 else None

    def assert_all_played(self) -> None:
        """Fail unless every exchange the cassette holds was replayed or recorded in this run.

        Under ``all`` a loaded exchange that a recorded one replaces is not counted (the file
        will not hold it); under ``rewrite`` nothing was loaded.
        """
        if self._cassette is None:
            raise AssertionError(f"cassette {self.path} is not in use")
        counts = self._cassette.play_counts
        loaded = self._cassette._loaded_count
        replaced = self._replaced()
        unplayed = [i for i in range(loaded) if counts[i] == 0 and i not in replaced]
        if unplayed:
            data = self._cassette.data
            lines = [f"cassette {self.path}: {len(unplayed)} exchange(s) never replayed:"]
            lines += [f"  exchange {i}: {data[i][0].method} {data[i][0].uri}" for i in unplayed]
            raise AssertionError("\n".join(lines))

    def _replaced(self) -> set[int]:
        """Under ``all``: the loaded exchanges a request recorded in this run matches (vcrpy
        writes the recorded ones in their place)."""
        cassette = self._cassette
        if cassette is None or self.record_mode != "all":
            return set()
        from vcr.matchers import requests_match

        loaded = cassette._loaded_count
        requests = [req for req, _ in cassette.data]
        fresh = requests[loaded:]
        return {
            i
            for i in range(loaded)
            if any(requests_match(new, requests[i], cassette._match_on) for new in fresh)
        }

    def failure(self) -> str | None:
        """Problems not reported yet, as one message (then they count as reported)."""
        new = self.problems[self._reported :]
        self._reported = len(self.problems)
        if not new:
            return None
        return "\n\n".join(new)

    # -- called by the cassette ----------------------------------------------------------------

    def _check_age(self, recorded_at: datetime | None) -> bool:
        """Judge a loaded cassette's age against ``max_age``; True: replace it (rerecord)."""
        self.recorded_at = recorded_at
        if self.max_age is None:
            return False
        if recorded_at is None:
            self.undated = True
            return False
        age = stale_by(recorded_at, self.max_age, datetime.now(UTC))
        if age is None:
            return False
        head = (
            f"cassette {self.path} was recorded {format_recorded_at(recorded_at)}, "
            f"{show_age(age)} ago, older than max_age {show_limit(self.max_age)}"
        )
        action = self.max_age_action
        if action == "rerecord" and self.record_mode != "none":
            self.stale = f"{head}: re-recorded from this run's exchanges"
            self._rerecording = True
            return True
        if action == "rerecord":
            self.stale = (
                f"{head}, and max_age_action 'rerecord' cannot re-record it under record mode "
                f"'none': re-record it with {self.hint('rewrite')}"
            )
            self._problem(f"compaction: {self.stale}")
        elif action == "fail":
            self.stale = f"{head}; re-record it with {self.hint('rewrite')}"
            self._problem(f"compaction: {self.stale}")
        else:
            self.stale = f"{head}; re-record it with {self.hint('rewrite')}"
            warnings.warn(StaleCassetteWarning(self.stale), stacklevel=2)
        return False

    def _date_to_store(self) -> datetime | None:
        """``recorded_at`` of the file written now: this run's time when this run's exchanges
        are all it holds, else the loaded date (the oldest exchange's age stays the file's)."""
        cassette = self._cassette
        loaded = 0 if cassette is None else cassette._loaded_count
        replaced = self._replaced()
        if self._rerecording or self.record_mode == "rewrite" or loaded == len(replaced):
            return self._stamp or recording_time()
        return self.recorded_at

    def _problem(self, text: str) -> None:
        text = self._credentials.mask(text)  # test logs are often public
        if text not in self.problems:
            self.problems.append(text)

    def _validate(self, index: int, request: Any, response: Mapping[str, Any], when: str) -> None:
        from ..contract._judge import judge_request, judge_response

        try:
            version = self.version
            dialect = self.dialect_for(request.uri)
        except CompactionError as exc:
            if route_of(request.method, request.uri) is not None:
                self._problem(f"cassette {self.path}: {exc}")
            return
        status = int(response["status"]["code"])
        is_json, body = self._cassette._bodies.parse(_bytes(request.body))
        report = judge_request(
            request.method,
            request.uri,
            body if is_json else _bytes(request.body),
            version=version,
            dialect=dialect,
            strict=self.strict,
            headers=request.headers,
        )
        # The stored answer never changes: replays reuse its verdict.
        key = (index, f"{version}/{self.strict}/{dialect.name}")
        judged = self._response_reports.get(key) if when == "replayed" else None
        if judged is None:
            judged = judge_response(
                request.method,
                request.uri,
                status,
                response.get("headers") or {},
                _bytes(response["body"]["string"]),
                version=version,
                dialect=dialect,
                strict=self.strict,
                request_headers=request.headers,
                request_body=body if is_json else None,
            )
            self._response_reports[key] = judged
        # The lines quote values (a key in service_tier): masked before they are kept.
        violations, _ = self.tally.record(
            f"exchange {index}",
            self._credentials.mask_report(report),
            self._credentials.mask_judged(judged),
            status,
        )
        if not violations:
            return
        what = "the event stream of " if judged.report and judged.report.kind == STREAM_KIND else ""
        after: str | None = None
        if when == "recorded":
            self._block_save = True
            after = "The cassette was not written."
        subject = f"compaction: {what}exchange {index} of cassette {self.path}"
        self._problem(
            does_not_conform(
                subject, version, violations, dialect=dialect.name, when=when, after=after
            )
        )

    def _replayable(self, index: int, response: Mapping[str, Any]) -> Mapping[str, Any]:
        """The response to hand to vcrpy: a stream's is marked to be served event by event."""
        if not _is_stream(response):
            return response
        chunks = self._chunks.get(index)
        if chunks is None:
            body = _bytes(response["body"]["string"]) or b""
            chunks = tuple(event.raw for event in _sse.parse_stream(body))
            self._chunks[index] = chunks
        if len(chunks) < 2:
            return response
        return {**response, _CHUNKS: chunks}


@functools.cache
def _event_stream_class(httpx: Any) -> Any:
    """A ``ByteStream`` of this httpx module (httpx or httpx2) that yields one chunk per event."""

    class EventStream(httpx.ByteStream):  # type: ignore[misc]
        def __init__(self, chunks: tuple[bytes, ...]) -> None:
            super().__init__(b"".join(chunks))
            self._chunks = chunks

        def __iter__(self) -> Iterator[bytes]:
            yield from self._chunks

        async def __aiter__(self) -> Any:
            for chunk in self._chunks:
                yield chunk

    return EventStream


def _install_event_replay() -> None:
    """Wrap vcrpy's httpx response builder so that marked streams replay event by event."""
    from vcr.stubs import httpx_stubs

    original = getattr(httpx_stubs, "_deserialize_response", None)
    if original is None or getattr(original, "compaction_events", False):
        return

    @functools.wraps(original)
    def deserialize(vcr_response: Any, httpx: Any) -> Any:
        response = original(vcr_response, httpx)
        chunks = vcr_response.get(_CHUNKS) if isinstance(vcr_response, Mapping) else None
        if chunks:
            response.stream = _event_stream_class(httpx)(chunks)
        return response

    deserialize.compaction_events = True  # type: ignore[attr-defined]
    httpx_stubs._deserialize_response = deserialize


def _bytes(body: Any) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)


def _exchange_of(request: Any, response: Mapping[str, Any]) -> Exchange:
    headers: dict[str, list[str]] = {}
    for key, value in request.headers.items():
        headers[key] = list(value) if isinstance(value, (list, tuple)) else [str(value)]
    body = response.get("body", {}).get("string")
    return Exchange(
        method=request.method,
        uri=request.uri,
        request_headers=headers,
        request_body=_bytes(request.body),
        status=int(response["status"]["code"]),
        reason=str(response["status"].get("message") or ""),
        response_headers={k: list(v) for k, v in response.get("headers", {}).items()},
        response_body=_bytes(body) or b"",
    )


def _vcr_pair(ex: Exchange) -> tuple[Any, dict[str, Any]]:
    request = _VcrRequest(ex.method, ex.uri, ex.request_body, {})
    # vcrpy's header dict keeps one value per name; keep the first, as vcrpy itself does.
    request.headers = {k: v[0] for k, v in ex.request_headers.items() if v}
    response = {
        "status": {"code": ex.status, "message": ex.reason},
        "headers": {k: list(v) for k, v in ex.response_headers.items()},
        "body": {"string": ex.response_body},
    }
    return request, response


class _Persister:
    """Reads every supported layout; writes this project's format atomically, secrets refused."""

    def __init__(
        self, recording: Recording, filter_headers: Sequence[str], keep_volatile: bool = False
    ) -> None:
        self.recording = recording
        self.filter_headers = tuple(filter_headers)
        self.keep_volatile = keep_volatile
        self.extra: dict[str, Any] = {}

    def load_cassette(self, cassette_path: Any, serializer: Any = None) -> tuple[Any, ...]:
        if self.recording.record_mode == "rewrite":  # the file will hold this run's exchanges
            raise _VcrNotFound()
        try:
            data = load_cassette(cassette_path)
        except CassetteNotFound:
            raise _VcrNotFound() from None
        if self.recording._check_age(data.recorded_at):  # stale: this run's exchanges replace it
            raise _VcrNotFound()
        self.recording.cassette_version = data.schema_version
        self.recording.cassette_dialect = data.dialect
        self.extra = data.extra
        pairs = [_vcr_pair(ex) for ex in data.exchanges]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def save_cassette(self, cassette_path: Any, cassette_dict: Any, serializer: Any = None) -> None:
        pairs = zip(cassette_dict["requests"], cassette_dict["responses"], strict=True)
        # Under ``all`` vcrpy hands over what the file keeps: recorded exchanges in place of
        # the loaded ones they match.
        exchanges = [
            redact_exchange(
                _exchange_of(req, resp),
                self.filter_headers,
                keep_volatile_headers=self.keep_volatile,
            )
            for req, resp in pairs
        ]
        path = str(cassette_path)
        extra = dict(self.extra)
        if cassette_dict.get("metadata"):
            extra["metadata"] = cassette_dict["metadata"]
        policy = self.recording._credentials.policy()
        try:
            check_no_secrets(path, exchanges, policy)
            found = scan_document(extra, policy)
            if found:
                raise SecretFound(path, found)
        except SecretFound as exc:
            raise refusal(exc, RECORDER_ADVICE) from None
        version = self.recording.version
        dialect = self.recording._dialect_to_store(exchanges)
        recorded_at = self.recording._date_to_store()
        save_cassette(
            path, CassetteData(exchanges, version, extra, dialect=dialect, recorded_at=recorded_at)
        )


class _CompactionCassette(_VcrCassette):  # type: ignore[misc]
    """vcrpy's cassette, reporting each recorded and replayed exchange to a :class:`Recording`."""

    _recording: Recording
    _bodies: BodyCache
    _canonical_path: Callable[[str], str] = staticmethod(normalize_path)
    _origin: tuple[str, ...] = ()  # the origin parts match_on compares
    _loading = False

    def _load(self) -> None:
        self._loading = True
        try:
            super()._load()
        finally:
            self._loading = False

    def append(self, request: Any, response: Any) -> None:
        before = len(self.data)
        super().append(request, response)
        if self._loading or len(self.data) == before:
            return
        index = len(self.data) - 1
        rec = self._recording
        rec.recorded += 1
        stored_request, stored_response = self.data[index]
        rec._validate(index, stored_request, stored_response, "recorded")

    def play_response(self, request: Any) -> Any:
        before = dict(self.play_counts)
        response = super().play_response(request)
        index = next(i for i, n in self.play_counts.items() if n != before.get(i, 0))
        rec = self._recording
        rec.replayed += 1
        stored = self._before_record_request(request)
        rec._validate(index, stored, response, "replayed")
        if rec._verifier is not None and route_of(request.method, request.uri) is not None:
            rec._verifier.call(index, request, stored, _exchange_of(self.data[index][0], response))
        return rec._replayable(index, response)

    def can_play_response_for(self, request: Any) -> bool:
        if super().can_play_response_for(request):
            return True
        if self.write_protected and self.filter_request(request):
            message, reason = self._explain(request)
            self._recording._problem(message)
            raise RequestNotRecorded(message, cassette=self, failed_request=request, reason=reason)
        return False

    def _explain(self, request: Any) -> tuple[str, str]:
        rec = self._recording
        live = self._before_record_request(request)
        head = f"compaction: {request.method} {live.uri} cannot be replayed"
        if not self.rewound and not self.data:
            return (
                rec._credentials.mask(
                    f"{head}: cassette {rec.path} does not exist; record it with {rec.hint('once')}"
                ),
                "cassette_not_found",
            )
        lines = [head + f" (record mode {rec.record_mode!r})."]
        lines.append(
            f"Cassette: {rec.path} ({counted(len(self.data), 'exchange')}, "
            f"{self.play_count} replayed)"
        )
        matching = [i for i, _ in self._responses(request)]
        if matching:
            lines.append(
                f"It matches exchange {matching[0]}, which was already replayed; set "
                "allow_playback_repeats=True in compaction_config to replay it again, or record "
                "the repeated request."
            )
            reason = "already_played"
        else:
            reason = "no_match"
            found = closest(live, self.requests, self._bodies, self._canonical_path, self._origin)
            lines += closest_lines(found, self.requests)
        lines.append(rerecord_line(((r.method, r.uri) for r in self.requests), rec.hint))
        return rec._credentials.mask("\n".join(lines)), reason  # test logs are often public

    def _save(self, force: bool = False) -> None:
        if self._recording._block_save:
            return
        try:
            # ``rewrite`` writes even when this run recorded nothing: the file holds that.
            rewrite = self._recording.record_mode == "rewrite" or self._recording._rerecording
            super()._save(force=force or rewrite)
        except CompactionError as exc:
            # Raised later, once vcrpy has removed its patches.
            self._recording.save_error = exc


@contextmanager
def _foreign_cassettes(recording: Recording) -> Iterator[None]:
    """Count the compaction exchanges another vcrpy cassette takes while ``recording`` is open.

    Another cassette entered inside this one (``vcr.use_cassette`` in the test, a second
    plugin's marker) receives the traffic in its place: those exchanges are neither recorded
    here nor validated, and the test must not pass as if they were.
    """
    original = _VcrCassette.append, _VcrCassette.play_response, _VcrCassette._load
    taken: dict[str, int] = {}

    def note(cassette: Any, request: Any) -> None:
        if isinstance(cassette, _CompactionCassette) or getattr(cassette, "_cp_loading", False):
            return
        if route_of(request.method, request.uri) is not None:
            where = str(getattr(cassette, "_path", "<cassette>"))
            taken[where] = taken.get(where, 0) + 1

    def append(self: Any, request: Any, response: Any) -> Any:
        note(self, request)
        return original[0](self, request, response)

    def play_response(self: Any, request: Any) -> Any:
        note(self, request)
        return original[1](self, request)

    def load(self: Any) -> Any:
        self._cp_loading = True
        try:
            return original[2](self)
        finally:
            self._cp_loading = False

    _VcrCassette.append, _VcrCassette.play_response, _VcrCassette._load = (
        append,
        play_response,
        load,
    )
    try:
        yield
    finally:
        _VcrCassette.append, _VcrCassette.play_response, _VcrCassette._load = original
    for where, count in taken.items():
        recording._problem(
            f"compaction: {count} compaction exchange(s) went through another vcrpy cassette, "
            f"{where}, instead of {recording.path}: they were neither recorded here nor "
            "validated. Use one cassette: remove the inner vcr.use_cassette(...) or "
            "@pytest.mark.vcr from this test, or check that cassette with "
            f"pytest-compaction check {where}."
        )


def _request_hook(
    filter_headers: Sequence[str],
    filter_query: Sequence[str],
    ignore_hosts: frozenset[str],
    user_hooks: Sequence[Callable[[Any], Any]],
    credentials: Credentials,
) -> Callable[[Any], Any]:
    def hook(request: Any) -> Any:
        request = copy.copy(request)
        if ignore_hosts and request.host in ignore_hosts:
            return None
        # What the client really sent, before any hook or filter: searched for in every byte.
        credentials.learn(request.headers.items(), filter_headers, request.uri, filter_query)
        for user_hook in user_hooks:
            request = user_hook(request)
            if request is None:
                return None
        headers = dict(request.headers.items())
        coding = next((v for k, v in headers.items() if k.lower() == "content-encoding"), None)
        if coding and request.body:
            fixed, body = decode_body(
                {k: [v] for k, v in headers.items()}, _bytes(request.body) or b""
            )
            headers = {k: v[0] for k, v in fixed.items()}
            request.body = body
        request.headers = redact_headers(headers, filter_headers)
        request.uri = redact_query(request.uri, filter_query)
        return request

    return hook


def _response_hook(
    filter_headers: Sequence[str], user_hooks: Sequence[Callable[[Any], Any]]
) -> Callable[[Any], Any]:
    def hook(response: Any) -> Any:
        for user_hook in user_hooks:
            response = user_hook(response)
            if response is None:
                return None
        body = _bytes(response["body"]["string"]) or b""
        headers, body = decode_body(response.get("headers", {}), body)
        response["headers"] = redact_headers(headers, filter_headers)
        response["body"]["string"] = body
        return response

    return hook


def _as_hooks(value: Any) -> list[Callable[[Any], Any]]:
    if value is None:
        return []
    if callable(value):
        return [value]
    return list(value)


def check_record_mode(mode: str) -> str:
    if mode not in RECORD_MODES:
        raise CompactionError(
            f"unknown record mode {mode!r}; choose one of {', '.join(RECORD_MODES)}"
        )
    return mode


@contextmanager
def use_cassette(
    path: str | Path,
    *,
    record_mode: str = "none",
    version: str | None = None,
    strict: bool = False,
    dialect: str | None = None,
    raise_on_exit: bool = True,
    hint: Callable[[str], str] | None = None,
    verify: bool = False,
    recorded_at: datetime | None = None,
    **options: Any,
) -> Iterator[Recording]:
    """Replay (or record, per ``record_mode``) the HTTP traffic of the block from ``path``.

    ``record_mode``: ``none`` (replay only; the default: nothing reaches the network), ``once``
    (record when the cassette does not exist), ``new_episodes`` (replay what matches, record the
    rest), ``all`` (record everything again; a recorded exchange replaces the stored ones it
    matches, the others stay), ``rewrite`` (record everything; the cassette then holds exactly this
    block's exchanges). ``version`` pins the schema version (default: the one stored in the
    cassette, else the newest). ``strict`` makes undocumented fields violations. ``dialect`` (a name
    of ``contract._dialects.DIALECTS``: ``openai``, ``azure``, ``litellm``, ``ollama``, ``xai``...)
    validates under that gateway's profile and filters its credential headers; by default (or
    ``"auto"``) the cassette's recorded dialect applies, else one detected from each request URL,
    else ``openai``. Other options: ``filter_headers`` and ``filter_query_parameters`` (added to the
    defaults), ``before_record_request``/``before_record_response`` hooks, ``ignore_hosts``,
    ``ignore_localhost``, ``match_on`` (names among method, path, query, body, host, port, scheme),
    ``check_chain`` (default true: the cassette's exchanges must keep the chaining contract, see
    ``check_chain``), ``allow_secrets`` (fake keys recorded on purpose: exact strings,
    ``re.compile(...)`` patterns), ``keep_volatile_headers`` (write ``x-stainless-*``,
    ``user-agent`` and the other request headers that never count; default false), and vcrpy's
    ``allow_playback_repeats``, ``drop_unused_requests``, ``record_on_exception``,
    ``skip_patchers``, ``custom_patches``.

    Age: a written cassette says when it was recorded (``compaction.recorded_at``: this run's
    time, ``SOURCE_DATE_EPOCH`` when set, or ``recorded_at`` when given; under ``new_episodes``
    and ``all`` a file that keeps loaded exchanges keeps its date). ``max_age`` (``"30d"``,
    ``"12h"``, ``"2w"`` or a timedelta) and ``max_age_action`` (``warn``, ``fail``,
    ``rerecord``: see :mod:`._age`) judge a loaded cassette by that date; one without it is not
    judged (``Recording.undated``).

    ``verify``: every replayed ``POST /responses/compact`` and ``POST /responses`` is also sent
    to the live service with the client's own credentials, and kept with its answer in
    ``Recording.live_calls`` (see :mod:`._verify`); the block still gets the recorded answers.

    When the block ends, problems (requests not in the cassette, schema violations, a secret
    that stopped the write) raise :class:`ReplayError` unless ``raise_on_exit`` is false.
    """
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise CompactionError(
            f"unknown cassette option(s): {', '.join(unknown)}; "
            f"known: {', '.join(sorted(OPTION_NAMES))}"
        )
    check_record_mode(record_mode)
    _install_event_replay()
    path = cassette_file(path)
    if dialect in (None, "", "auto"):
        profile: Dialect | None = None
    else:
        profile = get_dialect(dialect)
    recording = Recording(
        path=path,
        record_mode=record_mode,
        requested_version=version,
        strict=strict,
        requested_dialect=profile.name if profile else None,
        _credentials=Credentials.allowing(options.get("allow_secrets")),
    )
    if hint is not None:
        recording.hint = hint
    recording.max_age = parse_age(options.get("max_age"))
    recording.max_age_action = check_action(options.get("max_age_action"))
    recording._stamp = recorded_at
    if verify:
        recording.verify = True
        recording._verifier = Verifier(recording._credentials)
    if version:
        recording.version  # noqa: B018 - an unknown version fails here, before any traffic

    # Without a named dialect any gateway's credentials may be sent: filter them all.
    auth = profile.auth_headers if profile else all_auth_headers()
    filter_headers = tuple(
        dict.fromkeys((*DEFAULT_FILTER_HEADERS, *auth, *options.get("filter_headers", ())))
    )
    filter_query = (*DEFAULT_FILTER_QUERY, *options.get("filter_query_parameters", ()))
    ignore = set(options.get("ignore_hosts", ()))
    if options.get("ignore_localhost"):
        ignore.update({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
    bodies = BodyCache()
    canonical = profile.canonical_path if profile else normalize_path
    matchers = make_matchers(bodies, canonical)
    from vcr import matchers as vcr_matchers

    known = {**{n: getattr(vcr_matchers, n) for n in ("host", "port", "scheme")}, **matchers}
    match_on = options.get("match_on", DEFAULT_MATCH_ON)
    bad = [m for m in match_on if m not in known]
    if bad:
        raise CompactionError(f"unknown matcher(s) {bad}; known: {', '.join(sorted(known))}")

    cassette_class: Any = type(
        "CompactionCassette",
        (_CompactionCassette,),
        {
            "_recording": recording,
            "_bodies": bodies,
            "_canonical_path": staticmethod(canonical),
            "_origin": tuple(m for m in match_on if m in ("scheme", "host", "port")),
        },
    )
    vcr_kwargs: dict[str, Any] = {k: options[k] for k in _VCR_PASSTHROUGH if k in options}
    context = cassette_class.use(
        path=str(path),
        persister=_Persister(recording, filter_headers, bool(options.get("keep_volatile_headers"))),
        record_mode="all" if record_mode == "rewrite" else record_mode,
        match_on=[known[m] for m in match_on],
        before_record_request=_request_hook(
            filter_headers,
            filter_query,
            frozenset(ignore),
            _as_hooks(options.get("before_record_request")),
            recording._credentials,
        ),
        before_record_response=_response_hook(
            filter_headers, _as_hooks(options.get("before_record_response"))
        ),
        **vcr_kwargs,
    )
    error: BaseException | None = None
    cassette = context.__enter__()
    recording._cassette = cassette
    try:
        with (
            _foreign_cassettes(recording),
            replay_guard(record_mode, ignore, path, recording._problem),
        ):
            yield recording
    except BaseException as exc:
        error = exc
        raise
    finally:
        context.__exit__(type(error), error, None if error is None else error.__traceback__)
        if recording.save_error is not None:
            recording._problem(str(recording.save_error))
        if error is None and options.get("check_chain", True):
            # The exchanges are written as they happened; a broken rule fails the block.
            from ..contract._chain import chain_failure

            chained = chain_failure(recording.exchanges, f"cassette {recording.path}")
            if chained is not None:
                recording._problem(chained)
        if raise_on_exit and error is None:
            message = recording.failure()
            if message is not None:
                raise ReplayError(message) from recording.save_error
