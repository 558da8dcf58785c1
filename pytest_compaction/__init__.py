"""pytest-compaction: record, replay and validate OpenAI ``/responses/compact`` exchanges."""

from __future__ import annotations

from ._errors import BodyError, CompactionError, SpecError, VersionError

__version__ = "0.1.0"

__all__ = [
    "BodyError",
    "CompactionError",
    "SpecError",
    "VersionError",
    "__version__",
]
