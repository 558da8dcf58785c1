"""Checks of one exchange for the compaction failures users report most against gateways.

:mod:`._judge` calls these after validating the bodies; what they find is part of its verdict.

- **Parameters the compact endpoint rejects** (a failure on the request): a top-level property
  of a ``POST /responses/compact`` body that ``POST /responses`` takes (``include``, ``store``,
  ``stream``, ``tools``...) and that no compact request schema of any available version
  declares. Gateways that reuse their ``/responses`` request rewriting for compaction inject
  them, and the API answers ``400 unknown_parameter`` ("Unknown parameter: 'include'."). The set
  is read from the schemas, so a parameter the compact endpoint takes in any version (the newest
  is derived from the installed openai SDK's ``ResponseCompactParams``) is never failed, and one
  a later version added stays the drift note the version in force gives it. A property a
  dialect's overlay declares is validated there and is not failed either.
- **The number of compaction items in an answer** (a note): a compact answer's ``output`` holds
  exactly one ``compaction`` item, and a ``POST /responses`` answer at most one. Clients assume
  so (Codex: "remote compaction v2 expected exactly one compaction output item"); some backends
  send two, or a ``compaction_summary`` item. Both kinds are counted.
- **A threshold passed and no compaction** (a note): a ``POST /responses`` request whose
  ``context_management`` sets a ``compact_threshold`` and whose input reaches it, answered with
  no compaction item: a gateway between client and API most likely dropped
  ``context_management``. The input's size is the answer's ``usage.input_tokens`` when it
  reports one; otherwise the estimate the embedded server documents, a quarter of the UTF-8
  bytes of the request's ``instructions`` and ``input`` as canonical JSON (sorted keys, no
  spaces), rounded up. The note says which.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from .._pointer import unescape
from ..cassette._body import parse_json_bytes
from ..schema._report import Report, Violation
from ..schema._versions import Kind, available_versions, load_schema_set
from ._items import describe, kind_of
from ._routes import Route
from ._turns import Turn, from_events, from_response, new_turn, sse_events

COMPACTION_KINDS = ("compaction", "compaction_summary")
# Rejected by the compact endpoint: james-6-23/codex2api#76 and fawney19/Aether#455 (a proxy's
# /responses rewriting adds `include`; the API answers "Unknown parameter: 'include'.").
_REJECTED = (
    "the compact endpoint rejects this /responses parameter (the API answers 400 "
    "unknown_parameter: \"Unknown parameter: '{name}'.\"); a gateway's /responses rewriting "
    "probably added it: remove it from compact requests"
)
_COMPACT_KINDS: tuple[Kind, ...] = ("request", "beta.request")


def _resolve(document: dict[str, Any], node: Any) -> Any:
    for _ in range(32):
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return node
        node = document
        for part in ref[2:].split("/"):
            node = node.get(unescape(part), {}) if isinstance(node, dict) else {}
    return node


def _properties(document: dict[str, Any], node: Any, depth: int = 0) -> set[str]:
    """The top-level property names an object schema declares, its ``allOf`` parts' too."""
    node = _resolve(document, node)
    if not isinstance(node, dict) or depth > 16:
        return set()
    out = set(node.get("properties", {}))
    for part in node.get("allOf", []):
        out |= _properties(document, part, depth + 1)
    return out


def _declared(version: str, kind: Kind) -> set[str]:
    schema_set = load_schema_set(version)
    if kind.startswith("beta.") and not schema_set.has_beta:
        return set()
    document = schema_set.document(kind)
    return _properties(document, document)


@functools.cache
def _rejected(versions: tuple[str, ...]) -> frozenset[str]:
    create: set[str] = set()
    compact: set[str] = set()
    for version in versions:
        create |= _declared(version, "responses.request")
        for kind in _COMPACT_KINDS:
            compact |= _declared(version, kind)
    return frozenset(create - compact)


@functools.cache
def _sdk_compact_parameters() -> frozenset[str]:
    """What the installed openai SDK sends to ``/responses/compact``: the current API takes
    them, whatever the bundled versions say (the SDK is generated from its current spec)."""
    try:
        from openai.types.responses import response_compact_params
    except ImportError:
        return frozenset()
    params: Any = response_compact_params.ResponseCompactParams
    return frozenset(getattr(params, "__required_keys__", set())) | frozenset(
        getattr(params, "__optional_keys__", set())
    )


def rejected_parameters() -> frozenset[str]:
    """``POST /responses`` parameters no compact request schema of any available version takes,
    and the installed openai SDK does not send either."""
    return _rejected(available_versions()) - _sdk_compact_parameters()


def reject_parameters(report: Report) -> Report:
    """A compact request's report with each rejected parameter a violation instead of drift."""
    rejected = rejected_parameters()
    names = {
        note.path: unescape(note.path[1:])
        for note in report.drift
        if note.path.count("/") == 1 and unescape(note.path[1:]) in rejected
    }
    if not names:
        return report
    kept = tuple(v for v in report.violations if not (v.path in names and v.keyword == "drift"))
    added = tuple(
        Violation(path, f"{name}: {_REJECTED.format(name=name)}", keyword="unknown_parameter")
        for path, name in names.items()
    )
    drift = tuple(note for note in report.drift if note.path not in names)
    return report._replace(violations=(*kept, *added), drift=drift)


# -- the answer's compaction items -----------------------------------------------------------------
def _parsed(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | str):
        try:
            is_json, parsed = parse_json_bytes(
                value.encode() if isinstance(value, str) else bytes(value)
            )
        except RecursionError:
            return None
        return parsed if is_json else None
    return value


def _turn(route: Route, request_body: Any, body: Any, stream: bool) -> Turn | None:
    request = _parsed(request_body)
    if not isinstance(request, dict):
        request = {}
    turn = new_turn(0, route == "compact", request)
    if stream:
        raw = body if isinstance(body, bytes | bytearray | str) else b""
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")
        from_events(turn, sse_events(text))
    else:
        from_response(turn, _parsed(body))
    return turn if turn.output is not None else None


def answer_notes(
    route: Route | None, status: int, request_body: Any, body: Any, *, stream: bool
) -> tuple[str, ...]:
    """The notes on a successful answer's compaction items (see the module documentation)."""
    if route is None or not 200 <= status < 300:
        return ()
    turn = _turn(route, request_body, body, stream)
    if turn is None or turn.output is None:
        return ()
    found = [(i, item) for i, item in enumerate(turn.output) if kind_of(item) in COMPACTION_KINDS]
    notes = []
    count = _count_note(turn.compact, found)
    if count is not None:
        notes.append(count)
    missed = _threshold_note(turn, request_body, found)
    if missed is not None:
        notes.append(missed)
    return tuple(notes)


def _count_note(compact: bool, found: list[tuple[int, Any]]) -> str | None:
    # openai/codex#45808 ("expected one compaction output item, got 2 from 2"), Menci/Floway#314
    # (a backend returning two compaction items), Soju06/codex-lb#998 (a compaction_summary item).
    plain = [i for i, item in found if kind_of(item) == "compaction"]
    if len(found) == len(plain) and (len(plain) == 1 or (not compact and not plain)):
        return None
    listed = ", ".join(f"{describe(item)} at output[{i}]" for i, item in found) or "none"
    expected = "exactly one" if compact else "at most one"
    return (
        f"response /output: {len(found)} compaction item(s) ({listed}); clients expect "
        f'{expected} item of type compaction (Codex fails the turn: "expected exactly one '
        'compaction output item"): the backend answered in a shape the API does not'
    )


def _threshold_note(turn: Turn, request_body: Any, found: list[tuple[int, Any]]) -> str | None:
    if turn.compact or turn.threshold is None or found:
        return None
    if turn.input_tokens is not None:
        size, how = turn.input_tokens, "usage.input_tokens of the answer"
    else:
        request = _parsed(request_body)
        counted = {
            "instructions": request.get("instructions") if isinstance(request, dict) else None,
            "input": request.get("input") if isinstance(request, dict) else None,
        }
        text = json.dumps(counted, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        size = math.ceil(len(text.encode("utf-8", "surrogatepass")) / 4)
        how = (
            "estimated (no usage recorded) as a quarter of the UTF-8 bytes of the request's "
            "instructions and input as canonical JSON"
        )
    if size < turn.threshold:
        return None
    # BerriAI/litellm#41456: a gateway takes context_management but no compaction item comes back.
    return (
        f"response /output: the request's context_management compact_threshold is "
        f"{turn.threshold} and its input is {size} tokens ({how}), but the answer holds no "
        "compaction item: a gateway between the client and the API probably dropped "
        "context_management, and the context keeps growing"
    )
