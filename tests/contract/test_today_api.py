"""The shapes the API sends today, recorded through the openai SDK and judged at every end.

Each scenario records a cassette against the embedded server through the real SDK (under
vcrpy), replays it offline, and is judged again under 2026-08-21, the newest spec file:

- under the default (newest) version, no violation and no drift, and no note on the ids a
  passed-back item carries;
- under 2026-08-21, each newer shape is named as newer than the contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
from support.today import (
    BETA,
    CONFIGURATION_UPDATE,
    MULTI_AGENT_ITEMS,
    STORY,
    THRESHOLD,
    TRIGGER_ID,
    USER,
)

from pytest_compaction import CompactionServer, check_paths, load_cassette, newest_version
from pytest_compaction.replay._recorder import Recording, use_cassette

MULTI_AGENT_CALL = MULTI_AGENT_ITEMS[0]
OLDER = "2026-08-21"
NEWER = "newer than the contract"
# The first bundled version that knows the shapes the openai SDK 3.57.0 sends.
KNOWN_SINCE = "2026-11-19_openai-3.57.0"


def compacting_stream(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model="gpt-4.1", input=STORY * 3, context_management=THRESHOLD, stream=True
        )
    )
    assert any(e.type == "response.compaction.compacting" for e in events)


def configuration_update(client: openai.OpenAI) -> None:
    out = client.responses.compact(model="gpt-4.1", input=[USER, CONFIGURATION_UPDATE])  # type: ignore[list-item]
    assert out.output[-1].type == "compaction"


def beta_multi_agent(client: openai.OpenAI) -> None:
    out = client.beta.responses.compact(
        model="gpt-4.1",
        input=[MULTI_AGENT_CALL, USER],  # type: ignore[list-item]
        betas=BETA,  # type: ignore[arg-type]
    )
    assert out.output[-1].type == "compaction"


def trigger_without_output(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model="gpt-4.1",
            input=[USER, {"type": "compaction_trigger", "id": TRIGGER_ID}],  # type: ignore[list-item]
            store=False,
            stream=True,
            extra_headers={"x-compaction-fault": "completed-output:missing"},
        )
    )
    done = [e.item.type for e in events if e.type == "response.output_item.done"]
    assert done.count("compaction") == 1


def stateless_chain(client: openai.OpenAI) -> None:
    first = client.responses.compact(model="gpt-4.1", input=[USER])
    returned = [
        item.model_dump(mode="json", exclude_none=True, warnings=False) for item in first.output
    ]
    assert any(str(item.get("id", "")).startswith("msg_") for item in returned)
    second = client.responses.compact(model="gpt-4.1", input=[*returned, USER])  # type: ignore[list-item]
    again = [
        item.model_dump(mode="json", exclude_none=True, warnings=False) for item in second.output
    ]
    final = client.responses.create(model="gpt-4.1", input=[*again, USER])  # type: ignore[list-item]
    assert final.output_text


SCENARIOS: dict[str, Callable[[openai.OpenAI], None]] = {
    "compacting-stream": compacting_stream,
    "configuration-update": configuration_update,
    "beta-multi-agent": beta_multi_agent,
    "trigger-without-output": trigger_without_output,
    "stateless-chain": stateless_chain,
}
# What 2026-08-21 does not know in each scenario (None: nothing; the ids passed back are a
# spec defect every version handles).
UNKNOWN_TO_OLDER: dict[str, str | None] = {
    "compacting-stream": "response.compaction.compacting",
    "configuration-update": "configuration_update",
    "beta-multi-agent": None,  # 2026-08-21 has the beta route and its item types
    "trigger-without-output": "compaction_trigger",
    "stateless-chain": None,
}


@pytest.fixture
def client() -> Iterator[openai.OpenAI]:
    with (
        CompactionServer(deterministic=True) as server,
        openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as sdk,
    ):
        yield sdk


def record(
    tmp_path: Path, name: str, steps: Callable[[openai.OpenAI], None], client: openai.OpenAI
) -> Path:
    """The cassette of ``steps`` recorded through ``client``."""
    path = tmp_path / f"{name}.yaml"
    with use_cassette(path, record_mode="once"):
        steps(client)
    return path


def findings(rec: Recording) -> list[str]:
    return [*rec.violations, *rec.drift, *rec.notes]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_recorded_and_replayed_clean_under_the_newest_version(
    scenario: str, client: openai.OpenAI, tmp_path: Path
) -> None:
    path = tmp_path / f"{scenario}.yaml"
    with use_cassette(path, record_mode="once") as rec:
        SCENARIOS[scenario](client)
    assert rec.recorded >= 1 and rec.validated == rec.recorded
    assert rec.violations == [] and rec.drift == [], findings(rec)
    assert not [n for n in rec.notes if "/id" in n or "passed back" in n], rec.notes
    assert load_cassette(path).schema_version == newest_version()

    with use_cassette(path) as replay:  # offline: the server's answers come from the file
        SCENARIOS[scenario](client)
    assert replay.replayed == rec.recorded and replay.recorded == 0
    assert replay.violations == [] and replay.drift == [], findings(replay)

    strict = check_paths([path], strict=True)
    assert strict.passed, json.dumps(strict.as_dict())[:3000]


def test_the_beta_call_is_judged_by_the_beta_contract(
    client: openai.OpenAI, tmp_path: Path
) -> None:
    path = record(tmp_path, "beta", beta_multi_agent, client)
    (exchange,) = load_cassette(path).exchanges
    assert exchange.uri.endswith("/responses/compact?beta=true")
    assert "responses_multi_agent=v1" in path.read_text()  # the header, recorded
    # judged as a plain compaction (no query, no beta feature), it fails on the beta item type
    edited = path.read_text().replace("?beta=true", "").replace("responses_multi_agent", "other")
    plain = tmp_path / "plain.yaml"
    plain.write_text(edited)
    result = check_paths([plain])
    assert not result.passed
    text = json.dumps(result.as_dict())
    assert 'unknown type \\"multi_agent_call\\"' in text
    assert "the beta compact route of schema version" in text


@pytest.mark.parametrize("scenario", [s for s, unknown in UNKNOWN_TO_OLDER.items() if unknown])
def test_under_the_last_spec_file_each_newer_shape_is_named_newer_than_the_contract(
    scenario: str, client: openai.OpenAI, tmp_path: Path
) -> None:
    path = record(tmp_path, scenario, SCENARIOS[scenario], client)
    with use_cassette(path, version=OLDER, raise_on_exit=False) as old:
        SCENARIOS[scenario](client)
    unknown = UNKNOWN_TO_OLDER[scenario]
    assert unknown is not None
    named = [line for line in findings(old) if unknown in line]
    assert named, findings(old)
    assert all(NEWER in line for line in named), named
    assert all(f"schema version {KNOWN_SINCE} " in line for line in named), named


def test_the_passed_back_ids_are_declared_in_every_version_that_has_the_items(
    client: openai.OpenAI, tmp_path: Path
) -> None:
    path = record(tmp_path, "chain", stateless_chain, client)
    for version in (OLDER, "2026-05-13"):
        with use_cassette(path, version=version, raise_on_exit=False) as old:
            stateless_chain(client)
        assert not [f for f in old.drift if "/id" in f or "/status" in f], old.drift


# -- the beta route through the proxy and at import ------------------------------------------------
def test_the_proxy_judges_a_beta_compact_by_the_beta_contract(tmp_path: Path) -> None:
    from pytest_compaction import CompactionProxy

    path = tmp_path / "proxy.yaml"
    with (
        CompactionServer(deterministic=True) as server,
        CompactionProxy(server.base_url, path, record_mode="once") as proxy,
        openai.OpenAI(base_url=proxy.url, api_key="sk-test", max_retries=0) as sdk,
    ):
        beta_multi_agent(sdk)
    # counted once the proxy has stopped: it records after it has answered
    assert (proxy.recorded, proxy.validated, proxy.failure()) == (1, 1, None)
    assert proxy.violations == []
    (exchange,) = load_cassette(path).exchanges
    assert exchange.uri.endswith("/responses/compact?beta=true")


def test_import_judges_a_stock_vcrpy_beta_compact_by_the_beta_contract(
    client: openai.OpenAI, tmp_path: Path
) -> None:
    import vcr

    from pytest_compaction import import_cassette

    stock = tmp_path / "stock.yaml"
    with vcr.use_cassette(str(stock), record_mode="once", filter_headers=["authorization"]):
        beta_multi_agent(client)
    result = import_cassette(stock, tmp_path / "imported.yaml")
    assert result.outcome == "imported", result.message
    (verdict,) = result.exchanges
    assert verdict.validated and verdict.violations == [], verdict.as_dict()


def test_a_beta_call_under_a_version_without_a_beta_contract_says_so(
    client: openai.OpenAI, tmp_path: Path
) -> None:
    path = record(tmp_path, "beta", beta_multi_agent, client)
    with use_cassette(path, version="2026-05-13", raise_on_exit=False) as old:
        beta_multi_agent(client)
    expected = (
        "body: a beta call (POST /responses/compact?beta=true), and schema version "
        "2026-05-13_5162af98d314 has no beta compact contract (the spec has one from 2026-07-15 "
        "on); judge it under a newer version"
    )
    assert old.violations and all(expected in v for v in old.violations), old.violations
    result = check_paths([path], version="2026-05-13")
    assert result.passed  # the cassette recorded its version: the newest, which has one
