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
