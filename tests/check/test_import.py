"""`pytest-compaction import`: foreign cassettes into this project's format, validated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import httpx2
import openai
import pytest
import vcr
import yaml
from conftest import Upstream

from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.check._import import import_cassette
from pytest_compaction.cli import main
from pytest_compaction.replay._fixtures import load_exchanges
from pytest_compaction.replay._recorder import use_cassette
from pytest_compaction.replay._transport import Httpx2CassetteTransport

CHAIN = "test_openai_responses_compact_with_auto_previous_response_id_chain.yaml"
MAY = "2026-05-13_5162af98d314"
SK = "sk-proj-" + "Rt5" * 12


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["import", *args])
    out, err = capsys.readouterr()
    return code, out + err


def _compact_doc(response: dict[str, object]) -> dict[str, object]:
    """A stock vcrpy document with one compaction exchange."""
    request = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]}
    return {
        "interactions": [
            {
                "request": {
                    "method": "POST",
                    "uri": "https://api.openai.com/v1/responses/compact",
                    "headers": {"content-type": ["application/json"]},
                    "body": json.dumps(request),
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {"content-type": ["application/json"]},
                    "body": {"string": json.dumps(response)},
                },
            }
        ],
        "version": 1,
    }


def _replay(path: Path) -> int:
    """Every exchange through the openai SDK under use_cassette; returns exchanges validated."""
    with use_cassette(path) as rec:
        client = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="x", max_retries=0)
        for ex in load_exchanges(path):
            if ex.is_compact:
                out = client.responses.compact(**ex.request)
                assert out.output[-1].type == "compaction"
            else:
                out = client.responses.create(**ex.request)
            assert out.id == ex.response["id"]
        rec.assert_all_played()
        assert rec.violations == []
    return rec.validated


def test_real_pydantic_ai_cassettes_import_validate_and_replay(
    capsys: pytest.CaptureFixture[str], reference: Path, tmp_path: Path
) -> None:
    source = reference / "recorded" / "pydantic-ai"
    out_dir = tmp_path / "cassettes"
    code, out = _run(capsys, str(source), "-o", str(out_dir))
    assert code == 0, out
    files = sorted(source.glob("*.yaml"))
    assert sorted(p.name for p in out_dir.iterdir()) == [p.name for p in files]
    assert f"imported {len(files)} cassette(s), 0 skipped, 0 refused, 0 error(s)" in out
    assert (
        f"{source / CHAIN} -> {out_dir / CHAIN}: imported (pydantic-ai, 8 exchanges, "
        f"8 validated against {MAY} (newest version accepting every exchange); "
        "23 header value(s) redacted)"
    ) in out
    assert (
        "  exchange 2 POST https://api.openai.com/v1/responses/compact: valid (status 200)" in out
    )
    assert "  exchange 0 POST https://api.openai.com/v1/responses: valid (status 200)" in out
    # null where the 2026-05-13 spec declares a string, in a property compaction does not read
    assert (
        "      note: response /prompt_cache_key: prompt_cache_key: expected string, got null "
        "(outside the compaction contract: not a failure)"
    ) in out

    chain = out_dir / CHAIN
    text = chain.read_text()
    assert text.startswith(f"compaction:\n  format: 1\n  schema_version: {MAY}\n")
    assert "parsed_body" not in text
    assert "pydantic-28gund" not in text and "proj_dKobscVY9YJxeEaDJen54e3d" not in text
    # the same exchanges, by value
    assert [(e.request, e.response) for e in load_exchanges(chain)] == [
        (e.request, e.response) for e in load_exchanges(source / CHAIN)
    ]
    assert not list(out_dir.glob(".*.tmp"))

    # It replays through the SDK, validated against the version it was stamped with
    assert _replay(chain) == 8
    transport = Httpx2CassetteTransport(chain)
    client = openai.OpenAI(
        base_url="http://replay.invalid/v1",
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )
    for ex in load_exchanges(chain):
        call = client.responses.compact if ex.is_compact else client.responses.create
        assert call(**ex.request).id == ex.response["id"]
    transport.assert_all_played()

    # A second run does not overwrite without --force
    code, out = _run(capsys, str(source / CHAIN), "-o", str(out_dir))
    assert code == 2 and "already exists (pass --force to replace it)" in out
    code, out = _run(capsys, str(source / CHAIN), "-o", str(out_dir), "--force")
    assert code == 0


def test_stock_vcrpy_in_place_then_skipped(
    capsys: pytest.CaptureFixture[str], reference: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "cassettes"
    shutil.copytree(reference / "recorded" / "pydantic-ai-stock-vcrpy", folder)
    (folder / "notes.json").write_text('{"not": "a cassette"}')
    code, out = _run(capsys, str(folder), "--format", "json")
    assert code == 0, out
    report = json.loads(out)
    assert len(report) == 7  # notes.json is left alone
    assert {r["outcome"] for r in report} == {"imported"}
    for entry in report:
        assert entry["target"] == entry["source"]
        compacts = [x for x in entry["exchanges"] if x["validated"]]
        assert all(x["violations"] == [] for x in compacts)
        expected = MAY if compacts else entry["schema_version"]
        assert entry["schema_version"] == expected
        assert load_cassette(entry["target"]).schema_version == expected
    code, out = _run(capsys, str(folder))
    assert code == 0
    assert "imported 0 cassette(s), 7 skipped" in out
    assert "skipped: already in this project's format" in out
    assert _replay(folder / CHAIN) == 8


def test_a_pinned_version_reports_the_drift_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], reference: Path, tmp_path: Path
) -> None:
    path = tmp_path / CHAIN
    shutil.copy(reference / "recorded" / "pydantic-ai" / CHAIN, path)
    before = path.read_bytes()
    code, out = _run(capsys, str(path), "--version", "2026-08-21")
    assert code == 1
    assert "refused" in out
    assert "exchange 2 POST https://api.openai.com/v1/responses/compact: 1 violation(s)" in out
    assert "cache_write_tokens" in out
    assert "not written: exchanges do not conform to schema version 2026-08-21" in out
    assert path.read_bytes() == before
    code, out = _run(capsys, str(path), "--version", "2026-08-21", "--allow-invalid")
    assert code == 0
    assert load_cassette(path).schema_version == "2026-08-21_f85dbe223d40"
    code, out = _run(capsys, str(path), "--version", "1999-01-01")
    assert code == 2 and "1999-01-01" in out


def test_exchanges_no_version_accepts_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(_compact_doc({"id": "resp_1", "object": "response.compaction"})))
    before = path.read_bytes()
    result = import_cassette(path)
    assert result.outcome == "refused"
    assert result.exchanges[0].validated and not result.exchanges[0].valid
    assert any("output" in v for v in result.exchanges[0].violations)
    assert "(nor to any other bundled version)" in (result.message or "")
    assert path.read_bytes() == before
    code, _ = _run(capsys, str(path))
    assert code == 1


def test_secrets_are_refused_until_scanned_away(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, upstream: Upstream
) -> None:
    path = tmp_path / "stock.yaml"
    with vcr.VCR(record_mode="once").use_cassette(str(path)):
        httpx.post(
            upstream.base_url + "/responses/compact",
            json={"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]},
            headers={"x-test-secret": "1", "x-test-encoding": "gzip", "authorization": SK},
        )
    before = path.read_bytes()
    code, out = _run(capsys, str(path))
    assert code == 1
    assert "would contain what looks like a secret" in out
    assert "exchange 0 response body /note: looks like an API key" in out
    assert f"Redact it first: pytest-compaction scan --fix {path}" in out
    assert SK not in out and "A1b2C3d4" not in out
    assert path.read_bytes() == before

    assert main(["scan", "--fix", str(path)]) == 0
    capsys.readouterr()
    code, out = _run(capsys, str(path))
    assert code == 0, out
    data = load_cassette(path)
    assert data.schema_version is not None
    body = json.loads(data.exchanges[0].response_body)
    assert body["note"] == "REDACTED"
    assert "content-encoding" not in data.exchanges[0].response_headers
    assert data.exchanges[0].request_headers["authorization"] == ["REDACTED"]
    # stored as reviewable text now, not base64
    assert "!!binary" not in path.read_text()
    upstream.close()
    assert _replay_plain(path) == "resp_0001"


def _replay_plain(path: Path) -> str:
    with use_cassette(path):
        response = httpx.post(
            "http://elsewhere.invalid/v1/responses/compact",
            json={"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]},
        )
    return str(response.json()["id"])


def test_gzip_vcrpy_json_layout_is_imported_decoded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, upstream: Upstream
) -> None:
    path = tmp_path / "stock.json"
    with vcr.VCR(record_mode="once", serializer="json").use_cassette(str(path)):
        httpx.post(
            upstream.base_url + "/responses/compact",
            json={"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]},
        )
    code, out = _run(capsys, str(path), "-o", str(tmp_path / "out"))
    assert code == 0, out
    written = tmp_path / "out" / "stock.json"
    doc = json.loads(written.read_text())  # a .json cassette stays JSON
    assert doc["compaction"]["schema_version"]
    assert doc["interactions"][0]["response"]["headers"]["openai-organization"] == ["REDACTED"]
    upstream.close()
    assert _replay_plain(written) == "resp_0001"


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = _run(capsys, str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such file or folder" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("interactions:\n- request: 3\n")
    code, out = _run(capsys, str(bad))
    assert code == 2 and "interaction 0" in out
    other = tmp_path / "settings.yaml"
    other.write_text("a: 1\n")
    code, out = _run(capsys, str(other))
    assert code == 2 and "not a cassette" in out
