"""A user's own key, of any shape, echoed back: refused with no pattern at all, never printed.

The recorder and the proxy remember the credentials a client really sent (the filtered headers
and query parameters, before they are redacted) and those of the usual environment variables;
the write gate searches every byte for them. The key here looks like nothing: no ``sk-``, no
hex, no JWT, so only that memory can catch it. Every client goes over real HTTP to a loopback
upstream that quotes the key back, as the API does for a wrong one.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
from support.echo import Echo, Reply
from support.leaks import leaks, shown

from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.cassette._redact import SecretFound
from pytest_compaction.proxy._proxy import MISS_STATUS, CompactionProxy
from pytest_compaction.replay._recorder import ReplayError, RequestNotRecorded, use_cassette

_rng = random.Random(1507)
# Mixed case, digits, a dot and a dash: the shape of many gateway tokens, and of no pattern.
OWN = "".join(_rng.choice(string.ascii_letters + string.digits) for _ in range(20))
OWN = f"{OWN[:9]}.{OWN[9:]}-team7"
BODY = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def echo() -> Iterator[Echo]:
    with Echo() as server:
        yield server


def _sdk(base: str, key: str) -> None:
    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.responses.compact(**BODY)  # type: ignore[arg-type]


CLIENTS: dict[str, Callable[[str, str], Any]] = {
    "openai SDK, bearer token": _sdk,
    "httpx, api-key header": lambda base, key: httpx.post(
        base + "/responses/compact", json=BODY, headers={"api-key": key}
    ),
    "httpx2, x-api-key header": lambda base, key: httpx2.post(
        base + "/responses/compact", json=BODY, headers={"x-api-key": key}
    ),
    "httpx, ?key= query parameter": lambda base, key: httpx.get(
        base + "/models", params={"key": key}
    ),
}


@pytest.mark.parametrize("client", CLIENTS, ids=list(CLIENTS))
def test_a_key_the_client_sent_and_the_answer_echoes_is_refused(
    tmp_path: Path, echo: Echo, client: str
) -> None:
    path = tmp_path / "c.yaml"
    with pytest.raises(ReplayError) as info, use_cassette(path, record_mode="once") as rec:
        CLIENTS[client](echo.base_url, OWN)
    assert echo.seen and echo.seen[-1].credential() == OWN  # the key did go out
    cause = info.value.__cause__
    assert isinstance(cause, SecretFound)
    assert "exchange 0 response body /error/message: looks like" in str(cause)
    assert not path.exists()
    assert leaks(tmp_path, [OWN]) == []
    assert shown(str(info.value), [OWN]) == []
    assert OWN not in repr(rec)


def test_a_key_from_the_environment_is_refused_wherever_it_appears(
    tmp_path: Path, echo: Echo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OWN)
    echo.route("/v1/embeddings", lambda seen: Reply(body=b'{"object": "list"}'))
    path = tmp_path / "c.yaml"
    body = {"model": "m", "input": [{"role": "user", "content": f"my key: {OWN}"}]}
    with pytest.raises(ReplayError) as info, use_cassette(path, record_mode="once"):
        httpx.post(echo.base_url + "/embeddings", json=body)  # no credential header
    assert "exchange 0 request body" in str(info.value)
    assert leaks(tmp_path, [OWN]) == [] and shown(str(info.value), [OWN]) == []


def test_a_short_or_allowed_credential_is_not_searched_for(tmp_path: Path, echo: Echo) -> None:
    # "x" would match everywhere; an allowed fake key is recorded on purpose.
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once"):
        _sdk(echo.base_url, "x")
    allowed = tmp_path / "allowed.yaml"
    with use_cassette(allowed, record_mode="once", allow_secrets=[OWN]):
        _sdk(echo.base_url, OWN)
    (stored,) = load_cassette(allowed).exchanges
    assert stored.request_headers["authorization"] == ["REDACTED"]  # filtered all the same
    assert OWN in json.loads(stored.response_body)["error"]["message"]


def test_the_proxy_refuses_a_key_echoed_back_and_never_prints_it(
    tmp_path: Path, echo: Echo, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.yaml"
    with CompactionProxy(echo.base_url, path, record_mode="once") as proxy:
        _sdk(proxy.url, OWN)
        httpx.get(proxy.url + "/models", params={"key": OWN})
    failure = proxy.failure() or ""
    assert "POST /v1/responses/compact was not written to cassette" in failure
    assert failure.count("it would contain what looks like a secret") == 2
    assert "response body /error/message: looks like" in failure
    assert not path.exists()
    assert leaks(tmp_path, [OWN]) == []
    assert shown(failure + caplog.text, [OWN]) == []


def test_a_replay_miss_masks_the_clients_own_key(tmp_path: Path, echo: Echo) -> None:
    echo.route("/v1/models", lambda seen: Reply(body=b'{"object": "list", "data": []}'))
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once"):
        httpx.get(echo.base_url + "/models", headers={"authorization": f"Bearer {OWN}"})
    with (
        pytest.raises(RequestNotRecorded) as info,
        use_cassette(path, record_mode="none", raise_on_exit=False),
    ):
        httpx.post(
            echo.base_url + f"/keys/{OWN}/usage",
            json={"note": f"for {OWN}"},
            headers={"authorization": f"Bearer {OWN}"},
        )
    assert "cannot be replayed" in str(info.value)
    assert shown(str(info.value), [OWN]) == []

    with CompactionProxy(echo.base_url, path, record_mode="none") as proxy:
        answer = httpx.post(
            proxy.url + f"/v1/keys/{OWN}/usage",
            json={"note": f"for {OWN}"},
            headers={"authorization": f"Bearer {OWN}"},
        )
    assert answer.status_code == MISS_STATUS
    assert "cannot be replayed" in answer.json()["error"]["message"]
    assert shown(answer.content, [OWN]) == []
    assert shown(proxy.failure() or "", [OWN]) == []


PLUGIN_TESTS = """
import os

import openai
import pytest


@pytest.mark.compaction
def test_sdk_with_the_environment_key():
    client = openai.OpenAI(base_url=os.environ["ECHO_BASE_URL"], max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.responses.compact(model="gpt-5.4", input=[{"role": "user", "content": "hi"}])
"""


def test_through_the_plugin_the_environment_key_is_refused_and_never_printed(
    pytester: pytest.Pytester, echo: Echo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OWN)
    monkeypatch.setenv("ECHO_BASE_URL", echo.base_url)
    pytester.makepyfile(test_own=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("--compaction-record=once", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str() + result.stderr.str()
    assert "response body /error/message: looks like" in out
    assert "if it is a fake key the test sends on purpose, allow it with" in out
    assert shown(out, [OWN]) == []
    assert leaks(pytester.path, [OWN]) == []


def test_an_organization_the_api_names_in_an_error_is_not_taken_for_a_key(
    tmp_path: Path, echo: Echo
) -> None:
    org = "org-Qz81KdmLx0PwTn3vRb7Yc2Hs"
    message = f"Rate limit reached for gpt-5.4 in organization {org} on tokens per min."
    error = {"error": {"message": message, "type": "tokens", "param": None, "code": None}}
    echo.route("/v1/models", lambda seen: Reply(status=429, body=json.dumps(error).encode()))
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once") as rec:
        httpx.get(echo.base_url + "/models", headers={"openai-organization": org})
    assert rec.recorded == 1
    (stored,) = load_cassette(path).exchanges
    assert stored.request_headers["openai-organization"] == ["REDACTED"]
    assert org in stored.response_body.decode()
