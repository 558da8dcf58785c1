"""Input items that are earlier output items, passed back as returned: a spec defect.

The contract tells clients to pass the output of ``/responses/compact`` (and of ``/responses``)
back as input as it was returned, and the SDKs do: the compact output's user messages go back
with their ``id`` (``msg_...``) and ``status``, a compaction item with its ``created_by``. The
spec's input item schemas do not declare these properties (``EasyInputMessage`` has no ``id``),
so a literal reading calls every documented chain drift, and fails it under ``strict``.

Derivation therefore lets an input item carry what the output item of the same ``type`` has:
for each member of an input item union, every property that an output member with the same
discriminator value declares and the input member does not is added to the input member, with
the output's own schema, and ``null`` as well when the output item does not require it: the
SDKs' output models hold an absent optional property as ``None``, which a dump of the returned
item sends as ``null`` (and the spec's own parameter twins, ``CompactionSummaryItemParam.id``,
take ``null`` the same way). Each addition is recorded as a ``passed-back-item`` defect. Nothing
else is widened: a property no output item has is still drift, the types of the properties
the input member declares are its own, and a member that an answer's schema also reaches
(``CustomToolCallOutput`` is part of ``CustomToolCallOutputResource``) is left as it is, so
that no output item is judged differently.

Families stay apart: the beta route's items are paired with the beta outputs only, so that a
beta-only field never widens the plain contract.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ._spec import SCHEMA_PREFIX, Spec

_MAX_DEPTH = 20


@dataclass(frozen=True)
class Addition:
    """One property an input member gets from an output member."""

    input_member: str
    name: str  # the property
    output_member: str

    @property
    def location(self) -> str:
        return f"{self.input_member}/properties/{self.name}"

    @property
    def detail(self) -> str:
        return (
            f"'{self.name}' of the {self.output_member} output item is accepted when the "
            "item is passed back as input"
        )


def _name(ref: Any) -> str | None:
    if isinstance(ref, str) and ref.startswith(SCHEMA_PREFIX):
        return ref[len(SCHEMA_PREFIX) :]
    return None


def _parts(schemas: dict[str, Any], node: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """``node`` and the parts it is made of: ``$ref`` targets and ``allOf`` members."""
    if not isinstance(node, dict) or depth > _MAX_DEPTH:
        return
    yield node
    target = _name(node.get("$ref"))
    if target is not None:
        yield from _parts(schemas, schemas.get(target), depth + 1)
    for part in node.get("allOf", ()) if isinstance(node.get("allOf"), list) else ():
        yield from _parts(schemas, part, depth + 1)


def _declared(schemas: dict[str, Any], node: Any) -> dict[str, Any]:
    """Every property a schema declares, through ``$ref`` and ``allOf``; the first one wins."""
    out: dict[str, Any] = {}
    for part in _parts(schemas, node):
        properties = part.get("properties")
        if isinstance(properties, dict):
            for key, value in properties.items():
                out.setdefault(str(key), value)
    return out


def _required(schemas: dict[str, Any], node: Any) -> set[str]:
    """Every property a schema requires, through ``$ref`` and ``allOf``."""
    out: set[str] = set()
    for part in _parts(schemas, node):
        required = part.get("required")
        if isinstance(required, list):
            out.update(str(name) for name in required)
    return out


def _nullable(schema: Any) -> bool:
    members = schema.get("anyOf") if isinstance(schema, dict) else None
    return isinstance(members, list) and {"type": "null"} in members


def item_unions(schemas: dict[str, Any], root: str, prop: str) -> list[str]:
    """The item unions of ``root``'s array property ``prop`` (``input`` -> ``InputItem``)."""
    found: list[str] = []
    value = _declared(schemas, schemas.get(root)).get(prop)

    def walk(node: Any, depth: int) -> None:
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return
        items = node.get("items")
        target = _name(items.get("$ref")) if isinstance(items, dict) else None
        if target is not None and target not in found:
            found.append(target)
        for key in ("anyOf", "oneOf", "allOf"):
            for member in node.get(key, ()) if isinstance(node.get(key), list) else ():
                walk(member, depth + 1)
        ref = _name(node.get("$ref"))
        if ref is not None:
            walk(schemas.get(ref), depth + 1)

    walk(value, 0)
    return found


def _members(schemas: dict[str, Any], union: str, depth: int = 0) -> Iterator[str]:
    """The component names a discriminated union stands for, nested unions opened."""
    node = schemas.get(union)
    if not isinstance(node, dict) or depth > _MAX_DEPTH:
        return
    members = node.get("oneOf") or node.get("anyOf")
    if not isinstance(members, list) or not isinstance(node.get("discriminator"), dict):
        yield union
        return
    for member in members:
        target = _name(member.get("$ref")) if isinstance(member, dict) else None
        if target is not None:
            yield from _members(schemas, target, depth + 1)


def _type_values(schemas: dict[str, Any], name: str) -> set[str]:
    node = _declared(schemas, schemas.get(name)).get("type")
    for part in _parts(schemas, node):
        if isinstance(part.get("enum"), list):
            return {v for v in part["enum"] if isinstance(v, str)}
        if isinstance(part.get("const"), str):
            return {part["const"]}
    return set()


def _reached(schemas: dict[str, Any], roots: Iterable[str]) -> set[str]:
    """Every component the closures of ``roots`` reach."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        stack: list[Any] = [schemas[name]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                target = _name(node.get("$ref"))
                if target is not None and target not in seen:
                    pending.append(target)
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return seen


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def passed_back(
    spec: Spec, families: Iterable[tuple[Iterable[str], Iterable[str]]]
) -> tuple[Spec, list[Addition]]:
    """The spec with input members widened by their output twins, and what was added.

    ``families``: (request roots, response roots) whose ``input`` and ``output`` item unions
    are paired, e.g. ``(["CompactResponseMethodPublicBody", "CreateResponse"],
    ["CompactResource", "Response"])``.
    """
    schemas = spec.schemas
    changed: dict[str, dict[str, Any]] = {}
    additions: list[Addition] = []
    for requests, responses in families:
        inputs = _unique(
            m
            for root in requests
            for union in item_unions(schemas, root, "input")
            for m in _members(schemas, union)
        )
        outputs = _unique(
            m
            for root in responses
            for union in item_unions(schemas, root, "output")
            for m in _members(schemas, union)
        )
        # What the output items are made of (not all an answer reaches: a Response's
        # ``instructions`` holds input items, which may well be widened).
        answered = _reached(schemas, outputs)
        by_value: dict[str, list[str]] = {}
        for name in outputs:
            for value in sorted(_type_values(schemas, name)):
                by_value.setdefault(value, []).append(name)
        for name in inputs:
            node = changed.get(name, schemas.get(name))
            if not isinstance(node, dict) or not isinstance(node.get("properties"), dict):
                continue  # only members that declare properties of their own are widened
            if name in answered:
                continue  # part of an output item too: widening it would change what it may be
            declared = _declared(schemas, node)
            for value in sorted(_type_values(schemas, name)):
                for twin in by_value.get(value, []):
                    if twin == name:
                        continue
                    required = _required(schemas, schemas[twin])
                    for prop, schema in _declared(schemas, schemas[twin]).items():
                        if prop in declared:
                            continue
                        if name not in changed:
                            node = changed[name] = copy.deepcopy(node)
                        added = copy.deepcopy(schema)
                        if prop not in required and not _nullable(added):
                            added = {"anyOf": [added, {"type": "null"}]}
                        node["properties"][prop] = added
                        declared[prop] = schema
                        additions.append(Addition(name, prop, twin))
    if not changed:
        return spec, []
    document = dict(spec.document)
    components = dict(document["components"])
    components["schemas"] = {**schemas, **changed}
    document["components"] = components
    return Spec(spec.source, spec.sha256, document), additions
