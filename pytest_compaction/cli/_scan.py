"""``pytest-compaction scan``: credentials and account identifiers left in cassettes, reported.

What is scanned and how ``--fix`` edits a file: :mod:`..cassette._scan`.

Exit 0 when clean (or, with ``--fix``, when everything was redacted), 1 when something is found,
2 on usage errors and unreadable cassettes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .._errors import CompactionError, counted
from ..cassette._scan import ScanResult, scan_paths
from ._common import add_format, add_names, add_paths, as_json


def register(commands: Any) -> None:
    scan = commands.add_parser(
        "scan",
        help="find credentials and account identifiers in cassettes",
        description=(
            "Scan cassettes (this project's, stock vcrpy YAML/JSON, pydantic-ai) for auth "
            "headers, openai-organization/openai-project values and key-shaped strings in "
            "headers, query strings and decoded bodies, and in every other value, name and "
            "comment of the file (metadata, fields no loader reads). --fix edits only the "
            "offending values in place. Exit 0 when clean (or, with --fix, when everything was "
            "redacted), 1 when something is found, 2 on usage errors and unreadable cassettes."
        ),
    )
    add_paths(scan)
    scan.add_argument(
        "--fix", action="store_true", help="redact what is found, in place (atomic writes)"
    )
    add_names(scan, "--header", "another header whose values are sensitive (repeatable)")
    add_names(scan, "--query", "another query parameter whose values are sensitive (repeatable)")
    add_format(scan)
    scan.set_defaults(handler=run)


def _text_report(results: Sequence[ScanResult]) -> list[str]:
    lines: list[str] = []
    for r in results:
        if r.error is not None:
            lines.append(f"{r.path}: error: {r.error}")
            continue
        if not r.findings:
            continue
        count = len(r.findings)
        head = f"{r.path} ({r.layout}, {counted(r.exchanges, 'exchange')}): {count} finding(s)"
        if r.fixed:
            head += (
                "; redacted in place"
                if not r.remaining
                else f"; {len(r.remaining)} could not be redacted"
            )
        lines.append(head)
        shown = r.remaining if r.fixed else r.findings
        lines += [f"  {f}" for f in shown]
    findings = sum(len(r.findings) for r in results)
    dirty = sum(1 for r in results if r.findings)
    scanned = sum(1 for r in results if r.error is None)
    summary = f"scanned {scanned} cassette(s): {findings} finding(s) in {dirty} cassette(s)"
    if any(r.fixed for r in results):
        remaining = sum(len(r.remaining) for r in results if r.fixed)
        summary += f"; fixed {sum(1 for r in results if r.fixed)} file(s), {remaining} remaining"
    errors = sum(1 for r in results if r.error is not None)
    if errors:
        summary += f"; {errors} file(s) could not be scanned"
    lines.append(summary)
    return lines


def run(args: argparse.Namespace) -> int:
    results = scan_paths(args.paths, fix=args.fix, headers=args.header, query=args.query)
    if not results:
        raise CompactionError(f"no cassettes found under {', '.join(args.paths)}")
    if args.format == "json":
        payload = {
            "cassettes": [r.as_dict() for r in results],
            "findings": sum(len(r.findings) for r in results),
            "remaining": sum(len(r.remaining if r.fixed else r.findings) for r in results),
            "errors": sum(1 for r in results if r.error is not None),
        }
        print(as_json(payload))
    else:
        print("\n".join(_text_report(results)))
    if any(r.error is not None for r in results):
        return 2
    return 0 if all(r.clean for r in results) else 1
