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
5. **compaction-id**: a compaction item passed back with the ``encrypted_content`` an answer
   returned keeps the ``id`` that answer gave it, or carries none. The token is bound to its
   item: the live API refuses another id with "Encrypted content item_id did not match the
   target item id" (Soju06/codex-lb#1316: a proxy that re-minted compaction item ids). For
   rules 1 and 2 such an item stands where it is, as the returned one.
6. **unstored-previous**: ``previous_response_id`` does not name a response of the cassette
   created with ``store: false``. The API keeps no such response and answers ``400
   previous_response_not_found`` ("Previous response with id '...' not found.";
   maximhq/bifrost#2441, bigduu/Bamboo-agent#64). Its ``source_pointer`` is ``/store`` in that
   exchange's request.

**Recovery.** Once a request continuing an answer is refused with ``400
invalid_encrypted_content``, that answer's compaction item cannot be used any more: the
documented recovery drops it or compacts the full history again. A later request continuing
the same answer is then not held to rules 1 and 2 (what it leaves out); the other rules hold.

Which earlier answer a request continues, among the successful (2xx) ``POST /responses`` and
``/responses/compact`` exchanges before it, is decided once per request (see :mod:`._links`),
and every rule reads the request against that answer. How a request and its answer are read,
an event stream's output among them, is :mod:`._turns`'s.

Results are data (:class:`ChainViolation`), formatted only at the edge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._data import as_data
from .._errors import CompactionError
from ..cassette._exchange import Exchange
from ..cassette._sse import looks_like_stream
from ._items import (
    describe,
    difference,
    id_of,
    identical,
    kind_of,
    last_compaction,
    loose_view,
    token_difference,
    without_token,
)
from ._links import Links
from ._turns import (
    Entry,
    Turn,
    event_list,
    from_events,
    from_response,
    kind_of_path,
    new_turn,
    sse_events,
    turn_of_exchange,
)

RULES: dict[int, str] = {
    1: "compact-output",
    2: "stateless-chain",
    3: "stateful-chain",
    4: "encrypted-content",
    5: "compaction-id",
    6: "unstored-previous",
}


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
        return as_data(
            self, "rule name exchange item pointer message source_exchange source_pointer"
        )


def _readable(pointer: str) -> str:
    out = ""
    for part in pointer.split("/")[1:]:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "(body)"


# -- the check ------------------------------------------------------------------------------------
class _Chain:
    """The turns of one cassette, read in order; violations collected as they are found."""

    def __init__(self) -> None:
        self.links = Links()
        self.found: list[ChainViolation] = []
        self._seen: set[tuple[int, int, str]] = set()
        # Answers whose compaction token a continuing request had refused (see Recovery).
        self._refused: set[int] = set()

    # -- findings ---------------------------------------------------------------------------------
    def report(
        self, rule: int, turn: Turn, pointer: str, message: str, source: Entry | None = None
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

    # -- rules 1 and 2 ----------------------------------------------------------------------------
    def passed_on(self, rule: int, turn: Turn, returned: list[Entry], source: int) -> None:
        """``returned`` must reach ``turn``'s input from its most recent compaction item on."""
        loose = rule == 2
        what = (
            f"the compact output of exchange {source}"
            if rule == 1
            else f"the conversation continued from exchange {source}"
        )
        compactions = [i for i, e in enumerate(returned) if kind_of(e.item) == "compaction"]
        k = last_compaction([e.item for e in returned])
        head, tail = returned[:k], returned[k:]
        items = turn.input
        used: set[int] = set()
        positions: list[int | None] = []
        last = -1
        for m, entry in enumerate(tail):
            q = self.links.find(entry, items, used, last + 1, len(items), loose=loose)
            if q is None and m == 0 and kind_of(entry.item) == "compaction":
                q = self.stray_compaction(turn, entry, used)
            if q is None and not loose:  # there, but re-rendered: reported as modified below
                q = self.links.find(entry, items, used, last + 1, len(items), loose=True)
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
                    f"{describe(entry.item)} of {what} is missing from the input (pruned): {why}",
                    entry,
                )
                continue
            used.add(q)
            last = q
            if not identical(entry.item, self.restored(entry.item, items[q]), loose=loose):
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
            and id_of(passed) is None
            and "encrypted_content" not in passed
            and "encrypted_content" not in returned
            and kind_of(passed) == kind_of(returned)
            and passed.get("role") == returned.get("role")
        )

    def modified(
        self, rule: int, turn: Turn, q: int, entry: Entry, what: str, *, loose: bool
    ) -> None:
        view = loose_view if loose else without_token
        change = difference(view(entry.item), view(turn.input[q]))
        self.report(
            rule,
            turn,
            f"/input/{q}",
            f"{describe(entry.item)} of {what} was not passed as returned: {change}",
            entry,
        )

    def stray_compaction(self, turn: Turn, entry: Entry, used: set[int]) -> int | None:
        """An id-less compaction item whose token nobody returned stands for ``entry``."""
        candidates = [
            q
            for q, item in enumerate(turn.input)
            if q not in used
            and kind_of(item) == "compaction"
            and (id_of(item) is None or id_of(item) not in self.links.issued)
            and isinstance(item.get("encrypted_content"), str)
            and item["encrypted_content"] not in self.links.by_token
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
                f"encrypted_content of {describe(sent)} is not the one exchange "
                f"{entry.exchange} returned: "
                f"{token_difference(returned, sent['encrypted_content'])}; "
                "it must go back byte-identical",
                entry,
            )
        return q

    def check_order(
        self,
        rule: int,
        turn: Turn,
        tail: list[Entry],
        positions: list[int | None],
        what: str,
    ) -> None:
        highest: tuple[int, Entry] | None = None
        for entry, q in zip(tail, positions, strict=True):
            if q is None:
                continue
            if highest is not None and q < highest[0]:
                self.report(
                    rule,
                    turn,
                    f"/input/{q}",
                    f"{describe(entry.item)} of {what} comes before "
                    f"{describe(highest[1].item)} (input[{highest[0]}]): items must keep the "
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
                    f"{describe(turn.input[q])} was inserted inside {what}: the returned items "
                    "must be passed contiguous, new input after them",
                    tail[0],
                )

    def check_head(
        self,
        rule: int,
        turn: Turn,
        head: list[Entry],
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
            by_id = id_of(entry.item) is not None
            q = self.links.find(entry, items, used, last + 1, anchor, loose=loose, wrap=False)
            if q is None and by_id:
                q = self.links.find(entry, items, used, 0, len(items), loose=loose, wrap=False)
                if q is not None:
                    where = "after the compaction item" if q > anchor else "out of order"
                    self.report(
                        rule,
                        turn,
                        f"/input/{q}",
                        f"{describe(entry.item)} of {what} is passed {where}: items must keep "
                        "the returned order",
                        entry,
                    )
                    used.add(q)
                    continue
            if q is None:
                continue  # left out: the compaction item carries it
            used.add(q)
            last = q
            if not identical(entry.item, self.restored(entry.item, items[q]), loose=loose):
                self.modified(rule, turn, q, entry, what, loose=loose)

    def restored(self, returned: Any, passed: Any) -> Any:
        """``passed`` with the id ``returned`` had, when only its id was changed (rule 5's)."""
        if self.links.renamed(returned, passed):
            return {**passed, "id": id_of(returned)}
        return passed

    # -- rule 3 -----------------------------------------------------------------------------------
    def stateful(self, turn: Turn, resent: dict[int, Entry]) -> None:
        """Rule 3: nothing the server holds for ``previous_response_id`` is sent again."""
        for q in sorted(resent):
            entry = resent[q]
            side = "output" if entry.pointer.startswith("/output/") else "input"
            self.report(
                3,
                turn,
                f"/input/{q}",
                f"{describe(turn.input[q])} resends an item the server already holds for "
                f"previous_response_id {turn.previous} (the {side} of exchange {entry.exchange}): "
                "with previous_response_id send only the new input",
                entry,
            )

    # -- rule 4 -----------------------------------------------------------------------------------
    def tokens_kept(self, turn: Turn, link: int | None) -> None:
        for q, item in enumerate(turn.input):
            item_id = id_of(item)
            if item_id is None or item_id not in self.links.tokens:
                continue
            token = item.get("encrypted_content")
            if self.renamed_from(item) is not None:
                continue  # another item's token under this id: rule 5 says so
            source, known = self.links.returned_for(item_id, link)
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
                f"encrypted_content of {describe(item)} is not the one exchange "
                f"{source.exchange} returned{versions}: {token_difference(reference, token)}; "
                "it must go back byte-identical",
                source,
            )

    # -- rule 5 -----------------------------------------------------------------------------------
    def renamed_from(self, item: Any) -> Entry | None:
        """The returned compaction item whose token ``item`` carries under another id, if any."""
        token = item.get("encrypted_content") if isinstance(item, dict) else None
        if kind_of(item) != "compaction" or id_of(item) is None or not isinstance(token, str):
            return None
        source = self.links.by_token.get(token)
        if source is None or not self.links.renamed(source.item, item):
            return None
        return source

    def ids_kept(self, turn: Turn) -> None:
        for q, item in enumerate(turn.input):
            source = self.renamed_from(item)
            if source is None:
                continue
            self.report(
                5,
                turn,
                f"/input/{q}/id",
                f"compaction {id_of(item)} carries the encrypted_content exchange "
                f"{source.exchange} returned for compaction {id_of(source.item)} "
                f"({_readable(source.pointer)}): the token is bound to its item id, and the API "
                'refuses another ("Encrypted content item_id did not match the target item id"); '
                "pass the item with the id it was returned with, or without an id",
                source,
            )

    # -- rule 6 -----------------------------------------------------------------------------------
    def stored_previous(self, turn: Turn) -> None:
        index = self.links.unstored.get(turn.previous) if turn.previous is not None else None
        if index is None or index >= turn.index:
            return
        self.report(
            6,
            turn,
            "/previous_response_id",
            f"previous_response_id {turn.previous} names the response of exchange {index}, "
            "which was created with store: false: the API keeps no such response and answers "
            f"400 previous_response_not_found (\"Previous response with id '{turn.previous}' not "
            'found."); send the conversation in input instead (stateless chaining), or create '
            "that response with store: true",
            Entry(None, index, "/store"),
        )

    # -- the request against the answer it continues ----------------------------------------------
    def check(self, turn: Turn) -> None:
        self.stored_previous(turn)
        self.ids_kept(turn)
        previous = self.links.by_response.get(turn.previous) if turn.previous is not None else None
        resent = self.links.resent(turn, previous) if previous is not None else {}
        source = self.links.link(turn, previous, resent)
        self.tokens_kept(turn, source if source is not None else previous)
        self.stateful(turn, resent)
        if source is not None and source not in self._refused:
            self.rule_for(turn, source)
        if source is not None and turn.refused_token:
            self._refused.add(source)

    def rule_for(self, turn: Turn, index: int) -> None:
        earlier = self.links.turns[index]
        window = self.links.windows.get(index, [])
        if earlier.compact:
            self.passed_on(1, turn, window, index)
            return
        compacted = any(kind_of(e.item) == "compaction" for e in window)
        if earlier.managed or turn.managed or compacted:
            self.passed_on(2, turn, window, index)


def _run(turns: Iterable[Turn]) -> list[ChainViolation]:
    chain = _Chain()
    for turn in turns:
        try:
            chain.check(turn)
            chain.links.register(turn)
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
        if ex.method.upper() == "POST" and kind_of_path(ex.path) is not None
    ]
    if len(calls) < 2:
        return []  # a rule links a request to an earlier answer: one call keeps them all
    turns = []
    for index in calls:
        turn = turn_of_exchange(index, exchanges[index])
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
    out: list[Turn] = []
    for index, triple in enumerate(turns):
        if not isinstance(triple, Sequence) or isinstance(triple, str | bytes) or len(triple) != 3:
            raise ChainError(f"turn {index}: expected a (request, response, path) triple")
        request, response, path = triple
        if not isinstance(path, str):
            raise ChainError(f"turn {index}: the path must be a string, got {type(path).__name__}")
        compact = kind_of_path(path)
        if compact is None:
            raise ChainError(
                f"turn {index}: {path!r} is not a /responses or /responses/compact path"
            )
        body = _json_value(request, f"turn {index}: the request")
        if not isinstance(body, Mapping):
            raise ChainError(f"turn {index}: the request must be a JSON object")
        turn = new_turn(index, compact, body)
        if isinstance(response, bytes | bytearray):
            response = bytes(response).decode("utf-8", "replace")
        if isinstance(response, str) and looks_like_stream(response):
            from_events(turn, sse_events(response))
        elif response is not None:
            value = _json_value(response, f"turn {index}: the response")
            events = event_list(value)
            if events is not None:
                from_events(turn, events)
            elif isinstance(value, Mapping):
                from_response(turn, dict(value))
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
