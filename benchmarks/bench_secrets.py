"""Secret scan speed: the gate before a cassette is written, against the scan it replaced.

Two bodies, each scanned by ``scan_exchange`` of this tree and of a base revision (the module
``cassette/_secrets.py`` as ``git archive REF`` has it, loaded beside this one), interleaved:
- a 1 MB compaction exchange: a long input list (messages, tool calls whose arguments and
  outputs are JSON strings, reasoning items) and a response ending in a long encrypted_content;
- a 50 MB request body of the same kind.
The scan of this tree runs with the credentials of a recording (``SecretPolicy.known``).
Target: the 1 MB exchange costs at most 1.5x the base scan.

When ``detect_secrets`` is importable, its regex plugins (no entropy or keyword plugins, which
fire on every encrypted_content) are timed on the same strings for comparison.

Run: python benchmarks/bench_secrets.py [--rounds 9] [--base REV] [--big-mb 50]

The default base is the last revision of the previous scan (the pattern table with a
look-behind, before decoding and known credentials).
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import io
import json
import random
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

# benchmarks/ is on sys.path when a benchmark runs as a script.
from _timing import side_by_side

from pytest_compaction.cassette import _secrets
from pytest_compaction.cassette._exchange import Exchange

ROOT = Path(__file__).resolve().parents[1]
MODULE = "pytest_compaction/cassette/_secrets.py"
PREVIOUS_SCAN = "736bca1"  # the last revision of the previous scan
TARGET = 1.5

PROSE = (
    "Refactor the loader so that the cache key is computed once; the token budget is 8k and "
    "the output must stay below max_output_tokens. See https://docs.example.test/a%20b?q=1. "
)
CODE = (
    'import os\nclient = OpenAI(api_key=os.environ["OPENAI_API_KEY"])\n'
    'resp = client.responses.compact(model="gpt-5.4", input=items)\n'
    "print(resp.usage.input_tokens, resp.usage.output_tokens)\n"
)


def _token(rng: random.Random, size: int) -> str:
    """An opaque base64url token as the API sends in encrypted_content."""
    return "gAAAAAB" + base64.urlsafe_b64encode(rng.randbytes(size * 3 // 4)).decode()


def input_items(rng: random.Random, size: int) -> list[dict[str, Any]]:
    """Input items of a long agent conversation, about ``size`` bytes of JSON in all."""
    items: list[dict[str, Any]] = []
    total = 0
    i = 0
    while total < size:
        kind = i % 6
        if kind == 0:
            item: dict[str, Any] = {"type": "message", "role": "user", "content": PROSE * 4}
        elif kind == 1:
            item = {
                "type": "message",
                "role": "assistant",
                "id": f"msg_{i:08x}{rng.getrandbits(64):016x}",
                "status": "completed",
                "content": [{"type": "output_text", "text": PROSE * 3, "annotations": []}],
            }
        elif kind == 2:
            args = {"path": f"src/module_{i}.py", "content": CODE * 3, "mode": "overwrite"}
            item = {
                "type": "function_call",
                "call_id": f"call_{rng.getrandbits(96):024x}",
                "name": "write_file",
                "arguments": json.dumps(args),
            }
        elif kind == 3:
            output = {"ok": True, "stdout": CODE * 2, "stderr": "", "url": "/a%2Fb?x=%22y%22"}
            item = {
                "type": "function_call_output",
                "call_id": f"call_{rng.getrandbits(96):024x}",
                "output": json.dumps(output),
            }
        elif kind == 4:
            item = {
                "type": "reasoning",
                "id": f"rs_{rng.getrandbits(128):032x}",
                "summary": [{"type": "summary_text", "text": PROSE}],
                "encrypted_content": _token(rng, 1500),
            }
        else:
            item = {
                "type": "compaction",
                "id": f"cmp_{rng.getrandbits(128):032x}",
                "encrypted_content": _token(rng, 6000),
            }
        items.append(item)
        total += len(json.dumps(item))
        i += 1
    return items


def compaction_exchange(size: int, seed: int = 15) -> Exchange:
    """A compaction of about ``size`` bytes: 2/3 request input, 1/3 response."""
    rng = random.Random(seed)
    request = {
        "model": "gpt-5.4",
        "input": input_items(rng, size * 2 // 3),
        "prompt_cache_key": f"task-{rng.getrandbits(128):032x}",
        "safety_identifier": f"{rng.getrandbits(256):064x}",
    }
    kept = [it for it in request["input"] if it.get("role") == "user"][:20]
    response = {
        "id": f"resp_{rng.getrandbits(192):048x}",
        "object": "response.compaction",
        "created_at": 1775143637,
        "output": [
            *(
                {
                    "id": f"msg_{n:04d}",
                    "type": "message",
                    "status": "completed",
                    "role": "user",
                    "content": [{"type": "input_text", "text": it["content"]}],
                }
                for n, it in enumerate(kept)
            ),
            {"id": "cmp_1", "type": "compaction", "encrypted_content": _token(rng, size // 3)},
        ],
        "usage": {
            "input_tokens": 250000,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 9000,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 259000,
        },
    }
    return Exchange(
        method="POST",
        uri="https://api.openai.com/v1/responses/compact",
        request_headers={
            "authorization": ["REDACTED"],
            "content-type": ["application/json"],
            "idempotency-key": [f"stainless-python-retry-{rng.getrandbits(128):032x}"],
            "x-stainless-retry-count": ["0"],
        },
        request_body=json.dumps(request).encode(),
        status=200,
        reason="OK",
        response_headers={
            "content-type": ["application/json"],
            "openai-processing-ms": ["8123"],
            "x-request-id": [f"req_{rng.getrandbits(128):032x}"],
            "openai-organization": ["REDACTED"],
        },
        response_body=json.dumps(response).encode(),
    )


def big_body_exchange(size: int) -> Exchange:
    """A request of ``size`` bytes (a very long conversation) and a small answer."""
    rng = random.Random(50)
    body = json.dumps({"model": "gpt-5.4", "input": input_items(rng, size)}).encode()
    return Exchange(
        method="POST",
        uri="https://api.openai.com/v1/responses/compact",
        request_headers={"content-type": ["application/json"]},
        request_body=body,
        response_body=b'{"id": "resp_1", "object": "response.compaction", "output": []}',
    )


def base_module(ref: str) -> ModuleType:
    """``_secrets`` as ``ref`` has it, importable beside this tree's (its siblings are ours)."""
    archive = subprocess.run(
        ["git", "archive", ref, MODULE], cwd=ROOT, check=True, capture_output=True
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="bench-secrets-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    name = "pytest_compaction.cassette._secrets_base"
    spec = importlib.util.spec_from_file_location(name, folder / MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _strings(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def detect_secrets_scan() -> Callable[[Exchange], int] | None:
    """The regex plugins of detect-secrets over every string of both bodies, if installed."""
    try:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    except ImportError:
        return None
    skip = {"Base64 High Entropy String", "Hex High Entropy String", "Secret Keyword"}
    plugins = [
        cls() for kind, cls in get_mapping_from_secret_type_to_class().items() if kind not in skip
    ]

    def scan(ex: Exchange) -> int:
        found = 0
        for body in (ex.request_body, ex.response_body):
            for text in _strings(json.loads(body or b"null")):
                for plugin in plugins:
                    found += sum(1 for _ in plugin.analyze_string(text))
        return found

    return scan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--base", default=PREVIOUS_SCAN, help="git revision of the scan to compare to"
    )
    parser.add_argument("--big-mb", type=float, default=50.0)
    args = parser.parse_args()

    base = base_module(args.base)
    policy = _secrets.SecretPolicy(known=("sk-proj-" + "Q7" * 40, "0123456789abcdef" * 2))
    one = compaction_exchange(2**20)
    big = big_body_exchange(int(args.big_mb * 2**20))
    size_one = len(one.request_body or b"") + len(one.response_body)
    assert not _secrets.scan_exchange(one, 0, policy), "false positive in the 1 MB exchange"
    assert not _secrets.scan_exchange(big, 0, policy), "false positive in the big body"

    ok = True
    rows = []
    for label, ex, rounds in (
        (f"{size_one / 2**20:.1f} MB compaction exchange", one, args.rounds),
        (f"{args.big_mb:g} MB request body", big, max(3, args.rounds // 3)),
    ):
        new, old = side_by_side(
            rounds,
            lambda ex=ex: _secrets.scan_exchange(ex, 0, policy),
            lambda ex=ex: base.scan_exchange(ex, 0),
        )
        rows.append((label, new, old))
    for label, new, old in rows:
        print(f"{label:32} now {new * 1000:8.1f} ms   base {old * 1000:8.1f} ms   {new / old:.2f}x")
    ratio = rows[0][1] / rows[0][2]
    if ratio > TARGET:
        print(f"FAIL: the 1 MB exchange costs {ratio:.2f}x the base scan (target {TARGET}x)")
        ok = False

    detect = detect_secrets_scan()
    if detect is None:
        print("detect-secrets: not installed (pip install detect-secrets to compare)")
    else:
        for label, ex, rounds in (("1 MB", one, args.rounds), ("big", big, 1)):
            ours, theirs = side_by_side(
                rounds,
                lambda ex=ex: _secrets.scan_exchange(ex, 0, policy),
                lambda ex=ex: detect(ex),
            )
            print(
                f"detect-secrets regex plugins, {label:5} {theirs * 1000:8.1f} ms"
                f"   (this scan {ours * 1000:8.1f} ms), findings {detect(ex)}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
