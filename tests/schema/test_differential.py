"""Differential test: our verdicts against an independent reading of the spec.

Bodies come from two sources: hypothesis, generating from the derived schemas in
``schemas/<version>/`` (leaf values through hypothesis-jsonschema), and seeds (compaction
bodies recorded from the live API, reported error bodies, and items that carry the spec's
defects). Each is judged as is and through mutants: a (required) property dropped, a wrong
type, an unknown item ``type``, another item's ``type``, a bad enum value, an undocumented
property, ``null`` where none is allowed, a trailing newline, a body that is not an object;
at any depth, nested items included. Each body gets three verdicts:

- ours: ``pytest_compaction.validate`` (the jsonschema-rs path) and the ``python`` backend;
- the reference: the pure-Python ``jsonschema`` library run on the closure of the spec's own
  schemas, built by ``tests/support/closure.py`` from the OpenAPI file with nothing of our
  derivation (every ``oneOf`` read as ``anyOf``, ``$recursiveRef`` made a ``$ref``).

Formats are annotations on every side: JSON Schema 2020-12 does not assert ``format`` by
default, the spec's custom ``unixtime``/``float`` are unknown to ``jsonschema``'s checker,
and asserting only ``uri`` on the reference would test the checker, not the contract.

Every disagreement must fall under one of ``DIFFERENCES``: each comes with a function that
changes the reference in exactly the way the difference describes, and the disagreement is
classified under it only when the changed reference gives our verdict. Anything else fails
(for generated bodies, with the body hypothesis shrank to), and so does any body on which
our two backends disagree. Run with ``-s`` to see the counts.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import REFERENCE, compaction_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from support.closure import (
    PREFIX,
    SpecFile,
    closure_document,
    closure_names,
    compact_roots,
    overlaid,
    read_spec,
    rewrite,
    undefined_required,
)

from pytest_compaction import get_validator, validate
from pytest_compaction.schema._versions import (
    Kind,
    load_schema_set,
    newest_version,
    resolve_version,
)

SPECS = REFERENCE / "openai-openapi"
OVERLAYS = Path(__file__).resolve().parents[2] / "schemas" / "overlays"
VERSIONS = ("2026-05-13", "newest")
KINDS = ("request", "response", "error")
# Hypothesis examples per test; each generated body is judged with MUTANTS mutants of it,
# each seed with two mutants per kind of mutation, plus the sweep. MINIMUM is the number of
# distinct bodies each test must have judged: at least 2 x (450 + 500 + 80) in the file.
EXAMPLES = {"request": 40, "response": 40, "error": 20}
MUTANTS = 2
MINIMUM = {"request": 450, "response": 500, "error": 80}
MAX_TEXT = 10
MAX_ITEMS = 3

# The spec's required-but-undefined properties, as read from the spec files (checked below).
UNDEFINED_REQUIRED = {
    ("LocalShellToolCallOutput", "call_id"),
    ("MCPApprovalResponse", "request_id"),
    ("MCPApprovalResponseResource", "request_id"),
}


# -- the reference -------------------------------------------------------------------------
@dataclass
class Reference:
    """The spec file of one version and jsonschema validators on its closures."""

    version: str
    spec: SpecFile
    roots: dict[str, str]
    # (input member, property, output member): the passed-back items the manifest lists
    passed_back: tuple[tuple[str, str, str], ...] = ()
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    _validators: dict[tuple[str, str], Any] = field(default_factory=dict)

    def validator(self, kind: str, variant: str = "") -> Any:
        key = (kind, variant)
        if key not in self._validators:
            document = self.documents[kind]
            if variant:
                document = VARIANTS[variant](deepcopy(document), self)
            jsonschema.Draft202012Validator.check_schema(document)
            self._validators[key] = jsonschema.Draft202012Validator(document)
        return self._validators[key]

    def valid(self, kind: str, body: Any, variant: str = "") -> bool:
        return bool(self.validator(kind, variant).is_valid(body))


@cache
def reference(version: str) -> Reference:
    manifest = load_schema_set(version).manifest
    path = SPECS / manifest["source"]["file"]
    spec = read_spec(path)
    assert spec.sha256 == manifest["source"]["sha256"], f"{path} is not the spec {version} names"
    for entry in manifest.get("overlays", []):  # a version newer than its spec file
        overlay = OVERLAYS / entry["file"]
        assert hashlib.sha256(overlay.read_bytes()).hexdigest() == entry["sha256"], overlay
        spec = overlaid(spec, overlay)
    roots = compact_roots(spec)
    ref = Reference(version, spec, roots, passed_back=passed_back_items(manifest))
    for kind, root in roots.items():
        ref.documents[kind] = closure_document(spec, root)
    return ref


def _schemas(document: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = document["components"]["schemas"]
    return schemas


_PASSED_BACK = re.compile(r"^'(?P<prop>[^']+)' of the (?P<twin>\w+) output item ")


def passed_back_items(manifest: dict[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """(input member, property, output member) of each ``passed-back-item`` defect listed."""
    found = []
    for defect in manifest["defects"]:
        if defect["kind"] == "passed-back-item":
            member, _, prop = defect["location"].partition("/properties/")
            match = _PASSED_BACK.match(defect["detail"])
            assert match is not None and match["prop"] == prop, defect
            found.append((member, prop, match["twin"]))
    return tuple(found)


def _own_parts(spec: SpecFile, name: str) -> list[dict[str, Any]]:
    """A component and the components its ``allOf`` names, in order (the spec's own text)."""
    schema = spec.schemas[name]
    parts = [schema]
    for part in schema.get("allOf", []):
        ref = part.get("$ref", "")
        parts.extend(_own_parts(spec, ref.removeprefix(PREFIX)) if ref else [part])
    return parts


def declared(spec: SpecFile, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in _own_parts(spec, name):
        for key, value in part.get("properties", {}).items():
            out.setdefault(key, value)
    return out


def required(spec: SpecFile, name: str) -> set[str]:
    return {p for part in _own_parts(spec, name) for p in part.get("required", [])}


def type_values(spec: SpecFile, name: str) -> set[str]:
    node = declared(spec, name).get("type", {})
    values = node.get("enum", [node["const"]] if "const" in node else [])
    return {v for v in values if isinstance(v, str)}


def _accept_passed_back(document: dict[str, Any], ref: Reference) -> dict[str, Any]:
    """An input item may carry what the output item of its ``type`` has, as it was returned
    (``null`` where the output does not require it): the property, with the output's schema."""
    schemas = _schemas(document)
    for member, prop, twin in ref.passed_back:
        if member not in schemas:
            continue  # not in this kind's closure
        schema = rewrite(declared(ref.spec, twin)[prop], None)
        if prop not in required(ref.spec, twin):
            schema = {"anyOf": [schema, {"type": "null"}]}
        schemas[member].setdefault("properties", {})[prop] = schema
        for name in closure_names(ref.spec, twin):
            anchored = ref.spec.schemas[name].get("$recursiveAnchor") is True
            schemas.setdefault(name, rewrite(ref.spec.schemas[name], name if anchored else None))
    return document


def _keep_defined_required(document: dict[str, Any], ref: Reference) -> dict[str, Any]:
    """Our derivation drops ``required`` entries that name no declared property."""
    schemas = _schemas(document)
    for name, prop in UNDEFINED_REQUIRED:
        if name in schemas:
            schema = schemas[name]
            schema["required"] = [p for p in schema["required"] if p != prop]
    return document


def _ecma_end_anchor(document: dict[str, Any], ref: Reference) -> dict[str, Any]:
    """JSON Schema regexes are ECMA-262: ``$`` is the end of the string, never before a
    final newline as in Python's ``re``; ``\\Z`` says that to Python."""

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            pattern = node.get("pattern")
            if isinstance(pattern, str) and pattern.endswith("$") and not pattern.endswith("\\$"):
                node["pattern"] = pattern[:-1] + r"\Z"
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(document)
    return document


# -- intended differences --------------------------------------------------------------------
@dataclass(frozen=True)
class Difference:
    """A way our verdict differs from the literal spec on purpose, and the change to the
    reference that makes the reference say what we say."""

    name: str
    why: str
    change: Callable[[dict[str, Any], Reference], dict[str, Any]]


DIFFERENCES = (
    Difference(
        "required-undefined",
        "the spec requires properties it never defines (mcp_approval_response.request_id, "
        "local_shell_call_output.call_id); our derivation drops those entries (and lists them "
        "in the manifest), so such an item is valid for us and invalid for the raw spec",
        _keep_defined_required,
    ),
    Difference(
        "regex-dialect",
        "JSON Schema patterns are ECMA-262, where `$` ends the string; the reference runs "
        "Python's `re`, where `$` also matches before a final newline, so a tool name ending "
        "in a newline passes `^[a-zA-Z0-9_-]+$` there and fails with jsonschema-rs",
        _ecma_end_anchor,
    ),
    Difference(
        "passed-back-item",
        "the contract has clients pass output items back as input as returned, and the SDKs "
        "do, but the spec's input items lack properties their output twins carry "
        "(EasyInputMessage has no `id`); our derivation declares them with the output's schema "
        "(and null where the output does not require them), so a passed-back `id` of the "
        "wrong type is invalid for us and undocumented, hence valid, for the raw spec",
        _accept_passed_back,
    ),
)


def _all_differences(document: dict[str, Any], ref: Reference) -> dict[str, Any]:
    for difference in DIFFERENCES:
        document = difference.change(document, ref)
    return document


VARIANTS: dict[str, Callable[[dict[str, Any], Reference], dict[str, Any]]] = {
    **{d.name: d.change for d in DIFFERENCES},
    "+".join(d.name for d in DIFFERENCES): _all_differences,
}


def classify(ref: Reference, kind: str, body: Any, ours: bool) -> str | None:
    """The listed difference(s) that account for ``ours`` differing from the reference.

    A difference explains the disagreement when the reference, changed in just the way the
    difference describes, gives our verdict. Single differences first, then all together.
    """
    for variant in VARIANTS:
        if ref.valid(kind, body, variant) == ours:
            return variant
    return None


# -- payloads from the derived schemas ------------------------------------------------------
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=MAX_TEXT),
)
_ANY = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=5), inner, max_size=2)
    ),
    max_leaves=4,
)
_NESTED = (
    "$ref",
    "properties",
    "additionalProperties",
    "items",
    "prefixItems",
    "anyOf",
    "oneOf",
    "allOf",
    "if",
    "not",
)


def _bounded(node: Any) -> Any:
    """A leaf schema with small strings and arrays, so the reference stays quick."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key in ("anyOf", "oneOf"):
        if key in out:
            out[key] = [_bounded(member) for member in out[key]]
    free = not {"enum", "const", "pattern", "format"} & set(out)
    if free and (out.get("type") == "string" or "maxLength" in out):
        low = out.get("minLength", 0)
        out["maxLength"] = min(out.get("maxLength", MAX_TEXT), max(low, MAX_TEXT))
    if out.get("type") == "array" or "maxItems" in out:
        low = out.get("minItems", 0)
        out["maxItems"] = min(out.get("maxItems", MAX_ITEMS), max(low, MAX_ITEMS))
    return out


def _merge(parts: list[Any]) -> Any:
    merged: dict[str, Any] = {}
    for part in parts:
        if not isinstance(part, dict):
            return part
        merged.update(part)
    return merged


class Generator:
    """Hypothesis strategies for the bodies a derived schema describes.

    Objects, arrays and unions are composed here; each leaf schema (strings, numbers, enums
    and unions of them) goes to hypothesis-jsonschema. Discriminated unions (derived as
    ``if``/``then`` chains) yield each member; objects are generated closed (undocumented
    properties are a mutation); a recursive schema is cut after two levels.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self.defs: dict[str, Any] = document["$defs"]
        self.root = document["$ref"].rsplit("/", 1)[-1]
        self.recursive = {n for n in self.defs if n in self._reach(n)}
        self._refs: dict[str, st.SearchStrategy[Any]] = {}
        self._leaves: dict[str, st.SearchStrategy[Any]] = {}

    def _reach(self, name: str) -> set[str]:
        seen: set[str] = set()
        pending = list(_refs_in(self.defs[name]))
        while pending:
            other = pending.pop()
            if other not in seen:
                seen.add(other)
                pending.extend(_refs_in(self.defs[other]))
        return seen

    def strategy(self) -> st.SearchStrategy[Any]:
        return self.of(self.defs[self.root], (self.root,))

    def of(self, node: Any, stack: tuple[str, ...]) -> st.SearchStrategy[Any]:
        if node is True or node == {}:
            return _ANY
        if not isinstance(node, dict):
            return st.nothing()
        if "if" in node:
            return st.one_of([self.of(m, stack) for m in _members(node)])
        if "$ref" in node:
            return self.ref(node["$ref"].rsplit("/", 1)[-1], stack)
        if "allOf" in node:
            parts = [self.of(p, stack) for p in node["allOf"]]
            rest = {k: v for k, v in node.items() if k != "allOf"}
            if rest.keys() - {"type"}:
                parts.append(self.of(rest, stack))
            return st.tuples(*parts).map(lambda drawn: _merge(list(drawn)))
        if "anyOf" in node or "oneOf" in node:
            members: list[Any] = node["anyOf"] if "anyOf" in node else node["oneOf"]
            if all(_scalar(m) for m in members):
                return self.leaf(node)
            return st.one_of([self.of(m, stack) for m in members])
        if "properties" in node or node.get("type") == "object":
            return self.object(node, stack)
        if "items" in node or node.get("type") == "array":
            low = node.get("minItems", 0)
            high = min(node.get("maxItems", MAX_ITEMS), max(low, MAX_ITEMS))
            return st.lists(self.of(node.get("items", {}), stack), min_size=low, max_size=high)
        return self.leaf(node) if _scalar(node) else _ANY

    def ref(self, name: str, stack: tuple[str, ...]) -> st.SearchStrategy[Any]:
        if name in self.recursive:
            if stack.count(name) >= 2:
                return st.nothing()
            return self.of(self.defs[name], (*stack, name))
        if name not in self._refs:
            self._refs[name] = st.deferred(lambda: self.of(self.defs[name], (*stack, name)))
        return self._refs[name]

    def object(self, node: dict[str, Any], stack: tuple[str, ...]) -> st.SearchStrategy[Any]:
        properties = node.get("properties", {})
        required = [p for p in node.get("required", []) if p in properties]
        values = {p: self.of(s, stack) for p, s in properties.items()}
        shape = st.fixed_dictionaries(
            {p: values[p] for p in required},
            optional={p: v for p, v in values.items() if p not in required},
        )
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) or (extra is None and not properties):
            names = _bounded({"type": "string", **node.get("propertyNames", {})})
            room = min(node.get("maxProperties", 2), 2)
            extras = st.dictionaries(
                self.leaf(names).filter(lambda k: k not in properties),
                self.of(extra if isinstance(extra, dict) else {}, stack),
                max_size=room,
            )
            return st.tuples(shape, extras).map(lambda d: {**d[1], **d[0]})
        return shape

    def leaf(self, node: dict[str, Any]) -> st.SearchStrategy[Any]:
        schema = _bounded(node)
        key = json.dumps(schema, sort_keys=True)
        if key not in self._leaves:
            self._leaves[key] = from_schema(schema)
        return self._leaves[key]


def _refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs_in(value)


def _scalar(node: Any) -> bool:
    """A schema for strings, numbers, booleans or null only: hypothesis-jsonschema's part."""
    if not isinstance(node, dict) or any(k in node for k in _NESTED):
        return False
    if "enum" in node or "const" in node:
        return True
    declared = node.get("type")
    kinds = declared if isinstance(declared, list) else [declared]
    return None not in kinds and not {"object", "array"} & set(kinds)


def _members(node: Any) -> Iterator[Any]:
    """The member schemas of a discriminator switch (no case conditions, no fallback)."""
    if isinstance(node, dict) and "if" in node:
        then = node["then"]
        if not (isinstance(then, dict) and set(then) == {"required"}):
            yield from _members(then)
        fallback = node.get("else")
        if not (isinstance(fallback, dict) and set(fallback) == {"properties"}):
            yield from _members(fallback)
    elif node is not None:
        yield node


# -- mutations and seeds ---------------------------------------------------------------------
def _places(body: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, body
    if isinstance(body, dict):
        for key, value in body.items():
            yield from _places(value, (*path, key))
    elif isinstance(body, list):
        for index, value in enumerate(body):
            yield from _places(value, (*path, index))


def _replace(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = deepcopy(body)
    node = copy
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return copy


def _drop(body: Any, path: tuple[Any, ...]) -> Any:
    copy = deepcopy(body)
    node = copy
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return copy


def _json_type(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return repr(value)
    return type(value).__name__


@dataclass(frozen=True)
class Vocabulary:
    """What the derived schema names: mutations aim at these to hit real constraints."""

    item_types: tuple[str, ...]  # values of the ``type`` discriminators
    enum_values: frozenset[str]  # every string an enum or const allows
    required: frozenset[str]  # every property name some schema requires
    anchored: frozenset[str]  # property names whose pattern ends with ``$``

    @classmethod
    def of(cls, document: dict[str, Any]) -> Vocabulary:
        types: set[str] = set()
        enums: set[str] = set()
        required: set[str] = set()
        anchored: set[str] = set()

        def visit(node: Any, name: str = "") -> None:
            if isinstance(node, list):
                for value in node:
                    visit(value, name)
                return
            if not isinstance(node, dict):
                return
            allowed = node.get("enum", [node["const"]] if "const" in node else [])
            enums.update(v for v in allowed if isinstance(v, str))
            if name == "type":
                types.update(v for v in allowed if isinstance(v, str))
            if isinstance(node.get("pattern"), str) and node["pattern"].endswith("$"):
                anchored.add(name)
            required.update(p for p in node.get("required", []) if isinstance(p, str))
            for key, value in node.items():
                if key in ("properties", "patternProperties"):
                    for prop, sub in value.items():
                        visit(sub, prop)
                elif key == "if":
                    visit(value)
                else:
                    visit(value, name if key in ("anyOf", "oneOf", "allOf") else "")

        for schema in document["$defs"].values():
            visit(schema)
        return cls(tuple(sorted(types)), frozenset(enums), frozenset(required), frozenset(anchored))


MUTATIONS = (
    "drop-required",
    "wrong-type",
    "unknown-item-type",
    "bad-enum",
    "extra-property",
    "null",
    "other-item-type",
    "trailing-newline",
    "drop-property",
    "wrong-type-body",
)
_OTHER_TYPES: tuple[Any, ...] = (0, 1.5, "x", True, [], {})


def mutants(body: Any, words: Vocabulary, count: int) -> list[tuple[str, Any]]:
    """``count`` mutants of a body, a pure function of it (so any failure replays exactly).

    Each applies one mutation, rotating through ``MUTATIONS``, at a place chosen among all
    that fit, nested items included.
    """
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
    rng = random.Random(digest)
    places = list(_places(body))
    inner = [(p, v) for p, v in places if p]
    keyed = [(p, v) for p, v in inner if isinstance(p[-1], str)]
    strings = [(p, v) for p, v in inner if isinstance(v, str)]
    objects = [(p, v) for p, v in places if isinstance(v, dict)]
    items = [(p, v) for p, v in objects if isinstance(v.get("type"), str)]
    candidates: dict[str, list[tuple[tuple[Any, ...], Any]]] = {
        "drop-required": [(p, v) for p, v in keyed if p[-1] in words.required],
        "wrong-type": inner,
        "unknown-item-type": items,
        "bad-enum": [(p, v) for p, v in strings if v in words.enum_values],
        "extra-property": objects,
        "null": [(p, v) for p, v in keyed if v is not None],
        "other-item-type": items,
        "trailing-newline": [(p, v) for p, v in strings if p[-1] in words.anchored] or strings,
        "drop-property": keyed,
        "wrong-type-body": [((), body)],
    }
    usable = [m for m in MUTATIONS if candidates[m]]
    first = digest[0]
    out: list[tuple[str, Any]] = []
    for n in range(count):
        how = usable[(first + n) % len(usable)]
        path, value = rng.choice(candidates[how])
        if how in ("drop-required", "drop-property"):
            changed = _drop(body, path)
        elif how == "wrong-type":
            other = [v for v in _OTHER_TYPES if _json_type(v) != _json_type(value)]
            changed = _replace(body, path, rng.choice(other))
        elif how == "unknown-item-type":
            changed = _replace(body, path, {**value, "type": "no_such_type"})
        elif how == "other-item-type":
            others = [t for t in words.item_types if t != value["type"]] or ["no_such_type"]
            changed = _replace(body, path, {**value, "type": rng.choice(others)})
        elif how == "bad-enum":
            changed = _replace(body, path, value + "_x")
        elif how == "extra-property":
            changed = _replace(body, path, {**value, "undocumented": rng.choice(_OTHER_TYPES)})
        elif how == "null":
            changed = _replace(body, path, None)
        elif how == "trailing-newline":
            changed = _replace(body, path, value + "\n")
        else:
            changed = rng.choice([[body], "body", None, 1])
        out.append((how, changed))
    return out


_YAML: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _recorded(kind: str) -> Iterator[Any]:
    """Compaction bodies recorded from the live API, and error bodies users reported."""
    root = REFERENCE / "recorded"
    for path in sorted((root / "pydantic-ai-stock-vcrpy").glob("*.yaml")):
        for exchange in yaml.load(path.read_bytes(), Loader=_YAML)["interactions"]:
            if not exchange["request"]["uri"].endswith("/responses/compact"):
                continue
            status = exchange["response"]["status"]["code"]
            if kind == "request":
                yield json.loads(exchange["request"]["body"])
            elif kind == ("response" if status == 200 else "error"):
                yield json.loads(exchange["response"]["body"]["string"])
    if kind == "error":
        for path in sorted((root / "error-bodies").glob("*.json")):
            yield json.loads(path.read_text())


# a namespace of function tools: the tool names carry the spec's end-anchored pattern
NAMESPACE_TOOL = {
    "type": "namespace",
    "name": "billing",
    "description": "Billing tools",
    "tools": [{"type": "function", "name": "lookup_order"}],
}


@cache
def seeds(kind: str) -> list[Any]:
    """Valid bodies to mutate: recorded ones, plus items that carry the spec's defects."""
    out = list(_recorded(kind))
    defects: list[dict[str, Any]] = [
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": True},
        {"type": "local_shell_call_output", "id": "lsh_1", "output": "done"},
    ]
    if kind == "request":
        user = {"role": "user", "content": "Summarise our chat."}
        tools = [
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": "42",
                "namespace": "billing",
            },
            {"type": "tool_search_output", "tools": [NAMESPACE_TOOL]},
        ]
        out.append({"model": "gpt-5.4", "input": [user, *defects]})
        out.append({"model": "gpt-5.4", "input": [user, *tools]})
    elif kind == "response":
        body = compaction_body({"input": [{"role": "user", "content": "hi"}]}, 1)
        out.append(body)
        out.append({**body, "output": [{**defects[0], "id": "mcpr_2"}, defects[1]]})
    else:
        message = "Unsupported parameter: 'temperature'."
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
        out.append({"error": error})
    return out


# -- a sweep: every item type, broken one property at a time --------------------------------
Shape = tuple[tuple[Any, ...], dict[str, Any], list[str]]  # path, properties, required
_JSON_TYPES = {
    "null": None,
    "boolean": True,
    "integer": 12345,
    "number": 0.5,
    "string": "x",
    "array": [1],
    "object": {"x": 1},
}


class Sweep:
    """Minimal bodies built from a derived schema, and their one-property breakages.

    For each member of the body's item union (``input``/``output``), a minimal body holding
    just that item; then, for every object in it (the item, its nested objects, the body
    itself), each required property dropped and each property given a type it does not
    accept or ``null`` where ``null`` is not allowed.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self.defs: dict[str, Any] = document["$defs"]
        self.root = self.defs[document["$ref"].rsplit("/", 1)[-1]]

    def bodies(self) -> Iterator[tuple[str, Any]]:
        lists = [p for p, s in self.root.get("properties", {}).items() if self._union(s)]
        targets = [
            (p, m) for p in lists for m in self._concrete(self._union(self.root["properties"][p]))
        ]
        root_shapes: list[Shape] = []
        body = self.minimal(self.root, (), root_shapes, ())
        seen: set[str] = set()
        plans: list[tuple[Any, list[Shape]]] = [(body, root_shapes)]
        for prop, member in targets:
            shapes: list[Shape] = []
            item = self.minimal(member, (prop, 0), shapes, ())
            plans.append(({**body, prop: [item]}, shapes))
        for base, shapes in plans:
            for how, changed in [("minimal", base), *self._breakages(base, shapes)]:
                key = json.dumps(changed, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    yield how, changed

    def _breakages(self, body: Any, shapes: list[Shape]) -> Iterator[tuple[str, Any]]:
        for path, properties, required in shapes:
            for name in required:
                yield "drop-required", _drop(body, (*path, name))
            # one breakage per property: null where null is not allowed, every other
            # property a value of a type it does not accept
            for index, (name, schema) in enumerate(properties.items()):
                accepted = self.types(schema, ())
                wrong = [t for t in _JSON_TYPES if t not in accepted]
                if not accepted or not wrong:
                    continue
                if "null" in wrong and (index % 2 == 0 or wrong == ["null"]):
                    yield "null", _replace(body, (*path, name), None)
                else:
                    other = next(t for t in wrong if t != "null")
                    yield "wrong-type", _replace(body, (*path, name), _JSON_TYPES[other])

    def _union(self, node: Any) -> Any:
        """The discriminated item union an array property holds, if any."""
        if not isinstance(node, dict):
            return None
        if "items" in node:
            items = self._deref(node["items"])
            return items if isinstance(items, dict) and "if" in items else None
        for key in ("anyOf", "oneOf"):
            for member in node.get(key, []):
                found = self._union(member)
                if found is not None:
                    return found
        return None

    def _concrete(self, node: Any) -> list[Any]:
        """The item schemas of a union, nested unions flattened."""
        out: list[Any] = []
        for member in _members(node):
            target = self._deref(member)
            if isinstance(target, dict) and ("if" in target or "anyOf" in target):
                inner = target.get("anyOf", [target])
                for part in inner:
                    out.extend(self._concrete(part) if "if" in self._deref(part) else [part])
            else:
                out.append(member)
        return out

    def _deref(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = self.defs[node["$ref"].rsplit("/", 1)[-1]]
        return node

    def types(self, node: Any, stack: tuple[str, ...]) -> set[str]:
        """The JSON types a schema may accept (empty when it cannot say)."""
        if not isinstance(node, dict):
            return set()
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return set() if name in stack else self.types(self.defs[name], (*stack, name))
        if "const" in node or "enum" in node:
            values = [node["const"]] if "const" in node else node["enum"]
            return {_schema_type(v) for v in values}
        declared = node.get("type")
        if isinstance(declared, str):
            return {declared, "integer"} if declared == "number" else {declared}
        for key in ("anyOf", "oneOf"):
            if key in node:
                parts = [self.types(m, stack) for m in node[key]]
                return set().union(*parts) if all(parts) else set()
        if "if" in node:
            parts = [self.types(m, stack) for m in _members(node)]
            return set().union(*parts) if all(parts) else set()
        return set()

    def minimal(
        self,
        node: Any,
        path: tuple[Any, ...],
        shapes: list[Shape],
        stack: tuple[str, ...],
    ) -> Any:
        """The smallest body the schema accepts (first choice at every union)."""
        if not isinstance(node, dict) or node == {}:
            return None
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return (
                None
                if name in stack
                else self.minimal(self.defs[name], path, shapes, (*stack, name))
            )
        if "if" in node:
            return self.minimal(next(_members(node)), path, shapes, stack)
        if "const" in node:
            return node["const"]
        if "enum" in node:
            return next((v for v in node["enum"] if v is not None), None)
        for key in ("anyOf", "oneOf"):
            if key in node:
                members = [m for m in node[key] if m != {"type": "null"}] or node[key]
                return self.minimal(members[0], path, shapes, stack)
        if "allOf" in node:
            merged: dict[str, Any] = {}
            for part in node["allOf"]:
                value = self.minimal(part, path, shapes, stack)
                merged.update(value if isinstance(value, dict) else {})
            return merged
        kind = node.get("type")
        if kind == "object" or "properties" in node:
            properties = node.get("properties", {})
            required = [p for p in node.get("required", []) if p in properties]
            shapes.append((path, properties, required))
            return {p: self.minimal(properties[p], (*path, p), shapes, stack) for p in required}
        if kind == "array":
            count = node.get("minItems", 0)
            return [
                self.minimal(node.get("items", {}), (*path, i), shapes, stack) for i in range(count)
            ]
        if kind == "string":
            return "x" * max(1, node.get("minLength", 1))
        if kind in ("integer", "number"):
            return max(0, node.get("minimum", 0))
        return False if kind == "boolean" else None


def _schema_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# -- the test --------------------------------------------------------------------------------
@dataclass
class Tally:
    tried: set[str] = field(default_factory=set)
    origins: Counter[str] = field(default_factory=Counter)
    valid: int = 0
    agreements: int = 0
    disagreements: Counter[str] = field(default_factory=Counter)
    mutations: Counter[str] = field(default_factory=Counter)
    splits: list[Any] = field(default_factory=list)  # bodies our two backends disagree on

    def summary(self, name: str) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.disagreements.items())) or "none"
        origins = ", ".join(f"{k} {v}" for k, v in sorted(self.origins.items()))
        return (
            f"{name}: {len(self.tried)} payloads ({origins}; {self.valid} valid per the spec), "
            f"{self.agreements} agree on every backend; disagreements by reason: {reasons}"
        )


def judge(ref: Reference, kind: Kind, version: str, body: Any, tally: Tally, origin: str) -> None:
    """Compare all verdicts on one body; every disagreement must be a listed difference."""
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    first = key not in tally.tried
    tally.tried.add(key)
    expected = ref.valid(kind, body)
    verdicts = {
        "rs": validate(kind, body, version=version).valid,
        "python": get_validator(kind, version, backend="python").validate(body).valid,
    }
    if verdicts["rs"] != verdicts["python"] and first:
        tally.splits.append(body)
    explained: list[str] = []
    for backend, ours in verdicts.items():
        if ours == expected:
            continue
        reason = classify(ref, kind, body, ours)
        assert reason is not None, (
            f"{kind} {version}: the {backend} backend says {'valid' if ours else 'invalid'}, "
            f"the spec says {'valid' if expected else 'invalid'}, and no listed difference "
            f"explains it: {json.dumps(body)[:2000]}"
        )
        explained.append(f"{reason} ({backend})")
    if first:
        tally.origins[origin] += 1
        tally.valid += expected
        for reason in explained:
            tally.disagreements[reason] += 1
        tally.agreements += not explained


def _mutate(
    ref: Reference,
    kind: Kind,
    version: str,
    body: Any,
    words: Vocabulary,
    count: int,
    tally: Tally,
    origin: str,
) -> None:
    for how, changed in mutants(body, words, count):
        tally.mutations[how] += 1
        judge(ref, kind, version, changed, tally, f"mutants of {origin}")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_verdicts_match_the_spec(kind: Kind, version: str) -> None:
    if not SPECS.is_dir():
        pytest.skip(f"reference specs not found at {SPECS} (only in a full checkout)")
    name = resolve_version(None if version == "newest" else version)
    ref = reference(name)
    document = load_schema_set(name).document(kind)
    words = Vocabulary.of(document)
    tally = Tally()

    for how, body in Sweep(document).bodies():
        tally.mutations[how] += how != "minimal"
        judge(ref, kind, name, body, tally, "sweep")
    for seed in seeds(kind):
        judge(ref, kind, name, seed, tally, "seeds")
        _mutate(ref, kind, name, seed, words, 2 * len(MUTATIONS), tally, "seeds")

    @settings(
        max_examples=EXAMPLES[kind],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=Generator(document).strategy())
    def generated(body: Any) -> None:
        judge(ref, kind, name, body, tally, "generated")
        _mutate(ref, kind, name, body, words, MUTANTS, tally, "generated")

    generated()
    report = tally.summary(f"{name} {kind}")
    print(f"\n{report}\n  mutations: {dict(sorted(tally.mutations.items()))}")
    assert len(tally.tried) >= MINIMUM[kind], report
    assert tally.origins["generated"] >= EXAMPLES[kind] // 2, report
    assert tally.origins["sweep"] > 0 and tally.origins["seeds"] > 0, report
    assert tally.valid > 0, f"no {kind} body is valid per the spec: {report}"
    # Either backend must give the same verdict (the python one is the fast path's reference).
    smallest = min(tally.splits, key=lambda b: len(json.dumps(b)), default=None)
    assert not tally.splits, (
        f"{kind} {name}: the rs and python backends disagree on {len(tally.splits)} bodies, "
        f"e.g. rs says {validate(kind, smallest, version=name).valid}: {json.dumps(smallest)}"
    )


def test_differences_are_the_spec_s_own() -> None:
    """The listed defects are what the spec files really contain, in every version."""
    if not SPECS.is_dir():
        pytest.skip(f"reference specs not found at {SPECS} (only in a full checkout)")
    for version in VERSIONS:
        ref = reference(resolve_version(None if version == "newest" else version))
        names: set[str] = set()
        for root in ref.roots.values():
            names |= closure_names(ref.spec, root)
        found = undefined_required(ref.spec, names)
        assert found == {p for p in UNDEFINED_REQUIRED if p[0] in names}, found
        patterns = [
            p for p in _strings(ref.documents["request"], "pattern") if re.search(r"[^\\]\$$", p)
        ]
        assert patterns, "no end-anchored pattern left to tell the regex dialects apart"
        assert ref.passed_back, "no passed-back item listed"
        for member, prop, twin in ref.passed_back:
            # the input member lacks what its output twin of the same type declares
            assert prop not in declared(ref.spec, member), (member, prop)
            assert prop in declared(ref.spec, twin), (twin, prop)
            assert type_values(ref.spec, member) & type_values(ref.spec, twin), (member, twin)


# The smallest body showing each listed difference, per version it applies to.
WITNESSES = {
    "required-undefined": {
        "model": "gpt-5.4",
        "input": [{"type": "mcp_approval_response", "approval_request_id": "r", "approve": True}],
    },
    "passed-back-item": {
        "model": "gpt-5.4",
        "input": [{"role": "user", "content": "hi", "id": 7}],
    },
    "regex-dialect": {
        "model": "gpt-5.4",
        "input": [
            {
                "type": "tool_search_output",
                "tools": [
                    {**NAMESPACE_TOOL, "tools": [{"type": "function", "name": "lookup_order\n"}]}
                ],
            }
        ],
    },
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("difference", [d.name for d in DIFFERENCES])
def test_each_difference_is_real(difference: str, version: str) -> None:
    """Each listed difference happens, is classified as itself, and both backends agree."""
    if not SPECS.is_dir():
        pytest.skip(f"reference specs not found at {SPECS} (only in a full checkout)")
    name = resolve_version(None if version == "newest" else version)
    ref = reference(name)
    body = WITNESSES[difference]
    expected = ref.valid("request", body)
    ours = validate("request", body, version=name).valid
    assert ours != expected, f"{difference}: no disagreement on {body}"
    assert classify(ref, "request", body, ours) == difference
    python = get_validator("request", name, backend="python").validate(body).valid
    assert python == ours, (
        f"the python backend says {python}, the rs backend {ours}, on {json.dumps(body)}"
    )


def _strings(node: Any, key: str) -> Iterator[str]:
    if isinstance(node, dict):
        for k, value in node.items():
            if k == key and isinstance(value, str):
                yield value
            else:
                yield from _strings(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value, key)


def test_closure_is_independent_of_the_derivation() -> None:
    """The reference reads the spec file; it shares no schema text with ``schemas/``."""
    if not SPECS.is_dir():
        pytest.skip(f"reference specs not found at {SPECS} (only in a full checkout)")
    ref = reference(newest_version())
    text = json.dumps(ref.documents["request"])
    assert '"oneOf"' not in text and "$recursiveRef" not in text and "$defs" not in text
    assert "#/components/schemas/" in text
    assert Path(ref.spec.path).parent == SPECS
