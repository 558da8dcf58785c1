"""Validate compaction bodies against the derived schemas.

The verdict comes from jsonschema-rs on a *strict* variant of each schema (every declared
object closed), which answers the common case, a valid body with no undocumented fields, in
one native pass. Only when that pass fails do we look closer: the open schema gives the
violations, and a walk of the body along the schema finds undocumented properties (drift).
The pure-Python ``jsonschema`` backend gives the same verdicts and messages; it is the
reference the fast path is tested against.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

import jsonschema_rs

from .._errors import BodyError, CompactionError
from .._pointer import escape
from ._report import DriftNote, Report, Violation
from ._versions import Kind, SchemaSet, available_versions, load_schema_set

if TYPE_CHECKING:
    import jsonschema

Backend = Literal["rs", "python"]
_SURROGATE = re.compile("[\ud800-\udfff]")
_URI = "urn:pytest-compaction:schema"
# Deeper bodies are refused before errors are explained: jsonschema-rs cannot build an error
# for an instance nested 256 levels deep (ValueError "Recursion limit reached").
MAX_DEPTH = 250
# Items of one long array explained per body. Explaining is native but builds an error tree
# that grows faster than the number of failing items (100,000 of them took 97 s and 4.7 GB),
# while the first thousand show every kind of mistake a body makes.
EXPLAINED_ITEMS = 1000
# keywords whose detail is a number to compare against: (message verb, unit)
_LIMITS = {
    "maxLength": ("is longer than", "character"),
    "minLength": ("is shorter than", "character"),
    "maxItems": ("has more than", "item"),
    "minItems": ("has fewer than", "item"),
    "maxProperties": ("has more than", "property"),
    "minProperties": ("has fewer than", "property"),
    "maximum": ("is greater than the maximum of", ""),
    "minimum": ("is less than the minimum of", ""),
    "exclusiveMaximum": ("must be less than", ""),
    "exclusiveMinimum": ("must be greater than", ""),
}


# -- body parsing ----------------------------------------------------------------------
def parse_body(data: bytes | str) -> Any:
    """Decode and parse a JSON body; :class:`BodyError` says what is wrong and where."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BodyError(f"body is not UTF-8: invalid byte at offset {exc.start}") from None
    else:
        text = data
    try:
        return json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise BodyError("body nests deeper than the JSON parser allows") from None
    except json.JSONDecodeError as exc:
        raise BodyError(
            f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # NaN/Infinity, or an integer too long to convert
        raise BodyError(f"body is not JSON: {str(exc).split('; use sys.')[0]}") from None


def _not_json(name: str) -> Any:
    # Python's parser accepts NaN and Infinity; JSON (and the API) do not.
    raise ValueError(f"{name} is not a JSON value")


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``limit`` levels (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return False


def _format_checks() -> dict[str, Any]:
    # The spec's own formats; registered so neither backend trips on them.
    def unixtime(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    return {"unixtime": unixtime, "float": number}


def _surrogate_violation(body: Any) -> Violation:
    """Where a string (or property name) holds an unpaired surrogate, as JSON "\\ud800" can."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(body, ())]
    where: tuple[str | int, ...] = ()
    while stack:
        node, path = stack.pop()
        if isinstance(node, str) and _SURROGATE.search(node):
            where = path
            break
        if isinstance(node, dict):
            bad = next((k for k in node if isinstance(k, str) and _SURROGATE.search(k)), None)
            if bad is not None:
                where = path
                break
            stack.extend((value, (*path, key)) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, (*path, i)) for i, value in enumerate(node))
    return Violation(
        pointer(where), f"{_location(where, body)[0]}: an unpaired surrogate (not valid Unicode)"
    )


def _ecma_regex(pattern: str) -> str:
    """A Python regex whose ``$`` means what it means in ECMA-262 (JSON Schema's dialect).

    Python's ``$`` also matches before a final newline, so ``"name\\n"`` would pass
    ``^[a-z]+$``; ``\\Z`` is the end of the string only.
    """
    out: list[str] = []
    in_class = escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            out.append(r"\Z")
            continue
        out.append(char)
    return "".join(out)


@cache
def _ecma_patterns(jsonschema: Any) -> Any:
    """The reference validator class, with ``pattern`` read as ECMA-262 reads it."""
    import re

    base = jsonschema.Draft202012Validator

    def pattern(validator: Any, value: str, instance: Any, schema: Any) -> Any:
        if isinstance(instance, str) and not re.search(_ecma_regex(value), instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {value!r}")

    return jsonschema.validators.extend(base, {"pattern": pattern})


# -- errors as data, from either backend -----------------------------------------------
class _Error:
    __slots__ = ("branches", "detail", "fallback", "keyword", "path", "schema_path")

    def __init__(
        self,
        path: tuple[str | int, ...],
        schema_path: tuple[str | int, ...],
        keyword: str,
        detail: dict[str, Any],
        branches: list[list[_Error]] | None = None,
        fallback: str = "",
    ) -> None:
        self.path = path
        self.schema_path = schema_path
        self.keyword = keyword
        self.detail = detail
        self.branches = branches if branches is not None else []
        self.fallback = fallback


def _from_rs(error: Any) -> _Error:
    kind = error.kind
    detail = kind.as_dict()
    branches: list[list[_Error]] = []
    name = kind.name
    if "context" in detail:
        branches = [[_from_rs(e) for e in branch] for branch in detail.pop("context")]
        if name == "oneOf" and not any(branches):
            name = "oneOfMultipleValid"
    if name == "propertyNames":
        # the error about the name itself, with the name kept to describe it
        inner = detail.pop("error")
        name, detail = inner.kind.name, {**inner.kind.as_dict(), "name": inner.instance}
    return _Error(
        tuple(error.instance_path),
        tuple(error.schema_path),
        name,
        detail,
        branches,
        error.message,
    )


def _from_python(error: jsonschema.ValidationError) -> _Error:
    keyword = str(error.validator)
    detail: dict[str, Any] = {}
    value = error.validator_value
    if keyword == "required":
        # one error per missing property, each naming it in its message
        missing = [p for p in value if isinstance(error.instance, dict) and p not in error.instance]
        named = [p for p in missing if error.message == f"{p!r} is a required property"]
        detail = {"property": (named or missing or [""])[0]}
    elif keyword == "type":
        detail = {"types": [value] if isinstance(value, str) else list(value)}
    elif keyword == "enum":
        detail = {"options": list(value)}
    elif keyword == "const":
        detail = {"expected_value": value}
    elif keyword in ("additionalProperties", "unevaluatedProperties"):
        declared = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = [k for k in error.instance if k not in declared]
        detail = {"unexpected": extra}
    elif keyword in _LIMITS:
        detail = {"limit": value}
    elif keyword in ("pattern", "multipleOf"):
        detail = {{"pattern": "pattern", "multipleOf": "multiple_of"}[keyword]: value}
    if list(error.relative_schema_path)[-2:-1] == ["propertyNames"]:
        detail["name"] = error.instance  # the name is the instance; its object holds the path
    branches: list[list[_Error]] = []
    if keyword in ("anyOf", "oneOf") and error.context:
        grouped: dict[Any, list[_Error]] = {}
        for sub in error.context:
            grouped.setdefault(sub.schema_path[0], []).append(_from_python(sub))
        # absolute_path of a context error already walks up through its parents
        branches = [grouped[k] for k in sorted(grouped)]
    if keyword == "oneOf" and not error.context:
        keyword = "oneOfMultipleValid"
    return _Error(
        tuple(error.absolute_path),
        tuple(error.absolute_schema_path),
        keyword,
        detail,
        branches,
        error.message,
    )


def _best(errors: list[_Error], instance: Any) -> list[_Error]:
    """Replace each anyOf/oneOf failure by the errors of the branch the body most likely meant."""
    out: list[_Error] = []
    for error in errors:
        if error.keyword in ("anyOf", "oneOf") and error.branches:
            out.extend(_best(_pick_branch(error, instance), instance))
        else:
            out.append(error)
    return out


def _pick_branch(error: _Error, instance: Any) -> list[_Error]:
    def type_miss(branch: list[_Error]) -> bool:
        return any(e.keyword == "type" and e.path == error.path for e in branch)

    def const_miss(branch: list[_Error]) -> bool:
        return any(e.keyword in ("const", "enum") and e.path == error.path for e in branch)

    def discriminator_miss(branch: list[_Error]) -> bool:
        # A branch that, once resolved, rejects a nested item's "type" was written for
        # another kind of item.
        leaves = _best(branch, instance)
        return any(e.keyword in ("const", "enum") and e.path[-1:] == ("type",) for e in leaves)

    candidates = [b for b in error.branches if not type_miss(b) and not const_miss(b)]
    if len(candidates) > 1:
        candidates = [b for b in candidates if not discriminator_miss(b)] or candidates
    if not candidates:
        expected: list[str] = []
        for branch in error.branches:
            for e in branch:
                if e.path == error.path and e.keyword == "type":
                    expected += [t for t in e.detail.get("types", []) if t not in expected]
        if expected and all(type_miss(b) for b in error.branches):
            merged = _Error(error.path, error.schema_path, "type", {"types": expected})
            return [merged]
        # a nullable enum (anyOf [enum, null]) given a value of the right type
        misses = [e for b in error.branches for e in b if e.path == error.path]
        options: list[Any] = []
        for e in misses:
            values = [e.detail.get("expected_value")] if e.keyword == "const" else []
            values += e.detail.get("options", []) if e.keyword == "enum" else []
            options += [v for v in values if v not in options]
        if options and all(type_miss(b) or const_miss(b) for b in error.branches):
            return [_Error(error.path, error.schema_path, "enum", {"options": options})]
        return [error.__class__(error.path, error.schema_path, "anyOfNone", {}, [])]
    # the branch whose failures sit deepest in the body is the one it was written for
    return max(candidates, key=lambda b: (max(len(e.path) for e in b), -len(b)))


# -- messages ----------------------------------------------------------------------------
def json_type(value: Any) -> str:
    """The JSON Schema type name of a parsed JSON value."""
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
    if isinstance(value, list):
        return "array"
    return "object"


# The end of a cut-off quotation that is part of a longer token (a key, an id, base64).
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_\-.+/=~]+$")


def _show(value: Any, limit: int = 60) -> str:
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]  # never serialise a huge string only to cut it
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= limit:
        return text
    # A piece of a token is dropped, not shown: the piece of a key (or a JWT cut before its
    # last part) is no longer key-shaped, so no mask of the message would catch it.
    return _TOKEN_TAIL.sub("", text[: limit - 3]) + "..."


def pointer(path: Iterable[str | int]) -> str:
    return "".join("/" + escape(p) for p in path)


def _pointer_order(path: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key: ``/input/2`` before ``/input/10``."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in path.split("/"))


def _location(path: tuple[str | int, ...], instance: Any) -> tuple[str, str | None]:
    """``output[2].call_id`` and the type of the innermost typed item on the way."""
    text = ""
    item_type: str | None = None
    node = instance
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        if isinstance(node, dict | list):
            try:
                node = node[part]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                node = None
            # an array element, or the one item a stream event carries
            if (isinstance(part, int) or part == "item") and isinstance(node, dict):
                kind = node.get("type")
                item_type = kind if isinstance(kind, str) else item_type
    return text or "body", item_type


def _value_at(instance: Any, path: tuple[str | int, ...]) -> Any:
    node = instance
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _describe(error: _Error, instance: Any) -> str:
    detail = error.detail
    keyword = error.keyword
    if "name" in detail:  # a property name that propertyNames rejects
        value = detail["name"]
        subject = f"property name {_show(value)}"
    else:
        value = _value_at(instance, error.path)
        subject = _show(value) if isinstance(value, str | int | float) else json_type(value)
    if keyword == "required":
        return f"missing required property '{detail.get('property', '')}'"
    if keyword == "type":
        return f"expected {' or '.join(detail.get('types', []))}, got {json_type(value)}"
    if keyword == "enum":
        options = ", ".join(_show(o) for o in detail.get("options", []))
        if (
            error.path
            and error.path[-1] == "type"
            and error.schema_path[-3:-1]
            == (
                "properties",
                "type",
            )
        ):
            return f"unknown type {_show(value)}; expected one of: {options}"
        return f"{_show(value)} is not one of: {options}"
    if keyword == "const":
        return f"expected {_show(detail.get('expected_value'))}, got {_show(value)}"
    if keyword in ("additionalProperties", "unevaluatedProperties"):
        names = ", ".join(f"'{n}'" for n in detail.get("unexpected", []))
        return f"undocumented property {names} (strict)"
    if keyword in _LIMITS:
        verb, unit = _LIMITS[keyword]
        limit = detail.get("limit")
        plural = "" if not unit or limit == 1 else ("ies" if unit == "property" else "s")
        unit = unit[:-1] if plural == "ies" else unit
        size = f" ({len(value)} given)" if isinstance(value, str | list | dict) else ""
        return f"{subject} {verb} {limit}{' ' + unit + plural if unit else ''}{size}"
    if keyword == "pattern":
        return f"{subject} does not match the pattern {_show(detail.get('pattern'))}"
    if keyword == "multipleOf":
        return f"{subject} is not a multiple of {detail.get('multiple_of')}"
    if keyword == "uniqueItems":
        return "array has duplicate items"
    if keyword == "anyOfNone":
        return f"{json_type(value)} value matches none of the allowed shapes"
    if keyword == "oneOfMultipleValid":
        return "value matches more than one of the allowed shapes"
    return error.fallback or f"fails '{keyword}'"


def _shifted(error: _Error, key: str, offset: int) -> _Error:
    """``error`` of a window starting at item ``offset`` of ``key``, with the body's indexes."""
    path = error.path
    if offset and len(path) >= 2 and path[0] == key and isinstance(path[1], int):
        path = (key, path[1] + offset, *path[2:])
    branches = [[_shifted(e, key, offset) for e in branch] for branch in error.branches]
    return _Error(path, error.schema_path, error.keyword, error.detail, branches, error.fallback)


def _violation(error: _Error, instance: Any) -> Violation:
    where, item_type = _location(error.path, instance)
    suffix = f" (type={item_type})" if item_type else ""
    path = error.path
    if error.keyword == "required" and error.detail.get("property") is not None:
        # The pointer names where the property belongs; the message names the object it lacks.
        path = (*path, str(error.detail["property"]))
    return Violation(
        path=pointer(path),
        message=f"{where}{suffix}: {_describe(error, instance)}",
        schema_path=pointer(error.schema_path),
        item_type=item_type,
        keyword=error.keyword,
    )


# -- drift ---------------------------------------------------------------------------------
class _DriftWalker:
    """Walks a body along the open schema and lists properties no applicable schema declares."""

    def __init__(self, document: dict[str, Any], registry: Any) -> None:
        self.defs: dict[str, Any] = document["$defs"]
        self.registry = registry
        self.pointers: dict[int, str] = {}
        self._index(document, "")
        self.checks: dict[int, Any] = {}

    def _index(self, node: Any, where: str) -> None:
        if isinstance(node, dict):
            self.pointers[id(node)] = where
            for key, value in node.items():
                self._index(value, f"{where}/{escape(key)}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                self._index(value, f"{where}/{i}")

    def matches(self, node: Any, instance: Any) -> bool:
        if not isinstance(node, dict):
            return bool(node)
        check = self.checks.get(id(node))
        if check is None:
            schema = {"$ref": f"{_URI}#{self.pointers[id(node)]}"}
            check = jsonschema_rs.validator_for(schema, registry=self.registry)
            self.checks[id(node)] = check
        return bool(check.is_valid(instance))

    def deref(self, node: Any) -> Any:
        ref = node.get("$ref") if isinstance(node, dict) else None
        return self.defs[ref.rsplit("/", 1)[-1]] if isinstance(ref, str) else None

    def applicable(self, node: Any, instance: Any, out: list[dict[str, Any]], depth: int) -> None:
        if not isinstance(node, dict) or depth > 64:
            return
        out.append(node)
        target = self.deref(node)
        if target is not None:
            self.applicable(target, instance, out, depth + 1)
        for part in node.get("allOf", ()):
            self.applicable(part, instance, out, depth + 1)
        for key in ("anyOf", "oneOf"):
            for part in node.get(key, ()):
                if self.matches(part, instance):
                    self.applicable(part, instance, out, depth + 1)
        if "if" in node:
            branch = node.get("then") if self.matches(node["if"], instance) else node.get("else")
            self.applicable(branch, instance, out, depth + 1)

    def walk(
        self,
        node: Any,
        instance: Any,
        path: tuple[str | int, ...],
        root: Any,
        notes: list[DriftNote],
        depth: int = 0,
    ) -> None:
        if depth > MAX_DEPTH or not isinstance(instance, dict | list):
            return
        nodes: list[dict[str, Any]] = []
        self.applicable(node, instance, nodes, 0)
        if isinstance(instance, list):
            items = [n["items"] for n in nodes if isinstance(n.get("items"), dict)]
            for index, element in enumerate(instance):
                for sub in _unique(items):
                    self.walk(sub, element, (*path, index), root, notes, depth + 1)
            return
        declared: set[str] = set()
        shaped = False
        open_map = False
        children: dict[str, list[Any]] = {}
        extra_schemas: list[Any] = []
        for n in nodes:
            properties = n.get("properties")
            if isinstance(properties, dict) and n.get("type") == "object":
                shaped = True
            if isinstance(properties, dict):
                declared.update(properties)
                for name, sub in properties.items():
                    children.setdefault(name, []).append(sub)
            extra = n.get("additionalProperties")
            if extra not in (None, False) or "patternProperties" in n:
                open_map = True
                if isinstance(extra, dict):
                    extra_schemas.append(extra)
        for name, value in instance.items():
            if name in declared:
                subs = children.get(name, [])
            elif shaped and not open_map:
                where, item_type = _location((*path, name), root)
                notes.append(
                    DriftNote(
                        path=pointer((*path, name)),
                        message=f"{where}"
                        + (f" (type={item_type})" if item_type else "")
                        + ": undocumented property",
                        item_type=item_type,
                    )
                )
                continue
            else:
                subs = extra_schemas
            for sub in _unique(subs):
                self.walk(sub, value, (*path, name), root, notes, depth + 1)


def _unique(nodes: list[Any]) -> Iterator[Any]:
    seen: set[int] = set()
    for node in nodes:
        if id(node) not in seen:
            seen.add(id(node))
            yield node


# -- the validator -----------------------------------------------------------------------------
class Validator:
    """Validates one kind of body against one schema version; build it once, use it often."""

    def __init__(
        self, schema_set: SchemaSet, kind: Kind, backend: Backend = "rs", hints: bool = True
    ) -> None:
        self.version = schema_set.name
        # Whether findings that a later version does not share say so (see ``_hint``).
        self.hints = hints
        self.kind: Kind = kind
        self.backend: Backend = backend
        self._schema_set = schema_set
        formats = _format_checks()
        # Formats stay annotations, as 2020-12 says; the custom ones are known to both backends.
        self._strict = jsonschema_rs.Draft202012Validator(
            schema_set.document(kind, strict=True), formats=formats, validate_formats=False
        )
        self._open: Any = None
        self._python: Any = None
        self._walker: _DriftWalker | None = None

    @property
    def document(self) -> dict[str, Any]:
        """The open schema document (read on first need: the fast path uses the strict one)."""
        return self._schema_set.document(self.kind)

    def _open_validator(self) -> Any:
        if self._open is None:
            # Masked: messages are written from the error data, and formatting a 50 MB
            # instance into each native message costs seconds and gigabytes.
            self._open = jsonschema_rs.Draft202012Validator(
                self.document, formats=_format_checks(), validate_formats=False, mask="..."
            )
        return self._open

    def _python_validator(self) -> Any:
        if self._python is None:
            # Imported here: the reference backend costs ~150 ms to import and is rarely used.
            import jsonschema

            self._python = _ecma_patterns(jsonschema)(self.document, format_checker=None)
        return self._python

    def _drift_walker(self) -> _DriftWalker:
        if self._walker is None:
            registry = jsonschema_rs.Registry([(_URI, self.document)])
            self._walker = _DriftWalker(self.document, registry)
        return self._walker

    def is_clean(self, body: Any) -> bool:
        """True when the body is valid and carries nothing undocumented (one native pass)."""
        return bool(self._strict.is_valid(body))

    def _bounded_errors(self, body: Any) -> tuple[list[_Error], Violation | None]:
        """The errors of ``body``, of one window of its longest array when that is long.

        The window is the first one (of :data:`EXPLAINED_ITEMS` items) that fails: with the
        rest of the body as it is, a window of valid items leaves the body valid, so the first
        failing window holds the first failing items. Error paths are shifted back to the
        body's indexes; a ``limit`` violation names the items left unexamined, if any.
        """
        long = [
            (key, value)
            for key, value in (body.items() if isinstance(body, dict) else ())
            if isinstance(value, list) and len(value) > EXPLAINED_ITEMS
        ]
        if self.backend != "rs" or not long:
            return self.errors(body), None
        key, items = max(long, key=lambda pair: len(pair[1]))
        open_validator = self._open_validator()
        for start in range(0, len(items), EXPLAINED_ITEMS):
            end = min(start + EXPLAINED_ITEMS, len(items))
            window = {**body, key: items[start:end]}
            if open_validator.is_valid(window):
                continue
            errors = [_shifted(e, key, start) for e in self.errors(window)]
            if end == len(items):
                return errors, None  # the items before the window are valid: nothing is left out
            message = (
                f"{key}: {len(items)} items; the first {EXPLAINED_ITEMS} from item {start} on are "
                f"explained, items {end} to {len(items) - 1} were not examined"
            )
            return errors, Violation(pointer((key,)), message, keyword="limit")
        return self.errors(body), None  # only the array as a whole fails (its length, say)

    def errors(self, body: Any) -> list[_Error]:
        if self.backend == "python":
            raw = [_from_python(e) for e in self._python_validator().iter_errors(body)]
        else:
            raw = [_from_rs(e) for e in self._open_validator().iter_errors(body)]
        return raw

    def validate(self, body: Any, *, strict: bool = False) -> Report:
        try:
            return self._validate(body, strict)
        except UnicodeEncodeError:  # jsonschema-rs takes only valid Unicode
            if isinstance(body, bytes | str | bytearray):
                body = parse_body(bytes(body) if isinstance(body, bytearray) else body)
            return Report(self.kind, self.version, (_surrogate_violation(body),))

    def _validate(self, body: Any, strict: bool) -> Report:
        if isinstance(body, bytes | str | bytearray):
            try:
                body = parse_body(bytes(body) if isinstance(body, bytearray) else body)
            except BodyError as exc:
                return Report(self.kind, self.version, (Violation("", str(exc), keyword="json"),))
        # The native pass copes with any depth; the Python code that explains a failure
        # recurses along the body, so only that path refuses absurd nesting.
        if self.backend == "rs" and self.is_clean(body):
            return Report(self.kind, self.version)
        if depth_exceeds(body, MAX_DEPTH):
            message = f"body: nesting deeper than {MAX_DEPTH} levels"
            return Report(self.kind, self.version, (Violation("", message, keyword="depth"),))
        seen: set[tuple[str, str]] = set()
        violations: list[Violation] = []
        errors, limit = self._bounded_errors(body)
        if limit is not None:
            violations.append(limit)
        for error in _best(errors, body):
            violation = _violation(error, body)
            if (violation.path, violation.message) not in seen:
                seen.add((violation.path, violation.message))
                violations.append(violation)
        notes: list[DriftNote] = []
        self._drift_walker().walk(self.document, body, (), body, notes)
        # several applicable schemas can reach the same property: note it once
        notes = list(dict.fromkeys(notes))
        if self.hints:
            violations, notes = self._newer(body, violations, notes)
        if strict:  # a finding counts once: under strict, drift is a violation and no longer drift
            violations += [
                Violation(n.path, n.message + " (strict)", item_type=n.item_type, keyword="drift")
                for n in notes
            ]
            notes = []
        violations.sort(key=lambda v: _pointer_order(v.path))
        return Report(self.kind, self.version, tuple(violations), tuple(notes))

    def _newer(
        self, body: Any, violations: list[Violation], notes: list[DriftNote]
    ) -> tuple[list[Violation], list[DriftNote]]:
        """Say so where a finding is only what this version does not know (see ``_hint``)."""
        unknown = [v for v in violations if _unknown_type(v)]
        if not unknown and not notes:
            return violations, notes
        later = _later_versions(self.version)
        known: dict[tuple[str, str], str] = {}  # (pointer, finding) -> first version knowing it
        for version in later:
            try:
                other = get_validator(self.kind, version, hints=False).validate(body)
            except CompactionError:
                continue  # the version has no schema of this kind
            failing = {v.path for v in other.violations if _unknown_type(v)}
            drifting = {n.path for n in other.drift}
            for v in unknown:
                if v.path not in failing:
                    known.setdefault((v.path, "type"), version)
            for n in notes:
                if n.path not in drifting:
                    known.setdefault((n.path, "drift"), version)
        beta = self._beta_knows(body, [v for v in unknown if (v.path, "type") not in known])
        kept: list[Violation] = []
        for v in violations:
            if _unknown_type(v):
                if v.path in beta:
                    hint = f"; the beta compact route of schema version {beta[v.path]} knows it"
                    hint += " (POST /responses/compact?beta=true: client.beta.responses.compact())"
                else:
                    hint = _hint(known.get((v.path, "type")), later)
                v = v._replace(message=v.message + hint)
            kept.append(v)
        noted = [
            n._replace(message=n.message + _declared_by(known[(n.path, "drift")]))
            if (n.path, "drift") in known
            else n
            for n in notes
        ]
        return kept, noted

    def _beta_knows(self, body: Any, unknown: list[Violation]) -> dict[str, str]:
        """Pointer -> the first version (this one or later) whose beta route knows the type.

        A plain compact body with a beta item type (``multi_agent_call``) was most likely
        meant for ``client.beta.responses.compact()``.
        """
        beta_kind = _BETA_TWINS.get(self.kind)
        if beta_kind is None or not unknown:
            return {}
        found: dict[str, str] = {}
        for version in [self.version, *_later_versions(self.version)]:
            try:
                other = get_validator(beta_kind, version, hints=False).validate(body)
            except CompactionError:
                continue  # no beta contract in this version
            failing = {v.path for v in other.violations if _unknown_type(v)}
            for v in unknown:
                if v.path not in failing:
                    found.setdefault(v.path, version)
        return found


# The beta compact route's kind for each plain compact kind.
_BETA_TWINS: dict[Kind, Kind] = {"request": "beta.request", "response": "beta.response"}


def get_validator(
    kind: Kind, version: str | None = None, backend: Backend = "rs", hints: bool = True
) -> Validator:
    """The cached validator for a kind and version (compiled on first use).

    ``version`` is resolved on each call ("the newest" follows the schema path as it is now);
    the compiled validator is cached per schema set.
    """
    return _validator(kind, load_schema_set(version), backend, hints)


@cache
def _validator(kind: Kind, schema_set: SchemaSet, backend: Backend, hints: bool) -> Validator:
    return Validator(schema_set, kind, backend, hints)


# -- traffic newer than the contract -------------------------------------------------------------
def _unknown_type(violation: Violation) -> bool:
    """A violation that names a discriminator value the version does not list."""
    return violation.keyword == "enum" and " unknown type " in f" {violation.message}"


def _later_versions(version: str) -> list[str]:
    """The versions named after ``version`` (names start with their date), newest last."""
    names = available_versions()
    return list(names[names.index(version) + 1 :]) if version in names else []


def _hint(knows: str | None, later: list[str]) -> str:
    """What to do about a type a version does not know: a later one knows it, or none does."""
    if knows is not None:
        newest = " (the newest, and the default)" if knows == later[-1] else ""
        return f"; this traffic is newer than the contract: schema version {knows}{newest} knows it"
    return (
        "; no schema version here knows it: a mistake, or traffic newer than every contract "
        "(update pytest-compaction, or derive a newer version: README, Keeping up with the API)"
    )


def _declared_by(version: str) -> str:
    return f" (newer than the contract: schema version {version} declares it)"


def validate(kind: Kind, body: Any, *, version: str | None = None, strict: bool = False) -> Report:
    """Validate a body (parsed JSON, or raw bytes/str) of the given kind."""
    return get_validator(kind, version).validate(body, strict=strict)


def validate_request(body: Any, *, version: str | None = None, strict: bool = False) -> Report:
    """Validate a ``POST /responses/compact`` request body."""
    return validate("request", body, version=version, strict=strict)


def validate_response(
    body: Any, *, status: int = 200, version: str | None = None, strict: bool = False
) -> Report:
    """Validate a response body: 2xx against ``CompactResource``, others against the error body."""
    kind: Kind = "response" if 200 <= status < 300 else "error"
    return validate(kind, body, version=version, strict=strict)
