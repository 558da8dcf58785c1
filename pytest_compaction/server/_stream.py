"""A ``POST /responses`` answer told as server-sent events, in the live service's order.

``response.created`` and ``response.in_progress`` (the response so far: no output, no usage),
then for the assistant message ``response.output_item.added``, ``response.content_part.added``,
one ``response.output_text.delta`` per word, ``response.output_text.done``,
``response.content_part.done`` and ``response.output_item.done``; for a compaction item
``response.output_item.added`` and ``response.output_item.done``; finally
``response.completed`` with the whole response. ``sequence_number`` counts from 0.

With ``compacting``, the compaction item's ``added`` and ``done`` events enclose
``response.compaction.compacting`` progress events (``item_id`` and ``output_index`` of the
compaction item, no summary content), as the live service sends them: one per item the
compaction seals, at most ``MAX_COMPACTING_EVENTS``, at least one.

``completed_output`` (``empty``, ``null`` or ``missing``) sends ``response.completed`` with
``output: []``, ``output: null`` or without ``output``, as some clients see it: the items then
come only from the ``response.output_item.done`` events.

Like the live service, the compaction item is encrypted anew for each event that carries it:
its ``encrypted_content`` differs between ``added``, ``done`` and ``response.completed``, and each
one opens to the same state.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from ._responses import Turn

_WORD = re.compile(r"\s*\S+\s*|\s+")
# Re-encryption variants of the compaction item: output_item.added, .done, response.completed.
_ADDED, _DONE, _COMPLETED = 1, 2, 3
COMPACTING = "response.compaction.compacting"
MAX_COMPACTING_EVENTS = 8


def deltas(text: str) -> list[str]:
    """The pieces a reply is streamed in: words with the spaces around them."""
    return _WORD.findall(text) or [text]


def events(
    turn: Turn,
    reseal: Callable[[dict[str, Any], int], str],
    *,
    compacting: bool = False,
    completed_output: str | None = None,
) -> list[dict[str, Any]]:
    """Every event of the stream, in order (``reseal(state, variant)`` gives a fresh token)."""
    final = copy.deepcopy(turn.response)
    state = turn.compaction_state
    for item in final["output"]:
        if item.get("type") == "compaction" and state is not None:
            item["encrypted_content"] = reseal(state, _COMPLETED)
    snapshot = {**copy.deepcopy(final), "status": "in_progress", "completed_at": None}
    snapshot.update(output=[], usage=None)
    out: list[dict[str, Any]] = [
        {"type": "response.created", "response": snapshot},
        {"type": "response.in_progress", "response": copy.deepcopy(snapshot)},
    ]
    for index, item in enumerate(turn.response["output"]):
        if item.get("type") == "message":
            out.extend(_message(index, item))
        else:
            out.extend(_item(index, item, state, reseal, compacting))
    out.append({"type": "response.completed", "response": _completed(final, completed_output)})
    for number, event in enumerate(out):
        event["sequence_number"] = number
    return out


def _item(
    index: int,
    item: dict[str, Any],
    state: dict[str, Any] | None,
    reseal: Callable[[dict[str, Any], int], str],
    compacting: bool,
) -> Iterator[dict[str, Any]]:
    """An item streamed whole: ``added``, the compacting events if asked, ``done``."""
    added, done = copy.deepcopy(item), copy.deepcopy(item)
    sealed = state if item.get("type") == "compaction" else None
    if sealed is not None:
        added["encrypted_content"] = reseal(sealed, _ADDED)
        done["encrypted_content"] = reseal(sealed, _DONE)
    yield {"type": "response.output_item.added", "output_index": index, "item": added}
    if sealed is not None and compacting:
        count = max(1, min(len(sealed.get("items", [])), MAX_COMPACTING_EVENTS))
        for _ in range(count):
            yield {"type": COMPACTING, "item_id": item["id"], "output_index": index}
    yield {"type": "response.output_item.done", "output_index": index, "item": done}


def _completed(final: dict[str, Any], form: str | None) -> dict[str, Any]:
    """The response ``response.completed`` carries, its output as ``form`` asks."""
    if form == "empty":
        return {**final, "output": []}
    if form == "null":
        return {**final, "output": None}
    if form == "missing":
        return {k: v for k, v in final.items() if k != "output"}
    return final


def _message(index: int, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    item_id = item["id"]
    opened = {**copy.deepcopy(item), "status": "in_progress", "content": []}
    yield {"type": "response.output_item.added", "output_index": index, "item": opened}
    for part_index, part in enumerate(item["content"]):
        where = {"item_id": item_id, "output_index": index, "content_index": part_index}
        empty = {**copy.deepcopy(part), "text": ""}
        yield {"type": "response.content_part.added", **where, "part": empty}
        for piece in deltas(part["text"]):
            yield {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
        yield {"type": "response.output_text.done", **where, "text": part["text"], "logprobs": []}
        yield {"type": "response.content_part.done", **where, "part": copy.deepcopy(part)}
    yield {"type": "response.output_item.done", "output_index": index, "item": copy.deepcopy(item)}


def encode(event: dict[str, Any]) -> bytes:
    """One event on the wire: ``event:`` and ``data:`` lines, then a blank line."""
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()
