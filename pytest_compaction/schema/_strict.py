"""The strict variant of a derived schema: every declared object closed.

The spec's objects are open, so undocumented properties are not violations. The strict
variant answers "valid *and* nothing undocumented" in one native pass; the validator uses it
as its fast path and for ``--strict``. It is derived alongside the open documents.
"""

from __future__ import annotations

from typing import Any


def closed(document: dict[str, Any], *, assembled: bool = False) -> dict[str, Any]:
    """A copy in which no declared object accepts undeclared properties.

    Objects composed with ``allOf``/``$ref`` beside ``properties`` close with
    ``unevaluatedProperties`` so that their parts' declarations still count; the parts
    they reference are used through open copies. With ``assembled``, so does an object made
    of ``allOf`` parts only (``Response``, ``CreateResponse``): closed one by one, each part
    would refuse its siblings' properties. (The compaction documents are written without it,
    so that they stay byte for byte what they were.)
    """
    defs = document["$defs"]
    out_defs: dict[str, Any] = {}
    open_defs: dict[str, Any] = {}

    def declares(node: Any) -> bool:
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            node = defs.get(node["$ref"].rsplit("/", 1)[-1])
        return isinstance(node, dict) and ("properties" in node or "allOf" in node)

    def visit(node: Any, close: bool) -> Any:
        if not isinstance(node, dict):
            return node
        parts = node.get("allOf")
        whole = assembled and isinstance(parts, list) and any(map(declares, parts))
        composed = ("allOf" in node or "$ref" in node) and ("properties" in node or whole)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("properties", "patternProperties", "dependentSchemas"):
                out[key] = {k: visit(v, True) for k, v in value.items()}
            elif key in ("allOf", "anyOf", "oneOf", "prefixItems"):
                # allOf parts of a composed object must stay open (see above).
                keep = not (composed and key == "allOf")
                out[key] = [visit(v, keep) if keep else opened(v) for v in value]
            elif key in ("items", "additionalProperties", "not", "contains", "then", "else"):
                out[key] = visit(value, True)
            elif key == "$ref" and composed:
                out[key] = opened_ref(value)
            else:  # "if", "propertyNames" and values: conditions are never closed
                out[key] = value
        if close and (composed or "properties" in node) and "additionalProperties" not in node:
            if composed:
                out["unevaluatedProperties"] = False
            elif node.get("type") == "object":
                out["additionalProperties"] = False
        return out

    def opened_ref(ref: str) -> str:
        name = ref.rsplit("/", 1)[-1]
        if name not in open_defs:
            open_defs[name] = None
            open_defs[name] = visit(defs[name], False)
        return f"#/$defs/{name}~open"

    def opened(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"$ref"}:
            return {"$ref": opened_ref(node["$ref"])}
        return visit(node, False)

    for name, node in defs.items():
        out_defs[name] = visit(node, True)
    out_defs.update({f"{k}~open": v for k, v in open_defs.items()})
    return {**document, "$defs": out_defs}
