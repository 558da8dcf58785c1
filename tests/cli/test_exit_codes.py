"""One meaning per exit status across the commands that read cassettes.

0: read and clean; 1: read, and something was found (a violation, a secret, a refusal);
2: the command could not do its work on what it was given (no such path, a named pipe, a
file that is not a readable cassette, a folder with no cassettes), with a message naming it.
Each command runs in a process of its own, with a timeout, so a hang fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_compaction.cassette._exchange import CassetteData, Exchange
from pytest_compaction.cassette._file import save_cassette

COMMANDS = {
    "check": ["check"],
    "scan": ["scan"],
    "import": ["import", "-o", "imported"],
}


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_compaction", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def make(tmp_path: Path, kind: str) -> str:
    if kind == "missing":
        return "missing.yaml"
    if kind == "empty file":
        (tmp_path / "empty.yaml").write_text("")
        return "empty.yaml"
    if kind == "binary":
        (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00 not yaml")
        return "bin.yaml"
    if kind == "not a cassette":
        (tmp_path / "config.yaml").write_text("name: app\nport: 8080\n")
        return "config.yaml"
    if kind == "empty folder":
        (tmp_path / "none").mkdir()
        return "none"
    if kind == "folder without cassettes":
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "config.yaml").write_text("name: app\n")
        return "other"
    if kind == "named pipe":
        if not hasattr(os, "mkfifo"):
            pytest.skip("this platform has no named pipes")
        os.mkfifo(tmp_path / "pipe.yaml")
        return "pipe.yaml"
    raise AssertionError(kind)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "empty file",
        "binary",
        "not a cassette",
        "empty folder",
        "folder without cassettes",
        "named pipe",
    ],
)
def test_input_a_command_cannot_use_exits_2_naming_it(
    tmp_path: Path, command: str, kind: str
) -> None:
    target = make(tmp_path, kind)
    done = run(tmp_path, *COMMANDS[command], target)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert target in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def _exchange(body: dict[str, object]) -> Exchange:
    request = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]}
    return Exchange(
        "POST",
        "https://api.openai.com/v1/responses/compact",
        {"content-type": ["application/json"]},
        json.dumps(request).encode(),
        200,
        "OK",
        {"content-type": ["application/json"]},
        json.dumps(body).encode(),
    )


GOOD = {
    "id": "resp_1",
    "object": "response.compaction",
    "created_at": 1775143637,
    "output": [{"id": "cmp_1", "type": "compaction", "encrypted_content": "gAAAAB" + "x" * 40}],
    "usage": {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    },
}


def test_a_clean_cassette_exits_0_and_a_failing_one_1(tmp_path: Path) -> None:
    save_cassette(tmp_path / "good.yaml", CassetteData([_exchange(GOOD)]))
    bad = {k: v for k, v in GOOD.items() if k != "usage"}
    save_cassette(tmp_path / "bad.yaml", CassetteData([_exchange(bad)]))
    assert run(tmp_path, "check", "good.yaml").returncode == 0
    assert run(tmp_path, "check", "bad.yaml").returncode == 1
    assert run(tmp_path, "scan", "good.yaml").returncode == 0
    assert run(tmp_path, "import", "-o", "out", "good.yaml").returncode == 0
    assert run(tmp_path, "import", "-o", "out2", "bad.yaml").returncode == 1
    # One unreadable cassette beside good ones is still "could not do its work".
    (tmp_path / "broken.yaml").write_text("interactions: [")
    for command in COMMANDS.values():
        done = run(tmp_path, *command, "good.yaml", "broken.yaml")
        assert done.returncode == 2, (command, done.stdout, done.stderr)
