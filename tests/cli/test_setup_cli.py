"""The command's set-up face, driven as a user drives it: a real process, real files, real git.

``--version``; ``schemas list`` with the date and source of each version (and ``schemas derive``
recording the date); the demo's legend and its ``.gitignore``; ``serve`` ending on a signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_compaction.schema._versions import SCHEMA_PATH_ENV, available_versions, version_folder
from pytest_compaction.server import FAULT_HEADER

_SCRIPT = Path(sys.executable).with_name("pytest-compaction")
SCRIPT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pytest_compaction"]
MODULE = [sys.executable, "-m", "pytest_compaction"]
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env={**os.environ, **env},
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


# -- --version ------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [SCRIPT, MODULE], ids=["script", "module"])
def test_version_prints_the_installed_distribution_version(command: list[str]) -> None:
    done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"pytest-compaction {metadata.version('pytest-compaction')}\n"


def test_a_subcommand_keeps_its_own_version_option(tmp_path: Path) -> None:
    """``validate --version`` still picks a schema version, not the program's version."""
    body = tmp_path / "request.json"
    body.write_text(json.dumps({"model": "gpt-5", "input": []}))
    done = run("validate", "--kind", "request", "--version", "2026-05", str(body))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{body}: valid (request, 2026-05-13_5162af98d314)\n"


# -- schemas list and the date derive records --------------------------------------------------
def list_rows(stdout: str) -> tuple[str, dict[str, str]]:
    """The header and each version's line by name."""
    head, *lines = stdout.splitlines()
    return head, {line.split()[0]: line for line in lines}


def test_schemas_list_shows_each_versions_source_date_source_and_the_default() -> None:
    done = run("schemas", "list")
    assert done.returncode == 0, done.stderr
    head, rows = list_rows(done.stdout)
    assert head.split() == ["version", "source", "date", "source"]
    versions = available_versions()
    assert list(rows) == list(versions)
    overlaid = []
    for name in versions:
        manifest = json.loads((version_folder(name) / "manifest.json").read_bytes())
        if manifest.get("overlays"):
            overlaid.append(name)
            continue
        spec = manifest["source"]["file"]
        # the committed specs' dates are those their file names start with
        assert manifest["source"]["date"] == spec[:10] == name[:10]
        assert rows[name].split() == [name, spec[:10], "spec", spec], rows[name]
    assert overlaid == [versions[-2], versions[-1]]
    # an overlaid version: the release its evidence covers, and each overlay it applied, in order
    for name in overlaid:
        manifest = json.loads((version_folder(name) / "manifest.json").read_bytes())
        covers, spec = manifest["covers"], manifest["source"]
        files = ", ".join(overlay["file"] for overlay in manifest["overlays"])
        default = ["(newest,", "default)"] if name == versions[-1] else []
        assert rows[name].split() == [
            name,
            covers["released"],
            "openai",
            covers["version"],
            "SDK",
            "types",
            "(overlay",
            *f"{files})".split(),
            "over",
            "spec",
            spec["file"],
            f"({spec['date']})",
            *default,
        ], rows[name]
    covers = json.loads((version_folder(versions[-1]) / "manifest.json").read_bytes())["covers"]
    assert (covers["released"], covers["version"]) == ("2026-11-26", "3.60.0")
    # the columns line up: every date starts where the header's does
    column = head.index("source date")
    assert {line[column : column + 10] for line in rows.values()} == {
        line.split()[1] for line in rows.values()
    }


def minimal_spec() -> dict[str, Any]:
    def body(ref: str) -> dict[str, Any]:
        return {
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}
        }

    return {
        "openapi": "3.1.0",
        "info": {"version": "9.9.9"},
        "paths": {
            "/responses/compact": {
                "post": {
                    "operationId": "Compactconversation",
                    "requestBody": body("Req"),
                    "responses": {"200": body("Res"), "400": body("ErrorResponse")},
                }
            }
        },
        "components": {
            "schemas": {
                "Req": {"type": "object", "properties": {"model": {"type": "string"}}},
                "Res": {"type": "object", "properties": {"id": {"type": "string"}}},
                "ErrorResponse": {"type": "object", "properties": {"error": {"type": "object"}}},
            }
        },
    }


def test_derive_records_the_spec_date_from_its_name_or_the_option(tmp_path: Path) -> None:
    spec = json.dumps(minimal_spec())
    dated = tmp_path / "2031-02-03_mine_openapi.json"
    plain = tmp_path / "openapi.json"
    dated.write_text(spec)
    plain.write_text(spec)
    out = tmp_path / "versions"
    derives = [
        ("--spec", str(dated)),
        ("--spec", str(plain), "--name", "2031-04-05_given", "--source-date", "2031-04-05"),
        ("--spec", str(plain), "--name", "2031-06-07_nameless"),
    ]
    for args in derives:
        done = run("schemas", "derive", *args, "--out", str(out))
        assert done.returncode == 0, done.stderr
    first = run("schemas", "derive", "--spec", str(dated), "--out", str(tmp_path / "again"))
    assert first.stdout.splitlines()[0] == (
        f"wrote {tmp_path / 'again' / '2031-02-03_mine'} (spec {dated.name} of 2031-02-03, "
        "info.version 9.9.9, 0 defects)"
    )
    dates = {
        folder.name: json.loads((folder / "manifest.json").read_bytes())["source"]["date"]
        for folder in out.iterdir()
    }
    assert dates == {
        "2031-02-03_mine": "2031-02-03",
        "2031-04-05_given": "2031-04-05",
        "2031-06-07_nameless": None,  # a file name without a date, and no --source-date
    }
    done = run("schemas", "list", **{SCHEMA_PATH_ENV: str(out)})
    assert done.returncode == 0, done.stderr
    _, rows = list_rows(done.stdout)
    assert rows["2031-02-03_mine"].split() == [
        "2031-02-03_mine",
        "2031-02-03",
        "spec",
        dated.name,
    ]
    assert rows["2031-04-05_given"].split()[1:] == ["2031-04-05", "spec", "openapi.json"]
    assert rows["2031-06-07_nameless"].split()[1:] == [
        "undated",
        "spec",
        "openapi.json",
        "(newest,",
        "default)",
    ]


@pytest.mark.parametrize("date", ["2031-02-30", "31-02-03", "yesterday", "2031-2-3"])
def test_a_bad_source_date_is_a_usage_error_naming_it(tmp_path: Path, date: str) -> None:
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(minimal_spec()))
    done = run(
        "schemas",
        "derive",
        "--spec",
        str(spec),
        "--out",
        str(tmp_path / "o"),
        "--source-date",
        date,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"pytest-compaction: --source-date: {date!r} is not a date written YYYY-MM-DD\n"
    )
    assert done.stdout == ""
    assert not (tmp_path / "o").exists()


# -- the demo: what its columns count, and git status ------------------------------------------
GIT_ENV = {
    "GIT_AUTHOR_NAME": "demo user",
    "GIT_AUTHOR_EMAIL": "user@example.invalid",
    "GIT_COMMITTER_NAME": "demo user",
    "GIT_COMMITTER_EMAIL": "user@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **GIT_ENV, "HOME": str(repo.parent)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A user's repository with one committed file and a clean status."""
    path = tmp_path / "project"
    path.mkdir()
    git(path, "init", "-q")
    (path / "app.py").write_text("print('hello')\n")
    git(path, "add", "app.py")
    git(path, "commit", "-q", "-m", "start")
    assert git(path, "status", "--porcelain") == ""
    return path


def test_the_demo_leaves_git_status_clean_and_says_what_it_counted(repo: Path) -> None:
    done = run("demo", cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    out = repo / "compaction-demo"
    assert len(list(out.glob("*.yaml"))) == 6
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert (out / ".gitignore").read_text().splitlines()[-1] == "*"
    assert "git       compaction-demo/.gitignore (*) keeps the cassettes out of git status" in (
        done.stdout
    )
    # The legend says what the validated column counts, and the counts bear it out: each
    # exchange is checked when recorded and again when replayed.
    legend = [
        "  validated   times an exchange's request and answer (response, error or each stream",
        "              event) were checked against the schema: when recorded, again when replayed",
    ]
    lines = done.stdout.splitlines()
    start = lines.index(legend[0])
    assert lines[start : start + 2] == legend
    rows = [line.split() for line in lines if line.endswith(".yaml")]
    assert len(rows) == 6
    for row in rows:
        recorded, replayed, validated = (int(n) for n in row[1:4])
        assert validated == recorded + replayed, row
    assert "24 checks against the schema (each exchange at record and at replay)" in lines[-1]

    # A second run keeps the folder's .gitignore as it is, and the status clean.
    before = (out / ".gitignore").read_bytes()
    again = run("demo", cwd=repo)
    assert again.returncode == 0, again.stdout
    assert (out / ".gitignore").read_bytes() == before
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""


def test_the_demo_keeps_a_users_own_gitignore(repo: Path) -> None:
    out = repo / "cassettes"
    out.mkdir()
    own = b"# mine\n*.yaml\n!keep.yaml\n"
    (out / ".gitignore").write_bytes(own)
    done = run("demo", "--out", str(out), cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / ".gitignore").read_bytes() == own
    assert f"git       {out / '.gitignore'} kept as it was (not the demo's own)" in done.stdout
    # the user's rules stand: the cassettes are ignored, the user's .gitignore is not
    assert (
        git(repo, "status", "--porcelain", "--untracked-files=all") == "?? cassettes/.gitignore\n"
    )


@pytest.mark.parametrize("where", ["repository root", "folder with a file of the user's"])
def test_the_demo_hides_nothing_of_the_users(repo: Path, where: str) -> None:
    """A ``*`` in a folder that holds other files would hide them: none is written there."""
    if where == "repository root":
        out, other = repo, ".git"
    else:
        out, other = repo / "data", "notes.txt"
        out.mkdir()
        (out / other).write_text("the user's\n")
    done = run("demo", "--out", str(out), cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (out / ".gitignore").exists()
    assert f"git       no .gitignore written: {out} holds files the demo did not write" in (
        done.stdout
    )
    assert other in done.stdout.split("did not write", 1)[1].splitlines()[0]
    status = git(repo, "status", "--porcelain", "--untracked-files=all")
    assert "plain.yaml" in status  # git still shows what the demo wrote there


# -- serve and signals -----------------------------------------------------------------------------
def start_serve(*extra: str) -> tuple[subprocess.Popen[str], str]:
    """``python -m pytest_compaction serve --port 0``, once it answers on 127.0.0.1."""
    process = subprocess.Popen(
        [*MODULE, "serve", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()  # the command prints its base URL once listening
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), url
    answer = httpx.post(f"{url}/responses/compact", json={"model": "m", "input": "hi"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return process, url


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_exits_0_promptly_on_a_signal_with_a_request_in_flight(sig: signal.Signals) -> None:
    process, url = start_serve()
    failures: list[BaseException] = []

    def slow_request() -> None:
        try:  # answered in 30 s: the signal must not wait for it
            httpx.post(
                f"{url}/responses/compact",
                json={"model": "m", "input": "hi"},
                headers={FAULT_HEADER: "slow:30"},
                timeout=60,
            )
        except httpx.HTTPError as exc:  # the connection closed by the stop
            failures.append(exc)

    try:
        idle = httpx.Client(base_url=url, timeout=10)  # and a kept-alive idle connection
        assert idle.post("/responses/compact", json={"model": "m", "input": "x"}).is_success
        client = threading.Thread(target=slow_request, daemon=True)
        client.start()
        time.sleep(0.5)  # the slow request is being served
        sent = time.monotonic()
        process.send_signal(sig)
        code = process.wait(timeout=10)
        took = time.monotonic() - sent
        assert code == 0
        assert took < 5, f"{took:.1f} s to stop"
        _, stderr = process.communicate(timeout=10)
        assert "Traceback" not in stderr and stderr == "", stderr
        idle.close()
        client.join(timeout=10)
        assert not client.is_alive()
    finally:
        stop(process)


def test_an_interrupt_while_the_command_starts_ends_it_without_a_traceback() -> None:
    """SIGINT before ``serve`` listens: one line and status 130, as a shell reports it.

    Python reports each import as it completes (``-X importtime``); the signal is sent once
    ``schema._derive`` is imported, which only the first command module imports, that is
    while ``main()`` builds the parser.
    """
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", *MODULE[1:], "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    guard = threading.Timer(60, process.kill)  # a hung child fails the test, never hangs it
    guard.start()
    try:
        assert process.stderr is not None
        for line in process.stderr:  # "import time:  self |  cumulative |   module"
            if line.split("|")[-1].strip() == "pytest_compaction.schema._derive":
                break
        else:
            pytest.fail("the command ended before it imported its commands")
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=15)
        stdout, stderr = process.communicate(timeout=10)
        assert "Traceback" not in stderr, stderr
        if stdout.startswith("http://"):  # a machine fast enough to be listening already
            assert status == 0, stderr
        else:
            assert status == 130, stderr
            assert stderr.splitlines()[-1] == "pytest-compaction: interrupted"
    finally:
        guard.cancel()
        stop(process)
