"""``pytest-compaction check``: recorded exchanges judged against a schema version.

Exit 0 when every exchange and every chaining rule passes, 1 when one fails, 2 on usage errors
and unreadable cassettes (as ``scan`` and ``import``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..cassette._secrets import mask_secrets
from ..check._report import format_junit, format_text
from ..check._results import CheckResult
from ..check._run import check_paths
from ..contract._dialects import DIALECTS
from ._common import add_format, add_judging, add_paths, as_json


def _json(result: CheckResult) -> str:
    return as_json(result.as_dict())


_FORMATS: dict[str, Callable[[CheckResult], str]] = {
    "json": _json,
    "junit": format_junit,
    "text": format_text,
}


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "check",
        help="check recorded exchanges against a schema version",
        description=(
            "Validate every /responses/compact and /responses exchange of every cassette under "
            "the paths (this project's cassettes, stock vcrpy YAML/JSON, pydantic-ai's) and the "
            "chaining of compaction outputs into later requests. Exit 0 when all pass, 1 when "
            "any fails, 2 on usage errors and unreadable cassettes."
        ),
    )
    add_paths(parser)
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--against",
        metavar="VERSION",
        help="also judge by this version and explain each difference",
    )
    target.add_argument(
        "--spec", metavar="FILE", help="like --against, with schemas derived from an OpenAPI file"
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
        help=(
            "judge every exchange under this gateway dialect's profile (its schema overlays), "
            "overriding the dialect a cassette recorded (default: the recorded one, else the "
            "one detected from the URL, else openai)"
        ),
    )
    add_format(parser, "junit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    result = check_paths(
        args.paths,
        version=args.version,
        against=args.against,
        spec=args.spec,
        strict=args.strict,
        dialect=args.dialect,
    )
    # A violation quotes the offending value, which may be a key: mask it on the way out.
    print(mask_secrets(_FORMATS[args.format](result)))
    if any(c.error is not None for c in result.cassettes):
        return 2
    return 0 if result.passed else 1
