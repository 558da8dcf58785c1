"""The embedded compaction server: a local stand-in for ``POST /v1/responses/compact``.

It also serves ``POST /v1/responses`` with server-side compaction, streamed or not.
"""

from __future__ import annotations

from ._faults import FAULT_HEADER, parse_fault
from ._handler import COMPACT_ROUTES, RecordedRequest
from ._server import DIALECTS, CompactionServer, ServerError, start_server
from ._tokens import TokenError

__all__ = [
    "COMPACT_ROUTES",
    "DIALECTS",
    "FAULT_HEADER",
    "CompactionServer",
    "RecordedRequest",
    "ServerError",
    "TokenError",
    "parse_fault",
    "start_server",
]
