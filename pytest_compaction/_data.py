"""Results as JSON-ready data: one conversion for every result type's ``as_dict()``.

A result names the keys of its JSON form in their order, as ``namedtuple`` takes field names:
``as_data(self, "path message item_type")``. A key's value is the attribute of that name (a
field or a property), or the keyword argument of that name for a key named otherwise or a value
computed on the spot. Values are converted on the way: a nested result by its own ``as_dict()``,
tuples and lists to lists, a mapping's values likewise, a path to its text; anything else is
taken as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def as_data(value: object, keys: str, /, **given: Any) -> dict[str, Any]:
    """``{key: value.key, ...}`` for the space-separated ``keys``, in that order, JSON-ready."""
    names = keys.split()
    unnamed = given.keys() - set(names)
    if unnamed:
        raise TypeError(f"values given for keys not named: {', '.join(sorted(unnamed))}")
    return {k: json_ready(given[k] if k in given else getattr(value, k)) for k in names}


def json_ready(value: Any) -> Any:
    """``value`` as ``json.dumps`` and an equality test against plain data both want it."""
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):  # before tuples: a NamedTuple result is one
        return as_dict()
    if isinstance(value, tuple | list):
        return [json_ready(v) for v in value]
    if isinstance(value, Mapping):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
