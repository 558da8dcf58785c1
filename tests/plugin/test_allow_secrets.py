"""Recording a fake key on purpose: ``allow_secrets``, and refusals whose advice fits the place.

A test whose input is a fake key (``sk-test-0000...``) cannot be recorded otherwise: the key is
in the body, where no header filter reaches. ``allow_secrets`` takes exact values and
``re.compile(...)`` patterns, from the marker, ``compaction_config``, the ini key
``compaction_allow_secrets`` (``re:PATTERN`` lines are patterns), ``use_cassette``, the
``compaction_proxy`` marker and the ``proxy`` command (``--allow-secret``,
``--allow-secret-pattern``). Everything else still refuses the write, with advice that says
what to do where the key is: filter a header, scrub or allow a body.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.leaks import leaks

from pytest_compaction import CompactionError, CompactionServer
from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.cassette._redact import SecretFound
from pytest_compaction.cli import main
from pytest_compaction.proxy._proxy import CompactionProxy
from pytest_compaction.replay._recorder import ReplayError, use_cassette

FAKE = "sk-test-" + "0" * 40
REAL = "sk-proj-" + "Tq9wLx" * 8  # another key beside the fake one: still refused
HEADER_ADVICE = "Filter the header with compaction_filter_headers (ini)"
BODY_ADVICE = "if it is a fake key the test sends on purpose, allow it with allow_secrets=[...]"


def _body(*keys: str) -> dict[str, object]:
    text = " and ".join(f"the key {k}" for k in keys)
    return {"model": "gpt-5.4", "input": [{"role": "user", "content": text}]}


@pytest.fixture(scope="module")
def server() -> Iterator[CompactionServer]:
    with CompactionServer() as srv:
        yield srv


def _refusal(path: Path, server: CompactionServer, **kwargs: object) -> str:
    with pytest.raises(ReplayError) as info, use_cassette(path, record_mode="once"):
        httpx.post(server.base_url + "/responses/compact", **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, SecretFound)
    return str(info.value)


def test_the_advice_fits_where_the_key_is(tmp_path: Path, server: CompactionServer) -> None:
    in_body = _refusal(tmp_path / "a.yaml", server, json=_body(FAKE))
    assert "request body /input/0/content: looks like" in in_body
    assert BODY_ADVICE in in_body and "before_record_request/before_record_response" in in_body
    assert HEADER_ADVICE not in in_body

    in_header = _refusal(tmp_path / "b.yaml", server, json=_body(), headers={"x-fake": FAKE})
    assert "request header 'x-fake': looks like" in in_header
    assert HEADER_ADVICE in in_header and BODY_ADVICE not in in_header

    both = _refusal(tmp_path / "c.yaml", server, json=_body(FAKE), headers={"x-fake": FAKE})
    assert HEADER_ADVICE in both and BODY_ADVICE in both
    assert leaks(tmp_path, [FAKE]) == []


@pytest.mark.parametrize(
    "allow",
    [[FAKE], FAKE, [re.compile(r"sk-test-0+")], (re.compile(r"sk-test-0{40}"), "other")],
    ids=["exact value", "one value", "pattern", "pattern and value"],
)
def test_allowed_values_and_patterns_are_recorded(
    tmp_path: Path, server: CompactionServer, allow: object
) -> None:
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once", allow_secrets=allow) as rec:
        httpx.post(server.base_url + "/responses/compact", json=_body(FAKE))
    assert rec.recorded == 1
    assert FAKE in path.read_text()
    (stored,) = load_cassette(path).exchanges
    assert FAKE.encode() in stored.request_body and FAKE.encode() in stored.response_body

    # Only what is allowed: a real key beside the fake one still stops the write.
    other = tmp_path / "other.yaml"
    with (
        pytest.raises(ReplayError) as info,
        use_cassette(other, record_mode="once", allow_secrets=allow),
    ):
        httpx.post(server.base_url + "/responses/compact", json=_body(FAKE, REAL))
    assert "request body /input/0/content: looks like" in str(info.value)
    assert leaks(tmp_path, [REAL]) == []


def test_a_pattern_must_match_the_whole_key(tmp_path: Path, server: CompactionServer) -> None:
    with (
        pytest.raises(ReplayError),
        use_cassette(tmp_path / "c.yaml", record_mode="once", allow_secrets=[re.compile("sk-")]),
    ):
        httpx.post(server.base_url + "/responses/compact", json=_body(FAKE))
    assert not (tmp_path / "c.yaml").exists()


def test_allow_secrets_takes_strings_and_patterns_only(tmp_path: Path) -> None:
    with (
        pytest.raises(CompactionError, match=r"^allow_secrets takes exact strings and re\.compile"),
        use_cassette(tmp_path / "c.yaml", allow_secrets=[42]),
    ):
        pass


PLUGIN_TESTS = """
import os
import re

import httpx
import pytest

BASE = os.environ["ALLOW_BASE_URL"]
FAKE = "sk-test-" + "0" * 40


def send(key):
    body = {"model": "gpt-5.4", "input": [{"role": "user", "content": "the key " + key}]}
    httpx.post(BASE + "/responses/compact", json=body)


@pytest.mark.compaction(allow_secrets=[FAKE])
def test_marker_value():
    send(FAKE)


@pytest.mark.compaction(allow_secrets=[re.compile(r"sk-test-0+")])
def test_marker_pattern():
    send(FAKE)


@pytest.mark.compaction
def test_ini_value():
    send("sk-test-" + "1" * 40)


@pytest.mark.compaction
def test_ini_pattern():
    send("sk-test-" + "2" * 40)


@pytest.mark.compaction
def test_config(compaction_config):
    send("sk-test-" + "3" * 40)


@pytest.mark.compaction
def test_not_allowed():
    send("sk-test-" + "4" * 40)


@pytest.mark.compaction(allow_secrets=[42])
def test_bad_type():
    pass
"""

CONFTEST = """
import pytest


@pytest.fixture(scope="session")
def compaction_config():
    return {"allow_secrets": ["sk-test-" + "3" * 40]}
"""

INI = """
[pytest]
compaction_allow_secrets =
    sk-test-1111111111111111111111111111111111111111
    re:sk-test-2+
"""


def test_the_marker_the_config_and_the_ini_key_allow_secrets(
    pytester: pytest.Pytester, server: CompactionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOW_BASE_URL", server.base_url)
    pytester.makepyfile(test_allow=PLUGIN_TESTS)
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    result = pytester.runpytest_subprocess("--compaction-record=once", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, errors=2)
    out = result.stdout.str()
    assert "ERROR at teardown of test_not_allowed" in out
    assert "ERROR at setup of test_bad_type" in out
    assert "allow it with allow_secrets=[...] (the compaction marker, compaction_config" in out
    assert "allow_secrets takes exact strings and re.compile(...) patterns, not int" in out
    folder = pytester.path / "cassettes" / "test_allow"
    written = {p.stem for p in folder.glob("*.yaml")}
    assert written == {f"test_{name}" for name in ("config", "ini_pattern", "ini_value")} | {
        "test_marker_pattern",
        "test_marker_value",
    }
    assert "sk-test-" + "4" * 40 not in out


def test_a_bad_ini_pattern_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncompaction_allow_secrets =\n    sk-test-a\n    re:sk-(\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*compaction_allow_secrets line 2: not a regular expression: missing ), *"]
    )


def test_the_ini_key_is_in_the_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(
        ["*compaction_allow_secrets (linelist):*", "*fake keys tests record on purpose*"]
    )


# ---------------------------------------------------------------------------------------------
# The proxy


def test_the_proxy_records_allowed_keys_only(tmp_path: Path, server: CompactionServer) -> None:
    path = tmp_path / "c.yaml"
    allow = [re.compile(r"sk-test-0+")]
    with CompactionProxy(server.base_url, path, record_mode="once", allow_secrets=allow) as px:
        httpx.post(px.url + "/responses/compact", json=_body(FAKE))
        httpx.post(px.url + "/responses/compact", json=_body(FAKE, REAL))
    failure = px.failure() or ""
    assert failure.count("it would contain what looks like a secret") == 1
    assert "allow it with --allow-secret VALUE or --allow-secret-pattern RE" in failure
    assert len(load_cassette(path).exchanges) == 1 and FAKE in path.read_text()
    assert leaks(tmp_path, [REAL]) == []


PROXY_TESTS = """
import os

import httpx
import pytest

FAKE = "sk-test-" + "0" * 40
BODY = {"model": "gpt-5.4", "input": [{"role": "user", "content": "the key " + FAKE}]}


@pytest.mark.compaction_proxy(upstream=os.environ["ALLOW_BASE_URL"], allow_secrets=[FAKE])
def test_allowed(compaction_proxy):
    httpx.post(compaction_proxy + "/responses/compact", json=BODY)


@pytest.mark.compaction_proxy(upstream=os.environ["ALLOW_BASE_URL"])
def test_refused(compaction_proxy):
    httpx.post(compaction_proxy + "/responses/compact", json=BODY)
"""


def test_the_proxy_marker_allows_secrets(
    pytester: pytest.Pytester, server: CompactionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOW_BASE_URL", server.base_url)
    pytester.makepyfile(test_px=PROXY_TESTS)
    result = pytester.runpytest_subprocess("--compaction-record=once", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    assert "ERROR at teardown of test_refused" in result.stdout.str()
    folder = pytester.path / "cassettes" / "test_px"
    assert [p.stem for p in folder.glob("*.yaml")] == ["test_allowed"]


def test_the_proxy_command_takes_allowed_values_and_patterns(
    tmp_path: Path, server: CompactionServer
) -> None:
    path = tmp_path / "c.yaml"
    command = [sys.executable, "-m", "pytest_compaction", "proxy", "--upstream", server.base_url]
    process = subprocess.Popen(
        [*command, "--cassette", str(path), "--record", "once", "--allow-secret", FAKE,
         "--allow-secret-pattern", r"sk-test-7+"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        for key in (FAKE, "sk-test-" + "7" * 40, REAL):
            httpx.post(url + "/responses/compact", json=_body(key))
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert err.count("it would contain what looks like a secret") == 1
    assert len(load_cassette(path).exchanges) == 2
    assert leaks(tmp_path, [REAL]) == []


def test_the_proxy_command_refuses_a_bad_pattern(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["proxy", "--upstream", "http://127.0.0.1:9", "--cassette", str(tmp_path / "c.yaml"),
         "--allow-secret-pattern", "sk-("]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "--allow-secret-pattern: not a regular expression: missing )" in err
    assert "Traceback" not in err
