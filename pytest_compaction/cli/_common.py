"""What the commands share: argument definitions, JSON output, the usage-error line, services.

A usage problem a command reports itself (a port in use, an unknown dialect) is one line on
stderr naming the command, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from .._errors import CompactionError
from .._listener import LocalService, run_until_signal

S = TypeVar("S", bound=LocalService[Any])


def port_number(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535: a bad value is a usage error naming the value."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def add_paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="cassette files or folders")


def add_format(parser: argparse.ArgumentParser, *extra: str) -> None:
    parser.add_argument("--format", choices=("text", "json", *extra), default="text")


def add_names(parser: argparse.ArgumentParser, flag: str, help: str) -> None:
    """A repeatable ``flag NAME`` option, collected into a list."""
    parser.add_argument(flag, action="append", default=[], metavar="NAME", help=help)


def add_judging(parser: argparse.ArgumentParser, *, version: str, strict: str) -> None:
    """``--version`` (the schema version to judge by) and ``--strict``, each with its help."""
    parser.add_argument("--version", default=None, help=version)
    parser.add_argument("--strict", action="store_true", help=strict)


def add_listener(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=port_number, default=0, help="port (default: any free port)")


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def usage_error(command: str, problem: object) -> int:
    print(f"pytest-compaction {command}: {problem}", file=sys.stderr)
    return 2


def serve_until_signalled(
    command: str, start: Callable[[], S], url: Callable[[S], str]
) -> S | None:
    """The service ``start()`` returns, its ``url`` printed, served until SIGINT or SIGTERM.

    The service is stopped when it is returned; None once a usage problem ``start()`` raised
    (a port in use, a bad option) is reported.
    """
    try:
        service = start()
    except CompactionError as exc:
        usage_error(command, exc)
        return None
    if getattr(service, "beyond_loopback", False):
        print(
            f"pytest-compaction {command}: warning: listening on {url(service)}, beyond "
            "loopback: anyone who can reach this address can send requests through it and "
            "read what it answers (recorded conversations included)",
            file=sys.stderr,
            flush=True,
        )
    run_until_signal(url(service), service.stop)
    return service
