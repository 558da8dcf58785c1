"""Regression checks of recorded exchanges: are the cassettes still within the contract?

Every ``POST /responses/compact`` and ``POST /responses`` exchange of every cassette is
validated (both bodies, a stream event by event: see ``contract._judge``) under the version and
dialect the cassette was recorded with, and the exchanges of each cassette are checked against
the chaining rules (``contract._chain``); cassettes from elsewhere (stock vcrpy, pydantic-ai)
that do not say are judged by ``--version`` or the newest. ``--against`` judges them by a second
version too and explains each difference by the schema change behind it (see ``_explain``).
Which files are read is ``cassette._find``'s rule. Results are data (``_results``) until the
command prints them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .._errors import CompactionError
from ..cassette._exchange import CassetteData, CassetteError, Exchange
from ..cassette._file import parse_cassette, read_cassette_text
from ..cassette._find import find_cassettes
from ..contract._chain import check_chain
from ..contract._dialects import Dialect, dialect_for, get_dialect
from ..contract._judge import judge_exchange
from ..contract._routes import route_of
from ..schema._diff import SchemaDiff, diff_schema_sets, open_schema_set
from ..schema._versions import KINDS, freshness, load_schema_set, resolve_version
from ._explain import explain
from ._results import CassetteResult, Cause, CheckResult, ExchangeResult, Verdict


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
