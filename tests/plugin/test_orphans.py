"""``--compaction-orphans``: cassette files no collected test uses, judged only where collected.

pytest runs in a subprocess with pytest-recording installed beside the plugin, over two test
folders whose cassettes sit in pytest-recording's layout (``<module dir>/cassettes/<module>/``).
The tests make no HTTP call: which files they use is what is judged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytest_recording", reason="pytest-recording is a dev dependency")

EMPTY = "interactions: []\nversion: 1\n"

ONE = """
import pytest


@pytest.mark.compaction
def test_used():
    pass


@pytest.mark.compaction("shared/named")
def test_named():
    pass


@pytest.mark.vcr
def test_vcr():
    pass


@pytest.mark.vcr("extra.yaml")
def test_vcr_extra():
    pass


@pytest.mark.parametrize("compaction_exchanges", ["given"], indirect=True)
def test_exchanges(compaction_exchanges):
    assert compaction_exchanges == []
"""

TWO = """
def test_plain():
    pass
"""


def _layout(root: Path) -> dict[str, Path]:
    files = {
        "used": "tests/a/cassettes/test_one/test_used.yaml",
        "named": "tests/a/cassettes/test_one/shared/named.yaml",
        "vcr": "tests/a/cassettes/test_one/test_vcr.yaml",
        "extra": "tests/a/cassettes/test_one/extra.yaml",
        "given": "tests/a/cassettes/test_one/given.yaml",
        "old": "tests/a/cassettes/test_one/test_removed.yaml",
        "nested": "tests/a/cassettes/test_one/sub/nested.json",
        "two": "tests/b/cassettes/test_two/test_gone.yml",
        "other": "tests/c/cassettes/test_three/never_collected.yaml",
    }
    out = {}
    for name, rel in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(EMPTY)
        out[name] = path
    (root / "tests/a/cassettes/test_one/notes.txt").write_text("not a cassette")
    (root / "tests/a/test_one.py").write_text(ONE)
    (root / "tests/b/test_two.py").write_text(TWO)
    (root / "tests/c").mkdir(exist_ok=True)
    return out


def _orphans(out: str) -> list[str]:
    return [line.strip()[len("orphan: ") :] for line in out.splitlines() if "  orphan: " in line]


def test_orphans_are_the_unused_cassettes_of_the_collected_modules_only(
    pytester: pytest.Pytester,
) -> None:
    files = _layout(pytester.path)
    every = sorted(str(p) for p in files.values())

    whole = pytester.runpytest_subprocess("--compaction-orphans", "tests/a", "tests/b")
    whole.assert_outcomes(passed=6)
    assert whole.ret == pytest.ExitCode.OK
    expected = [
        "tests/a/cassettes/test_one/sub/nested.json",
        "tests/a/cassettes/test_one/test_removed.yaml",
        "tests/b/cassettes/test_two/test_gone.yml",
    ]
    assert _orphans(whole.stdout.str()) == expected
    assert (
        "3 cassette file(s) that no collected test uses, in the 2 cassette folder(s) of the "
        "collected modules (nothing deleted)"
    ) in whole.stdout.str()

    # -k deselects, but a deselected test still uses its cassette; tests/c was not collected.
    picked = pytester.runpytest_subprocess("tests", "-k", "test_used", "--compaction-orphans")
    picked.assert_outcomes(passed=1, deselected=5)
    assert _orphans(picked.stdout.str()) == expected

    # A path selection judges only its modules; a module named with :: is not judged at all.
    one = pytester.runpytest_subprocess("tests/a", "--compaction-orphans")
    assert _orphans(one.stdout.str()) == expected[:2]
    node = pytester.runpytest_subprocess(
        "tests/a/test_one.py::test_used", "tests/b", "--compaction-orphans"
    )
    assert _orphans(node.stdout.str()) == expected[2:]

    # The fail variant fails a run whose tests all passed; under xdist the controller reports
    # once.
    failing = pytester.runpytest_subprocess("--compaction-orphans-fail", "tests", "-n", "2")
    failing.assert_outcomes(passed=6)
    assert failing.ret == pytest.ExitCode.TESTS_FAILED
    assert _orphans(failing.stdout.str()) == expected
    assert failing.stdout.str().count(" compaction orphans ") == 1

    # Without the option: no report. Nothing was ever deleted.
    plain = pytester.runpytest_subprocess("tests")
    assert "compaction orphans" not in plain.stdout.str()
    assert sorted(str(p) for p in files.values() if p.exists()) == every


def test_orphans_under_one_configured_cassette_dir(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncompaction_cassette_dir = cassettes\n")
    pytester.path.joinpath("tests").mkdir()
    pytester.path.joinpath("tests/test_api.py").write_text(
        "import pytest\n\n\n@pytest.mark.compaction\ndef test_kept():\n    pass\n"
    )
    for rel in ("cassettes/test_api/test_kept.yaml", "cassettes/test_api/test_dropped.yaml"):
        pytester.path.joinpath(rel).parent.mkdir(parents=True, exist_ok=True)
        pytester.path.joinpath(rel).write_text(EMPTY)
    result = pytester.runpytest_subprocess("--compaction-orphans")
    result.assert_outcomes(passed=1)
    assert _orphans(result.stdout.str()) == ["cassettes/test_api/test_dropped.yaml"]
