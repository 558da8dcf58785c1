"""``pytest-compaction validate`` as a user runs it: a real process, real files, exit codes, and
output parsed back (text and JSON)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REFERENCE

from pytest_compaction import load_cassette

CLI = [sys.executable, "-m", "pytest_compaction"]
NEWEST = "2026-11-26_openai-3.60.0"
CACHE_WRITE = "usage.input_tokens_details: missing required property 'cache_write_tokens'"
RECORDED = REFERENCE / "recorded" / "pydantic-ai-stock-vcrpy"


def run(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*CLI, *args],
        input=stdin.decode("utf-8", "surrogateescape") if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=120,  # a hang fails the test instead of stalling the suite
        cwd=cwd,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout
    return result


def run_many(*commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Several invocations started together (two cores), each checked like ``run``."""
    started = [(c, subprocess.Popen([*CLI, *c], text=True, stdout=-1, stderr=-1)) for c in commands]
    results = []
    for command, process in started:
        out, err = process.communicate(timeout=120)
        assert "Traceback" not in err + out, err
        results.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return results


def write(folder: Path, name: str, body: Any) -> Path:
    path = folder / name
    path.write_bytes(body if isinstance(body, bytes) else json.dumps(body).encode())
    return path


VALID = {
    "model": "gpt-5.1-codex-max",
    "input": [{"type": "message", "role": "user", "content": "hi"}],
}
MISSING_CALL_ID = {
    "model": "gpt-5",
    "input": [
        {"role": "user", "content": "hi"},
        {"type": "function_call", "name": "f", "arguments": "{}"},
    ],
}
DRIFTING = {
    "model": "gpt-5",
    "input": [{"type": "message", "role": "user", "content": "hi", "cache_hint": 1}],
}


def test_all_valid_exits_0_and_says_so(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", VALID)
    b = write(tmp_path, "b.json", {"model": "gpt-5"})
    result = run("validate", str(a), str(b), "--kind", "request")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{a}: valid (request, {NEWEST})",
        f"{b}: valid (request, {NEWEST})",
    ]
    assert result.stderr == ""


def test_any_violation_exits_1_and_every_file_is_reported(tmp_path: Path) -> None:
    good = write(tmp_path, "good.json", VALID)
    bad = write(tmp_path, "bad.json", MISSING_CALL_ID)
    drift = write(tmp_path, "drift.json", DRIFTING)
    result = run("validate", str(good), str(bad), str(drift), "--kind", "request")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{good}: valid (request, {NEWEST})",
        f"{bad}: 1 violation (request, {NEWEST})",
        "  error: input[1] (type=function_call): missing required property 'call_id'",
        f"{drift}: valid (request, {NEWEST})",
        "  drift: input[0].cache_hint (type=message): undocumented property",
    ]


def test_json_format_is_per_file_data(tmp_path: Path) -> None:
    good = write(tmp_path, "good.json", VALID)
    bad = write(tmp_path, "bad.json", MISSING_CALL_ID)
    drift = write(tmp_path, "drift.json", DRIFTING)
    result = run(
        "validate", str(good), str(bad), str(drift), "--kind", "request", "--format", "json"
    )
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert [entry["file"] for entry in payload] == [str(good), str(bad), str(drift)]
    assert [entry["valid"] for entry in payload] == [True, False, True]
    assert payload[0]["violations"] == [] and payload[0]["drift"] == []
    [violation] = payload[1]["violations"]
    assert violation["path"] == "/input/1/call_id"
    assert (
        violation["message"] == "input[1] (type=function_call): missing required property 'call_id'"
    )
    assert violation["item_type"] == "function_call"
    assert violation["keyword"] == "required"
    [note] = payload[2]["drift"]
    assert note["path"] == "/input/0/cache_hint" and note["item_type"] == "message"
    assert all(entry["version"] == NEWEST and entry["kind"] == "request" for entry in payload)


def test_strict_turns_drift_into_a_violation(tmp_path: Path) -> None:
    drift = write(tmp_path, "drift.json", DRIFTING)
    result = run("validate", str(drift), "--kind", "request", "--strict", "--format", "json")
    assert result.returncode == 1
    [entry] = json.loads(result.stdout)
    assert entry["valid"] is False
    assert [v["path"] for v in entry["violations"]] == ["/input/0/cache_hint"]
    assert entry["violations"][0]["message"].endswith("undocumented property (strict)")


def recorded_response() -> bytes:
    path = RECORDED / "test_openai_responses_compact_with_instructions.yaml"
    if not path.is_file():
        pytest.skip(f"reference recordings not found at {RECORDED} (full checkout only)")
    [exchange] = [e for e in load_cassette(path).exchanges if e.path.endswith("/compact")]
    return exchange.response_body


def test_version_selects_the_schema_by_date_prefix(tmp_path: Path) -> None:
    response = write(tmp_path, "response.json", recorded_response())
    old, new, default = run_many(
        ("validate", str(response), "--kind", "response", "--version", "2026-05-13"),
        ("validate", str(response), "--kind", "response", "--version", "2026-07-15"),
        ("validate", str(response), "--kind", "response", "--format", "json"),
    )
    assert old.returncode == 0, old.stdout
    assert "valid (response, 2026-05-13_5162af98d314)" in old.stdout
    assert new.returncode == 1
    assert new.stdout.splitlines()[1:] == [f"  error: {CACHE_WRITE}"]
    assert default.returncode == 1
    [entry] = json.loads(default.stdout)
    assert entry["version"] == NEWEST
    assert [(v["path"], v["message"]) for v in entry["violations"]] == [
        ("/usage/input_tokens_details/cache_write_tokens", CACHE_WRITE)
    ]


def test_error_kind_checks_error_bodies(tmp_path: Path) -> None:
    ok = write(
        tmp_path,
        "429.json",
        {"error": {"message": "slow down", "type": "requests", "param": None, "code": None}},
    )
    bad = write(tmp_path, "404.json", {"detail": "Not Found"})
    result = run("validate", str(ok), str(bad), "--kind", "error")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{ok}: valid (error, {NEWEST})",
        f"{bad}: 1 violation (error, {NEWEST})",
        "  error: body: missing required property 'error'",
        "  drift: detail: undocumented property",
    ]


def test_stdin_is_read_when_the_file_is_a_dash() -> None:
    result = run("validate", "-", "--kind", "request", stdin=json.dumps(VALID).encode())
    assert result.returncode == 0 and result.stdout.startswith("-: valid (request,")


# -- usage errors exit 2 -------------------------------------------------------------------
def test_usage_errors_exit_2_with_a_message_naming_the_cause(tmp_path: Path) -> None:
    good = write(tmp_path, "good.json", VALID)
    missing = tmp_path / "nope.json"
    cases = (
        (
            (str(good), str(missing)),
            f"pytest-compaction: {missing}: cannot read: No such file or directory",
        ),
        ((str(tmp_path),), f"pytest-compaction: {tmp_path}: is a directory, not a JSON file"),
        (
            (str(good), "--version", "2024-01-01"),
            "pytest-compaction: unknown schema version '2024-01-01'",
        ),
        (
            (str(good), "--version", "2026"),
            "pytest-compaction: schema version '2026' is ambiguous: matches 2026-04-13_",
        ),
    )
    results = run_many(*[("validate", *args, "--kind", "request") for args, _ in cases])
    for (args, says), result in zip(cases, results, strict=True):
        assert result.returncode == 2, (args, result.stdout)
        assert result.stderr.startswith(says), result.stderr
        assert result.stdout == ""  # nothing validated when the command line is wrong


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("running as root: file permissions do not stop reading")
    locked = write(tmp_path, "locked.json", VALID)
    locked.chmod(0)
    result = run("validate", str(locked), "--kind", "request")
    assert result.returncode == 2 and "cannot read: Permission denied" in result.stderr


def test_argument_errors_exit_2_with_usage() -> None:
    kind, no_file = run_many(
        ("validate", "x.json", "--kind", "body"), ("validate", "--kind", "request")
    )
    assert kind.returncode == 2
    assert "invalid choice: 'body'" in kind.stderr and "usage:" in kind.stderr
    assert no_file.returncode == 2 and "FILE" in no_file.stderr


# -- bad bodies: a clear violation each, never a traceback or a hang ------------------------------
def test_bad_bodies_each_get_one_clear_violation(tmp_path: Path) -> None:
    cases = {
        "text.json": (b"not json at all", "body is not JSON: Expecting value at line 1 column 1"),
        "latin1.json": (b'{"model": "caf\xe9"}', "body is not UTF-8: invalid byte at offset 14"),
        "array.json": (b"[1, 2, 3]", "body: expected object, got array"),
        "string.json": (b'"gpt-5"', "body: expected object, got string"),
        "number.json": (b"3.5", "body: expected object, got number"),
        "deep.json": (
            b'{"input": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
            "body nests deeper than",
        ),
        "empty.json": (b"", "body is not JSON"),
    }
    paths = [write(tmp_path, name, raw) for name, (raw, _) in cases.items()]
    result = run("validate", *map(str, paths), "--kind", "request", "--format", "json")
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert [entry["file"] for entry in payload] == [str(p) for p in paths]
    for entry, (name, (_, says)) in zip(payload, cases.items(), strict=True):
        assert entry["valid"] is False, name
        [violation] = entry["violations"]
        assert violation["message"].startswith(says), (name, violation)
        assert violation["path"] == ""
    text = run("validate", *map(str, paths), "--kind", "request")
    for path in paths:  # each file is named on its own header line
        assert f"{path}: 1 violation (request, {NEWEST})" in text.stdout


def test_a_50_mb_file_is_validated(tmp_path: Path) -> None:
    """About 100,000 input items (50 MB) pass; one bad item among 10,000 is found by its index."""
    item = json.dumps({"type": "message", "role": "user", "content": "y" * 480}).encode()
    bad = json.dumps({"type": "function_call", "name": "f", "arguments": "{}"}).encode()
    big_count = 50 * 1024 * 1024 // (len(item) + 1)
    good_path, bad_path = tmp_path / "big.json", tmp_path / "one-bad.json"
    for path, items in ((good_path, [item] * big_count), (bad_path, [item] * 9_999 + [bad])):
        with path.open("wb") as handle:
            handle.write(b'{"model": "gpt-5", "input": [')
            handle.write(b",".join(items))
            handle.write(b"]}")
    assert good_path.stat().st_size > 50 * 1024 * 1024 - 1024
    result = run("validate", str(good_path), str(bad_path), "--kind", "request")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{good_path}: valid (request, {NEWEST})",
        f"{bad_path}: 1 violation (request, {NEWEST})",
        "  error: input[9999] (type=function_call): missing required property 'call_id'",
    ]


KEY = "sk-proj-" + "Q7xv2LmN9pRt4WzY8bKc3HdF6gJs1AeU"


def test_a_key_quoted_by_a_violation_is_masked_in_text_and_json(tmp_path: Path) -> None:
    path = write(tmp_path, "keyed.json", {**VALID, "service_tier": KEY})
    for fmt in ("text", "json"):
        result = run("validate", "--kind", "request", "--format", fmt, str(path))
        assert result.returncode == 1
        assert KEY not in result.stdout + result.stderr
        assert KEY[:20] not in result.stdout + result.stderr
        assert "<secret>" in result.stdout
        assert "is not one of" in result.stdout


def test_check_masks_a_key_quoted_by_a_violation(tmp_path: Path) -> None:
    body = json.dumps({**VALID, "service_tier": KEY})
    answer = json.dumps({"id": "cmp_1", "object": "response.compaction", "output": []})
    cassette = tmp_path / "stock.yaml"
    cassette.write_text(
        "interactions:\n"
        "- request:\n"
        f"    body: {json.dumps(body)}\n"
        "    headers: {}\n"
        "    method: POST\n"
        "    uri: https://api.openai.com/v1/responses/compact\n"
        "  response:\n"
        f"    body: {{string: {json.dumps(answer)}}}\n"
        "    headers: {content-type: [application/json]}\n"
        "    status: {code: 200, message: OK}\n"
        "version: 1\n"
    )
    for fmt in ("text", "json", "junit"):
        result = run("check", "--format", fmt, str(cassette))
        assert result.returncode == 1, result.stdout + result.stderr
        assert KEY not in result.stdout + result.stderr
        assert KEY[:20] not in result.stdout + result.stderr
        assert "<secret>" in result.stdout
