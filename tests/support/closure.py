"""An independent reading of the spec: the closure of ``/responses/compact``'s own schemas.

Built straight from an OpenAPI file, sharing nothing with the package's derivation. The
schemas are kept as the spec writes them (prose and ``x-*`` keys included: JSON Schema
ignores unknown keywords) under ``components.schemas``, so the spec's own
``#/components/schemas/...`` references resolve unchanged inside the closure document. Only
two rewrites are made, both forced by JSON Schema 2020-12:

- every ``oneOf`` is read as ``anyOf`` (a literal ``oneOf`` rejects what every SDK sends,
  because ``{"type": "message", "role": "user"}`` matches two item schemas);
- ``$recursiveRef`` (draft 2019-09) becomes a ``$ref`` to the enclosing component that
  declares ``$recursiveAnchor: true``: that component is the recursion the spec means (a
  literal ``"#"`` would name the closure document itself).
"""

from __future__ import annotations

import hashlib
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DIALECT = "https://json-schema.org/draft/2020-12/schema"
PREFIX = "#/components/schemas/"
COMPACT = "/responses/compact"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class SpecFile:
    """One OpenAPI document as read from disk."""

    path: Path
    sha256: str
    document: dict[str, Any]

    @property
    def schemas(self) -> dict[str, Any]:
        schemas: dict[str, Any] = self.document["components"]["schemas"]
        return schemas


def read_spec(path: Path) -> SpecFile:
    raw = path.read_bytes()
    document = yaml.load(raw, Loader=_Loader)
    if not isinstance(document, dict) or "openapi" not in document:
        raise ValueError(f"{path}: not an OpenAPI document")
    return SpecFile(path, hashlib.sha256(raw).hexdigest(), document)


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            _merged(base[key], value)
        else:
            base[key] = deepcopy(value)


def overlaid(spec: SpecFile, overlay: Path) -> SpecFile:
    """``spec`` with an OpenAPI Overlay 1.0 document's actions applied, read here: each
    ``target`` through jsonpath-ng, ``update`` merged into objects and appended to arrays
    (the reading the Overlay Specification gives). The bundled overlays remove nothing, so
    ``remove`` is refused here rather than read."""
    from jsonpath_ng.ext import parse

    document = deepcopy(spec.document)
    for action in yaml.load(overlay.read_bytes(), Loader=_Loader)["actions"]:
        matches = parse(action["target"]).find(document)
        assert matches, f"{overlay.name}: {action['target']} selects nothing"
        assert not action.get("remove"), f"{overlay.name}: remove is not read here"
        for match in matches:
            if isinstance(match.value, list):
                match.value.append(deepcopy(action["update"]))
            else:
                _merged(match.value, action["update"])
    return SpecFile(spec.path, spec.sha256, document)


def _body_schema_name(spec: SpecFile, response: Any) -> str:
    if "$ref" in response:  # a shared response under components.responses
        node: Any = spec.document
        for part in response["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        response = node
    ref = response["content"]["application/json"]["schema"]["$ref"]
    if not isinstance(ref, str) or not ref.startswith(PREFIX):
        raise ValueError(f"{spec.path}: unexpected body schema reference {ref!r}")
    return ref.removeprefix(PREFIX)


def compact_roots(spec: SpecFile) -> dict[str, str]:
    """Schema names of the request body, the 200 body and the error body of the operation.

    The error body is what the operation's non-2xx responses declare; a spec that declares
    none (before 2026-08-21) gets the spec-wide ``ErrorResponse``.
    """
    operation = spec.document["paths"][COMPACT]["post"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    errors = {
        _body_schema_name(spec, response)
        for status, response in operation["responses"].items()
        if not str(status).startswith("2")
    }
    if len(errors) > 1:
        raise ValueError(f"{spec.path}: several error body schemas: {sorted(errors)}")
    return {
        "request": request.removeprefix(PREFIX),
        "response": _body_schema_name(spec, operation["responses"]["200"]),
        "error": errors.pop() if errors else "ErrorResponse",
    }


def _references(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                if not value.startswith(PREFIX):
                    raise ValueError(f"unsupported reference {value!r}")
                out.add(value.removeprefix(PREFIX))
            else:
                _references(value, out)
    elif isinstance(node, list):
        for value in node:
            _references(value, out)


def closure_names(spec: SpecFile, root: str) -> set[str]:
    """Every component schema reachable from ``root``."""
    seen: set[str] = set()
    pending = [root]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        found: set[str] = set()
        _references(spec.schemas[name], found)
        pending.extend(found - seen)
    return seen


def rewrite(node: Any, anchor: str | None) -> Any:
    if isinstance(node, list):
        return [rewrite(v, anchor) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "oneOf":
            out["anyOf"] = rewrite(value, anchor)
        elif key == "$recursiveRef":
            if value != "#" or anchor is None:
                raise ValueError(f"$recursiveRef {value!r} outside a $recursiveAnchor component")
            out["$ref"] = PREFIX + anchor
        else:
            out[key] = rewrite(value, anchor)
    return out


def closure_document(spec: SpecFile, root: str) -> dict[str, Any]:
    """A standalone 2020-12 document validating exactly what ``root`` describes."""
    schemas = {}
    for name in sorted(closure_names(spec, root)):
        schema = spec.schemas[name]
        anchored = isinstance(schema, dict) and schema.get("$recursiveAnchor") is True
        schemas[name] = rewrite(schema, name if anchored else None)
    return {"$schema": DIALECT, "$ref": PREFIX + root, "components": {"schemas": schemas}}


def undefined_required(spec: SpecFile, names: set[str]) -> set[tuple[str, str]]:
    """(component, property) pairs a component requires without defining them.

    Only flat object schemas count (no composition): there, a required name missing from
    ``properties`` can never be declared anywhere else.
    """
    found: set[tuple[str, str]] = set()
    for name in names:
        schema = spec.schemas[name]
        if not isinstance(schema, dict) or any(
            k in schema for k in ("allOf", "anyOf", "oneOf", "$ref")
        ):
            continue
        properties = schema.get("properties", {})
        for prop in schema.get("required", []):
            if prop not in properties:
                found.add((name, prop))
    return found
