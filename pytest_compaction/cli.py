"""The ``pytest-compaction`` command: one subcommand per task, each handled in its own module."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-compaction",
        description="Record, replay and validate OpenAI /responses/compact exchanges.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from . import _schema_commands
    from ._server import _serve

    _schema_commands.add_schemas(commands)
    _schema_commands.add_validate(commands)

    serve = commands.add_parser(
        "serve",
        help="run a local /v1/responses/compact server until interrupted",
        description="Serve POST /v1/responses/compact locally; prints the base URL, "
        "stops cleanly on SIGINT or SIGTERM.",
    )
    _serve.add_arguments(serve)
    serve.set_defaults(handler=_serve.run)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
