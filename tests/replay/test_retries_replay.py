"""Error exchanges are recorded and validated, and the openai SDK's retries replay in order."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import yaml

from pytest_compaction import CompactionServer, ReplayError, load_cassette, use_cassette

KEY = "sk-test-not-a-real-key"
FAULTS = {"x-compaction-fault": "429;times=2;retry-after=0.01"}


def client(base_url: str, retries: int) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=retries)


def test_retries_record_every_attempt_and_replay_them_in_order(tmp_path: Path) -> None:
    path = tmp_path / "retries.yaml"
    with CompactionServer(deterministic=True) as server:
        with use_cassette(path, record_mode="once") as rec:
            live = client(server.base_url, 3).responses.compact(
                model="gpt-5.4", input="hello", extra_headers=FAULTS
            )
        assert [r.status for r in server.requests] == [429, 429, 200]
        base_url = server.base_url
    assert (rec.recorded, rec.validated, rec.violations) == (3, 3, [])

    exchanges = load_cassette(path).exchanges
    assert [ex.status for ex in exchanges] == [429, 429, 200]
    stored = yaml.safe_load(path.read_text())
    assert stored["compaction"]["schema_version"] == rec.version
    assert KEY not in path.read_text()

    # The server is gone: the SDK meets the same two 429s, retries, and gets the same answer.
    with use_cassette(path) as replay:
        again = client(base_url, 3).responses.compact(
            model="gpt-5.4", input="hello", extra_headers=FAULTS
        )
    assert again == live
    assert (replay.replayed, replay.validated, replay.violations) == (3, 3, [])
    replay.assert_all_played()


def test_fewer_retries_on_replay_surface_the_recorded_error(tmp_path: Path) -> None:
    path = tmp_path / "retries.yaml"
    with CompactionServer(deterministic=True) as server:
        with use_cassette(path, record_mode="once"):
            client(server.base_url, 3).responses.compact(
                model="gpt-5.4", input="hello", extra_headers=FAULTS
            )
        base_url = server.base_url
    with (
        use_cassette(path, raise_on_exit=False) as replay,
        pytest.raises(openai.RateLimitError) as caught,
    ):
        client(base_url, 1).responses.compact(model="gpt-5.4", input="hello", extra_headers=FAULTS)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "0.01"
    assert (
        isinstance(caught.value.body, dict) and caught.value.body["code"] == "rate_limit_exceeded"
    )
    assert replay.replayed == 2 and replay.validated == 2
    with pytest.raises(AssertionError, match="1 exchange\\(s\\) never replayed"):
        replay.assert_all_played()


def test_an_error_body_that_breaks_the_error_schema_fails_at_record_time(tmp_path: Path) -> None:
    path = tmp_path / "bad-error.yaml"
    with (
        CompactionServer(deterministic=True) as server,
        pytest.raises(ReplayError, match=r"response \(status 500\) /error"),
        use_cassette(path, record_mode="once", before_record_response=_strip_error),
        pytest.raises(openai.InternalServerError),
    ):
        client(server.base_url, 0).responses.compact(
            model="gpt-5.4", input="x", extra_headers={"x-compaction-fault": "500"}
        )
    assert not path.exists()


def _strip_error(response: dict[str, object]) -> dict[str, object]:
    # What a broken gateway might answer: an error whose body lacks the OpenAI error object.
    response["body"] = {"string": b'{"detail": "bad request"}'}
    return response
