"""The findings of validating a body: :class:`Violation`, :class:`DriftNote`, :class:`Report`.

Plain value tuples, cheap to import and to build; the validator that makes them and the code
that explains a failure live in ``_validate``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._data import as_data
from ._versions import Kind


class Violation(NamedTuple):
    """One way a body breaks the contract."""

    path: str  # JSON pointer into the body, "" for the body itself
    message: str  # one line for a person, location included
    schema_path: str = ""
    item_type: str | None = None
    keyword: str = ""

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, Any]:
        return as_data(self, "path message schema_path item_type keyword")


class DriftNote(NamedTuple):
    """A property the body carries that the spec does not declare (objects are open)."""

    path: str
    message: str
    item_type: str | None = None

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, Any]:
        return as_data(self, "path message item_type")


class Report(NamedTuple):
    """What validating one body found."""

    kind: Kind
    version: str
    violations: tuple[Violation, ...] = ()
    drift: tuple[DriftNote, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return as_data(self, "kind version valid violations drift")
