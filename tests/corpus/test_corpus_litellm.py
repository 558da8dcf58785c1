"""The corpus's ``litellm-proxy/`` folder: recorded through the real LiteLLM proxy, by shape.

``pytest-compaction corpus --litellm-proxy`` starts the proxy itself (from this environment,
pinned by the dev extra) in front of a fresh embedded server. Its recordings cannot repeat byte
for byte (LiteLLM seals response ids with a random nonce), so ``--check`` compares them with the
committed folder by the ``diff`` engine and by verdict. Each ``--check`` below is one proxy
start; without litellm these tests skip, except under CI, where they fail.

The committed cassettes also replay offline through the SDK, and the default corpus run keeps
its byte-for-byte check with the folder present.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import yaml
from support.litellm_env import PROXY_MODULES, require_litellm

from pytest_compaction.cli import main
from pytest_compaction.demo._corpus import build_corpus, compare_folders, write_corpus
from pytest_compaction.demo._corpus_litellm import (
    FOLDER,
    MASTER_KEY,
    compact_chain,
    errors,
    litellm_entries,
    streamed_compaction,
)
from pytest_compaction.replay._recorder import use_cassette

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "cassettes"
_SCRIPT = Path(sys.executable).with_name("pytest-compaction")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pytest_compaction"]
UNUSED_BASE = "http://127.0.0.1:9/v1"  # the discard port: replay must not need a server


def corpus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, "corpus", *args], capture_output=True, text=True, timeout=400)


def committed() -> Path:
    folder = COMMITTED / FOLDER
    if not folder.is_dir():
        pytest.skip(f"no {folder} (only in a full checkout)")
    return folder


def test_check_passes_the_committed_folder() -> None:
    require_litellm(PROXY_MODULES)
    folder = committed()
    done = corpus("--litellm-proxy", "--check", "--out", str(COMMITTED))
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith("OK: 3 cassettes (6 exchanges) recorded through the LiteLLM proxy")
    assert f"{folder} has the same shape and verdicts" in last
    # The sealed ids differ from one recording to the next: set aside, and counted.
    assert "normalised value" in last and " 0 normalised" not in last


def test_check_names_the_file_and_field_an_edited_copy_changes(tmp_path: Path) -> None:
    require_litellm(PROXY_MODULES)
    out = tmp_path / "cassettes"
    shutil.copytree(committed(), out / FOLDER)
    edited = out / FOLDER / "compact-chain.yaml"
    doc = yaml.safe_load(edited.read_text())
    body = doc["interactions"][1]["response"]["body"]
    answer = json.loads(body["string"])
    assert answer["object"] == "response.compaction"
    answer["object"] = "response.edited"
    body["string"] = json.dumps(answer)
    edited.write_text(yaml.safe_dump(doc, sort_keys=False))
    before = {p.name: p.read_bytes() for p in (out / FOLDER).iterdir()}

    done = corpus("--litellm-proxy", "--check", "--out", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    differs = [line for line in lines if line.startswith("differs ")]
    where = f"differs   {edited}: exchange 1: POST /v1/responses/compact: "
    assert f'{where}response object: "response.edited" -> "response.compaction"' in differs
    verdict = [line for line in differs if line.startswith(f"{where}verdict: ")]
    assert len(verdict) == 1 and "fails in the folder, passes in a fresh recording" in verdict[0]
    assert "response.edited" in verdict[0]  # what the folder's copy breaks
    assert len(differs) == 2, differs
    assert lines[-1].startswith("DIFFERENT: ")
    assert "Re-record with: pytest-compaction corpus --litellm-proxy" in lines[-1]
    assert {p.name: p.read_bytes() for p in (out / FOLDER).iterdir()} == before  # untouched


def test_the_committed_cassettes_replay_offline_under_the_strict_litellm_profile(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = committed()
    sdk = openai.OpenAI(base_url=UNUSED_BASE, api_key=MASTER_KEY, max_retries=0, timeout=5)
    steps = {e.name: e.steps for e in litellm_entries()}
    assert steps == {
        "compact-chain.yaml": compact_chain,
        "errors.yaml": errors,
        "server-side-compaction-stream.yaml": streamed_compaction,
    }
    # The compact exchanges validate strictly; the stream's events carry a `model` the litellm
    # profile does not declare, so it is validated as check judges it, not strictly.
    for name, strict in (
        ("compact-chain.yaml", True),
        ("errors.yaml", True),
        ("server-side-compaction-stream.yaml", False),
    ):
        with use_cassette(folder / name, record_mode="none", strict=strict) as rec:
            steps[name](sdk)
        assert rec.dialect == "litellm", name
        assert rec.recorded == 0 and rec.replayed == rec.validated > 0, name
        assert rec.violations == [] and rec.problems == [], (name, rec.violations)
        rec.assert_all_played()
    assert main(["check", str(folder)]) == 0
    assert "6 exchange(s) in 3 cassette(s): 6 passed, 0 failed" in capsys.readouterr().out
    strictly = [str(folder / "compact-chain.yaml"), str(folder / "errors.yaml")]
    assert main(["check", *strictly, "--strict"]) == 0
    readme = (folder / "README.md").read_text()
    assert "checked by shape, not bytes" in readme
    for name in steps:
        assert f"| `{name}` |" in readme


def test_the_default_corpus_and_its_check_leave_the_litellm_folder_alone(tmp_path: Path) -> None:
    source = committed()
    clean, out = tmp_path / "clean", tmp_path / "cassettes"
    recorded = build_corpus()
    assert recorded.ok, recorded.problems
    write_corpus(clean, recorded.files)
    write_corpus(out, recorded.files)
    shutil.copytree(source, out / FOLDER)
    kept = {p.name: p.read_bytes() for p in (out / FOLDER).iterdir()}

    found = compare_folders(clean, out)
    assert (found.differ, found.missing, found.extra) == ([], [], [])
    done = corpus("--check", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is identical, byte for byte" in done.stdout.splitlines()[-1]
    again = write_corpus(out, recorded.files)  # a re-record neither removes nor lists them
    assert again.removed == [] and again.kept == [] and again.written == []
    assert {p.name: p.read_bytes() for p in (out / FOLDER).iterdir()} == kept
    assert FOLDER not in (out / "SHA256SUMS").read_text()
    # Anything else extra still differs.
    (out / "stray.yaml").write_text("x")
    assert compare_folders(clean, out).extra == ["stray.yaml"]
    done = corpus("--check", "--out", str(out))
    assert done.returncode == 1 and f"extra     {out / 'stray.yaml'}" in done.stdout


def test_without_the_proxy_the_command_says_so_in_one_line(tmp_path: Path) -> None:
    # An interpreter of its own, beside which there is no litellm script, with this one's modules.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"
    python.symlink_to(sys.executable)
    import site

    paths = [str(ROOT), *site.getsitepackages()]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(paths)
    command = [str(python), "-m", "pytest_compaction", "corpus", "--litellm-proxy"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == (
        f"pytest-compaction corpus: the LiteLLM proxy is not installed: no {bin_dir / 'litellm'}; "
        "install it with python -m pip install -e '.[dev]' (the dev extra pins litellm[proxy])\n"
    )
    assert not (tmp_path / "out").exists()
