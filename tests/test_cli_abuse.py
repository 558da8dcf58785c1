"""Commands given what they cannot use: a clear usage error and exit 2, never a hang or a
traceback. Each runs in a process of its own with a timeout, so a hang fails the test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "pytest_compaction"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [["serve"], ["proxy", "--upstream", "http://127.0.0.1:9"]])
@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_port_out_of_range_is_a_usage_error(command: list[str], port: str) -> None:
    done = run(*command, "--port", port)
    assert done.returncode == 2
    assert "argument --port: " in done.stderr and "is not a port number" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("this platform has no named pipes")
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return path


def test_a_named_pipe_is_refused_not_read(fifo: Path, tmp_path: Path) -> None:
    cases = {
        ("validate", "--kind", "request", str(fifo)): f"{fifo}: not a regular file",
        ("schemas", "derive", "--spec", str(fifo), "--out", str(tmp_path / "o")): (
            f"cannot read spec {fifo}: not a regular file"
        ),
        ("check", str(fifo)): f"{fifo}: not a regular file or a folder",
    }
    for args, message in cases.items():
        done = run(*args)  # a read would block until the timeout
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
