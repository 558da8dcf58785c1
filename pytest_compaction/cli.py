"""The ``pytest-compaction`` command: one subcommand per task, each handled in its own module."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import import_module

Handler = Callable[[argparse.Namespace], int]

# Each module exposes ``register(commands)``, adding its subcommand(s) with a ``handler`` default.
# Imported only when the parser is built, so ``import pytest_compaction`` stays light.
COMMAND_MODULES = (
    "._schema_commands",
    "._server._serve",
    "._check",
    "._scan",
    "._import",
    "._demo",
    "._proxy",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-compaction",
        description="Record, replay and validate OpenAI /responses/compact exchanges.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        import_module(name, __package__).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
