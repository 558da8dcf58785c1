"""What judging exchanges found, counted one way for every reader, and the headline of a failure.

A reader (the recorder, the cassette transports, the proxy) judges each exchange with
:mod:`._judge` and hands the verdict to :meth:`Tally.record`. The exchange counts as validated
when a schema covers either body. Its violations are kept each time it is judged (a replayed
exchange is judged at every play); its drift and its notes once each, the notes also of an
exchange no schema covers (what a stream outside the contract does). Every line starts with
where the exchange is: ``exchange 3``, or the proxy's ``exchange 3 (POST /v1/responses)``.

:func:`does_not_conform` is the headline, with the violations under it, of an exchange whose
violations fail it; :func:`totals` the counts a summary line gives. A reader offers the counts
and lines as its own attributes through :class:`Tallied`. A tally is not locked: readers that
judge from several threads hold their own lock around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..schema._report import Report
from ._dialects import DEFAULT_DIALECT
from ._judge import Judged, lines


@dataclass
class Tally:
    """Counts and lines of the exchanges judged so far.

    ``drift_once`` false keeps drift like violations, at every judgement; ``unjudged_notes``
    false keeps no notes of exchanges no schema covers. The cassette transports keep them so.
    """

    validated: int = 0
    violations: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    drift_once: bool = field(default=True, repr=False, compare=False)
    unjudged_notes: bool = field(default=True, repr=False, compare=False)

    def record(
        self, where: str, request: Report | None, response: Judged, status: int
    ) -> tuple[list[str], list[str]]:
        """Count one judged exchange; its (violation, drift) lines without ``where``.

        ``request`` and ``response`` are what :mod:`._judge` found for its two bodies,
        ``status`` the answer's. Both lists are empty when no schema covers the exchange.
        """
        covered = request is not None or response.report is not None
        if covered or self.unjudged_notes:
            for note in response.notes:
                _add_once(self.notes, f"{where} {note}")
        if not covered:
            return [], []
        self.validated += 1
        violations, drift = lines(request, response.report, status)
        self.violations += [f"{where} {line}" for line in violations]
        for line in drift:
            if self.drift_once:
                _add_once(self.drift, f"{where} {line}")
            else:
                self.drift.append(f"{where} {line}")
        return violations, drift

    def counts(self) -> dict[str, int]:
        """How many exchanges were validated, and how many lines of each kind were kept."""
        return {
            "validated": self.validated,
            "violations": len(self.violations),
            "drift": len(self.drift),
            "notes": len(self.notes),
        }


def _add_once(kept: list[str], line: str) -> None:
    if line not in kept:
        kept.append(line)


class Tallied:
    """The tally's counts and lines under the names a reader offers them (read-only)."""

    tally: Tally

    @property
    def validated(self) -> int:
        return self.tally.validated

    @property
    def violations(self) -> list[str]:
        return self.tally.violations

    @property
    def drift(self) -> list[str]:
        return self.tally.drift

    @property
    def notes(self) -> list[str]:
        return self.tally.notes


def does_not_conform(
    subject: str,
    version: str,
    violations: Sequence[str],
    *,
    dialect: str = DEFAULT_DIALECT,
    when: str | None = None,
    after: str | None = None,
) -> str:
    """``{subject} does not conform to schema version {version}``, then the violations.

    The headline names a ``dialect`` other than openai's (``under the azure dialect``) and
    ``when`` the exchange was judged (``(recorded)``); ``after`` is a last line on its own.
    """
    under = "" if dialect == DEFAULT_DIALECT else f" under the {dialect} dialect"
    context = f" ({when})" if when else ""
    head = f"{subject} does not conform to schema version {version}{under}{context}:"
    text = "\n".join([head, *(f"  {line}" for line in violations)])
    return text if after is None else f"{text}\n{after}"


def totals(validated: int, violations: int, drift: int) -> str:
    """``3 validated; 1 violation(s), 0 drift note(s)``: the counts a summary line gives."""
    return f"{validated} validated; {violations} violation(s), {drift} drift note(s)"
