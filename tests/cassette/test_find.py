"""One rule for which files are cassettes: ``check``, ``scan`` and the collector agree.

Below a folder, hidden names (files and folders) are left out; a file named explicitly is read,
hidden or not; a named pipe is refused when named and passed over inside a folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
from conftest import Upstream

from pytest_compaction.cassette._find import find_cassettes
from pytest_compaction.cli import main
from pytest_compaction.replay._recorder import use_cassette

# In-process runs: hypothesis' plugin would import (and assertion-rewrite) all of hypothesis.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
SEEN = {"a.yaml", "sub/d.yaml"}  # what a walk of the cassette folder reads


@pytest.fixture
def tree(tmp_path: Path, upstream: Upstream) -> Path:
    """cassettes/ with a cassette, one in a subfolder, a hidden file and one in a hidden folder."""
    cassettes = tmp_path / "cassettes"
    first = cassettes / "a.yaml"
    with use_cassette(first, record_mode="once"):
        body = {"model": "gpt-5", "input": [{"role": "user", "content": "hi"}]}
        httpx.post(f"{upstream.base_url}/responses/compact", json=body, timeout=10)
    for copy in ("sub/d.yaml", ".b.yaml", ".hid/c.yaml"):
        (cassettes / copy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(first, cassettes / copy)
    return cassettes


def names(paths: list[str], root: Path) -> set[str]:
    return {Path(p).resolve().relative_to(root.resolve()).as_posix() for p in paths}


def checked(capsys: pytest.CaptureFixture[str], path: Path, root: Path) -> set[str]:
    code = main(["check", "--format", "json", str(path)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    return names([c["path"] for c in report["cassettes"]], root)


def scanned(capsys: pytest.CaptureFixture[str], path: Path, root: Path) -> set[str]:
    code = main(["scan", "--format", "json", str(path)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    return names([c["path"] for c in report["cassettes"]], root)


def collected(pytester: pytest.Pytester, *args: str) -> set[str]:
    result = pytester.runpytest_inprocess(
        *QUIET, "--compaction-check-cassettes", "--collect-only", "-q", *args
    )
    out = result.stdout.str()
    return {m for m in re.findall(r"^cassettes/(\S+)::exchange\[0\]$", out, re.MULTILINE)}


def test_a_walk_leaves_hidden_names_out_everywhere(
    tree: Path, capsys: pytest.CaptureFixture[str], pytester: pytest.Pytester
) -> None:
    assert checked(capsys, tree, tree) == SEEN
    assert scanned(capsys, tree, tree) == SEEN
    assert names([str(p) for p, _ in find_cassettes([tree])], tree) == SEEN

    shutil.copytree(tree, pytester.path / "cassettes")
    pytester.makepyfile(**{"tests/test_plain.py": "def test_plain():\n    pass\n"})
    # pytest's own walk reaches the cassette folder (it passes hidden files to the collector)
    assert collected(pytester) == SEEN
    # the cassette folder is outside testpaths: the collector walks it itself
    pytester.makeini("[pytest]\ntestpaths = tests\n")
    assert collected(pytester) == SEEN


def test_a_hidden_file_or_folder_named_explicitly_is_read(
    tree: Path, capsys: pytest.CaptureFixture[str], pytester: pytest.Pytester
) -> None:
    hidden = tree / ".b.yaml"
    assert checked(capsys, hidden, tree) == {".b.yaml"}
    assert scanned(capsys, hidden, tree) == {".b.yaml"}
    assert checked(capsys, tree / ".hid", tree) == {".hid/c.yaml"}
    assert scanned(capsys, tree / ".hid", tree) == {".hid/c.yaml"}

    shutil.copytree(tree, pytester.path / "cassettes")
    assert collected(pytester, "cassettes/.b.yaml") == {".b.yaml"}
    assert collected(pytester, "cassettes/.hid") == {".hid/c.yaml"}


def test_a_named_pipe_is_refused_when_named_and_passed_over_in_a_folder(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("this platform has no named pipes")
    fifo = tree / "pipe.yaml"
    os.mkfifo(fifo)  # a read would block forever
    for command in ("check", "scan"):
        assert main([command, str(fifo)]) == 2
        assert f"{fifo}: not a regular file or a folder" in capsys.readouterr().err
    assert checked(capsys, tree, tree) == SEEN
    assert scanned(capsys, tree, tree) == SEEN
