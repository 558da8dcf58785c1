"""Derive standalone JSON Schema 2020-12 documents for /responses/compact from an OpenAPI spec.

Also, when the spec has it, for ``POST /responses`` (server-side compaction): the request, the
response object and one stream event, in ``responses.*.schema.json``.

The output keeps structure only (no prose, examples or ``x-*`` extensions), resolves
discriminated ``oneOf`` (and ``anyOf``) by the discriminator, and records every spec defect it
works around in the manifest. The same spec always gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import write_atomic
from .._errors import CompactionError, SpecError
from ._examples import null_in_examples
from ._overlay import Overlay, apply_overlay, load_overlay
from ._passback import Addition, item_unions, passed_back
from ._spec import SCHEMA_PREFIX, Spec, load_spec
from ._strict import closed

GENERATOR_VERSION = "5"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILES = ("request.schema.json", "response.schema.json", "error.schema.json")
# POST /responses, the operation that compacts server-side (``context_management``): its
# request, its response object and its stream events. Absent when the spec has no such operation.
RESPONSES_PATH = "/responses"
RESPONSES_FILES = (
    "responses.request.schema.json",
    "responses.response.schema.json",
    "responses.event.schema.json",
)
# POST /responses/compact?beta=true (``client.beta.responses.compact()``): the beta request and
# answer, whose items include the multi-agent ones. Absent when the spec has no beta route.
BETA_COMPACT_PATH = "/responses/compact?beta=true"
BETA_FILES = ("beta.request.schema.json", "beta.response.schema.json")
# The item unions whose ``type`` values the manifest lists (compaction items among them).
_ITEM_UNIONS = {"input_item_types": "InputItem", "output_item_types": "OutputItem"}


def strict_name(filename: str) -> str:
    """``request.schema.json`` -> ``request.strict.schema.json`` (see ``_strict``)."""
    return filename.replace(".schema.json", ".strict.schema.json")


# Formats the spec uses that JSON Schema does not define; registered with both validators.
CUSTOM_FORMATS = ("unixtime", "float")

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
        return {"kind": self.kind, "location": self.location, "detail": self.detail}


@dataclass(frozen=True)
class _Tag:
    """What a ``oneOf`` member says about the discriminator property."""

    values: frozenset[str]
    optional: bool  # the member does not require the property
    nullable: bool  # the member accepts null for it
    wildcard: bool  # the member accepts any string


@dataclass
class _Translator:
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


@dataclass(frozen=True)
class Derived:
    """The documents derived from one spec, ready to write."""

    name: str
    files: dict[str, bytes]


def _document(root: str, defs: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": DIALECT, "$ref": f"#/$defs/{root}", "$defs": defs}


def _dump(document: Any) -> bytes:
    return (json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _schema_name(ref: Any, where: str, spec: Spec) -> str:
    if not isinstance(ref, str) or not ref.startswith(SCHEMA_PREFIX):
        raise SpecError(f"{spec.source}: expected a schema reference at {where}, got {ref!r}")
    return ref[len(SCHEMA_PREFIX) :]


def _json_schema_ref(container: Any, where: str, spec: Spec) -> str:
    try:
        ref = container["content"]["application/json"]["schema"]["$ref"]
    except (KeyError, TypeError):
        raise SpecError(f"{spec.source}: no application/json schema reference at {where}") from None
    return _schema_name(ref, where, spec)


def _responses(spec: Spec, operation: dict[str, Any]) -> dict[str, Any]:
    """The operation's responses by status; YAML reads an unquoted ``200:`` as a number."""
    responses = operation.get("responses", {})
    if not isinstance(responses, dict):
        where = "paths['/responses/compact'].post.responses"
        raise SpecError(f"{spec.source}: {where} must be an object")
    return {str(status): response for status, response in responses.items()}


def _error_responses(spec: Spec, operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The error body schema name and the declared non-2xx responses (status -> headers)."""
    declared: dict[str, Any] = {}
    name = "ErrorResponse"
    for status, response in sorted(_responses(spec, operation).items()):
        if status.startswith("2"):
            continue
        where = f"paths['/responses/compact'].post.responses.{status}"
        if isinstance(response, dict) and "$ref" in response:
            if not isinstance(response["$ref"], str):
                raise SpecError(f"{spec.source}: unsupported reference at {where}")
            _, response = spec.resolve_component(response["$ref"])
        name = _json_schema_ref(response, where, spec)
        headers = {}
        declared_headers = response.get("headers") or {}
        if not isinstance(declared_headers, dict):
            raise SpecError(f"{spec.source}: {where}.headers must be an object")
        for header, definition in sorted(declared_headers.items()):
            if not isinstance(definition, dict):
                raise SpecError(f"{spec.source}: {where}.headers.{header} must be an object")
            translated = _Translator(spec).schema(definition.get("schema", {}), header, header)
            headers[header] = {"required": bool(definition.get("required")), "schema": translated}
        declared[str(status)] = {"headers": headers}
    if name not in spec.schemas:
        raise SpecError(f"{spec.source}: no error body schema {name!r}")
    return name, declared


def _check(document: dict[str, Any], filename: str, spec: Spec) -> None:
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


def _translate(
    spec: Spec,
    filename: str,
    root: str,
    files: dict[str, bytes],
    defects: dict[Any, Defect],
    nullable: dict[str, str],
    assembled: bool = False,
    additions: Sequence[Addition] = (),
) -> None:
    """The open and strict documents of ``root`` into ``files``; its defects into ``defects``.

    ``additions``: the passed-back properties (see ``_passback``); those of the definitions this
    closure holds are its defects too.
    """
    translator = _Translator(spec, nullable=nullable)
    try:
        defs = translator.closure(root)
    except RecursionError:
        raise SpecError(f"{spec.source}: schema {root!r} nests too deeply to translate") from None
    document = _document(root, defs)
    _check(document, filename, spec)
    files[filename] = _dump(document)
    files[strict_name(filename)] = _dump(closed(document, assembled=assembled))
    found = list(translator.defects)
    found += [
        Defect("passed-back-item", a.location, a.detail)
        for a in additions
        if a.input_member in defs
    ]
    for defect in found:
        defects[(defect.kind, defect.location, defect.detail)] = defect


def _operation_at(spec: Spec, path: str) -> dict[str, Any] | None:
    """The POST operation at ``path``, None when the spec has none."""
    paths = spec.document.get("paths")
    item = paths.get(path) if isinstance(paths, dict) else None
    operation = item.get("post") if isinstance(item, dict) else None
    return operation if isinstance(operation, dict) else None


def _event_schema_ref(ok: Any, where: str, spec: Spec) -> str:
    try:
        ref = ok["content"]["text/event-stream"]["schema"]["$ref"]
    except (KeyError, TypeError):
        raise SpecError(
            f"{spec.source}: no text/event-stream schema reference at {where}"
        ) from None
    return _schema_name(ref, where, spec)


def _union_values(spec: Spec, name: str) -> list[str]:
    """The discriminator values of a discriminated union in the spec (sorted; [] if absent)."""
    node = spec.schemas.get(name)
    if not isinstance(node, dict):
        return []
    members = node.get("oneOf") or node.get("anyOf")
    disc = node.get("discriminator")
    prop = disc.get("propertyName") if isinstance(disc, dict) else None
    if not isinstance(members, list) or not isinstance(prop, str):
        return []
    translator = _Translator(spec)
    values: set[str] = set()
    for i, member in enumerate(members):
        values |= translator._tag(member, prop, f"{name}/{i}", name).values
    return sorted(values)


@dataclass(frozen=True)
class _Roots:
    """The schema names an operation's bodies start from."""

    request: str
    response: str
    event: str | None = None  # a stream's event union (POST /responses only)


def _roots(spec: Spec, path: str, operation: dict[str, Any], stream: bool = False) -> _Roots:
    where = f"paths['{path}'].post"
    request = _json_schema_ref(operation.get("requestBody"), f"{where}.requestBody", spec)
    ok = _responses(spec, operation).get("200")
    response = _json_schema_ref(ok, f"{where}.responses.200", spec)
    event = _event_schema_ref(ok, f"{where}.responses.200", spec) if stream else None
    return _Roots(request, response, event)


def _item_types(spec: Spec, request: str, response: str) -> dict[str, list[str]]:
    """The ``type`` values of an operation's input and output item unions, for the manifest."""
    schemas = spec.schemas
    inputs = item_unions(schemas, request, "input")
    outputs = item_unions(schemas, response, "output")
    return {
        "input_item_types": sorted({v for u in inputs for v in _union_values(spec, u)}),
        "output_item_types": sorted({v for u in outputs for v in _union_values(spec, u)}),
    }


def _overlaid(spec: Spec, overlays: Sequence[Overlay]) -> Spec:
    document = spec.document
    for overlay in overlays:
        document = apply_overlay(document, overlay)
    return Spec(spec.source, spec.sha256, document) if overlays else spec


def derive(spec: Spec, name: str, overlays: Sequence[Overlay] = ()) -> Derived:
    """Derive the schemas of every operation the spec has (see the module docstring).

    ``overlays`` (OpenAPI Overlay 1.0, see ``_overlay``) are applied to the spec first, in
    order; the manifest records each one and the evidence of each of its actions.
    """
    spec = _overlaid(spec, overlays)
    operation = spec.compact_operation()
    compact = _roots(spec, "/responses/compact", operation)
    error_root, error_statuses = _error_responses(spec, operation)
    responses_operation = _operation_at(spec, RESPONSES_PATH)
    create = (
        _roots(spec, RESPONSES_PATH, responses_operation, stream=True)
        if responses_operation is not None
        else None
    )
    beta_operation = _operation_at(spec, BETA_COMPACT_PATH)
    beta = _roots(spec, BETA_COMPACT_PATH, beta_operation) if beta_operation else None
    families = [
        (
            [compact.request, *([create.request] if create else [])],
            [compact.response, *([create.response] if create else [])],
        )
    ]
    if beta is not None:
        families.append(([beta.request], [beta.response]))
    spec, additions = passed_back(spec, families)

    files: dict[str, bytes] = {}
    defects: dict[Any, Defect] = {}
    nullable = null_in_examples(spec)
    roots = (compact.request, compact.response, error_root)
    for filename, root in zip(SCHEMA_FILES, roots, strict=True):
        _translate(spec, filename, root, files, defects, nullable, additions=additions)
    # Listed apart, so that the compaction operation's defects stay what they were.
    responses: dict[str, Any] | None = None
    if create is not None and create.event is not None and responses_operation is not None:
        responses_defects: dict[Any, Defect] = {}
        create_roots = (create.request, create.response, create.event)
        for filename, root in zip(RESPONSES_FILES, create_roots, strict=True):
            _translate(spec, filename, root, files, responses_defects, nullable, True, additions)
        responses = {
            "path": RESPONSES_PATH,
            "method": "post",
            "operationId": responses_operation.get("operationId"),
            "request": create.request,
            "response": create.response,
            "event": create.event,
            "event_types": _union_values(spec, create.event),
            **{key: _union_values(spec, union) for key, union in sorted(_ITEM_UNIONS.items())},
            "defects": [d.as_dict() for _, d in sorted(responses_defects.items())],
        }
    beta_manifest: dict[str, Any] | None = None
    if beta is not None and beta_operation is not None:
        beta_defects: dict[Any, Defect] = {}
        for filename, root in zip(BETA_FILES, (beta.request, beta.response), strict=True):
            _translate(spec, filename, root, files, beta_defects, nullable, additions=additions)
        beta_manifest = {
            "path": BETA_COMPACT_PATH,
            "method": "post",
            "operationId": beta_operation.get("operationId"),
            "request": beta.request,
            "response": beta.response,
            **_item_types(spec, beta.request, beta.response),
            "defects": [d.as_dict() for _, d in sorted(beta_defects.items())],
        }
    manifest: dict[str, Any] = {
        "name": name,
        "generator_version": GENERATOR_VERSION,
        "source": {"file": Path(spec.source).name, "sha256": spec.sha256},
        "info_version": spec.info_version,
        "operation": {
            "path": "/responses/compact",
            "method": "post",
            "operationId": operation.get("operationId"),
            "request": compact.request,
            "response": compact.response,
            "error": error_root,
            "error_statuses": error_statuses,
        },
        "responses": responses,
        "beta": beta_manifest,
        "custom_formats": list(CUSTOM_FORMATS),
        "defects": [d.as_dict() for _, d in sorted(defects.items())],
    }
    if overlays:
        manifest["overlays"] = [o.record() for o in overlays]
        covered = [o.evidence for o in overlays if o.evidence is not None]
        if covered:
            manifest["covers"] = covered[-1]
    manifest["files"] = {f: hashlib.sha256(b).hexdigest() for f, b in sorted(files.items())}
    files["manifest.json"] = _dump(manifest)
    return Derived(name=name, files=files)


def default_name(spec_path: str | Path, overlays: Sequence[Overlay] = ()) -> str:
    """``2026-08-21_f85dbe223d40_openapi.yaml`` -> ``2026-08-21_f85dbe223d40``.

    With overlays, the newest evidence names it (``2026-11-19_openai-3.57.0``) when the overlay
    says when its evidence was released; else the spec's name and the overlays' file stems.
    """
    stem = Path(spec_path).name.split(".")[0].removesuffix("_openapi")
    covered = [o.evidence for o in overlays if o.evidence is not None]
    if covered and covered[-1].get("released") and covered[-1].get("package"):
        evidence = covered[-1]
        return f"{evidence['released']}_{evidence['package']}-{evidence['version']}"
    return "+".join([stem, *(Path(o.source).name.split(".")[0] for o in overlays)])


def derive_to(
    spec_path: str | Path,
    out_dir: str | Path,
    name: str | None = None,
    overlays: Sequence[str | Path] = (),
) -> Path:
    """Load a spec (and overlays), derive its schemas and write them to ``out_dir/name``."""
    spec = load_spec(spec_path)
    loaded = [load_overlay(path) for path in overlays]
    derived = derive(spec, name or default_name(spec_path, loaded), loaded)
    target = Path(out_dir) / derived.name
    for filename, data in derived.files.items():
        try:
            write_atomic(target / filename, data)
        except OSError as exc:
            raise CompactionError(
                f"cannot write {target / filename}: {exc.strerror or exc}"
            ) from None
    return target


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
