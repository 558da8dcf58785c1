"""`pytest-compaction scan`: secrets and account identifiers in cassettes of every layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
import vcr
import yaml
from conftest import Upstream

from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.cassette._scan import (
    LAYOUT_PROJECT,
    LAYOUT_PYDANTIC_AI,
    LAYOUT_VCRPY_JSON,
    LAYOUT_VCRPY_YAML,
    scan_file,
)
from pytest_compaction.cli import main
from pytest_compaction.replay._recorder import use_cassette

SK = "sk-proj-" + "Qw7" * 12
ORG_VALUE = "pydantic-28gund"
PROJECT_VALUE = "proj_dKobscVY9YJxeEaDJen54e3d"
CHAIN = "test_openai_responses_compact_with_auto_previous_response_id_chain.yaml"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["scan", *args])
    out, err = capsys.readouterr()
    return code, out + err


def _stock_vcrpy(
    path: Path, upstream: Upstream, *, serializer: str = "yaml", **headers: str
) -> None:
    """A cassette written by stock vcrpy (compressed bodies kept as recorded)."""
    recorder = vcr.VCR(serializer=serializer, record_mode="once")
    with recorder.use_cassette(str(path)):
        response = httpx.post(
            upstream.base_url + "/responses/compact",
            json={"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {SK}", **headers},
        )
        assert response.status_code == 200


def _replay_through_sdk(path: Path, version: str | None = None) -> int:
    """Replay every exchange of a cassette through the openai SDK; returns compactions seen."""
    compactions = 0
    with use_cassette(path, version=version) as rec:
        client = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="x", max_retries=0)
        for ex in list(rec.exchanges):
            body = json.loads(ex.request_body or b"{}")
            if ex.uri.endswith("/responses/compact"):
                out = client.responses.compact(**body)
                assert out.output[-1].type == "compaction"
                compactions += 1
            else:
                out = client.responses.create(**body)
            assert out.id == json.loads(ex.response_body)["id"]
        rec.assert_all_played()
    return compactions


# ---------------------------------------------------------------------------------------------
# The real recordings


def test_real_recordings_carry_account_identifiers_and_the_scan_finds_them(
    capsys: pytest.CaptureFixture[str], reference: Path
) -> None:
    recorded = reference / "recorded"
    files = sorted(recorded.glob("pydantic-ai*/*.yaml"))
    assert len(files) == 14
    code, out = _run(capsys, str(recorded), "--format", "json")
    assert code == 1
    report = json.loads(out)
    by_path = {Path(c["path"]).resolve(): c for c in report["cassettes"]}
    # error-bodies/ holds JSON files that are not cassettes: skipped, not errors
    assert report["errors"] == 0
    assert set(by_path) == {p.resolve() for p in files}
    for path in files:
        entry = by_path[path.resolve()]
        assert entry["layout"] == (
            LAYOUT_PYDANTIC_AI if path.parent.name == "pydantic-ai" else LAYOUT_VCRPY_YAML
        )
        responses = sum(1 for _ in load_cassette(path).exchanges)
        where = {(f["exchange"], f["part"], f["location"], f["kind"]) for f in entry["findings"]}
        for index in range(responses):
            for name in ("openai-organization", "openai-project"):
                assert (index, "response", f"header {name!r}", "an account identifier") in where
    # Places only, never the values
    assert ORG_VALUE not in out and PROJECT_VALUE not in out
    code, text = _run(capsys, str(recorded / "pydantic-ai" / CHAIN))
    assert code == 1
    assert "exchange 7 response header 'openai-project': looks like an account identifier" in text
    assert "exchange 1 request header 'cookie': looks like a session cookie" in text
    assert "23 finding(s)" in text
    assert ORG_VALUE not in text and "__cf_bm=" not in text


@pytest.mark.parametrize("layout", ["pydantic-ai", "pydantic-ai-stock-vcrpy"])
def test_fix_redacts_a_real_recording_in_place_and_it_still_replays(
    capsys: pytest.CaptureFixture[str], reference: Path, tmp_path: Path, layout: str
) -> None:
    source = reference / "recorded" / layout / CHAIN
    path = tmp_path / CHAIN
    shutil.copy(source, path)
    before = load_cassette(path).exchanges

    code, out = _run(capsys, "--fix", str(path))
    assert code == 0, out
    assert "23 finding(s); redacted in place" in out
    assert "fixed 1 file(s), 0 remaining" in out
    code, out = _run(capsys, str(path))
    assert (code, out.strip()) == (0, "scanned 1 cassette(s): 0 finding(s) in 0 cassette(s)")

    text = path.read_text()
    for value in (ORG_VALUE, PROJECT_VALUE, "__cf_bm="):
        assert value not in text
    # The file keeps its layout: pydantic-ai's parsed bodies stay parsed
    assert ("parsed_body:" in text) == (layout == "pydantic-ai")
    assert "compaction:\n  format" not in text
    # Only the sensitive values changed
    after = load_cassette(path).exchanges
    assert [(a.request_body, a.response_body) for a in after] == [
        (b.request_body, b.response_body) for b in before
    ]
    assert after[0].response_headers["openai-organization"] == ["REDACTED"]
    assert after[0].response_headers["openai-version"] == ["2020-10-01"]
    assert not list(tmp_path.glob(".*.tmp"))

    assert _replay_through_sdk(path, version="2026-05-13") == 3


# ---------------------------------------------------------------------------------------------
# Layouts and places


def test_stock_vcrpy_gzip_body_is_decoded_scanned_and_fixed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, upstream: Upstream
) -> None:
    path = tmp_path / "stock.yaml"
    _stock_vcrpy(path, upstream, **{"x-test-encoding": "gzip", "x-test-secret": "1"})
    raw = path.read_text()
    assert "!!binary" in raw and "A1b2C3d4" not in raw  # the body's key shows once decoded

    result = scan_file(path)
    assert result.layout == LAYOUT_VCRPY_YAML
    places = {(f.part, f.location, f.kind) for f in result.findings}
    assert ("response", "body /note", "an API key (sk-...)") in places
    assert ("request", "header 'authorization'", "a credential header") in places
    assert ("response", "header 'openai-organization'", "an account identifier") in places
    assert ("response", "header 'set-cookie'", "a session cookie") in places

    code, out = _run(capsys, "--fix", str(path))
    assert code == 0, out
    assert scan_file(path).findings == []
    doc = yaml.safe_load(path.read_text())
    response = doc["interactions"][0]["response"]
    assert "content-encoding" not in response["headers"]
    body = response["body"]["string"]
    assert json.loads(body)["note"] == "REDACTED"
    assert response["headers"]["content-length"] == [str(len(body.encode()))]

    # Stock vcrpy still replays the fixed file, with no network
    upstream.close()
    with vcr.VCR(record_mode="none").use_cassette(str(path)):
        replayed = httpx.post(
            upstream.base_url + "/responses/compact",
            json={"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]},
        )
    assert replayed.json()["note"] == "REDACTED"
    assert replayed.json()["object"] == "response.compaction"


@pytest.mark.parametrize("encoding", ["br", "zstd"])
def test_brotli_and_zstd_bodies_are_decoded_first(
    tmp_path: Path, upstream: Upstream, encoding: str
) -> None:
    path = tmp_path / "stock.yaml"
    _stock_vcrpy(path, upstream, **{"x-test-encoding": encoding, "x-test-secret": "1"})
    assert "!!binary" in path.read_text()
    assert any(f.location == "body /note" for f in scan_file(path).findings)
    result = scan_file(path, fix=True)
    assert result.fixed and result.remaining == []


def test_vcrpy_json_layout_keeps_its_layout_when_fixed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, upstream: Upstream
) -> None:
    path = tmp_path / "stock.json"
    _stock_vcrpy(path, upstream, serializer="json", **{"x-test-secret": "1"})
    result = scan_file(path)
    assert result.layout == LAYOUT_VCRPY_JSON
    assert {f.location for f in result.findings} >= {"header 'authorization'", "body /note"}
    code, _ = _run(capsys, "--fix", str(path))
    assert code == 0
    doc = json.loads(path.read_text())
    assert "compaction" not in doc
    assert doc["interactions"][0]["request"]["headers"]["authorization"] == ["REDACTED"]
    with vcr.VCR(serializer="json", record_mode="none").use_cassette(str(path)):
        replayed = httpx.post(
            upstream.base_url + "/responses/compact",
            json={"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]},
        )
    assert replayed.json()["note"] == "REDACTED"


def test_query_strings_bodies_and_event_streams(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    events = "\n".join(
        [
            "event: response.created",
            'data: {"type":"response.created","token":"' + SK + '"}',
            "",
            "event: done",
            "data: [DONE]",
            "",
        ]
    )
    doc = {
        "interactions": [
            {
                "request": {
                    "method": "POST",
                    "uri": f"https://user:pw@gw.example/v1/responses/compact?api-version=1&api-key=abcdef0123456789abcdef&x={SK}",
                    "headers": {"x-custom": [f"Bearer {SK}"], "api-key": ["short"]},
                    "body": json.dumps({"model": "m", "metadata": {"client_secret": "s" * 20}}),
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {"content-type": ["text/event-stream"]},
                    "body": {"string": events},
                },
            }
        ],
        "version": 1,
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    places = {(f.part, f.location) for f in scan_file(path).findings}
    assert places == {
        ("request", "query parameter 'api-key'"),
        ("request", "query parameter 'x'"),
        ("request", "uri (user:password)"),
        ("request", "header 'x-custom'"),
        ("request", "header 'api-key'"),
        ("request", "body /metadata/client_secret"),
        ("response", "body line 2 /token"),
    }
    code, out = _run(capsys, "--fix", str(path))
    assert code == 0, out
    assert scan_file(path).findings == []
    fixed = yaml.safe_load(path.read_text())["interactions"][0]
    assert fixed["request"]["uri"] == (
        "https://user@gw.example/v1/responses/compact?api-version=1&api-key=REDACTED&x=REDACTED"
    )
    assert fixed["request"]["headers"]["x-custom"] == ["REDACTED"]
    assert json.loads(fixed["request"]["body"])["metadata"]["client_secret"] == "REDACTED"
    stream = fixed["response"]["body"]["string"]
    assert "data: [DONE]" in stream and "event: response.created" in stream
    assert SK not in path.read_text()


def test_every_shape_of_secret_is_redacted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    long_value = "v" * 24
    body = {
        "config": {"clientSecret": {"nested": [long_value]}},  # under a key-named field
        SK: "a key used as a property name",
    }
    doc = {
        "interactions": [
            {
                "request": {
                    "method": "POST",
                    "uri": f"https://{SK}@gw.example/v1/responses/compact#{SK}",
                    "headers": {"x-service-api-key": [long_value]},
                    "body": json.dumps(body),
                },
                "response": {
                    "status": {"code": 302, "message": "Found"},
                    "headers": {"location": [f"https://gw.example/next?api_key={long_value}"]},
                    "body": {"string": f"plain text with Bearer {SK} inside"},
                },
            }
        ],
        "version": 1,
    }
    path = tmp_path / "shapes.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert scan_file(path).findings
    code, out = _run(capsys, "--fix", str(path))
    assert code == 0, out
    assert scan_file(path).findings == []
    text = path.read_text()
    for value in (SK, long_value):
        assert value not in text
    fixed = yaml.safe_load(text)["interactions"][0]
    assert json.loads(fixed["request"]["body"]) == {
        "config": {"clientSecret": {"nested": ["REDACTED"]}},
        "REDACTED": "a key used as a property name",
    }
    assert fixed["response"]["body"]["string"] == "plain text with Bearer REDACTED inside"
    assert fixed["response"]["headers"]["location"] == ["https://gw.example/next?api_key=REDACTED"]
    assert fixed["request"]["uri"] == "https://gw.example/v1/responses/compact#REDACTED"


def test_project_cassette_with_an_identifier_is_fixed_and_replays(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, upstream: Upstream
) -> None:
    path = tmp_path / "mine.yaml"
    client = openai.OpenAI(base_url=upstream.base_url, api_key="x", max_retries=0)
    with use_cassette(path, record_mode="once"):
        client.responses.compact(model="gpt-5.4", input=[{"role": "user", "content": "hi"}])
    code, out = _run(capsys, str(path))
    assert (code, "0 finding(s)" in out) == (0, True)  # the recorder redacts on write
    # A cassette written by hand, or before a header was filtered
    path.write_text(path.read_text().replace("- REDACTED", "- proj_handwritten", 1))
    result = scan_file(path)
    assert result.layout == LAYOUT_PROJECT
    assert len(result.findings) == 1
    code, out = _run(capsys, "--fix", str(path))
    assert code == 0, out
    assert "proj_handwritten" not in path.read_text()
    assert path.read_text().startswith("compaction:\n")
    upstream.close()
    assert _replay_through_sdk(path) == 1


# ---------------------------------------------------------------------------------------------
# Exit codes and errors


def test_a_binary_body_that_cannot_be_redacted_is_reported_as_remaining(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = b"\xff\xfe binary " + SK.encode() + b" \xff"
    doc = {
        "interactions": [
            {
                "request": {"method": "GET", "uri": "https://a.example/x", "headers": {}},
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {},
                    "body": {"string": body},
                },
            }
        ],
        "version": 1,
    }
    path = tmp_path / "bin.yaml"
    path.write_text(yaml.safe_dump(doc))
    before = path.stat().st_mtime_ns, path.read_bytes()
    code, out = _run(capsys, "--fix", str(path))
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before  # nothing to write
    assert code == 1
    assert "1 could not be redacted" in out
    assert "exchange 0 response body (text)" in out
    assert "looks like an API key (sk-...)" in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = _run(capsys, str(tmp_path / "missing"))
    assert code == 2 and "missing: no such file or folder" in out

    other = tmp_path / "settings.json"
    other.write_text('{"a": 1}')
    code, out = _run(capsys, str(other))
    assert code == 2 and "not a cassette" in out
    code, out = _run(capsys, str(tmp_path))  # in a folder, other files are skipped
    assert code == 2 and "no cassettes found" in out

    broken = tmp_path / "broken.yaml"
    broken.write_text("interactions: [\n")
    code, out = _run(capsys, str(tmp_path))
    assert code == 2 and f"{broken}: error:" in out and "not valid YAML" in out

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # would block a reader forever
    code, out = _run(capsys, str(fifo))
    assert code == 2 and "not a regular file or a folder" in out
    code, out = _run(capsys, str(tmp_path))  # skipped inside a folder
    assert code == 2 and "pipe.yaml" not in out

    with pytest.raises(SystemExit) as exc:
        main(["scan", "--format", "xml", str(tmp_path)])
    assert exc.value.code == 2


def test_the_installed_command_exits_1_on_findings(tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "stock.yaml"
    _stock_vcrpy(path, upstream)
    command = [sys.executable, "-m", "pytest_compaction", "scan", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    assert "header 'authorization': looks like a credential header" in done.stdout
    assert SK not in done.stdout
    fixed = subprocess.run([*command, "--fix"], capture_output=True, text=True, check=False)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.returncode == 0
