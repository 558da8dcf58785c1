"""Which API call a URL is: standalone compaction, a response, or something else.

Gateways mount the API under their own prefixes (``/v1``, ``/openai/v1``, ``/api/llm``...), so
a call is known by how its normalized path ends, never by its host or prefix.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

_SLASHES = re.compile(r"/{2,}")
COMPACT_SUFFIX = "/responses/compact"
RESPONSES_SUFFIX = "/responses"
Route = Literal["compact", "responses"]


def normalize_path(path: str) -> str:
    """Collapse repeated slashes and drop a trailing one ('/v1//responses/' -> '/v1/responses')."""
    path = _SLASHES.sub("/", path or "/")
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return path


def request_path(uri_or_path: str) -> str:
    """The normalized path of a URL, or of a path with an optional query."""
    path = urlsplit(uri_or_path).path if "://" in uri_or_path else uri_or_path.split("?")[0]
    return normalize_path(path)


def is_compact_path(uri_or_path: str) -> bool:
    """Whether a URL or path is a ``/responses/compact`` call (under any prefix)."""
    return request_path(uri_or_path).endswith(COMPACT_SUFFIX)


def route_of(method: str, uri_or_path: str) -> Route | None:
    """``compact`` or ``responses`` for the POSTs the schemas cover, else None."""
    if method.upper() != "POST":
        return None
    path = request_path(uri_or_path)
    if path.endswith(COMPACT_SUFFIX):
        return "compact"
    if path.endswith(RESPONSES_SUFFIX):
        return "responses"
    return None
