"""JSON pointers (RFC 6901): a key as a pointer token and back, and the node a pointer names.

Violations, schema changes and the places in a body or a schema document they concern are
named by JSON pointers (``/input/2/encrypted_content``); this module reads and writes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def escape(key: object) -> str:
    """A key as one pointer token: ``a/b`` -> ``a~1b``, ``~`` -> ``~0``."""
    return str(key).replace("~", "~0").replace("/", "~1")


def unescape(token: str) -> str:
    """One pointer token as the key it stands for: ``a~1b`` -> ``a/b``."""
    return token.replace("~1", "/").replace("~0", "~")


def tokens(pointer: str) -> list[str]:
    """The keys of a pointer, unescaped: ``/input/0`` -> ``["input", "0"]``; ``""`` -> ``[]``."""
    return [unescape(token) for token in pointer.split("/")[1:]]


def node_at(document: Any, keys: Iterable[str], missing: Any = None) -> Any:
    """The node ``keys`` lead to from ``document`` (``missing`` where one leads nowhere)."""
    node = document
    for key in keys:
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return missing
    return node
