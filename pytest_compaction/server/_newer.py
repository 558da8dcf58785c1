"""Request shapes the API takes today that older schema versions lack, checked by fixed rules.

The openai SDK 3.57.0 sends two shapes no bundled schema version before ``2026-11-19``
declares: the ``configuration_update`` input item and the top-level ``image`` option. A version
that declares a shape judges it by its schema; for a version that does not, the server judges it
by the rules below, so that acceptance does not depend on the version in force:

- ``image``: an object whose only property is ``context_compression``, one of ``auto``,
  ``enabled``, ``disabled`` (optional);
- ``configuration_update``: ``type``, an optional string ``id``, and ``reasoning`` (an object
  whose only property is ``effort``: null or a reasoning effort) and/or ``text`` (an object
  whose only property, required, is ``format``: an object whose ``type`` is ``text`` or
  ``json_schema``); at least one of ``reasoning`` and ``text``.

Violations are answered as the schema check answers them (HTTP 400, ``param`` in the API's
notation).
"""

from __future__ import annotations

from typing import Any

from ._apierror import ApiError, api_type_word, bad_request

IMAGE = "image"
CONFIGURATION_UPDATE = "configuration_update"
COMPRESSION_POLICIES = ("auto", "enabled", "disabled")
# What ``auto`` resolves to: the stand-in model always supports image context compression.
AUTO_POLICY = "enabled"
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
TEXT_FORMATS = ("text", "json_schema")


def check_image(value: Any) -> None:
    """Raise ApiError unless ``value`` is a valid top-level ``image`` option."""
    _object(value, IMAGE, allowed={"context_compression"})
    if "context_compression" in value:
        _one_of(value["context_compression"], f"{IMAGE}.context_compression", COMPRESSION_POLICIES)


def check_configuration_update(item: dict[str, Any], where: str) -> None:
    """Raise ApiError unless ``item`` (at ``where``, as ``input[2]``) is a valid update."""
    _object(item, where, allowed={"type", "id", "reasoning", "text"})
    if item.get("id") is not None and not isinstance(item["id"], str):
        raise _invalid_type(f"{where}.id", "a string", item["id"])
    if "reasoning" not in item and "text" not in item:
        raise bad_request(
            f"Invalid '{where}': supply 'reasoning', 'text', or both.",
            param=where,
            code="invalid_value",
        )
    if "reasoning" in item:
        reasoning = item["reasoning"]
        _object(reasoning, f"{where}.reasoning", allowed={"effort"})
        effort = reasoning.get("effort")
        if effort is not None:
            _one_of(effort, f"{where}.reasoning.effort", REASONING_EFFORTS)
    if "text" in item:
        text = item["text"]
        _object(text, f"{where}.text", allowed={"format"})
        if "format" not in text:
            raise bad_request(
                f"Missing required parameter: '{where}.text.format'.",
                param=f"{where}.text.format",
                code="missing_required_parameter",
            )
        _object(text["format"], f"{where}.text.format", allowed=None)
        _one_of(text["format"].get("type"), f"{where}.text.format.type", TEXT_FORMATS)


def effective_image(requested: Any) -> dict[str, str]:
    """The ``image`` an answer reports for a valid requested option: the policy in effect."""
    policy = requested.get("context_compression", "auto") if isinstance(requested, dict) else "auto"
    return {"context_compression": AUTO_POLICY if policy == "auto" else str(policy)}


def _object(value: Any, param: str, *, allowed: set[str] | None) -> None:
    if not isinstance(value, dict):
        raise _invalid_type(param, "an object", value)
    for name in value:
        if allowed is not None and name not in allowed:
            raise bad_request(
                f"Unknown parameter: '{param}.{name}'.",
                param=f"{param}.{name}",
                code="unknown_parameter",
            )


def _one_of(value: Any, param: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        supported = ", ".join(f"'{c}'" for c in choices)
        raise bad_request(
            f"Invalid value: {value!r}. Supported values are: {supported}.",
            param=param,
            code="invalid_value",
        )


def _invalid_type(param: str, expected: str, value: Any) -> ApiError:
    return bad_request(
        f"Invalid type for '{param}': expected {expected}, but got {api_type_word(value)} instead.",
        param=param,
        code="invalid_type",
    )
