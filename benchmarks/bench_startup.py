"""What the plugin costs a pytest run that does not use it.

A downstream suite with no compaction marker and none of the plugin's options, run by pytest
with the plugin and with ``-p no:compaction``, side by side in fresh processes (order
alternating, so load changes hit both alike). Target: the plugin adds at most 5 % to the
median wall time. Bytecode is cached, as an installed package's is: the runs ignore
``PYTHONDONTWRITEBYTECODE``, and one unmeasured run of each side writes the caches first (without
them every run compiles, and pytest assertion-rewrites, every module of the plugin again).

Run: python benchmarks/bench_startup.py [--rounds 25]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# benchmarks/ is on sys.path when a benchmark runs as a script.
from _timing import side_by_side

SUITE = "def test_one():\n    assert 1 + 1 == 2\n"
TARGET = 1.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        Path(folder, "test_one.py").write_text(SUITE)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_one.py"]

        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

        def run(*extra: str) -> None:
            done = subprocess.run(
                [*base, *extra], cwd=folder, capture_output=True, text=True, env=env
            )
            if done.returncode != 0:
                raise SystemExit(f"pytest failed:\n{done.stdout}{done.stderr}")

        run()  # unmeasured: writes the bytecode and assertion-rewrite caches
        run("-p", "no:compaction")
        with_plugin, without = side_by_side(args.rounds, run, lambda: run("-p", "no:compaction"))
    ratio = with_plugin / without
    ms = 1000.0
    print(f"one-test suite, {args.rounds} rounds each, side by side:")
    print(f"  pytest -p no:compaction     {without * ms:7.1f} ms")
    print(f"  pytest (plugin loaded)      {with_plugin * ms:7.1f} ms  ({ratio:.3f}x)")
    print(f"target: <= {TARGET:.2f}x: {'met' if ratio <= TARGET else 'MISSED'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
