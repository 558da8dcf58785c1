"""Request matching for replay, and the explanation shown when nothing matches.

Requests match on method, normalized path, query (order-insensitive) and JSON body compared by
value. Host, port and scheme are left out on purpose, so a cassette recorded against one server
(or a local one on a random port) replays against any base URL. Headers are never matched:
SDKs put retry counts, platform details and idempotency keys there.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import SplitResult, parse_qsl, urlsplit

from .._pointer import escape
from ..cassette._body import parse_json_bytes
from ..contract._routes import normalize_path, route_of

MAX_DIFF_LINES = 20
_VALUE_WIDTH = 80


class RequestLike(Protocol):
    method: str
    uri: str

    @property
    def body(self) -> Any: ...


def query_items(uri: str) -> list[tuple[str, str]]:
    """The query as a sorted multiset of (name, value) pairs."""
    return sorted(parse_qsl(urlsplit(uri).query, keep_blank_values=True))


def _body_bytes(request: RequestLike) -> bytes | None:
    body = request.body
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    read = getattr(body, "read", None)
    if callable(read):
        data = read()
        return data if isinstance(data, bytes) else str(data).encode("utf-8")
    return b"".join(part if isinstance(part, bytes) else str(part).encode() for part in body)


class BodyCache:
    """Parsed JSON bodies keyed by their bytes, so a 1 MB body is parsed once per replay."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._items: OrderedDict[bytes, tuple[bool, Any]] = OrderedDict()

    def parse(self, body: bytes | None) -> tuple[bool, Any]:
        if not body:
            return False, None
        hit = self._items.get(body)
        if hit is not None:
            self._items.move_to_end(body)
            return hit
        parsed = parse_json_bytes(body)
        self._items[body] = parsed
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return parsed


def bodies_equal(cache: BodyCache, live: bytes | None, recorded: bytes | None) -> bool:
    """JSON bodies by value (key order and whitespace do not count), other bodies by bytes."""
    if live == recorded or (not live and not recorded):
        return True
    live_json, live_value = cache.parse(live)
    rec_json, rec_value = cache.parse(recorded)
    if live_json and rec_json:
        return bool(live_value == rec_value)
    return False


def make_matchers(
    cache: BodyCache, canonical_path: Callable[[str], str] = normalize_path
) -> dict[str, Callable[[Any, Any], bool]]:
    """vcrpy matchers (called as matcher(live, recorded)) named after what they compare.

    ``canonical_path`` maps a path to what is compared: a gateway dialect makes its compaction
    aliases (``/v1/responses/compact``, ``/responses/compact``...) one path.
    """

    def method(r1: Any, r2: Any) -> bool:
        return bool(r1.method.upper() == r2.method.upper())

    def path(r1: Any, r2: Any) -> bool:
        return canonical_path(r1.path) == canonical_path(r2.path)

    def query(r1: Any, r2: Any) -> bool:
        return query_items(r1.uri) == query_items(r2.uri)

    def body(r1: Any, r2: Any) -> bool:
        return bodies_equal(cache, _body_bytes(r1), _body_bytes(r2))

    return {"method": method, "path": path, "query": query, "body": body}


# ---------------------------------------------------------------------------------------------
# Explaining a mismatch


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    if len(text) > _VALUE_WIDTH:
        text = text[: _VALUE_WIDTH - 1] + "…"
    return text


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return isinstance(a, numbers) and isinstance(b, numbers) and a == b


def json_diff(recorded: Any, live: Any, limit: int = MAX_DIFF_LINES) -> list[str]:
    """Readable differences as JSON pointers: '/input/3/content: 'a' != 'b''."""
    out: list[str] = []
    total = 0

    def add(line: str) -> None:
        nonlocal total
        total += 1
        if len(out) < limit:
            out.append(line)

    def walk(a: Any, b: Any, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in a:
                if key not in b:
                    add(f"{where}/{escape(key)}: removed (recorded {_short(a[key])})")
                else:
                    walk(a[key], b[key], f"{where}/{escape(key)}")
            for key in b:
                if key not in a:
                    add(f"{where}/{escape(key)}: added ({_short(b[key])})")
        elif isinstance(a, list) and isinstance(b, list):
            for i in range(min(len(a), len(b))):
                walk(a[i], b[i], f"{where}/{i}")
            for i in range(len(b), len(a)):
                add(f"{where}/{i}: removed (recorded {_short(a[i])})")
            for i in range(len(a), len(b)):
                add(f"{where}/{i}: added ({_short(b[i])})")
        elif type(a) is not type(b) or a != b:
            # 1 and 1.0 are the same JSON number; True and 1 are not the same value.
            if _same_number(a, b):
                return
            add(f"{where or '/'}: {_short(a)} != {_short(b)}")

    walk(recorded, live, "")
    if total > len(out):
        out.append(f"… and {total - len(out)} more differences")
    return out


def _diff_count(cache: BodyCache, recorded: bytes | None, live: bytes | None) -> int:
    if bodies_equal(cache, live, recorded):
        return 0
    rec_json, rec_value = cache.parse(recorded)
    live_json, live_value = cache.parse(live)
    if rec_json and live_json:
        return len(json_diff(rec_value, live_value, limit=1000))
    return 10_000


def closest(
    live: RequestLike,
    recorded: Sequence[RequestLike],
    cache: BodyCache,
    canonical_path: Callable[[str], str] = normalize_path,
    origin: Sequence[str] = (),
) -> tuple[int, list[str]] | None:
    """Index of the recorded request closest to ``live`` and how they differ, as readable lines.

    ``origin``: the parts of the URL's origin (``scheme``, ``host``, ``port``) that matching
    compares, so a difference there is named rather than left out as if it did not count.
    """
    best: tuple[tuple[int, int], int] | None = None
    live_path = canonical_path(urlsplit(live.uri).path)
    live_body = _body_bytes(live)
    for index, req in enumerate(recorded):
        score = 0
        score += 4 if req.method.upper() == live.method.upper() else 0
        score += 4 if canonical_path(urlsplit(req.uri).path) == live_path else 0
        score += 1 if query_items(req.uri) == query_items(live.uri) else 0
        score += 0 if _origin_lines(req.uri, live.uri, origin) else 1
        key = (-score, _diff_count(cache, _body_bytes(req), live_body) if score >= 8 else 10_000)
        if best is None or key < best[0]:
            best = (key, index)
    if best is None:
        return None
    index = best[1]
    return index, describe_difference(recorded[index], live, cache, canonical_path, origin)


def closest_lines(
    found: tuple[int, list[str]] | None, recorded: Sequence[RequestLike]
) -> list[str]:
    """What a miss report says about :func:`closest`'s answer."""
    if found is None:
        return ["The cassette holds no exchanges."]
    index, diff = found
    stored = recorded[index]
    return [
        f"Closest recorded request: exchange {index}, {stored.method} {stored.uri}",
        *([f"  {line}" for line in diff] or ["  (identical apart from headers)"]),
    ]


def _port(parts: SplitResult) -> int | None:
    """The port a URL reaches, its scheme's default when none is written (as vcrpy compares)."""
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def _origin_lines(recorded: str, live: str, parts: Sequence[str]) -> list[str]:
    """``host: 'a' != 'b'`` for each matched origin part that differs."""
    if not parts:
        return []
    rec, now = urlsplit(recorded), urlsplit(live)
    values = {
        "scheme": (rec.scheme, now.scheme),
        "host": (rec.hostname, now.hostname),
        "port": (_port(rec), _port(now)),
    }
    return [
        f"{p}: {values[p][0]!r} != {values[p][1]!r}" for p in parts if values[p][0] != values[p][1]
    ]


def describe_difference(
    recorded: RequestLike,
    live: RequestLike,
    cache: BodyCache,
    canonical_path: Callable[[str], str] = normalize_path,
    origin: Sequence[str] = (),
) -> list[str]:
    """How ``live`` differs from ``recorded`` in what matching compares (``origin``: see
    :func:`closest`), one readable line each; headers never count."""
    lines: list[str] = []
    if recorded.method.upper() != live.method.upper():
        lines.append(f"method: {recorded.method} != {live.method}")
    lines += _origin_lines(recorded.uri, live.uri, origin)
    rec_path, live_path = urlsplit(recorded.uri).path, urlsplit(live.uri).path
    if canonical_path(rec_path) != canonical_path(live_path):
        lines.append(f"path: {rec_path!r} != {live_path!r}")
    rec_q, live_q = query_items(recorded.uri), query_items(live.uri)
    if rec_q != live_q:
        lines.append(f"query: {rec_q!r} != {live_q!r}")
    rec_body, live_body = _body_bytes(recorded), _body_bytes(live)
    if not bodies_equal(cache, live_body, rec_body):
        rec_json, rec_value = cache.parse(rec_body)
        live_json, live_value = cache.parse(live_body)
        if rec_json and live_json:
            lines.append("body (recorded != this request):")
            lines += [f"  {line}" for line in json_diff(rec_value, live_value)]
        else:
            lines.append(
                f"body: {len(rec_body or b'')} bytes recorded != {len(live_body or b'')} bytes "
                "in this request (not both JSON)"
            )
    return lines


def rerecord_line(requests: Iterable[tuple[str, str]], hint: Callable[[str], str]) -> str:
    """How a replay miss says to record: ``new_episodes`` adds the request to what is there,
    but compaction exchanges are a chain whose ids and tokens a live server issued, and a
    request recorded later against a restarted or newer one carries state it does not know
    (a 400 recorded into the chain). Such a cassette is recorded again whole, ``rewrite``."""
    if any(route_of(method, uri) is not None for method, uri in requests):
        return f"To record the chain again, whole: {hint('rewrite')}"
    return f"To record it: {hint('new_episodes')}"
