"""The project's own exceptions: every failure a user can cause is one of these."""

from __future__ import annotations


class CompactionError(Exception):
    """Base class of every error pytest-compaction raises on purpose."""


class SpecError(CompactionError):
    """The OpenAPI document cannot be read or lacks what derivation needs."""


class VersionError(CompactionError):
    """A schema version name that matches no bundled or given version."""


class BodyError(CompactionError):
    """A body that is not JSON at all (bytes that do not decode or parse)."""


def counted(n: int, noun: str) -> str:
    """``1 exchange``, ``2 exchanges``: a count in a message, in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
