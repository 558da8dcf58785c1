"""``scan`` reads the raw document, and ``scan --fix`` edits only the offending scalars.

The exchanges a loader builds leave parts of a file unread: ``metadata``, an interaction's
fields no loader knows, a response's ``url``, a stream's ``body.string`` when its events are
what replays. A key there is a key on disk all the same, so the scan reads every scalar of the
document (keys and values) and reports it by its path. ``--fix`` then changes those scalars
where they stand in the text: a stock vcrpy cassette keeps its comments, anchors, aliases and
timestamps, and every line the fix had no reason to touch.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import vcr
import yaml
from support.leaks import leaks

from pytest_compaction import CompactionServer
from pytest_compaction.cassette._exchange import CassetteData, Exchange
from pytest_compaction.cassette._file import load_cassette, save_cassette
from pytest_compaction.cassette._scan import scan_file
from pytest_compaction.cli import main

SK = "sk-proj-" + "Hj4kMn" * 9
HEX = "9f86d081884c7d659a2feaa0c55ad015"
BODY = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]}


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["scan", *args])
    out, err = capsys.readouterr()
    return code, out + err


def _changed(before: str, after: str) -> list[str]:
    """The lines that differ, as ``-old`` / ``+new``."""
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]


@pytest.fixture(scope="module")
def server() -> Any:
    with CompactionServer() as srv:
        yield srv


def _stock(path: Path, server: CompactionServer, serializer: str = "yaml") -> None:
    with vcr.VCR(serializer=serializer, record_mode="once").use_cassette(str(path)):
        assert httpx.post(server.base_url + "/responses/compact", json=BODY).status_code == 200


HEAD = """\
# Recorded 2026-05-01 for the compaction tests; reviewed by hand.
recorded_at: 2026-05-01T10:00:00Z
metadata:
  owner: &owner platform-team   # who to ask
  note: "rotate the key {sk} after use"
  api_key: {long}
  reviewers: [*owner, qa]
"""


def _hand_edited(path: Path) -> str:
    """The stock cassette with what people add to one: comments, metadata, unknown fields."""
    text = path.read_text()
    text = HEAD.format(sk=SK, long="Z" * 24) + text
    text = text.replace(
        "  response:\n",
        f"  recorded_at: 2026-05-01T10:00:01Z  # per interaction\n"
        f"  debug: {{trace: abc, token: {SK}}}\n"
        "  response:\n"
        f"    url: https://api.example/v1/responses/compact?api-key={HEX}&user=me\n",
        1,
    )
    path.write_text(text)
    return text


def test_what_the_exchanges_do_not_read_is_found_by_its_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: CompactionServer
) -> None:
    path = tmp_path / "stock.yaml"
    _stock(path, server)
    assert scan_file(path).findings == []
    _hand_edited(path)
    result = scan_file(path)
    assert [(f.exchange, f.part, f.location, f.kind) for f in result.findings] == [
        (-1, "document", "/metadata/note", "an API key (sk-...)"),
        (-1, "document", "/metadata/api_key", "a credential (in a field named like a key)"),
        (0, "document", "/interactions/0/debug/token", "an API key (sk-...)"),
        (0, "document", "/interactions/0/response/url", "a key in a URL"),
    ]
    code, out = _run(capsys, str(path))
    assert code == 1
    assert "document /metadata/note: looks like an API key (sk-...)" in out
    assert "document /interactions/0/response/url: looks like" in out
    assert SK not in out and HEX not in out
    code, out = _run(capsys, "--format", "json", str(path))
    entries = json.loads(out)["cassettes"][0]["findings"]
    assert {e["exchange"] for e in entries} == {None, 0}


def test_fix_edits_only_the_offending_values_of_a_stock_cassette(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: CompactionServer
) -> None:
    path = tmp_path / "stock.yaml"
    _stock(path, server)
    before = _hand_edited(path)
    code, out = _run(capsys, "--fix", str(path))
    assert code == 0, out
    assert "4 finding(s); redacted in place" in out
    after = path.read_text()
    assert _changed(before, after) == [
        f'-  note: "rotate the key {SK} after use"',
        f"-  api_key: {'Z' * 24}",
        '+  note: "rotate the key REDACTED after use"',
        "+  api_key: REDACTED",
        f"-  debug: {{trace: abc, token: {SK}}}",
        "+  debug: {trace: abc, token: REDACTED}",
        f"-    url: https://api.example/v1/responses/compact?api-key={HEX}&user=me",
        "+    url: https://api.example/v1/responses/compact?api-key=REDACTED&user=me",
    ]
    assert leaks(tmp_path, [SK, HEX, "Z" * 24]) == []
    # Comments, the anchor and its alias, the timestamps: all where they were.
    assert after.startswith("# Recorded 2026-05-01 for the compaction tests")
    assert "owner: &owner platform-team   # who to ask" in after
    assert "reviewers: [*owner, qa]" in after
    doc = yaml.safe_load(after)
    assert doc["metadata"]["reviewers"] == ["platform-team", "qa"]
    assert str(doc["recorded_at"]).startswith("2026-05-01 10:00:00")
    code, out = _run(capsys, str(path))
    assert (code, "0 finding(s)" in out) == (0, True)
    # Stock vcrpy still replays it, with the server gone.
    server_url = server.base_url
    with vcr.VCR(record_mode="none").use_cassette(str(path)):
        replayed = httpx.post(server_url + "/responses/compact", json=BODY)
    assert replayed.json()["object"] == "response.compaction"


def test_fix_of_a_compressed_stock_body_changes_that_body_and_its_headers_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, upstream: Any
) -> None:
    path = tmp_path / "stock.yaml"
    with vcr.VCR(record_mode="once").use_cassette(str(path)):
        httpx.post(
            upstream.base_url + "/responses/compact",
            json=BODY,
            headers={"x-test-encoding": "gzip", "x-test-secret": "1"},
        )
    before = "# stock vcrpy, gzip kept as recorded\n" + path.read_text()
    path.write_text(before)
    code, out = _run(capsys, "--fix", str(path))
    assert code == 0, out
    after = path.read_text()
    assert after.startswith("# stock vcrpy, gzip kept as recorded\n")
    removed = [line for line in _changed(before, after) if line.startswith("-")]
    # The body (base64 lines), its coding and length, the cookie and the account headers.
    assert any("!!binary" in line for line in removed)
    assert "-      - gzip" in removed and "-      content-encoding:" in removed
    kept = set(before.splitlines()) & set(after.splitlines())
    assert "    method: POST" in kept and "      x-request-id:" in kept
    doc = yaml.safe_load(after)
    response = doc["interactions"][0]["response"]
    assert json.loads(response["body"]["string"])["note"] == "REDACTED"
    assert response["headers"]["content-length"] == [str(len(response["body"]["string"]))]
    upstream.close()
    with vcr.VCR(record_mode="none").use_cassette(str(path)):
        replayed = httpx.post(
            upstream.base_url + "/responses/compact",
            json=BODY,
            headers={"x-test-encoding": "gzip", "x-test-secret": "1"},
        )
    assert replayed.json()["note"] == "REDACTED"


def test_fix_of_a_vcrpy_json_cassette_edits_its_values_in_place(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: CompactionServer
) -> None:
    path = tmp_path / "stock.json"
    _stock(path, server, serializer="json")
    doc = json.loads(path.read_text())
    doc["metadata"] = {"auth_token": "t" * 30, "note": SK}
    doc["interactions"][0]["request"]["headers"]["x-debug"] = [f"Bearer {SK}"]
    before = json.dumps(doc, indent=4) + "\n"
    path.write_text(before)
    code, out = _run(capsys, "--fix", str(path))
    assert code == 0, out
    after = path.read_text()
    assert _changed(before, after) == [
        f'-                        "Bearer {SK}"',
        '+                        "REDACTED"',
        f'-        "auth_token": "{"t" * 30}",',
        f'-        "note": "{SK}"',
        '+        "auth_token": "REDACTED",',
        '+        "note": "REDACTED"',
    ]


def test_a_key_as_a_name_is_renamed_and_unknown_binary_fields_are_replaced(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: CompactionServer
) -> None:
    path = tmp_path / "stock.yaml"
    _stock(path, server)
    text = path.read_text().replace(
        "interactions:\n",
        f"metadata:\n  keys:\n    {SK}: primary\n  blob: !!binary {json.dumps(_b64(SK))}\n"
        "interactions:\n",
        1,
    )
    path.write_text(text)
    places = {f.location for f in scan_file(path).findings}
    assert places == {"/metadata/keys/<secret-looking name> (a property name)", "/metadata/blob"}
    code, out = _run(capsys, "--fix", str(path))
    assert code == 0, out
    meta = yaml.safe_load(path.read_text())["metadata"]
    assert meta == {"keys": {"REDACTED": "primary"}, "blob": "REDACTED"}
    assert leaks(tmp_path, [SK]) == []


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


# ---------------------------------------------------------------------------------------------
# This project's format


def _stream(key: str) -> Exchange:
    events = (
        "event: response.created\n"
        'data: {"type":"response.created","sequence_number":0}\n\n'
        "event: response.output_text.delta\n"
        f'data: {{"type":"response.output_text.delta","delta":"{key}","sequence_number":1}}\n\n'
    )
    return Exchange(
        method="POST",
        uri="https://api.example/v1/files",
        request_headers={"content-type": ["application/json"]},
        request_body=b'{"stream": true}',
        status=200,
        reason="OK",
        response_headers={"content-type": ["text/event-stream"]},
        response_body=events.encode(),
    )


def test_a_stream_whose_events_win_is_scanned_in_its_body_string_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "mine.yaml"
    save_cassette(path, CassetteData([_stream(SK)], "2026-05-13"))
    # Someone removed the key from the events by hand: the events are what replays now, while
    # body.string (what stock vcrpy replays) still holds it.
    path.write_text(path.read_text().replace(f"delta: {SK}", "delta: hello"))
    assert SK.encode() not in load_cassette(path).exchanges[0].response_body
    result = scan_file(path)
    assert [(f.part, f.location) for f in result.findings] == [
        ("document", "/interactions/0/response/body/string")
    ]
    code, out = _run(capsys, "--fix", str(path))
    assert code == 0, out
    assert SK not in path.read_text()
    assert b"hello" in load_cassette(path).exchanges[0].response_body


def test_metadata_of_a_project_cassette_is_scanned_and_fixed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "mine.yaml"
    save_cassette(
        path, CassetteData([_stream("hello")], "2026-05-13", extra={"metadata": {"token": SK}})
    )
    assert [f.location for f in scan_file(path).findings] == ["/metadata/token"]
    code, out = _run(capsys, "--fix", str(path))
    assert code == 0, out
    data = load_cassette(path)
    assert data.extra == {"metadata": {"token": "REDACTED"}}
    assert data.exchanges[0].response_body == _stream("hello").response_body
