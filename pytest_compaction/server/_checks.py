"""Request checking: the body must be JSON, declare only known parameters and match the schema.

Errors are answered as the real API answers them: HTTP 400 with
``{"error": {"message", "type": "invalid_request_error", "param", "code"}}``, ``param`` naming the
offending field in the API's own notation (``input[0].role``).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from .._pointer import node_at, unescape
from ..schema._validate import MAX_DEPTH, depth_exceeds, json_type
from ..schema._versions import Kind, load_schema_set, resolve_version
from ._apierror import api_type_word, bad_request
from ._newer import CONFIGURATION_UPDATE, IMAGE, check_configuration_update, check_image

_NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)
_TYPE_NAMES = {
    "string": "a string",
    "array": "an array",
    "object": "an object",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
}


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or ApiError."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # nesting past the parser's depth
        raise bad_request(_NOT_JSON, param=None, code=None) from None
    if not isinstance(body, dict):
        raise bad_request(
            f"Invalid type for request body: expected an object, but got {_json_type(body)} "
            "instead.",
            param=None,
            code="invalid_type",
        )
    return body


def _resolve(document: dict[str, Any], node: Any) -> Any:
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 32:
        ref = node["$ref"]
        node = document
        for part in ref.removeprefix("#/").split("/") if ref.startswith("#/") else []:
            node = node[unescape(part)]
        seen += 1
    return node


def _root(version: str | None, kind: Kind) -> tuple[dict[str, Any], dict[str, Any]]:
    document = load_schema_set(version).document(kind)
    return document, _top_properties(document, _resolve(document, document))


def _top_properties(document: dict[str, Any], node: Any, depth: int = 0) -> dict[str, Any]:
    """The properties an object schema declares, its ``allOf`` parts' included (CreateResponse)."""
    out: dict[str, Any] = {}
    if not isinstance(node, dict) or depth > 16:
        return out
    for part in node.get("allOf", []):
        out.update(_top_properties(document, _resolve(document, part), depth + 1))
    out.update(node.get("properties", {}))
    return out


@cache
def declared_parameters(version: str | None = None, kind: Kind = "request") -> frozenset[str]:
    """Top-level property names the request schema (of ``kind``) of ``version`` declares."""
    _, properties = _root(version, kind)
    return frozenset(properties)


def _allowed_types(document: dict[str, Any], node: Any, depth: int = 0) -> set[str] | None:
    """JSON types a schema can accept (None: any), looking through $ref/anyOf/oneOf/enum."""
    node = _resolve(document, node)
    if not isinstance(node, dict) or depth > 16:
        return None
    if "type" in node:
        kinds = node["type"]
        return {kinds} if isinstance(kinds, str) else set(kinds)
    if "const" in node or "enum" in node:
        values = [node["const"]] if "const" in node else list(node["enum"])
        return {json_type(v) for v in values}
    branches = node.get("anyOf") or node.get("oneOf")
    if isinstance(branches, list):
        found: set[str] = set()
        for branch in branches:
            kinds = _allowed_types(document, branch, depth + 1)
            if kinds is None:
                return None
            found |= kinds
        return found
    return None


def _wrong_top_level_type(
    version: str | None, kind: Kind, name: str, value: Any
) -> set[str] | None:
    """The types a top-level parameter accepts, when ``value`` is none of them."""
    document, properties = _root(version, kind)
    kinds = _allowed_types(document, properties.get(name))
    if kinds is None:
        return None
    actual = json_type(value)
    if actual in kinds or (actual == "integer" and "number" in kinds):
        return None
    return kinds


def check_request(
    body: dict[str, Any], *, version: str | None = None, kind: Kind = "request"
) -> None:
    """Raise ApiError for the first problem with ``body``, in the order the API reports them.

    ``kind`` is the request schema: ``request`` (compaction), ``beta.request`` or
    ``responses.request``. ``version`` None means the newest available version. The shapes
    ``_newer`` describes are judged by its rules when the version does not declare them.
    """
    version = resolve_version(version)
    declared = declared_parameters(version, kind)
    own_image = IMAGE not in declared
    for name in body:
        if name not in declared and not (own_image and name == IMAGE):
            raise bad_request(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    updates: dict[int, dict[str, Any]] = {}
    if not declares_value(version, kind, CONFIGURATION_UPDATE):
        updates = _configuration_updates(body.get("input"))
    _schema_check(body, version, kind, [f"/input/{index}" for index in updates])
    if own_image and IMAGE in body:
        check_image(body[IMAGE])
    for index, item in updates.items():
        check_configuration_update(item, f"input[{index}]")


@cache
def declares_value(version: str, kind: Kind, value: str) -> bool:
    """Whether the schema of ``kind`` in ``version`` names ``value`` as a ``const`` or ``enum``.

    ``version`` is a resolved name (see ``resolve_version``).
    """
    stack: list[Any] = [load_schema_set(version).document(kind)]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("const") == value:
                return True
            choices = node.get("enum")
            if isinstance(choices, list) and value in choices:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _configuration_updates(items: Any) -> dict[int, dict[str, Any]]:
    """The ``configuration_update`` items of an input array, by index."""
    if not isinstance(items, list):
        return {}
    return {
        index: item
        for index, item in enumerate(items)
        if isinstance(item, dict) and item.get("type") == CONFIGURATION_UPDATE
    }


def _schema_check(
    body: dict[str, Any], version: str | None, kind: Kind, set_aside: list[str]
) -> None:
    # The one place the project's validator is consulted.
    from ..schema._validate import validate

    report = validate(kind, body, version=version)
    if report.valid and depth_exceeds(body, MAX_DEPTH):
        # The validator's native pass accepts any depth, but answering copies and encodes the
        # body recursively: refused as the validator refuses a deep body that fails its schema.
        raise bad_request(
            f"Invalid '': body: nesting deeper than {MAX_DEPTH} levels",
            param="",
            code="invalid_value",
        )
    violations = [v for v in report.violations if not _under(v.path, set_aside)]
    if report.valid or not violations:
        return
    # The shallowest problem first: a missing ``model`` before a detail deep in ``input``. A
    # missing property's pointer ends with the property: its depth is the object lacking it.
    violation = min(
        violations,
        key=lambda v: len(_pointer_parts(v.path)) - (v.keyword == "required"),
    )
    keyword = _last_keyword(str(getattr(violation, "schema_path", "")))
    parts = _pointer_parts(violation.path)
    message = violation.message
    if keyword == "required":  # the pointer already ends with the missing property
        param = _param(parts)
        raise bad_request(
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    param = _param(parts)
    value = node_at(body, parts)
    expected = _wrong_top_level_type(version, kind, parts[0], value) if len(parts) == 1 else None
    if expected is not None:
        wanted = " or ".join(_TYPE_NAMES.get(k, k) for k in sorted(expected - {"null"}))
        raise bad_request(
            f"Invalid type for '{param}': expected {wanted}, but got {_json_type(value)} instead.",
            param=param,
            code="invalid_type",
        )
    if keyword == "type":
        raise bad_request(
            f"Invalid type for '{param}': got {_json_type(value)}. ({message})",
            param=param,
            code="invalid_type",
        )
    if keyword in {"enum", "const"}:
        raise bad_request(
            f"Invalid value: {_short(value)}. ({message})", param=param, code="invalid_value"
        )
    if keyword == "maxLength":
        code = "string_above_max_length"
    elif keyword == "minLength":
        code = "string_below_min_length"
    elif keyword == "maxItems":
        code = "array_above_max_length"
    else:
        code = "invalid_value"
    raise bad_request(f"Invalid '{param}': {message}", param=param, code=code)


def _under(pointer: str, prefixes: list[str]) -> bool:
    """Whether a JSON pointer is one of ``prefixes`` or lies below one."""
    return any(pointer == p or pointer.startswith(p + "/") for p in prefixes)


def _last_keyword(schema_path: str) -> str:
    for part in reversed(schema_path.strip("/").split("/")):
        if part and not part.isdigit():
            return part
    return ""


def _pointer_parts(pointer: str) -> list[str]:
    if not pointer or pointer == "/":
        return []
    return [unescape(p) for p in pointer.lstrip("/").split("/")]


def _param(parts: list[str]) -> str:
    """``["input", "0", "role"]`` -> ``input[0].role`` (the API's notation)."""
    text = ""
    for part in parts:
        if part.isdigit():
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _json_type(value: Any) -> str:
    return api_type_word(value)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    text = "'" + text[1:-1] + "'" if isinstance(value, str) else text
    return text if len(text) <= 80 else text[:77] + "..."
