"""``pytest-compaction diff OLD NEW``: two recordings of the same tests compared.

What is compared, and how, is :mod:`..check._diff`'s; this module words the result. Exit 0 when
there is no difference, 1 when there is one, 2 on input that cannot be compared (as ``check``,
``scan`` and ``import``).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..cassette._secrets import mask_secrets
from ..check import CassetteDiff, DiffResult, ExchangeDiff, diff_paths
from ..contract._dialects import DIALECTS
from ._common import add_format, add_judging, as_json


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "diff",
        help="compare two recordings of the same tests",
        description=(
            "Compare the cassettes under OLD with those under NEW (two cassette files, or two "
            "folders whose cassettes pair by relative path), exchange by exchange: route, "
            "status, the fields and list items that changed in request and response bodies "
            "(an event stream by its final response), and each verdict as check judges it. "
            "Ids, encrypted tokens, timestamps and usage token counts are normalised unless "
            "--no-normalise. Exit 0 when nothing differs, 1 when something does, 2 on input "
            "that cannot be compared."
        ),
    )
    parser.add_argument("old", metavar="OLD", help="the earlier recording: a cassette or a folder")
    parser.add_argument("new", metavar="NEW", help="the later recording: a cassette or a folder")
    parser.add_argument(
        "--no-normalise",
        "--no-normalize",
        dest="normalise",
        action="store_false",
        help="also show changed ids, encrypted tokens, timestamps and usage token counts",
    )
    add_judging(
        parser,
        version="version for cassettes that do not record theirs (default: the newest)",
        strict="undocumented properties are violations",
    )
    parser.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=None,
        help="judge both sides under this gateway dialect's profile (default: as recorded)",
    )
    add_format(parser)
    parser.set_defaults(handler=run)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _verdict(passed: bool | None) -> str:
    return "pass" if passed else "FAIL"


def _exchange_lines(ex: ExchangeDiff) -> list[str]:
    if ex.presence != "both":
        status = ex.old_status if ex.presence == "old only" else ex.new_status
        passed = ex.old_passed if ex.presence == "old only" else ex.new_passed
        judged = "" if passed is None else f", {_verdict(passed)}"
        where = "OLD" if ex.presence == "old only" else "NEW"
        lines = [f"  {ex.name}  only in {where} (status {status}{judged})"]
        return lines + [f"        {line}" for line in ex.violations]
    lines = [f"  {ex.name}"]
    if ex.verdict is not None:
        lines.append(
            f"    verdict: {_verdict(ex.old_passed)} -> {_verdict(ex.new_passed)} ({ex.verdict})"
        )
        lines += [f"        {line}" for line in ex.violations]
    if ex.old_route != ex.new_route:
        lines.append(f"    route: {ex.old_route} -> {ex.new_route}")
    if ex.status_changed:
        lines.append(f"    status: {ex.old_status} -> {ex.new_status}")
    lines += [f"    {change}" for change in ex.changes]
    return lines


def _cassette_lines(cassette: CassetteDiff) -> list[str]:
    if cassette.presence == "old only":
        return [f"{cassette.path}  only in OLD ({_plural(cassette.old_exchanges, 'exchange')})"]
    if cassette.presence == "new only":
        return [f"{cassette.path}  only in NEW ({_plural(cassette.new_exchanges, 'exchange')})"]
    lines = [cassette.path]
    if cassette.old_version != cassette.new_version:
        lines.append(f"  judged by: {cassette.old_version} -> {cassette.new_version}")
    if cassette.chain_verdict is not None:
        failing = cassette.new_chain or cassette.old_chain
        before, after = _verdict(not cassette.old_chain), _verdict(not cassette.new_chain)
        lines.append(f"  chain: {before} -> {after} ({cassette.chain_verdict})")
        lines += [f"      {line}" for line in failing]
    for ex in cassette.exchanges:
        lines += _exchange_lines(ex)
    return lines


def summary_line(result: DiffResult) -> str:
    """``3 cassettes compared: 1 changed (2 exchanges, 1 verdict change), 2 unchanged``."""
    s = result.summary()
    head = f"{_plural(s['cassettes'], 'cassette')} compared: "
    if not result.differences:
        text = head + "no differences"
    else:
        parts = [
            f"{s['changed']} changed ({_plural(s['exchanges_changed'], 'exchange')}, "
            f"{_plural(s['verdict_changes'], 'verdict change')})",
            f"{s['unchanged']} unchanged",
        ]
        if s["old_only"]:
            parts.append(f"{s['old_only']} only in OLD")
        if s["new_only"]:
            parts.append(f"{s['new_only']} only in NEW")
        text = head + ", ".join(parts)
    if s["normalised"]:
        text += (
            f"; {_plural(s['normalised'], 'id/token/timestamp/usage value')} normalised "
            "(--no-normalise shows them)"
        )
    return text


def format_text(result: DiffResult) -> str:
    """A block per cassette with a difference, then the one-line summary."""
    lines: list[str] = []
    for cassette in result.cassettes:
        if cassette.changed:
            lines += _cassette_lines(cassette)
    lines.append(summary_line(result))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    result = diff_paths(
        args.old,
        args.new,
        normalise=args.normalise,
        version=args.version,
        strict=args.strict,
        dialect=args.dialect,
    )
    text = as_json(result.as_dict()) if args.format == "json" else format_text(result)
    # Values and violation lines quote what was recorded, which may be a key: mask on the way out.
    print(mask_secrets(text))
    return 1 if result.differences else 0
