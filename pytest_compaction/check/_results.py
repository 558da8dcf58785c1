"""What a check found, as data: verdicts, the causes of a difference, results per cassette and run.

A :class:`Verdict` is an exchange judged by one version; under ``--against`` an
:class:`ExchangeResult` has two, and the :class:`Cause` of each difference between them (see
``_explain``). :class:`CassetteResult` and :class:`CheckResult` sum them up and turn into JSON
with ``as_dict()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from .._data import as_data
from ..contract._chain import ChainViolation
from ..schema._diff import Change
from ..schema._report import Report, Violation

Side = Literal["request", "response", "error"]
Transition = Literal["still passing", "now failing", "now passing", "still failing"]


@dataclass(frozen=True)
class Verdict:
    """An exchange judged by one version (see ``contract._judge`` for which bodies, as what)."""

    version: str
    request: Report
    response: Report | None  # None: a stream no schema covers (notes only)
    notes: tuple[str, ...] = ()  # what a recorded stream does on purpose: not failures

    @property
    def valid(self) -> bool:
        return self.request.valid and (self.response is None or self.response.valid)

    def violations(self) -> list[tuple[Side, Violation]]:
        out: list[tuple[Side, Violation]] = [("request", v) for v in self.request.violations]
        if self.response is None:
            return out
        side: Side = "error" if self.response.kind == "error" else "response"
        return out + [(side, v) for v in self.response.violations]

    def lines(self) -> list[str]:
        return [f"{side}: {v.message}" for side, v in self.violations()]

    def as_dict(self) -> dict[str, Any]:
        return as_data(self, "version valid request response notes")


@dataclass(frozen=True)
class Cause:
    """Why an exchange's verdict differs between two versions: one schema change."""

    side: Side
    label: str  # "new required field", "enum widened", "unknown item type", ...
    location: str  # in the body: "usage.input_tokens_details.cache_write_tokens"
    detail: str
    fixed: bool  # the change removes a violation (False: it adds one)
    change: Change | None = None  # None when no schema change could be pinned down

    def __str__(self) -> str:
        where = self.location or "(body)"
        text = f"{self.label}: {self.side} {where}: {self.detail}"
        if self.change is not None:
            text += f" [{self.change.schema}, {self.change.impact.replace('-', ' ')}]"
        return text

    def as_dict(self) -> dict[str, Any]:
        return as_data(self, "side label location detail fixed change")


@dataclass(frozen=True)
class ExchangeResult:
    """One compaction exchange of a cassette, judged."""

    cassette: str
    index: int
    method: str
    uri: str
    status: int
    baseline: Verdict
    against: Verdict | None = None
    causes: tuple[Cause, ...] = ()

    @property
    def name(self) -> str:
        return f"exchange {self.index}: {self.method} {urlsplit(self.uri).path}"

    @property
    def verdict(self) -> Verdict:
        """The verdict that counts: under ``--against`` when given."""
        return self.against if self.against is not None else self.baseline

    @property
    def passed(self) -> bool:
        return self.verdict.valid

    @property
    def transition(self) -> Transition | None:
        if self.against is None:
            return None
        before, after = self.baseline.valid, self.against.valid
        if before and after:
            return "still passing"
        if before:
            return "now failing"
        return "now passing" if after else "still failing"

    def as_dict(self) -> dict[str, Any]:
        return as_data(self, "index method uri status passed baseline against transition causes")


@dataclass(frozen=True)
class CassetteResult:
    """One cassette file: its compaction exchanges judged, or why it could not be read."""

    path: str
    recorded_version: str | None = None
    version: str | None = None  # the baseline version used
    exchanges: tuple[ExchangeResult, ...] = ()
    other: int = 0  # exchanges no schema covers (not POST /responses or /responses/compact)
    error: str | None = None
    chain: tuple[ChainViolation, ...] = ()  # chaining rules broken across the exchanges

    @property
    def passed(self) -> bool:
        return self.error is None and not self.chain and all(e.passed for e in self.exchanges)

    def as_dict(self) -> dict[str, Any]:
        return as_data(
            self,
            "path recorded_version version passed error other_exchanges exchanges chain",
            other_exchanges=self.other,
        )


@dataclass(frozen=True)
class CheckResult:
    """Everything ``check`` found."""

    cassettes: tuple[CassetteResult, ...]
    against: str | None = None
    strict: bool = False
    ignored: tuple[str, ...] = ()  # files under the paths that are not cassettes
    freshness: str | None = None  # the installed SDK is newer than the newest contract covers

    @property
    def exchanges(self) -> list[ExchangeResult]:
        return [e for c in self.cassettes for e in c.exchanges]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cassettes)

    def summary(self) -> dict[str, int]:
        exchanges = self.exchanges
        out = {
            "cassettes": len(self.cassettes),
            "unreadable": sum(c.error is not None for c in self.cassettes),
            "exchanges": len(exchanges),
            "passed": sum(e.passed for e in exchanges),
            "failed": sum(not e.passed for e in exchanges),
            "other_exchanges": sum(c.other for c in self.cassettes),
            "chain_violations": sum(len(c.chain) for c in self.cassettes),
            "notes": sum(len(e.verdict.notes) for e in exchanges),
        }
        if self.against is not None:
            for transition in ("still passing", "now failing", "now passing", "still failing"):
                out[transition.replace(" ", "_")] = sum(
                    e.transition == transition for e in exchanges
                )
        return out

    def as_dict(self) -> dict[str, Any]:
        return as_data(
            self,
            "against strict passed summary freshness cassettes ignored",
            summary=self.summary(),
        )
