"""``pytest-compaction import``: stock vcrpy and pydantic-ai cassettes into this project's format.

Each file is read whatever its layout, its bodies decoded, sensitive headers redacted, every
``/responses/compact`` exchange validated, and the result written atomically in this project's
format (still a stock vcrpy cassette, plus the ``compaction`` key). Without ``--version`` the
cassette is stamped with the newest schema version that accepts all its exchanges: the one it
was, in effect, recorded under. A file whose exchanges no version accepts, or which still holds
a key-shaped value, is reported and left alone.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._errors import CompactionError
from ..cassette import _cassette as cf
from ..cassette._redact import (
    DEFAULT_FILTER_HEADERS,
    DEFAULT_FILTER_QUERY,
    SecretFound,
    check_no_secrets,
)
from ..cassette._redact import redact_exchange as _redact_exchange
from ..cassette._scan import LAYOUT_PROJECT, find_cassettes, read_cassette_file
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
        return {
            "index": self.index,
            "method": self.method,
            "uri": self.uri,
            "status": self.status,
            "validated": self.validated,
            "violations": list(self.violations),
            "notes": list(self.notes),
        }


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
        return {
            "source": str(self.source),
            "target": None if self.target is None else str(self.target),
            "outcome": self.outcome,
            "layout": self.layout,
            "schema_version": self.version,
            "version_chosen": self.version_chosen,
            "redacted_header_values": self.redacted,
            "exchanges": [v.as_dict() for v in self.exchanges],
            "message": self.message,
        }


def _covered(ex: cf.Exchange) -> bool:
    return route_of(ex.method, ex.uri) is not None


def _verdict(index: int, ex: cf.Exchange, version: str, strict: bool) -> ExchangeVerdict:
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
    exchanges: Sequence[cf.Exchange], version: str | None = None, *, strict: bool = False
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


def _decoded_request(ex: cf.Exchange) -> cf.Exchange:
    if not ex.request_body or cf.header_get(ex.request_headers, "content-encoding") is None:
        return ex
    try:
        headers, body = cf.decode_body(ex.request_headers, ex.request_body)
    except cf.CassetteError as exc:
        raise cf.CassetteError(f"a request body does not decode: {exc}") from None
    return replace(ex, request_headers=headers, request_body=body)


def _changed_values(before: cf.Headers, after: cf.Headers) -> int:
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
    except (cf.NotACassette, cf.CassetteNotFound) as exc:
        result.message = str(exc)
        result.not_a_cassette = True
        return result
    except cf.CassetteError as exc:
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
    exchanges: list[cf.Exchange] = []
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
    data = cf.CassetteData(exchanges=exchanges, schema_version=chosen, extra=cassette.data.extra)
    try:
        cf.save_cassette(dest, data)
        _verify(dest, exchanges)
    except CompactionError as exc:
        result.message = str(exc)
        return result
    result.outcome = "imported"
    return result


def _verify(path: Path, expected: Sequence[cf.Exchange]) -> None:
    """Read the written file back: same exchanges, same bodies by value."""
    written = cf.load_cassette(path).exchanges
    if len(written) != len(expected):
        raise cf.CassetteError(f"{path}: wrote {len(written)} exchanges, expected {len(expected)}")
    for i, (a, b) in enumerate(zip(written, expected, strict=True)):
        for part, x, y in (
            ("request", a.request_body, b.request_body),
            ("response", a.response_body, b.response_body),
        ):
            if cf.parse_json_bytes(x) != cf.parse_json_bytes(y) and (x or b"") != (y or b""):
                raise cf.CassetteError(f"{path}: exchange {i} {part} body changed when written")


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
        for path, explicit in find_cassettes([root]):
            target = None
            if output is not None:
                rel = path.relative_to(root) if root.is_dir() else Path(path.name)
                target = Path(output) / rel
            result = import_cassette(path, target, **options)
            if result.not_a_cassette and not explicit:
                continue  # an unrelated YAML/JSON file in a cassette folder
            results.append(result)
    return results


# ---------------------------------------------------------------------------------------------
# The command


def register(commands: Any) -> None:
    cmd = commands.add_parser(
        "import",
        help="convert vcrpy / pydantic-ai cassettes into this project's format",
        description=(
            "Convert stock vcrpy (YAML/JSON) and pydantic-ai cassettes into this project's "
            "format, validating every /responses/compact exchange and redacting sensitive "
            "headers. Files are converted in place unless --output is given. Exit 0 when every "
            "file was imported (or already was), 1 when one was refused, 2 on usage errors and "
            "unreadable cassettes."
        ),
    )
    cmd.add_argument("paths", nargs="+", metavar="PATH", help="cassette files or folders")
    cmd.add_argument(
        "-o", "--output", default=None, metavar="DIR", help="write into DIR instead of in place"
    )
    cmd.add_argument(
        "--version",
        default=None,
        help="schema version to judge and stamp them with (default: the newest that accepts all)",
    )
    cmd.add_argument("--strict", action="store_true", help="undocumented fields are violations")
    cmd.add_argument(
        "--allow-invalid", action="store_true", help="import exchanges that do not conform"
    )
    cmd.add_argument("--force", action="store_true", help="replace existing files in --output")
    cmd.add_argument(
        "--filter-header",
        action="append",
        default=[],
        metavar="NAME",
        help="another header whose values are redacted (repeatable)",
    )
    cmd.add_argument("--format", choices=("text", "json"), default="text")
    cmd.set_defaults(handler=run_import)


def _verdict_text(v: ExchangeVerdict) -> list[str]:
    head = f"  exchange {v.index} {v.method} {v.uri}"
    if not v.validated:
        return [f"{head}: carried over (no schema covers this call)"]
    notes = [f"      note: {x}" for x in v.notes]
    if v.valid:
        return [f"{head}: valid (status {v.status})", *notes]
    lines = [f"{head}: {len(v.violations)} violation(s)"] + [f"      {x}" for x in v.violations]
    return lines + notes


def _text_report(results: Sequence[ImportResult]) -> list[str]:
    lines: list[str] = []
    for r in results:
        arrow = "" if r.target is None or r.target == r.source else f" -> {r.target}"
        if r.outcome in ("error", "skipped") and not r.exchanges:
            lines.append(f"{r.source}{arrow}: {r.outcome}: {r.message}")
            continue
        validated = sum(v.validated for v in r.exchanges)
        how = " (newest version accepting every exchange)" if r.version_chosen else ""
        lines.append(
            f"{r.source}{arrow}: {r.outcome} ({r.layout}, {len(r.exchanges)} exchanges, "
            f"{validated} validated against {r.version}{how}; "
            f"{r.redacted} header value(s) redacted)"
        )
        for v in r.exchanges:
            lines += _verdict_text(v)
        if r.message:
            lines += [f"  {line}" for line in r.message.splitlines()]
    counts = {k: sum(r.outcome == k for r in results) for k in ("imported", "skipped", "refused")}
    errors = sum(r.outcome == "error" for r in results)
    lines.append(
        f"imported {counts['imported']} cassette(s), {counts['skipped']} skipped, "
        f"{counts['refused']} refused, {errors} error(s)"
    )
    return lines


def run_import(args: argparse.Namespace) -> int:
    if args.version:
        resolve_version(args.version)
    results = import_paths(
        args.paths,
        output=args.output,
        version=args.version,
        strict=args.strict,
        allow_invalid=args.allow_invalid,
        overwrite=args.force,
        filter_headers=args.filter_header,
    )
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in results], indent=2, ensure_ascii=False))
    else:
        print("\n".join(_text_report(results)))
    if any(r.outcome == "error" for r in results):
        return 2
    return 1 if any(r.outcome == "refused" for r in results) else 0
