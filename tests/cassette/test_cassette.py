"""The cassette file: layout, round trips, other layouts, compression, atomic writes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import pytest
import vcr
import yaml
from conftest import Upstream

from pytest_compaction.cassette._body import parse_json_bytes, render_json
from pytest_compaction.cassette._exchange import CassetteData, CassetteError, Exchange
from pytest_compaction.cassette._file import (
    CassetteNotFound,
    dump_cassette,
    load_cassette,
    parse_cassette,
    save_cassette,
    write_atomic,
)
from pytest_compaction.replay._recorder import use_cassette


def _exchange(
    request: object, response: object, *, uri: str = "https://x.test/v1/responses/compact"
) -> Exchange:
    return Exchange(
        method="POST",
        uri=uri,
        request_headers={"content-type": ["application/json"]},
        request_body=json.dumps(request, separators=(",", ":")).encode(),
        status=200,
        reason="OK",
        response_headers={"content-type": ["application/json"], "content-length": ["0"]},
        response_body=json.dumps(response, separators=(",", ":")).encode(),
    )


def test_json_body_is_a_literal_block_with_one_input_item_per_line(tmp_path: Path) -> None:
    request = {
        "model": "gpt-5.4",
        "input": [{"role": "user", "content": f"m{i}"} for i in range(3)],
    }
    path = tmp_path / "c.yaml"
    save_cassette(path, CassetteData([_exchange(request, {"ok": True})], "v1"))
    text = path.read_text()
    assert '    body: |-\n      {\n      "model": "gpt-5.4",\n      "input": [\n' in text
    for i in range(3):
        assert f'      {{"role":"user","content":"m{i}"}}' in text
    assert not any(line.endswith(" ") for line in text.splitlines())
    # libyaml reads the body back as one scalar equal (as JSON) to what was sent
    doc = yaml.load(text, Loader=yaml.CSafeLoader)
    assert json.loads(doc["interactions"][0]["request"]["body"]) == request
    assert doc["compaction"] == {"format": 1, "schema_version": "v1"}


@pytest.mark.parametrize(
    "value",
    [
        {"text": "line\u2028sep\u2029para\x85nel\x7fdel\ufeffbom", "emoji": "é😀", "tab": "a\tb"},
        ["  leading", "trailing  ", "", {"nested": [1, 2.5, None, True]}],
        {"empty_list": [], "empty": {}, "n": -0.0, "big": 12345678901234567890},
        "just a string",
        [],
    ],
)
def test_render_json_round_trips_through_yaml(tmp_path: Path, value: object) -> None:
    assert json.loads(render_json(value)) == value
    ex = _exchange(value, value)
    path = tmp_path / "c.yaml"
    save_cassette(path, CassetteData([ex]))
    back = load_cassette(path).exchanges[0]
    assert json.loads(back.request_body or b"") == value
    assert json.loads(back.response_body) == value


def test_text_and_binary_bodies_round_trip_exactly(tmp_path: Path) -> None:
    bodies = [
        b'event: x\ndata: {"a": 1}\n\n',
        b"trailing spaces   \nsecond line",
        b"\x00\x01\xffbinary",
        b"",
        b"not json {",
    ]
    exchanges = [
        Exchange("GET", f"https://x.test/{i}", {}, None, 200, "OK", {}, body)
        for i, body in enumerate(bodies)
    ]
    path = tmp_path / "c.yaml"
    save_cassette(path, CassetteData(exchanges))
    back = load_cassette(path).exchanges
    assert [ex.response_body for ex in back] == bodies
    assert [ex.request_body for ex in back] == [None] * len(bodies)


def test_content_length_is_made_to_match_the_stored_body(tmp_path: Path) -> None:
    ex = _exchange({"a": [1, 2]}, {"b": [3, 4]})
    ex.response_headers["content-length"] = ["999"]
    ex.response_headers["transfer-encoding"] = ["chunked"]
    text = dump_cassette(CassetteData([ex]))
    loaded = parse_cassette(text).exchanges[0]
    assert loaded.response_headers["content-length"] == [str(len(loaded.response_body))]
    assert "transfer-encoding" not in loaded.response_headers


def test_body_bytes_stay_within_5_percent_of_the_raw_json(tmp_path: Path) -> None:
    items = [
        {"role": "user" if i % 2 else "assistant", "content": f"message {i} " + "lorem ipsum " * 40}
        for i in range(2000)
    ]
    request = {"model": "gpt-5.4", "input": items}
    response = {"id": "resp_1", "object": "response.compaction", "output": items[:50]}
    ex = _exchange(request, response)
    path = tmp_path / "big.yaml"
    save_cassette(path, CassetteData([ex]))
    raw = len(ex.request_body or b"") + len(ex.response_body)
    assert raw > 1_000_000
    assert path.stat().st_size <= 1.05 * raw


def test_stock_vcrpy_replays_a_recorded_cassette(tmp_path: Path, upstream: Upstream) -> None:
    """Users can stop using pytest-compaction and keep their cassettes."""
    path = tmp_path / "stock.yaml"
    url = upstream.base_url + "/other?b=2&a=1"
    with use_cassette(path, record_mode="once"):
        recorded = httpx.post(url, json={"x": [1, 2, 3]}, headers={"x-test-encoding": "gzip"})
    assert recorded.json()["object"] == "other"
    upstream.close()
    with vcr.use_cassette(str(path), record_mode="none") as cassette:
        replayed = httpx.post(url, json={"x": [1, 2, 3]})
        assert cassette.play_count == 1
    assert replayed.json() == recorded.json()
    assert int(replayed.headers["content-length"]) == len(replayed.content)
    assert "content-encoding" not in replayed.headers


def test_both_reference_layouts_load_to_the_same_exchanges(reference: Path) -> None:
    stock = sorted((reference / "recorded" / "pydantic-ai-stock-vcrpy").glob("*.yaml"))
    assert stock
    for path in stock:
        parsed = load_cassette(reference / "recorded" / "pydantic-ai" / path.name)
        plain = load_cassette(path)
        assert len(parsed.exchanges) == len(plain.exchanges), path.name
        for a, b in zip(parsed.exchanges, plain.exchanges, strict=True):
            assert (a.method, a.uri, a.status) == (b.method, b.uri, b.status)
            assert parse_json_bytes(a.request_body) == parse_json_bytes(b.request_body)
            a_json, a_value = parse_json_bytes(a.response_body)
            _, b_value = parse_json_bytes(b.response_body)
            assert a_value == b_value if a_json else a.response_body == b.response_body


def test_vcrpy_json_layout_loads_and_json_paths_are_written_as_json(tmp_path: Path) -> None:
    ex = _exchange({"model": "m"}, {"id": "r"})
    path = tmp_path / "c.json"
    save_cassette(path, CassetteData([ex], "v"))
    doc = json.loads(path.read_text())
    assert doc["version"] == 1 and doc["compaction"]["schema_version"] == "v"
    back = load_cassette(path)
    assert parse_json_bytes(back.exchanges[0].request_body)[1] == {"model": "m"}


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_compressed_responses_are_stored_decoded(
    tmp_path: Path, upstream: Upstream, coding: str
) -> None:
    if coding == "br":
        pytest.importorskip("brotli")
    if coding == "zstd":
        pytest.importorskip("zstandard")
    path = tmp_path / f"{coding}.yaml"
    with use_cassette(path, record_mode="once"):
        live = httpx.post(
            upstream.base_url + "/other", json={"q": 1}, headers={"x-test-encoding": coding}
        )
    stored = load_cassette(path).exchanges[0]
    assert "content-encoding" not in stored.response_headers
    assert json.loads(stored.response_body) == live.json()
    text = path.read_text()
    assert '"object": "other"' in text
    with use_cassette(path) as rec:
        again = httpx.post(upstream.base_url + "/other", json={"q": 1})
    assert rec.replayed == 1
    assert again.json() == live.json()
    assert int(again.headers["content-length"]) == len(again.content)


def test_missing_brotli_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "brotli", None)
    monkeypatch.setitem(sys.modules, "brotlicffi", None)
    text = yaml.safe_dump(
        {
            "version": 1,
            "interactions": [
                {
                    "request": {
                        "method": "GET",
                        "uri": "https://x.test/",
                        "body": None,
                        "headers": {},
                    },
                    "response": {
                        "status": {"code": 200, "message": "OK"},
                        "headers": {"content-encoding": ["br"]},
                        "body": {"string": b"\x8b\x00\x80"},
                    },
                }
            ],
        }
    )
    with pytest.raises(CassetteError, match=r"interaction 0: .*'br'.*pip install brotli"):
        parse_cassette(text, "c.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("interactions: [\n", "not valid YAML"),
        ("- a\n- b\n", "not a cassette"),
        ("compaction: {format: 99}\ninteractions: []\n", "newer than this pytest-compaction"),
        ("interactions:\n- request: {uri: x}\n  response: {}\n", "interaction 0: request needs"),
        (
            "interactions: [!!python/object/apply:os.system ['echo pwned']]\n",
            "not valid YAML",
        ),
    ],
)
def test_bad_cassettes_fail_with_the_path_and_the_reason(text: str, message: str) -> None:
    with pytest.raises(CassetteError, match=message) as info:
        parse_cassette(text, "cassettes/x.yaml")
    assert "cassettes/x.yaml" in str(info.value)


def test_missing_and_empty_cassettes(tmp_path: Path) -> None:
    with pytest.raises(CassetteNotFound, match="does not exist"):
        load_cassette(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("\n")
    with pytest.raises(CassetteNotFound):
        load_cassette(tmp_path / "empty.yaml")


def test_an_interrupted_write_leaves_the_previous_cassette_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    save_cassette(path, CassetteData([_exchange({"v": 1}, {"v": 1})]))
    before = path.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(CassetteError, match=r"was not written: .*No space left"):
        save_cassette(path, CassetteData([_exchange({"v": 2}, {"v": 2})]))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_atomic_write_keeps_permissions(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("old")
    path.chmod(0o640)
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o640
