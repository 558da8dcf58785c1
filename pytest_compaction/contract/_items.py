"""The items of a request or an answer, as the chaining rules compare and name them.

What an item is (its ``id``, its ``type``), what stays the same when a client re-renders an item
it passes back (:func:`essence`), and how a message says where two items differ.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from typing import Any


def id_of(item: Any) -> str | None:
    value = item.get("id") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def kind_of(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    kind = item.get("type", "message" if "role" in item else None)
    return kind if isinstance(kind, str) else None


def canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# Text is compared with typographic quotes and dashes folded to ASCII: text pipelines and
# cassette scrubbers ASCII-fy them, and the recorded pydantic-ai stream chain passes the model's
# "\u2019" and "\u2014" back as "'" and "--" (the live API answered normally).
_PUNCTUATION = str.maketrans(
    dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'")
    | dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"')
    | dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-")
)
_DASHES = re.compile("-+")


def _fold(text: str) -> str:
    return _DASHES.sub("-", unicodedata.normalize("NFKC", text).translate(_PUNCTUATION))


def _texts(content: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(content, str):
        return (("text", _fold(content)),)
    if not isinstance(content, list):
        return (("value", canon(content)),)
    parts: list[tuple[str, str]] = []
    for part in content:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(("text", _fold(part["text"])))  # input_text and output_text alike
        elif isinstance(part, dict) and isinstance(part.get("refusal"), str):
            parts.append(("refusal", _fold(part["refusal"])))
        else:
            parts.append(("part", canon(part)))
    return tuple(parts)


def essence(item: Any) -> Any:
    """What stays the same when a client re-renders an item it passes back."""
    if not isinstance(item, dict):
        return ("value", canon(item))
    kind = kind_of(item)
    if kind == "message":
        return ("message", canon(item.get("role")), _texts(item.get("content")))
    rest = {
        k: v
        for k, v in item.items()
        if k not in ("id", "status", "encrypted_content") and v is not None
    }
    return (kind, canon(rest))


def model_made(item: Any) -> bool:
    """An output item only the model can have written (not a re-issued user turn, no token)."""
    return (
        isinstance(item, dict)
        and "encrypted_content" not in item
        and item.get("role") != "user"
        and kind_of(item) not in (None, "compaction")
    )


def last_compaction(items: Sequence[Any]) -> int:
    """The index of the most recent compaction item, 0 when there is none."""
    found = [i for i, item in enumerate(items) if kind_of(item) == "compaction"]
    return found[-1] if found else 0


def loose_view(item: Any) -> Any:
    """The essence as a JSON value, to say how two equivalent-looking items differ."""
    if isinstance(item, dict) and kind_of(item) == "message":
        return {"role": item.get("role"), "content": [t for _, t in _texts(item.get("content"))]}
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if k not in ("id", "status", "encrypted_content")}
    return item


def without_token(item: Any) -> Any:
    """The item as rule 1 compares it: the token is rule 4's, a null field an absent one."""
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if k != "encrypted_content" and v is not None}
    return item


def identical(returned: Any, passed: Any, *, loose: bool) -> bool:
    """Whether ``passed`` is ``returned`` as it was; ``loose``: as re-rendered (:func:`essence`)."""
    if loose:
        return bool(essence(returned) == essence(passed))
    return bool(without_token(returned) == without_token(passed))


def describe(item: Any) -> str:
    if not isinstance(item, dict):
        return f"{type(item).__name__} item"
    kind = kind_of(item)
    words = [str(kind) if kind is not None else "item"]
    if id_of(item):
        words.append(str(id_of(item)))
    if kind == "message" and isinstance(item.get("role"), str):
        words.append(f"({item['role']})")
    return " ".join(words)


def _short(value: Any) -> str:
    text = canon(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def difference(returned: Any, passed: Any, where: str = "") -> str:
    """The first place two JSON values differ, for a message."""
    if isinstance(returned, dict) and isinstance(passed, dict):
        for key in [*returned, *(k for k in passed if k not in returned)]:
            sub = f"{where}.{key}" if where else str(key)
            if key not in passed:
                return f"{sub} is missing"
            if key not in returned:
                return f"{sub} was added"
            if returned[key] != passed[key]:
                return difference(returned[key], passed[key], sub)
    elif isinstance(returned, list) and isinstance(passed, list):
        for i, (a, b) in enumerate(zip(returned, passed, strict=False)):
            if a != b:
                return difference(a, b, f"{where}[{i}]")
        if len(returned) != len(passed):
            return f"{where or 'value'} has {len(passed)} element(s), not {len(returned)}"
    return f"{where or 'value'} is {_short(passed)}, was {_short(returned)}"


def token_difference(returned: str, passed: Any) -> str:
    if not isinstance(passed, str):
        return "it is missing" if passed is None else f"it is a {type(passed).__name__}"
    at = next(
        (i for i, (a, b) in enumerate(zip(returned, passed, strict=False)) if a != b),
        min(len(returned), len(passed)),
    )
    return f"first difference at character {at} (length {len(passed)}, was {len(returned)})"
