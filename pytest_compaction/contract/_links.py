"""The answer a request continues: named by ``previous_response_id``, or by the items passed back.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ._items import essence, id_of, kind_of, last_compaction, model_made
from ._turns import Entry, Turn


class Links:
    """The turns of one cassette read so far: what each answer returned, and to whom."""

    def __init__(self) -> None:
        self._position_cache: dict[int, tuple[Sequence[Any], dict[str, set[int]]]] = {}
        self.turns: dict[int, Turn] = {}
        self.by_response: dict[str, int] = {}
        self.windows: dict[int, list[Entry]] = {}
        self.issued: dict[str, list[Entry]] = {}  # item id -> where it was returned
        # item id -> exchange -> every token that exchange returned for it
        self.tokens: dict[str, dict[int, set[str]]] = {}
        self.by_token: dict[str, Entry] = {}
        self.made: dict[Any, set[int]] = {}  # essence of a model-produced output item -> exchanges
        self.unstored: dict[str, int] = {}  # id of a response created with store: false -> exchange

    # -- bookkeeping ------------------------------------------------------------------------------
    def versions(self, item: Any) -> set[str]:
        out: set[str] = set()
        if isinstance(item, dict) and isinstance(item.get("encrypted_content"), str):
            out.add(item["encrypted_content"])
        item_id = id_of(item)
        if item_id is not None:
            for tokens in self.tokens.get(item_id, {}).values():
                out |= tokens
        return out

    def register(self, turn: Turn) -> None:
        self.turns[turn.index] = turn
        if turn.store is False and not turn.compact and turn.response_id is not None:
            self.unstored[turn.response_id] = turn.index
        if turn.output is None:
            return
        if turn.response_id is not None:
            self.by_response[turn.response_id] = turn.index
        outputs = [Entry(item, turn.index, f"/output/{i}") for i, item in enumerate(turn.output)]
        for entry in outputs:
            if model_made(entry.item):
                self.made.setdefault(essence(entry.item), set()).add(turn.index)
            item_id = id_of(entry.item)
            if item_id is not None:
                self.issued.setdefault(item_id, []).append(entry)
            token = entry.item.get("encrypted_content") if isinstance(entry.item, dict) else None
            if isinstance(token, str):
                self.by_token[token] = entry
                if item_id is not None:
                    self.tokens.setdefault(item_id, {}).setdefault(turn.index, set()).add(token)
        for item_id, streamed in turn.streamed.items():
            source = next((e for e in outputs if id_of(e.item) == item_id), None)
            if source is None:
                continue  # an item the stream never finished: nothing to continue
            self.tokens.setdefault(item_id, {}).setdefault(turn.index, set()).update(streamed)
            for token in streamed:
                self.by_token.setdefault(token, source)
        if turn.compact:
            self.windows[turn.index] = outputs
            return
        held: list[Entry] = []
        previous = self.by_response.get(turn.previous) if turn.previous else None
        if previous is not None and previous != turn.index:
            held = list(self.windows.get(previous, []))
        held += [Entry(item, turn.index, f"/input/{i}") for i, item in enumerate(turn.input)]
        self.windows[turn.index] = held + outputs

    # -- matching ---------------------------------------------------------------------------------
    def same(self, returned: Any, passed: Any, *, loose: bool) -> bool:
        """Whether ``passed`` is the client's copy of ``returned`` (content aside when by id)."""
        if not isinstance(returned, dict) or not isinstance(passed, dict):
            return False
        rid, pid = id_of(returned), id_of(passed)
        if rid is not None and pid is not None:
            # A compaction item renamed around its token is still the returned one (so that the
            # rules read it in place); the renaming is a violation of its own (rule 5).
            return rid == pid or self.renamed(returned, passed)
        if kind_of(returned) != kind_of(passed):
            return False
        token = passed.get("encrypted_content")
        if isinstance(token, str) or "encrypted_content" in returned:
            return isinstance(token, str) and token in self.versions(returned)
        if rid is not None and not loose:
            return False  # passed "as returned" means with its id
        return bool(essence(returned) == essence(passed))

    def renamed(self, returned: Any, passed: Any) -> bool:
        """Whether ``passed`` is the compaction item ``returned``, its token under another id."""
        if kind_of(returned) != "compaction" or kind_of(passed) != "compaction":
            return False
        rid, pid = id_of(returned), id_of(passed)
        token = passed.get("encrypted_content") if isinstance(passed, dict) else None
        return (
            rid is not None
            and pid is not None
            and rid != pid
            and isinstance(token, str)
            and token in self.versions(returned)
        )

    @staticmethod
    def _order(start: int, stop: int, wrap: bool) -> Iterable[int]:
        yield from range(start, stop)
        if wrap:
            yield from range(0, min(start, stop))

    def find(
        self,
        entry: Entry,
        items: Sequence[Any],
        used: set[int],
        start: int,
        stop: int,
        *,
        loose: bool,
        wrap: bool = True,
    ) -> int | None:
        item = entry.item
        rid = id_of(item)
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
                item_id = id_of(it)
                if item_id is not None:
                    index.setdefault(item_id, set()).add(q)
            cached = (items, index)
            self._position_cache[key] = cached
        return cached[1]

    # -- what a request passes back ---------------------------------------------------------------
    def resent(self, turn: Turn, previous: int) -> dict[int, Entry]:
        """Input position -> the held item it resends, for a request naming ``previous``."""
        held = self.windows.get(previous, [])
        by_id = {id_of(e.item): e for e in held if id_of(e.item) is not None}
        by_token: dict[str, Entry] = {}
        by_essence: dict[Any, Entry] = {}
        for held_entry in held:
            for token in self.versions(held_entry.item):
                by_token.setdefault(token, held_entry)
            made = held_entry.item
            if held_entry.pointer.startswith("/output/") and model_made(made):
                by_essence.setdefault(essence(made), held_entry)
        resent: dict[int, Entry] = {}
        for q, item in enumerate(turn.input):
            if not isinstance(item, dict):
                continue
            sent_token = item.get("encrypted_content")
            item_id = id_of(item)
            entry = by_id.get(item_id) if item_id is not None else None
            if entry is None and isinstance(sent_token, str):
                entry = by_token.get(sent_token)
            if entry is None and "encrypted_content" not in item and item_id is None:
                entry = by_essence.get(essence(item))
            if entry is not None:
                resent[q] = entry
        # The whole history sent again, as when chaining statelessly by mistake.
        run = 0
        while (
            run < min(len(turn.input), len(held))
            and id_of(turn.input[run]) is None
            and self.same(held[run].item, turn.input[run], loose=True)
        ):
            run += 1
        if run >= 2:
            for q in range(run):
                resent.setdefault(q, held[q])
        return resent

    def returned_for(self, item_id: str, link: int | None) -> tuple[Entry, set[str]]:
        """Where the item ``item_id`` a request passes back was returned, and its tokens.

        The answer the request continues (``link``) decides when it returned that item; else the
        latest exchange that returned it, with every token any exchange returned for it.
        """
        by_exchange = self.tokens[item_id]
        window = self.windows.get(link, []) if link is not None else []
        mine = [e for e in window if id_of(e.item) == item_id and e.pointer.startswith("/output/")]
        if mine and mine[-1].exchange in by_exchange:
            return mine[-1], by_exchange[mine[-1].exchange]
        known: set[str] = set()
        for tokens in by_exchange.values():
            known |= tokens
        return self.issued[item_id][-1], known

    # -- linking ----------------------------------------------------------------------------------
    def continued(self, turn: Turn, skip: Iterable[int]) -> dict[int, bool]:
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
            item_id = id_of(item)
            token = item.get("encrypted_content")
            if item_id is not None and item_id in self.issued:
                add({entry.exchange for entry in self.issued[item_id]})
            if isinstance(token, str) and token in self.by_token:
                add({self.by_token[token].exchange})
            # Only what the model writes is in ``made``: a user's message never needs the
            # (costly) re-rendering comparison.
            if item_id is None and token is None and self.made and model_made(item):
                add(self.made.get(essence(item), set()))  # the model's words, re-rendered
        return {i: unique for i, unique in found.items() if i < turn.index}

    def link(self, turn: Turn, previous: int | None, resent: Iterable[int]) -> int | None:
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

    def extended(self, turn: Turn) -> list[int]:
        """Earlier exchanges whose input this input extends.

        The earlier input counts from its most recent compaction item (what came before may be
        dropped); it must reappear from the same compaction item here, with more after it.
        """
        out = []
        for index, earlier in self.turns.items():
            if earlier.output is None or not earlier.input:
                continue
            start = last_compaction(earlier.input)
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
