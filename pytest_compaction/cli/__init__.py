"""The ``pytest-compaction`` command: one subcommand per task, each handled in its own module."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from importlib import import_module, metadata

from .._errors import CompactionError

Handler = Callable[[argparse.Namespace], int]

# Each module exposes ``register(commands)``, adding its subcommand(s) with a ``handler`` default.
# Imported only when the parser is built, so ``import pytest_compaction`` stays light.
COMMAND_MODULES = (
    "._schemas",
    "._serve",
    "._check",
    "._scan",
    "._import",
    "._demo",
    "._proxy",
    "._diff",
    "._corpus",
)


def installed_version() -> str:
    """The version the installed distribution declares; the package's own in a bare checkout."""
    try:
        return metadata.version("pytest-compaction")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        from .. import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-compaction",
        description="Record, replay and validate OpenAI /responses/compact exchanges.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"pytest-compaction {installed_version()}",
        help="print the installed version and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        import_module(name, __package__).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command: its own exit code, or 2 when it raises a usage problem.

    An interrupt (SIGINT) that the command does not handle itself (``serve`` and ``proxy`` do,
    once listening) ends it with one line on stderr and status 130, never a traceback.
    """
    try:
        args = build_parser().parse_args(argv)
        handler: Handler = args.handler
        return handler(args)
    except KeyboardInterrupt:
        return _interrupted()
    except CompactionError as exc:  # a bad path, version or spec: what the command was given
        print(f"pytest-compaction: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, with the status a shell reports for
        # a command ended by SIGPIPE, and keep the interpreter from failing again when it
        # flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _interrupted() -> int:
    print("pytest-compaction: interrupted", file=sys.stderr)
    return 130  # what a shell reports for a command ended by SIGINT


if __name__ == "__main__":
    raise SystemExit(main())
