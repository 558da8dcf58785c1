"""``pytest-compaction import``: stock vcrpy and pydantic-ai cassettes into this project's format.

Each file is read whatever its layout, its bodies decoded, sensitive headers redacted, every
``/responses/compact`` exchange validated, and the result written atomically in this project's
format (still a stock vcrpy cassette, plus the ``compaction`` key). Without ``--version`` the
cassette is stamped with the newest schema version that accepts all its exchanges: the one it
was, in effect, recorded under. A file whose exchanges no version accepts, or which still holds
a key-shaped value, is reported and left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._data import as_data
from .._errors import CompactionError
from ..cassette._body import decode_body, parse_json_bytes
from ..cassette._exchange import CassetteData, CassetteError, Exchange, Headers, header_get
from ..cassette._file import CassetteNotFound, NotACassette, load_cassette, save_cassette
from ..cassette._find import find_cassettes
from ..cassette._redact import (
    DEFAULT_FILTER_HEADERS,
    DEFAULT_FILTER_QUERY,
    SecretFound,
    check_no_secrets,
)
from ..cassette._redact import redact_exchange as _redact_exchange
from ..cassette._scan import LAYOUT_PROJECT, read_cassette_file
from ..contract._routes import route_of
from ..schema._versions import available_versions, resolve_version


@dataclass
class ExchangeVerdict:
    """How one exchange fared: validated (a call the schemas cover) or carried over as is."""

    index: int
    method: str
    uri: str
    validated: bool
    status: int
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # findings that are not failures

    @property
    def valid(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return as_data(self, "index method uri status validated violations notes")


@dataclass
class ImportResult:
    """The outcome for one source file."""

    source: Path
    target: Path | None = None
    outcome: str = "error"  # imported, skipped, refused, error
    layout: str | None = None
    version: str | None = None
    version_chosen: bool = False
    redacted: int = 0
    exchanges: list[ExchangeVerdict] = field(default_factory=list)
    message: str | None = None
    not_a_cassette: bool = False  # a YAML/JSON file without interactions

    def as_dict(self) -> dict[str, Any]:
        return as_data(
            self,
            "source target outcome layout schema_version version_chosen redacted_header_values "
            "exchanges message",
            schema_version=self.version,
            redacted_header_values=self.redacted,
        )


def _covered(ex: Exchange) -> bool:
    return route_of(ex.method, ex.uri) is not None


def _verdict(index: int, ex: Exchange, version: str, strict: bool) -> ExchangeVerdict:
    from ..contract._dialects import dialect_for
    from ..contract._judge import judge_exchange, lines

    verdict = ExchangeVerdict(index, ex.method, ex.uri, _covered(ex), ex.status)
    if verdict.validated:
        request, response = judge_exchange(
            ex, version=version, dialect=dialect_for(ex.uri), strict=strict
        )
        verdict.violations = lines(request, response.report, ex.status)[0]
        verdict.notes = list(response.notes)
    return verdict


def judge(
    exchanges: Sequence[Exchange], version: str | None = None, *, strict: bool = False
) -> tuple[str, bool, list[ExchangeVerdict]]:
    """(version, chosen automatically, verdicts) for a cassette's exchanges.

    With ``version`` the exchanges are judged by it; without, by the newest version that accepts
    all of them (the newest one when none does).
    """
    candidates = [resolve_version(version)] if version else list(reversed(available_versions()))
    if not candidates:
        raise CompactionError("no schema version is available")
    first: tuple[str, list[ExchangeVerdict]] | None = None
    for name in candidates:
        verdicts = [_verdict(i, ex, name, strict) for i, ex in enumerate(exchanges)]
        if first is None:
            first = (name, verdicts)
        if all(v.valid for v in verdicts):
            return name, version is None, verdicts
    assert first is not None
    return first[0], False, first[1]


def _decoded_request(ex: Exchange) -> Exchange:
    if not ex.request_body or header_get(ex.request_headers, "content-encoding") is None:
        return ex
    try:
        headers, body = decode_body(ex.request_headers, ex.request_body)
    except CassetteError as exc:
        raise CassetteError(f"a request body does not decode: {exc}") from None
    return replace(ex, request_headers=headers, request_body=body)


def _changed_values(before: Headers, after: Headers) -> int:
    return sum(
        1
        for name, values in before.items()
        for old, new in zip(values, after.get(name, values), strict=False)
        if old != new
    )


def import_cassette(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str] | None = None,
    *,
    version: str | None = None,
    strict: bool = False,
    allow_invalid: bool = False,
    overwrite: bool = False,
    filter_headers: Iterable[str] = (),
) -> ImportResult:
    """Convert one cassette into this project's format at ``target`` (default: in place).

    Never raises for a bad cassette: the :class:`ImportResult` says what happened and why.
    """
    src = Path(source)
    dest = Path(target) if target is not None else src
    result = ImportResult(source=src, target=dest)
    try:
        cassette = read_cassette_file(src)
    except (NotACassette, CassetteNotFound) as exc:
        result.message = str(exc)
        result.not_a_cassette = True
        return result
    except CassetteError as exc:
        result.message = str(exc)
        return result
    result.layout = cassette.layout
    if cassette.layout == LAYOUT_PROJECT and dest.resolve() == src.resolve():
        result.outcome = "skipped"
        result.message = "already in this project's format"
        return result
    if dest.exists() and dest.resolve() != src.resolve() and not overwrite:
        result.message = f"{dest} already exists (pass --force to replace it)"
        return result

    names = (*DEFAULT_FILTER_HEADERS, *filter_headers)
    exchanges: list[Exchange] = []
    try:
        for ex in cassette.exchanges:
            decoded = _decoded_request(ex)
            clean = _redact_exchange(decoded, names, DEFAULT_FILTER_QUERY)
            result.redacted += _changed_values(decoded.request_headers, clean.request_headers)
            result.redacted += _changed_values(decoded.response_headers, clean.response_headers)
            exchanges.append(clean)
        chosen, automatic, verdicts = judge(exchanges, version, strict=strict)
    except CompactionError as exc:
        result.message = str(exc)
        return result
    result.version, result.version_chosen, result.exchanges = chosen, automatic, verdicts
    if any(not v.valid for v in verdicts) and not allow_invalid:
        result.outcome = "refused"
        result.message = (
            f"not written: exchanges do not conform to schema version {chosen}"
            + ("" if version else " (nor to any other bundled version)")
            + "; pass --version to judge them by another, or --allow-invalid to import them"
        )
        return result
    try:
        check_no_secrets(str(dest), exchanges)
    except SecretFound as exc:
        result.outcome = "refused"
        result.message = f"{exc}\nRedact it first: pytest-compaction scan --fix {src}"
        return result
    data = CassetteData(exchanges=exchanges, schema_version=chosen, extra=cassette.data.extra)
    try:
        save_cassette(dest, data)
        _verify(dest, exchanges)
    except CompactionError as exc:
        result.message = str(exc)
        return result
    result.outcome = "imported"
    return result


def _verify(path: Path, expected: Sequence[Exchange]) -> None:
    """Read the written file back: same exchanges, same bodies by value."""
    written = load_cassette(path).exchanges
    if len(written) != len(expected):
        raise CassetteError(f"{path}: wrote {len(written)} exchanges, expected {len(expected)}")
    for i, (a, b) in enumerate(zip(written, expected, strict=True)):
        for part, x, y in (
            ("request", a.request_body, b.request_body),
            ("response", a.response_body, b.response_body),
        ):
            if parse_json_bytes(x) != parse_json_bytes(y) and (x or b"") != (y or b""):
                raise CassetteError(f"{path}: exchange {i} {part} body changed when written")


def import_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    output: str | os.PathLike[str] | None = None,
    **options: Any,
) -> list[ImportResult]:
    """Import every cassette under ``paths``; with ``output``, into that folder (same layout)."""
    results: list[ImportResult] = []
    for raw in paths:
        root = Path(raw)
        for path, explicit in find_cassettes([root], unique=True):
            target = None
            if output is not None:
                rel = path.relative_to(root) if root.is_dir() else Path(path.name)
                target = Path(output) / rel
            result = import_cassette(path, target, **options)
            if result.not_a_cassette and not explicit:
                continue  # an unrelated YAML/JSON file in a cassette folder
            results.append(result)
    return results
