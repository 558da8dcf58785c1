"""Cassettes collected as test items: ``pytest --compaction-check-cassettes``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from conftest import Upstream

from pytest_compaction.cassette._file import load_cassette, save_cassette
from pytest_compaction.replay._recorder import use_cassette

CHAIN = "test_openai_responses_compact_with_auto_previous_response_id_chain.yaml"
MESSAGES = "test_openai_responses_compact_messages.yaml"
# In-process runs: hypothesis' plugin would import (and assertion-rewrite) all of hypothesis.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


@pytest.fixture
def suite(pytester: pytest.Pytester, reference: Path, upstream: Upstream) -> Path:
    """A downstream project: one plain test, and cassettes of every layout outside testpaths."""
    recorded = reference / "recorded"
    if not (recorded / "pydantic-ai").is_dir():
        pytest.skip(f"{recorded} not found (only in a full checkout)")
    pytester.makepyfile(**{"tests/test_plain.py": "def test_plain():\n    pass\n"})
    cassettes = pytester.path / "cassettes"
    (cassettes / "stock").mkdir(parents=True)
    shutil.copy(recorded / "pydantic-ai" / CHAIN, cassettes / CHAIN)
    shutil.copy(recorded / "pydantic-ai-stock-vcrpy" / MESSAGES, cassettes / "stock" / MESSAGES)

    # one of ours, recorded through httpx, then broken by hand: the response loses 'usage'
    ours = cassettes / "ours" / "broken.yaml"
    with use_cassette(ours, record_mode="once"):
        body = {"model": "gpt-5", "input": [{"role": "user", "content": "hi"}]}
        httpx.post(f"{upstream.base_url}/responses/compact", json=body, timeout=10)
    data = load_cassette(ours)
    response = json.loads(data.exchanges[0].response_body)
    del response["usage"]
    data.exchanges[0].response_body = json.dumps(response).encode()
    save_cassette(ours, data)

    (cassettes / "unreadable.yaml").write_text("interactions: [unclosed\n")
    (cassettes / "settings.yaml").write_text("colour: blue\n")  # not a cassette: ignored
    return cassettes


def items(output: str) -> set[str]:
    return set(re.findall(r"(cassettes/\S+::\S+)", output))


def test_one_item_per_exchange_under_xdist(pytester: pytest.Pytester, suite: Path) -> None:
    pytest.importorskip("xdist")
    pytester.makeini("[pytest]\ntestpaths = tests\n")
    result = pytester.runpytest_subprocess(
        "-n", "2", "-v", *QUIET,
        "--compaction-check-cassettes", "--compaction-version", "2026-05-13",
    )  # fmt: skip
    # every POST /responses/compact and /responses exchange is an item, and each cassette of
    # two or more of them has a chain item (both chains here keep the rules)
    result.assert_outcomes(passed=15, failed=2)
    out = result.stdout.str()
    chain = load_cassette(suite / CHAIN).exchanges
    compact = [i for i, ex in enumerate(chain) if ex.path.endswith("/responses/compact")]
    assert len(compact) == 3 and len(chain) == 8
    assert items(out) == {
        *(f"cassettes/{CHAIN}::exchange[{i}]" for i in range(8)),
        *(f"cassettes/stock/{MESSAGES}::exchange[{i}]" for i in range(4)),
        f"cassettes/{CHAIN}::chain",
        f"cassettes/stock/{MESSAGES}::chain",
        "cassettes/ours/broken.yaml::exchange[0]",
        "cassettes/unreadable.yaml::load",
    }
    assert re.search(r"PASSED cassettes/stock/\S+::exchange\[2\]", out)
    assert re.search(r"FAILED cassettes/ours/broken.yaml::exchange\[0\]", out)
    assert "tests/test_plain.py::test_plain" in out
    # the failing item says what is wrong, where, and under which version
    assert (
        f"exchange 0 of cassette {suite / 'ours' / 'broken.yaml'} does not conform to schema "
        "version 2026-05-13_5162af98d314:"
    ) in out
    assert "  response: body: missing required property 'usage'" in out
    assert "unreadable.yaml: not valid YAML" in out
    assert "Traceback" not in out and "settings.yaml" not in out


def test_ini_key_named_paths_and_the_default_off(pytester: pytest.Pytester, suite: Path) -> None:
    pytester.makeini("[pytest]\ntestpaths = tests\ncompaction_check_cassettes = true\n")
    # paths on the command line: only the cassettes under them; versions default to the newest
    result = pytester.runpytest_inprocess(*QUIET, "cassettes/stock")
    result.assert_outcomes(failed=4, passed=1)  # the passing one: the cassette's chain item
    assert items(result.stdout.str()) == {
        f"cassettes/stock/{MESSAGES}::exchange[{i}]" for i in range(4)
    }
    result.stdout.fnmatch_lines(
        [
            "*does not conform to schema version 2026-11-26_openai-3.60.0:",
            "  response: usage.input_tokens_details: missing required property*cache_write_tokens*",
        ]
    )
    result = pytester.runpytest_inprocess(*QUIET, "tests")
    result.assert_outcomes(passed=1)

    pytester.makeini("[pytest]\ntestpaths = tests\n")
    result = pytester.runpytest_inprocess(*QUIET, "--collect-only", "-q")
    assert items(result.stdout.str()) == set()
    assert "tests/test_plain.py::test_plain" in result.stdout.str()
