"""Every answer the server sends, success or error, validates against the newest schemas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pytest_compaction import CompactionServer, newest_version, validate_response

REQUESTS: list[tuple[dict[str, Any] | bytes, dict[str, str]]] = [
    ({"model": "gpt-4.1", "input": "Hello!"}, {}),
    (
        {
            "model": "gpt-4.1",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "4"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "thanks"}],
                },
            ],
        },
        {},
    ),
    ({"model": "gpt-4.1", "input": [], "previous_response_id": "resp_missing"}, {}),
    ({"input": "x"}, {}),
    ({"model": 1, "input": "x"}, {}),
    ({"model": "m", "input": "x", "temperature": 1}, {}),
    ({"model": "m", "input": [{"type": "compaction", "encrypted_content": "zz"}]}, {}),
    ({"model": "m", "input": "x" * 4000}, {}),
    (b"{not json", {}),
    ({"model": "m", "input": "x"}, {"x-compaction-fault": "429"}),
    ({"model": "m", "input": "x"}, {"x-compaction-fault": "500"}),
    ({"model": "m", "input": "x"}, {"x-compaction-fault": "503;retry-after=3"}),
    ({"model": "m", "input": "x"}, {"x-compaction-fault": "nonsense"}),
]


@pytest.fixture
def answers() -> Iterator[list[tuple[int, Any]]]:
    collected: list[tuple[int, Any]] = []
    with CompactionServer(context_window=500) as server, httpx.Client(timeout=5) as client:
        first = client.post(
            f"{server.base_url}/responses/compact", json={"model": "m", "input": "a"}
        )
        chained = {"model": "m", "input": [first.json()["output"][-1]]}
        follow = {"model": "m", "input": "b", "previous_response_id": first.json()["id"]}
        extra: list[tuple[dict[str, Any] | bytes, dict[str, str]]] = [(chained, {}), (follow, {})]
        for body, headers in [*REQUESTS, *extra]:
            if isinstance(body, bytes):
                response = client.post(
                    f"{server.base_url}/responses/compact", content=body, headers=headers
                )
            else:
                response = client.post(
                    f"{server.base_url}/responses/compact", json=body, headers=headers
                )
            collected.append((response.status_code, response.json()))
        missing = client.post(f"{server.url}/v1/nothing", json={})
        collected.append((missing.status_code, missing.json()))
        yield collected


def test_every_answer_validates_strictly_against_the_newest_schemas(
    answers: list[tuple[int, Any]],
) -> None:
    statuses = sorted({status for status, _ in answers})
    assert statuses == [200, 400, 404, 429, 500, 503]
    for status, body in answers:
        report = validate_response(body, status=status, version=newest_version(), strict=True)
        assert report.valid, (status, body, [str(v) for v in report.violations])
        assert not report.drift, (status, [d.message for d in report.drift])
