"""The recording proxy under load: time per exchange as the cassette grows.

Records through ``CompactionProxy`` in front of the embedded server, into a new cassette, and
measures, in the same run, the same requests sent straight to the server (the baseline):
- sequential: 200 small compact exchanges, one client; the median time of the last 20 over the
  median of the first 20 (target <= 1.3: flat as the cassette grows) and over the baseline;
- after one large exchange (a ~8 MB request to another path): the median of 20 small exchanges
  less the median of the small ones before it, over the time one atomic write of that cassette
  takes, measured here too (target <= 1.5: what the large exchange adds to each later one is the
  rewrite of the file's bytes, not a new scan or dump of it);
- parallel: 200 clients at once, one exchange each; wall time over the baseline's.
Each recorded exchange is in the file before its client has read the answer to its end, so
the times include one atomic write (with fsync) per group of exchanges answered together.

Run: python benchmarks/bench_proxy.py [--exchanges 200] [--large-mb 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _timing import timed

from pytest_compaction import CompactionServer
from pytest_compaction._atomic import write_atomic
from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.proxy._proxy import CompactionProxy

AUTH = {"authorization": "Bearer sk-bench-" + "0" * 40}


def body(i: int, size: int = 0) -> dict[str, Any]:
    text = f"turn {i}: tell me about the weather" + (" and more" * (size // 9))
    return {
        "model": "gpt-5.4",
        "input": [
            {"role": "user", "content": text},
            {"role": "assistant", "content": f"answer {i}"},
        ],
    }


def one(client: httpx.Client, base: str, i: int, size: int = 0) -> float:
    """One compact exchange; with ``size``, a request of about that many bytes to another path
    (the server's 404 is recorded like any answer; a compact input that large is over the
    model's context window)."""
    path, status = ("/files", 404) if size else ("/responses/compact", 200)
    start = time.perf_counter()
    response = client.post(base + path, json=body(i, size), headers=AUTH)
    response.read()
    elapsed = time.perf_counter() - start
    if response.status_code != status:
        raise SystemExit(f"exchange {i}: {response.status_code} {response.text[:300]}")
    return elapsed


def sequential(base: str, first: int, count: int) -> list[float]:
    with httpx.Client(timeout=120) as client:
        return [one(client, base, first + i) for i in range(count)]


def parallel(base: str, first: int, count: int) -> float:
    errors: list[BaseException] = []
    gate = threading.Barrier(count + 1)

    def run(i: int) -> None:
        try:
            with httpx.Client(timeout=120) as client:
                gate.wait()
                one(client, base, first + i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    gate.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{len(errors)} parallel exchange(s) failed: {errors[0]!r}")
    return time.perf_counter() - start


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=200)
    parser.add_argument("--large-mb", type=float, default=8.0)
    args = parser.parse_args()
    n = args.exchanges
    window = max(5, n // 10)
    failed = False

    with tempfile.TemporaryDirectory() as tmp, CompactionServer() as server:
        base = server.base_url
        direct = sequential(base, 0, n)

        cassette = Path(tmp) / "sequential.yaml"
        with CompactionProxy(base, cassette, record_mode="new_episodes") as proxy:
            times = sequential(proxy.url, 0, n)
        kept = len(load_cassette(cassette).exchanges)
        first = statistics.median(times[:window])
        last = statistics.median(times[-window:])
        growth = last / first
        print(
            f"sequential, {n} exchanges: first {window} {ms(first)}, last {window} {ms(last)} "
            f"(x{growth:.2f}, target <= 1.3); straight to the server "
            f"{ms(statistics.median(direct))} "
            f"(proxy x{statistics.median(times) / statistics.median(direct):.2f}); "
            f"{kept} in the cassette"
        )
        failed |= growth > 1.3 or kept != n

        cassette = Path(tmp) / "large.yaml"
        size = int(args.large_mb * 2**20)
        with (
            CompactionProxy(base, cassette, record_mode="new_episodes") as proxy,
            httpx.Client(timeout=300) as client,
        ):
            before = [one(client, proxy.url, 10_000 + i) for i in range(window)]
            large = one(client, proxy.url, 20_000, size)
            after = [one(client, proxy.url, 30_000 + i) for i in range(window)]
        data = cassette.read_bytes()
        rewrite = timed(window, lambda: write_atomic(Path(tmp) / "copy.yaml", data))
        added = statistics.median(after) - statistics.median(before)
        ratio = added / rewrite
        print(
            f"after one {args.large_mb:.0f} MB exchange ({ms(large)}): small exchanges "
            f"{ms(statistics.median(after))} vs {ms(statistics.median(before))} before; "
            f"{ms(added)} added, x{ratio:.2f} one atomic write of the "
            f"{len(data) / 2**20:.1f} MB cassette ({ms(rewrite)}; target <= 1.5)"
        )
        failed |= ratio > 1.5

        wall_direct = parallel(base, 40_000, n)
        cassette = Path(tmp) / "parallel.yaml"
        with CompactionProxy(base, cassette, record_mode="new_episodes") as proxy:
            wall = parallel(proxy.url, 40_000, n)
        kept = len(load_cassette(cassette).exchanges)
        print(
            f"parallel, {n} clients: {wall:.2f} s through the proxy vs {wall_direct:.2f} s "
            f"straight to the server (x{wall / wall_direct:.2f}); {kept} in the cassette"
        )
        failed |= kept != n
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
