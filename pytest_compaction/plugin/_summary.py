"""Every test's counts, gathered across xdist workers, and the terminal summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .._errors import CompactionError

_STATS = pytest.StashKey[dict[str, dict[str, Any]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATS] = {}


def remember(config: pytest.Config, nodeid: str, cassette: Path, rec: Any) -> None:
    """Keep a test's counts for the terminal summary (``rec``: a Recording or a proxy)."""
    stats = config.stash[_STATS]
    stats[nodeid] = {
        **stats.get(nodeid, {}),
        "cassette": str(cassette),
        "recorded": rec.recorded,
        "replayed": rec.replayed,
        "validated": rec.validated,
        "violations": list(rec.violations),
        "drift": list(rec.drift),
        "notes": list(rec.notes),
    }


def failed(config: pytest.Config, nodeid: str, message: str) -> None:
    """Keep that the cassette failed a test (chaining, secrets, a miss...), as its first line.

    Such failures are not violations of the schema, so the summary counts them apart: a test
    that errors at teardown because its cassette was refused shows up in the counts too.
    """
    entry = config.stash[_STATS].setdefault(nodeid, {})
    entry.setdefault("failed", message.strip().splitlines()[0] if message.strip() else message)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["compaction_stats"] = json.dumps(config.stash.get(_STATS, {}))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    raw = getattr(node, "workeroutput", {}).get("compaction_stats")
    if raw:
        node.config.stash.setdefault(_STATS, {}).update(json.loads(raw))


def _freshness(config: pytest.Config) -> str | None:
    """The freshness line of the version this run validates against by default."""
    from ..schema._versions import freshness

    version = config.getoption("compaction_version") or config.getini("compaction_version")
    try:
        return freshness(version or None)
    except CompactionError:
        return None


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    stats = config.stash.get(_STATS, {})
    if not stats:
        return
    tr = terminalreporter
    tr.write_sep("=", "compaction")
    # A test that failed before its cassette was entered has only its failure kept.
    stats = {n: s for n, s in stats.items() if "cassette" in s}
    if not stats:
        return
    total = {k: sum(s[k] for s in stats.values()) for k in ("recorded", "replayed", "validated")}
    violations = sum(len(s["violations"]) for s in stats.values())
    drift = sum(len(s["drift"]) for s in stats.values())
    refused = sum(1 for s in stats.values() if s.get("failed"))
    tr.write_line(
        f"{len(stats)} test(s) with cassettes: {total['recorded']} exchange(s) recorded, "
        f"{total['replayed']} replayed, {total['validated']} validated; "
        f"{violations} violation(s), {drift} drift note(s)"
        + (f"; {refused} test(s) failed by their cassette" if refused else "")
    )
    fresh = _freshness(config)
    if fresh:
        tr.write_line(f"note: {fresh}")
    for nodeid in sorted(stats):
        s = stats[nodeid]
        if not s["violations"] and not s["drift"] and not s.get("notes") and not s.get("failed"):
            continue
        tr.write_line(f"{nodeid} ({s['cassette']}):")
        if s.get("failed"):
            tr.write_line(f"  failed: {s['failed']}")
        for line in s["violations"]:
            tr.write_line(f"  violation: {line}")
        for line in s["drift"]:
            tr.write_line(f"  drift: {line}")
        for line in s.get("notes", ()):
            tr.write_line(f"  note: {line}")
