"""``pytest-compaction proxy``: the recording proxy in the foreground until signalled.

The proxy's log goes to stderr while it runs, then its summary; ``--summary-json`` writes the
summary as JSON too. Exit 0 after a clean stop, 2 when it cannot start as asked.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from .._settings import RECORD_MODES
from ..cassette._file import write_atomic
from ..contract._dialects import DIALECTS
from ..proxy._proxy import CompactionProxy, log
from ..replay._credentials import compile_pattern
from ._common import add_judging, add_listener, add_names, serve_until_signalled


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "proxy",
        help="record/replay and validate any client's traffic through a reverse proxy",
        description="Serve a reverse proxy in front of UPSTREAM: clients whose base URL is the "
        "printed URL are recorded to (or replayed from) the cassette, and /responses/compact "
        "and /responses exchanges are validated. Stops on SIGINT or SIGTERM after writing the "
        "cassette.",
    )
    parser.add_argument(
        "--upstream",
        required=True,
        metavar="URL",
        help="where requests go when recording; its path is a prefix (e.g. "
        "https://api.openai.com/v1); in record mode none it is never contacted",
    )
    parser.add_argument("--cassette", required=True, metavar="FILE", help="the cassette file")
    parser.add_argument(
        "--record",
        choices=RECORD_MODES,
        default="none",
        help="record mode (default: none: replay only, never contact the upstream)",
    )
    parser.add_argument(
        "--dialect",
        choices=(*DIALECTS, "auto"),
        default=None,
        help="gateway dialect to validate under and filter credentials of (default: the "
        "cassette's, else detected from each URL)",
    )
    add_judging(
        parser,
        version="schema version (default: the cassette's, else newest)",
        strict="treat undocumented fields as violations",
    )
    parser.add_argument(
        "--fail-on-violation",
        type=int,
        default=None,
        metavar="STATUS",
        help="answer an exchange that violates the schemas with this status (400-599) and a "
        "JSON error, so the client's own tests fail",
    )
    add_names(parser, "--filter-header", "another header whose value is never written (repeatable)")
    add_names(
        parser,
        "--filter-query",
        "another query parameter whose value is never written (repeatable)",
    )
    parser.add_argument(
        "--allow-secret",
        action="append",
        default=[],
        metavar="VALUE",
        help="a fake key clients send on purpose, recorded although it looks like a secret "
        "(repeatable)",
    )
    parser.add_argument(
        "--allow-secret-pattern",
        action="append",
        default=[],
        metavar="RE",
        help="a regular expression: secret-looking values it matches whole are recorded "
        "(repeatable)",
    )
    parser.add_argument(
        "--keep-volatile-headers",
        action="store_true",
        help="write the request headers that never count (x-stainless-*, user-agent, ...)",
    )
    parser.add_argument(
        "--allow-playback-repeats",
        action="store_true",
        help="let a recorded exchange answer more than one request",
    )
    parser.add_argument(
        "--upstream-ca", default=None, metavar="FILE", help="CA bundle for a TLS upstream"
    )
    add_listener(parser)
    parser.add_argument(
        "--summary-json", default=None, metavar="FILE", help="write the summary here on exit"
    )
    parser.add_argument("--quiet", action="store_true", help="log problems only")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("pytest-compaction proxy: %(message)s"))
    saved = (log.level, log.propagate)
    log.addHandler(handler)
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    log.propagate = False
    try:
        proxy = serve_until_signalled(
            "proxy",
            lambda: CompactionProxy(
                args.upstream,
                args.cassette,
                record_mode=args.record,
                version=args.version,
                strict=args.strict,
                dialect=args.dialect,
                filter_headers=args.filter_header,
                filter_query_parameters=args.filter_query,
                allow_playback_repeats=args.allow_playback_repeats,
                fail_on_violation=args.fail_on_violation,
                host=args.host,
                port=args.port,
                upstream_ca=args.upstream_ca,
                hint=lambda mode: f"pytest-compaction proxy --record {mode} ...",
                allow_secrets=[
                    *args.allow_secret,
                    *(
                        compile_pattern(p, "--allow-secret-pattern")
                        for p in args.allow_secret_pattern
                    ),
                ],
                keep_volatile_headers=args.keep_volatile_headers,
            ).start(),
            lambda proxy: proxy.url,
        )
        if proxy is None:
            return 2
        print(f"pytest-compaction proxy: summary: {proxy.summary_text()}", file=sys.stderr)
        if args.summary_json:
            write_atomic(
                args.summary_json,
                json.dumps(proxy.summary(), indent=2).encode("utf-8") + b"\n",
            )
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]
    return 0
