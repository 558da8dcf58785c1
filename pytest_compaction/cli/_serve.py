"""``pytest-compaction serve``: run the compaction server in the foreground until signalled."""

from __future__ import annotations

import argparse
from typing import Any

from ..server._server import DIALECTS, CompactionServer
from ._common import add_listener, serve_until_signalled

_COMPACTING_EVENTS = {"auto": None, "on": True, "off": False}


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run a local /v1/responses/compact (and /v1/responses) server until interrupted",
        description="Serve POST /v1/responses/compact, and POST /v1/responses with server-side "
        "compaction, locally; prints the base URL, stops cleanly on SIGINT or SIGTERM.",
    )
    add_arguments(serve)
    serve.set_defaults(handler=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_listener(parser)
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="fixed clock, counter ids and a fixed key: identical runs give identical bytes",
    )
    parser.add_argument(
        "--context-window",
        type=int,
        default=400_000,
        metavar="TOKENS",
        help="inputs estimated above this many tokens get context_length_exceeded",
    )
    parser.add_argument(
        "--dialect",
        choices=DIALECTS,
        default="openai",
        help="answer as this gateway does (paths, ids, extra fields, errors); the printed base "
        "URL carries its prefix",
    )
    parser.add_argument(
        "--fault", default=None, metavar="SPEC", help="fault applied to every request"
    )
    parser.add_argument(
        "--schema-version", default=None, help="schema version requests are checked against"
    )
    parser.add_argument(
        "--compacting-events",
        choices=sorted(_COMPACTING_EVENTS),
        default="auto",
        help="send response.compaction.compacting events in streamed compactions: always (on), "
        "never (off), or when the schema version declares them (auto, the default)",
    )


def run(args: argparse.Namespace) -> int:
    server = serve_until_signalled(
        "serve",
        lambda: CompactionServer(
            args.host,
            args.port,
            deterministic=args.deterministic,
            context_window=args.context_window,
            dialect=args.dialect,
            fault=args.fault,
            schema_version=args.schema_version,
            record_requests=False,  # a long-running server must not grow without bound
            compacting_events=_COMPACTING_EVENTS[args.compacting_events],
        ).start(),
        lambda server: server.base_url,
    )
    return 2 if server is None else 0
