"""``pytest-compaction diff OLD NEW``: two recordings of the same tests compared.

Every cassette here is recorded for real: the openai SDK (or httpx under stock vcrpy) talks to
the embedded server on 127.0.0.1, once per side, with server options or faults that change
the reply. The command runs in a process of its own, as a user runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import vcr
from support.today import STORY, THRESHOLD

from pytest_compaction import CompactionServer
from pytest_compaction.cassette._file import load_cassette, save_cassette
from pytest_compaction.replay._recorder import use_cassette

COMPACT = "exchange 0: POST /v1/responses/compact"
STREAMED = "exchange 1: POST /v1/responses"
KEY = "sk-proj-" + "Q7w8E9r0T1y2U3i4O5p6" * 2


def diff(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_compaction", "diff", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def record(
    path: Path,
    *,
    content: str = "hello there",
    chain: int = 1,
    fault: str | None = None,
    allow: list[str] | None = None,
) -> Path:
    """A compaction (``chain`` of them, each fed the previous output) and a streamed
    ``/responses`` call that compacts server-side, recorded through the openai SDK."""
    options: dict[str, Any] = {"allow_secrets": allow} if allow else {}
    with (
        CompactionServer(fault=fault) as server,
        use_cassette(path, record_mode="once", **options) as recording,
        openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as client,
    ):
        history: list[Any] = [{"role": "user", "content": content}]
        for _ in range(chain):
            compacted = client.responses.compact(model="gpt-5.4", input=history)
            history = [
                item.model_dump(mode="json", exclude_none=True, warnings=False)
                for item in compacted.output
            ]
        events = list(
            client.responses.create(
                model="gpt-5.4",
                input=STORY,
                stream=True,
                extra_body={"context_management": THRESHOLD},
            )
        )
        assert events[-1].type == "response.completed"
    assert recording.violations == [], recording.violations
    assert len(load_cassette(path).exchanges) == chain + 1
    return path


def record_stock(path: Path, *, fault: str | None = None) -> Path:
    """One compaction recorded by stock vcrpy (no schema version in the cassette) via httpx."""
    with (
        CompactionServer(fault=fault) as server,
        vcr.VCR(record_mode="once").use_cassette(str(path)),
    ):
        body = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hello there"}]}
        assert httpx.post(f"{server.base_url}/responses/compact", json=body, timeout=10).is_success
    return path


def record_compact(path: Path, *, fault: str | None = None, version: str | None = None) -> Path:
    """One compaction recorded through httpx, whatever it is answered (an error too)."""
    with (
        CompactionServer(fault=fault, schema_version=version) as server,
        use_cassette(path, record_mode="once", version=version) as recording,
    ):
        body = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hello there"}]}
        httpx.post(f"{server.base_url}/responses/compact", json=body, timeout=10)
    assert recording.violations == [], recording.violations
    return path


def block(out: str, head: str) -> list[str]:
    """The lines under ``head`` in a text report, up to the next line at its indentation."""
    lines = out.splitlines()
    start = lines.index(head)
    depth = len(head) - len(head.lstrip())
    below = []
    for line in lines[start + 1 :]:
        if len(line) - len(line.lstrip()) <= depth:
            break
        below.append(line.strip())
    return below


# -- no differences -------------------------------------------------------------------------------
def test_two_recordings_that_differ_only_in_ids_tokens_and_times_have_no_differences(
    tmp_path: Path,
) -> None:
    old, new = record(tmp_path / "old.yaml"), record(tmp_path / "new.yaml")
    assert old.read_text() != new.read_text()  # fresh ids, tokens and ports on each side
    done = diff(tmp_path, "old.yaml", "new.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("1 cassette compared: no differences; ")
    assert "id/token/timestamp/usage values normalised (--no-normalise shows them)" in line

    shown = diff(tmp_path, "old.yaml", "new.yaml", "--no-normalise")
    assert shown.returncode == 1, shown.stdout + shown.stderr
    changes = block(shown.stdout, f"  {COMPACT}")
    fields = {c.split(":")[0] for c in changes}
    always = {
        "response id",
        "response output[0].id",
        "response output[1].id",
        "response output[1].encrypted_content",
    }
    # created_at differs unless both recordings fell in the same second
    assert always <= fields <= always | {"response created_at"}
    # The stream is compared by its final response, not by its text.
    streamed = {c.split(":")[0] for c in block(shown.stdout, f"  {STREAMED}")}
    assert "response id" in streamed and "response output[1].encrypted_content" in streamed
    assert not any("(body)" in c for c in streamed)
    assert shown.stdout.splitlines()[-1] == (
        "1 cassette compared: 1 changed (2 exchanges, 0 verdict changes), 0 unchanged"
    )


def test_changed_content_shows_and_its_usage_counts_only_when_asked(tmp_path: Path) -> None:
    record(tmp_path / "old.yaml", content="hello there")
    record(tmp_path / "new.yaml", content="hello there, and more")
    done = diff(tmp_path, "old.yaml", "new.yaml")
    assert done.returncode == 1
    assert block(done.stdout, f"  {COMPACT}") == [
        'request input[0].content: "hello there" -> "hello there, and more"',
        'response output[0].content[0].text: "hello there" -> "hello there, and more"',
    ]
    assert not any(line.strip().startswith("response usage") for line in done.stdout.splitlines())
    shown = diff(tmp_path, "old.yaml", "new.yaml", "--no-normalise")
    usage = [c for c in block(shown.stdout, f"  {COMPACT}") if c.startswith("response usage.")]
    assert [u.split(":")[0] for u in usage] == [
        "response usage.input_tokens",
        "response usage.output_tokens",
        "response usage.total_tokens",
    ]


# -- a removed item, a verdict change -------------------------------------------------------------
def test_a_compaction_item_gone_from_a_streams_final_response_is_named(tmp_path: Path) -> None:
    record(tmp_path / "old.yaml")
    record(tmp_path / "new.yaml", fault="completed-output:empty")
    done = diff(tmp_path, "old.yaml", "new.yaml")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == "old.yaml -> new.yaml"
    assert block(done.stdout, f"  {STREAMED}") == [
        "response output[0]: removed (message item, role assistant)",
        "response output[1]: removed (compaction item)",
    ]
    assert COMPACT not in done.stdout  # the plain compaction answered alike
    # Still valid (a completed event may carry no output): no verdict change.
    assert done.stdout.splitlines()[-1].startswith(
        "1 cassette compared: 1 changed (1 exchange, 0 verdict changes), 0 unchanged"
    )


def test_an_exchange_that_validated_before_and_fails_now_is_a_verdict_change(
    tmp_path: Path,
) -> None:
    record_stock(tmp_path / "old.yaml")
    record_stock(tmp_path / "new.yaml", fault="malformed-json")
    done = diff(tmp_path, "old.yaml", "new.yaml")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = block(done.stdout, f"  {COMPACT}")
    assert lines[0] == "verdict: pass -> FAIL (now failing)"
    assert lines[1].startswith("response: body is not JSON")  # what the failing side breaks
    assert "response (body): JSON -> text " in done.stdout
    assert done.stdout.splitlines()[-1].startswith(
        "1 cassette compared: 1 changed (1 exchange, 1 verdict change), 0 unchanged"
    )
    back = diff(tmp_path, "new.yaml", "old.yaml")
    assert back.returncode == 1
    assert block(back.stdout, f"  {COMPACT}")[0] == "verdict: FAIL -> pass (now passing)"


def test_a_status_change_is_reported_with_what_the_body_became(tmp_path: Path) -> None:
    record_compact(tmp_path / "old.yaml")
    record_compact(tmp_path / "new.yaml", fault="503")
    done = diff(tmp_path, "old.yaml", "new.yaml")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = block(done.stdout, f"  {COMPACT}")
    assert lines[0] == "status: 200 -> 503"
    assert "response output: removed (list of 2 items)" in lines
    assert "response error: added (object of type server_error)" in lines
    assert not any(line.startswith("verdict:") for line in lines)  # an error answer is valid


def test_recordings_judged_by_different_versions_say_so(tmp_path: Path) -> None:
    older = "2026-08-21_f85dbe223d40"
    record_compact(tmp_path / "old.yaml", version=older)
    record_compact(tmp_path / "new.yaml")
    newest = load_cassette(tmp_path / "new.yaml").schema_version
    assert newest is not None and newest != older
    done = diff(tmp_path, "old.yaml", "new.yaml")
    assert done.returncode == 1, done.stdout + done.stderr
    assert block(done.stdout, "old.yaml -> new.yaml") == [f"judged by: {older} -> {newest}"]


def test_a_body_nested_too_deeply_to_walk_is_compared_as_bytes(tmp_path: Path) -> None:
    for name, leaf in (("old.yaml", "1"), ("new.yaml", "2")):
        path = record_compact(tmp_path / name)
        data = load_cassette(path)
        # Deep enough that a field-by-field walk overflows, shallow enough that JSON parses.
        data.exchanges[0].response_body = ("[" * 900 + leaf + "]" * 900).encode()
        save_cassette(path, data)
    done = diff(tmp_path, "old.yaml", "new.yaml")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    deep = "response (body, nested too deeply to compare field by field)"
    size = len(load_cassette(tmp_path / "new.yaml").exchanges[0].response_body)
    assert done.stdout.splitlines()[2].strip() == f"{deep}: {size} bytes -> {size} bytes"
    same = diff(tmp_path, "old.yaml", "old.yaml")
    assert same.returncode == 0 and "no differences" in same.stdout


# -- one side only --------------------------------------------------------------------------------
def test_cassettes_and_exchanges_on_one_side_only(tmp_path: Path) -> None:
    record(tmp_path / "old" / "chain.yaml", chain=1)
    record(tmp_path / "old" / "gone.yaml")
    record(tmp_path / "new" / "chain.yaml", chain=2)  # the chain grew by one compaction
    record(tmp_path / "new" / "sub" / "added.yaml")
    shutil.copy(tmp_path / "old" / "gone.yaml", tmp_path / "old" / "same.yaml")
    shutil.copy(tmp_path / "old" / "gone.yaml", tmp_path / "new" / "same.yaml")
    (tmp_path / "new" / "settings.yaml").write_text("name: app\n")  # not a cassette: passed over

    done = diff(tmp_path, "old", "new")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "gone.yaml  only in OLD (2 exchanges)" in out.splitlines()
    assert "sub/added.yaml  only in NEW (2 exchanges)" in out.splitlines()
    chain = block(out, "chain.yaml")
    # Position 1 was the streamed call and is now the second compaction; the stream moved on.
    assert "route: POST /v1/responses -> POST /v1/responses/compact" in chain
    assert "exchange 2: POST /v1/responses  only in NEW (status 200, pass)" in chain
    assert "same.yaml" not in out.splitlines()
    assert out.splitlines()[-1].startswith(
        "4 cassettes compared: 1 changed (2 exchanges, 0 verdict changes), 1 unchanged, "
        "1 only in OLD, 1 only in NEW"
    )


# -- JSON -----------------------------------------------------------------------------------------
def test_json_carries_the_same_results(tmp_path: Path) -> None:
    record(tmp_path / "old" / "c.yaml")
    record(tmp_path / "new" / "c.yaml", fault="completed-output:empty")
    record_stock(tmp_path / "old" / "stock.yaml")
    record_stock(tmp_path / "new" / "stock.yaml", fault="malformed-json")
    text = diff(tmp_path, "old", "new")
    done = diff(tmp_path, "old", "new", "--format", "json")
    assert done.returncode == text.returncode == 1
    data = json.loads(done.stdout)
    assert data["differences"] is True and data["normalise"] is True
    summary = data["summary"]
    assert {k: summary[k] for k in ("cassettes", "changed", "unchanged", "verdict_changes")} == {
        "cassettes": 2,
        "changed": 2,
        "unchanged": 0,
        "verdict_changes": 1,
    }
    by_path = {c["path"]: c for c in data["cassettes"]}
    (streamed,) = by_path["c.yaml"]["exchanges"]
    assert (streamed["index"], streamed["method"], streamed["path"]) == (1, "POST", "/v1/responses")
    assert [(c["side"], c["path"], c["kind"], c["old"]) for c in streamed["changes"]] == [
        ("response", "output[0]", "removed", "message item, role assistant"),
        ("response", "output[1]", "removed", "compaction item"),
    ]
    (stock,) = by_path["stock.yaml"]["exchanges"]
    assert (stock["old_passed"], stock["new_passed"], stock["verdict"]) == (
        True,
        False,
        "now failing",
    )
    assert stock["violations"] and all(v in text.stdout for v in stock["violations"])
    # The text's summary line is the same counts.
    assert text.stdout.splitlines()[-1].startswith(
        f"2 cassettes compared: 2 changed ({summary['exchanges_changed']} exchanges, 1 verdict "
        "change), 0 unchanged"
    )


# -- secrets --------------------------------------------------------------------------------------
def test_a_key_in_a_changed_value_is_never_printed(tmp_path: Path) -> None:
    record(tmp_path / "old.yaml", content="hello there")
    # A fake key recorded on purpose, past where values are cut: a cut before masking would
    # print its first characters.
    said = f"the staging account key is {KEY}, keep it"
    record(tmp_path / "new.yaml", content=said, allow=[KEY])
    assert KEY in (tmp_path / "new.yaml").read_text()
    for args in ((), ("--no-normalise",), ("--format", "json")):
        done = diff(tmp_path, "old.yaml", "new.yaml", *args)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "input[0].content" in done.stdout
        assert KEY[:12] not in done.stdout + done.stderr, args
        assert "key is <secret>" in done.stdout


# -- input that cannot be compared ----------------------------------------------------------------
@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "empty folder",
        "folder without cassettes",
        "not a cassette",
        "empty file",
        "binary",
        "bad YAML",
        "bad YAML in a folder",
        "named pipe",
        "file and folder",
    ],
)
def test_input_that_cannot_be_compared_exits_2_naming_it(tmp_path: Path, kind: str) -> None:
    good = record(tmp_path / "good.yaml").name
    if kind == "missing":
        args, named = [good, "missing.yaml"], "missing.yaml"
    elif kind == "empty folder":
        (tmp_path / "full").mkdir()
        shutil.copy(tmp_path / good, tmp_path / "full" / good)
        (tmp_path / "none").mkdir()
        args, named = ["full", "none"], "none"
    elif kind == "folder without cassettes":
        (tmp_path / "full").mkdir()
        shutil.copy(tmp_path / good, tmp_path / "full" / good)
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "config.yaml").write_text("name: app\n")
        args, named = ["other", "full"], "other"
    elif kind == "empty file":
        (tmp_path / "empty.yaml").write_text("")
        args, named = [good, "empty.yaml"], "empty.yaml"
    elif kind == "binary":
        (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00 not yaml")
        args, named = ["bin.yaml", good], "bin.yaml"
    elif kind == "bad YAML in a folder":
        for side in ("old", "new"):
            (tmp_path / side).mkdir()
            shutil.copy(tmp_path / good, tmp_path / side / good)
        (tmp_path / "new" / "broken.yaml").write_text("interactions: [\n  - {request: \n")
        args, named = ["old", "new"], "broken.yaml"
    elif kind == "named pipe":
        if not hasattr(os, "mkfifo"):
            pytest.skip("this platform has no named pipes")
        os.mkfifo(tmp_path / "pipe.yaml")
        args, named = [good, "pipe.yaml"], "pipe.yaml"
    elif kind == "not a cassette":
        (tmp_path / "config.yaml").write_text("name: app\nport: 8080\n")
        args, named = ["config.yaml", good], "config.yaml"
    elif kind == "bad YAML":
        (tmp_path / "broken.yaml").write_text("interactions: [\n  - {request: \n")
        args, named = [good, "broken.yaml"], "broken.yaml"
    else:
        (tmp_path / "folder").mkdir()
        args, named = [good, "folder"], "folder"
    done = diff(tmp_path, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert named in line and "Traceback" not in line
