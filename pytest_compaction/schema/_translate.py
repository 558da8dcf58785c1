"""Translate OpenAPI schema components into standalone JSON Schema 2020-12.

A component and every schema it reaches become one document, the closure in ``$defs``. The
output keeps structure only (no prose, examples or ``x-*`` extensions), resolves discriminated
``oneOf`` (and ``anyOf``) by the discriminator, and lists every spec defect it works around as a
:class:`Defect`. Which components are translated, and the version folder they are written to,
is ``_derive``'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._data import as_data
from .._errors import SpecError
from ._spec import SCHEMA_PREFIX, Spec

DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Keywords that carry validation; everything else (prose, examples, x-*) is dropped.
_SCHEMA_KEYS = frozenset(
    {"items", "additionalProperties", "not", "propertyNames", "contains", "if", "then", "else"}
)
_SCHEMA_LIST_KEYS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAP_KEYS = frozenset({"properties", "patternProperties", "dependentSchemas"})
_VALUE_KEYS = frozenset(
    {
        "type",
        "enum",
        "const",
        "required",
        "format",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "dependentRequired",
    }
)


@dataclass(frozen=True)
class Defect:
    """A place where the spec contradicts itself and what derivation did about it."""

    kind: str
    location: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return as_data(self, "kind location detail")


@dataclass(frozen=True)
class _Tag:
    """What a ``oneOf`` member says about the discriminator property."""

    values: frozenset[str]
    optional: bool  # the member does not require the property
    nullable: bool  # the member accepts null for it
    wildcard: bool  # the member accepts any string


@dataclass
class Translator:
    """Translates the components of one spec, keeping the defects it works around."""

    spec: Spec
    defects: list[Defect] = field(default_factory=list)
    defs: dict[str, Any] = field(default_factory=dict)
    # property locations the spec's own examples give null (see ``_examples``)
    nullable: dict[str, str] = field(default_factory=dict)
    _pending: list[str] = field(default_factory=list)

    # -- closure -----------------------------------------------------------------------
    def closure(self, root: str) -> dict[str, Any]:
        """Translate ``root`` and every schema it reaches; returns the ``$defs`` map."""
        self.defs = {}
        self._pending = [root]
        while self._pending:
            name = self._pending.pop()
            if name in self.defs:
                continue
            self.defs[name] = None  # mark before descending: the graph has cycles
            self.defs[name] = self.schema(self._component(name), name, name)
        return dict(sorted(self.defs.items()))

    def _ref_name(self, ref: Any, where: str) -> str:
        if not isinstance(ref, str) or not ref.startswith(SCHEMA_PREFIX):
            raise SpecError(f"{self.spec.source}: unsupported reference {ref!r} at {where}")
        return ref[len(SCHEMA_PREFIX) :]

    def _target(self, ref: Any) -> Any:
        """The component a reference met while inspecting (not translating) names."""
        return self._component(self._ref_name(ref, "a discriminated member"))

    def _component(self, name: str) -> Any:
        try:
            return self.spec.schemas[name]
        except KeyError:
            raise SpecError(
                f"{self.spec.source}: schema {name!r} is referenced but not defined"
            ) from None

    def _ref(self, ref: Any, where: str) -> str:
        name = self._ref_name(ref, where)
        self._component(name)
        if name not in self.defs:
            self._pending.append(name)
        return f"#/$defs/{name}"

    # -- one schema node ---------------------------------------------------------------
    def schema(
        self, node: Any, where: str, owner: str, siblings: frozenset[str] = frozenset()
    ) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise SpecError(f"{self.spec.source}: schema at {where} is not an object")
        out: dict[str, Any] = {}
        for key, value in node.items():
            here = f"{where}/{key}"
            if key == "$ref":
                out["$ref"] = self._ref(value, here)
            elif key == "$recursiveRef":
                # Draft 2019-09 dynamic reference; the only anchor in the closure is the
                # enclosing component, so a static reference to it is equivalent.
                out["$ref"] = f"#/$defs/{owner}"
                self.defects.append(
                    Defect("recursive-ref", here, f"$recursiveRef {value!r} -> #/$defs/{owner}")
                )
            elif key in _SCHEMA_KEYS:
                out[key] = self.schema(value, here, owner)
            elif key in _SCHEMA_LIST_KEYS and key != "oneOf":
                if key == "anyOf" and self._discriminated_any_of(node):
                    continue  # dispatched below, like a discriminated oneOf
                members = self._shape(value, list, here)
                # An allOf part may require what a sibling part declares (Response does).
                siblings = self._declared_by(members, here) if key == "allOf" else frozenset()
                out[key] = [
                    self.schema(v, f"{here}/{i}", owner, siblings) for i, v in enumerate(members)
                ]
            elif key in _SCHEMA_MAP_KEYS:
                entries = sorted(self._shape(value, dict, here).items(), key=lambda kv: str(kv[0]))
                out[key] = {str(k): self.schema(v, f"{here}/{k}", owner) for k, v in entries}
            elif key in _VALUE_KEYS:
                out[key] = value
        if "oneOf" in node:
            out.update(self._one_of(node, where, owner))
        elif self._discriminated_any_of(node):
            out.update(self._one_of(node, where, owner, "anyOf"))
        self._drop_undefined_required(out, where, siblings)
        if where in self.nullable:
            example = self.nullable[where]
            self.defects.append(
                Defect("null-in-example", where, f"the example of {example} gives null; accepted")
            )
            return {"anyOf": [out, {"type": "null"}]}
        return out

    @staticmethod
    def _discriminated_any_of(node: dict[str, Any]) -> bool:
        """``anyOf`` with a discriminator (ResponseStreamEvent): members are told apart by it."""
        disc = node.get("discriminator")
        return (
            "anyOf" in node
            and "oneOf" not in node
            and isinstance(disc, dict)
            and isinstance(disc.get("propertyName"), str)
        )

    def _declared_by(self, members: list[Any], where: str, depth: int = 0) -> frozenset[str]:
        """Property names the parts of an ``allOf`` declare, through references."""
        names: set[str] = set()
        for member in members:
            if not isinstance(member, dict) or depth > 20:
                continue
            properties = member.get("properties")
            if isinstance(properties, dict):
                names.update(str(k) for k in properties)
            if isinstance(member.get("allOf"), list):
                names |= self._declared_by(member["allOf"], where, depth + 1)
            if "$ref" in member:
                target = self._component(self._ref_name(member["$ref"], where))
                names |= self._declared_by([target], where, depth + 1)
        return frozenset(names)

    def _shape(self, value: Any, kind: type, where: str) -> Any:
        if not isinstance(value, kind):
            wanted = "a list" if kind is list else "an object"
            raise SpecError(f"{self.spec.source}: {where} must be {wanted}, got {value!r:.60}")
        return value

    def _drop_undefined_required(
        self, out: dict[str, Any], where: str, siblings: frozenset[str] = frozenset()
    ) -> None:
        required = out.get("required")
        properties = out.get("properties")
        composed = any(k in out for k in ("$ref", "allOf", "anyOf", "oneOf", "if"))
        if not isinstance(required, list) or not isinstance(properties, dict) or composed:
            return
        if out.get("additionalProperties") not in (None, False):
            return
        missing = [name for name in required if name not in properties and name not in siblings]
        for name in missing:
            self.defects.append(
                Defect(
                    "required-undefined",
                    f"{where}/required",
                    f"'{name}' is required but not defined in properties; dropped",
                )
            )
        if missing:
            kept = [name for name in required if name in properties]
            if kept:
                out["required"] = kept
            else:
                del out["required"]

    # -- oneOf -------------------------------------------------------------------------
    def _one_of(
        self, node: dict[str, Any], where: str, owner: str, key: str = "oneOf"
    ) -> dict[str, Any]:
        here = f"{where}/{key}"
        members = self._shape(node[key], list, here)
        translated = [self.schema(m, f"{here}/{i}", owner) for i, m in enumerate(members)]
        disc = node.get("discriminator")
        prop = disc.get("propertyName") if isinstance(disc, dict) else None
        if isinstance(prop, str):
            return self._dispatch(prop, members, translated, here, owner)
        if self._disjoint(members):
            return {"oneOf": translated}
        self.defects.append(
            Defect("ambiguous-oneOf", here, "members overlap, no discriminator; read as anyOf")
        )
        return {"anyOf": translated}

    def _disjoint(self, members: list[Any]) -> bool:
        seen: set[str] = set()
        for member in members:
            types = self._types(member)
            both = seen | types
            if not types or types & seen or ("number" in both and "integer" in both):
                return False
            seen |= types
        return True

    def _types(self, node: Any, depth: int = 0) -> set[str]:
        if not isinstance(node, dict) or depth > 20:
            return set()
        declared = node.get("type")
        if isinstance(declared, str):
            return {declared}
        if isinstance(declared, list):
            return {str(t) for t in declared}
        if "$ref" in node:
            return self._types(self._target(node["$ref"]), depth + 1)
        return set()

    def _dispatch(
        self, prop: str, members: list[Any], translated: list[Any], where: str, owner: str
    ) -> dict[str, Any]:
        """Select members by the discriminator value instead of counting matches."""
        tags = [self._tag(m, prop, f"{where}/{i}", owner) for i, m in enumerate(members)]
        by_value: dict[str, list[Any]] = {}
        for i, (tag, schema) in enumerate(zip(tags, translated, strict=True)):
            for value in sorted(tag.values):
                narrowed = self._narrow(members[i], schema, prop, value, f"{where}/{i}", owner)
                by_value.setdefault(value, []).extend(narrowed)

        def either(schemas: list[Any]) -> Any:
            return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}

        wild = [s for t, s in zip(tags, translated, strict=True) if t.wildcard]
        nullable = [s for t, s in zip(tags, translated, strict=True) if t.nullable]
        optional = [s for t, s in zip(tags, translated, strict=True) if t.optional]
        known: list[Any] = sorted(by_value) + ([None] if nullable else [])
        # A switch written with if/then/else, so that an item is checked against its own
        # member(s) only and no allOf is introduced (which keeps the strict variant simple).
        # Known values are found by halving the value list, so an item costs a few cheap
        # conditions, not one per member (an array of items pays this for every item).
        if wild:
            fallback: Any = either(wild)
        else:
            # An unknown value gets one violation that lists the allowed ones.
            fallback = {"properties": {prop: {"enum": known}}}

        def switch(values: list[str]) -> Any:
            if len(values) == 1:
                return either(by_value[values[0]] + wild)
            half = len(values) // 2
            left = values[:half]
            # const for a single value: each condition is checked for every item of an array
            test = {"const": left[0]} if len(left) == 1 else {"enum": left}
            return {
                "if": {"properties": {prop: test}},
                "then": switch(left),
                "else": switch(values[half:]),
            }

        if not optional and not wild:
            # A missing discriminator and an unknown value fall through to the same place,
            # which names whichever it is: one condition fewer for every item.
            fallback = {"required": [prop], **fallback}
        out: dict[str, Any] = fallback
        if by_value:
            values = sorted(by_value)
            out = {
                "if": {"properties": {prop: {"enum": values}}, "required": [prop]},
                "then": switch(values),
                "else": fallback,
            }
        if nullable:
            out = {
                "if": {"properties": {prop: {"type": "null"}}, "required": [prop]},
                "then": either(nullable),
                "else": out,
            }
        if optional or wild:
            out = {
                "if": {"not": {"required": [prop]}},
                "then": either(optional) if optional else {"required": [prop]},
                "else": out,
            }
        member_types = set().union(*(self._types(m) for m in members))
        if member_types == {"object"} or all(self._types(m) == {"object"} for m in members):
            out["type"] = "object"
        return out

    def _narrow(
        self, member: Any, translated: Any, prop: str, value: str, where: str, owner: str
    ) -> list[Any]:
        """The schema(s) a member stands for when the discriminator is ``value``.

        A member that is itself a union on the same property (``InputItem`` -> ``Item``) is
        replaced by its own members for that value, so an item is dispatched once, not once
        per level of nesting: validating a long ``input`` costs half as much.
        """
        validating = _SCHEMA_KEYS | _SCHEMA_LIST_KEYS | _SCHEMA_MAP_KEYS | _VALUE_KEYS | {"$ref"}

        def bare(node: dict[str, Any], *allowed: str) -> bool:
            # Nothing but prose, ``type: object`` (every member is one) and ``allowed``.
            return all(
                k not in validating or k in allowed or (k == "type" and node[k] == "object")
                for k in node
            )

        target = member
        if isinstance(member, dict) and "$ref" in member and bare(member, "$ref"):
            target = self._target(member["$ref"])
        if not isinstance(target, dict) or not isinstance(target.get("oneOf"), list):
            return [translated]
        disc = target.get("discriminator")
        if not isinstance(disc, dict) or disc.get("propertyName") != prop:
            return [translated]
        if not bare(target, "oneOf"):  # another keyword would be lost with the union
            return [translated]
        out: list[Any] = []
        for j, sub in enumerate(target["oneOf"]):
            tag = self._tag(sub, prop, f"{where}/oneOf/{j}", owner)
            if value in tag.values or tag.wildcard:
                schema = self.schema(sub, f"{where}/oneOf/{j}", owner)
                out += self._narrow(sub, schema, prop, value, f"{where}/oneOf/{j}", owner)
        return out or [translated]

    def _tag(self, member: Any, prop: str, where: str, owner: str, depth: int = 0) -> _Tag:
        if depth > 20 or not isinstance(member, dict):
            return _Tag(frozenset(), True, False, True)
        if "$recursiveRef" in member:
            member = self._component(owner)
        if "oneOf" in member and "discriminator" in member:
            tags = [self._tag(m, prop, where, owner, depth + 1) for m in member["oneOf"]]
            return _Tag(
                frozenset().union(*(t.values for t in tags)),
                any(t.optional for t in tags),
                any(t.nullable for t in tags),
                any(t.wildcard for t in tags),
            )
        properties = member.get("properties")
        if isinstance(properties, dict) and prop in properties:
            values, nullable, wildcard = self._values(properties[prop], depth)
            required = member.get("required")
            optional = not (isinstance(required, list) and prop in required)
            return _Tag(frozenset(values), optional, nullable, wildcard)
        for part in member.get("allOf", []):
            tag = self._tag(part, prop, where, owner, depth + 1)
            if tag.values or tag.nullable:
                return tag
        if "$ref" in member:
            return self._tag(self._target(member["$ref"]), prop, where, owner, depth + 1)
        raise SpecError(
            f"{self.spec.source}: discriminated member at {where} does not declare '{prop}'"
        )

    def _values(self, node: Any, depth: int) -> tuple[set[str], bool, bool]:
        """(string values, accepts null, accepts any string) of a discriminator property."""
        if not isinstance(node, dict) or depth > 20:
            return set(), False, True
        if "$ref" in node:
            return self._values(self._target(node["$ref"]), depth + 1)
        if "const" in node:
            const = node["const"]
            return ({const} if isinstance(const, str) else set()), const is None, False
        if isinstance(node.get("enum"), list):
            enum = node["enum"]
            return {v for v in enum if isinstance(v, str)}, None in enum, False
        branches = node.get("anyOf") or node.get("oneOf")
        if isinstance(branches, list):
            values: set[str] = set()
            nullable = wildcard = False
            for branch in branches:
                if isinstance(branch, dict) and branch.get("type") == "null":
                    nullable = True
                    continue
                v, n, w = self._values(branch, depth + 1)
                values |= v
                nullable |= n
                wildcard |= w
            return values, nullable, wildcard
        return set(), node.get("type") == "null", node.get("type") != "null"


def _document(root: str, defs: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": DIALECT, "$ref": f"#/$defs/{root}", "$defs": defs}


def translate(
    spec: Spec, root: str, nullable: dict[str, str] | None = None
) -> tuple[dict[str, Any], list[Defect]]:
    """The standalone document of ``root`` (its closure in ``$defs``) and the defects met.

    ``nullable``: the property locations the spec's own examples give null (see ``_examples``).
    """
    translator = Translator(spec, nullable=nullable or {})
    try:
        defs = translator.closure(root)
    except RecursionError:
        raise SpecError(f"{spec.source}: schema {root!r} nests too deeply to translate") from None
    return _document(root, defs), list(translator.defects)


def check_document(document: dict[str, Any], filename: str, spec: Spec) -> None:
    """Refuse output no validator could use: the spec holds a value of the wrong shape."""
    import jsonschema_rs

    try:
        json.dumps(document)
        jsonschema_rs.meta.validate(document)
        jsonschema_rs.validator_for(document, validate_formats=False)
    except jsonschema_rs.ValidationError as exc:
        where = "/".join(str(p) for p in exc.instance_path)
        message = exc.message if len(exc.message) <= 200 else exc.message[:197] + "..."
        raise SpecError(
            f"{spec.source}: derived {filename} is not a valid JSON Schema at {where}: {message}"
        ) from None
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{spec.source}: derived {filename} cannot be used: {exc}") from None


def union_values(spec: Spec, name: str) -> list[str]:
    """The discriminator values of a discriminated union in the spec (sorted; [] if absent)."""
    node = spec.schemas.get(name)
    if not isinstance(node, dict):
        return []
    members = node.get("oneOf") or node.get("anyOf")
    disc = node.get("discriminator")
    prop = disc.get("propertyName") if isinstance(disc, dict) else None
    if not isinstance(members, list) or not isinstance(prop, str):
        return []
    translator = Translator(spec)
    values: set[str] = set()
    for i, member in enumerate(members):
        values |= translator._tag(member, prop, f"{name}/{i}", name).values
    return sorted(values)


def iter_schema_nodes(node: Any) -> Iterable[dict[str, Any]]:
    """Every schema object inside a derived document (used by tooling and tests)."""
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key in _SCHEMA_KEYS:
                yield from iter_schema_nodes(value)
            elif key in _SCHEMA_LIST_KEYS:
                for v in value:
                    yield from iter_schema_nodes(v)
            elif key in _SCHEMA_MAP_KEYS or key == "$defs":
                for v in value.values():
                    yield from iter_schema_nodes(v)
