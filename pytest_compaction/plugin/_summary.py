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
    config.stash[_STATS][nodeid] = {
        "cassette": str(cassette),
        "recorded": rec.recorded,
        "replayed": rec.replayed,
        "validated": rec.validated,
        "violations": list(rec.violations),
        "drift": list(rec.drift),
        "notes": list(rec.notes),
    }


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
    total = {k: sum(s[k] for s in stats.values()) for k in ("recorded", "replayed", "validated")}
    violations = sum(len(s["violations"]) for s in stats.values())
    drift = sum(len(s["drift"]) for s in stats.values())
    tr.write_line(
        f"{len(stats)} test(s) with cassettes: {total['recorded']} exchange(s) recorded, "
        f"{total['replayed']} replayed, {total['validated']} validated; "
        f"{violations} violation(s), {drift} drift note(s)"
    )
    fresh = _freshness(config)
    if fresh:
        tr.write_line(f"note: {fresh}")
    for nodeid in sorted(stats):
        s = stats[nodeid]
        if not s["violations"] and not s["drift"] and not s.get("notes"):
            continue
        tr.write_line(f"{nodeid} ({s['cassette']}):")
        for line in s["violations"]:
            tr.write_line(f"  violation: {line}")
        for line in s["drift"]:
            tr.write_line(f"  drift: {line}")
        for line in s.get("notes", ()):
            tr.write_line(f"  note: {line}")
