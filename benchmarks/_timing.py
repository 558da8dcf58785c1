"""Timing helpers shared by the benchmarks: medians, and two sides measured interleaved."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(rounds: int, run: Callable[[], object]) -> float:
    """Median seconds of ``run`` over ``rounds`` runs, after one warm-up run."""
    run()  # warm-up: imports, schema compilation, caches
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def side_by_side(
    rounds: int, first: Callable[[], object], second: Callable[[], object]
) -> tuple[float, float]:
    """Medians of interleaved runs (order alternating), so load changes hit both alike."""
    first()
    second()
    a: list[float] = []
    b: list[float] = []
    for i in range(rounds):
        pairs = ((first, a), (second, b)) if i % 2 == 0 else ((second, b), (first, a))
        for run, samples in pairs:
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)
