"""Verify: each replayed compaction exchange also sent to the live service, its answer kept.

While a cassette replays with ``verify`` on, the test gets the recorded answers (it stays
deterministic), and every replayed ``POST /responses/compact`` and ``POST /responses`` is sent
once more, as the client sent it: to the request's own URL, with the credentials the client
put in it. Those are used for that one call and never stored; the live exchange kept for
comparison holds the request as the cassette would (credentials filtered) and the live answer.
The call is made on the test's thread through the one opening the replay's network guard has
(:func:`._netguard.passage`); the test's own traffic stays refused.

Chains: the client sends turn 2 with what the recording answered in turn 1 (a
``previous_response_id``, a compaction item's ``id`` and ``encrypted_content``), which the
live service never issued. Each live answer is paired with the recorded one (the response
``id``; each output item's ``id`` and ``encrypted_content``, item by item), and later requests
are sent with the recorded values replaced by the live ones, so a chain is re-run live turn by
turn. A request that still refers to a response or an encrypted token the live service did not
issue in this run (a chain whose earlier turn was not verified, or history brought from
elsewhere) is not sent: it is listed as skipped, with the reason.

What the live answers are worth is judged by the caller (the same judge as recording, and
``check``'s comparison), not here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

from .._errors import CompactionError
from ..cassette._body import decode_body, parse_json_bytes
from ..cassette._exchange import Exchange
from ..cassette._sse import parse_stream
from ..contract._judge import is_stream
from ._credentials import Credentials
from ._netguard import passage

TIMEOUT = 120.0  # seconds a live call may take (a long compaction answers in tens of seconds)
# Request headers not sent again as they were: the body may be rewritten (its length then
# differs), and the connection is a new one.
_NOT_RESENT = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass
class LiveCall:
    """One replayed exchange and what the live service answered to it (or why it was not sent)."""

    index: int  # the exchange's position in the cassette
    recorded: Exchange
    live: Exchange | None = None
    skipped: str | None = None  # why it was not sent
    error: str | None = None  # why the call brought no answer (refused, timed out...)


@dataclass
class Verifier:
    """The live calls of one cassette, in the order the test replayed them."""

    credentials: Credentials
    calls: list[LiveCall] = field(default_factory=list)
    # recorded value -> live value: response ids, item ids, encrypted tokens
    issued: dict[str, str] = field(default_factory=dict)

    def call(self, index: int, sent: Any, stored: Any, recorded: Exchange) -> LiveCall:
        """Send ``sent`` (the vcrpy request as the client made it) to the live service.

        ``stored``: the same request as the cassette stores it (filtered), which the kept live
        exchange holds; ``recorded``: the cassette's exchange it replayed.
        """
        entry = LiveCall(index, recorded)
        self.calls.append(entry)
        raw = _bytes(sent.body)
        ok, body = parse_json_bytes(raw) if raw else (False, None)
        if ok:
            reason = self._unresolved(body)
            if reason is not None:
                entry.skipped = reason
                return entry
            body = _replaced(body, self.issued)
            raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            status, reason_phrase, headers, answer = _send(sent.method, sent.uri, sent.headers, raw)
        except (OSError, HTTPException, CompactionError) as exc:
            entry.error = self.credentials.mask(f"{type(exc).__name__}: {exc}")
            return entry
        entry.live = Exchange(
            method=recorded.method,
            uri=recorded.uri,
            request_headers={k: [str(v)] for k, v in dict(stored.headers).items()},
            request_body=raw,
            status=status,
            reason=reason_phrase,
            response_headers=headers,
            response_body=answer,
        )
        if 200 <= status < 300 and 200 <= recorded.status < 300:
            self._learn(recorded, entry.live)
        return entry

    def _unresolved(self, body: Any) -> str | None:
        """Why ``body`` cannot be sent live: a recorded id or token with no live counterpart."""
        if not isinstance(body, Mapping):
            return None
        previous = body.get("previous_response_id")
        if isinstance(previous, str) and previous not in self.issued:
            return (
                f"previous_response_id {previous} names a response the live service did not "
                "issue in this run (its turn was not verified live)"
            )
        items = body.get("input")
        for position, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, Mapping):
                continue
            kind = item.get("type", "item")
            token = item.get("encrypted_content")
            if isinstance(token, str) and token not in self.issued:
                return (
                    f"input[{position}] ({kind}) carries an encrypted token the live service "
                    "did not issue in this run"
                )
            ref = item.get("id")
            if kind == "item_reference" and isinstance(ref, str) and ref not in self.issued:
                return f"input[{position}] refers to item {ref}, not issued live in this run"
        return None

    def _learn(self, recorded: Exchange, live: Exchange) -> None:
        """Pair what the recorded and the live answer issued: ids, then item by item."""
        old, new = _final_response(recorded), _final_response(live)
        for a, b in _issued_pairs(old, new):
            self.issued[a] = b


def _bytes(body: Any) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)


def _replaced(value: Any, issued: Mapping[str, str]) -> Any:
    """``value`` with every string that is a recorded id or token replaced by the live one."""
    if isinstance(value, str):
        return issued.get(value, value)
    if isinstance(value, list):
        return [_replaced(item, issued) for item in value]
    if isinstance(value, dict):
        return {key: _replaced(item, issued) for key, item in value.items()}
    return value


def _final_response(ex: Exchange) -> Any:
    """The response object of an answer: its JSON body, or a stream's last ``response``."""
    ok, request = parse_json_bytes(ex.request_body) if ex.request_body else (False, None)
    asked = request if ok else None
    if not is_stream(ex.response_headers, body=ex.response_body, request_body=asked):
        parsed, value = parse_json_bytes(ex.response_body)
        return value if parsed else None
    final: Any = None
    for event in parse_stream(ex.response_body):
        parsed, data = event.json()
        if parsed and isinstance(data, Mapping) and isinstance(data.get("response"), Mapping):
            final = data["response"]
    return final


def _issued_pairs(old: Any, new: Any) -> Iterator[tuple[str, str]]:
    """(recorded, live) values two answers issued: the response ``id``, then each output
    item's ``id`` and ``encrypted_content``, items paired by position."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return
    if isinstance(old.get("id"), str) and isinstance(new.get("id"), str):
        yield old["id"], new["id"]
    old_items, new_items = old.get("output"), new.get("output")
    if not isinstance(old_items, list) or not isinstance(new_items, list):
        return
    for a, b in zip(old_items, new_items, strict=False):
        if not isinstance(a, Mapping) or not isinstance(b, Mapping):
            continue
        for key in ("id", "encrypted_content"):
            if isinstance(a.get(key), str) and isinstance(b.get(key), str):
                yield a[key], b[key]


def _send(
    method: str, uri: str, headers: Mapping[str, Any], body: bytes | None
) -> tuple[int, str, dict[str, list[str]], bytes]:
    """One HTTP call with the standard library's own connection classes (vcrpy replaces the
    module's names while a cassette is in use, not the classes it saved)."""
    from vcr.patch import _HTTPConnection, _HTTPSConnection

    parts = urlsplit(uri)
    host = parts.hostname or ""
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_class = _HTTPSConnection if parts.scheme == "https" else _HTTPConnection
    sent = {k: str(v) for k, v in headers.items() if k.lower() not in _NOT_RESENT}
    with passage(host):
        connection = connection_class(host, parts.port, timeout=TIMEOUT)
        try:
            connection.request(method, target, body=body, headers=sent)
            response = connection.getresponse()
            answer = response.read()
            status, reason = response.status, response.reason
            raw_headers: dict[str, list[str]] = {}
            for name, value in response.getheaders():
                raw_headers.setdefault(name, []).append(value)
        finally:
            connection.close()
    decoded_headers, decoded = decode_body(raw_headers, answer)
    return status, reason, decoded_headers, decoded
