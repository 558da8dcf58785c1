"""Which API call a URL is: standalone compaction, a response, or something else.

Gateways mount the API under their own prefixes (``/v1``, ``/openai/v1``, ``/api/llm``...), so
a call is known by how its normalized path ends, never by its host or prefix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

_SLASHES = re.compile(r"/{2,}")
COMPACT_SUFFIX = "/responses/compact"
RESPONSES_SUFFIX = "/responses"
Route = Literal["compact", "responses"]
# ``client.beta.responses.*`` adds ``?beta=true`` and the header
# ``openai-beta: responses_multi_agent=v1``.
BETA_HEADER = "openai-beta"
BETA_FEATURE = "responses_multi_agent"


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


def is_beta(uri: str, headers: Mapping[str, Any] | None = None) -> bool:
    """Whether a call asks for the beta contract: ``beta=true`` in the query, or the header.

    ``headers``: one value or a list of values per name, any case.
    """
    query = urlsplit(uri).query if "://" in uri else uri.partition("?")[2]
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key.lower() == "beta" and value.lower() == "true":
            return True
    for key, values in (headers or {}).items():
        if str(key).lower() != BETA_HEADER:
            continue
        for value in values if isinstance(values, list | tuple) else [values]:
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            if any(part.strip().startswith(BETA_FEATURE) for part in text.split(",")):
                return True
    return False
