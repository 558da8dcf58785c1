"""``pytest-compaction check``: recorded exchanges judged by their version, or against another.

Inputs are the real recordings in ../shared (pydantic-ai's layout and stock vcrpy YAML, plus a
stock vcrpy JSON conversion made with vcrpy's own serializer) and cassettes of this project's
format recorded through ``use_cassette`` from the loopback upstream.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import Upstream, compaction_body

from pytest_compaction.cassette._exchange import CassetteData, Exchange
from pytest_compaction.cassette._file import load_cassette, save_cassette
from pytest_compaction.check._report import format_text
from pytest_compaction.check._run import check_paths
from pytest_compaction.cli import main
from pytest_compaction.contract._dialects import DialectError
from pytest_compaction.replay._recorder import use_cassette

CACHE_WRITE = "usage.input_tokens_details.cache_write_tokens"


def covered_count(*folders: Path) -> int:
    """POST /responses/compact and /responses exchanges, counted apart from the code under test."""
    total = 0
    for folder in folders:
        for path in folder.glob("*.yaml"):
            total += sum(
                ex.method == "POST"
                and urlsplit(ex.uri).path.endswith(("/responses/compact", "/responses"))
                for ex in load_cassette(path).exchanges
            )
    return total


@pytest.fixture
def recorded(reference: Path) -> list[Path]:
    folders = [
        reference / "recorded" / "pydantic-ai",
        reference / "recorded" / "pydantic-ai-stock-vcrpy",
    ]
    for folder in folders:
        if not folder.is_dir():
            pytest.skip(f"{folder} not found (only in a full checkout)")
    return folders


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def record(path: Path, upstream: Upstream, body: dict[str, Any], version: str) -> Path:
    """Record one compaction through httpx into a cassette of this project's format."""
    with use_cassette(path, record_mode="once", version=version):
        response = httpx.post(f"{upstream.base_url}/responses/compact", json=body, timeout=10)
        assert response.status_code == 200
    assert load_cassette(path).schema_version is not None
    return path


# -- the real recordings -------------------------------------------------------------------------
def test_real_recordings_pass_under_the_version_they_predate(
    recorded: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = covered_count(*recorded)
    assert expected > 0
    code, out, _ = run(capsys, *map(str, recorded), "--version", "2026-05-13")
    assert code == 0, out
    files = sum(len(list(folder.glob("*.yaml"))) for folder in recorded)
    assert f"{expected} exchange(s) in {files} cassette(s): {expected} passed, 0 failed" in out
    assert out.count("  pass  exchange ") == expected
    assert "[2026-05-13_5162af98d314, assumed]" in out
    assert "other exchange(s)" not in out
    # The service sends null where the 2026-05-13 spec declares strings, in properties a
    # compaction client does not read: reported under each /responses exchange, not failed.
    notes = {line.strip() for line in out.splitlines() if line.startswith("        note: ")}
    assert notes >= {
        "note: response /prompt_cache_key: prompt_cache_key: expected string, got null "
        "(outside the compaction contract: not a failure)",
        "note: response /safety_identifier: safety_identifier: expected string, got null "
        "(outside the compaction contract: not a failure)",
    }
    assert all(
        "outside the compaction contract" in n
        and ("prompt_cache_key" in n or "safety_identifier" in n)
        for n in notes
    )


def test_real_recordings_against_2026_07_15_fail_on_cache_write_tokens(
    recorded: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = covered_count(*recorded)
    code, out, _ = run(
        capsys, *map(str, recorded), "--version", "2026-05-13", "--against", "2026-07-15"
    )
    assert code == 1
    assert out.splitlines()[0] == "checked against 2026-07-15_535f5dc97632"
    assert out.count("pass -> FAIL  now failing") == expected
    cause_lines = [line for line in out.splitlines() if line.startswith("    cause: ")]
    assert len(cause_lines) == expected
    # in a stream, the usage of the response.completed event's response
    completed = f"[type=response.completed].response.{CACHE_WRITE}"
    assert set(cause_lines) == {
        f"    cause: new required field: response {where}: newly required (new field) "
        "[ResponseUsage, breaking for recordings]"
        for where in (CACHE_WRITE, completed)
    }
    assert f"against 2026-07-15_535f5dc97632: {expected} now failing, 0 now passing" in out

    result = check_paths(recorded, version="2026-05-13", against="2026-07-15")
    for exchange in result.exchanges:
        assert exchange.baseline.valid and not exchange.against.valid  # type: ignore[union-attr]
        (cause,) = exchange.causes
        where = cause.location.removeprefix(completed[: -len(CACHE_WRITE)])
        assert (cause.label, where, cause.fixed) == (
            "new required field",
            CACHE_WRITE,
            False,
        )
        assert cause.change is not None and cause.change.change == "required-added"


def test_real_recordings_by_default_are_judged_by_the_newest(
    recorded: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, str(recorded[0]))
    assert code == 1
    assert "[2026-11-26_openai-3.60.0, assumed]" in out
    assert (
        "response: usage.input_tokens_details: missing required property 'cache_write_tokens'"
        in out
    )


def test_json_output(recorded: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    expected = covered_count(*recorded)
    code, out, _ = run(
        capsys,
        *map(str, recorded),
        "--version",
        "2026-05-13",
        "--against",
        "2026-07-15",
        "--format",
        "json",
    )
    assert code == 1
    payload = json.loads(out)
    assert payload["against"] == "2026-07-15_535f5dc97632"
    assert payload["summary"]["exchanges"] == expected
    assert payload["summary"]["now_failing"] == expected
    exchanges = [e for c in payload["cassettes"] for e in c["exchanges"]]
    assert len(exchanges) == expected
    for exchange in exchanges:
        assert exchange["baseline"]["valid"] is True
        assert exchange["against"]["valid"] is False
        assert exchange["transition"] == "now failing"
        assert [c["change"]["change"] for c in exchange["causes"]] == ["required-added"]
        assert exchange["against"]["response"]["violations"][0]["path"] in (
            "/usage/input_tokens_details/cache_write_tokens",
            "/response/usage/input_tokens_details/cache_write_tokens",  # a stream's event
        )


def test_junit_output_is_valid_junit(
    recorded: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = covered_count(*recorded)
    code, out, _ = run(
        capsys,
        *map(str, recorded),
        "--version",
        "2026-05-13",
        "--against",
        "2026-07-15",
        "--format",
        "junit",
    )
    assert code == 1
    root = ET.fromstring(out)
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == (
        str(expected),
        str(expected),
        "0",
    )
    suites = root.findall("testsuite")
    assert len(suites) == sum(len(list(folder.glob("*.yaml"))) for folder in recorded)
    cases = root.findall("testsuite/testcase")
    assert len(cases) == expected
    for suite in suites:
        assert int(suite.get("tests", "-1")) == len(suite.findall("testcase"))
        assert int(suite.get("failures", "-1")) == len(suite.findall("testcase/failure"))
    for case in cases:
        failure = case.find("failure")
        assert failure is not None
        assert CACHE_WRITE in failure.get("message", "")
        assert "missing required property 'cache_write_tokens'" in (failure.text or "")

    code, out, _ = run(capsys, *map(str, recorded), "--version", "2026-05-13", "--format", "junit")
    assert code == 0
    root = ET.fromstring(out)
    assert root.get("failures") == "0" and not root.findall(".//failure")


def test_stock_vcrpy_json_cassettes_are_read(
    recorded: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vcr import serialize
    from vcr.serializers import jsonserializer, yamlserializer

    source = recorded[1] / "test_openai_responses_compact_with_auto_previous_response_id_chain.yaml"
    requests, responses = serialize.deserialize(source.read_text(), yamlserializer)
    target = tmp_path / "chain.json"
    target.write_text(
        serialize.serialize({"requests": requests, "responses": responses}, jsonserializer)
    )
    assert target.read_text().startswith("{")
    code, out, _ = run(capsys, str(target), "--version", "2026-05-13", "--format", "json")
    assert code == 0
    (cassette,) = json.loads(out)["cassettes"]
    assert [e["index"] for e in cassette["exchanges"]] == list(range(8))
    assert [e["uri"].endswith("/compact") for e in cassette["exchanges"]].count(True) == 3
    assert cassette["other_exchanges"] == 0


# -- cassettes of this project's format, recorded through use_cassette ---------------------------
def test_recorded_version_is_the_baseline_and_causes_are_named(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record(
        tmp_path / "fast.yaml", upstream, {"model": "gpt-5", "service_tier": "fast"}, "2026-08-21"
    )
    no_call_id = {"model": "gpt-5", "input": [{"type": "function_call_output", "output": "4"}]}
    record(tmp_path / "call_id.yaml", upstream, no_call_id, "2026-08-21")

    code, out, _ = run(capsys, str(tmp_path))
    assert code == 0
    assert out.count("[2026-08-21_f85dbe223d40, recorded]") == 2

    code, out, _ = run(capsys, str(tmp_path), "--against", "2026-07-15")
    assert code == 1
    assert (
        'cause: enum narrowed: request service_tier: enum narrowed: "fast" no longer allowed '
        "[ServiceTierEnum, breaking for clients]"
    ) in out
    assert (
        "cause: new required field: request input[type=function_call_output].call_id: newly "
        "required [FunctionCallOutputItemParam, breaking for clients]"
    ) in out
    assert "2 now failing, 0 now passing" in out


def test_a_change_can_fix_an_exchange(upstream: Upstream, tmp_path: Path) -> None:
    # recorded under 2026-08-21, then judged from 2026-07-15 (as --version does for foreign ones)
    no_call_id = {"model": "gpt-5", "input": [{"type": "function_call_output", "output": "4"}]}
    record(tmp_path / "call_id.yaml", upstream, no_call_id, "2026-08-21")
    data = load_cassette(tmp_path / "call_id.yaml")
    data.schema_version = None
    save_cassette(tmp_path / "call_id.yaml", data)
    result = check_paths([tmp_path], version="2026-07-15", against="2026-08-21")
    (exchange,) = result.exchanges
    assert exchange.transition == "now passing" and result.passed
    (cause,) = exchange.causes
    assert cause.fixed and cause.label == "field no longer required"
    assert cause.location == "input[type=function_call_output].call_id"
    assert cause.change is not None and cause.change.change == "required-removed"


def test_unknown_item_type_and_removed_field(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = {
        "type": "program",
        "id": "prg_1",
        "call_id": "call_1",
        "code": "x",
        "fingerprint": "f",
    }
    record(
        tmp_path / "program.yaml", upstream, {"model": "gpt-5", "input": [program]}, "2026-07-15"
    )

    code, out, _ = run(capsys, str(tmp_path), "--against", "2026-05-13")
    assert code == 1
    assert (
        "cause: unknown item type: request input[type=program]: item type 'program' removed "
        "[InputItem, breaking for clients]"
    ) in out
    # the upstream's usage carries cache_write_tokens: undocumented in 2026-05-13, so only
    # --strict turns it into a violation, caused by the field's removal
    assert "cache_write_tokens" not in out
    code, out, _ = run(capsys, str(tmp_path), "--against", "2026-05-13", "--strict")
    assert f"cause: field removed: response {CACHE_WRITE}: removed" in out


def test_spec_file_is_derived_on_the_fly(
    reference: Path, upstream: Upstream, tmp_path: Path
) -> None:
    spec = reference / "openai-openapi" / "2026-07-15_535f5dc97632_openapi.yaml"
    record(
        tmp_path / "fast.yaml", upstream, {"model": "gpt-5", "service_tier": "fast"}, "2026-08-21"
    )
    by_spec = check_paths([tmp_path], spec=spec)
    by_name = check_paths([tmp_path], against="2026-07-15")
    assert by_spec.against == by_name.against == "2026-07-15_535f5dc97632"
    assert [str(c) for c in by_spec.exchanges[0].causes] == [
        str(c) for c in by_name.exchanges[0].causes
    ]
    assert by_spec.exchanges[0].transition == "now failing"


# -- unreadable cassettes and usage errors ---------------------------------------------------------
def test_unreadable_and_foreign_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text("interactions: [unclosed\n")
    (tmp_path / "settings.json").write_text('{"not": "a cassette"}')
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.yaml").write_text("interactions: [unclosed\n")
    code, out, _ = run(capsys, str(tmp_path))
    assert code == 2
    assert "ERROR " in out and "broken.yaml: not valid YAML" in out
    assert "x.yaml" not in out and "settings.json" not in out
    assert "0 exchange(s) in 1 cassette(s): 0 passed, 0 failed, 1 cassette(s) unreadable" in out

    code, out, _ = run(capsys, str(tmp_path / "broken.yaml"), "--format", "junit")
    assert code == 2
    error = ET.fromstring(out).find("testsuite/testcase/error")
    assert error is not None and "not valid YAML" in error.get("message", "")

    # named explicitly, a file that is not a cassette is reported, not skipped
    code, out, _ = run(capsys, str(tmp_path / "settings.json"))
    assert code == 2 and "not a cassette" in out


def test_cassette_recording_an_unknown_version(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = record(tmp_path / "c.yaml", upstream, {"model": "gpt-5"}, "2026-08-21")
    path.write_text(
        path.read_text().replace(
            "schema_version: 2026-08-21_f85dbe223d40", "schema_version: 2030-01-01"
        )
    )
    code, out, _ = run(capsys, str(path))
    assert code == 2  # a cassette that cannot be judged, as an unreadable one
    assert "unknown schema version '2030-01-01'" in out


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(tmp_path / "missing"))
    assert code == 2 and "missing: no such file or folder" in err
    code, _, err = run(capsys, str(tmp_path))
    assert code == 2 and "no cassettes found" in err
    (tmp_path / "c.yaml").write_text("interactions: []\nversion: 1\n")
    code, _, err = run(capsys, str(tmp_path), "--against", "1999")
    assert code == 2 and "unknown schema version '1999'" in err
    code, _, err = run(capsys, str(tmp_path), "--version", "2026")
    assert code == 2 and "ambiguous" in err
    with pytest.raises(SystemExit) as info:
        main(["check", str(tmp_path), "--against", "2026-07-15", "--spec", "x.yaml"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    code, out, _ = run(capsys, str(tmp_path))
    assert code == 0 and "no exchanges to check (0 other exchange(s))" in out


def test_format_text_without_against_lists_violations(upstream: Upstream, tmp_path: Path) -> None:
    path = record(
        tmp_path / "fast.yaml", upstream, {"model": "gpt-5", "service_tier": "fast"}, "2026-08-21"
    )
    text = format_text(check_paths([path], version="2026-07-15"))
    assert "pass  exchange 0: POST /v1/responses/compact" in text  # the recorded version wins


# -- --dialect: one gateway profile for every exchange ---------------------------------------------
def gateway_cassette(path: Path, response: dict[str, Any], dialect: str | None) -> Path:
    """One compaction on Bifrost's path answered with ``response``, recorded under ``dialect``."""
    request = {"model": "gpt-5", "input": [{"role": "user", "content": "hi"}]}
    json_headers = {"content-type": ["application/json"]}
    exchange = Exchange(
        method="POST",
        uri="http://127.0.0.1:8080/openai/v1/responses/compact",
        request_headers=json_headers,
        request_body=json.dumps(request).encode(),
        response_headers=json_headers,
        response_body=json.dumps(response).encode(),
    )
    data = CassetteData([exchange], schema_version="2026-08-21_f85dbe223d40", dialect=dialect)
    save_cassette(path, data)
    return path


def bifrost_answer() -> dict[str, Any]:
    body = compaction_body({"input": [{"role": "user", "content": "hi"}]}, 1)
    body["extra_fields"] = {"request_type": "responses_compact", "provider": "openai", "latency": 7}
    body["usage"]["cost"] = {"total_cost": 0.0012}
    return body


def test_dialect_overrides_the_dialect_a_cassette_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = gateway_cassette(tmp_path / "bifrost.yaml", bifrost_answer(), "bifrost")
    code, out, _ = run(capsys, str(path), "--strict")
    assert code == 0, out  # the recorded bifrost profile declares Bifrost's additions
    code, out, _ = run(capsys, str(path), "--strict", "--dialect", "bifrost")
    assert code == 0, out

    code, out, _ = run(capsys, str(path), "--strict", "--dialect", "openai")
    assert code == 1
    assert "  FAIL  exchange 0: POST /openai/v1/responses/compact" in out
    assert "        response: extra_fields: undocumented property (strict)" in out
    assert "        response: usage.cost: undocumented property (strict)" in out
    assert "1 exchange(s) in 1 cassette(s): 0 passed, 1 failed" in out
    # without --strict the additions are drift, not violations, under either profile
    code, out, _ = run(capsys, str(path), "--dialect", "openai")
    assert code == 0, out


def test_dialect_applies_a_profile_to_a_cassette_that_recorded_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an OpenAI answer on a path Bifrost shares: detected as openai, valid
    plain = compaction_body({"input": [{"role": "user", "content": "hi"}]}, 1)
    path = gateway_cassette(tmp_path / "plain.yaml", plain, None)
    code, out, _ = run(capsys, str(path))
    assert code == 0, out
    # Bifrost always sends extra_fields: judged as Bifrost's, the answer lacks it
    code, out, _ = run(capsys, str(path), "--dialect", "bifrost", "--format", "json")
    assert code == 1
    (exchange,) = json.loads(out)["cassettes"][0]["exchanges"]
    violations = exchange["baseline"]["response"]["violations"]
    assert [(v["path"], v["keyword"]) for v in violations] == [("/extra_fields", "required")]

    result = check_paths([path], dialect="bifrost")
    assert not result.passed
    assert check_paths([path], dialect="openai").passed


def test_an_unknown_dialect_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = gateway_cassette(tmp_path / "c.yaml", bifrost_answer(), "bifrost")
    with pytest.raises(SystemExit) as info:
        main(["check", str(path), "--dialect", "nope"])
    assert info.value.code == 2
    assert "argument --dialect: invalid choice: 'nope'" in capsys.readouterr().err
    with pytest.raises(DialectError, match="unknown dialect 'nope'; known dialects: openai"):
        check_paths([path], dialect="nope")
