"""Shared fixtures: a loopback upstream that answers ``/responses/compact`` like the real API."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.loopback import Loopback, QuietHandler

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference"


def compaction_body(request: dict[str, Any], n: int) -> dict[str, Any]:
    """A response valid against every bundled schema version (cache_write_tokens included)."""
    raw_items = request.get("input")
    items: list[Any] = raw_items if isinstance(raw_items, list) else []
    output: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("role") == "user":
            text = item.get("content")
            text = text if isinstance(text, str) else json.dumps(text)
            output.append(
                {
                    "id": f"msg_{n:04d}{i:04d}",
                    "type": "message",
                    "status": "completed",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                }
            )
    output.append(
        {"id": f"cmp_{n:04d}", "type": "compaction", "encrypted_content": "gAAAAB" + "x" * 40}
    )
    return {
        "id": f"resp_{n:04d}",
        "object": "response.compaction",
        "created_at": 1775143637,
        "output": output,
        "usage": {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 15,
        },
    }


class Upstream:
    """A stdlib HTTP server on 127.0.0.1 standing in for the API.

    Request headers steer it: ``x-test-invalid: 1`` answers a compaction body without ``usage``;
    ``x-test-encoding: gzip|deflate|br|zstd`` compresses the answer; ``x-test-secret: 1`` echoes a
    key-shaped string in the body.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        upstream = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self._answer(self.rfile.read(length))

            def _answer(self, raw: bytes) -> None:
                upstream.requests.append((self.command, self.path, dict(self.headers), raw))
                n = len(upstream.requests)
                status = 200
                if self.path.split("?")[0].rstrip("/").endswith("/responses/compact"):
                    try:
                        payload: Any = compaction_body(json.loads(raw or b"{}"), n)
                    except ValueError:
                        status = 400
                        payload = {
                            "error": {
                                "message": "bad json",
                                "type": "invalid_request_error",
                                "param": None,
                                "code": None,
                            }
                        }
                    if self.headers.get("x-test-invalid"):
                        del payload["usage"]
                    if self.headers.get("x-test-secret"):
                        payload["note"] = "sk-proj-" + "A1b2C3d4" * 5
                else:
                    payload = {"object": "other", "path": self.path.split("?")[0], "n": n}
                body = json.dumps(payload).encode()
                encoding = self.headers.get("x-test-encoding")
                if encoding == "gzip":
                    body = gzip.compress(body)
                elif encoding == "deflate":
                    body = zlib.compress(body)
                elif encoding == "br":
                    import brotli  # type: ignore[import-untyped, unused-ignore]

                    body = brotli.compress(body)
                elif encoding == "zstd":
                    import zstandard  # type: ignore[import-untyped, unused-ignore]

                    body = zstandard.ZstdCompressor().compress(body)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.send_header("openai-organization", "org-secretorg")
                self.send_header("openai-project", "proj_abcdef")
                self.send_header("set-cookie", "__cf_bm=abc123; path=/")
                self.send_header("x-request-id", f"req_{n}")
                if encoding:
                    self.send_header("content-encoding", encoding)
                self.end_headers()
                self.wfile.write(body)

        self.loopback = Loopback(Handler)
        self.origin = self.loopback.origin
        self.base_url = self.origin + "/v1"

    def close(self) -> None:
        self.loopback.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference material not found at {REFERENCE} (only in a full checkout)")
    return REFERENCE
