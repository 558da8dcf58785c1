"""Recording and replaying through the pytest plugin, driven in a subprocess against 127.0.0.1."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import Upstream

from pytest_compaction.cassette._file import load_cassette

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

KEY = "sk-test-" + "q7" * 20

CLIENTS = """
import asyncio
import httpx
import httpx2
import openai
import pytest

BASE = "{base}"
ORIGIN = "{origin}"
KEY = "{key}"
HISTORY = [
    {{"role": "user", "content": "hello"}},
    {{"role": "assistant", "content": "hi there"}},
    {{"role": "user", "content": "please summarize"}},
]
BODY = {{"model": "gpt-5.4", "input": HISTORY}}


def sdk():
    return openai.OpenAI(base_url=BASE, api_key=KEY, max_retries=0)


@pytest.mark.compaction
def test_openai_sync(compaction_cassette):
    out = sdk().responses.compact(model="gpt-5.4", input=HISTORY)
    assert out.output[-1].type == "compaction"
    assert compaction_cassette.validated == 1
    assert len(compaction_cassette.exchanges) == 1


@pytest.mark.compaction
def test_openai_async():
    async def go():
        async with openai.AsyncOpenAI(base_url=BASE, api_key=KEY, max_retries=0) as client:
            return await client.responses.compact(model="gpt-5.4", input=HISTORY)

    assert asyncio.run(go()).output[-1].type == "compaction"


@pytest.mark.compaction
def test_openai_raw_response():
    raw = sdk().responses.with_raw_response.compact(model="gpt-5.4", input=HISTORY)
    assert raw.status_code == 200
    assert int(raw.headers["content-length"]) == len(raw.content)
    assert raw.parse().output[-1].type == "compaction"


@pytest.mark.compaction(dialect="openai")  # plain bodies: /api/llm alone would mean TrueFoundry
def test_httpx_sync_under_other_prefixes(compaction_cassette):
    for prefix in ("/openai/v1", "/api/llm"):
        r = httpx.post(ORIGIN + prefix + "/responses/compact", json=BODY,
                       headers={{"api-key": "0123456789abcdef0123456789abcdef"}})
        assert r.json()["object"] == "response.compaction"
    assert compaction_cassette.validated == 2


@pytest.mark.compaction
def test_httpx_async():
    async def go():
        async with httpx.AsyncClient() as client:
            return await client.post(BASE + "/responses/compact", json=BODY)

    assert asyncio.run(go()).json()["object"] == "response.compaction"


@pytest.mark.compaction
def test_httpx2_sync_and_async():
    auth = {{"authorization": "Bearer " + KEY}}
    r = httpx2.post(BASE + "/responses/compact", json=BODY, headers=auth)
    assert r.json()["object"] == "response.compaction"

    async def go():
        async with httpx2.AsyncClient() as client:
            return await client.post(BASE + "/responses/compact", json=BODY)

    assert asyncio.run(go()).json()["object"] == "response.compaction"


@pytest.mark.compaction
def test_other_traffic_is_replayed_not_validated(compaction_cassette):
    assert httpx.get(BASE + "/models").json()["object"] == "other"
    assert compaction_cassette.validated == 0
    assert compaction_cassette.recorded + compaction_cassette.replayed == 1
"""


def _clients(pytester: pytest.Pytester, upstream: Upstream) -> None:
    pytester.makepyfile(
        test_clients=CLIENTS.format(base=upstream.base_url, origin=upstream.origin, key=KEY)
    )


def test_every_client_records_then_replays_offline(
    pytester: pytest.Pytester, upstream: Upstream
) -> None:
    _clients(pytester, upstream)
    recorded = pytester.runpytest_subprocess("--compaction-record=once")
    recorded.assert_outcomes(passed=7)
    sent = len(upstream.requests)
    assert sent == 9
    folder = pytester.path / "cassettes" / "test_clients"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        f"{n}.yaml"
        for n in (
            "test_openai_sync",
            "test_openai_async",
            "test_openai_raw_response",
            "test_httpx_sync_under_other_prefixes",
            "test_httpx_async",
            "test_httpx2_sync_and_async",
            "test_other_traffic_is_replayed_not_validated",
        )
    )
    for path in folder.iterdir():
        raw = path.read_bytes()
        assert KEY.encode() not in raw and b"0123456789abcdef0123456789abcdef" not in raw
        assert b"org-secretorg" not in raw
        doc = yaml.safe_load(raw)
        assert doc["version"] == 1
        assert doc["compaction"]["format"] == 1
        assert doc["compaction"]["schema_version"].startswith("20")
    recorded.stdout.fnmatch_lines(
        [
            "*compaction*",
            "7 test(s) with cassettes: 9 exchange(s) recorded, 0 replayed, 8 validated*",
        ]
    )

    upstream.close()  # replay must not need it
    replayed = pytester.runpytest_subprocess()
    replayed.assert_outcomes(passed=7)
    replayed.stdout.fnmatch_lines(
        [
            "7 test(s) with cassettes: 0 exchange(s) recorded, 9 replayed, 8 validated; "
            "0 violation(s)*"
        ]
    )
    assert len(upstream.requests) == sent


def test_xdist_records_and_replays_with_a_complete_summary(
    pytester: pytest.Pytester, upstream: Upstream
) -> None:
    pytest.importorskip("xdist")
    _clients(pytester, upstream)
    recorded = pytester.runpytest_subprocess("-n", "2", "--compaction-record=once")
    recorded.assert_outcomes(passed=7)
    recorded.stdout.fnmatch_lines(["7 test(s) with cassettes: 9 exchange(s) recorded*"])
    upstream.close()
    replayed = pytester.runpytest_subprocess("-n", "2")
    replayed.assert_outcomes(passed=7)
    replayed.stdout.fnmatch_lines(
        ["7 test(s) with cassettes: 0 exchange(s) recorded, 9 replayed, 8 validated*"]
    )


ONE = """
import httpx
import pytest

BASE = "{base}"


@pytest.mark.compaction
def test_compact():
    items = [{{"role": "user", "content": "{content}"}}, {{"role": "user", "content": "two"}}]
    body = {{"model": "gpt-5.4", "input": items}}
    assert httpx.post(BASE + "/responses/compact", json=body).status_code == 200


@pytest.mark.compaction
def test_never_recorded():
    httpx.post(BASE + "/responses/compact", json={{"model": "gpt-5.4"}})
"""


def test_a_cassette_edited_to_break_the_schema_fails_replay_naming_the_pointer(
    pytester: pytest.Pytester, upstream: Upstream
) -> None:
    pytester.makepyfile(test_one=ONE.format(base=upstream.base_url, content="one"))
    pytester.runpytest_subprocess("--compaction-record=once", "-k", "test_compact").assert_outcomes(
        passed=1
    )
    path = pytester.path / "cassettes" / "test_one" / "test_compact.yaml"
    text = path.read_text()
    assert '"object": "response.compaction",' in text
    path.write_text(text.replace('"object": "response.compaction",', '"object": "response",'))
    upstream.close()
    result = pytester.runpytest_subprocess("-k", "test_compact")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert f"exchange 0 of cassette {path} does not conform to schema version" in out
    assert "response (status 200) /object:" in out
    result.stdout.fnmatch_lines(["*violation: exchange 0 response (status 200) /object:*"])


def test_an_invalid_server_response_fails_at_record_time(
    pytester: pytest.Pytester, upstream: Upstream
) -> None:
    pytester.makepyfile(
        test_bad=f'''
import httpx
import pytest


@pytest.mark.compaction
def test_compact():
    r = httpx.post("{upstream.base_url}/responses/compact",
                   json={{"model": "gpt-5.4", "input": []}}, headers={{"x-test-invalid": "1"}})
    assert r.status_code == 200
'''
    )
    result = pytester.runpytest_subprocess("--compaction-record=once")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*exchange 0 of cassette*test_compact.yaml does not conform*(recorded):*",
            "*usage*",
            "*The cassette was not written.*",
        ]
    )
    assert not (pytester.path / "cassettes" / "test_bad" / "test_compact.yaml").exists()


def test_unmatched_and_unrecorded_requests_fail_with_a_diff_and_the_command(
    pytester: pytest.Pytester, upstream: Upstream
) -> None:
    pytester.makepyfile(test_one=ONE.format(base=upstream.base_url, content="one"))
    pytester.runpytest_subprocess("--compaction-record=once", "-k", "test_compact").assert_outcomes(
        passed=1
    )
    upstream.close()
    pytester.makepyfile(test_one=ONE.format(base=upstream.base_url, content="changed"))
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=2)
    path = pytester.path / "cassettes" / "test_one"
    result.stdout.fnmatch_lines(
        [
            "*cannot be replayed (record mode 'none').",
            f"Cassette: {path / 'test_compact.yaml'} (1 exchange, 0 replayed)",
            "Closest recorded request: exchange 0, POST *",
            "  body (recorded != this request):",
            "    /input/0/content: 'one' != 'changed'",
            "To record the chain again, whole: "
            "pytest --compaction-record=rewrite test_one.py::test_compact",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            f"*cassette {path / 'test_never_recorded.yaml'} does not exist; record it with "
            "pytest --compaction-record=once test_one.py::test_never_recorded"
        ]
    )
    assert "Connection refused" not in result.stdout.str()


def test_versions_strictness_and_configuration(
    pytester: pytest.Pytester, upstream: Upstream
) -> None:
    pytester.makeini(
        """
        [pytest]
        compaction_cassette_dir = recordings
        compaction_filter_headers =
            x-team-token
        """
    )
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def compaction_config():
            return {"filter_headers": ["x-conf-token"], "allow_playback_repeats": True}
        """
    )
    pytester.makepyfile(
        test_cfg=f'''
import httpx
import pytest

BODY = {{"model": "gpt-5.4", "input": [{{"role": "user", "content": "x"}}]}}


@pytest.mark.compaction("shared/named", version="2026-07-15")
def test_named(compaction_cassette):
    for _ in range(2):  # allow_playback_repeats from compaction_config
        r = httpx.post("{upstream.base_url}/responses/compact", json=BODY,
                       headers={{"x-team-token": "team-value-1", "x-conf-token": "conf-value-2"}})
        assert r.status_code == 200
    assert compaction_cassette.version.startswith("2026-07-15")
    assert compaction_cassette.path.name == "named.yaml"
'''
    )
    pytester.runpytest_subprocess("--compaction-record=new_episodes").assert_outcomes(passed=1)
    path = pytester.path / "recordings" / "test_cfg" / "shared" / "named.yaml"
    raw = path.read_text()
    assert "team-value-1" not in raw and "conf-value-2" not in raw
    assert yaml.safe_load(raw)["compaction"]["schema_version"].startswith("2026-07-15")
    upstream.close()
    # The marker pins the version; strict mode turns the undeclared field into a violation
    # only for a version that does not declare it.
    pytester.runpytest_subprocess("--compaction-strict").assert_outcomes(passed=1)
    path.write_text(raw)
    source = (pytester.path / "test_cfg.py").read_text()
    (pytester.path / "test_cfg.py").write_text(
        source.replace('version="2026-07-15"', 'version="2026-05-13"').replace(
            'startswith("2026-07-15")', 'startswith("2026-05-13")'
        )
    )
    lenient = pytester.runpytest_subprocess()
    lenient.assert_outcomes(passed=1)
    lenient.stdout.fnmatch_lines(
        ["*drift: exchange 0 response /usage/input_tokens_details/cache_write_tokens*"]
    )
    strict = pytester.runpytest_subprocess("--compaction-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*cache_write_tokens*"])


def test_shared_cassette_is_refused_when_recording_under_xdist(
    pytester: pytest.Pytester, upstream: Upstream
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_shared="""
import pytest


@pytest.mark.compaction("common")
def test_a():
    pass


@pytest.mark.compaction("common")
def test_b():
    pass
"""
    )
    result = pytester.runpytest_subprocess("-n", "2", "--compaction-record=once")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*common.yaml is shared with test_shared.py::test_*"])
    pytester.runpytest_subprocess("-n", "2").assert_outcomes(passed=2)


def test_a_cassette_shared_by_its_resolved_path_or_through_the_proxy_is_refused_under_xdist(
    pytester: pytest.Pytester, upstream: Upstream
) -> None:
    pytest.importorskip("xdist")
    # "../common" from two modules is one file; so is a proxy test's cassette of the same name.
    for module in ("test_one", "test_two"):
        pytester.makepyfile(
            **{
                module: """
import pytest


@pytest.mark.compaction("../common")
def test_marked():
    pass
"""
            }
        )
    pytester.makepyfile(
        test_proxied=f"""
import pytest


@pytest.mark.compaction_proxy("p", upstream="{upstream.base_url}")
def test_first(compaction_proxy):
    pass


@pytest.mark.compaction_proxy("p", upstream="{upstream.base_url}")
def test_second(compaction_proxy):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-n", "2", "--compaction-record=once")
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(
        [
            "*test_one*common.yaml is shared with test_two.py::test_marked*",
            "*test_proxied*p.yaml is shared with test_proxied.py::test_*",
        ],
        consecutive=False,
    )
    pytester.runpytest_subprocess("-n", "2").assert_outcomes(passed=4)  # replay may share


def test_reference_recordings_replay_through_the_openai_sdk(
    pytester: pytest.Pytester, reference: Path
) -> None:
    source = reference / "recorded" / "pydantic-ai-stock-vcrpy"
    files = sorted(p for p in source.glob("*.yaml") if "stream" not in p.name)
    assert len(files) >= 5
    folder = pytester.path / "cassettes" / "test_reference"
    folder.mkdir(parents=True)
    tests = []
    expected_validated = 0
    for path in files:
        shutil.copy(path, folder / path.name)
        # both ends of every POST /responses/compact and POST /responses are validated
        covered = sum(
            ex.method == "POST" and ex.uri.endswith(("/responses/compact", "/responses"))
            for ex in load_cassette(path).exchanges
        )
        expected_validated += covered
        name = re.sub(r"\W", "_", path.stem)
        tests.append(
            f'''
@pytest.mark.compaction("{path.stem}", version="2026-05-13")
def test_{name}(compaction_cassette):
    replay(compaction_cassette, {covered})
'''
        )
    pytester.makepyfile(
        test_reference="""
import json

import openai
import pytest


def replay(cassette, covered):
    client = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="none", max_retries=0)
    responses = 0
    for ex in list(cassette.exchanges):
        body = json.loads(ex.request_body)
        expected = json.loads(ex.response_body)
        if ex.uri.endswith("/responses/compact"):
            out = client.responses.compact(**body)
            assert out.object == "response.compaction"
            assert out.output[-1].type == "compaction"
        else:
            out = client.responses.create(**body)
            responses += 1
        assert out.id == expected["id"]
    cassette.assert_all_played()
    assert cassette.validated == covered
    # The service sends null where the 2026-05-13 spec declares a string: reported, not failed.
    aside = [n for n in cassette.notes if "outside the compaction contract" in n]
    assert bool(aside) == bool(responses)
    assert all("prompt_cache_key" in n or "safety_identifier" in n for n in aside)
"""
        + "".join(tests)
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=len(files))
    result.stdout.fnmatch_lines(
        [
            f"{len(files)} test(s) with cassettes: 0 exchange(s) recorded, * replayed, "
            f"{expected_validated} validated; 0 violation(s)*"
        ]
    )
    # replaying does not rewrite them
    for path in files:
        assert (folder / path.name).read_bytes() == path.read_bytes()
