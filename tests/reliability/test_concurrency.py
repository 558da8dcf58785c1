"""Parallel recording loses, duplicates and mixes up nothing.

``pytest -n 4`` records 200 generated tests against the embedded compaction server, one
cassette each; each request carries a marker of its own, which the server echoes back (a
compaction re-issues the user turns). Then the server is stopped and ``pytest -n 4`` replays
them. Every cassette must hold exactly one exchange, carrying its own marker in both the request
and the response, and the server must have received each marker exactly once.

``COMPACTION_RELIABILITY_SCALE=N`` generates N times as many tests (default 200);
``COMPACTION_RELIABILITY_WORKERS`` sets the number of xdist workers (default 4).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import pytest

from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.server import CompactionServer

pytest.importorskip("xdist")

SCALE = max(1, int(os.environ.get("COMPACTION_RELIABILITY_SCALE", "1")))
MODULES = 4
PER_MODULE = 50 * SCALE
WORKERS = os.environ.get("COMPACTION_RELIABILITY_WORKERS", "4")

TESTS = """
import httpx
import pytest

BASE = "{base}"
CLIENT = httpx.Client()


@pytest.mark.compaction
@pytest.mark.parametrize("n", range({count}))
def test_compact(n, compaction_cassette):
    marker = "marker-{module}-%04d" % n
    body = {{
        "model": "gpt-5.4",
        "input": [
            {{"role": "user", "content": marker}},
            {{"role": "assistant", "content": "noted"}},
        ],
    }}
    out = CLIENT.post(BASE + "/responses/compact", json=body).json()
    texts = [
        part["text"]
        for item in out["output"] if item["type"] == "message"
        for part in item["content"]
    ]
    assert texts == [marker]
    assert len(compaction_cassette.exchanges) == 1
"""

MARKER = re.compile(rb"marker-m\d-\d{4}")


def _markers(data: bytes | None) -> list[str]:
    return [m.decode() for m in MARKER.findall(data or b"")]


def test_parallel_recording_and_replay_keep_every_exchange_in_its_own_cassette(
    pytester: pytest.Pytester,
) -> None:
    total = MODULES * PER_MODULE
    with CompactionServer() as server:
        pytester.makepyfile(
            **{
                f"test_m{m}": TESTS.format(base=server.base_url, count=PER_MODULE, module=f"m{m}")
                for m in range(MODULES)
            }
        )
        recorded = pytester.runpytest_subprocess(
            "-n", WORKERS, "--compaction-record=once", "-p", "no:cacheprovider", "-q"
        )
        recorded.assert_outcomes(passed=total)
        received = Counter(
            marker for request in server.requests for marker in _markers(request.body)
        )
    recorded.stdout.fnmatch_lines(
        [f"{total} test(s) with cassettes: {total} exchange(s) recorded*"]
    )
    expected = {f"marker-m{m}-{n:04d}" for m in range(MODULES) for n in range(PER_MODULE)}
    assert set(received) == expected
    assert set(received.values()) == {1}  # each request reached the server exactly once

    # Replay with the server gone.
    replayed = pytester.runpytest_subprocess("-n", WORKERS, "-p", "no:cacheprovider", "-q")
    replayed.assert_outcomes(passed=total)
    replayed.stdout.fnmatch_lines(
        [f"{total} test(s) with cassettes: 0 exchange(s) recorded, {total} replayed*"]
    )

    root = pytester.path / "cassettes"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) == total  # no temp files, no extra cassettes
    seen = set()
    for path in files:
        module = path.parent.name.removeprefix("test_")
        n = int(re.fullmatch(r"test_compact\[(\d+)\]\.yaml", path.name).group(1))  # type: ignore[union-attr]
        own = f"marker-{module}-{n:04d}"
        exchanges = load_cassette(path).exchanges
        assert len(exchanges) == 1, path
        exchange = exchanges[0]
        assert _markers(exchange.request_body) == [own], path
        response = json.loads(exchange.response_body)
        assert _markers(exchange.response_body) == [own], path
        assert response["object"] == "response.compaction"
        seen.add(own)
    assert seen == expected
    print(f"\nconcurrency: {total} tests recorded with -n {WORKERS} and replayed: 0 lost, 0 mixed")
