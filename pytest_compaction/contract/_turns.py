"""How an exchange becomes a turn: the input its request sends, the output its answer returned.

Only ``POST .../responses`` and ``.../responses/compact`` calls with a JSON request body become
turns. A request whose response failed is still a turn, with no output: only successful
responses can be continued. A response is a stream when its content-type is
``text/event-stream``; without a content-type header (recorders may scrub it), when its body
reads as one (``event:`` or ``data:`` lines), or when the request asked for one
(``"stream": true``) and the body is not JSON. The output of a stream is the ``output`` of the
``response`` of its ``response.completed`` event (else of ``response.incomplete``); when that
output is empty, null or missing, or there is no terminal event, it is the items of the
``response.output_item.done`` events in ``output_index`` order, as the openai SDK rebuilds it.
Every ``encrypted_content`` the stream carried for an item (in ``.added`` and ``.done`` events
and in any ``response``) counts as returned for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..cassette._body import parse_json_bytes
from ..cassette._exchange import Exchange, header_get
from ..cassette._sse import asks_for_stream, is_event_stream, looks_like_stream
from ._routes import route_of

_TERMINAL = ("response.completed", "response.incomplete")


@dataclass
class Entry:
    """An item as a client was given it: the item, and where it was returned or sent."""

    item: Any
    exchange: int
    pointer: str


@dataclass
class Turn:
    """One request as the rules read it, with the output a later request can continue."""

    index: int
    compact: bool
    input: list[Any]
    previous: str | None
    managed: bool
    response_id: str | None = None
    output: list[Any] | None = None  # None: nothing a later request can continue
    streamed: dict[str, set[str]] = field(default_factory=dict)  # id -> every token streamed
    store: bool | None = None  # the request's ``store`` (None: not set)
    threshold: int | None = None  # the lowest ``compact_threshold`` of ``context_management``
    input_tokens: int | None = None  # the answer's ``usage.input_tokens``
    # Answered 400 ``invalid_encrypted_content``: a compaction token it passed was refused.
    refused_token: bool = False


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, parsed data) of an event stream; unparsable data lines are skipped."""
    events: list[tuple[str, Any]] = []
    name, data = "", list[str]()
    for line in [*re.split(r"\r\n|\r|\n", text), ""]:
        if not line:
            if data:
                try:
                    value = json.loads("\n".join(data))
                except (ValueError, RecursionError):  # "[DONE]", a malformed event: no data
                    value = None
                if isinstance(value, dict):
                    kind = value.get("type")
                    events.append((name or (kind if isinstance(kind, str) else ""), value))
            name, data = "", []
        elif not line.startswith(":"):
            key, _, value_text = line.partition(":")
            value_text = value_text[1:] if value_text.startswith(" ") else value_text
            if key == "event":
                name = value_text
            elif key == "data":
                data.append(value_text)
    return events


def event_list(value: Any) -> list[tuple[str, Any]] | None:
    """A stream given as a list of events (``{"event", "data"}`` records, or the events'
    own objects, named by their ``type``), else None."""
    if not isinstance(value, list) or not value or not all(isinstance(e, dict) for e in value):
        return None
    out = []
    for entry in value:
        data = entry.get("data") if isinstance(entry.get("data"), dict) else entry
        name = entry.get("event") or data.get("type")
        if not isinstance(name, str):
            return None
        out.append((name, data))
    return out


def from_events(turn: Turn, events: list[tuple[str, Any]]) -> None:
    terminal: dict[str, Any] | None = None
    for wanted in _TERMINAL:
        found = [
            d["response"] for n, d in events if n == wanted and isinstance(d.get("response"), dict)
        ]
        if found:
            terminal = found[-1]
            break
    done: list[tuple[int, Any]] = []
    for position, (name, data) in enumerate(events):
        item = data.get("item")
        response = data.get("response")
        carried = [item] if isinstance(item, dict) else []
        if isinstance(response, dict) and isinstance(response.get("output"), list):
            carried += [i for i in response["output"] if isinstance(i, dict)]
        for each in carried:  # every token the stream issued for an item
            token = each.get("encrypted_content")
            if isinstance(each.get("id"), str) and isinstance(token, str):
                turn.streamed.setdefault(each["id"], set()).add(token)
        if name != "response.output_item.done" or not isinstance(item, dict):
            continue
        index = data.get("output_index")
        done.append((index if isinstance(index, int) else position, item))
    if terminal is not None:
        from_response(turn, terminal)
    else:
        created = [d["response"] for n, d in events if isinstance(d.get("response"), dict)]
        if created and isinstance(created[0].get("id"), str):
            turn.response_id = created[0]["id"]
    if done and not turn.output:  # no terminal output (empty, null or missing): the done items
        turn.output = [item for _, item in sorted(done, key=lambda pair: pair[0])]


def from_response(turn: Turn, body: Any) -> None:
    if not isinstance(body, dict):
        return
    if isinstance(body.get("id"), str):
        turn.response_id = body["id"]
    if isinstance(body.get("output"), list):
        turn.output = list(body["output"])
    usage = body.get("usage")
    tokens = usage.get("input_tokens") if isinstance(usage, dict) else None
    if isinstance(tokens, int) and not isinstance(tokens, bool):
        turn.input_tokens = tokens


def _input_of(body: Mapping[str, Any]) -> list[Any]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    return list(raw) if isinstance(raw, list) else []


def kind_of_path(path: str) -> bool | None:
    """True for a compact call, False for a create call, None for anything else."""
    route = route_of("POST", path)
    return None if route is None else route == "compact"


def new_turn(index: int, compact: bool, body: Mapping[str, Any]) -> Turn:
    previous = body.get("previous_response_id")
    managed = body.get("context_management")
    store = body.get("store")
    return Turn(
        index=index,
        compact=compact,
        input=_input_of(body),
        previous=previous if isinstance(previous, str) else None,
        managed=isinstance(managed, list) and bool(managed),
        store=store if isinstance(store, bool) else None,
        threshold=_threshold(managed),
    )


def _threshold(managed: Any) -> int | None:
    """The lowest integer ``compact_threshold`` of the ``compaction`` entries, else None."""
    found = [
        entry["compact_threshold"]
        for entry in (managed if isinstance(managed, list) else [])
        if isinstance(entry, dict)
        and entry.get("type") == "compaction"
        and isinstance(entry.get("compact_threshold"), int)
        and not isinstance(entry.get("compact_threshold"), bool)
    ]
    return min(found) if found else None


def turn_of_exchange(index: int, exchange: Exchange) -> Turn | None:
    compact = kind_of_path(exchange.path)
    if compact is None or exchange.method.upper() != "POST":
        return None
    is_json, body = _parsed(exchange.request_body)
    if not is_json or not isinstance(body, dict):
        return None
    turn = new_turn(index, compact, body)
    if not 200 <= exchange.status < 300:
        # The code is matched in the whole body: gateways quote the API's error in their own.
        turn.refused_token = exchange.status == 400 and _REFUSED_TOKEN in (
            exchange.response_body or b""
        )
        return turn
    raw = exchange.response_body or b""
    is_json, value = _parsed(raw)
    if _streamed(exchange.response_headers, raw, body, is_json):
        from_events(turn, sse_events(raw.decode("utf-8", "replace")))
    elif is_json:
        from_response(turn, value)
    return turn


_REFUSED_TOKEN = b"invalid_encrypted_content"


def _streamed(headers: Mapping[str, list[str]], raw: bytes, request: Any, is_json: bool) -> bool:
    """Whether a response is an event stream: its content-type says so; without one (a recorder
    may scrub headers), its body reads as one, or the request asked for one and the body is not
    JSON."""
    types = [v for v in header_get(headers, "content-type") or [] if v.strip()]
    if types:
        return any(is_event_stream(v) for v in types)
    if looks_like_stream(raw):
        return True
    return bool(raw.strip()) and not is_json and asks_for_stream(request)


def _parsed(body: bytes | None) -> tuple[bool, Any]:
    try:
        return parse_json_bytes(body)
    except RecursionError:  # nested deeper than any item a client sends: nothing to check
        return False, None
