"""Validator speed: cold start, and a 1 MB compact request against ``json.loads``.

Prints figures and exits non-zero when a target is missed:
- importing ``pytest_compaction`` and compiling the request, response and error validators of
  every bundled version, in a fresh interpreter: <= 100 ms (median of several processes);
- validating a 1 MB compact request of about 2,000 mixed input items costs no more than
  ``json.loads`` of the same bytes, measured side by side in this run.
For reference it also times the pure-Python ``jsonschema`` backend on the same body.

Run: python benchmarks/bench_validate.py [--items 2000] [--rounds 9] [--processes 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

# benchmarks/ is on sys.path when a benchmark runs as a script.
from _timing import side_by_side, timed

COLD_START = """
import time
start = time.perf_counter()
import pytest_compaction as pc
imported = time.perf_counter()
for version in pc.available_versions():
    for kind in ("request", "response", "error"):
        pc.get_validator(kind, version)
done = time.perf_counter()
print(imported - start, done - imported)
"""


def mixed_input(items: int) -> list[dict[str, Any]]:
    """A long agent conversation: messages of every role, tool calls, reasoning, compactions."""
    filler = "the quick brown fox jumps over the lazy dog; " * 9
    out: list[dict[str, Any]] = []
    for i in range(items):
        kind = i % 8
        if kind == 0:
            out.append({"type": "message", "role": "user", "content": f"q{i}: {filler}"})
        elif kind == 1:
            out.append(
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": f"look {i}: {filler}"},
                        {
                            "type": "input_image",
                            "image_url": "https://example.test/i.png",
                            "detail": "auto",
                        },
                    ],
                }
            )
        elif kind == 2:
            out.append(
                {
                    "type": "function_call",
                    "call_id": f"call_{i}",
                    "name": "search",
                    "arguments": json.dumps({"q": filler[:80], "page": i}),
                }
            )
        elif kind == 3:
            out.append(
                {"type": "function_call_output", "call_id": f"call_{i - 1}", "output": filler}
            )
        elif kind == 4:
            out.append(
                {
                    "id": f"rs_{i}",
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": filler[:120]}],
                }
            )
        elif kind == 5:
            out.append(
                {
                    "id": f"msg_{i}",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {"type": "output_text", "text": filler, "annotations": [], "logprobs": []}
                    ],
                }
            )
        elif kind == 6:
            out.append({"type": "message", "role": "developer", "content": f"rule {i}"})
        else:
            out.append(
                {
                    "id": f"cmp_{i}",
                    "type": "compaction",
                    "encrypted_content": "gAAAAB" + "Zx9" * 100,
                }
            )
    return out


def cold_start(processes: int) -> tuple[float, float]:
    # Measured as an installed package is imported: with its bytecode cached (pip compiles it
    # on install), so one unmeasured run first writes the cache even where the environment
    # says PYTHONDONTWRITEBYTECODE.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    imports, compiles = [], []
    for i in range(processes + 1):
        out = subprocess.run(
            [sys.executable, "-c", COLD_START], capture_output=True, text=True, check=True, env=env
        ).stdout.split()
        if i:
            imports.append(float(out[0]))
            compiles.append(float(out[1]))
    return statistics.median(imports), statistics.median(compiles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=51)
    parser.add_argument("--processes", type=int, default=9)
    args = parser.parse_args()

    imported, compiled = cold_start(args.processes)

    import pytest_compaction as pc

    body = {"model": "gpt-5.4", "input": mixed_input(args.items)}
    data = json.dumps(body).encode()
    parsed = json.loads(data)
    validator = pc.get_validator("request")
    report = validator.validate(parsed)
    if not report.valid:
        print("benchmark body is invalid:", *report.violations, sep="\n  ")
        return 2

    loads, ours = side_by_side(
        args.rounds, lambda: json.loads(data), lambda: validator.validate(parsed)
    )
    reference = pc.get_validator("request", backend="python")
    python = timed(1, lambda: reference.validate(parsed))

    ms = 1000.0
    print(
        f"cold start: import {imported * ms:.1f} ms + compile "
        f"{len(pc.available_versions())} versions x 3 kinds "
        f"{compiled * ms:.1f} ms = {(imported + compiled) * ms:.1f} ms (target <= 100 ms)"
    )
    print(f"request body: {len(data) / 1e6:.2f} MB, {args.items} input items")
    print(f"  json.loads                  {loads * ms:8.2f} ms")
    print(f"  validate (jsonschema-rs)    {ours * ms:8.2f} ms  ({ours / loads:.2f}x json.loads)")
    print(
        f"  validate (python reference) {python * ms:8.2f} ms  ({python / loads:.0f}x json.loads)"
    )

    failed = []
    if imported + compiled > 0.100:
        failed.append("cold start above 100 ms")
    if ours > loads:
        failed.append("validation slower than json.loads")
    for reason in failed:
        print("MISSED:", reason)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
