"""The compaction failures users report most, as checks: each kept and broken, judged for real.

Each cassette is recorded over real HTTP with the openai SDK against the embedded server, then
edited the way the broken gateway behaves (or recorded as the broken client behaves, or produced
by a server fault), and judged through the ``pytest-compaction check`` command and, where a
test run is what fails, through the plugin in a pytester run:

1. a compaction item passed back under another id than the answer gave it (rule 5, a failure);
2. not exactly one compaction item in an answer (a note);
3. ``previous_response_id`` naming a response created with ``store: false`` (rule 6, a failure);
4. a ``compact_threshold`` passed and no compaction item in the answer (a note);
5. ``/responses/compact`` parameters the API rejects (a failure on the request);
6. the ``invalid-encrypted-content`` fault, and the recovery it is there to test.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import typing
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import response_compact_params

from pytest_compaction.cassette._exchange import CassetteData, Exchange
from pytest_compaction.cassette._file import load_cassette, save_cassette
from pytest_compaction.cli import main
from pytest_compaction.contract._reported import rejected_parameters
from pytest_compaction.replay._recorder import ReplayError, use_cassette
from pytest_compaction.schema._versions import available_versions
from pytest_compaction.server import CompactionServer

MODEL = "gpt-5.4"
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]
NEXT = {"role": "user", "content": "And 5+5?"}
LONG = {"role": "user", "content": "Tell me the story again. " * 400}  # ~2,500 tokens
THRESHOLD = [{"type": "compaction", "compact_threshold": 1000}]
# The SDK parses a re-issued user message as an output message and warns when serializing its
# input_text parts back; the bytes it sends are the ones it received.
pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")


@pytest.fixture
def server() -> Iterator[CompactionServer]:
    with CompactionServer(deterministic=True) as srv:
        yield srv


def client_of(server: CompactionServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10)


def dumped(items: Any) -> list[dict[str, Any]]:
    return [i.model_dump(mode="json", exclude_none=True, warnings=False) for i in items]


def record(
    path: Path, server: CompactionServer, steps: Callable[[openai.OpenAI], None]
) -> list[Exchange]:
    """``steps`` run with the SDK against the server, recorded (the chain check off: the
    cassette is judged by ``check`` afterwards, broken or not)."""
    with use_cassette(path, record_mode="once", check_chain=False):
        steps(client_of(server))
    return load_cassette(path).exchanges


def body_of(raw: bytes | None) -> dict[str, Any]:
    value = json.loads(raw or b"")
    assert isinstance(value, dict)
    return value


def edited(
    exchange: Exchange,
    *,
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
) -> Exchange:
    """The exchange with new JSON bodies, its content-length headers following."""
    out = exchange
    if request is not None:
        out = replace(out, request_body=json.dumps(request).encode())
    if response is not None:
        data = json.dumps(response).encode()
        headers = {
            k: ([str(len(data))] if k.lower() == "content-length" else v)
            for k, v in out.response_headers.items()
        }
        out = replace(out, response_body=data, response_headers=headers)
    return out


def save(path: Path, exchanges: list[Exchange]) -> Path:
    save_cassette(path, CassetteData(exchanges=exchanges))
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    status = main(["check", str(path), *options])
    return status, capsys.readouterr().out


def check_json(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    status = main(["check", str(path), "--format", "json"])
    payload = json.loads(capsys.readouterr().out)
    assert isinstance(payload, dict)
    return status, payload


def notes_of(payload: dict[str, Any]) -> list[str]:
    return [n for ex in payload["cassettes"][0]["exchanges"] for n in ex["baseline"]["notes"]]


# -- 1. the compaction item keeps its id -----------------------------------------------------------
def compact_then_pass(client: openai.OpenAI) -> None:
    compacted = client.responses.compact(model=MODEL, input=HISTORY)  # type: ignore[arg-type]
    client.responses.create(model=MODEL, input=[*dumped(compacted.output), NEXT])  # type: ignore[list-item]


def test_a_compaction_item_keeps_the_id_it_was_returned_with(
    tmp_path: Path, server: CompactionServer, capsys: pytest.CaptureFixture[str]
) -> None:
    exchanges = record(tmp_path / "kept.yaml", server, compact_then_pass)
    compaction = body_of(exchanges[0].response_body)["output"][-1]
    assert compaction["type"] == "compaction" and compaction["id"].startswith("cmp_")
    later = body_of(exchanges[1].request_body)
    q = next(i for i, item in enumerate(later["input"]) if item.get("type") == "compaction")
    assert later["input"][q]["id"] == compaction["id"]
    status, out = check(tmp_path / "kept.yaml", capsys)
    assert status == 0 and "chain" not in out

    # server-side compaction, chained statelessly: without an id the token alone names the
    # item (rule 2 reads re-rendered items); under another id it is refused
    def stateless(client: openai.OpenAI) -> None:
        first = client.responses.create(model=MODEL, input=[LONG], context_management=THRESHOLD)  # type: ignore[arg-type, list-item]
        out = dumped(first.output)
        del out[-1]["id"]
        client.responses.create(model=MODEL, input=[LONG, *out, NEXT], context_management=THRESHOLD)  # type: ignore[arg-type, list-item]

    chained = record(tmp_path / "idless.yaml", server, stateless)
    status, out = check(tmp_path / "idless.yaml", capsys)
    assert status == 0 and "chain" not in out
    second = body_of(chained[1].request_body)
    second["input"][-2]["id"] = "cmp_reminted0002"
    returned = body_of(chained[0].response_body)["output"][-1]["id"]
    status, out = check(
        save(tmp_path / "idless_broken.yaml", [chained[0], edited(chained[1], request=second)]),
        capsys,
    )
    assert status == 1 and out.count("  FAIL  chain rule") == 1
    assert "  FAIL  chain rule 5 (compaction-id): exchange 1 input[2].id\n" in out
    assert f"for compaction {returned} (output[1])" in out

    # a proxy re-mints the id as it forwards the item (Soju06/codex-lb#1316)
    renamed = [dict(i) for i in later["input"]]
    renamed[q]["id"] = "cmp_reminted0001"
    broken = save(
        tmp_path / "broken.yaml",
        [exchanges[0], edited(exchanges[1], request={**later, "input": renamed})],
    )
    status, out = check(broken, capsys)
    assert status == 1
    assert f"  FAIL  chain rule 5 (compaction-id): exchange 1 input[{q}].id\n" in out
    assert (
        f"compaction cmp_reminted0001 carries the encrypted_content exchange 0 returned for "
        f"compaction {compaction['id']} (output[{q}])"
    ) in out
    assert "Encrypted content item_id did not match the target item id" in out
    assert "; 1 chaining violation(s)" in out  # only rule 5: the item is read where it stands

    status, payload = check_json(broken, capsys)
    (violation,) = payload["cassettes"][0]["chain"]
    assert (violation["rule"], violation["name"], violation["exchange"]) == (5, "compaction-id", 1)
    assert (violation["source_exchange"], violation["source_pointer"]) == (0, f"/output/{q}")


def test_a_renamed_compaction_item_fails_the_recording_block(
    tmp_path: Path, server: CompactionServer
) -> None:
    def steps(client: openai.OpenAI) -> None:
        compacted = dumped(client.responses.compact(model=MODEL, input=HISTORY).output)  # type: ignore[arg-type]
        compacted[-1]["id"] = "cmp_reminted0001"
        # the embedded server refuses the token under another id, as the API does
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.compact(model=MODEL, input=[*compacted, NEXT])  # type: ignore[list-item]
        assert refused.value.message.endswith(
            "Encrypted content item_id did not match the target item id."
        )

    path = tmp_path / "sdk.yaml"
    expected = r"rule 5 \(compaction-id\): exchange 1 input\[\d\]\.id"
    with pytest.raises(ReplayError, match=expected), use_cassette(path, record_mode="once"):
        steps(client_of(server))


@pytest.mark.parametrize("dialect", ["openai", "azure", "litellm", "bifrost", "xai", "ollama"])
def test_the_server_binds_a_token_to_its_item_id_where_the_api_does(dialect: str) -> None:
    # The API and the gateways that forward items to it unchanged refuse a token under another
    # id; servers that issue their own tokens (xAI, Ollama...) document no such binding.
    binds = dialect not in ("xai", "ollama")
    with CompactionServer(deterministic=True, dialect=dialect) as server:
        client = openai.OpenAI(
            base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10,
            default_headers={"api-key": "sk-test"},
        )  # fmt: skip
        compacted = dumped(client.responses.compact(model=MODEL, input=HISTORY).output)  # type: ignore[arg-type]
        item = compacted[-1]
        assert item["type"] == "compaction"
        # as returned, and without an id: the token alone is enough
        client.responses.compact(model=MODEL, input=[*compacted, NEXT])  # type: ignore[list-item]
        bare = {k: v for k, v in item.items() if k != "id"}
        client.responses.compact(model=MODEL, input=[bare, NEXT])  # type: ignore[list-item]
        reminted = {**item, "id": "cmp_reminted0001"}
        if not binds:
            client.responses.compact(model=MODEL, input=[reminted, NEXT])  # type: ignore[list-item]
            return
        with pytest.raises(openai.BadRequestError, match="item_id did not match"):
            client.responses.compact(model=MODEL, input=[reminted, NEXT])  # type: ignore[list-item]


# -- 2. one compaction item per answer -------------------------------------------------------------
def test_an_answer_with_other_than_one_compaction_item_gets_a_note(
    tmp_path: Path, server: CompactionServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def steps(client: openai.OpenAI) -> None:
        client.responses.compact(model=MODEL, input=HISTORY)  # type: ignore[arg-type]
        client.responses.create(model=MODEL, input=[LONG], context_management=THRESHOLD)  # type: ignore[arg-type, list-item]

    exchanges = record(tmp_path / "kept.yaml", server, steps)
    status, payload = check_json(tmp_path / "kept.yaml", capsys)
    assert status == 0 and notes_of(payload) == []
    compact, create = body_of(exchanges[0].response_body), body_of(exchanges[1].response_body)
    assert [i["type"] for i in create["output"]] == ["message", "compaction"]

    # a backend that segments the compaction (Menci/Floway#314): two items
    first = compact["output"][-1]
    second = {**first, "id": "cmp_second0001"}
    two = save(
        tmp_path / "two.yaml",
        [
            edited(exchanges[0], response={**compact, "output": [*compact["output"], second]}),
            exchanges[1],
        ],
    )
    status, out = check(two, capsys)
    assert status == 0  # valid against the schema: a note, not a failure
    assert (
        f"        note: response /output: 2 compaction item(s) (compaction {first['id']} at "
        f"output[2], compaction cmp_second0001 at output[3]); clients expect exactly one item "
        "of type compaction"
    ) in out

    # none at all, and a compaction_summary item instead (Soju06/codex-lb#998)
    messages = [i for i in compact["output"] if i["type"] != "compaction"]
    summary = [*messages, {**first, "type": "compaction_summary"}]
    shapes = save(
        tmp_path / "shapes.yaml",
        [
            edited(exchanges[0], response={**compact, "output": messages}),
            edited(exchanges[0], response={**compact, "output": summary}),
        ],
    )
    status, payload = check_json(shapes, capsys)
    noted = notes_of(payload)
    assert noted[0].startswith("response /output: 0 compaction item(s) (none); clients expect")
    assert noted[1].startswith(
        f"response /output: 1 compaction item(s) (compaction_summary {first['id']} at output[2])"
    )

    # server-side compaction answering two items
    doubled = {**create, "output": [*create["output"], {**create["output"][-1], "id": "cmp_x2"}]}
    streamed = save(tmp_path / "create.yaml", [edited(exchanges[1], response=doubled)])
    status, out = check(streamed, capsys)
    assert "note: response /output: 2 compaction item(s)" in out
    assert "clients expect at most one item of type compaction" in out


# -- 3. previous_response_id names a stored response -----------------------------------------------
def test_previous_response_id_naming_an_unstored_response_fails(
    tmp_path: Path, server: CompactionServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def stored(client: openai.OpenAI) -> None:
        first = client.responses.create(model=MODEL, input=HISTORY)  # type: ignore[arg-type]
        client.responses.create(model=MODEL, input=[NEXT], previous_response_id=first.id)  # type: ignore[list-item]

    def stateless(client: openai.OpenAI) -> None:
        first = client.responses.create(model=MODEL, input=HISTORY, store=False)  # type: ignore[arg-type]
        again = [*HISTORY, *dumped(first.output), NEXT]
        client.responses.create(model=MODEL, input=again, store=False)  # type: ignore[arg-type]

    caught: list[openai.BadRequestError] = []

    def unstored(client: openai.OpenAI) -> None:
        first = client.responses.create(model=MODEL, input=HISTORY, store=False)  # type: ignore[arg-type]
        with pytest.raises(openai.BadRequestError) as error:
            client.responses.create(model=MODEL, input=[NEXT], previous_response_id=first.id)  # type: ignore[list-item]
        caught.append(error.value)

    for name, steps in (("stored", stored), ("stateless", stateless)):
        record(tmp_path / f"{name}.yaml", server, steps)
        status, out = check(tmp_path / f"{name}.yaml", capsys)
        assert status == 0 and "chain" not in out, name

    exchanges = record(tmp_path / "unstored.yaml", server, unstored)
    assert caught[0].code == "previous_response_not_found"  # what the API answers, too
    first_id = body_of(exchanges[0].response_body)["id"]
    status, out = check(tmp_path / "unstored.yaml", capsys)
    assert status == 1
    assert "  FAIL  chain rule 6 (unstored-previous): exchange 1 previous_response_id\n" in out
    assert (
        f"previous_response_id {first_id} names the response of exchange 0, which was created "
        "with store: false"
    ) in out
    assert f"\"Previous response with id '{first_id}' not found.\"" in out
    status, payload = check_json(tmp_path / "unstored.yaml", capsys)
    (violation,) = payload["cassettes"][0]["chain"]
    assert (violation["rule"], violation["exchange"], violation["pointer"]) == (
        6,
        1,
        "/previous_response_id",
    )
    assert (violation["source_exchange"], violation["source_pointer"]) == (0, "/store")


# -- 4. the threshold passed, and no compaction ----------------------------------------------------
def test_a_threshold_passed_without_compaction_gets_a_note(
    tmp_path: Path, server: CompactionServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def steps(client: openai.OpenAI) -> None:
        client.responses.create(model=MODEL, input=[LONG], context_management=THRESHOLD)  # type: ignore[arg-type, list-item]
        client.responses.create(model=MODEL, input=[NEXT], context_management=THRESHOLD)  # type: ignore[arg-type, list-item]

    exchanges = record(tmp_path / "kept.yaml", server, steps)
    status, payload = check_json(tmp_path / "kept.yaml", capsys)
    assert status == 0 and notes_of(payload) == []  # compacted past it; below it, nothing due
    answer = body_of(exchanges[0].response_body)
    tokens = answer["usage"]["input_tokens"]
    assert tokens >= 1000 and answer["output"][-1]["type"] == "compaction"
    assert [i["type"] for i in body_of(exchanges[1].response_body)["output"]] == ["message"]

    # a gateway dropped context_management: the API never compacted
    dropped = {**answer, "output": answer["output"][:-1]}
    broken = save(tmp_path / "dropped.yaml", [edited(exchanges[0], response=dropped)])
    status, out = check(broken, capsys)
    assert status == 0
    assert (
        "note: response /output: the request's context_management compact_threshold is 1000 "
        f"and its input is {tokens} tokens (usage.input_tokens of the answer), but the answer "
        "holds no compaction item: a gateway between the client and the API probably dropped "
        "context_management"
    ) in out

    # without usage, the documented estimate, and the note says so
    bare = {k: v for k, v in dropped.items() if k != "usage"}
    request = body_of(exchanges[0].request_body)
    counted = {"instructions": request.get("instructions"), "input": request["input"]}
    text = json.dumps(counted, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    estimate = -(-len(text.encode()) // 4)
    no_usage = save(tmp_path / "no_usage.yaml", [edited(exchanges[0], response=bare)])
    status, payload = check_json(no_usage, capsys)
    (note,) = [n for n in notes_of(payload) if "compact_threshold" in n]
    assert f"its input is {estimate} tokens (estimated (no usage recorded) as a quarter" in note


# -- 5. parameters the compact endpoint rejects ----------------------------------------------------
def test_no_parameter_the_current_api_accepts_is_rejected() -> None:
    accepted = set(typing.get_type_hints(response_compact_params.ResponseCompactParams))
    assert {"model", "input", "image", "prompt_cache_options"} <= accepted
    rejected = rejected_parameters()
    assert accepted.isdisjoint(rejected), accepted & rejected
    assert {"include", "store", "stream", "tools", "context_management"} <= rejected
    assert len(available_versions()) >= 5


def test_compact_parameters_the_api_rejects_fail_the_request(
    tmp_path: Path, server: CompactionServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def steps(client: openai.OpenAI) -> None:
        client.responses.compact(
            model=MODEL,
            input=HISTORY,  # type: ignore[arg-type]
            instructions="Be brief.",
            prompt_cache_key="k1",
            prompt_cache_retention="24h",
            service_tier="auto",
            image={"context_compression": "auto"},
        )

    exchanges = record(tmp_path / "kept.yaml", server, steps)
    status, out = check(tmp_path / "kept.yaml", capsys)
    assert status == 0 and "FAIL" not in out
    # a parameter the API added after the spec is drift under that spec, not a failure
    status, out = check(tmp_path / "kept.yaml", capsys, "--version", "2026-08-21")
    assert status == 0 and "pass  exchange 0" in out

    request = body_of(exchanges[0].request_body)
    injected = {
        **request,
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "stream": False,
        "tools": [],
    }
    # the server answers the injected body as the API does
    answered = httpx.post(server.base_url + "/responses/compact", json=injected, timeout=10)
    assert answered.status_code == 400
    assert answered.json()["error"]["code"] == "unknown_parameter"
    broken = save(tmp_path / "injected.yaml", [edited(exchanges[0], request=injected)])
    for version in (None, "2026-08-21"):
        options = ("--version", version) if version else ()
        status, out = check(broken, capsys, *options)
        assert status == 1, version
        for name in ("include", "store", "stream", "tools"):
            assert (
                f"        request: {name}: the compact endpoint rejects this /responses "
                f'parameter (the API answers 400 unknown_parameter: "Unknown parameter: '
                f"'{name}'.\")"
            ) in out
    status, payload = check_json(broken, capsys)
    violations = payload["cassettes"][0]["exchanges"][0]["baseline"]["request"]["violations"]
    assert {v["path"] for v in violations} == {"/include", "/store", "/stream", "/tools"}
    assert {v["keyword"] for v in violations} == {"unknown_parameter"}
    # strict judging reports each once
    status, out = check(broken, capsys, "--strict")
    assert status == 1 and out.count("include: ") == 1


# -- 6. the invalid-encrypted-content fault, and recovery ------------------------------------------
def test_the_fault_refuses_an_issued_token_and_recovery_succeeds(tmp_path: Path) -> None:
    reference = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"
    real = reference / "recorded" / "error-bodies" / "400_invalid_encrypted_content_2025-12.json"
    with CompactionServer(deterministic=True, fault="invalid-encrypted-content") as server:
        client = client_of(server)
        compacted = dumped(client.responses.compact(model=MODEL, input=HISTORY).output)  # type: ignore[arg-type]
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(model=MODEL, input=[*compacted, NEXT])  # type: ignore[list-item]
        error = caught.value
        assert error.status_code == 400 and error.code == "invalid_encrypted_content"
        assert error.param is None and error.type == "invalid_request_error"
        assert error.body == {
            "message": f"The encrypted content for item {compacted[-1]['id']} could not be "
            "verified. Reason: Encrypted content could not be decrypted or parsed.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_encrypted_content",
        }
        if real.is_file():  # the live API's shape
            assert set(json.loads(real.read_text())["error"]) == set(error.body)
        # recovery 1: retry without the compaction item
        kept = [i for i in compacted if i["type"] != "compaction"]
        retried = client.responses.create(model=MODEL, input=[*kept, NEXT])  # type: ignore[list-item]
        assert retried.status == "completed" and retried.output_text == "Echo: And 5+5?"
        # recovery 2: start over from the full history, compacting again
        again = client.responses.compact(model=MODEL, input=[*HISTORY, NEXT])  # type: ignore[list-item]
        assert again.output[-1].type == "compaction"
        # an id-less item is named by its shortened token, as the API names it
        bare = {k: v for k, v in compacted[-1].items() if k != "id"}
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.compact(model=MODEL, input=[bare, NEXT])  # type: ignore[list-item]
        token = bare["encrypted_content"]
        assert caught.value.body[
            "message"
        ].startswith(  # type: ignore[index]
            f"The encrypted content {token[:4]}...{token[-4:]} could not be verified."
        )
    # a token this server never issued is still refused by the normal check (its own param)
    with CompactionServer(deterministic=True) as plain:
        answered = httpx.post(
            plain.base_url + "/responses/compact",
            json={"model": MODEL, "input": [{**bare, "encrypted_content": "gAAAAB" + "x" * 98}]},
            headers={"x-compaction-fault": "invalid-encrypted-content"},
            timeout=10,
        )
        assert answered.json()["error"]["param"] == "input[0].encrypted_content"


def test_the_fault_by_header_with_times_and_its_cassette(
    tmp_path: Path, server: CompactionServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fault.yaml"

    def steps(client: openai.OpenAI) -> None:
        compacted = dumped(client.responses.compact(model=MODEL, input=HISTORY).output)  # type: ignore[arg-type]
        once = {"x-compaction-fault": "invalid-encrypted-content;times=1"}
        with pytest.raises(openai.BadRequestError, match="could not be verified"):
            client.responses.compact(model=MODEL, input=[*compacted, NEXT], extra_headers=once)  # type: ignore[list-item]
        retried = client.with_options(max_retries=0).responses.compact(
            model=MODEL,
            input=[*compacted, NEXT],  # type: ignore[list-item]
            extra_headers={**once, "x-stainless-retry-count": "1"},
        )
        assert retried.output[-1].type == "compaction"

    exchanges = record(path, server, steps)
    assert [e.status for e in exchanges] == [200, 400, 200]
    assert body_of(exchanges[1].response_body)["error"]["code"] == "invalid_encrypted_content"
    status, out = check(path, capsys)
    assert status == 0, out  # the refusal is a valid error answer; the chain holds
    with pytest.raises(httpx.HTTPStatusError):
        httpx.post(
            server.base_url + "/responses/compact",
            json={"model": MODEL, "input": [NEXT]},
            headers={"x-compaction-fault": "invalid-encrypted-content;times=x"},
            timeout=10,
        ).raise_for_status()


@pytest.mark.parametrize("recovery", ["drop the compaction item", "compact the full history"])
def test_the_documented_recovery_after_a_refused_token_keeps_the_chain(
    tmp_path: Path, server: CompactionServer, capsys: pytest.CaptureFixture[str], recovery: str
) -> None:
    refused = {"x-compaction-fault": "invalid-encrypted-content"}

    def continued(compacted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if recovery == "drop the compaction item":
            return [*[i for i in compacted if i["type"] != "compaction"], NEXT]
        return [*HISTORY, NEXT]

    def steps(with_refusal: bool) -> Callable[[openai.OpenAI], None]:
        def run(client: openai.OpenAI) -> None:
            compacted = dumped(client.responses.compact(model=MODEL, input=HISTORY).output)  # type: ignore[arg-type]
            if with_refusal:
                with pytest.raises(openai.BadRequestError, match="could not be verified"):
                    client.responses.compact(
                        model=MODEL,
                        input=[*compacted, NEXT],  # type: ignore[list-item]
                        extra_headers=refused,
                    )
            client.responses.compact(model=MODEL, input=continued(compacted))  # type: ignore[arg-type]

        return run

    recovered = tmp_path / "recovered.yaml"
    assert [e.status for e in record(recovered, server, steps(True))] == [200, 400, 200]
    status, out = check(recovered, capsys)
    assert status == 0, out
    # Without the refusal the same request prunes a good compaction item: rule 1 still holds.
    pruned = tmp_path / "pruned.yaml"
    assert [e.status for e in record(pruned, server, steps(False))] == [200, 200]
    status, out = check(pruned, capsys)
    assert status == 1 and "rule 1 (compact-output): exchange 1 input" in out, out


def test_the_serve_command_takes_the_fault() -> None:
    command = "from pytest_compaction.cli import main; raise SystemExit(main())"
    serve = ["serve", "--port", "0", "--deterministic", "--fault", "invalid-encrypted-content"]
    process = subprocess.Popen(
        [sys.executable, "-c", command, *serve],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=10)
        compacted = dumped(client.responses.compact(model=MODEL, input=HISTORY).output)  # type: ignore[arg-type]
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.compact(model=MODEL, input=[*compacted, NEXT])  # type: ignore[list-item]
        assert caught.value.code == "invalid_encrypted_content"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- through the plugin ---------------------------------------------------------------------------
PLUGIN_TESTS = """
import httpx
import openai
import pytest

BASE = "{base}"
HISTORY = {history}
NEXT = {{"role": "user", "content": "And 5+5?"}}
THRESHOLD = [{{"type": "compaction", "compact_threshold": 1000}}]
LONG = {{"role": "user", "content": "Tell me the story again. " * 400}}


def client():
    return openai.OpenAI(base_url=BASE, api_key="sk-test", max_retries=0, timeout=10)


def dumped(items):
    return [i.model_dump(mode="json", exclude_none=True, warnings=False) for i in items]


@pytest.mark.compaction
def test_kept():
    out = dumped(client().responses.compact(model="gpt-5.4", input=HISTORY).output)
    client().responses.create(model="gpt-5.4", input=[*out, NEXT])


@pytest.mark.compaction
def test_reminted():
    out = dumped(client().responses.compact(model="gpt-5.4", input=HISTORY).output)
    out[-1]["id"] = "cmp_reminted0001"
    with pytest.raises(openai.BadRequestError, match="item_id did not match"):
        client().responses.create(model="gpt-5.4", input=[*out, NEXT])


@pytest.mark.compaction
def test_unstored():
    first = client().responses.create(model="gpt-5.4", input=HISTORY, store=False)
    with pytest.raises(openai.BadRequestError):
        client().responses.create(model="gpt-5.4", input=[NEXT], previous_response_id=first.id)


@pytest.mark.compaction
def test_injected():
    body = {{"model": "gpt-5.4", "input": HISTORY, "include": ["reasoning.encrypted_content"]}}
    assert httpx.post(BASE + "/responses/compact", json=body).status_code == 400


@pytest.mark.compaction
def test_dropped():
    client().responses.create(model="gpt-5.4", input=[LONG], context_management=THRESHOLD)
"""


def test_the_plugin_fails_the_broken_tests_and_notes_the_dropped_threshold(
    pytester: pytest.Pytester, server: CompactionServer, tmp_path: Path
) -> None:
    # test_dropped replays a cassette whose answer lost its compaction item, as behind a
    # gateway that dropped context_management; the others record against the server.
    source = tmp_path / "dropped.yaml"

    def steps(client: openai.OpenAI) -> None:
        client.responses.create(model=MODEL, input=[LONG], context_management=THRESHOLD)  # type: ignore[arg-type, list-item]

    (exchange,) = record(source, server, steps)
    answer = body_of(exchange.response_body)
    save(source, [edited(exchange, response={**answer, "output": answer["output"][:-1]})])
    folder = pytester.path / "cassettes" / "test_p"
    folder.mkdir(parents=True)
    shutil.copy(source, folder / "test_dropped.yaml")

    pytester.makepyfile(test_p=PLUGIN_TESTS.format(base=server.base_url, history=HISTORY))
    result = pytester.runpytest_subprocess(
        "--compaction-record=once", "-p", "no:cacheprovider", "-W", "ignore::UserWarning"
    )
    # a broken rule errors the test at teardown, once every exchange is in; a violation fails it
    result.assert_outcomes(passed=4, failed=1, errors=2)
    out = result.stdout.str()
    assert "ERROR at teardown of test_reminted" in out
    assert "rule 5 (compaction-id): exchange 1 input[" in out
    assert "ERROR at teardown of test_unstored" in out
    assert "rule 6 (unstored-previous): exchange 1 previous_response_id" in out
    assert (
        "request /include: include: the compact endpoint rejects this /responses parameter" in out
    )
    assert "FAILED test_p.py::test_injected" in out
    # the summary counts the tests the cassette failed, teardown refusals included
    result.stdout.fnmatch_lines(["*; 3 test(s) failed by their cassette"])
    result.stdout.fnmatch_lines(
        ["test_p.py::test_reminted (*):", "  failed: compaction chaining: 1 violation(s) in *"]
    )
    assert (
        "note: exchange 0 response /output: the request's context_management compact_threshold"
        in out
    )
    written = {p.stem for p in folder.glob("*.yaml")}
    assert {"test_kept", "test_dropped"} <= written and "test_injected" not in written
