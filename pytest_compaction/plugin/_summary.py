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
        # Age (a Recording's; a proxy has none)
        "stale": getattr(rec, "stale", None),
        "undated": bool(getattr(rec, "undated", False)),
    }


def remember_live(config: pytest.Config, nodeid: str, found: Any) -> None:
    """Add what verify's live calls found (a ``_live.LiveFindings``) to the test's entry."""
    entry = config.stash[_STATS].setdefault(nodeid, {})
    live = entry.setdefault("live", {"sent": 0, "failures": [], "drift": [], "skipped": []})
    data = found.as_data()
    live["sent"] += data["sent"]
    for key in ("failures", "drift", "skipped"):
        live[key] += data[key]


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
    _age_section(tr, config, stats)
    _live_section(tr, stats)


def _age_section(tr: Any, config: pytest.Config, stats: dict[str, dict[str, Any]]) -> None:
    """Stale cassettes, one line each, and once how many have no recorded date."""
    stale = {n: s["stale"] for n, s in stats.items() if s.get("stale")}
    undated = sorted({s["cassette"] for s in stats.values() if s.get("undated")})
    if not stale and not undated:
        return
    tr.write_sep("-", "compaction cassette age")
    for nodeid in sorted(stale):
        tr.write_line(f"{nodeid}: {stale[nodeid]}")
    if undated:
        tr.write_line(
            f"{len(undated)} cassette(s) have no compaction.recorded_at (recorded before "
            "pytest-compaction wrote it, or by another recorder) and were not age-checked; "
            "re-record them to date them: " + ", ".join(_relative(config, p) for p in undated)
        )


def _live_section(tr: Any, stats: dict[str, dict[str, Any]]) -> None:
    """Under verify: the live calls' verdict changes, drift and skipped exchanges per test."""
    live = {n: s["live"] for n, s in stats.items() if s.get("live")}
    if not live:
        return
    sent = sum(v["sent"] for v in live.values())
    failures = sum(len(v["failures"]) for v in live.values())
    drifted = sum(len(v["drift"]) for v in live.values())
    skipped = sum(len(v["skipped"]) for v in live.values())
    tr.write_sep("-", "compaction verify")
    tr.write_line(
        f"{sent} exchange(s) of {len(live)} test(s) sent to the live service: "
        f"{failures} failure(s) (verdict changes, calls without an answer), "
        f"{drifted} with contract drift, {skipped} skipped"
    )
    for nodeid in sorted(live):
        v = live[nodeid]
        if not (v["failures"] or v["drift"] or v["skipped"]):
            continue
        tr.write_line(f"{nodeid}:")
        for line in v["failures"]:
            tr.write_line(f"  failed: {line.splitlines()[0]}")
        for line in v["drift"]:
            tr.write_line(f"  drift: {line}")
        for line in v["skipped"]:
            tr.write_line(f"  skipped: {line}")


def _relative(config: pytest.Config, path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(config.rootpath.resolve()))
    except ValueError:
        return path
