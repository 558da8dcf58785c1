"""The chaining contract: what a client sends after a compaction, checked across exchanges.

Compaction only helps when the client passes its result back correctly. TrueFoundry's gateway
documentation of ``/responses/compact`` states the contract: after a standalone compact, "Do not
prune the compact response. Pass the full output into your next /responses call as-is."; with
server-side compaction (``context_management``), "Stateless: Append response output (including
compaction items) to your input each turn", "With stateless chaining, you can drop items that
came before the most recent compaction item", and "Stateful: Use previous_response_id and send
only the new user message; do not manually prune". A compaction item carries an opaque
``encrypted_content`` token; publicly reported error bodies show the API answering a token it
cannot verify with ``400 invalid_encrypted_content`` ("could not be verified"). The rules, as
checked:

1. **compact-output**: a request continuing a ``POST /responses/compact`` answer contains the
   compact output's most recent compaction item and every item after it, each JSON-identical to
   the returned one (key order and null fields aside: stock vcrpy cassettes sort keys, SDKs may
   serialize an absent optional field as null), contiguous and in the returned order; new input
   follows. Items *before* that compaction item may be left out, because the compaction item
   carries them: the live API's compact output re-issues the user messages ahead of the
   compaction item, and pydantic-ai, recorded against the live API, sends only ``[compaction
   item, new message]`` and is answered normally. So "do not prune" is read as: do not prune
   what the compaction item does not carry. An item that is passed must still be the returned
   one: same id, same content, in the returned order, ahead of the compaction item. Items the
   output never held (a system prompt, say) may sit ahead of it.
2. **stateless-chain**: a request without ``previous_response_id`` continuing a ``POST
   /responses`` answer whose conversation uses server-side compaction (the earlier request or
   this one carries ``context_management``, or the conversation holds a compaction item) sends
   the conversation so far (the earlier input followed by its output) from its most recent
   compaction item on (all of it when there is none), contiguous and in order, then new input.
   Items before that compaction item may be dropped. Clients re-render what they pass back
   (pydantic-ai sends an output message as ``{"role", "content": text}``), so here an item
   passes when it is equivalent: a message has the same role and texts, with typographic quotes
   and dashes folded to ASCII (the recorded pydantic-ai stream chain sends the model's "\u2019"
   and "\u2014" back as "'" and "--", and the live API answered normally); another item has the
   same fields apart from ``id``, ``status`` and null fields; an id, when both sides carry one,
   must match.
3. **stateful-chain**: a request with ``previous_response_id`` naming a response of the
   cassette sends only new input: no item the server already holds for that id (the input and
   output along the chain of ``previous_response_id``, or a compact answer's output). An item
   counts as resent when it carries the id or the ``encrypted_content`` of a held item, when it
   repeats a held item only the model can have written (assistant message, tool call...), or
   when the input opens with two or more held items in their order. Pruning cannot be expressed
   with ``previous_response_id`` (the server holds the items), so only resending is checked.
4. **encrypted-content**: an item passed back with the id of an item the continued answer
   returned carries that item's ``encrypted_content`` unchanged (and does not drop it); an id
   the continued answer did not return is read against every exchange that returned it. A
   stream re-encrypts: the compaction item's token differs between
   ``response.output_item.added``, ``.done`` and ``response.completed``. Each token the stream
   issued for the item is accepted, the ``.added`` one too: pydantic-ai sends the ``.done`` one
   (the live API answered it), the openai SDK's final response carries the ``completed`` one.
   A compaction item without an id, whose token no response returned, standing where rule 1 or
   2 expects the returned compaction item, is reported under this rule too.

Which earlier answer a request continues, among the successful (2xx) ``POST /responses`` and
``/responses/compact`` exchanges before it, is decided once per request, and every rule reads
the request against that answer:

- with ``previous_response_id``: the response it names (rule 3); and, when the input also holds
  items a compact answer outside that chain returned, that compact answer (rule 1);
- without: an exchange that returned an item the input contains (same id, same
  ``encrypted_content``, or, for an item only the model writes, the same content re-rendered),
  or whose request input this input extends. Extending means the earlier input, counted from
  its most recent compaction item (what came before may be dropped), reappears here from the
  same compaction item (from the start when there is none) with more after it: stateless
  chaining of re-rendered messages has no ids to go by. A request repeating an earlier input
  exactly is a retry of it, not its continuation.

Of those candidates the latest wins that the input holds an item of that no other exchange
returned (an id only it returned, a token, a model-written item only it wrote), or whose input
it extends; without one, the latest. A conversation can branch, and one item can be in
several answers (a compact answer re-issues the user messages it compacted, two replies can be
worded alike): a request continuing an earlier answer can hold items that a later answer, on
another branch, returned too.

A request whose response failed is still checked; only successful responses can be continued.
A response is a stream when its content-type is ``text/event-stream``; without a content-type
header (recorders may scrub it), when its body reads as one (``event:`` or ``data:`` lines), or
when the request asked for one (``"stream": true``) and the body is not JSON. The output of a
stream is the ``output`` of the ``response`` of its ``response.completed`` event (else of
``response.incomplete``); when that output is empty, null or missing, or there is no terminal
event, it is the items of the ``response.output_item.done`` events in ``output_index`` order,
as the openai SDK rebuilds it. Every ``encrypted_content`` the stream carried for an item (in
``.added`` and ``.done`` events and in any ``response``) counts as returned for it.

Results are data (:class:`ChainViolation`), formatted only at the edge.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import CompactionError
from ..cassette._cassette import Exchange, header_get, parse_json_bytes
from ..cassette._sse import asks_for_stream, is_event_stream, looks_like_stream
from ._routes import route_of

RULES: dict[int, str] = {
    1: "compact-output",
    2: "stateless-chain",
    3: "stateful-chain",
    4: "encrypted-content",
}
_TERMINAL = ("response.completed", "response.incomplete")


class ChainError(CompactionError):
    """Turns given to :func:`check_conversation` that are not (request, response, path)."""


@dataclass(frozen=True)
class ChainViolation:
    """One broken rule: where in which request, and which returned item it concerns.

    ``pointer`` is a JSON pointer into the request body of exchange ``exchange`` (``/input/2``,
    or ``/input`` for an item that is missing); ``source_exchange`` and ``source_pointer`` name
    the item as it was returned (``/output/1`` in that exchange's response, or ``/input/0`` in
    its request for the earlier input of a stateless conversation).
    """

    rule: int
    name: str
    exchange: int
    pointer: str
    message: str
    source_exchange: int | None = None
    source_pointer: str | None = None

    @property
    def item(self) -> int | None:
        """The index of the input item concerned (None when the item is missing)."""
        match = re.match(r"/input/(\d+)", self.pointer)
        return int(match.group(1)) if match else None

    @property
    def location(self) -> str:
        """``/input/2/encrypted_content`` -> ``input[2].encrypted_content``."""
        return _readable(self.pointer)

    def __str__(self) -> str:
        return (
            f"rule {self.rule} ({self.name}): exchange {self.exchange} {self.location}: "
            f"{self.message}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "name": self.name,
            "exchange": self.exchange,
            "item": self.item,
            "pointer": self.pointer,
            "message": self.message,
            "source_exchange": self.source_exchange,
            "source_pointer": self.source_pointer,
        }


def _readable(pointer: str) -> str:
    out = ""
    for part in pointer.split("/")[1:]:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "(body)"


# -- reading exchanges ------------------------------------------------------------------------
@dataclass
class _Entry:
    """An item as a client was given it: the item, and where it was returned or sent."""

    item: Any
    exchange: int
    pointer: str


@dataclass
class _Turn:
    index: int
    compact: bool
    input: list[Any]
    previous: str | None
    managed: bool
    response_id: str | None = None
    output: list[Any] | None = None  # None: nothing a later request can continue
    streamed: dict[str, set[str]] = field(default_factory=dict)  # id -> every token streamed


def _sse_events(text: str) -> list[tuple[str, Any]]:
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


def _event_list(value: Any) -> list[tuple[str, Any]] | None:
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


def _from_events(turn: _Turn, events: list[tuple[str, Any]]) -> None:
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
        _from_response(turn, terminal)
    else:
        created = [d["response"] for n, d in events if isinstance(d.get("response"), dict)]
        if created and isinstance(created[0].get("id"), str):
            turn.response_id = created[0]["id"]
    if done and not turn.output:  # no terminal output (empty, null or missing): the done items
        turn.output = [item for _, item in sorted(done, key=lambda pair: pair[0])]


def _from_response(turn: _Turn, body: Any) -> None:
    if not isinstance(body, dict):
        return
    if isinstance(body.get("id"), str):
        turn.response_id = body["id"]
    if isinstance(body.get("output"), list):
        turn.output = list(body["output"])


def _input_of(body: Mapping[str, Any]) -> list[Any]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    return list(raw) if isinstance(raw, list) else []


def _kind_of_path(path: str) -> bool | None:
    """True for a compact call, False for a create call, None for anything else."""
    route = route_of("POST", path)
    return None if route is None else route == "compact"


def _new_turn(index: int, compact: bool, body: Mapping[str, Any]) -> _Turn:
    previous = body.get("previous_response_id")
    managed = body.get("context_management")
    return _Turn(
        index=index,
        compact=compact,
        input=_input_of(body),
        previous=previous if isinstance(previous, str) else None,
        managed=isinstance(managed, list) and bool(managed),
    )


def _turn_of_exchange(index: int, exchange: Exchange) -> _Turn | None:
    compact = _kind_of_path(exchange.path)
    if compact is None or exchange.method.upper() != "POST":
        return None
    is_json, body = _parsed(exchange.request_body)
    if not is_json or not isinstance(body, dict):
        return None
    turn = _new_turn(index, compact, body)
    if not 200 <= exchange.status < 300:
        return turn
    raw = exchange.response_body or b""
    is_json, value = _parsed(raw)
    if _streamed(exchange.response_headers, raw, body, is_json):
        _from_events(turn, _sse_events(raw.decode("utf-8", "replace")))
    elif is_json:
        _from_response(turn, value)
    return turn


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


# -- comparing items --------------------------------------------------------------------------
def _id(item: Any) -> str | None:
    value = item.get("id") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def _kind(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    kind = item.get("type", "message" if "role" in item else None)
    return kind if isinstance(kind, str) else None


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# Text is compared with typographic quotes and dashes folded to ASCII: text pipelines and
# cassette scrubbers ASCII-fy them, and the recorded pydantic-ai stream chain passes the model's
# "\u2019" and "\u2014" back as "'" and "--" (the live API answered normally).
_PUNCTUATION = str.maketrans(
    dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'")
    | dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"')
    | dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-")
)
_DASHES = re.compile("-+")


def _fold(text: str) -> str:
    return _DASHES.sub("-", unicodedata.normalize("NFKC", text).translate(_PUNCTUATION))


def _texts(content: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(content, str):
        return (("text", _fold(content)),)
    if not isinstance(content, list):
        return (("value", _canon(content)),)
    parts: list[tuple[str, str]] = []
    for part in content:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(("text", _fold(part["text"])))  # input_text and output_text alike
        elif isinstance(part, dict) and isinstance(part.get("refusal"), str):
            parts.append(("refusal", _fold(part["refusal"])))
        else:
            parts.append(("part", _canon(part)))
    return tuple(parts)


def _essence(item: Any) -> Any:
    """What stays the same when a client re-renders an item it passes back."""
    if not isinstance(item, dict):
        return ("value", _canon(item))
    kind = _kind(item)
    if kind == "message":
        return ("message", _canon(item.get("role")), _texts(item.get("content")))
    rest = {
        k: v
        for k, v in item.items()
        if k not in ("id", "status", "encrypted_content") and v is not None
    }
    return (kind, _canon(rest))


def _model_made(item: Any) -> bool:
    """An output item only the model can have written (not a re-issued user turn, no token)."""
    return (
        isinstance(item, dict)
        and "encrypted_content" not in item
        and item.get("role") != "user"
        and _kind(item) not in (None, "compaction")
    )


def _last_compaction(items: Sequence[Any]) -> int:
    """The index of the most recent compaction item, 0 when there is none."""
    found = [i for i, item in enumerate(items) if _kind(item) == "compaction"]
    return found[-1] if found else 0


def _loose_view(item: Any) -> Any:
    """The essence as a JSON value, to say how two equivalent-looking items differ."""
    if isinstance(item, dict) and _kind(item) == "message":
        return {"role": item.get("role"), "content": [t for _, t in _texts(item.get("content"))]}
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if k not in ("id", "status", "encrypted_content")}
    return item


def _without_token(item: Any) -> Any:
    """The item as rule 1 compares it: the token is rule 4's, a null field an absent one."""
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if k != "encrypted_content" and v is not None}
    return item


def _describe(item: Any) -> str:
    if not isinstance(item, dict):
        return f"{type(item).__name__} item"
    kind = _kind(item)
    words = [str(kind) if kind is not None else "item"]
    if _id(item):
        words.append(str(_id(item)))
    if kind == "message" and isinstance(item.get("role"), str):
        words.append(f"({item['role']})")
    return " ".join(words)


def _short(value: Any) -> str:
    text = _canon(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _difference(returned: Any, passed: Any, where: str = "") -> str:
    """The first place two JSON values differ, for a message."""
    if isinstance(returned, dict) and isinstance(passed, dict):
        for key in [*returned, *(k for k in passed if k not in returned)]:
            sub = f"{where}.{key}" if where else str(key)
            if key not in passed:
                return f"{sub} is missing"
            if key not in returned:
                return f"{sub} was added"
            if returned[key] != passed[key]:
                return _difference(returned[key], passed[key], sub)
    elif isinstance(returned, list) and isinstance(passed, list):
        for i, (a, b) in enumerate(zip(returned, passed, strict=False)):
            if a != b:
                return _difference(a, b, f"{where}[{i}]")
        if len(returned) != len(passed):
            return f"{where or 'value'} has {len(passed)} element(s), not {len(returned)}"
    return f"{where or 'value'} is {_short(passed)}, was {_short(returned)}"


def _token_difference(returned: str, passed: Any) -> str:
    if not isinstance(passed, str):
        return "it is missing" if passed is None else f"it is a {type(passed).__name__}"
    at = next(
        (i for i, (a, b) in enumerate(zip(returned, passed, strict=False)) if a != b),
        min(len(returned), len(passed)),
    )
    return f"first difference at character {at} (length {len(passed)}, was {len(returned)})"


# -- the check --------------------------------------------------------------------------------
class _Chain:
    """The exchanges of one cassette, read in order; violations collected as they are found."""

    def __init__(self) -> None:
        self._position_cache: dict[int, tuple[Sequence[Any], dict[str, set[int]]]] = {}
        self.turns: dict[int, _Turn] = {}
        self.by_response: dict[str, int] = {}
        self.windows: dict[int, list[_Entry]] = {}
        self.issued: dict[str, list[_Entry]] = {}  # item id -> where it was returned
        # item id -> exchange -> every token that exchange returned for it
        self.tokens: dict[str, dict[int, set[str]]] = {}
        self.by_token: dict[str, _Entry] = {}
        self.made: dict[Any, set[int]] = {}  # essence of a model-produced output item -> exchanges
        self.found: list[ChainViolation] = []
        self._seen: set[tuple[int, int, str]] = set()

    # -- bookkeeping -------------------------------------------------------------------------
    def report(
        self, rule: int, turn: _Turn, pointer: str, message: str, source: _Entry | None = None
    ) -> None:
        key = (rule, turn.index, pointer)
        if key in self._seen:
            return
        self._seen.add(key)
        self.found.append(
            ChainViolation(
                rule,
                RULES[rule],
                turn.index,
                pointer,
                message,
                source.exchange if source else None,
                source.pointer if source else None,
            )
        )

    def versions(self, item: Any) -> set[str]:
        out: set[str] = set()
        if isinstance(item, dict) and isinstance(item.get("encrypted_content"), str):
            out.add(item["encrypted_content"])
        item_id = _id(item)
        if item_id is not None:
            for tokens in self.tokens.get(item_id, {}).values():
                out |= tokens
        return out

    def register(self, turn: _Turn) -> None:
        self.turns[turn.index] = turn
        if turn.output is None:
            return
        if turn.response_id is not None:
            self.by_response[turn.response_id] = turn.index
        outputs = [_Entry(item, turn.index, f"/output/{i}") for i, item in enumerate(turn.output)]
        for entry in outputs:
            if _model_made(entry.item):
                self.made.setdefault(_essence(entry.item), set()).add(turn.index)
            item_id = _id(entry.item)
            if item_id is not None:
                self.issued.setdefault(item_id, []).append(entry)
            token = entry.item.get("encrypted_content") if isinstance(entry.item, dict) else None
            if isinstance(token, str):
                self.by_token[token] = entry
                if item_id is not None:
                    self.tokens.setdefault(item_id, {}).setdefault(turn.index, set()).add(token)
        for item_id, streamed in turn.streamed.items():
            source = next((e for e in outputs if _id(e.item) == item_id), None)
            if source is None:
                continue  # an item the stream never finished: nothing to continue
            self.tokens.setdefault(item_id, {}).setdefault(turn.index, set()).update(streamed)
            for token in streamed:
                self.by_token.setdefault(token, source)
        if turn.compact:
            self.windows[turn.index] = outputs
            return
        held: list[_Entry] = []
        previous = self.by_response.get(turn.previous) if turn.previous else None
        if previous is not None and previous != turn.index:
            held = list(self.windows.get(previous, []))
        held += [_Entry(item, turn.index, f"/input/{i}") for i, item in enumerate(turn.input)]
        self.windows[turn.index] = held + outputs

    # -- matching ----------------------------------------------------------------------------
    def same(self, returned: Any, passed: Any, *, loose: bool) -> bool:
        """Whether ``passed`` is the client's copy of ``returned`` (content aside when by id)."""
        if not isinstance(returned, dict) or not isinstance(passed, dict):
            return False
        rid, pid = _id(returned), _id(passed)
        if rid is not None and pid is not None:
            return rid == pid
        if _kind(returned) != _kind(passed):
            return False
        token = passed.get("encrypted_content")
        if isinstance(token, str) or "encrypted_content" in returned:
            return isinstance(token, str) and token in self.versions(returned)
        if rid is not None and not loose:
            return False  # passed "as returned" means with its id
        return bool(_essence(returned) == _essence(passed))

    def identical(self, returned: Any, passed: Any, *, loose: bool) -> bool:
        if loose:
            return bool(_essence(returned) == _essence(passed))
        return bool(_without_token(returned) == _without_token(passed))

    @staticmethod
    def _order(start: int, stop: int, wrap: bool) -> Iterable[int]:
        yield from range(start, stop)
        if wrap:
            yield from range(0, min(start, stop))

    def find(
        self,
        entry: _Entry,
        items: Sequence[Any],
        used: set[int],
        start: int,
        stop: int,
        *,
        loose: bool,
        wrap: bool = True,
    ) -> int | None:
        item = entry.item
        rid = _id(item)
        if (
            not loose
            and rid is not None
            and isinstance(item, dict)
            and "encrypted_content" not in item
        ):
            # Strictly, an item with an id is only ever matched by that id: look it up
            # instead of comparing with every input item (long inputs made this quadratic).
            where = sorted(self._positions(items).get(rid, ()))
            ordered = [q for q in where if start <= q < stop]
            if wrap:
                ordered += [q for q in where if q < min(start, stop)]
            for q in ordered:
                if q not in used and self.same(item, items[q], loose=loose):
                    return q
            return None
        for q in self._order(start, stop, wrap):
            if q not in used and self.same(item, items[q], loose=loose):
                return q
        return None

    def _positions(self, items: Sequence[Any]) -> dict[str, set[int]]:
        """Where each id occurs in ``items`` (cached per input list)."""
        key = id(items)
        cached = self._position_cache.get(key)
        if cached is None or cached[0] is not items:
            index: dict[str, set[int]] = {}
            for q, it in enumerate(items):
                item_id = _id(it)
                if item_id is not None:
                    index.setdefault(item_id, set()).add(q)
            cached = (items, index)
            self._position_cache[key] = cached
        return cached[1]

    # -- rules 1 and 2 -------------------------------------------------------------------------
    def passed_on(self, rule: int, turn: _Turn, returned: list[_Entry], source: int) -> None:
        """``returned`` must reach ``turn``'s input from its most recent compaction item on."""
        loose = rule == 2
        what = (
            f"the compact output of exchange {source}"
            if rule == 1
            else f"the conversation continued from exchange {source}"
        )
        compactions = [i for i, e in enumerate(returned) if _kind(e.item) == "compaction"]
        k = _last_compaction([e.item for e in returned])
        head, tail = returned[:k], returned[k:]
        items = turn.input
        used: set[int] = set()
        positions: list[int | None] = []
        last = -1
        for m, entry in enumerate(tail):
            q = self.find(entry, items, used, last + 1, len(items), loose=loose)
            if q is None and m == 0 and _kind(entry.item) == "compaction":
                q = self.stray_compaction(turn, entry, used)
            if q is None and not loose:  # there, but re-rendered: reported as modified below
                q = self.find(entry, items, used, last + 1, len(items), loose=True)
            if q is None and loose and self.in_place(entry.item, items, last + 1, used):
                q = last + 1  # the same kind of item where it belongs: changed, not dropped
            positions.append(q)
            if q is None:
                why = (
                    "only the items before the most recent compaction item may be left out"
                    if compactions
                    else "there is no compaction item, so nothing may be left out"
                )
                self.report(
                    rule,
                    turn,
                    "/input",
                    f"{_describe(entry.item)} of {what} is missing from the input (pruned): {why}",
                    entry,
                )
                continue
            used.add(q)
            last = q
            if not self.identical(entry.item, items[q], loose=loose):
                self.modified(rule, turn, q, entry, what, loose=loose)
        self.check_order(rule, turn, tail, positions, what)
        found = [q for q in positions if q is not None]
        anchor = (
            positions[0]
            if positions and positions[0] is not None
            else min(found, default=len(items))
        )
        self.check_head(rule, turn, head, anchor, used, what, loose=loose)

    @staticmethod
    def in_place(returned: Any, items: Sequence[Any], q: int, used: set[int]) -> bool:
        if q >= len(items) or q in used or not isinstance(returned, dict):
            return False
        passed = items[q]
        return (
            isinstance(passed, dict)
            and _id(passed) is None
            and "encrypted_content" not in passed
            and "encrypted_content" not in returned
            and _kind(passed) == _kind(returned)
            and passed.get("role") == returned.get("role")
        )

    def modified(
        self, rule: int, turn: _Turn, q: int, entry: _Entry, what: str, *, loose: bool
    ) -> None:
        view = _loose_view if loose else _without_token
        change = _difference(view(entry.item), view(turn.input[q]))
        self.report(
            rule,
            turn,
            f"/input/{q}",
            f"{_describe(entry.item)} of {what} was not passed as returned: {change}",
            entry,
        )

    def stray_compaction(self, turn: _Turn, entry: _Entry, used: set[int]) -> int | None:
        """An id-less compaction item whose token nobody returned stands for ``entry``."""
        candidates = [
            q
            for q, item in enumerate(turn.input)
            if q not in used
            and _kind(item) == "compaction"
            and (_id(item) is None or _id(item) not in self.issued)
            and isinstance(item.get("encrypted_content"), str)
            and item["encrypted_content"] not in self.by_token
        ]
        if len(candidates) != 1:
            return None
        q = candidates[0]
        returned = entry.item.get("encrypted_content") if isinstance(entry.item, dict) else None
        if isinstance(returned, str):
            sent = turn.input[q]
            self.report(
                4,
                turn,
                f"/input/{q}/encrypted_content",
                f"encrypted_content of {_describe(sent)} is not the one exchange "
                f"{entry.exchange} returned: "
                f"{_token_difference(returned, sent['encrypted_content'])}; "
                "it must go back byte-identical",
                entry,
            )
        return q

    def check_order(
        self,
        rule: int,
        turn: _Turn,
        tail: list[_Entry],
        positions: list[int | None],
        what: str,
    ) -> None:
        highest: tuple[int, _Entry] | None = None
        for entry, q in zip(tail, positions, strict=True):
            if q is None:
                continue
            if highest is not None and q < highest[0]:
                self.report(
                    rule,
                    turn,
                    f"/input/{q}",
                    f"{_describe(entry.item)} of {what} comes before "
                    f"{_describe(highest[1].item)} (input[{highest[0]}]): items must keep the "
                    "returned order",
                    entry,
                )
            elif highest is None or q > highest[0]:
                highest = (q, entry)
        found = sorted(q for q in positions if q is not None)
        if not found:
            return
        for q in range(found[0], found[-1] + 1):
            if q not in found:
                self.report(
                    rule,
                    turn,
                    f"/input/{q}",
                    f"{_describe(turn.input[q])} was inserted inside {what}: the returned items "
                    "must be passed contiguous, new input after them",
                    tail[0],
                )

    def check_head(
        self,
        rule: int,
        turn: _Turn,
        head: list[_Entry],
        anchor: int,
        used: set[int],
        what: str,
        *,
        loose: bool,
    ) -> None:
        """Items before the compaction item may be absent; those present must be as returned."""
        items = turn.input
        last = -1
        for entry in head:
            by_id = _id(entry.item) is not None
            q = self.find(entry, items, used, last + 1, anchor, loose=loose, wrap=False)
            if q is None and by_id:
                q = self.find(entry, items, used, 0, len(items), loose=loose, wrap=False)
                if q is not None:
                    where = "after the compaction item" if q > anchor else "out of order"
                    self.report(
                        rule,
                        turn,
                        f"/input/{q}",
                        f"{_describe(entry.item)} of {what} is passed {where}: items must keep "
                        "the returned order",
                        entry,
                    )
                    used.add(q)
                    continue
            if q is None:
                continue  # left out: the compaction item carries it
            used.add(q)
            last = q
            if not self.identical(entry.item, items[q], loose=loose):
                self.modified(rule, turn, q, entry, what, loose=loose)

    # -- rule 3 --------------------------------------------------------------------------------
    def resent(self, turn: _Turn, previous: int) -> dict[int, _Entry]:
        """Input position -> the held item it resends, for a request naming ``previous``."""
        held = self.windows.get(previous, [])
        by_id = {_id(e.item): e for e in held if _id(e.item) is not None}
        by_token: dict[str, _Entry] = {}
        model_made: dict[Any, _Entry] = {}
        for held_entry in held:
            for token in self.versions(held_entry.item):
                by_token.setdefault(token, held_entry)
            made = held_entry.item
            if held_entry.pointer.startswith("/output/") and _model_made(made):
                model_made.setdefault(_essence(made), held_entry)
        resent: dict[int, _Entry] = {}
        for q, item in enumerate(turn.input):
            if not isinstance(item, dict):
                continue
            sent_token = item.get("encrypted_content")
            item_id = _id(item)
            entry = by_id.get(item_id) if item_id is not None else None
            if entry is None and isinstance(sent_token, str):
                entry = by_token.get(sent_token)
            if entry is None and "encrypted_content" not in item and item_id is None:
                entry = model_made.get(_essence(item))
            if entry is not None:
                resent[q] = entry
        # The whole history sent again, as when chaining statelessly by mistake.
        run = 0
        while (
            run < min(len(turn.input), len(held))
            and _id(turn.input[run]) is None
            and self.same(held[run].item, turn.input[run], loose=True)
        ):
            run += 1
        if run >= 2:
            for q in range(run):
                resent.setdefault(q, held[q])
        return resent

    def stateful(self, turn: _Turn, resent: dict[int, _Entry]) -> None:
        """Rule 3: nothing the server holds for ``previous_response_id`` is sent again."""
        for q in sorted(resent):
            entry = resent[q]
            side = "output" if entry.pointer.startswith("/output/") else "input"
            self.report(
                3,
                turn,
                f"/input/{q}",
                f"{_describe(turn.input[q])} resends an item the server already holds for "
                f"previous_response_id {turn.previous} (the {side} of exchange {entry.exchange}): "
                "with previous_response_id send only the new input",
                entry,
            )

    # -- rule 4 --------------------------------------------------------------------------------
    def returned_for(self, item_id: str, link: int | None) -> tuple[_Entry, set[str]]:
        """Where the item ``item_id`` a request passes back was returned, and its tokens.

        The answer the request continues (``link``) decides when it returned that item; else the
        latest exchange that returned it, with every token any exchange returned for it.
        """
        by_exchange = self.tokens[item_id]
        window = self.windows.get(link, []) if link is not None else []
        mine = [e for e in window if _id(e.item) == item_id and e.pointer.startswith("/output/")]
        if mine and mine[-1].exchange in by_exchange:
            return mine[-1], by_exchange[mine[-1].exchange]
        known: set[str] = set()
        for tokens in by_exchange.values():
            known |= tokens
        return self.issued[item_id][-1], known

    def tokens_kept(self, turn: _Turn, link: int | None) -> None:
        for q, item in enumerate(turn.input):
            item_id = _id(item)
            if item_id is None or item_id not in self.tokens:
                continue
            token = item.get("encrypted_content")
            source, known = self.returned_for(item_id, link)
            if isinstance(token, str) and token in known:
                continue
            returned = (
                source.item.get("encrypted_content") if isinstance(source.item, dict) else None
            )
            reference = returned if isinstance(returned, str) else next(iter(known))
            versions = "" if len(known) == 1 else f" (nor any of the {len(known)} streamed)"
            self.report(
                4,
                turn,
                f"/input/{q}/encrypted_content",
                f"encrypted_content of {_describe(item)} is not the one exchange "
                f"{source.exchange} returned{versions}: {_token_difference(reference, token)}; "
                "it must go back byte-identical",
                source,
            )

    # -- linking ---------------------------------------------------------------------------------
    def continued(self, turn: _Turn, skip: Iterable[int]) -> dict[int, bool]:
        """Earlier exchanges whose output this input contains (items in ``skip`` aside).

        Each maps to whether an item only it returned is among them (an id no other exchange
        returned, a token, a model-written item no other exchange wrote).
        """
        found: dict[int, bool] = {}

        def add(exchanges: set[int]) -> None:
            for index in exchanges:
                found[index] = found.get(index, False) or len(exchanges) == 1

        if not (self.issued or self.by_token or self.made):
            return {}  # nothing was answered before this request
        skipped = set(skip)
        for q, item in enumerate(turn.input):
            if q in skipped or not isinstance(item, dict):
                continue
            item_id = _id(item)
            token = item.get("encrypted_content")
            if item_id is not None and item_id in self.issued:
                add({entry.exchange for entry in self.issued[item_id]})
            if isinstance(token, str) and token in self.by_token:
                add({self.by_token[token].exchange})
            # Only what the model writes is in ``made``: a user's message never needs the
            # (costly) re-rendering comparison.
            if item_id is None and token is None and self.made and _model_made(item):
                add(self.made.get(_essence(item), set()))  # the model's words, re-rendered
        return {i: unique for i, unique in found.items() if i < turn.index}

    def link(self, turn: _Turn, previous: int | None, resent: Iterable[int]) -> int | None:
        """The earlier answer whose output ``turn`` passes on (rule 1 or 2), or None.

        Every rule reads the request against this one answer. Candidates are the exchanges
        whose output the input contains and, without ``previous_response_id``, those whose
        input it extends; with ``previous_response_id``, only compact answers outside the chain
        it names. The latest candidate that the input holds an item of that only it returned
        (or whose input it extends) wins: in a branching conversation one item (a re-issued
        message, a reply worded alike) can be in answers the request does not continue. Without
        such a candidate, the latest one.
        """
        found = self.continued(turn, resent)
        if turn.previous is not None:
            chain = self.chain_of(previous) if previous is not None else set()
            found = {i: u for i, u in found.items() if self.turns[i].compact and i not in chain}
        else:
            for index in self.extended(turn):
                found[index] = True
        if not found:
            return None
        unique = [i for i, u in found.items() if u]
        return max(unique or found)

    def extended(self, turn: _Turn) -> list[int]:
        """Earlier exchanges whose input this input extends.

        The earlier input counts from its most recent compaction item (what came before may be
        dropped); it must reappear from the same compaction item here, with more after it.
        """
        out = []
        for index, earlier in self.turns.items():
            if earlier.output is None or not earlier.input:
                continue
            start = _last_compaction(earlier.input)
            part = earlier.input[start:]
            p = 0
            if start:
                p = next(
                    (q for q, i in enumerate(turn.input) if self.same(part[0], i, loose=True)), -1
                )
            if p < 0 or len(turn.input) - p <= len(part):
                continue
            if all(self.same(a, b, loose=True) for a, b in zip(part, turn.input[p:], strict=False)):
                out.append(index)
        return out

    def chain_of(self, index: int) -> set[int]:
        out: set[int] = set()
        while index not in out:
            out.add(index)
            previous = self.turns[index].previous
            if previous is None or previous not in self.by_response:
                break
            index = self.by_response[previous]
        return out

    def check(self, turn: _Turn) -> None:
        previous = self.by_response.get(turn.previous) if turn.previous is not None else None
        resent = self.resent(turn, previous) if previous is not None else {}
        source = self.link(turn, previous, resent)
        self.tokens_kept(turn, source if source is not None else previous)
        self.stateful(turn, resent)
        if source is not None:
            self.rule_for(turn, source)

    def rule_for(self, turn: _Turn, index: int) -> None:
        earlier = self.turns[index]
        window = self.windows.get(index, [])
        if earlier.compact:
            self.passed_on(1, turn, window, index)
            return
        compacted = any(_kind(e.item) == "compaction" for e in window)
        if earlier.managed or turn.managed or compacted:
            self.passed_on(2, turn, window, index)


def _run(turns: Iterable[_Turn]) -> list[ChainViolation]:
    chain = _Chain()
    for turn in turns:
        try:
            chain.check(turn)
            chain.register(turn)
        except RecursionError:  # items nested too deeply to compare: the turn is left out
            continue
    return chain.found


def check_chain(exchanges: Iterable[Exchange]) -> list[ChainViolation]:
    """Check the chaining rules across the exchanges of one cassette, in order.

    Exchanges that are not ``POST .../responses`` or ``.../responses/compact`` calls with a
    JSON request body are skipped. Returns the violations found, in the order of the requests
    (empty when the conversation logic keeps every rule); see the module documentation for
    the rules.
    """
    exchanges = list(exchanges)
    calls = [
        i
        for i, ex in enumerate(exchanges)
        if ex.method.upper() == "POST" and _kind_of_path(ex.path) is not None
    ]
    if len(calls) < 2:
        return []  # a rule links a request to an earlier answer: one call keeps them all
    turns = []
    for index in calls:
        turn = _turn_of_exchange(index, exchanges[index])
        if turn is not None:
            turns.append(turn)
    return _run(turns)


def _json_value(value: Any, what: str) -> Any:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            raise ChainError(f"{what} is not JSON") from None
    return value


def check_conversation(turns: Iterable[Sequence[Any]]) -> list[ChainViolation]:
    """:func:`check_chain` over plain ``(request, response, path)`` triples, for unit tests.

    ``request`` is the request body (a mapping, or JSON text); ``response`` the response body (a
    mapping, JSON text, the text of an event stream, a list of the stream's events, or None
    when the call failed); ``path``
    the URL or path called (``/v1/responses`` or ``/v1/responses/compact``). The exchange
    indices of the violations are the positions of the triples.
    """
    out: list[_Turn] = []
    for index, triple in enumerate(turns):
        if not isinstance(triple, Sequence) or isinstance(triple, str | bytes) or len(triple) != 3:
            raise ChainError(f"turn {index}: expected a (request, response, path) triple")
        request, response, path = triple
        if not isinstance(path, str):
            raise ChainError(f"turn {index}: the path must be a string, got {type(path).__name__}")
        compact = _kind_of_path(path)
        if compact is None:
            raise ChainError(
                f"turn {index}: {path!r} is not a /responses or /responses/compact path"
            )
        body = _json_value(request, f"turn {index}: the request")
        if not isinstance(body, Mapping):
            raise ChainError(f"turn {index}: the request must be a JSON object")
        turn = _new_turn(index, compact, body)
        if isinstance(response, bytes | bytearray):
            response = bytes(response).decode("utf-8", "replace")
        if isinstance(response, str) and looks_like_stream(response):
            _from_events(turn, _sse_events(response))
        elif response is not None:
            value = _json_value(response, f"turn {index}: the response")
            events = _event_list(value)
            if events is not None:
                _from_events(turn, events)
            elif isinstance(value, Mapping):
                _from_response(turn, dict(value))
            else:
                raise ChainError(f"turn {index}: the response must be a JSON object or a stream")
        out.append(turn)
    return _run(out)


# -- at the edge ----------------------------------------------------------------------------------
def format_violations(violations: Iterable[ChainViolation], where: str = "") -> str:
    """A heading and one line per violation (empty when there are none)."""
    found = list(violations)
    if not found:
        return ""
    head = f"compaction chaining: {len(found)} violation(s)" + (f" in {where}" if where else "")
    return "\n".join([head + ":", *(f"  {v}" for v in found)])


def chain_failure(exchanges: Iterable[Exchange], where: str = "") -> str | None:
    """The violations of :func:`check_chain` as one failure message, or None."""
    return format_violations(check_chain(exchanges), where) or None


def check_proxy_session(proxy: Any) -> list[str]:
    """A check of ``SESSION_CHECKS``: the exchanges a test's clients made through the proxy."""
    session = getattr(proxy, "session", [])
    message = chain_failure([record.exchange for record in session], "this test's proxy session")
    return [message] if message else []
