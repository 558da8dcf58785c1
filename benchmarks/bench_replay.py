"""Replay speed and cassette size for a 1 MB compaction request.

Prints figures and exits non-zero when a target is missed:
- replay with validation (pytest-compaction) <= bare vcrpy replay without validation,
  matching on the body too, of the same exchange, through an httpx2 client;
- cassette bytes <= 1.05 x the raw JSON bytes of the bodies;
- a small compaction cassette, one SDK compact of a short history recorded from the embedded
  server: <= 0.85 x the size of the same recording with every request header the SDK sends
  kept (``keep_volatile_headers=True``), the baseline of the same run. At this size the YAML
  keys of the vcrpy layout weigh as much as the bodies, so the ratio to the bodies is printed
  but is no target.
Also reports the end-to-end time of the same replay through the openai SDK.

Run: python benchmarks/bench_replay.py [--items 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx2
import vcr
from _timing import side_by_side, timed
from vcr.request import Request
from vcr.serialize import serialize
from vcr.serializers import yamlserializer

from pytest_compaction.cassette._exchange import CassetteData, Exchange
from pytest_compaction.cassette._file import save_cassette
from pytest_compaction.replay._recorder import use_cassette

URL = "https://api.example.test/v1/responses/compact"


def build(items: int) -> tuple[list[dict[str, Any]], bytes, bytes]:
    history: list[dict[str, Any]] = []
    for i in range(items):
        text = f"turn {i}: " + ("the quick brown fox jumps over the lazy dog; " * 11)
        role = "user" if i % 2 == 0 else "assistant"
        history.append({"type": "message", "role": role, "content": text})
    request = {"model": "gpt-5.4", "input": history}
    users = [h for h in history if h["role"] == "user"]
    output: list[dict[str, Any]] = [
        {
            "id": f"msg_u{i:06d}",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_text", "text": u["content"]}],
        }
        for i, u in enumerate(users)
    ]
    output.append({"id": "cmp_1", "type": "compaction", "encrypted_content": "gAAAAB" + "q" * 4000})
    response = {
        "id": "resp_1",
        "object": "response.compaction",
        "created_at": 1775143637,
        "output": output,
        "usage": {
            "input_tokens": 250000,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 1000,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 251000,
        },
    }
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return history, dumps(request).encode(), dumps(response).encode()


def small_cassette(work: Path) -> tuple[float, float, int]:
    """One real compact through the openai SDK, recorded lean and with every header kept:
    each cassette's bytes over the raw bodies', and the raw bodies' bytes."""
    import openai

    from pytest_compaction import CompactionServer

    history = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3+3?"},
    ]
    ratios: list[float] = []
    raw = 0
    with CompactionServer(deterministic=True) as server:
        for keep in (False, True):
            path = work / f"small-{keep}.yaml"
            sdk = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
            with use_cassette(path, record_mode="once", keep_volatile_headers=keep) as rec:
                sdk.responses.compact(model="gpt-5.4", input=history)  # type: ignore[arg-type]
            (exchange,) = rec.exchanges
            raw = len(exchange.request_body or b"") + len(exchange.response_body or b"")
            ratios.append(path.stat().st_size / raw)
    return ratios[0], ratios[1], raw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    history, request_body, response_body = build(args.items)
    headers = {"content-type": ["application/json"]}
    response_headers = {"content-type": ["application/json"]}
    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    ours_path = work / "ours.yaml"
    bare_path = work / "bare.yaml"
    exchange = Exchange(
        "POST", URL, headers, request_body, 200, "OK", response_headers, response_body
    )
    save_cassette(ours_path, CassetteData([exchange], None))
    bare_request = Request("POST", URL, request_body, {"content-type": "application/json"})
    bare_response = {
        "status": {"code": 200, "message": "OK"},
        "headers": response_headers,
        "body": {"string": response_body},
    }
    bare_path.write_text(
        serialize({"requests": [bare_request], "responses": [bare_response]}, yamlserializer)
    )

    client = httpx2.Client()
    post_headers = {"content-type": "application/json"}

    def ours() -> None:
        with use_cassette(ours_path) as rec:
            response = client.post(URL, content=request_body, headers=post_headers)
            assert response.status_code == 200
        assert rec.replayed == 1 and rec.validated == 1 and not rec.violations, rec.violations

    def bare() -> None:
        match_on = ["method", "scheme", "host", "port", "path", "query", "body"]
        with vcr.use_cassette(str(bare_path), record_mode="none", match_on=match_on) as cas:
            response = client.post(URL, content=request_body, headers=post_headers)
            assert response.status_code == 200
        assert cas.play_count == 1

    t_ours, t_bare = side_by_side(args.rounds, ours, bare)

    t_sdk: float | None = None
    try:
        import openai
    except ImportError:
        print("openai SDK not installed: end-to-end figure skipped")
    else:
        sdk = openai.OpenAI(base_url=URL.rsplit("/responses", 1)[0], api_key="none", max_retries=0)

        def through_sdk() -> None:
            with use_cassette(ours_path) as rec:
                out = sdk.responses.compact(model="gpt-5.4", input=history)  # type: ignore[arg-type]
                assert out.output[-1].type == "compaction"
            assert rec.validated == 1 and not rec.violations

        t_sdk = timed(args.rounds, through_sdk)

    raw = len(request_body) + len(response_body)
    size = ours_path.stat().st_size
    ratio = size / raw
    print(f"request body: {len(request_body):,} bytes, {args.items} input items")
    print(f"response body: {len(response_body):,} bytes")
    print(f"replay + validation (pytest-compaction, httpx2): {t_ours * 1000:.1f} ms")
    print(f"bare vcrpy replay, body matcher, no validation:  {t_bare * 1000:.1f} ms")
    if t_sdk is not None:
        print(f"end-to-end through the openai SDK (+validation): {t_sdk * 1000:.1f} ms")
    print(f"cassette: {size:,} bytes = {ratio:.3f} x raw JSON bodies ({raw:,} bytes)")
    print(f"stock vcrpy cassette of the same exchange: {bare_path.stat().st_size:,} bytes")
    lean = kept = None
    if t_sdk is not None:
        lean, kept, small_raw = small_cassette(work)
        print(
            f"small cassette (one SDK compact, {small_raw:,} bytes of bodies): {lean:.2f} x "
            f"the bodies; with every request header kept: {kept:.2f} x (ratio {lean / kept:.2f})"
        )
    failures = []
    if lean is not None and kept is not None and lean / kept > 0.85:
        failures.append(f"small cassette {lean / kept:.2f} x the one with every header > 0.85")
    if t_ours > t_bare:
        failures.append(f"replay {t_ours * 1000:.1f} ms > bare vcrpy {t_bare * 1000:.1f} ms")
    if ratio > 1.05:
        failures.append(f"cassette size ratio {ratio:.3f} > 1.05")
    for failure in failures:
        print(f"TARGET MISSED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
