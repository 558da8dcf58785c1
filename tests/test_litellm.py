"""The LiteLLM SDK as a client: ``litellm.compact_responses`` recorded against the embedded server.

LiteLLM sends synchronous calls through an ``httpx.Client`` and asynchronous ones through an
``httpx.AsyncClient`` whose transport is aiohttp, so both of vcrpy's httpx and aiohttp
interceptions are exercised. Every exchange is recorded with the embedded server running, then
replayed with it stopped; a socket audit hook proves nothing left the loopback interface.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_compaction import CompactionServer
from pytest_compaction._recorder import Recording, use_cassette

# litellm builds pydantic models from TypedDicts with ReadOnly items and warns about each.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydantic._internal._generate_schema")

MODEL = "openai/gpt-5.4"
API_KEY = "sk-test-litellm-sdk-0123456789"
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]
LITELLM_ID_PREFIX = "litellm:custom_llm_provider:openai;"

# -- network watch ---------------------------------------------------------------------------

# Audit hooks cannot be removed: one is installed on first use and records only while a watch
# is open.
_watches: list[list[str]] = []
_hooked = False


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return host is None  # getaddrinfo(None, port): the local wildcard, no lookup
    if host.lower() in ("localhost", "localhost.", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _watches:
        return
    if event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
        _watches[-1].append(f"connect {host}:{args[1][1]}")
    elif event == "socket.getaddrinfo":
        host = args[0]
        if not _is_loopback(host):
            _watches[-1].append(f"getaddrinfo {host!r}")


@contextmanager
def network_watch() -> Iterator[list[str]]:
    """Every TCP connect and every name lookup of a non-loopback host inside the block."""
    global _hooked
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True
    seen: list[str] = []
    _watches.append(seen)
    try:
        yield seen
    finally:
        _watches.remove(seen)


def outside_loopback(seen: list[str]) -> list[str]:
    return [
        entry
        for entry in seen
        if entry.startswith("getaddrinfo")
        or not _is_loopback(entry.split(" ", 1)[1].rsplit(":", 1)[0])
    ]


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def litellm() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as env:
        # Without this, importing litellm downloads its model price list from the internet.
        env.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        with network_watch() as seen:
            module = pytest.importorskip(
                "litellm", reason="litellm is not installed (pip install 'litellm[proxy]')"
            )
        assert outside_loopback(seen) == [], "importing litellm reached for the network"
        saved = module.suppress_debug_info
        module.suppress_debug_info = True  # no "Give Feedback" banner on every error
        try:
            yield module
        finally:
            module.suppress_debug_info = saved


@pytest.fixture
def server() -> Iterator[CompactionServer]:
    with CompactionServer(deterministic=True) as srv:
        yield srv


def litellm_id(upstream_id: str, model_id: str | None = None) -> str:
    text = f"{LITELLM_ID_PREFIX}model_id:{model_id};response_id:{upstream_id}"
    return "resp_" + base64.b64encode(text.encode()).decode()


def decoded(response_id: str) -> str:
    assert response_id.startswith("resp_")
    return base64.b64decode(response_id.removeprefix("resp_"), validate=True).decode()


def items_of(response: Any) -> list[dict[str, Any]]:
    """Output items as a client sends them back (LiteLLM's objects carry ``None`` fields)."""
    return [
        item if isinstance(item, dict) else item.model_dump(exclude_none=True, warnings=False)
        for item in response.output
    ]


def cassette_bodies(path: Path) -> list[tuple[dict[str, Any], int, dict[str, Any]]]:
    doc = yaml.safe_load(path.read_text())
    return [
        (
            json.loads(i["request"]["body"]),
            i["response"]["status"]["code"],
            json.loads(i["response"]["body"]["string"]),
        )
        for i in doc["interactions"]
    ]


def assert_clean(rec: Recording, *, recorded: int = 0, replayed: int = 0) -> None:
    assert (rec.recorded, rec.replayed) == (recorded, replayed)
    assert rec.validated == recorded + replayed
    assert rec.violations == []
    assert rec.problems == []


# -- sync: httpx -----------------------------------------------------------------------------


def run_chain(litellm: Any, api_base: str) -> tuple[Any, Any, Any, Exception]:
    """Compact; again statelessly from its output; again by its id; then a tampered token."""
    options = {"model": MODEL, "api_base": api_base, "api_key": API_KEY}
    first = litellm.compact_responses(input=HISTORY, instructions="Be brief.", **options)
    second = litellm.compact_responses(
        input=[*items_of(first), {"role": "user", "content": "And 4+4?"}], **options
    )
    third = litellm.compact_responses(
        input=[{"role": "user", "content": "And 5+5?"}],
        previous_response_id=second.id,
        **options,
    )
    tampered = {"type": "compaction", "id": "cmp_forged", "encrypted_content": "forged"}
    with pytest.raises(litellm.BadRequestError) as info:
        litellm.compact_responses(input=[tampered], **options)
    return first, second, third, info.value


def test_sync_compact_records_then_replays_offline(
    litellm: Any, server: CompactionServer, tmp_path: Path
) -> None:
    path = tmp_path / "litellm-sdk.yaml"
    base_url = server.base_url
    with network_watch() as seen, use_cassette(path, record_mode="once") as rec:
        first, second, third, error = run_chain(litellm, base_url)
    assert_clean(rec, recorded=4)
    assert outside_loopback(seen) == []

    # On the wire: the provider prefix is gone, the compaction token went back untouched, and
    # the SDK decoded its own id back into the upstream's for previous_response_id.
    assert [r.path for r in server.requests] == ["/v1/responses/compact"] * 4
    assert [r.json()["model"] for r in server.requests] == ["gpt-5.4"] * 4
    (req1, _, resp1), (req2, _, resp2), (req3, _, resp3), (_, status, failed) = cassette_bodies(
        path
    )
    assert req1 == {"model": "gpt-5.4", "input": HISTORY, "instructions": "Be brief."}
    assert req2["input"][-2] == resp1["output"][-1]
    assert server.open_token(resp1["output"][-1]["encrypted_content"])
    assert req3 == {
        "model": "gpt-5.4",
        "input": [{"role": "user", "content": "And 5+5?"}],
        "previous_response_id": resp2["id"],
    }
    assert status == 400 and failed["error"]["code"] == "invalid_encrypted_content"
    assert failed["error"]["param"] == "input[0].encrypted_content"

    # The SDK rewrites ids after the wire: resp_ + base64 naming the provider and upstream id.
    assert first.id == litellm_id(resp1["id"])
    assert decoded(second.id) == f"{LITELLM_ID_PREFIX}model_id:None;response_id:{resp2['id']}"
    assert third.id == litellm_id(resp3["id"])
    assert len({resp1["id"], resp2["id"], resp3["id"]}) == 3
    assert first.object == "response.compaction"
    assert [item["type"] for item in items_of(first)] == ["message", "message", "compaction"]
    assert error.status_code == 400 and "cmp_forged could not be verified" in str(error)

    text = path.read_text()
    assert API_KEY not in text and "REDACTED" in text
    assert yaml.safe_load(text)["compaction"].get("dialect") in (None, "openai")

    server.stop()
    with network_watch() as seen, use_cassette(path) as rec:
        again = run_chain(litellm, base_url)
    assert_clean(rec, replayed=4)
    rec.assert_all_played()
    assert not [entry for entry in seen if entry.startswith("connect")]
    assert outside_loopback(seen) == []
    assert [r.model_dump() for r in again[:3]] == [r.model_dump() for r in (first, second, third)]
    # The cassette stores bodies canonically, so compare the error by value, not by text.
    assert again[3].status_code == error.status_code
    assert "cmp_forged could not be verified" in str(again[3])


def test_an_invalid_upstream_answer_is_caught_through_the_sdk(
    litellm: Any, server: CompactionServer, tmp_path: Path
) -> None:
    """A response the schema rejects is reported, and the cassette is not written."""
    path = tmp_path / "broken.yaml"

    def drop_usage(response: dict[str, Any]) -> dict[str, Any]:
        body = json.loads(response["body"]["string"])
        del body["usage"]
        response["body"]["string"] = json.dumps(body).encode()
        return response

    with use_cassette(
        path, record_mode="once", before_record_response=drop_usage, raise_on_exit=False
    ) as rec:
        litellm.compact_responses(
            model=MODEL, input=HISTORY, api_base=server.base_url, api_key=API_KEY
        )
    assert rec.recorded == 1
    assert any("usage" in v for v in rec.violations), rec.violations
    assert "The cassette was not written." in "\n".join(rec.problems)
    assert not path.exists()


# -- async: httpx over aiohttp ---------------------------------------------------------------


def test_async_compact_goes_through_aiohttp_and_replays(
    litellm: Any, server: CompactionServer, tmp_path: Path
) -> None:
    path = tmp_path / "litellm-async.yaml"
    options = {"model": MODEL, "api_base": server.base_url, "api_key": API_KEY}

    async def chain() -> tuple[Any, Any]:
        first = await litellm.acompact_responses(input=HISTORY, **options)
        second = await litellm.acompact_responses(
            input=[{"role": "user", "content": "And 4+4?"}],
            previous_response_id=first.id,
            **options,
        )
        return first, second

    # LiteLLM's async client hands requests to aiohttp: with vcrpy's aiohttp patch left out,
    # the call goes straight to the server and nothing is recorded.
    unseen = tmp_path / "unseen.yaml"
    with use_cassette(unseen, record_mode="once", skip_patchers=("aiohttp",)) as rec:
        asyncio.run(litellm.acompact_responses(input=HISTORY, **options))
    assert rec.recorded == 0 and len(server.requests) == 1
    server.clear_requests()

    with network_watch() as seen, use_cassette(path, record_mode="once") as rec:
        first, second = asyncio.run(chain())
    assert_clean(rec, recorded=2)
    assert outside_loopback(seen) == []
    assert len(server.requests) == 2
    (_, _, resp1), (req2, _, resp2) = cassette_bodies(path)
    assert req2["previous_response_id"] == resp1["id"]
    assert first.id == litellm_id(resp1["id"]) and second.id == litellm_id(resp2["id"])

    server.stop()
    with network_watch() as seen, use_cassette(path) as rec:
        again = asyncio.run(chain())
    assert_clean(rec, replayed=2)
    assert not [entry for entry in seen if entry.startswith("connect")]
    assert [r.model_dump() for r in again] == [first.model_dump(), second.model_dump()]


# -- the LiteLLM dialect ---------------------------------------------------------------------


def test_litellm_dialect_server_validates_under_the_litellm_profile(
    litellm: Any, tmp_path: Path
) -> None:
    """Against a LiteLLM-speaking server the id arrives encoded and the SDK keeps it as is."""
    path = tmp_path / "litellm-dialect.yaml"
    with CompactionServer(deterministic=True, dialect="litellm") as server:
        with use_cassette(path, record_mode="once", dialect="litellm") as rec:
            first, second, third, error = run_chain(litellm, server.base_url)
        upstream = [r.json() for r in server.requests]
    assert_clean(rec, recorded=4)
    (_, _, resp1), (_, _, resp2), (_, _, resp3), (_, status, failed) = cassette_bodies(path)
    assert yaml.safe_load(path.read_text())["compaction"]["dialect"] == "litellm"

    # The wire already carries LiteLLM's form; the SDK passes it through unchanged.
    assert [first.id, second.id, third.id] == [resp1["id"], resp2["id"], resp3["id"]]
    assert decoded(resp2["id"]).startswith(LITELLM_ID_PREFIX + "model_id:")
    assert decoded(resp2["id"]).endswith(";response_id:resp_0002")
    assert upstream[2]["previous_response_id"] == "resp_0002"
    assert status == 400 and failed["error"]["code"] == "400"
    assert str(error.status_code) == failed["error"]["code"]

    with use_cassette(path) as rec:
        again = run_chain(litellm, "http://127.0.0.1:9/v1")
    assert rec.dialect == "litellm"
    assert_clean(rec, replayed=4)
    assert [r.model_dump() for r in again[:3]] == [r.model_dump() for r in (first, second, third)]
