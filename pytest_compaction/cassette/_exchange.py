"""The exchange model: what a cassette holds, read or about to be written, and its headers.

Headers keep every value of a name (``{name: [values]}``) and the case the traffic used; the
helpers here look names up case-insensitively. :class:`CassetteError` is what any part of
reading, decoding or writing a cassette raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._errors import CompactionError

Headers = dict[str, list[str]]


class CassetteError(CompactionError):
    """A cassette that cannot be read, parsed or written."""


@dataclass
class Exchange:
    """One recorded request and its response, bodies decoded (never compressed)."""

    method: str
    uri: str
    request_headers: Headers = field(default_factory=dict)
    request_body: bytes | None = None
    status: int = 200
    reason: str = "OK"
    response_headers: Headers = field(default_factory=dict)
    response_body: bytes = b""

    @property
    def path(self) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.uri).path


@dataclass
class CassetteData:
    """The content of one cassette file."""

    exchanges: list[Exchange] = field(default_factory=list)
    schema_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other top-level keys, kept as they are
    dialect: str | None = None  # the gateway dialect the exchanges were validated under
    # When the exchanges were recorded (UTC, whole seconds); None: the cassette does not say.
    recorded_at: datetime | None = None


def header_get(headers: Mapping[str, list[str]], name: str) -> list[str] | None:
    """Values of a header, case-insensitively."""
    lname = name.lower()
    for key, values in headers.items():
        if key.lower() == lname:
            return values
    return None


def headers_without(headers: Mapping[str, list[str]], *names: str) -> Headers:
    """A copy of ``headers`` without the named ones (any case)."""
    drop = {n.lower() for n in names}
    return {k: list(v) for k, v in headers.items() if k.lower() not in drop}


def header_name(headers: Mapping[str, list[str]], name: str) -> str:
    """The key ``headers`` hold ``name`` under (its original case), else ``name``."""
    for key in headers:
        if key.lower() == name:
            return key
    return name
