"""Switching from pytest-recording: its layout, its plugin installed beside this one, its modes.

Every test runs pytest in a subprocess with both plugins active (pytest-recording is a dev
dependency) against the embedded server on 127.0.0.1, and asserts on the files written and on
the output.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pytest_compaction.server import CompactionServer

pytest.importorskip("pytest_recording", reason="pytest-recording is a dev dependency")

TEST = """
import openai
import pytest

BASE = "{base}"


def client():
    return openai.OpenAI(base_url=BASE, max_retries=0)


@pytest.mark.compaction
def test_call(compaction_cassette):
    out = client().responses.compact(model="gpt-5.4", input="{text}")
    assert out.output[-1].type == "compaction"
"""


@pytest.fixture
def server() -> CompactionServer:
    with CompactionServer() as srv:
        yield srv  # type: ignore[misc]


def _interactions(path: Path) -> list[dict[str, object]]:
    doc = yaml.safe_load(path.read_text())
    out: list[dict[str, object]] = doc["interactions"]
    return out


def test_same_named_modules_in_two_folders_get_their_own_cassettes(
    pytester: pytest.Pytester, server: CompactionServer
) -> None:
    for folder in ("unit", "integration"):
        pytester.path.joinpath("tests", folder).mkdir(parents=True)
        pytester.path.joinpath("tests", folder, "__init__.py").write_text("")
        pytester.path.joinpath("tests", folder, "test_api.py").write_text(
            TEST.format(base=server.base_url, text=folder)
        )
    env = {"OPENAI_API_KEY": "test-key"}
    for name, value in env.items():
        pytester._monkeypatch.setenv(name, value)
    result = pytester.runpytest_subprocess("--compaction-record=once", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    for folder in ("unit", "integration"):
        path = pytester.path / "tests" / folder / "cassettes" / "test_api" / "test_call.yaml"
        assert folder in str(_interactions(path)[0]["request"])
    # Replay, with no key at all (the usual CI job): a placeholder is set for the client.
    pytester._monkeypatch.delenv("OPENAI_API_KEY")
    server.stop()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_shared_cassette_folder_names_both_tests_of_a_collision(
    pytester: pytest.Pytester, server: CompactionServer
) -> None:
    for folder in ("unit", "integration"):
        pytester.path.joinpath("tests", folder).mkdir(parents=True)
        pytester.path.joinpath("tests", folder, "__init__.py").write_text("")
        pytester.path.joinpath("tests", folder, "test_api.py").write_text(
            TEST.format(base=server.base_url, text=folder)
        )
    pytester.makeini("[pytest]\ncompaction_cassette_dir = cassettes\n")
    pytester._monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    result = pytester.runpytest_subprocess("--compaction-record=once", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)  # refused at set-up, before any traffic
    out = result.stdout.str()
    assert (
        "belongs to tests/unit/test_api.py::test_call and also to "
        "tests/integration/test_api.py::test_call" in out
    )
    assert not (pytester.path / "cassettes").exists()


@pytest.mark.parametrize("order", ["vcr-first", "compaction-first"])
def test_vcr_and_compaction_markers_together_validate_the_exchange(
    pytester: pytest.Pytester, server: CompactionServer, order: str
) -> None:
    marks = ["@pytest.mark.vcr", "@pytest.mark.compaction"]
    if order == "compaction-first":
        marks.reverse()
    body = TEST.format(base=server.base_url, text="both").replace(
        "@pytest.mark.compaction\n", "\n".join(marks) + "\n"
    )
    pytester.makepyfile(test_both=body)
    pytester._monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    result = pytester.runpytest_subprocess(
        "--compaction-record=once", "--record-mode=once", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, warnings=1)
    out = result.stdout.str()
    assert "is marked both vcr (pytest-recording) and compaction" in out
    assert "1 exchange(s) recorded, 0 replayed, 1 validated" in out
    path = pytester.path / "cassettes" / "test_both" / "test_call.yaml"
    assert len(_interactions(path)) == 1


def test_an_inner_vcrpy_cassette_taking_the_traffic_fails_the_test(
    pytester: pytest.Pytester, server: CompactionServer
) -> None:
    body = TEST.format(base=server.base_url, text="inner").replace(
        "    out = client()",
        '    import vcr\n    with vcr.use_cassette(str(__import__("pathlib")'
        '.Path(__file__).parent / "inner.yaml")):\n        out = client()',
    )
    pytester.makepyfile(test_inner=body)
    pytester._monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    result = pytester.runpytest_subprocess("--compaction-record=once", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)  # found when the cassette closes, at teardown
    out = result.stdout.str()
    assert "1 compaction exchange(s) went through another vcrpy cassette" in out
    assert "inner.yaml" in out
    assert "neither recorded here nor validated" in out


def test_block_network_in_addopts_lets_compaction_record_and_stays_for_others(
    pytester: pytest.Pytester, server: CompactionServer
) -> None:
    body = (
        TEST.format(base=server.base_url, text="blocked")
        + f'''

def test_other_tests_stay_blocked():
    import httpx
    with pytest.raises(RuntimeError, match="Network is disabled"):
        httpx.get("{server.url}/v1/models")
'''
    )
    pytester.makepyfile(test_block=body)
    pytester.makeini("[pytest]\naddopts = --block-network\n")
    pytester._monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    result = pytester.runpytest_subprocess("--compaction-record=once", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert (pytester.path / "cassettes" / "test_block" / "test_call.yaml").is_file()
    server.stop()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


CHAIN = """
import openai
import pytest

BASE = "{base}"


@pytest.mark.compaction
def test_chain(compaction_cassette):
    client = openai.OpenAI(base_url=BASE, max_retries=0)
    first = client.responses.create(model="gpt-5.4", input="hello", store=True)
    client.responses.create(model="gpt-5.4", input="again", previous_response_id=first.id)
    {extra}
"""


def test_rewrite_replaces_a_chain_where_all_would_grow_it(
    pytester: pytest.Pytester, server: CompactionServer
) -> None:
    base = server.base_url
    pytester.makepyfile(test_chain=CHAIN.format(base=base, extra="pass"))
    pytester._monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    path = pytester.path / "cassettes" / "test_chain" / "test_chain.yaml"
    pytester.runpytest_subprocess("--compaction-record=once").assert_outcomes(passed=1)
    assert len(_interactions(path)) == 2
    # ``all`` keeps the old second turn: its previous_response_id no longer matches.
    pytester.runpytest_subprocess("--compaction-record=all").assert_outcomes(passed=1)
    grown = len(_interactions(path))
    assert grown > 2
    extra = "compaction_cassette.assert_all_played()"
    pytester.makepyfile(test_chain=CHAIN.format(base=base, extra=extra))
    pytester.runpytest_subprocess("--compaction-record=rewrite").assert_outcomes(passed=1)
    assert len(_interactions(path)) == 2
    # A replay miss on a chain points at rewrite, not at new_episodes.
    server.stop()
    pytester.makepyfile(
        test_chain=CHAIN.format(base=base, extra="pass").replace("again", "changed")
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    assert "--compaction-record=rewrite" in result.stdout.str()
    assert "new_episodes" not in result.stdout.str()
    assert "direct cause" not in result.stdout.str()  # the failure is printed once


def test_volatile_request_headers_are_not_written_unless_kept(
    pytester: pytest.Pytester, server: CompactionServer
) -> None:
    pytester.makepyfile(test_lean=TEST.format(base=server.base_url, text="lean"))
    pytester._monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    pytester.runpytest_subprocess("--compaction-record=once").assert_outcomes(passed=1)
    path = pytester.path / "cassettes" / "test_lean" / "test_call.yaml"
    headers = {k.lower() for k in _interactions(path)[0]["request"]["headers"]}  # type: ignore[index]
    assert not any(h.startswith("x-stainless-") for h in headers)
    assert "user-agent" not in headers and "host" not in headers
    assert "content-length" not in headers
    assert "content-type" in headers
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture(scope='session')\ndef compaction_config():\n"
        "    return {'keep_volatile_headers': True}\n"
    )
    pytester.runpytest_subprocess("--compaction-record=rewrite").assert_outcomes(passed=1)
    headers = {k.lower() for k in _interactions(path)[0]["request"]["headers"]}  # type: ignore[index]
    assert "x-stainless-lang" in headers


def test_bad_marker_argument_and_unknown_option_fail_in_one_line_listing_accepted(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_typo="""
import pytest

@pytest.mark.compaction(recrd_mode="once")
def test_typo():
    pass
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "unknown compaction marker argument(s) recrd_mode; accepted: " in out
    assert "record_mode" in out.split("accepted: ", 1)[1]
    assert "Traceback" not in out and "_options.py" not in out
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture(scope='session')\ndef compaction_config():\n"
        "    return {'recrd_mode': 'once'}\n"
    )
    pytester.makepyfile(
        test_typo="import pytest\n\n@pytest.mark.compaction\ndef test_typo():\n    pass\n"
    )
    result = pytester.runpytest_subprocess()
    out = result.stdout.str()
    assert "compaction_config: unknown option(s) recrd_mode; accepted: " in out


def test_the_compaction_server_fixture_serves_the_quick_start(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_quick="""
import openai
import pytest

@pytest.mark.compaction
def test_quick(compaction_server):
    client = openai.OpenAI(base_url=compaction_server, max_retries=0)
    history = [{"role": "user", "content": "hello"}]
    out = client.responses.compact(model="gpt-5.4", input=history)
    assert out.output[-1].type == "compaction"
"""
    )
    pytester._monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester._monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    pytester.runpytest_subprocess("--compaction-record=once").assert_outcomes(passed=1)
    pytester._monkeypatch.delenv("OPENAI_API_KEY")
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
