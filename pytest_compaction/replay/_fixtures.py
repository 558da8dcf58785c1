"""Recorded exchanges as plain data, and as the openai SDK's typed models, for HTTP-free tests.

Code that consumes compaction results (a memory layer, a chat store...) is best tested on what
the API really answered. ``load_exchanges`` gives each exchange's JSON bodies, status and
headers; ``load_compacted_responses`` gives the 2xx ``/responses/compact`` answers as the SDK's
``CompactedResponse``, built the way the SDK builds them from the wire.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import CompactionError
from ..cassette._body import parse_json_bytes
from ..cassette._exchange import Exchange, header_get
from ..cassette._file import load_cassette
from ..contract._routes import request_path, route_of

if TYPE_CHECKING:
    from openai.types.responses import CompactedResponse


@dataclass(frozen=True)
class RecordedExchange:
    """One recorded request and response: parsed JSON bodies (``None`` when not JSON), headers."""

    index: int
    method: str
    url: str
    status: int
    request: Any
    response: Any
    request_headers: Mapping[str, list[str]] = field(default_factory=dict)
    response_headers: Mapping[str, list[str]] = field(default_factory=dict)
    request_body: bytes | None = None
    response_body: bytes = b""
    source: str = "<cassette>"

    @property
    def path(self) -> str:
        return request_path(self.url)

    @property
    def is_compact(self) -> bool:
        """Whether this is a ``POST /responses/compact`` exchange (under any prefix)."""
        return route_of(self.method, self.url) == "compact"

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The response body as text (server-sent events, error pages)."""
        return self.response_body.decode("utf-8", errors="replace")

    def header(self, name: str, *, part: str = "response") -> str | None:
        """First value of a header (case-insensitive) of the response, or ``part="request"``."""
        headers = self.response_headers if part == "response" else self.request_headers
        values = header_get(headers, name)
        return values[0] if values else None

    def as_model(self) -> CompactedResponse:
        """The response as the openai SDK's ``CompactedResponse``, built as the SDK builds it.

        The SDK does not validate what it parses (the compacted output re-issues user messages,
        which its output item types do not describe), so neither does this: the model is what
        calling code would have received from ``client.responses.compact(...)``.
        """
        model_class = _compacted_response_class()
        where = f"{self.source}: exchange {self.index} ({self.method} {self.url})"
        if not self.is_compact:
            raise CompactionError(f"{where} is not a /responses/compact exchange")
        if not self.ok:
            raise CompactionError(f"{where} is an error response (status {self.status})")
        if not isinstance(self.response, dict):
            raise CompactionError(f"{where}: the response body is not a JSON object")
        return model_class.construct(**self.response)


def _compacted_response_class() -> type[CompactedResponse]:
    try:
        from openai.types.responses import CompactedResponse
    except ImportError:
        raise CompactionError(
            "loading exchanges as CompactedResponse models needs the openai package: "
            "pip install openai"
        ) from None
    return CompactedResponse


def _json_or_none(body: bytes | None) -> Any:
    is_json, value = parse_json_bytes(body)
    return value if is_json else None


def recorded_exchanges(
    exchanges: list[Exchange], source: str = "<cassette>"
) -> list[RecordedExchange]:
    """:class:`RecordedExchange` views of already loaded exchanges."""
    return [
        RecordedExchange(
            index=i,
            method=ex.method.upper(),
            url=ex.uri,
            status=ex.status,
            request=_json_or_none(ex.request_body),
            response=_json_or_none(ex.response_body),
            request_headers=ex.request_headers,
            response_headers=ex.response_headers,
            request_body=ex.request_body,
            response_body=ex.response_body,
            source=source,
        )
        for i, ex in enumerate(exchanges)
    ]


def load_exchanges(
    path: str | os.PathLike[str], *, compact_only: bool = False
) -> list[RecordedExchange]:
    """The exchanges of a cassette (any layout the loader reads), in recorded order.

    ``compact_only`` keeps the ``/responses/compact`` exchanges only (indexes stay those of
    the cassette).
    """
    data = load_cassette(path)
    out = recorded_exchanges(data.exchanges, str(path))
    return [ex for ex in out if ex.is_compact] if compact_only else out


def load_compacted_responses(path: str | os.PathLike[str]) -> list[CompactedResponse]:
    """Every successful ``/responses/compact`` answer of a cassette as ``CompactedResponse``."""
    _compacted_response_class()  # a missing SDK is reported before the cassette is read
    return [ex.as_model() for ex in load_exchanges(path) if ex.is_compact and ex.ok]
