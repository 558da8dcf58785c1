"""``use_cassette`` without pytest's plugin, and the matching rules behind replay."""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import httpx2
import pytest
import yaml
from conftest import Upstream
from vcr.errors import CannotOverwriteExistingCassetteException

from pytest_compaction._errors import CompactionError
from pytest_compaction.contract._routes import normalize_path
from pytest_compaction.replay._match import BodyCache, bodies_equal, json_diff, query_items
from pytest_compaction.replay._recorder import (
    ReplayError,
    RequestNotRecorded,
    is_compact_path,
    use_cassette,
)

BODY = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hello"}]}


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/v1//responses/compact/", "/v1/responses/compact"), ("", "/"), ("/", "/"), ("//a//", "/a")],
)
def test_normalize_path(path: str, expected: str) -> None:
    assert normalize_path(path) == expected


def test_compact_paths_under_any_prefix() -> None:
    assert is_compact_path("https://h/openai/v1/responses/compact?api-version=1")
    assert is_compact_path("/api/llm/responses/compact/")
    assert not is_compact_path("https://h/v1/responses")
    assert not is_compact_path("https://h/v1/responses/compact/extra")


def test_query_is_an_order_insensitive_multiset() -> None:
    assert query_items("http://h/p?b=2&a=1&a=0") == query_items("http://h/p?a=0&b=2&a=1")
    assert query_items("http://h/p?a=1") != query_items("http://h/p?a=1&a=1")


def test_json_bodies_compare_by_value() -> None:
    cache = BodyCache()
    assert bodies_equal(cache, b'{"a": [1, {"b": 2}], "c": 1.0}', b'{"c":1,"a":[1,{"b":2}]}')
    assert not bodies_equal(cache, b'{"a": [1, 2]}', b'{"a": [2, 1]}')
    assert not bodies_equal(cache, b"text a", b"text b")


def test_json_diff_lines_name_pointers() -> None:
    recorded = {"input": [{"content": "a"}, {"content": "x"}], "instructions": "i", "a/b": 1}
    live = {
        "input": [{"content": "b"}, {"content": "x"}, {"content": "new"}],
        "store": True,
        "a/b": 1,
    }
    assert json_diff(recorded, live) == [
        "/input/0/content: 'a' != 'b'",
        '/input/2: added ({"content": "new"})',
        "/instructions: removed (recorded 'i')",
        "/store: added (true)",
    ]
    many = json_diff({"k": list(range(50))}, {"k": list(range(1, 51))})
    assert len(many) == 21 and many[-1] == "… and 30 more differences"


def test_replay_ignores_host_headers_and_key_order(tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once") as rec:
        first = httpx2.post(upstream.base_url + "/other/", json={"b": 1, "a": [1, 2]})
    assert rec.recorded == 1
    upstream.close()
    with use_cassette(path) as rec:
        again = httpx.post(
            "https://elsewhere.example/v1//other",
            content=b'{ "a": [1, 2],\n "b": 1 }',
            headers={"x-stainless-retry-count": "3", "user-agent": "other", "idempotency-key": "k"},
        )
        assert again.json() == first.json()
        assert len(rec.exchanges) == 1
    assert rec.replayed == 1
    rec.assert_all_played()


def test_a_miss_names_the_host_when_match_on_compares_it(
    tmp_path: Path, upstream: Upstream
) -> None:
    path = tmp_path / "c.yaml"
    match_on = ("method", "host", "port", "path", "body")
    with use_cassette(path, record_mode="once", match_on=match_on):
        httpx.post(upstream.base_url + "/other", json={"n": 1})
    with pytest.raises(RequestNotRecorded) as info, use_cassette(path, match_on=match_on):
        httpx.post("https://elsewhere.example/v1/other", json={"n": 1})
    message = str(info.value)
    assert "host: '127.0.0.1' != 'elsewhere.example'" in message
    assert f"port: {urlsplit(upstream.base_url).port} != 443" in message
    assert "identical apart from headers" not in message
    # Not compared, not named: the default matching ignores the origin.
    with use_cassette(path) as rec:
        httpx.post("https://elsewhere.example/v1/other", json={"n": 1})
    assert rec.replayed == 1


def test_repeats_and_unplayed_exchanges(tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once"):
        httpx.post(upstream.base_url + "/a", json={"n": 1})
        httpx.post(upstream.base_url + "/b", json={"n": 2})
    with pytest.raises(RequestNotRecorded) as info, use_cassette(path):
        httpx.post(upstream.base_url + "/a", json={"n": 1})
        httpx.post(upstream.base_url + "/a", json={"n": 1})
    assert "matches exchange 0, which was already replayed" in str(info.value)
    assert isinstance(info.value, CannotOverwriteExistingCassetteException)
    with use_cassette(path, allow_playback_repeats=True) as rec:
        httpx.post(upstream.base_url + "/a", json={"n": 1})
        httpx.post(upstream.base_url + "/a", json={"n": 1})
        with pytest.raises(AssertionError, match=r"exchange 1: POST .*/b"):
            rec.assert_all_played()


def test_new_episodes_appends_and_all_rerecords(tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once"):
        httpx.post(upstream.base_url + "/a", json={"n": 1})
    with use_cassette(path, record_mode="new_episodes") as rec:
        httpx.post(upstream.base_url + "/a", json={"n": 1})
        httpx.post(upstream.base_url + "/b", json={"n": 2})
    assert (rec.replayed, rec.recorded) == (1, 1)
    assert len(yaml.safe_load(path.read_text())["interactions"]) == 2
    with use_cassette(path, record_mode="all") as rec:
        httpx.post(upstream.base_url + "/a", json={"n": 1})
    assert (rec.replayed, rec.recorded) == (0, 1)
    uris = [i["request"]["uri"] for i in yaml.safe_load(path.read_text())["interactions"]]
    assert [u.rsplit("/", 1)[1] for u in uris] == ["b", "a"]


def test_a_swallowed_replay_error_still_fails_the_block(tmp_path: Path) -> None:
    with (
        pytest.raises(ReplayError, match="does not exist; record it with record_mode='once'"),
        use_cassette(tmp_path / "missing"),
        contextlib.suppress(Exception),
    ):
        httpx.post("http://127.0.0.1:9/v1/responses/compact", json=BODY)
    assert not (tmp_path / "missing.yaml").exists()


def test_bad_options_fail_before_any_traffic(tmp_path: Path) -> None:
    with (
        pytest.raises(CompactionError, match="unknown record mode 'sometimes'"),
        use_cassette(tmp_path / "c", record_mode="sometimes"),
    ):
        pass
    with (
        pytest.raises(CompactionError, match="unknown cassette option"),
        use_cassette(tmp_path / "c", serializer="json"),
    ):
        pass
    with (
        pytest.raises(CompactionError, match="unknown schema version"),
        use_cassette(tmp_path / "c", version="1999-01-01"),
    ):
        pass


def test_a_corrupt_cassette_is_an_error_not_an_empty_cassette(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("interactions: [\n")
    with (
        pytest.raises(CompactionError, match=r"c.yaml: not valid YAML"),
        use_cassette(path, record_mode="all"),
    ):
        pass
    assert path.read_text() == "interactions: [\n"


def test_compact_exchanges_are_validated_when_recorded(tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once") as rec:
        response = httpx2.post(upstream.base_url + "/responses/compact", json=BODY)
        httpx2.get(upstream.base_url + "/models")
    assert response.status_code == 200
    assert (rec.recorded, rec.validated, rec.violations) == (2, 1, [])
    stored = yaml.safe_load(path.read_text())
    assert stored["compaction"]["schema_version"] == rec.version
    with (
        pytest.raises(
            ReplayError, match=r"exchange 0 .*\(recorded\):\n  response \(status 200\) /.*usage"
        ),
        use_cassette(tmp_path / "bad.yaml", record_mode="once"),
    ):
        httpx2.post(
            upstream.base_url + "/responses/compact", json=BODY, headers={"x-test-invalid": "1"}
        )
    assert not (tmp_path / "bad.yaml").exists()
    text = path.read_text()
    assert text.count('"object": "response.compaction",') == 1
    path.write_text(text.replace('"object": "response.compaction",', '"object": 7,'))
    with (
        pytest.raises(ReplayError, match=r"\(replayed\):\n  response \(status 200\) /object"),
        use_cassette(path) as rec,
    ):
        httpx2.post(upstream.base_url + "/responses/compact", json=BODY)
        httpx2.get(upstream.base_url + "/models")
