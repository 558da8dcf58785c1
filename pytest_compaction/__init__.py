"""pytest-compaction: record, replay and validate OpenAI ``/responses/compact`` exchanges."""

from __future__ import annotations

from ._errors import BodyError, CompactionError, SpecError, VersionError
from ._server import CompactionServer

__version__ = "0.1.0"

__all__ = [
    "BodyError",
    "CompactionError",
    "CompactionServer",
    "SpecError",
    "VersionError",
    "__version__",
]
