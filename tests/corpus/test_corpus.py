"""The committed ``cassettes/`` corpus: re-recorded byte for byte, and judged through the plugin.

The corpus is recorded once per module run with the real command (a fresh server on a free
port for every cassette) and compared with the committed folder: a change to the server, the
writer or a scenario that was not re-recorded fails here. Then a pytester run replays every
cassette through the ``compaction`` marker and collects every exchange with
``--compaction-check-cassettes``, and each cassette's outcome is read from the run's JUnit
report and terminal summary: the ``keeps`` cassettes pass, each ``breaks`` cassette fails
naming its check (or, for a note check, passes with its note).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from pytest_compaction.cli import main
from pytest_compaction.demo._corpus import (
    MANIFEST,
    README,
    CorpusError,
    Entry,
    Verdict,
    build_corpus,
    compare_folders,
    corpus_entries,
    write_corpus,
)

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "cassettes"
RERECORD = "pytest-compaction corpus --out cassettes"
_SCRIPT = Path(sys.executable).with_name("pytest-compaction")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pytest_compaction"]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus as the command records it now, in a new folder."""
    out = tmp_path_factory.mktemp("corpus") / "cassettes"
    done = subprocess.run(
        [*COMMAND, "corpus", "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("OK: ")
    return out


def test_the_committed_corpus_is_what_the_command_records(fresh: Path) -> None:
    if not COMMITTED.is_dir() and not (ROOT / ".git").exists():
        pytest.skip(f"no corpus at {COMMITTED} (only in a full checkout)")
    found = compare_folders(fresh, COMMITTED)
    lines = [f"  differs: {p}" for p in found.differ]
    lines += [f"  missing from cassettes/: {p}" for p in found.missing]
    lines += [f"  extra in cassettes/: {p}" for p in found.extra]
    assert found.same, (
        "cassettes/ is not what the corpus command records now; re-record it with "
        f"`{RERECORD}` and review the diff:\n" + "\n".join(lines)
    )


def test_the_corpus_lists_and_digests_every_file(fresh: Path) -> None:
    files = sorted(p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file())
    listed = [line.split("  ", 1)[1] for line in (fresh / MANIFEST).read_text().splitlines()]
    assert listed == sorted(set(files) - {MANIFEST})
    check = subprocess.run(
        ["sha256sum", "--check", "--quiet", MANIFEST], cwd=fresh, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    readme = (fresh / README).read_text()
    cassettes = [f for f in files if f.endswith(".yaml")]
    entries = {e.path: e for e in corpus_entries()}
    assert set(cassettes) <= set(entries)
    rows = {
        line.split("` |", 1)[0].removeprefix("| `"): line
        for line in readme.splitlines()
        if line.startswith("| `") and "| not recorded: " not in line
    }
    assert len(rows) == len(cassettes)
    for name in cassettes:  # every cassette in its section's table: exchanges and verdict
        count = len(yaml.safe_load((fresh / name).read_text())["interactions"])
        row = rows[name.split("/", 1)[1]]
        assert row.endswith(f" | {count} | {entries[name].expect.text()} |"), row
        assert f"## {name.split('/', 1)[0]}/" in readme
    # every section there, and both sides of every check
    assert {c.split("/")[0] for c in cassettes} == {
        "scenarios",
        "dialects",
        "streams",
        "errors",
        "chains",
        "checks",
    }
    checks = {c.split("/")[1] for c in cassettes if c.startswith("checks/")}
    assert len(checks) == 9
    for check_name in checks:
        assert {f"checks/{check_name}/keeps.yaml", f"checks/{check_name}/breaks.yaml"} <= set(
            cassettes
        )
    from pytest_compaction.contract._dialects import DIALECTS
    from pytest_compaction.demo._demo import SCENARIOS

    assert {f"scenarios/{s.name}.yaml" for s in SCENARIOS} <= set(cassettes)
    recorded_dialects = {c.split("/")[1] for c in cassettes if c.startswith("dialects/")}
    skipped = {line for line in readme.splitlines() if "not recorded:" in line}
    for dialect in DIALECTS:  # each dialect recorded, or its skip and reason in the README
        assert dialect in recorded_dialects or any(f"`{dialect}/" in s for s in skipped)


def test_the_check_command_agrees_with_every_listed_verdict(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    status = main(["check", str(fresh), "--format", "json"])
    payload = json.loads(capsys.readouterr().out)
    assert status == 1  # the breaks cassettes fail
    entries = {e.path: e for e in corpus_entries()}
    failing = set()
    for cassette in payload["cassettes"]:
        relative = Path(cassette["path"]).resolve().relative_to(fresh.resolve()).as_posix()
        expect = entries[relative].expect
        chain = {v["name"] for v in cassette["chain"]}
        keywords = {
            v["keyword"]
            for ex in cassette["exchanges"]
            for side in ("request", "response")
            for v in ((ex["baseline"].get(side) or {}).get("violations") or [])
        }
        assert cassette["passed"] is expect.passes, relative
        if not cassette["passed"]:
            failing.add(relative)
            named = chain | {"rejected-parameters" for k in keywords if k == "unknown_parameter"}
            assert named == set(expect.fails), relative
        notes = [n for ex in cassette["exchanges"] for n in ex["baseline"]["notes"]]
        noted = {check for check, words in NOTED.items() if any(words in n for n in notes)}
        assert noted == set(expect.notes) and len(notes) == len(expect.notes), (relative, notes)
    assert len(payload["cassettes"]) == sum(1 for _ in fresh.rglob("*.yaml"))
    assert failing == {p for p, e in entries.items() if e.expect.fails}
    assert len(failing) == 7


# -- the command: --check, stale files, bad input --------------------------------------------------
def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "corpus", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def newer_user_version(folder: Path) -> Path:
    """A user schema folder holding a version newer than every bundled one."""
    import json

    from pytest_compaction.demo._corpus import corpus_version
    from pytest_compaction.schema._versions import schemas_root

    mine = folder / "2099-01-01_mine"
    shutil.copytree(schemas_root() / corpus_version(), mine)
    manifest = json.loads((mine / "manifest.json").read_text())
    (mine / "manifest.json").write_text(json.dumps({**manifest, "name": mine.name}))
    return folder


def test_check_lists_what_differs_is_missing_or_extra(fresh: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cassettes"
    shutil.copytree(fresh, copy)
    (copy / "scenarios" / "plain.yaml").write_text("edited\n")
    (copy / "errors" / "overloaded-503.yaml").unlink()
    (copy / "checks" / "mine.yaml").write_text("a user's file\n")
    piped = copy / "chains" / "compaction-item-only.yaml"  # a named pipe is compared unread
    piped.unlink()
    os.mkfifo(piped)
    # A newer schema version on COMPACTION_SCHEMA_PATH changes nothing: the corpus is pinned
    # to the newest bundled one.
    user = newer_user_version(tmp_path / "schemas")
    done = run("--out", str(copy), "--check", COMPACTION_SCHEMA_PATH=str(user))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert f"differs   {copy / 'scenarios' / 'plain.yaml'}" in lines
    assert f"missing   {copy / 'errors' / 'overloaded-503.yaml'}" in lines
    assert f"extra     {copy / 'checks' / 'mine.yaml'}" in lines
    assert f"differs   {piped}" in lines
    # README.md and SHA256SUMS agree with the fresh corpus: only the four files are listed
    assert len(lines) == 5, lines
    assert lines[-1].startswith("DIFFERENT: ")
    assert (
        "2 differ, 1 missing, 1 extra. Re-record with: pytest-compaction corpus --out"
        in (lines[-1])
    )
    assert (copy / "scenarios" / "plain.yaml").read_text() == "edited\n"  # --check writes nothing
    assert not (copy / "errors" / "overloaded-503.yaml").exists()

    # the same folder re-recorded: the two cassettes back, the user's file kept
    done = run("--out", str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    unchanged = sum(1 for p in fresh.rglob("*") if p.is_file()) - 3
    assert done.stdout.splitlines()[-1].endswith(
        f"3 written, {unchanged} unchanged, 0 removed in {copy}"
    )
    assert compare_folders(fresh, copy).extra == ["checks/mine.yaml"]
    assert compare_folders(fresh, copy).differ == compare_folders(fresh, copy).missing == []


def test_bad_input_is_one_line_and_status_2(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for args, words in (
        (("--out", str(a_file)), f"--out {a_file}: exists and is not a directory"),
        (("--out", str(tmp_path / "none"), "--check"), "no such directory to check"),
    ):
        done = run(*args)
        assert done.returncode == 2, args
        assert done.stdout == ""
        assert done.stderr.startswith("pytest-compaction corpus: ") and words in done.stderr
        assert "Traceback" not in done.stderr
    below_a_file = a_file / "cassettes"  # cannot be created: checked before recording
    done = run("--out", str(below_a_file))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"pytest-compaction corpus: --out {below_a_file}: cannot write")
    assert "Not a directory" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""  # nothing was recorded


def test_a_file_no_run_wrote_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "project"
    out.mkdir()
    (out / "README.md").write_text("my project\n")  # corpus --out . in a repository
    files = {"README.md": b"generated\n", "a.yaml": b"a\n"}
    with pytest.raises(CorpusError, match=r"1 file in the way .*: README\.md; move them"):
        write_corpus(out, {**files, MANIFEST: _manifest(files)})
    assert (out / "README.md").read_text() == "my project\n"
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]  # nothing was written
    # once a run's manifest lists it, the file is the corpus's to replace
    (out / "README.md").unlink()
    write_corpus(out, {**files, MANIFEST: _manifest(files)})
    again = {"README.md": b"generated again\n", "a.yaml": b"a\n"}
    assert "README.md" in write_corpus(out, {**again, MANIFEST: _manifest(again)}).written
    # through the command: one line, status 2, the user's file kept
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("mine\n")
    done = run("--out", str(other))
    assert done.returncode == 2 and "README.md; move them" in done.stderr, done.stderr
    assert (other / "README.md").read_text() == "mine\n" and "Traceback" not in done.stderr
    done = run("--out", "")
    assert done.returncode == 2 and "--out is empty" in done.stderr


def test_a_stale_file_goes_only_when_it_is_the_one_written(tmp_path: Path) -> None:
    out = tmp_path / "cassettes"
    (out / "mine").mkdir(parents=True)
    (out / "mine" / "own.yaml").write_text("a user's cassette\n")
    first = {"a/old.yaml": b"old\n", "a/edited.yaml": b"v1\n", "b/gone.yaml": b"gone\n"}
    done = write_corpus(out, {**first, MANIFEST: _manifest(first)})
    assert sorted(done.written) == sorted([*first, MANIFEST])
    (out / "a" / "edited.yaml").write_text("edited by hand\n")

    second = {"a/new.yaml": b"new\n"}
    done = write_corpus(out, {**second, MANIFEST: _manifest(second)})
    assert done.removed == ["a/old.yaml", "b/gone.yaml"]
    assert done.kept == ["a/edited.yaml"]  # changed since written: not removed
    assert (out / "a" / "edited.yaml").read_text() == "edited by hand\n"
    assert (out / "mine" / "own.yaml").exists()  # never listed: never touched
    assert not (out / "b").exists()  # emptied by the removal
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        MANIFEST,
        "a/edited.yaml",
        "a/new.yaml",
        "mine/own.yaml",
    ]
    again = write_corpus(out, {**second, MANIFEST: _manifest(second)})
    assert again.written == [] and again.unchanged == ["a/new.yaml", MANIFEST]
    assert not list(out.rglob(".*.tmp"))  # atomic writes leave no temp file


def _manifest(files: dict[str, bytes]) -> bytes:
    from pytest_compaction.demo._corpus import manifest

    return manifest(files).encode()


def test_a_manifest_naming_a_file_outside_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("x")
    out = tmp_path / "cassettes"
    out.mkdir()
    import hashlib

    digest = hashlib.sha256(b"x").hexdigest()
    (out / "link").symlink_to(tmp_path)
    lines = [f"{digest}  ../outside.yaml", f"{digest}  {outside}", f"{digest}  link/outside.yaml"]
    (out / MANIFEST).write_text("\n".join(lines) + "\n")
    done = write_corpus(out, {"a.yaml": b"a", MANIFEST: _manifest({"a.yaml": b"a"})})
    assert done.removed == [] and done.kept == []
    assert outside.read_text() == "x"


def test_a_recording_that_does_not_show_its_verdict_is_a_problem(tmp_path: Path) -> None:
    (keeps,) = [e for e in corpus_entries() if e.path == "checks/compaction-id/keeps.yaml"]
    claimed = Entry("checks/wrong.yaml", "claims to fail", keeps.steps, Verdict(("schema",)))
    optional = Entry(
        "dialects/x/y.yaml", "optional", keeps.steps, Verdict(("schema",)), optional=True
    )
    run = build_corpus([claimed, optional])
    assert not run.ok
    assert run.problems == [
        "checks/wrong.yaml: CorpusError: expected verdict 'FAIL: schema', got 'pass'"
    ]
    assert [(e.path, why) for e, why in run.skipped] == [
        ("dialects/x/y.yaml", "CorpusError: expected verdict 'FAIL: schema', got 'pass'")
    ]
    assert "`x/y.yaml` | not recorded: CorpusError: expected verdict" in run.files[README].decode()
    assert "checks/wrong.yaml" not in run.files


def test_a_failed_recording_exits_1_and_leaves_the_folder_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pytest_compaction.demo._corpus as corpus

    real = corpus.corpus_entries()
    (plain,) = [e for e in real if e.path == "scenarios/plain.yaml"]
    wrong = Entry("checks/wrong.yaml", "claims to fail", plain.steps, Verdict(("schema",)))
    out = tmp_path / "cassettes"
    out.mkdir()
    (out / "scenarios").mkdir()
    (out / "scenarios" / "plain.yaml").write_text("as it was\n")
    # the corpus with one entry whose recording does not show what it claims
    monkeypatch.setattr(corpus, "corpus_entries", lambda: [plain, wrong])
    assert main(["corpus", "--out", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "problem   checks/wrong.yaml: CorpusError: expected verdict 'FAIL: schema', got 'pass'",
        f"FAILED: 1 cassette not recorded as expected; {out} left as it was",
    ]
    assert sorted(p.name for p in out.rglob("*")) == ["plain.yaml", "scenarios"]
    assert (out / "scenarios" / "plain.yaml").read_text() == "as it was\n"


# -- through the plugin: every cassette replayed and every exchange collected ----------------------
REPLAY_MODULE = '''
import pathlib

import httpx
import pytest
import yaml

CORPUS = pathlib.Path(__file__).parent / "cassettes"
FILES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.yaml"))


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, id=n, marks=pytest.mark.compaction(cassette=str(CORPUS / n))) for n in FILES],
)
def test_replay(name, compaction_cassette):
    """Send every recorded request again: the plugin answers each from the cassette."""
    doc = yaml.safe_load((CORPUS / name).read_text(encoding="utf-8"))
    with httpx.Client(timeout=5) as client:
        for item in doc["interactions"]:
            request = item["request"]
            client.request(
                request["method"],
                request["uri"],
                content=(request["body"] or "").encode("utf-8"),
                headers={"content-type": "application/json"},
            )
    compaction_cassette.assert_all_played()
'''

# What each breaks cassette's failure says, by check.
NAMED = {
    "compact-output": "rule 1 (compact-output)",
    "stateless-chain": "rule 2 (stateless-chain)",
    "stateful-chain": "rule 3 (stateful-chain)",
    "encrypted-content": "rule 4 (encrypted-content)",
    "compaction-id": "rule 5 (compaction-id)",
    "unstored-previous": "rule 6 (unstored-previous)",
    "rejected-parameters": "the compact endpoint rejects this /responses parameter",
}
NOTED = {
    "compaction-count": "compaction item(s)",
    "threshold-without-compaction": "compact_threshold is 1000",
    "completed-output": "2 item(s) of the response.output_item.done events",
}


def _outcomes(report: Path) -> dict[str, tuple[str, str]]:
    """JUnit testcases: node id -> (passed|failure|error|skipped, message and text)."""
    found = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        outcome, text = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
                text += (child.get("message") or "") + "\n" + (child.text or "")
        key = f"{classname}::{name}"
        if key in found and found[key][0] != "passed":  # teardown error beside a passed call
            outcome, text = found[key][0], found[key][1] + text
        found[key] = (outcome, text)
    return found


def _notes(stdout: str) -> dict[str, list[str]]:
    """The plugin's terminal summary: node id -> its note lines."""
    notes: dict[str, list[str]] = {}
    current: str | None = None
    for line in stdout.splitlines():
        if line.startswith("test_replay_corpus.py::") and line.endswith("):"):
            current = line.split(" (", 1)[0]
            notes[current] = []
        elif current is not None and line.startswith("  note: "):
            notes[current].append(line)
        elif not line.startswith("  "):
            current = None
    return notes


def test_the_plugin_replays_and_checks_every_cassette(
    fresh: Path, pytester: pytest.Pytester
) -> None:
    shutil.copytree(fresh, pytester.path / "cassettes")
    pytester.makepyfile(test_replay_corpus=REPLAY_MODULE)
    result = pytester.runpytest_subprocess(
        "--compaction-check-cassettes", "-p", "no:cacheprovider", "--junitxml=report.xml"
    )
    cases = _outcomes(pytester.path / "report.xml")
    entries = {e.path: e for e in corpus_entries()}
    cassettes = sorted(
        p.relative_to(fresh).as_posix() for p in fresh.rglob("*.yaml") if p.is_file()
    )
    exchanges = {c: len(yaml.safe_load((fresh / c).read_text())["interactions"]) for c in cassettes}

    replays = {k: v for k, v in cases.items() if k.startswith("test_replay_corpus::")}
    chains = {k: v for k, v in cases.items() if k.endswith("::chain")}
    items = {
        k: v
        for k, v in cases.items()
        if not k.startswith("test_replay_corpus::") and k not in chains
    }
    assert len(replays) == len(cassettes)
    assert len(items) == sum(exchanges.values())  # every exchange is a compaction one
    # a chain item for each cassette of two or more exchanges
    assert len(chains) == sum(1 for n in exchanges.values() if n > 1)
    skipped = [e for e in entries.values() if e.optional and e.path not in exchanges]
    assert len(cassettes) == len(entries) - len(skipped)

    notes = _notes(result.stdout.str())
    for cassette in cassettes:
        expect = entries[cassette].expect
        outcome, text = replays[f"test_replay_corpus::test_replay[{cassette}]"]
        nodeid = f"test_replay_corpus.py::test_replay[{cassette}]"
        if not expect.fails:
            assert outcome == "passed", (cassette, text)
        else:
            assert outcome in ("failure", "error"), cassette
            for check in expect.fails:
                assert NAMED[check] in text, (cassette, text)
            assert f"cassette {pytester.path / 'cassettes' / cassette}" in text
        for check in expect.notes:
            assert any(NOTED[check] in line for line in notes.get(nodeid, [])), cassette
        if not expect.notes and expect.passes:
            assert not any(n.startswith("  note: ") for n in notes.get(nodeid, [])), cassette

    # the collected exchanges: only a violation inside an exchange fails its item
    failed_items = {k: v for k, v in items.items() if v[0] != "passed"}
    ((key, (outcome, text)),) = failed_items.items()
    assert outcome == "failure" and key.endswith("::exchange[0]"), key
    where = pytester.path / "cassettes" / "checks" / "rejected-parameters" / "breaks.yaml"
    assert f"exchange 0 of cassette {where} does not conform" in text
    for name in ("include", "store", "tools"):
        assert f"request: {name}: the compact endpoint rejects this /responses parameter" in text

    # the chain items: the six chaining breaks fail theirs, naming the rule; the rest pass
    failed_chains = {k: v for k, v in chains.items() if v[0] != "passed"}
    chain_breaks = {
        c: check
        for c in cassettes
        for check in entries[c].expect.fails
        if NAMED.get(check, "").startswith("rule ")
    }
    assert len(chain_breaks) == 6
    assert set(failed_chains) == {
        "cassettes." + c.replace("/", ".") + "::chain" for c in chain_breaks
    }, sorted(failed_chains)
    for c, check in chain_breaks.items():
        outcome, text = failed_chains["cassettes." + c.replace("/", ".") + "::chain"]
        assert outcome == "failure" and NAMED[check] in text, (c, text)

    # the counts the run reports: one exchange item, six chain items and seven replays fail
    # (the six chain breaks when their cassette closes), every other item and replay passes
    breaks = [c for c in cassettes if entries[c].expect.fails]
    assert len(breaks) == 7 and all(c.endswith("/breaks.yaml") for c in breaks)
    assert sum(1 for v in replays.values() if v[0] != "passed") == len(breaks)
    outcomes = result.parseoutcomes()
    failing = 1 + 6 + 7
    assert outcomes.get("failed", 0) + outcomes.get("errors", outcomes.get("error", 0)) == failing
    total = len(items) + len(chains) + len(replays)
    # a test failed at teardown is counted as passed too (its call passed)
    assert outcomes["passed"] in (total - failing, total - failing + outcomes.get("errors", 0))


def test_the_litellm_part_never_overwrites_a_folder_it_did_not_write(tmp_path: Path) -> None:
    from pytest_compaction.demo._corpus_litellm import HEADLINE, write_litellm

    folder = tmp_path / "litellm-proxy"
    folder.mkdir()
    (folder / "README.md").write_text("notes of mine\n")
    (folder / "errors.yaml").write_text("my own cassette\n")
    with pytest.raises(CorpusError, match=r"README\.md, errors\.yaml would be replaced"):
        write_litellm(folder, {"README.md": HEADLINE.encode(), "errors.yaml": b"new\n"})
    assert (folder / "errors.yaml").read_text() == "my own cassette\n"
    # the command's own folder (its README opens with the headline) is rewritten
    (folder / "README.md").write_text(HEADLINE + "\n")
    written = write_litellm(folder, {"README.md": HEADLINE.encode(), "errors.yaml": b"new\n"})
    assert written == ["README.md", "errors.yaml"]
