"""Where the spec's own examples give ``null`` to a property its schema does not let be null.

The examples the spec attaches to its components (``example``, and the JSON text of
``x-oaiMeta.example`` on stream events) show what the service sends. Several show
``"user": null`` in a ``Response`` and ``"usage": null`` in ``response.created``, as the live
service does, while the schemas declare a plain string and object. Derivation accepts null at
exactly those properties and records each place as a defect; nothing else is widened.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from ._spec import SCHEMA_PREFIX, Spec

_MAX_DEPTH = 32


def null_in_examples(spec: Spec) -> dict[str, str]:
    """Property locations (``Response/allOf/2/properties/usage``) -> the example's component."""
    found: dict[str, str] = {}
    schemas = spec.schemas
    for name in sorted(schemas):
        node = schemas[name]
        if not isinstance(node, dict):
            continue
        for example in _examples(node):
            _Walk(schemas, name, found).value(node, name, example, 0)
    return found


def _examples(node: dict[str, Any]) -> list[Any]:
    out = []
    if isinstance(node.get("example"), dict):
        out.append(node["example"])
    meta = node.get("x-oaiMeta")
    text = meta.get("example") if isinstance(meta, dict) else None
    if isinstance(text, str):
        with contextlib.suppress(ValueError):  # prose or a fragment is no example body
            out.append(json.loads(text))
    return out


class _Walk:
    def __init__(self, schemas: dict[str, Any], owner: str, found: dict[str, str]) -> None:
        self.schemas = schemas
        self.owner = owner
        self.found = found

    def _deref(self, node: Any, where: str) -> tuple[Any, str]:
        for _ in range(_MAX_DEPTH):
            ref = node.get("$ref") if isinstance(node, dict) else None
            if not (isinstance(ref, str) and ref.startswith(SCHEMA_PREFIX)):
                break
            where = ref[len(SCHEMA_PREFIX) :]
            node = self.schemas.get(where)
        return node, where

    def value(self, node: Any, where: str, example: Any, depth: int) -> None:
        node, where = self._deref(node, where)
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return
        if isinstance(example, dict):
            for name, (schema, at) in self._properties(node, where, 0).items():
                if name not in example:
                    continue
                if example[name] is None and not self._accepts_null(schema, 0):
                    self.found.setdefault(at, self.owner)
                else:
                    self.value(schema, at, example[name], depth + 1)
        elif isinstance(example, list) and isinstance(node.get("items"), dict):
            for element in example:
                self.value(node["items"], f"{where}/items", element, depth + 1)
        for key in ("anyOf", "oneOf"):
            branches = node.get(key)
            if isinstance(branches, list) and isinstance(example, dict | list):
                for i, branch in enumerate(branches):
                    self.value(branch, f"{where}/{key}/{i}", example, depth + 1)

    def _properties(self, node: Any, where: str, depth: int) -> dict[str, tuple[Any, str]]:
        """Declared properties (through ``allOf`` and references) and where each is declared."""
        node, where = self._deref(node, where)
        out: dict[str, tuple[Any, str]] = {}
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return out
        parts = node.get("allOf")
        for i, part in enumerate(parts if isinstance(parts, list) else []):
            out.update(self._properties(part, f"{where}/allOf/{i}", depth + 1))
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, schema in properties.items():
                out[str(name)] = (schema, f"{where}/properties/{name}")
        return out

    def _accepts_null(self, node: Any, depth: int) -> bool:
        node, _ = self._deref(node, "")
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return True
        declared = node.get("type")
        if declared == "null" or (isinstance(declared, list) and "null" in declared):
            return True
        if node.get("nullable") is True or None in (node.get("enum") or ()):
            return True
        if "const" in node:
            return node["const"] is None
        branches = node.get("anyOf") or node.get("oneOf")
        if isinstance(branches, list):
            return any(self._accepts_null(b, depth + 1) for b in branches)
        parts = node.get("allOf")
        if isinstance(parts, list):
            return all(self._accepts_null(p, depth + 1) for p in parts)
        # No type and no enum: the derived schema takes any value, null included.
        return declared is None and "enum" not in node
