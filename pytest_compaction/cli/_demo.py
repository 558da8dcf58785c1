"""``pytest-compaction demo``: check the ground, run the demo, print its summary.

Exit 0 when everything worked, 1 when something did not, 2 for a usage problem (the openai SDK
missing, an ``--out`` that cannot hold cassettes).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

from .._errors import counted
from ..demo._demo import DemoRun, Result, run_demo
from ._common import usage_error

DEFAULT_OUT = "compaction-demo"

OPENAI_MISSING = (
    "the demo drives the official openai SDK, which is not installed.\n"
    "Install it with:  pip install 'pytest-compaction[demo]'"
)


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="record, replay offline and validate compaction scenarios against a local server",
        description="Start the embedded compaction server, record scenarios through the openai "
        "SDK into cassettes, stop the server, replay them with the network blocked and validate "
        "every exchange. Exit 0 when everything worked, 1 otherwise, 2 for a usage problem.",
    )
    demo.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"cassette folder, re-recorded when it exists (default: ./{DEFAULT_OUT})",
    )
    demo.set_defaults(handler=run)


class DemoUsageError(Exception):
    pass


def _prepare(out: Path) -> None:
    """Make sure cassettes can be written to ``out`` before starting anything."""
    if out.exists() and not out.is_dir():
        raise DemoUsageError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DemoUsageError(
            f"--out {out}: cannot write cassettes there: {exc.strerror or exc}"
        ) from None


def _table(results: list[Result]) -> list[str]:
    head = ("scenario", "recorded", "replayed", "validated", "violations", "drift", "replay")
    rows = [
        (
            r.scenario.name,
            str(r.recorded),
            str(r.replayed),
            str(r.validated),
            str(len(r.violations)),
            str(len(r.drift)),
            "same objects" if r.same else "DIFFERENT" if r.replayed else "-",
            str(r.cassette),
        )
        for r in results
    ]
    width = max(len(head[0]), *(len(row[0]) for row in rows))
    numbers = [len(h) for h in head[1:6]]

    def line(cells: tuple[str, ...]) -> str:
        parts = [cells[0].ljust(width)]
        parts += [c.rjust(n) for c, n in zip(cells[1:6], numbers, strict=True)]
        parts += [cells[6].ljust(12), *cells[7:]]
        return "  " + "  ".join(parts).rstrip()

    return [line((*head, "cassette")), *(line(row) for row in rows)]


# What each column counts (``validated`` is the tally of ``contract._tally``: an exchange counts
# each time it is judged, and it is judged when recorded and again when replayed).
LEGEND = (
    "",
    "  recorded    exchanges (a request and its answer) recorded while the server ran",
    "  replayed    exchanges answered from the cassette with the server stopped",
    "  validated   times an exchange's request and answer (response, error or each stream",
    "              event) were checked against the schema: when recorded, again when replayed",
    "  violations  schema violations found; drift: properties the schema does not declare",
    "  replay      whether the SDK objects the replay gave equal the recorded ones",
)


def summary(run: DemoRun, out: Path) -> list[str]:
    results = run.results
    lines = [
        f"server    {run.server_url} (deterministic), stopped before replay",
        f"client    openai {run.sdk_version}, max_retries=0",
        f"schemas   {', '.join(run.schema_versions) or '-'} (recorded in each cassette)",
        "",
        *(f"  {r.scenario.name.ljust(13)} {r.scenario.what}" for r in results),
        "",
        *_table(results),
    ]
    for r in results:
        lines += [f"  {r.scenario.name}: violation: {v}" for v in r.violations]
        lines += [f"  {r.scenario.name}: drift: {d}" for d in r.drift]
        lines += [f"  {r.scenario.name}: problem: {p}" for p in r.problems]
    lines += LEGEND
    lines.append("")
    attempts = len(run.connection_attempts)
    lines.append(
        f"network   replay with the server stopped and sockets blocked: "
        f"{counted(attempts, 'connection attempt')}"
    )
    lines.append(
        f"secrets   {len(run.secret_findings)} found on disk "
        "(authorization and api-key headers redacted, every write scanned)"
    )
    lines += [f"  secret: {f}" for f in run.secret_findings]
    if run.gitignore:
        lines.append(f"git       {run.gitignore}")
    recorded = sum(r.recorded for r in results)
    replayed = sum(r.replayed for r in results)
    validated = sum(r.validated for r in results)
    violations = sum(len(r.violations) for r in results)
    totals = (
        f"{counted(len(results), 'scenario')}, {counted(recorded, 'exchange')} recorded, "
        f"{replayed} replayed offline, {counted(validated, 'check')} against the schema "
        f"(each exchange at record and at replay), {counted(violations, 'violation')}"
    )
    if run.ok:
        lines.append(f"OK: {totals}; cassettes in {out.resolve()}")
    else:
        failed = [r.scenario.name for r in results if not r.ok]
        which = f" (failed: {', '.join(failed)})" if failed else ""
        lines.append(f"FAILED: {totals}{which}; cassettes in {out.resolve()}")
    return lines


def run(args: argparse.Namespace) -> int:
    # Looked up, not imported: the SDK takes a while to import and is not needed to say no.
    if importlib.util.find_spec("openai") is None:
        return usage_error("demo", OPENAI_MISSING)
    out = Path(args.out)
    try:
        _prepare(out)
    except DemoUsageError as exc:
        return usage_error("demo", exc)
    demo = run_demo(out)
    print("\n".join(summary(demo, out)), flush=True)
    return 0 if demo.ok else 1
