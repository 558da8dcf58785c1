"""What changed between two schema versions, and whom each change can break.

Every kind of document a version holds is compared (``_versions.KINDS``, in that order): the
request, response and error bodies of ``POST /responses/compact``, the request, response object
and stream event of ``POST /responses``, and any further operation's bodies. The two documents
of a kind are walked side by side from their roots, following ``$ref`` pairs breadth first so
that each change is reported once, at the shortest body path that reaches it
(``usage.input_tokens_details.cache_write_tokens``, ``input[type=program]``). Each change
narrows what is valid, widens it, or both:

- narrowing a request (``request``, ``responses.request``, any ``*.request``) breaks clients
  (a request that was valid is now invalid);
- narrowing a response, stream event or error body breaks recordings (a recorded body is now
  invalid);
- widening is compatible. A request property that disappears is counted as breaking for
  clients even though objects are open, because the API rejects parameters it does not know.

A kind only one version has (a spec without ``POST /responses``, a folder derived before its
schemas were) is not compared: the diff says which version lacks it and why (:class:`Absence`).
"""

from __future__ import annotations

import json
import tempfile
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .._data import as_data
from .._errors import CompactionError, VersionError
from .._pointer import escape, node_at, tokens, unescape
from ._versions import KINDS, Kind, SchemaSet, load_schema_set, resolve_version

Impact = Literal["breaking-for-clients", "breaking-for-recordings", "compatible"]
IMPACTS: tuple[Impact, ...] = ("breaking-for-clients", "breaking-for-recordings", "compatible")
Direction = Literal["narrow", "widen", "both"]
# why a version has no document of a kind
AbsenceReason = Literal["not-in-spec", "derived-before", "file-missing"]
# whether a kind was compared, or which version lacks it
Coverage = Literal["compared", "only-in-old", "only-in-new", "in-neither"]

# change code -> which way it moves the set of valid bodies
DIRECTIONS: dict[str, Direction] = {
    "required-added": "narrow",
    "required-removed": "widen",
    "property-added": "widen",
    "property-removed": "widen",  # open objects: see the module docstring for requests
    "enum-narrowed": "narrow",
    "enum-widened": "widen",
    "const-changed": "both",
    "type-narrowed": "narrow",
    "type-widened": "widen",
    "item-type-added": "widen",
    "item-type-removed": "narrow",
    "shape-added": "widen",
    "shape-removed": "narrow",
    "shape-changed": "both",
    "constraint-tightened": "narrow",
    "constraint-relaxed": "widen",
    "constraint-changed": "both",
    "closed": "narrow",
    "opened": "widen",
    "format-changed": "widen",  # formats are annotations: validity does not change
}

_LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
_UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
_HANDLED = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "anyOf",
        "oneOf",
        "allOf",
        "format",
        "pattern",
        "multipleOf",
        "uniqueItems",
        *_LOWER_BOUNDS,
        *_UPPER_BOUNDS,
    }
)


@dataclass(frozen=True)
class Change:
    """One difference between the two versions of a closure."""

    kind: Kind
    location: str  # body path, "" for the body itself
    change: str  # a key of DIRECTIONS
    detail: str  # for a person: "newly required (new field)"
    impact: Impact
    schema: str  # the named schema it sits in
    pointer: str  # JSON pointer of the changed node in the newer document ("" if gone)
    old_pointer: str  # the same in the older document ("" if new)
    name: str = ""  # the property or item type concerned, when there is one

    @property
    def direction(self) -> Direction:
        return DIRECTIONS[self.change]

    @property
    def where(self) -> str:
        return self.location or "(body)"

    def __str__(self) -> str:
        return f"{self.kind} {self.where}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return as_data(self, "kind location change detail impact schema pointer old_pointer name")


@dataclass(frozen=True)
class Absence:
    """Why one version has no document of a kind."""

    kind: Kind
    version: str  # the version that lacks it
    reason: AbsenceReason
    operation: str  # the operation the kind belongs to: "POST /responses"

    def __str__(self) -> str:
        if self.reason == "not-in-spec":
            return f"the spec of {self.version} declares no {self.operation}"
        if self.reason == "derived-before":
            return (
                f"{self.version} was derived before {self.operation} schemas were; "
                "derive it again to compare them"
            )
        return f"{self.version} declares {self.operation}, but its folder has no {self.kind} schema"

    def as_dict(self) -> dict[str, Any]:
        return as_data(self, "version reason detail", detail=str(self))


@dataclass(frozen=True)
class KindCoverage:
    """Whether both versions have a kind's document (then it was compared), or which lacks it."""

    kind: Kind
    operation: str  # "POST /responses/compact", "POST /responses", ...
    old: Absence | None = None  # why the older version has none (None: it has one)
    new: Absence | None = None

    @property
    def coverage(self) -> Coverage:
        if self.old is None and self.new is None:
            return "compared"
        if self.old is None:
            return "only-in-old"
        return "only-in-new" if self.new is None else "in-neither"

    @property
    def compared(self) -> bool:
        return self.coverage == "compared"

    def describe(self, old: str, new: str) -> str:
        """``only in B (the spec of A declares no POST /responses)``; "" when compared."""
        if self.old is None and self.new is None:
            return ""
        if self.new is None:
            return f"only in {new} ({self.old})"
        if self.old is None:
            return f"only in {old} ({self.new})"
        if self.old.reason == self.new.reason == "not-in-spec":
            return f"in neither version (neither spec declares {self.operation})"
        if self.old.reason == self.new.reason == "derived-before":
            return f"in neither version (both were derived before {self.operation} schemas were)"
        return f"in neither version ({self.old}; {self.new})"

    def as_dict(self) -> dict[str, Any]:
        return as_data(
            self,
            "coverage operation old_absence new_absence",
            old_absence=self.old,
            new_absence=self.new,
        )


@dataclass(frozen=True)
class SchemaDiff:
    """Every change from version ``old`` to version ``new``."""

    old: str
    new: str
    changes: tuple[Change, ...]
    kinds: tuple[KindCoverage, ...] = ()  # every kind looked at, in the order of KINDS

    def of_kind(self, kind: Kind) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def coverage(self, kind: Kind) -> KindCoverage | None:
        """How ``kind`` was covered; None when it was not looked at."""
        return next((k for k in self.kinds if k.kind == kind), None)

    @property
    def kind_order(self) -> tuple[Kind, ...]:
        """The kinds looked at, in the order of KINDS (every kind when none were recorded)."""
        return tuple(k.kind for k in self.kinds) if self.kinds else KINDS

    def counts(self) -> dict[str, dict[str, int]]:
        """Changes per kind and impact: every kind looked at, in the order of KINDS, zeros too."""
        out: dict[str, dict[str, int]] = {
            kind: dict.fromkeys(IMPACTS, 0) for kind in self.kind_order
        }
        for change in self.changes:
            out.setdefault(change.kind, dict.fromkeys(IMPACTS, 0))[change.impact] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return as_data(
            self,
            "old new summary changes kinds",
            summary=self.counts(),
            kinds={k.kind: k for k in self.kinds},
        )


def is_request_kind(kind: Kind) -> bool:
    """``request``, ``responses.request``, ``beta.request``: a body clients send."""
    return kind == "request" or kind.endswith(".request")


def impact_of(kind: Kind, change: str) -> Impact:
    request = is_request_kind(kind)
    if change == "property-removed" and request:
        return "breaking-for-clients"
    if DIRECTIONS[change] == "widen":
        return "compatible"
    return "breaking-for-clients" if request else "breaking-for-recordings"


# -- locations ---------------------------------------------------------------------------
def join(location: str, name: str) -> str:
    return f"{location}.{name}" if location else name


def typed(location: str, prop: str, value: str) -> str:
    """The location of one discriminated shape: ``output[]`` -> ``output[type=program]``."""
    if value.startswith("("):  # no value, or any other value: the location says enough
        return location
    base = location[:-2] if location.endswith("[]") else location
    return f"{base}[{prop}={value}]"


@dataclass(frozen=True)
class _At:
    """Where the walk is: a pointer into each document and the body location."""

    old: str
    new: str
    location: str

    def key(self, *keys: str | int, location: str | None = None) -> _At:
        tail = "".join(f"/{escape(k)}" for k in keys)
        return _At(
            self.old + tail, self.new + tail, self.location if location is None else location
        )

    def prop(self, name: str) -> _At:
        return self.key("properties", name, location=join(self.location, name))


# -- discriminated dispatch (see _derive: if/then/else on one property's value) ----------------
@dataclass
class _Dispatch:
    prop: str
    cases: dict[str, tuple[Any, str]]  # value -> (schema, pointer); "(other)": any other value
    rest: dict[str, Any]  # keys beside the conditions ("type": "object")


def _condition(condition: Any) -> tuple[str, frozenset[str]] | None:
    """(property, the values it selects) for a condition on one property's value."""
    if not isinstance(condition, dict) or not set(condition) <= {"properties", "required", "not"}:
        return None
    properties = condition.get("properties")
    if isinstance(properties, dict) and len(properties) == 1:
        ((prop, test),) = properties.items()
        if isinstance(test, dict) and isinstance(test.get("const"), str):
            return prop, frozenset([test["const"]])
        if isinstance(test, dict) and isinstance(test.get("enum"), list):
            return prop, frozenset(v if isinstance(v, str) else "null" for v in test["enum"])
        if test == {"type": "null"}:
            return prop, frozenset(["null"])
        return None
    negated = condition.get("not")
    required = negated.get("required") if isinstance(negated, dict) else None
    if set(condition) == {"not"} and isinstance(required, list) and len(required) == 1:
        return str(required[0]), frozenset(["(absent)"])
    return None


def _is_guard(node: Any, prop: str) -> bool:
    """The leaf that rejects an unknown value with the list of known ones."""
    if not isinstance(node, dict) or set(node) != {"properties"}:
        return False
    properties = node["properties"]
    test = properties.get(prop) if isinstance(properties, dict) else None
    return len(properties) == 1 and isinstance(test, dict) and set(test) == {"enum"}


def _dispatch(node: dict[str, Any], pointer: str) -> _Dispatch | None:
    """Read a condition tree on one property back into value -> schema."""
    first = _condition(node.get("if"))
    if first is None or "then" not in node:
        return None
    prop = first[0]
    cases: dict[str, tuple[Any, str]] = {}

    def walk(
        here: Any, where: str, allowed: frozenset[str] | None, excluded: frozenset[str]
    ) -> bool:
        if isinstance(here, dict) and "if" in here:
            condition = _condition(here["if"])
            if condition is None or condition[0] != prop:
                return False
            values = condition[1]
            if allowed is None:  # any value but the excluded ones
                then_values = values - excluded
                ok = walk(here.get("else", True), f"{where}/else", None, excluded | values)
            else:
                then_values = allowed & values
                ok = walk(here.get("else", True), f"{where}/else", allowed - values, excluded)
            return ok and walk(here.get("then", True), f"{where}/then", then_values, excluded)
        if _is_guard(here, prop):
            return True
        for value in sorted(allowed) if allowed is not None else ["(other)"]:
            cases.setdefault(value, (here, where))
        return True

    tree = {k: node[k] for k in ("if", "then", "else") if k in node}
    if not walk(tree, pointer, None, frozenset()):
        return None
    rest = {k: v for k, v in node.items() if k not in ("if", "then", "else")}
    return _Dispatch(prop, cases, rest)


def _order(value: str) -> tuple[bool, str]:
    """Real values first, so that their shapes are reached by the shortest paths."""
    return value.startswith("("), value


def _value_text(prop: str, value: str) -> str:
    noun = "item type" if prop == "type" else f"'{prop}' value"
    if value == "(absent)":
        return f"an item without '{prop}'"
    if value == "(other)":
        return f"any other {noun}"
    return f"{noun} '{value}'"


# -- other shapes ----------------------------------------------------------------------------
def _union(node: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """A node that is only an ``anyOf``/``oneOf``: (keyword, branches)."""
    for key in ("anyOf", "oneOf"):
        if set(node) == {key} and isinstance(node[key], list):
            return key, node[key]
    return None


def _types(node: dict[str, Any]) -> set[str] | None:
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {str(t) for t in declared}
    return None


def _signature(node: Any) -> str:
    if not isinstance(node, dict):
        return repr(node)
    if "$ref" in node:
        return "ref:" + str(node["$ref"]).rsplit("/", 1)[-1]
    if "if" in node:
        return "dispatch"
    types = _types(node)
    if types is not None:
        return "type:" + ",".join(sorted(types))
    if "const" in node:
        return "const:" + json.dumps(node["const"])
    return "enum" if "enum" in node else "other"


def _is_null(node: Any) -> bool:
    return isinstance(node, dict) and node == {"type": "null"}


def _describe(node: Any) -> str:
    signature = _signature(node)
    if _is_null(node):
        return "null"
    if signature.startswith(("ref:", "type:", "const:")):
        return signature.split(":", 1)[1]
    return "another shape"


def _show(values: list[Any]) -> str:
    return ", ".join(json.dumps(v, ensure_ascii=False) for v in values)


def _resolve(document: Any, pointer: str) -> Any:
    """The node at a JSON pointer (True, the empty schema, when there is none)."""
    return node_at(document, tokens(pointer), missing=True)


def _required_at(document: Any, pointer: str) -> bool:
    """Whether the property at ``.../properties/<name>`` is required by the object declaring it."""
    parent, _, name = pointer.rpartition("/")
    owner = _resolve(document, parent.removesuffix("/properties"))
    required = owner.get("required") if isinstance(owner, dict) else None
    return isinstance(required, list) and unescape(name) in required


# -- the walk ----------------------------------------------------------------------------
Context = tuple[str, str] | None  # the discriminator value already selected, if any


class _Differ:
    def __init__(self, kind: Kind, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.kind: Kind = kind
        self.old_doc, self.new_doc = old, new
        self.old_defs: dict[str, Any] = old.get("$defs", {})
        self.new_defs: dict[str, Any] = new.get("$defs", {})
        self.changes: list[Change] = []
        self.queue: deque[tuple[str, str, str, Context]] = deque()
        self.seen: set[tuple[str, str, Context]] = set()
        self.owner = "(root)"

    def run(self) -> list[Change]:
        def root(doc: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in doc.items() if k not in ("$defs", "$schema")}

        self.node(root(self.old_doc), root(self.new_doc), _At("", "", ""), None, 0)
        self.drain()
        while self.moves():
            self.drain()
        return self.changes

    def drain(self) -> None:
        # Breadth first: a schema reached by several paths is reported at the shortest.
        while self.queue:
            old_name, new_name, location, context = self.queue.popleft()
            self.owner = new_name
            at = _At(f"/$defs/{escape(old_name)}", f"/$defs/{escape(new_name)}", location)
            self.node(self.old_defs[old_name], self.new_defs[new_name], at, context, 0)

    def moves(self) -> bool:
        """Turn a property moved between the schemas composing one object into its changes.

        ``reasoning`` leaving ``ResponseProperties`` for ``CreateResponse`` (parts of one
        ``allOf``) is reported as removed from one and added to the other, at the same body
        location: the body still accepts it, so both go, and the property's two schemas are
        compared instead (whether it is required too). Returns whether any was found.
        """
        added = {
            (c.location, c.name): c
            for c in self.changes
            if c.change in ("property-added", "required-added")
            and c.pointer.endswith(f"/properties/{escape(c.name)}")  # a new property
        }
        pairs = [
            (gone, added.pop((gone.location, gone.name)))
            for gone in self.changes
            if gone.change == "property-removed" and (gone.location, gone.name) in added
        ]
        if not pairs:
            return False
        dropped = {id(c) for pair in pairs for c in pair}
        self.changes = [c for c in self.changes if id(c) not in dropped]
        for gone, new in pairs:
            self.owner = new.schema
            old_node = _resolve(self.old_doc, gone.old_pointer)
            new_node = _resolve(self.new_doc, new.pointer)
            at = _At(gone.old_pointer, new.pointer, new.location)
            was = _required_at(self.old_doc, gone.old_pointer)
            now = new.change == "required-added"
            if now and not was:
                self.emit("required-added", at, "newly required", new.name)
            elif was and not now:
                self.emit("required-removed", at, "no longer required", new.name)
            self.node(old_node, new_node, at, None, 1)
        return True

    def emit(
        self,
        change: str,
        at: _At,
        detail: str,
        name: str = "",
        *,
        old: str | None = None,
        new: str | None = None,
    ) -> None:
        self.changes.append(
            Change(
                kind=self.kind,
                location=at.location,
                change=change,
                detail=detail,
                impact=impact_of(self.kind, change),
                schema=self.owner,
                pointer=at.new if new is None else new,
                old_pointer=at.old if old is None else old,
                name=name,
            )
        )

    def follow(self, old_ref: str, new_ref: str, location: str, context: Context) -> None:
        old_name, new_name = old_ref.rsplit("/", 1)[-1], new_ref.rsplit("/", 1)[-1]
        if old_name not in self.old_defs or new_name not in self.new_defs:
            return
        if context is not None:  # a selected value only matters to a schema dispatching on it
            target = self.old_defs[old_name]
            dispatch = _dispatch(target, "") if isinstance(target, dict) else None
            if dispatch is None or dispatch.prop != context[0]:
                context = None
        key = (old_name, new_name, context)
        if key not in self.seen:
            self.seen.add(key)
            self.queue.append((old_name, new_name, location, context))

    def deref(self, node: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], str]:
        name = str(node["$ref"]).rsplit("/", 1)[-1]
        target = defs.get(name)
        merged = dict(target) if isinstance(target, dict) else {}
        merged.update({k: v for k, v in node.items() if k != "$ref"})
        return merged, f"/$defs/{escape(name)}"

    def node(self, old: Any, new: Any, at: _At, context: Context, depth: int) -> None:
        if depth > 64:
            return
        if not isinstance(old, dict) or not isinstance(new, dict):
            if old != new:
                self.emit("shape-changed", at, "schema replaced")
            return
        old_ref, new_ref = old.get("$ref"), new.get("$ref")
        if isinstance(old_ref, str) and isinstance(new_ref, str):
            self.follow(old_ref, new_ref, at.location, context)
            old = {k: v for k, v in old.items() if k != "$ref"}
            new = {k: v for k, v in new.items() if k != "$ref"}
            if not old and not new:
                return
        elif isinstance(old_ref, str):
            old, pointer = self.deref(old, self.old_defs)
            return self.node(old, new, _At(pointer, at.new, at.location), context, depth + 1)
        elif isinstance(new_ref, str):
            new, pointer = self.deref(new, self.new_defs)
            return self.node(old, new, _At(at.old, pointer, at.location), context, depth + 1)

        old_dispatch, new_dispatch = _dispatch(old, at.old), _dispatch(new, at.new)
        if old_dispatch is not None and new_dispatch is not None:
            return self.dispatches(old_dispatch, new_dispatch, at, context, depth)

        old_union, new_union = _union(old), _union(new)
        if old_union is not None or new_union is not None:
            # A lone schema compares as a union of one: [string] vs [string, null] is "now null".
            old_key, old_list = old_union or ("", [old])
            new_key, new_list = new_union or ("", [new])
            return self.branches(old_key, old_list, new_key, new_list, at, context, depth)

        if old_dispatch is not None or new_dispatch is not None:
            both = old_dispatch or new_dispatch
            assert both is not None
            values = ", ".join(sorted(both.cases, key=_order))
            shapes = f"one of the shapes selected by '{both.prop}' ({values})"
            other = _describe(new if old_dispatch is not None else old)
            if new_dispatch is not None:
                detail = f"now {shapes}, was {other}"
            else:
                detail = f"now {other}, was {shapes}"
            return self.emit("shape-changed", at, detail)
        self.keywords(old, new, at, context, depth)

    def dispatches(
        self, old: _Dispatch, new: _Dispatch, at: _At, context: Context, depth: int
    ) -> None:
        if old.prop != new.prop:
            self.emit("shape-changed", at, f"now selected by '{new.prop}', was by '{old.prop}'")
            return
        prop = new.prop
        if context is not None and context[0] == prop:
            value = context[1]
            if value in old.cases and value in new.cases:
                (o, op), (n, np) = old.cases[value], new.cases[value]
                self.node(o, n, _At(op, np, at.location), context, depth + 1)
            return
        for value in sorted(set(new.cases) - set(old.cases), key=_order):
            where = _At(at.old, new.cases[value][1], typed(at.location, prop, value))
            self.emit("item-type-added", where, f"{_value_text(prop, value)} added", value)
        for value in sorted(set(old.cases) - set(new.cases), key=_order):
            where = _At(old.cases[value][1], at.new, typed(at.location, prop, value))
            self.emit("item-type-removed", where, f"{_value_text(prop, value)} removed", value)
        for value in sorted(set(old.cases) & set(new.cases), key=_order):
            (o, op), (n, np) = old.cases[value], new.cases[value]
            where = _At(op, np, typed(at.location, prop, value))
            self.node(o, n, where, (prop, value), depth + 1)
        if old.rest != new.rest:
            self.keywords(old.rest, new.rest, at, None, depth)

    def branches(
        self,
        old_key: str,
        old_list: list[Any],
        new_key: str,
        new_list: list[Any],
        at: _At,
        context: Context,
        depth: int,
    ) -> None:
        """Pair the branches of two unions by what they are (same reference, same type).

        One branch left on each side, both references, is one schema swapped for another at
        the same place (``PromptCacheOptionsParam`` -> ``CompactPromptCacheOptionsParam``):
        their contents are compared, so that a rename is not reported as a removal.
        """
        unmatched = list(range(len(new_list)))
        pairs: list[tuple[int, int]] = []
        gone: list[int] = []
        for i, branch in enumerate(old_list):
            signature = _signature(branch)
            match = next((j for j in unmatched if _signature(new_list[j]) == signature), None)
            if match is None:
                gone.append(i)
                continue
            unmatched.remove(match)
            pairs.append((i, match))
        swapped = len(gone) == len(unmatched) == 1 and all(
            isinstance(b, dict) and "$ref" in b for b in (old_list[gone[0]], new_list[unmatched[0]])
        )
        if swapped:
            pairs.append((gone.pop(), unmatched.pop()))
        for i in gone:
            old_at = f"{at.old}/{old_key}/{i}" if old_key else at.old
            where = _At(old_at, at.new, at.location)
            code = "type-narrowed" if _is_null(old_list[i]) else "shape-removed"
            self.emit(code, where, f"no longer accepts {_describe(old_list[i])}")
        for i, match in sorted(pairs):
            old_at = f"{at.old}/{old_key}/{i}" if old_key else at.old
            new_at = f"{at.new}/{new_key}/{match}" if new_key else at.new
            where = _At(old_at, new_at, at.location)
            self.node(old_list[i], new_list[match], where, context, depth + 1)
        for j in unmatched:
            where = _At(at.old, f"{at.new}/{new_key}/{j}" if new_key else at.new, at.location)
            code = "type-widened" if _is_null(new_list[j]) else "shape-added"
            self.emit(code, where, f"now also accepts {_describe(new_list[j])}")

    def keywords(
        self, old: dict[str, Any], new: dict[str, Any], at: _At, context: Context, depth: int
    ) -> None:
        self.types(old, new, at)
        self.values(old, new, at)
        self.constraints(old, new, at)
        self.properties(old, new, at, depth)

        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(old_extra, dict) and isinstance(new_extra, dict):
            where = at.key("additionalProperties", location=join(at.location, "*"))
            self.node(old_extra, new_extra, where, None, depth + 1)
        elif old_extra != new_extra:
            if new_extra is False:
                self.emit("closed", at, "no longer accepts undeclared properties")
            elif old_extra is False:
                self.emit("opened", at, "now accepts undeclared properties")
            else:
                self.emit("shape-changed", at, "additional properties changed")

        if "items" in old or "items" in new:
            where = at.key("items", location=f"{at.location}[]")
            self.node(old.get("items", True), new.get("items", True), where, None, depth + 1)

        old_key = "anyOf" if "anyOf" in old else "oneOf"
        new_key = "anyOf" if "anyOf" in new else "oneOf"
        old_list, new_list = old.get(old_key) or [], new.get(new_key) or []
        if old_list or new_list:
            self.branches(old_key, old_list, new_key, new_list, at, context, depth)
        old_parts, new_parts = old.get("allOf") or [], new.get("allOf") or []
        if len(old_parts) != len(new_parts):
            self.emit("shape-changed", at, "composition (allOf) changed")
        else:
            for i, (o, n) in enumerate(zip(old_parts, new_parts, strict=True)):
                self.node(o, n, at.key("allOf", i), None, depth + 1)

        for key in sorted((set(old) | set(new)) - _HANDLED):
            if old.get(key) != new.get(key):
                self.emit("shape-changed", at, f"'{key}' changed")

    def types(self, old: dict[str, Any], new: dict[str, Any], at: _At) -> None:
        old_types, new_types = _types(old), _types(new)
        if old_types == new_types:
            return
        if new_types is None:
            self.emit("type-widened", at, "any type accepted now")
        elif old_types is None:
            self.emit("type-narrowed", at, f"now must be {' or '.join(sorted(new_types))}")
        else:
            gained, lost = new_types - old_types, old_types - new_types
            if "number" in new_types:
                lost.discard("integer")  # every integer is a number
            if gained:
                self.emit("type-widened", at, f"type now also {', '.join(sorted(gained))}")
            if lost:
                self.emit("type-narrowed", at, f"type no longer {', '.join(sorted(lost))}")

    def values(self, old: dict[str, Any], new: dict[str, Any], at: _At) -> None:
        if "enum" in old and "enum" in new:
            old_keys = {json.dumps(v, sort_keys=True): v for v in old["enum"]}
            new_keys = {json.dumps(v, sort_keys=True): v for v in new["enum"]}
            added = [new_keys[k] for k in sorted(set(new_keys) - set(old_keys))]
            removed = [old_keys[k] for k in sorted(set(old_keys) - set(new_keys))]
            if added:
                self.emit("enum-widened", at, f"enum widened with {_show(added)}")
            if removed:
                self.emit("enum-narrowed", at, f"enum narrowed: {_show(removed)} no longer allowed")
        elif "enum" in new:
            self.emit("enum-narrowed", at, f"now restricted to {_show(new['enum'])}")
        elif "enum" in old:
            self.emit("enum-widened", at, "no longer restricted to a list of values")
        if old.get("const", ...) != new.get("const", ...):
            if "const" in new:
                self.emit("const-changed", at, f"now must be {_show([new['const']])}")
            else:
                self.emit("enum-widened", at, "no longer a fixed value")

    def constraints(self, old: dict[str, Any], new: dict[str, Any], at: _At) -> None:
        for key in (*_LOWER_BOUNDS, *_UPPER_BOUNDS):
            before, after = old.get(key), new.get(key)
            if before == after:
                continue
            if before is None or after is None:
                tighter = before is None
                text = f"{key} {after} added" if tighter else f"{key} {before} dropped"
            else:
                tighter = after > before if key in _LOWER_BOUNDS else after < before
                text = f"{key} {before} -> {after}"
            self.emit("constraint-tightened" if tighter else "constraint-relaxed", at, text)
        for key in ("pattern", "multipleOf"):
            before, after = old.get(key), new.get(key)
            if before == after:
                continue
            if before is None:
                self.emit("constraint-tightened", at, f"{key} {after!r} added")
            elif after is None:
                self.emit("constraint-relaxed", at, f"{key} {before!r} dropped")
            else:
                self.emit("constraint-changed", at, f"{key} {before!r} -> {after!r}")
        if bool(old.get("uniqueItems")) != bool(new.get("uniqueItems")):
            if new.get("uniqueItems"):
                self.emit("constraint-tightened", at, "items must be unique")
            else:
                self.emit("constraint-relaxed", at, "items may repeat")
        before, after = old.get("format"), new.get("format")
        if before != after:
            if before is None:
                text = f"format {after!r} declared"
            elif after is None:
                text = f"format {before!r} no longer declared"
            else:
                text = f"format {before!r} -> {after!r}"
            # Formats are annotations: neither version checks them, so validity is unchanged.
            self.emit("format-changed", at, text + " (an annotation)")

    def properties(self, old: dict[str, Any], new: dict[str, Any], at: _At, depth: int) -> None:
        old_props: dict[str, Any] = old.get("properties") or {}
        new_props: dict[str, Any] = new.get("properties") or {}
        old_req, new_req = set(old.get("required") or ()), set(new.get("required") or ())
        for name in sorted(set(new_props) - set(old_props)):
            where = _At(at.old, at.prop(name).new, join(at.location, name))
            if name in new_req:
                self.emit("required-added", where, "newly required (new field)", name)
            else:
                self.emit("property-added", where, "added (optional)", name)
        for name in sorted(set(old_props) - set(new_props)):
            where = _At(at.prop(name).old, at.new, join(at.location, name))
            if is_request_kind(self.kind):
                detail = "removed (the API rejects parameters it does not know)"
            else:
                detail = "removed (now undocumented: a violation under --strict)"
            self.emit("property-removed", where, detail, name)
        for name in sorted(set(old_props) & set(new_props)):
            self.node(old_props[name], new_props[name], at.prop(name), None, depth + 1)
        # Names whose property is new were reported above, with the property.
        for name in sorted(new_req - old_req):
            if name in old_props or name not in new_props:
                where = _At(at.old, at.new, join(at.location, name))
                self.emit("required-added", where, "newly required", name)
        for name in sorted(old_req - new_req):
            if name in new_props or name not in old_props:
                where = _At(at.old, at.new, join(at.location, name))
                self.emit("required-removed", where, "no longer required", name)


# -- entry points ----------------------------------------------------------------------------
# The operation of a kind's family when neither manifest names it (see _operation).
_OPERATIONS = {
    "operation": "POST /responses/compact",
    "responses": "POST /responses",
    "beta": "POST /responses/compact?beta=true",
}


def _family(kind: Kind) -> str:
    """The manifest entry of a kind's operation: ``operation`` (compaction), ``responses``..."""
    return kind.split(".", 1)[0] if "." in kind else "operation"


def _operation(kind: Kind, *versions: SchemaSet) -> str:
    """``POST /responses``: the operation of ``kind`` as the first manifest declaring it says."""
    family = _family(kind)
    for schemas in versions:
        entry = schemas.manifest.get(family)
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            return f"{str(entry.get('method') or 'post').upper()} {entry['path']}"
    return _OPERATIONS.get(family, f"the {family} operation")


def _document(
    schemas: SchemaSet, kind: Kind, operation: str
) -> tuple[dict[str, Any] | None, Absence | None]:
    """(the document of ``kind``, None), or (None, why the version has none)."""
    try:
        return schemas.document(kind), None
    except VersionError:
        if (schemas.path / f"{kind}.schema.json").exists():
            raise  # there but unreadable: a broken folder, not a kind the version lacks
    family = _family(kind)
    reason: AbsenceReason
    if family != "operation" and family not in schemas.manifest:
        reason = "derived-before"  # the manifest predates the operation's schemas
    elif family != "operation" and schemas.manifest[family] is None:
        reason = "not-in-spec"
    else:
        reason = "file-missing"
    return None, Absence(kind, schemas.name, reason, operation)


def diff_schema_sets(old: SchemaSet, new: SchemaSet, kinds: Sequence[Kind] = KINDS) -> SchemaDiff:
    """Every change to the documents of ``kinds`` (default: every kind), in the order of KINDS.

    A kind that one version (or both) has no document of is not compared: its
    :class:`KindCoverage` in ``kinds`` of the result says which version lacks it and why.
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise VersionError(f"unknown schema kind {unknown[0]!r}; known kinds: {', '.join(KINDS)}")
    changes: list[Change] = []
    coverage: list[KindCoverage] = []
    for kind in (k for k in KINDS if k in kinds):
        operation = _operation(kind, old, new)
        old_document, old_absence = _document(old, kind, operation)
        new_document, new_absence = _document(new, kind, operation)
        coverage.append(KindCoverage(kind, operation, old_absence, new_absence))
        if old_document is not None and new_document is not None:
            changes += _Differ(kind, old_document, new_document).run()
    return SchemaDiff(old=old.name, new=new.name, changes=tuple(changes), kinds=tuple(coverage))


def open_schema_set(operand: str | Path, workdir: str | Path) -> SchemaSet:
    """A bundled version (name or date prefix), a derived folder, or a spec file.

    A spec file is derived into ``workdir`` first, so it needs no ``schemas derive`` step.
    """
    from ._derive import derive_to

    path = Path(operand)
    if path.is_file():
        slot = Path(workdir) / f"spec{len(list(Path(workdir).iterdir()))}"
        return load_schema_set(str(derive_to(path, slot).resolve()))
    looks_like_a_path = path.suffix.lower() in (".yaml", ".yml", ".json") or len(path.parts) > 1
    if looks_like_a_path and not path.exists():
        raise CompactionError(f"{operand}: no such spec file or schema folder")
    return load_schema_set(resolve_version(str(operand)))


def diff_versions(old: str | Path, new: str | Path) -> SchemaDiff:
    """Diff two versions given as names, date prefixes, derived folders or spec files."""
    with tempfile.TemporaryDirectory(prefix="pytest-compaction-diff-") as workdir:
        return diff_schema_sets(open_schema_set(old, workdir), open_schema_set(new, workdir))


# -- text ----------------------------------------------------------------------------------
_IMPACT_TEXT = {
    "breaking-for-clients": "breaking for clients",
    "breaking-for-recordings": "breaking for recordings",
    "compatible": "compatible",
}


def format_text(diff: SchemaDiff) -> str:
    """One line per change, breaking ones first, grouped by kind in the order of KINDS.

    A kind one version lacks gets one line saying which and why, instead of its changes.
    """
    lines = [f"schema changes {diff.old} -> {diff.new}"]
    width = max(len(t) for t in _IMPACT_TEXT.values())
    counts = diff.counts()
    for kind in diff.kind_order:
        coverage = diff.coverage(kind)
        if coverage is not None and not coverage.compared:
            lines.append(f"{kind}: {coverage.describe(diff.old, diff.new)}")
            continue
        changes = sorted(diff.of_kind(kind), key=lambda c: IMPACTS.index(c.impact))
        if not changes:
            lines.append(f"{kind}: no changes")
            continue
        tally = ", ".join(
            f"{counts[kind][impact]} {_IMPACT_TEXT[impact]}"
            for impact in IMPACTS
            if counts[kind][impact]
        )
        lines.append(f"{kind}: {len(changes)} change{'s' * (len(changes) != 1)} ({tally})")
        for c in changes:
            lines.append(
                f"  {_IMPACT_TEXT[c.impact]:<{width}}  {c.where}: {c.detail}  [{c.schema}]"
            )
    return "\n".join(lines)
