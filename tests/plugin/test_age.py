"""Cassette age: ``compaction.recorded_at`` in the head, ``max_age`` and what a stale one does.

pytest runs in a subprocess (pytest-recording installed beside the plugin) against the embedded
server on 127.0.0.1, in its deterministic mode where the test compares bytes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from pytest_compaction.cassette._exchange import CassetteError
from pytest_compaction.cassette._file import load_cassette, parse_cassette
from pytest_compaction.server import CompactionServer

pytest.importorskip("pytest_recording", reason="pytest-recording is a dev dependency")

TESTS = """
import openai
import pytest

BASE = "{base}"


def ask(text):
    client = openai.OpenAI(base_url=BASE, max_retries=0)
    out = client.responses.compact(model="gpt-5.4", input=text)
    assert out.output[-1].type == "compaction"


@pytest.mark.compaction
def test_old():
    ask("old")


@pytest.mark.compaction
def test_fresh():
    ask("fresh")


@pytest.mark.compaction
def test_legacy():
    ask("legacy")


@pytest.mark.compaction(max_age="5000d")
def test_old_but_allowed():
    ask("allowed")
"""

DAY = 86_400


def _stamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _head(path: Path) -> dict[str, object]:
    head: dict[str, object] = yaml.safe_load(path.read_text())["compaction"]
    return head


@pytest.fixture
def server() -> CompactionServer:
    with CompactionServer(deterministic=True) as srv:
        yield srv  # type: ignore[misc]


def test_recorded_at_is_written_deterministically_and_max_age_warns_fails_or_rerecords(
    pytester: pytest.Pytester, server: CompactionServer, request: pytest.FixtureRequest
) -> None:
    pytester.makepyfile(test_api=TESTS.format(base=server.base_url))
    pytester._monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    folder = pytester.path / "cassettes" / "test_api"
    old_epoch = int(time.time()) - 40 * DAY
    pytester._monkeypatch.setenv("SOURCE_DATE_EPOCH", str(old_epoch))
    pytester.runpytest_subprocess("--compaction-record=once").assert_outcomes(passed=4)
    old = folder / "test_old.yaml"
    assert _head(old)["recorded_at"] == _stamp(old_epoch)
    assert f"recorded_at: '{_stamp(old_epoch)}'" in old.read_text()
    # Re-recorded at the same SOURCE_DATE_EPOCH from a new deterministic server on the same
    # port (its ids count from the start again): the same bytes.
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    port = server.port
    server.stop()
    again = CompactionServer(deterministic=True, port=port)
    again.start()
    request.addfinalizer(again.stop)
    pytester.runpytest_subprocess("--compaction-record=rewrite").assert_outcomes(passed=4)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    pytester._monkeypatch.delenv("SOURCE_DATE_EPOCH")

    # One cassette a day old, one without the key (written before it existed): both load.
    fresh, legacy = folder / "test_fresh.yaml", folder / "test_legacy.yaml"
    fresh.write_text(fresh.read_text().replace(_stamp(old_epoch), _stamp(int(time.time()) - DAY)))
    legacy.write_text(
        "".join(line for line in legacy.read_text().splitlines(True) if "recorded_at" not in line)
    )
    assert load_cassette(legacy).recorded_at is None
    fresh_bytes = fresh.read_bytes()

    # warn (the default action): every test passes, the stale one is named with its age.
    warned = pytester.runpytest_subprocess("--compaction-max-age=30d", "-W", "always")
    warned.assert_outcomes(passed=4)
    out = warned.stdout.str()
    assert "StaleCassetteWarning" in out
    assert "compaction cassette age" in out
    stale_line = (
        f"test_api.py::test_old: cassette {old} was recorded {_stamp(old_epoch)}, 40 days ago, "
        "older than max_age 30d; re-record it with pytest --compaction-record=rewrite "
        "test_api.py::test_old"
    )
    assert stale_line in out
    assert "test_fresh" not in out.split("compaction cassette age")[1]
    assert "test_old_but_allowed" not in out.split("compaction cassette age")[1]  # the marker's
    assert (
        "1 cassette(s) have no compaction.recorded_at (recorded before pytest-compaction wrote "
        "it, or by another recorder) and were not age-checked; re-record them to date them: "
        "cassettes/test_api/test_legacy.yaml"
    ) in out

    # fail, from the ini keys: the stale test fails, the others replay.
    pytester.makeini("[pytest]\ncompaction_max_age = 4w\ncompaction_max_age_action = fail\n")
    failed = pytester.runpytest_subprocess()
    failed.assert_outcomes(passed=3, failed=1)
    out = failed.stdout.str()
    assert "FAILED test_api.py::test_old - Failed: compaction: cassette" in out
    assert "older than max_age 4w" in out

    # rerecord cannot record under record mode none: it fails and says so.
    refused = pytester.runpytest_subprocess("--compaction-max-age-action=rerecord")
    refused.assert_outcomes(passed=3, failed=1)
    assert (
        "max_age_action 'rerecord' cannot re-record it under record mode 'none': re-record it "
        "with pytest --compaction-record=rewrite test_api.py::test_old"
    ) in refused.stdout.str()

    # rerecord under once: the stale cassette is replaced and dated now, the others untouched.
    start = datetime.now(UTC).replace(microsecond=0)
    rerecorded = pytester.runpytest_subprocess(
        "--compaction-max-age-action=rerecord", "--compaction-record=once"
    )
    rerecorded.assert_outcomes(passed=4)
    assert "re-recorded from this run's exchanges" in rerecorded.stdout.str()
    new_date = datetime.strptime(str(_head(old)["recorded_at"]), "%Y-%m-%dT%H:%M:%SZ")
    assert start <= new_date.replace(tzinfo=UTC) <= datetime.now(UTC)
    assert len(yaml.safe_load(old.read_text())["interactions"]) == 1
    assert fresh.read_bytes() == fresh_bytes
    assert "recorded_at" not in legacy.read_text()  # replayed, never rewritten
    # And now nothing is stale.
    pytester.runpytest_subprocess().assert_outcomes(passed=4)


@pytest.mark.parametrize(
    ("args", "ini", "named"),
    [
        (["--compaction-max-age=30 days"], "", "--compaction-max-age = '30 days'"),
        ([], "[pytest]\ncompaction_max_age = 0d\n", "compaction_max_age = '0d'"),
    ],
)
def test_a_bad_max_age_is_one_usage_error_naming_the_option_and_the_forms(
    pytester: pytest.Pytester, args: list[str], ini: str, named: str
) -> None:
    if ini:
        pytester.makeini(ini)
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert (
        f"{named} is not an age: use a positive whole number followed by s, m, h, d or w "
        "(30d, 12h, 2w)" in err
    )
    assert "Traceback" not in err


def test_a_bad_recorded_at_names_the_file_and_the_form() -> None:
    text = "compaction:\n  format: 1\n  recorded_at: last tuesday\ninteractions: []\nversion: 1\n"
    with pytest.raises(CassetteError) as info:
        parse_cassette(text, "cassettes/x.yaml")
    assert str(info.value) == (
        "cassettes/x.yaml: compaction.recorded_at 'last tuesday' is not a UTC time like "
        "2026-12-03T12:00:00Z"
    )
    # An unquoted timestamp (a hand edit) reads the same as the written quoted form.
    unquoted = parse_cassette(text.replace("last tuesday", "2026-01-02T03:04:05Z"))
    assert unquoted.recorded_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
