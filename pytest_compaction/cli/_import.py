"""``pytest-compaction import``: foreign cassettes converted, one line per file and exchange.

Exit 0 when every file was imported (or already was), 1 when one was refused, 2 on usage errors
and unreadable cassettes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .._errors import CompactionError, counted
from ..check._import import ExchangeVerdict, ImportResult, import_paths
from ..schema._versions import resolve_version
from ._common import add_format, add_judging, add_names, add_paths, as_json


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
    add_paths(cmd)
    cmd.add_argument(
        "-o", "--output", default=None, metavar="DIR", help="write into DIR instead of in place"
    )
    add_judging(
        cmd,
        version="schema version to judge and stamp them with "
        "(default: the newest that accepts all)",
        strict="undocumented fields are violations",
    )
    cmd.add_argument(
        "--allow-invalid", action="store_true", help="import exchanges that do not conform"
    )
    cmd.add_argument("--force", action="store_true", help="replace existing files in --output")
    add_names(cmd, "--filter-header", "another header whose values are redacted (repeatable)")
    add_format(cmd)
    cmd.set_defaults(handler=run)


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
            f"{r.source}{arrow}: {r.outcome} ({r.layout}, {counted(len(r.exchanges), 'exchange')}, "
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


def run(args: argparse.Namespace) -> int:
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
    if not results:
        raise CompactionError(f"no cassettes found under {', '.join(args.paths)}")
    if args.format == "json":
        print(as_json([r.as_dict() for r in results]))
    else:
        print("\n".join(_text_report(results)))
    if any(r.outcome == "error" for r in results):
        return 2
    return 1 if any(r.outcome == "refused" for r in results) else 0
