"""Transports that answer from a cassette, for tests that inject a client instead of patching.

::

    transport = Httpx2CassetteTransport("cassettes/history.yaml")
    client = openai.OpenAI(api_key="none", http_client=httpx2.Client(transport=transport))
    client.responses.compact(model="gpt-5.4", input=history)
    transport.assert_all_played()

Requests are matched by the same rules as :func:`use_cassette` replays (method, normalized path,
query, JSON body by value; host and headers ignored). Nothing ever reaches the network. A request
the cassette cannot answer raises :class:`RequestNotInCassette`, naming the closest recorded
request and how it differs; the transport also keeps those messages in ``misses``, for clients
that wrap transport errors in their own or retry them.

Each exchange played is validated as :func:`use_cassette` validates it (the live request, the
recorded answer; see ``_judge``), under the cassette's schema version and dialect unless others
are given. A violation never interrupts the client (SDKs retry transport errors): it is kept in
``violations``, and ``assert_valid()`` fails with all of them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from .._errors import CompactionError, counted
from ..cassette._exchange import CassetteData, Exchange
from ..cassette._file import load_cassette
from ..contract._dialects import dialect_for
from ..contract._judge import Judged, judge_exchange, judge_request
from ..contract._routes import normalize_path
from ..contract._tally import Tallied, Tally
from ..schema._versions import resolve_version
from ._match import BodyCache, bodies_equal, closest, query_items

MATCHERS = ("method", "path", "query", "body")
# The body a transport serves is already decoded; the client computes framing for it.
_FRAMING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})

CassetteSource = str | os.PathLike[str] | CassetteData | Sequence[Exchange]


class RequestNotInCassette(CompactionError):
    """A request the cassette holds no (unplayed) answer for."""

    def __init__(self, message: str, *, method: str, url: str, closest: int | None) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.closest = closest


@dataclass
class _Request:
    method: str
    uri: str
    body: bytes | None


class CassetteReplayer(Tallied):
    """Picks the recorded exchange answering a request; counts what was played.

    ``allow_playback_repeats`` lets an exchange answer more than once (otherwise each answers
    one request, in recorded order among equal requests). ``match_on`` is a subset of
    method, path, query, body. ``version`` and ``dialect`` validate under others than the
    cassette's (default: its own, else the newest version and the dialect of each URL);
    ``strict`` makes drift a violation; ``validate=False`` turns validation off.
    """

    def __init__(
        self,
        cassette: CassetteSource,
        *,
        allow_playback_repeats: bool = False,
        match_on: Iterable[str] = MATCHERS,
        version: str | None = None,
        strict: bool = False,
        dialect: str | None = None,
        validate: bool = True,
    ) -> None:
        self.source = "<exchanges>"
        data: CassetteData | None = None
        if isinstance(cassette, CassetteData):
            data = cassette
        elif isinstance(cassette, (str, os.PathLike)):
            self.source = str(Path(cassette))
            data = load_cassette(cassette)
        exchanges: list[Exchange] = (
            list(data.exchanges) if data is not None else list(cast(Sequence[Exchange], cassette))
        )
        self.exchanges = exchanges
        self.match_on = tuple(match_on)
        unknown = [m for m in self.match_on if m not in MATCHERS]
        if unknown:
            raise CompactionError(
                f"unknown matcher(s) {', '.join(unknown)}; known: {', '.join(MATCHERS)}"
            )
        self.allow_playback_repeats = allow_playback_repeats
        self.play_counts = [0] * len(exchanges)
        self.misses: list[str] = []
        self._recorded = [_Request(ex.method, ex.uri, ex.request_body) for ex in exchanges]
        self._bodies = BodyCache()
        self._lock = threading.Lock()
        # validation: the version and dialect stored in the cassette unless others are given
        self.validate = validate
        self.strict = strict
        self._version = version or (data.schema_version if data is not None else None)
        self._dialect = dialect or (data.dialect if data is not None else None)
        # drift at every play, and notes only of exchanges a schema covers
        self.tally = Tally(drift_once=False, unjudged_notes=False)
        self._answers: dict[int, Judged] = {}  # the recorded answers never change

    @property
    def play_count(self) -> int:
        return sum(self.play_counts)

    def _matches(self, live: _Request, recorded: _Request) -> bool:
        for name in self.match_on:
            if name == "method" and live.method.upper() != recorded.method.upper():
                return False
            if name == "path" and normalize_path(_path(live.uri)) != normalize_path(
                _path(recorded.uri)
            ):
                return False
            if name == "query" and query_items(live.uri) != query_items(recorded.uri):
                return False
            if name == "body" and not bodies_equal(self._bodies, live.body, recorded.body):
                return False
        return True

    def answer(self, method: str, url: str, body: bytes | None) -> Exchange:
        """The exchange answering this request (marked played), or :class:`RequestNotInCassette`."""
        live = _Request(method.upper(), url, body or None)
        with self._lock:
            matching = [i for i, rec in enumerate(self._recorded) if self._matches(live, rec)]
            for index in matching:
                if self.play_counts[index] == 0:
                    break
            else:
                index = matching[-1] if matching and self.allow_playback_repeats else -1
            if index >= 0:
                self.play_counts[index] += 1
                if self.validate:
                    self._judge(index, live)
                return self.exchanges[index]
            message, nearest = self._explain(live, matching)
            self.misses.append(message)
        raise RequestNotInCassette(message, method=live.method, url=url, closest=nearest)

    def _judge(self, index: int, live: _Request) -> None:
        """Validate the live request and the recorded answer of exchange ``index``; lock held."""
        ex = self.exchanges[index]
        version = resolve_version(self._version)
        profile = dialect_for(ex.uri, self._dialect)
        is_json, body = self._bodies.parse(live.body)
        request = judge_request(
            live.method,
            live.uri,
            body if is_json else live.body,
            version=version,
            dialect=profile,
            strict=self.strict,
        )
        if index not in self._answers:
            self._answers[index] = judge_exchange(
                ex, version=version, dialect=profile, strict=self.strict
            )[1]
        self.tally.record(f"exchange {index}", request, self._answers[index], ex.status)

    def assert_valid(self) -> None:
        """Fail with every violation found in the exchanges played so far."""
        if self.violations:
            head = (
                f"cassette {self.source}: {len(self.violations)} violation(s) of schema version "
                f"{resolve_version(self._version)}:"
            )
            raise AssertionError("\n".join([head, *[f"  {v}" for v in self.violations]]))

    def _explain(self, live: _Request, matching: list[int]) -> tuple[str, int | None]:
        lines = [
            f"compaction: {live.method} {live.uri} has no recorded answer in {self.source} "
            f"({counted(len(self.exchanges), 'exchange')}, {self.play_count} replayed)."
        ]
        if matching:
            lines.append(
                f"It matches exchange {matching[0]}, which was already replayed; pass "
                "allow_playback_repeats=True to replay it again, or record the repeated request."
            )
            return "\n".join(lines), matching[0]
        found = closest(live, self._recorded, self._bodies)
        if found is None:
            lines.append("The cassette holds no exchanges.")
            return "\n".join(lines), None
        index, diff = found
        stored = self._recorded[index]
        lines.append(f"Closest recorded request: exchange {index}, {stored.method} {stored.uri}")
        lines += [f"  {line}" for line in diff] or ["  (identical apart from headers)"]
        return "\n".join(lines), index

    def assert_all_played(self) -> None:
        """Fail unless every exchange answered at least one request."""
        unplayed = [i for i, n in enumerate(self.play_counts) if n == 0]
        if unplayed:
            lines = [f"cassette {self.source}: {len(unplayed)} exchange(s) never replayed:"]
            lines += [
                f"  exchange {i}: {self.exchanges[i].method} {self.exchanges[i].uri}"
                for i in unplayed
            ]
            raise AssertionError("\n".join(lines))


def _path(uri: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(uri).path


def _headers(ex: Exchange) -> list[tuple[str, str]]:
    return [
        (name, value)
        for name, values in ex.response_headers.items()
        if name.lower() not in _FRAMING_HEADERS
        for value in values
    ]


def _reason(ex: Exchange) -> bytes:
    return ex.reason.encode("latin-1", errors="replace")


class _ReplayMixin(Tallied):
    replayer: CassetteReplayer
    _response: Callable[..., Any]  # httpx.Response or httpx2.Response

    def _use(self, replayer: CassetteReplayer, response: Callable[..., Any]) -> None:
        self.replayer = replayer
        self.tally = replayer.tally
        self._response = response

    def _answer(self, request: Any) -> Any:
        ex = self.replayer.answer(request.method, str(request.url), request.content)
        return self._response(
            ex.status,
            headers=_headers(ex),
            content=ex.response_body,
            extensions={"reason_phrase": _reason(ex), "http_version": b"HTTP/1.1"},
        )

    @property
    def play_count(self) -> int:
        return self.replayer.play_count

    @property
    def misses(self) -> list[str]:
        return self.replayer.misses

    def assert_all_played(self) -> None:
        self.replayer.assert_all_played()

    def assert_valid(self) -> None:
        self.replayer.assert_valid()


class HttpxCassetteTransport(_ReplayMixin, httpx.MockTransport):
    """An httpx transport (sync and async clients) answering from a cassette.

    Options are :class:`CassetteReplayer`'s.
    """

    def __init__(self, cassette: CassetteSource, **options: Any) -> None:
        self._use(CassetteReplayer(cassette, **options), httpx.Response)
        super().__init__(self._answer)


def _httpx2_transport_class() -> type[Any]:
    try:
        import httpx2
    except ImportError:
        raise CompactionError("Httpx2CassetteTransport needs httpx2: pip install httpx2") from None

    class _Httpx2CassetteTransport(_ReplayMixin, httpx2.MockTransport):
        def __init__(self, replayer: CassetteReplayer) -> None:
            self._use(replayer, httpx2.Response)
            super().__init__(self._answer)

    return _Httpx2CassetteTransport


_HTTPX2_CLASS: list[type[Any]] = []


def Httpx2CassetteTransport(cassette: CassetteSource, **options: Any) -> Any:
    """An httpx2 transport (sync and async clients) answering from a cassette.

    The object is an ``httpx2.MockTransport`` with the counts and checks of
    :class:`HttpxCassetteTransport`; httpx2 is only imported here, as it is an optional
    dependency. Options are :class:`CassetteReplayer`'s.
    """
    if not _HTTPX2_CLASS:
        _HTTPX2_CLASS.append(_httpx2_transport_class())
    return _HTTPX2_CLASS[0](CassetteReplayer(cassette, **options))
