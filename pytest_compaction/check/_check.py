"""Regression checks of recorded exchanges: are the cassettes still within the contract?

Every ``POST /responses/compact`` and ``POST /responses`` exchange of every cassette is
validated (both bodies, a stream event by event: see ``_judge``) under the version and dialect
the cassette was recorded with, and the exchanges of each cassette are checked against the
chaining rules (``_chain``); cassettes from
elsewhere (stock vcrpy, pydantic-ai) that do not say are judged by ``--version`` or the newest.
``--against`` judges them by a second version too and explains each difference by the schema
change behind it (see ``_schema_diff``). Results are data until ``run_check`` prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .._errors import BodyError, CompactionError
from .._settings import CASSETTE_SUFFIXES as CASSETTE_SUFFIXES
from ..cassette._cassette import (
    CassetteData,
    CassetteError,
    Exchange,
    parse_cassette,
    read_cassette_text,
)
from ..cassette._sse import parse_stream
from ..contract._chain import ChainViolation, check_chain
from ..contract._dialects import DIALECTS, Dialect, dialect_for, get_dialect
from ..contract._judge import STREAM_KIND, judge_exchange
from ..contract._routes import route_of
from ..schema._diff import Change, SchemaDiff, diff_schema_sets, join, open_schema_set, typed
from ..schema._validate import Report, Violation, parse_body
from ..schema._versions import KINDS, Kind, freshness, load_schema_set, resolve_version

Side = Literal["request", "response", "error"]
Transition = Literal["still passing", "now failing", "now passing", "still failing"]


# -- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """An exchange judged by one version (see :mod:`._judge` for which bodies, as what)."""

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
        return {
            "version": self.version,
            "valid": self.valid,
            "request": self.request.as_dict(),
            "response": self.response.as_dict() if self.response is not None else None,
            "notes": list(self.notes),
        }


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
        return {
            "side": self.side,
            "label": self.label,
            "location": self.location,
            "detail": self.detail,
            "fixed": self.fixed,
            "change": self.change.as_dict() if self.change is not None else None,
        }


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
        return {
            "index": self.index,
            "method": self.method,
            "uri": self.uri,
            "status": self.status,
            "passed": self.passed,
            "baseline": self.baseline.as_dict(),
            "against": self.against.as_dict() if self.against is not None else None,
            "transition": self.transition,
            "causes": [c.as_dict() for c in self.causes],
        }


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
        return {
            "path": self.path,
            "recorded_version": self.recorded_version,
            "version": self.version,
            "passed": self.passed,
            "error": self.error,
            "other_exchanges": self.other,
            "exchanges": [e.as_dict() for e in self.exchanges],
            "chain": [v.as_dict() for v in self.chain],
        }


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
        return {
            "against": self.against,
            "strict": self.strict,
            "passed": self.passed,
            "summary": self.summary(),
            "freshness": self.freshness,
            "cassettes": [c.as_dict() for c in self.cassettes],
            "ignored": list(self.ignored),
        }


# -- judging ---------------------------------------------------------------------------------
def judge(
    exchange: Exchange,
    version: str,
    *,
    strict: bool = False,
    dialect: str | Dialect | None = None,
) -> Verdict:
    """Validate one exchange of a covered route under one (resolved) version."""
    request, response = judge_exchange(
        exchange, version=version, dialect=dialect_for(exchange.uri, dialect), strict=strict
    )
    if request is None:
        raise CompactionError(f"{exchange.method} {exchange.uri}: no schema covers this call")
    return Verdict(request.version, request, response.report, response.notes)


def body_location(body: Any, pointer: str, root: str = "") -> str:
    """``/output/2/call_id`` -> ``output[type=function_call_output].call_id``."""
    location = root
    node = body
    for raw in pointer.split("/")[1:] if pointer else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and part.isdigit():
            index = int(part)
            node = node[index] if index < len(node) else None
            kind = node.get("type") if isinstance(node, dict) else None
            location = (
                typed(location + "[]", "type", kind) if isinstance(kind, str) else location + "[]"
            )
        else:
            node = node.get(part) if isinstance(node, dict) else None
            location = join(location, part)
    return location


def _loose(location: str) -> str:
    return re.sub(r"\[[^\]]*\]", "[]", location)


_LABELS = {
    "required-added": "new required field",
    "required-removed": "field no longer required",
    "property-removed": "field removed",
    "property-added": "field added",
    "enum-narrowed": "enum narrowed",
    "enum-widened": "enum widened",
    "const-changed": "value changed",
    "type-narrowed": "type changed",
    "type-widened": "type changed",
    "item-type-removed": "unknown item type",
    "item-type-added": "item type added",
    "shape-added": "shape changed",
    "shape-removed": "shape changed",
    "shape-changed": "shape changed",
    "constraint-tightened": "constraint changed",
    "constraint-relaxed": "constraint changed",
    "constraint-changed": "constraint changed",
    "closed": "object closed",
    "opened": "object opened",
    "format-changed": "format changed",
}

# violation keyword -> the change codes that can add (or, second, remove) such a violation
_CODES: dict[str, tuple[set[str], set[str]]] = {
    "required": ({"required-added"}, {"required-removed"}),
    "enum": ({"enum-narrowed", "const-changed"}, {"enum-widened", "const-changed"}),
    "const": ({"const-changed"}, {"const-changed", "enum-widened"}),
    "type": ({"type-narrowed", "shape-removed", "shape-changed"}, {"type-widened", "shape-added"}),
    "drift": ({"property-removed"}, {"property-added"}),
    "additionalProperties": ({"property-removed", "closed"}, {"property-added", "opened"}),
    "unevaluatedProperties": ({"property-removed", "closed"}, {"property-added", "opened"}),
}
_SHAPE_CODES = (
    {"type-narrowed", "enum-narrowed", "const-changed", "shape-removed", "shape-changed"},
    {"type-widened", "enum-widened", "const-changed", "shape-added", "shape-changed"},
)
_CONSTRAINT_CODES = (
    {"constraint-tightened", "constraint-changed"},
    {"constraint-relaxed", "constraint-changed"},
)


def _fallback_label(violation: Violation, item_type_at: bool, fixed: bool) -> str:
    keyword = violation.keyword
    if keyword == "required":
        return "field no longer required" if fixed else "new required field"
    if keyword in ("enum", "const") and item_type_at:
        return "item type added" if fixed else "unknown item type"
    if keyword == "enum":
        return "enum widened" if fixed else "enum narrowed"
    if keyword in ("drift", "additionalProperties", "unevaluatedProperties"):
        return "field added" if fixed else "field removed"
    if keyword in ("type", "anyOfNone", "oneOfMultipleValid"):
        return "type changed"
    return "constraint changed"


def _explain(
    side: Side, violation: Violation, body: Any, changes: list[Change], fixed: bool, root: str = ""
) -> list[Cause]:
    """The schema change(s) that add ``violation`` (or, when ``fixed``, remove it)."""
    location = body_location(body, violation.path, root)
    parent_pointer, _, last = violation.path.rpartition("/")
    required = violation.keyword == "required"
    # A missing property's pointer ends with the property: the object lacking it is the parent.
    missing = last.replace("~1", "/").replace("~0", "~") if required else None
    node = _at(body, parent_pointer) if required else None
    item_type_at = bool(violation.path.endswith("/type") and violation.item_type and not required)

    pick = 1 if fixed else 0
    item_location = body_location(body, parent_pointer, root)
    codes = _CODES.get(
        violation.keyword, _SHAPE_CODES if "Of" in violation.keyword else _CONSTRAINT_CODES
    )[pick]

    def wanted(c: Change) -> str | None:
        """Where ``c`` must sit in the body to explain the violation (None: it cannot)."""
        if required:
            absent = isinstance(node, dict) and c.name == missing and c.name not in node
            return location if c.change in codes and absent else None
        if item_type_at:
            code = "item-type-added" if fixed else "item-type-removed"
            return item_location if c.change == code and c.name == violation.item_type else None
        if c.change in codes:
            return location
        if violation.keyword in ("anyOfNone", "type", "enum") and c.change in _SHAPE_CODES[pick]:
            # a union reports the mismatch at the union; the change sits in one of its branches
            return location
        return None

    candidates = [(c, where) for c in changes if (where := wanted(c)) is not None]
    # A schema shared by several places is reported at one of them: match loosely if need be.
    found = [c for c, where in candidates if c.location == where] or [
        c for c, where in candidates if _loose(c.location) == _loose(where)
    ]
    if found:
        return [Cause(side, _LABELS[c.change], c.location, c.detail, fixed, c) for c in found]
    label = _fallback_label(violation, item_type_at, fixed)
    return [Cause(side, label, location, violation.message, fixed)]


def _at(body: Any, pointer: str) -> Any:
    node = body
    for raw in pointer.split("/")[1:] if pointer else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def _subjects(kind: Kind, raw: bytes | None) -> Callable[[Violation], tuple[Any, str]]:
    """For a body read once: (the JSON a violation's pointer is into, its schema location).

    A stream's violation points into the data of the first event it names, an event whose
    shape is the one of its type among the event union's.
    """
    if kind != STREAM_KIND:
        try:
            body = parse_body(raw) if raw is not None else None
        except BodyError:
            body = None
        return lambda violation: (body, "")
    events = parse_stream(raw or b"")

    def subject(violation: Violation) -> tuple[Any, str]:
        found = re.match(r"event (\d+)", violation.message)
        if found is None or int(found[1]) >= len(events):
            return None, ""
        is_json, data = events[int(found[1])].json()
        kind_of_event = data.get("type") if is_json and isinstance(data, dict) else None
        return data, typed("", "type", kind_of_event) if isinstance(kind_of_event, str) else ""

    return subject


def _key(violation: Violation) -> tuple[str, str]:
    # The same kind of violation at the same place is not a change, even if its message
    # differs (an "unknown type" message lists the known types of its version). A missing
    # property's pointer ends with the property, so each has a place of its own.
    return violation.path, violation.keyword


def explain(exchange: Exchange, before: Verdict, after: Verdict, diff: SchemaDiff) -> list[Cause]:
    """The cause of every violation that one verdict has and the other has not."""
    causes: list[Cause] = []
    pairs: list[tuple[Side, bytes | None, Report, Report]] = [
        ("request", exchange.request_body, before.request, after.request)
    ]
    if before.response is not None and after.response is not None:
        side: Side = "error" if before.response.kind == "error" else "response"
        pairs.append((side, exchange.response_body, before.response, after.response))
    for side, raw, old, new in pairs:
        kind: Kind = old.kind
        old_keys = {_key(v) for v in old.violations}
        new_keys = {_key(v) for v in new.violations}
        added = [v for v in new.violations if _key(v) not in old_keys]
        removed = [v for v in old.violations if _key(v) not in new_keys]
        # Inside an item whose type became unknown (or known), the item's own checks come and
        # go with it: the item type change is the one cause to report.
        flipped = [
            v.path[: -len("/type")]
            for v in (*added, *removed)
            if v.path.endswith("/type") and v.item_type and v.keyword in ("enum", "const")
        ]

        def inside(v: Violation, items: list[str] = flipped) -> bool:
            return any(
                (v.path == p or v.path.startswith(p + "/")) and v.path != p + "/type" for p in items
            )

        added = [v for v in added if not inside(v)]
        removed = [v for v in removed if not inside(v)]
        if not added and not removed:
            continue
        changes = diff.of_kind(kind)
        subject = _subjects(kind, raw)
        for violation, fixed in [(v, False) for v in added] + [(v, True) for v in removed]:
            body, root = subject(violation)
            causes += _explain(side, violation, body, changes, fixed, root)
    unique: dict[tuple[str, str, str, bool], Cause] = {}
    for cause in causes:
        unique.setdefault((cause.side, cause.location, cause.detail, cause.fixed), cause)
    return list(unique.values())


class _Versions:
    """Resolved versions and the diffs between them, computed once per run."""

    def __init__(self, fallback: str | None, against: str | None) -> None:
        self.fallback = resolve_version(fallback)
        self.against = against
        self._diffs: dict[tuple[str, str], SchemaDiff] = {}

    def baseline(self, data: CassetteData) -> str:
        return resolve_version(data.schema_version) if data.schema_version else self.fallback

    def diff(self, old: str, new: str) -> SchemaDiff:
        if (old, new) not in self._diffs:
            self._diffs[(old, new)] = diff_schema_sets(
                load_schema_set(old), load_schema_set(new), kinds=KINDS
            )
        return self._diffs[(old, new)]


def check_exchange(
    exchange: Exchange,
    version: str,
    *,
    against: str | None = None,
    strict: bool = False,
    cassette: str = "",
    index: int = 0,
    diff: SchemaDiff | None = None,
    dialect: str | Dialect | None = None,
) -> ExchangeResult:
    """Judge one exchange by ``version`` and, when given, by ``against`` as well."""
    baseline = judge(exchange, version, strict=strict, dialect=dialect)
    other = None
    causes: tuple[Cause, ...] = ()
    if against is not None:
        other = judge(exchange, against, strict=strict, dialect=dialect)
        if diff is None:
            diff = diff_schema_sets(load_schema_set(version), load_schema_set(against), kinds=KINDS)
        causes = tuple(explain(exchange, baseline, other, diff))
    return ExchangeResult(
        cassette=cassette,
        index=index,
        method=exchange.method,
        uri=exchange.uri,
        status=exchange.status,
        baseline=baseline,
        against=other,
        causes=causes,
    )


def check_cassette_data(
    data: CassetteData,
    display: str,
    versions: _Versions,
    strict: bool,
    dialect: str | None = None,
) -> CassetteResult:
    """Judge a cassette's exchanges under ``dialect`` when given, else the one it recorded."""
    try:
        version = versions.baseline(data)
    except CompactionError as exc:
        return CassetteResult(display, data.schema_version, error=f"{display}: {exc}")
    results = []
    other = 0
    for index, exchange in enumerate(data.exchanges):
        if route_of(exchange.method, exchange.uri) is None:
            other += 1
            continue
        against = versions.against
        diff = versions.diff(version, against) if against is not None else None
        results.append(
            check_exchange(
                exchange,
                version,
                against=against,
                strict=strict,
                cassette=display,
                index=index,
                diff=diff,
                dialect=dialect if dialect is not None else data.dialect,
            )
        )
    chain = tuple(check_chain(data.exchanges))
    return CassetteResult(display, data.schema_version, version, tuple(results), other, chain=chain)


# -- finding and reading cassettes -----------------------------------------------------------
def find_cassettes(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[Path, bool]]:
    """(file, named explicitly) for every candidate cassette under ``paths``, in order.

    Hidden folders are skipped; a path that does not exist is an error.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            yield path, True
        elif path.is_dir():
            found = []
            for file in path.rglob("*"):
                relative = file.relative_to(path).parts
                if file.suffix.lower() not in CASSETTE_SUFFIXES or not file.is_file():
                    continue
                if any(part.startswith(".") for part in relative[:-1]):
                    continue
                found.append(file)
            for file in sorted(found):
                yield file, False
        elif path.exists():
            raise CompactionError(f"{raw}: not a regular file or a folder")
        else:
            raise CompactionError(f"{raw}: no such file or folder")


def read_cassette(path: Path, explicit: bool = True) -> CassetteData | None:
    """The cassette in ``path``; None when a file found in a folder is not a cassette at all."""
    text = read_cassette_text(path)
    if not explicit and "interactions" not in text:
        return None  # some other YAML or JSON file living beside the cassettes
    return parse_cassette(text, str(path))


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def check_paths(
    paths: Sequence[str | os.PathLike[str]],
    *,
    version: str | None = None,
    against: str | None = None,
    spec: str | os.PathLike[str] | None = None,
    strict: bool = False,
    dialect: str | None = None,
) -> CheckResult:
    """Check every cassette under ``paths``.

    ``version`` is assumed for cassettes that do not record theirs (default: the newest);
    ``against`` (a version) or ``spec`` (an OpenAPI file, derived on the fly) adds a second
    verdict with causes. ``dialect`` judges every exchange under that gateway's profile,
    whatever the cassettes recorded (default: each cassette's own, else detection from the
    URL). Usage errors (missing path, unknown version or dialect, bad spec, nothing to check)
    raise :class:`CompactionError`; unreadable cassettes are results, not errors.
    """
    if against is not None and spec is not None:
        raise CompactionError("give either --against or --spec, not both")
    if dialect is not None:
        dialect = get_dialect(dialect).name  # an unknown name is a usage error, before any work
    candidates = list(find_cassettes(paths))
    with tempfile.TemporaryDirectory(prefix="pytest-compaction-check-") as workdir:
        target = None
        if spec is not None:
            target = str(open_schema_set(Path(spec), workdir).path)
        elif against is not None:
            target = resolve_version(against)
        versions = _Versions(version, target)
        results: list[CassetteResult] = []
        ignored: list[str] = []
        for path, explicit in candidates:
            display = display_path(path)
            try:
                data = read_cassette(path, explicit)
            except CassetteError as exc:
                results.append(CassetteResult(display, error=str(exc)))
                continue
            if data is None:
                ignored.append(display)
                continue
            results.append(check_cassette_data(data, display, versions, strict, dialect))
        against_name = load_schema_set(target).name if target is not None else None
    if not results:
        where = ", ".join(str(p) for p in paths)
        raise CompactionError(f"no cassettes found under {where}")
    return CheckResult(tuple(results), against_name, strict, tuple(ignored), freshness())


# -- output ----------------------------------------------------------------------------------
def _verdict(valid: bool) -> str:
    return "pass" if valid else "FAIL"


def format_text(result: CheckResult) -> str:
    """A block per cassette, a line per exchange checked, the reasons and notes below."""
    against = result.against
    lines: list[str] = []
    if against is not None:
        lines.append(f"checked against {against}")
    for cassette in result.cassettes:
        if cassette.error is not None:
            lines.append(f"ERROR {cassette.path}")
            lines.append(f"    {cassette.error}")
            continue
        how = "recorded" if cassette.recorded_version else "assumed"
        lines.append(f"{cassette.path}  [{cassette.version}, {how}]")
        if not cassette.exchanges:
            lines.append(f"  no exchanges to check ({cassette.other} other exchange(s))")
        width = max((len(ex.name) for ex in cassette.exchanges), default=0)
        for ex in cassette.exchanges:
            if ex.against is None:
                lines.append(f"  {_verdict(ex.passed)}  {ex.name}")
                lines += [f"        {line}" for line in ex.baseline.lines()]
                lines += [f"        note: {note}" for note in ex.baseline.notes]
                continue
            verdicts = f"{_verdict(ex.baseline.valid)} -> {_verdict(ex.against.valid)}"
            lines.append(f"  {ex.name:<{width}}  {verdicts}  {ex.transition}")
            lines += [f"    cause: {cause}" for cause in ex.causes]
            if ex.transition == "still failing":
                lines += [f"    {line}" for line in ex.against.lines()]
        for violation in cassette.chain:
            lines.append(f"  FAIL  {_chain_name(violation)}")
            lines.append(f"        {violation.message}")
    s = result.summary()
    tail = (
        f"{s['exchanges']} exchange(s) in {s['cassettes']} cassette(s): "
        f"{s['passed']} passed, {s['failed']} failed"
    )
    if s["unreadable"]:
        tail += f", {s['unreadable']} cassette(s) unreadable"
    if s["other_exchanges"]:
        tail += f"; {s['other_exchanges']} other exchange(s) not checked"
    if s["chain_violations"]:
        tail += f"; {s['chain_violations']} chaining violation(s)"
    if s["notes"]:
        tail += f"; {s['notes']} note(s)"
    lines.append(tail)
    if against is not None:
        lines.append(
            f"against {against}: {s['now_failing']} now failing, {s['now_passing']} now passing, "
            f"{s['still_failing']} still failing, {s['still_passing']} still passing"
        )
    if result.freshness is not None:
        lines.append(f"note: {result.freshness}")
    return "\n".join(lines)


# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _chain_name(violation: ChainViolation) -> str:
    return (
        f"chain rule {violation.rule} ({violation.name}): exchange {violation.exchange} "
        f"{violation.location}"
    )


def format_junit(result: CheckResult) -> str:
    """JUnit XML: one test suite per cassette, one test case per exchange checked.

    A broken chaining rule adds a failed test case of its own.
    """
    s = result.summary()
    root = ET.Element(
        "testsuites",
        name="pytest-compaction check",
        tests=str(s["exchanges"] + s["unreadable"] + s["chain_violations"]),
        failures=str(s["failed"] + s["chain_violations"]),
        errors=str(s["unreadable"]),
    )
    for cassette in result.cassettes:
        suite = ET.SubElement(root, "testsuite", name=_xml(cassette.path))
        dotted = re.sub(r"\.(ya?ml|json)$", "", cassette.path).replace(os.sep, "/")
        classname = _xml(dotted.strip("/").replace("/", "."))
        properties = ET.SubElement(suite, "properties")
        for name, value in (
            ("schema_version", cassette.version),
            ("recorded_version", cassette.recorded_version),
            ("against", result.against),
            ("strict", str(result.strict).lower()),
        ):
            if value is not None:
                ET.SubElement(properties, "property", name=name, value=_xml(value))
        failures = errors = 0
        if cassette.error is not None:
            errors = 1
            case = ET.SubElement(
                suite, "testcase", classname=classname, name="load", file=_xml(cassette.path)
            )
            first = cassette.error.splitlines()[0]
            error = ET.SubElement(case, "error", message=_xml(first), type="CassetteError")
            error.text = _xml(cassette.error)
        for ex in cassette.exchanges:
            case = ET.SubElement(
                suite, "testcase", classname=classname, name=_xml(ex.name), file=_xml(cassette.path)
            )
            if ex.passed:
                continue
            failures += 1
            lines = ex.verdict.lines()
            message = lines[0] if lines else "failed"
            if ex.against is not None:
                head = f"{ex.transition} ({ex.baseline.version} -> {ex.against.version})"
                causes = [f"cause: {c}" for c in ex.causes]
                message = f"{ex.transition}: {ex.causes[0]}" if ex.causes else message
                lines = [head, *causes, *lines]
            failure = ET.SubElement(case, "failure", message=_xml(message), type="SchemaViolation")
            failure.text = _xml("\n".join(lines))
        for violation in cassette.chain:
            failures += 1
            case = ET.SubElement(
                suite,
                "testcase",
                classname=classname,
                name=_xml(_chain_name(violation)),
                file=_xml(cassette.path),
            )
            failure = ET.SubElement(
                case, "failure", message=_xml(str(violation)), type="ChainViolation"
            )
            failure.text = _xml(str(violation))
        tests = len(cassette.exchanges) + len(cassette.chain)
        tests += 1 if cassette.error is not None else 0
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def add_check(commands: Any) -> None:
    parser = commands.add_parser(
        "check",
        help="check recorded exchanges against a schema version",
        description=(
            "Validate every /responses/compact and /responses exchange of every cassette under "
            "the paths (this project's cassettes, stock vcrpy YAML/JSON, pydantic-ai's) and the "
            "chaining of compaction outputs into later requests. Exit 0 when all pass, 1 when "
            "any fails or a cassette cannot be read, 2 on usage errors."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="cassette files or folders")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--against",
        metavar="VERSION",
        help="also judge by this version and explain each difference",
    )
    target.add_argument(
        "--spec", metavar="FILE", help="like --against, with schemas derived from an OpenAPI file"
    )
    parser.add_argument(
        "--version",
        default=None,
        help="version for cassettes that do not record theirs (default: the newest)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="undocumented properties are violations"
    )
    parser.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=None,
        help=(
            "judge every exchange under this gateway dialect's profile (its schema overlays), "
            "overriding the dialect a cassette recorded (default: the recorded one, else the "
            "one detected from the URL, else openai)"
        ),
    )
    parser.add_argument("--format", choices=("text", "json", "junit"), default="text")
    parser.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    result = check_paths(
        args.paths,
        version=args.version,
        against=args.against,
        spec=args.spec,
        strict=args.strict,
        dialect=args.dialect,
    )
    if args.format == "json":
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    elif args.format == "junit":
        print(format_junit(result))
    else:
        print(format_text(result))
    return 0 if result.passed else 1


def register(commands: Any) -> None:
    add_check(commands)
