"""Why an exchange's verdict differs between two versions: the schema change behind each difference.

Every violation that one verdict has and the other has not is located in the body (list items
named by their type, as the schema diff names places) and matched to the change of
``schema._diff`` that adds it (or, fixed, removes it); when no change can be pinned down the
cause is labelled by the kind of violation alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .._errors import BodyError
from .._pointer import node_at, tokens, unescape
from ..cassette._exchange import Exchange
from ..cassette._sse import parse_stream
from ..contract._judge import STREAM_KIND
from ..schema._diff import Change, SchemaDiff, join, typed
from ..schema._report import Report, Violation
from ..schema._validate import parse_body
from ..schema._versions import Kind
from ._results import Cause, Side, Verdict


def body_location(body: Any, pointer: str, root: str = "") -> str:
    """``/output/2/call_id`` -> ``output[type=function_call_output].call_id``."""
    location = root
    node = body
    for part in tokens(pointer):
        if isinstance(node, list) and part.isdigit():
            index = int(part)
            node = node[index] if index < len(node) else None
            kind = node.get("type") if isinstance(node, dict) else None
            location = (
                typed(location + "[]", "type", kind) if isinstance(kind, str) else location + "[]"
            )
        else:
            node = node.get(part) if isinstance(node, dict) else None
            location = join(location, part)
    return location


def _loose(location: str) -> str:
    return re.sub(r"\[[^\]]*\]", "[]", location)


_LABELS = {
    "required-added": "new required field",
    "required-removed": "field no longer required",
    "property-removed": "field removed",
    "property-added": "field added",
    "enum-narrowed": "enum narrowed",
    "enum-widened": "enum widened",
    "const-changed": "value changed",
    "type-narrowed": "type changed",
    "type-widened": "type changed",
    "item-type-removed": "unknown item type",
    "item-type-added": "item type added",
    "shape-added": "shape changed",
    "shape-removed": "shape changed",
    "shape-changed": "shape changed",
    "constraint-tightened": "constraint changed",
    "constraint-relaxed": "constraint changed",
    "constraint-changed": "constraint changed",
    "closed": "object closed",
    "opened": "object opened",
    "format-changed": "format changed",
}

# violation keyword -> the change codes that can add (or, second, remove) such a violation
_CODES: dict[str, tuple[set[str], set[str]]] = {
    "required": ({"required-added"}, {"required-removed"}),
    "enum": ({"enum-narrowed", "const-changed"}, {"enum-widened", "const-changed"}),
    "const": ({"const-changed"}, {"const-changed", "enum-widened"}),
    "type": ({"type-narrowed", "shape-removed", "shape-changed"}, {"type-widened", "shape-added"}),
    "drift": ({"property-removed"}, {"property-added"}),
    "additionalProperties": ({"property-removed", "closed"}, {"property-added", "opened"}),
    "unevaluatedProperties": ({"property-removed", "closed"}, {"property-added", "opened"}),
}
_SHAPE_CODES = (
    {"type-narrowed", "enum-narrowed", "const-changed", "shape-removed", "shape-changed"},
    {"type-widened", "enum-widened", "const-changed", "shape-added", "shape-changed"},
)
_CONSTRAINT_CODES = (
    {"constraint-tightened", "constraint-changed"},
    {"constraint-relaxed", "constraint-changed"},
)


def _fallback_label(violation: Violation, item_type_at: bool, fixed: bool) -> str:
    keyword = violation.keyword
    if keyword == "required":
        return "field no longer required" if fixed else "new required field"
    if keyword in ("enum", "const") and item_type_at:
        return "item type added" if fixed else "unknown item type"
    if keyword == "enum":
        return "enum widened" if fixed else "enum narrowed"
    if keyword in ("drift", "additionalProperties", "unevaluatedProperties"):
        return "field added" if fixed else "field removed"
    if keyword in ("type", "anyOfNone", "oneOfMultipleValid"):
        return "type changed"
    return "constraint changed"


def _explain(
    side: Side, violation: Violation, body: Any, changes: list[Change], fixed: bool, root: str = ""
) -> list[Cause]:
    """The schema change(s) that add ``violation`` (or, when ``fixed``, remove it)."""
    location = body_location(body, violation.path, root)
    parent_pointer, _, last = violation.path.rpartition("/")
    required = violation.keyword == "required"
    # A missing property's pointer ends with the property: the object lacking it is the parent.
    missing = unescape(last) if required else None
    node = node_at(body, tokens(parent_pointer)) if required else None
    item_type_at = bool(violation.path.endswith("/type") and violation.item_type and not required)

    pick = 1 if fixed else 0
    item_location = body_location(body, parent_pointer, root)
    codes = _CODES.get(
        violation.keyword, _SHAPE_CODES if "Of" in violation.keyword else _CONSTRAINT_CODES
    )[pick]

    def wanted(c: Change) -> str | None:
        """Where ``c`` must sit in the body to explain the violation (None: it cannot)."""
        if required:
            absent = isinstance(node, dict) and c.name == missing and c.name not in node
            return location if c.change in codes and absent else None
        if item_type_at:
            code = "item-type-added" if fixed else "item-type-removed"
            return item_location if c.change == code and c.name == violation.item_type else None
        if c.change in codes:
            return location
        if violation.keyword in ("anyOfNone", "type", "enum") and c.change in _SHAPE_CODES[pick]:
            # a union reports the mismatch at the union; the change sits in one of its branches
            return location
        return None

    candidates = [(c, where) for c in changes if (where := wanted(c)) is not None]
    # A schema shared by several places is reported at one of them: match loosely if need be.
    found = [c for c, where in candidates if c.location == where] or [
        c for c, where in candidates if _loose(c.location) == _loose(where)
    ]
    if found:
        return [Cause(side, _LABELS[c.change], c.location, c.detail, fixed, c) for c in found]
    label = _fallback_label(violation, item_type_at, fixed)
    return [Cause(side, label, location, violation.message, fixed)]


def _subjects(kind: Kind, raw: bytes | None) -> Callable[[Violation], tuple[Any, str]]:
    """For a body read once: (the JSON a violation's pointer is into, its schema location).

    A stream's violation points into the data of the first event it names, an event whose
    shape is the one of its type among the event union's.
    """
    if kind != STREAM_KIND:
        try:
            body = parse_body(raw) if raw is not None else None
        except BodyError:
            body = None
        return lambda violation: (body, "")
    events = parse_stream(raw or b"")

    def subject(violation: Violation) -> tuple[Any, str]:
        found = re.match(r"event (\d+)", violation.message)
        if found is None or int(found[1]) >= len(events):
            return None, ""
        is_json, data = events[int(found[1])].json()
        kind_of_event = data.get("type") if is_json and isinstance(data, dict) else None
        return data, typed("", "type", kind_of_event) if isinstance(kind_of_event, str) else ""

    return subject


def _key(violation: Violation) -> tuple[str, str]:
    # The same kind of violation at the same place is not a change, even if its message
    # differs (an "unknown type" message lists the known types of its version). A missing
    # property's pointer ends with the property, so each has a place of its own.
    return violation.path, violation.keyword


def explain(exchange: Exchange, before: Verdict, after: Verdict, diff: SchemaDiff) -> list[Cause]:
    """The cause of every violation that one verdict has and the other has not."""
    causes: list[Cause] = []
    pairs: list[tuple[Side, bytes | None, Report, Report]] = [
        ("request", exchange.request_body, before.request, after.request)
    ]
    if before.response is not None and after.response is not None:
        side: Side = "error" if before.response.kind == "error" else "response"
        pairs.append((side, exchange.response_body, before.response, after.response))
    for side, raw, old, new in pairs:
        kind: Kind = old.kind
        old_keys = {_key(v) for v in old.violations}
        new_keys = {_key(v) for v in new.violations}
        added = [v for v in new.violations if _key(v) not in old_keys]
        removed = [v for v in old.violations if _key(v) not in new_keys]
        # Inside an item whose type became unknown (or known), the item's own checks come and
        # go with it: the item type change is the one cause to report.
        flipped = [
            v.path[: -len("/type")]
            for v in (*added, *removed)
            if v.path.endswith("/type") and v.item_type and v.keyword in ("enum", "const")
        ]

        def inside(v: Violation, items: list[str] = flipped) -> bool:
            return any(
                (v.path == p or v.path.startswith(p + "/")) and v.path != p + "/type" for p in items
            )

        added = [v for v in added if not inside(v)]
        removed = [v for v in removed if not inside(v)]
        if not added and not removed:
            continue
        changes = diff.of_kind(kind)
        subject = _subjects(kind, raw)
        for violation, fixed in [(v, False) for v in added] + [(v, True) for v in removed]:
            body, root = subject(violation)
            causes += _explain(side, violation, body, changes, fixed, root)
    unique: dict[tuple[str, str, str, bool], Cause] = {}
    for cause in causes:
        unique.setdefault((cause.side, cause.location, cause.detail, cause.fixed), cause)
    return list(unique.values())
