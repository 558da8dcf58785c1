"""The chaining contract across the exchanges of a cassette (``check_chain``) and its edges.

Evidence comes from three places: the real pydantic-ai recordings in ../shared (which keep every
rule), the same recordings mutated and written back as cassette files (for ``POST /responses``,
which the embedded server does not answer), and conversations recorded over real HTTP with the
openai SDK against the embedded server (standalone compaction, ``previous_response_id``, and a
changed ``encrypted_content`` that the server refuses with 400).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import pytest_compaction
from pytest_compaction.cassette._exchange import CassetteData, Exchange
from pytest_compaction.cassette._file import load_cassette, save_cassette
from pytest_compaction.cli import main
from pytest_compaction.contract._chain import (
    ChainError,
    ChainViolation,
    check_chain,
    check_conversation,
)
from pytest_compaction.replay._recorder import ReplayError, use_cassette
from pytest_compaction.server import CompactionServer

MODEL = "gpt-5.4"
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
    {"role": "assistant", "content": "3 + 3 = 6."},
]
NEXT = {"role": "user", "content": "And 5+5?"}
FOLDERS = ("pydantic-ai", "pydantic-ai-stock-vcrpy")
# The SDK parses a re-issued user message as an output message and warns when serializing its
# input_text parts back; the bytes it sends are the ones it received.
SDK_WARNING = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")


# -- helpers ---------------------------------------------------------------------------------------
@pytest.fixture
def recorded(reference: Path) -> list[Path]:
    folders = [reference / "recorded" / name for name in FOLDERS]
    for folder in folders:
        if not folder.is_dir():
            pytest.skip(f"{folder} not found (only in a full checkout)")
    return folders


def real(recorded: list[Path], name: str) -> list[list[Exchange]]:
    """The exchanges of one recording, in both layouts."""
    return [
        load_cassette(folder / f"test_openai_responses_{name}.yaml").exchanges
        for folder in recorded
    ]


def request_of(exchange: Exchange) -> dict[str, Any]:
    body = json.loads(exchange.request_body or b"")
    assert isinstance(body, dict)
    return body


def with_input(exchange: Exchange, items: list[Any], **fields: Any) -> Exchange:
    body = {**request_of(exchange), "input": items, **fields}
    return replace(exchange, request_body=json.dumps(body).encode())


def output_of(exchange: Exchange) -> list[dict[str, Any]]:
    """The returned output, read without the code under test (streams: response.completed)."""
    text = exchange.response_body.decode()
    if text.lstrip().startswith("event:"):
        for line in text.splitlines():
            if line.startswith("data: ") and '"response.completed"' in line[:40]:
                return list(json.loads(line[6:])["response"]["output"])
        raise AssertionError("no response.completed event")
    return list(json.loads(text)["output"])


def stream_tokens(exchange: Exchange, event: str) -> list[str]:
    """The compaction tokens a stream carries in ``event`` events."""
    out = []
    for line in exchange.response_body.decode().splitlines():
        if line.startswith("data: "):
            data = json.loads(line[6:])
            item = data.get("item") or {}
            if data.get("type") == event and item.get("type") == "compaction":
                out.append(item["encrypted_content"])
    return out


def as_file(tmp_path: Path, exchanges: list[Exchange], name: str = "chain.yaml") -> list[Exchange]:
    """Written as a cassette file and loaded back, as ``check`` and the plugin read them."""
    path = tmp_path / name
    save_cassette(path, CassetteData(exchanges=exchanges))
    return load_cassette(path).exchanges


def one_char_changed(token: str, at: int = 40) -> str:
    return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]


def only(violations: list[ChainViolation]) -> ChainViolation:
    assert len(violations) == 1, [str(v) for v in violations]
    return violations[0]


def assessed(violations: list[ChainViolation]) -> list[tuple[int, int, str]]:
    return [(v.rule, v.exchange, v.pointer) for v in violations]


# -- the real recordings keep every rule ---------------------------------------------------------
def test_the_public_names() -> None:
    assert pytest_compaction.check_chain is check_chain
    assert pytest_compaction.check_conversation is check_conversation
    assert pytest_compaction.ChainViolation is ChainViolation


def test_every_real_pydantic_ai_recording_keeps_the_rules(recorded: list[Path]) -> None:
    files = [path for folder in recorded for path in sorted(folder.glob("*.yaml"))]
    assert len(files) == 14
    for path in files:
        assert check_chain(load_cassette(path).exchanges) == [], path.name


# -- rule 1: the compact output passed as returned -----------------------------------------------
@pytest.fixture
def server() -> Iterator[CompactionServer]:
    with CompactionServer(deterministic=True) as srv:
        yield srv


def record_sdk(
    tmp_path: Path,
    server: CompactionServer,
    steps: Callable[[openai.OpenAI], None],
    *,
    broken: bool = False,
) -> list[Exchange]:
    """Run ``steps`` with the openai SDK against the server, recorded into a cassette file.

    The recorder checks the chain itself; a ``broken`` chain is recorded with that check off
    (and the check is shown to fail it), so that the cassette can be examined.
    """
    path = tmp_path / "sdk.yaml"
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10)
    with use_cassette(path, record_mode="once", check_chain=not broken):
        steps(client)
    if broken:
        # Replaying nothing: the check reads the exchanges of the cassette itself.
        with pytest.raises(ReplayError, match=r"rule \d \(") as caught, use_cassette(path):
            pass
        assert f"cassette {path}" in str(caught.value)
    return load_cassette(path).exchanges


@SDK_WARNING
def test_rule_1_kept_over_http(tmp_path: Path, server: CompactionServer) -> None:
    def steps(client: openai.OpenAI) -> None:
        compacted = client.responses.compact(model=MODEL, input=HISTORY)  # type: ignore[arg-type]
        # as the gateways document it, then as pydantic-ai does: only the compaction item
        client.responses.compact(model=MODEL, input=[*compacted.output, NEXT])  # type: ignore[list-item]
        client.responses.compact(model=MODEL, input=[compacted.output[-1], NEXT])  # type: ignore[list-item]

    exchanges = record_sdk(tmp_path, server, steps)
    assert [ex.status for ex in exchanges] == [200, 200, 200]
    assert check_chain(exchanges) == []


MUTATIONS: dict[str, tuple[Callable[[list[dict[str, Any]]], list[Any]], str, str]] = {
    # name: (next input from the returned output, pointer, words of the message)
    "compaction item pruned": (lambda out: [*out[:-1], NEXT], "/input", "is missing"),
    "items reordered": (lambda out: [out[1], out[0], out[2], NEXT], "/input/0", "out of order"),
    "item modified": (
        lambda out: [
            {**out[0], "content": [{"type": "input_text", "text": "What is 2+3?"}]},
            *out[1:],
            NEXT,
        ],
        "/input/0",
        "content[0].text is 'What is 2+3?', was 'What is 2+2?'",
    ),
}


@SDK_WARNING
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_rule_1_broken_over_http(tmp_path: Path, server: CompactionServer, mutation: str) -> None:
    change, pointer, words = MUTATIONS[mutation]

    def steps(client: openai.OpenAI) -> None:
        compacted = client.responses.compact(model=MODEL, input=HISTORY)  # type: ignore[arg-type]
        returned = [item.to_dict() for item in compacted.output]
        client.responses.compact(model=MODEL, input=change(returned))

    exchanges = record_sdk(tmp_path, server, steps, broken=True)
    violation = only(check_chain(exchanges))
    assert (violation.rule, violation.name, violation.exchange) == (1, "compact-output", 1)
    assert violation.pointer == pointer
    assert violation.source_exchange == 0
    assert words in violation.message
    if mutation == "compaction item pruned":
        assert violation.item is None
        assert violation.source_pointer == "/output/2"
        assert "compaction cmp_" in violation.message
    else:
        assert violation.item == 0


def test_rule_1_items_after_the_compaction_item(recorded: list[Path], tmp_path: Path) -> None:
    """An item the compact output returns after its compaction item may not be left out."""
    for exchanges in real(recorded, "compact_messages"):
        compact = exchanges[2]
        body = json.loads(compact.response_body)
        after = {
            "id": "msg_after",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_text", "text": "And 4+4?"}],
        }
        body["output"].append(after)
        compact = replace(compact, response_body=json.dumps(body).encode())
        cmp = body["output"][2]
        cases = {
            "kept": ([cmp, after, NEXT], []),
            "dropped": ([cmp, NEXT], [(1, 3, "/input")]),
            "inserted": ([cmp, NEXT, after], [(1, 3, "/input/1")]),
            "reordered": ([after, cmp, NEXT], [(1, 3, "/input/0")]),
        }
        for name, (items, expected) in cases.items():
            chain = as_file(tmp_path, [*exchanges[:2], compact, with_input(exchanges[3], items)])
            found = check_chain(chain)
            assert assessed(found) == expected, (name, [str(v) for v in found])
            if name == "dropped":
                assert found[0].source_pointer == "/output/3"
                assert "message msg_after (user)" in found[0].message


# -- rule 2: stateless chaining with server-side compaction --------------------------------------
def follow_up(exchanges: list[Exchange], items: list[Any]) -> list[Exchange]:
    """The real stateful-mode recording with a fifth request continuing the fourth."""
    return [*exchanges, with_input(exchanges[3], items)]


def judged(
    exchanges: list[Exchange], items: list[Any], folder: Path | None
) -> list[ChainViolation]:
    chain = follow_up(exchanges, items)
    return check_chain(as_file(folder, chain) if folder is not None else chain)


@pytest.mark.parametrize("name", ["compact_stateful_mode", "compact_stateful_mode_stream"])
def test_rule_2_kept_and_broken(recorded: list[Path], tmp_path: Path, name: str) -> None:
    for layout, exchanges in enumerate(real(recorded, name)):
        sent = request_of(exchanges[3])["input"]
        (k,) = [i for i, item in enumerate(sent) if item.get("type") == "compaction"]
        cmp, question = sent[k], sent[k + 1]
        (answer,) = output_of(exchanges[3])
        text = answer["content"][0]["text"]
        rendered = {"role": "assistant", "content": text}  # pydantic-ai's way of passing it back
        more = {"role": "user", "content": "And 6+6?"}

        # Through a cassette file for the first layout (writing large streams is slow).
        folder = tmp_path if layout == 0 else None

        # Everything before the most recent compaction item may go; nothing after it.
        assert judged(exchanges, [cmp, question, rendered, more], folder) == []
        assert check_chain(follow_up(exchanges, [cmp, question, answer, more])) == []
        assert check_chain(follow_up(exchanges, [*sent, rendered, more])) == []

        violation = only(judged(exchanges, [cmp, rendered, more], folder))
        assert (violation.rule, violation.name, violation.exchange) == (2, "stateless-chain", 4)
        assert (violation.source_exchange, violation.source_pointer) == (3, f"/input/{k + 1}")
        assert "message (user)" in violation.message and "is missing" in violation.message

        violation = only(check_chain(follow_up(exchanges, [cmp, question, more])))
        assert (violation.rule, violation.exchange, violation.pointer) == (2, 4, "/input")
        assert (violation.source_exchange, violation.source_pointer) == (3, "/output/0")

        # The recorded fourth request without its compaction item.
        pruned = with_input(exchanges[3], [item for item in sent if item is not cmp])
        violation = only(check_chain([*exchanges[:3], pruned]))
        assert (violation.rule, violation.exchange, violation.pointer) == (2, 3, "/input")
        assert violation.source_exchange == 2 and "compaction cmp_" in violation.message

        # A re-rendered message whose text changed is reported where it stands.
        changed = {"role": "assistant", "content": text + " The end."}
        violation = only(check_chain(follow_up(exchanges, [cmp, question, changed, more])))
        assert (violation.rule, violation.pointer) == (2, "/input/2")
        assert "The end." in violation.message


# -- rule 3: stateful chaining with previous_response_id -----------------------------------------
@SDK_WARNING
def test_rule_3_over_http(tmp_path: Path, server: CompactionServer) -> None:
    def steps(client: openai.OpenAI) -> None:
        compacted = client.responses.compact(model=MODEL, input=HISTORY)  # type: ignore[arg-type]
        client.responses.compact(
            model=MODEL,
            previous_response_id=compacted.id,
            input=[NEXT],  # type: ignore[list-item]
        )
        client.responses.compact(
            model=MODEL,
            previous_response_id=compacted.id,
            input=[*compacted.output, NEXT],  # type: ignore[list-item]
        )

    exchanges = record_sdk(tmp_path, server, steps, broken=True)
    assert [ex.status for ex in exchanges] == [200, 200, 200]
    found = check_chain(exchanges)
    assert assessed(found) == [(3, 2, "/input/0"), (3, 2, "/input/1"), (3, 2, "/input/2")]
    assert [v.source_pointer for v in found] == ["/output/0", "/output/1", "/output/2"]
    for violation in found:
        assert violation.name == "stateful-chain" and violation.source_exchange == 0
        assert "previous_response_id resp_" in violation.message


def test_rule_3_on_the_real_chain(recorded: list[Path], tmp_path: Path) -> None:
    for exchanges in real(recorded, "compact_with_auto_previous_response_id_chain"):
        first_question = request_of(exchanges[0])["input"][0]
        (answer,) = output_of(exchanges[0])
        rendered = {"role": "assistant", "content": answer["content"][0]["text"]}
        new = request_of(exchanges[1])["input"]
        # The second request sends the whole history again beside previous_response_id.
        resent = [*exchanges[:1], with_input(exchanges[1], [first_question, rendered, *new])]
        found = check_chain(as_file(tmp_path, resent))
        assert assessed(found) == [(3, 1, "/input/0"), (3, 1, "/input/1")]
        assert [v.source_pointer for v in found] == ["/input/0", "/output/0"]
        # Only the model's answer, as returned (with its id), sent again.
        resent = [*exchanges[:1], with_input(exchanges[1], [answer, *new])]
        violation = only(check_chain(as_file(tmp_path, resent)))
        assert (violation.rule, violation.exchange, violation.pointer) == (3, 1, "/input/0")
        # A compact of the chain that resends an item of the response it names.
        compact = with_input(exchanges[2], [answer])
        violation = only(check_chain(as_file(tmp_path, [*exchanges[:2], compact])))
        assert (violation.rule, violation.exchange, violation.source_exchange) == (3, 2, 0)


# -- rule 4: encrypted_content byte-identical ----------------------------------------------------
def test_rule_4_over_http(tmp_path: Path, server: CompactionServer) -> None:
    def steps(client: openai.OpenAI) -> None:
        compacted = client.responses.compact(model=MODEL, input=HISTORY)  # type: ignore[arg-type]
        cmp = compacted.output[-1].to_dict()
        cmp["encrypted_content"] = one_char_changed(str(cmp["encrypted_content"]))
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.compact(model=MODEL, input=[cmp, NEXT])  # type: ignore[list-item]
        assert refused.value.code == "invalid_encrypted_content"

    exchanges = record_sdk(tmp_path, server, steps, broken=True)
    assert [ex.status for ex in exchanges] == [200, 400]
    violation = only(check_chain(exchanges))
    assert (violation.rule, violation.name, violation.exchange) == (4, "encrypted-content", 1)
    assert violation.pointer == "/input/0/encrypted_content" and violation.item == 0
    assert (violation.source_exchange, violation.source_pointer) == (0, "/output/2")
    assert "first difference at character 40" in violation.message


def test_rule_4_on_the_real_recordings(recorded: list[Path], tmp_path: Path) -> None:
    for exchanges in real(recorded, "compact_with_auto_previous_response_id_chain"):
        cmp, question = request_of(exchanges[5])["input"]
        changed = {**cmp, "encrypted_content": one_char_changed(cmp["encrypted_content"], 100)}
        chain = [*exchanges[:5], with_input(exchanges[5], [changed, question]), *exchanges[6:]]
        violation = only(check_chain(as_file(tmp_path, chain)))
        assert (violation.rule, violation.exchange, violation.pointer) == (
            4,
            5,
            "/input/0/encrypted_content",
        )
        assert violation.source_exchange == 4
        # Without its id, the changed item still stands where the compaction item belongs.
        message = output_of(exchanges[4])[0]
        anonymous = {k: v for k, v in changed.items() if k != "id"}
        chain = [*exchanges[:5], with_input(exchanges[5], [message, anonymous, question])]
        found = check_chain(as_file(tmp_path, chain))
        assert assessed(found) == [(4, 5, "/input/1/encrypted_content"), (1, 5, "/input/1")]
        assert "id is missing" in found[1].message


def test_rule_4_streams_re_encrypt(recorded: list[Path]) -> None:
    """The tokens of .added, .done and response.completed differ; each one goes back."""
    for exchanges in real(recorded, "compact_stateful_mode_stream"):
        (added,) = stream_tokens(exchanges[2], "response.output_item.added")
        (done,) = stream_tokens(exchanges[2], "response.output_item.done")
        (completed,) = [
            i["encrypted_content"] for i in output_of(exchanges[2]) if i["type"] == "compaction"
        ]
        assert len({added, done, completed}) == 3
        sent = request_of(exchanges[3])["input"]
        (k,) = [i for i, item in enumerate(sent) if item.get("type") == "compaction"]
        assert sent[k]["encrypted_content"] == done  # what pydantic-ai sent, answered with 200
        for token, expected in (
            (completed, []),
            (added, []),
            (one_char_changed(added), [(4, 3, f"/input/{k}/encrypted_content")]),
        ):
            items = [*sent[:k], {**sent[k], "encrypted_content": token}, *sent[k + 1 :]]
            chain = [*exchanges[:3], with_input(exchanges[3], items)]
            assert assessed(check_chain(chain)) == expected


# -- the library function for plain JSON ---------------------------------------------------------
def next_input(compacted: dict[str, Any], message: dict[str, Any], *, buggy: bool) -> list[Any]:
    """A user's conversation logic: the buggy version keeps only the messages."""
    kept = (
        [i for i in compacted["output"] if i["type"] == "message"] if buggy else compacted["output"]
    )
    return [*kept, message]


@pytest.mark.parametrize("buggy", [False, True])
def test_check_conversation_on_a_users_logic(server: CompactionServer, buggy: bool) -> None:
    turns: list[tuple[Any, Any, str]] = []
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        body: dict[str, Any] = {"model": MODEL, "input": HISTORY}
        for _ in range(3):
            response = http.post("/responses/compact", json=body)
            assert response.status_code == 200
            turns.append((body, response.json(), str(response.url)))
            body = {"model": MODEL, "input": next_input(response.json(), NEXT, buggy=buggy)}
    found = check_conversation(turns)
    if not buggy:
        assert found == []
        return
    assert assessed(found) == [(1, 1, "/input"), (1, 2, "/input")]
    assert "rule 1 (compact-output): exchange 1 input: compaction cmp_" in str(found[0])


def test_check_conversation_reads_streams_and_refuses_what_is_not_a_turn(
    recorded: list[Path],
) -> None:
    exchanges = real(recorded, "compact_stateful_mode_stream")[1]
    turns: list[tuple[Any, Any, str]] = [
        (ex.request_body, ex.response_body.decode(), ex.uri) for ex in exchanges
    ]
    assert check_conversation(turns) == []
    sent = request_of(exchanges[3])["input"]
    pruned = [item for item in sent if item.get("type") != "compaction"]
    turns[3] = ({**request_of(exchanges[3]), "input": pruned}, None, "/v1/responses")
    assert assessed(check_conversation(turns)) == [(2, 3, "/input")]

    cases: list[tuple[list[Any], str]] = [
        ([("{}", None)], "turn 0: expected a (request, response, path) triple"),
        ([({}, None, "/v1/models")], "turn 0: '/v1/models' is not a /responses"),
        ([("{not json", None, "/v1/responses")], "turn 0: the request is not JSON"),
        ([({}, None, "/v1/responses"), ({}, "[1]", "/v1/responses")], "turn 1: the response"),
    ]
    for bad, words in cases:
        with pytest.raises(ChainError, match=words.replace("(", r"\(").replace(")", r"\)")):
            check_conversation(bad)


def test_bad_bodies_never_raise(recorded: list[Path]) -> None:
    """Mutated exchanges (bodies cut, items replaced by junk) give results, never tracebacks."""
    rng = random.Random(5)
    pool = [
        exchanges
        for name in (
            "compact_messages",
            "compact_with_auto_previous_response_id_chain",
            "compact_stateful_mode",
        )
        for exchanges in real(recorded, name)[:1]
    ]
    junk: list[Any] = [
        None,
        1,
        "x",
        [],
        {},
        {"id": 3},
        {"type": "compaction"},
        [{"id": None}],
        {"type": ["message"], "role": {"a": 1}, "content": {"b": [2]}},
        {"role": "assistant", "content": [None, 3, {"text": 4}]},
        {"encrypted_content": 5, "id": "cmp_x"},
    ]

    def mutate(value: Any) -> Any:
        if isinstance(value, dict) and value and rng.random() < 0.7:
            key = rng.choice(list(value))
            value = dict(value)
            value[key] = rng.choice(junk) if rng.random() < 0.3 else mutate(value[key])
        elif isinstance(value, list) and value and rng.random() < 0.7:
            value = list(value)
            i = rng.randrange(len(value))
            value[i] = rng.choice(junk) if rng.random() < 0.3 else mutate(value[i])
        return value

    for _ in range(150):
        exchanges = list(rng.choice(pool))
        i = rng.randrange(len(exchanges))
        ex = exchanges[i]
        if rng.random() < 0.5:
            ex = replace(ex, request_body=json.dumps(mutate(request_of(ex))).encode())
        else:
            raw = json.dumps(mutate(json.loads(ex.response_body))).encode()
            ex = replace(
                ex, response_body=raw[: rng.randrange(len(raw) + 1)] if rng.random() < 0.2 else raw
            )
        exchanges[i] = ex
        assert isinstance(check_chain(exchanges), list)


# -- edges: the check command and the proxy fixture ----------------------------------------------
def test_check_command_reports_chain_violations(
    recorded: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exchanges = real(recorded, "compact_messages")[0]
    returned = output_of(exchanges[2])
    question = request_of(exchanges[3])["input"][-1]
    kept = tmp_path / "kept.yaml"
    save_cassette(kept, CassetteData(exchanges=exchanges))
    broken = tmp_path / "broken.yaml"
    pruned = with_input(exchanges[3], [*returned[:-1], question])
    save_cassette(broken, CassetteData(exchanges=[*exchanges[:3], pruned]))

    assert main(["check", str(kept), "--version", "2026-05-13"]) == 0
    assert "chain" not in capsys.readouterr().out

    assert main(["check", str(broken), "--version", "2026-05-13"]) == 1
    out = capsys.readouterr().out
    assert "  FAIL  chain rule 1 (compact-output): exchange 3 input\n" in out
    assert "compaction cmp_" in out and "is missing from the input (pruned)" in out
    assert out.count("  pass  exchange ") == 4  # each exchange is valid on its own
    assert "; 1 chaining violation(s)" in out

    assert main(["check", str(broken), "--version", "2026-05-13", "--format", "json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["passed"] is False and payload["summary"]["chain_violations"] == 1
    (violation,) = payload["cassettes"][0]["chain"]
    assert (violation["rule"], violation["name"], violation["exchange"]) == (1, "compact-output", 3)
    assert (violation["source_exchange"], violation["source_pointer"]) == (2, "/output/2")

    assert main(["check", str(broken), "--version", "2026-05-13", "--format", "junit"]) == 1
    junit = capsys.readouterr().out
    assert 'tests="5" failures="1" errors="0"' in junit  # 4 exchanges and the broken rule
    assert 'type="ChainViolation"' in junit and "rule 1 (compact-output)" in junit


PROXY_TESTS = """
import httpx
import pytest

HISTORY = {history}
NEXT = {{"role": "user", "content": "And 5+5?"}}


def compact(url, items):
    r = httpx.post(url + "/responses/compact", json={{"model": "gpt-5.4", "input": items}})
    assert r.status_code == 200, r.text
    return r.json()["output"]


@pytest.mark.compaction_proxy(upstream="{upstream}")
def test_kept(compaction_proxy):
    compact(compaction_proxy, [*compact(compaction_proxy, HISTORY), NEXT])


@pytest.mark.compaction_proxy(upstream="{upstream}")
def test_pruned(compaction_proxy):
    compact(compaction_proxy, [*compact(compaction_proxy, HISTORY)[:-1], NEXT])
"""


def test_the_proxy_fixture_fails_a_test_that_breaks_a_rule(
    pytester: pytest.Pytester, server: CompactionServer
) -> None:
    pytester.makepyfile(test_p=PROXY_TESTS.format(history=HISTORY, upstream=server.base_url))
    result = pytester.runpytest("--compaction-record=once")
    result.assert_outcomes(passed=2, errors=1)
    out = result.stdout.str()
    assert "ERROR at teardown of test_pruned" in out
    assert "compaction chaining: 1 violation(s) in this test's proxy session" in out
    assert "rule 1 (compact-output): exchange 1 input: compaction cmp_" in out
    # the proxy's counts reach the plugin's terminal summary: two tests, two compactions each
    result.stdout.fnmatch_lines(
        [
            "2 test(s) with cassettes: 4 exchange(s) recorded, 0 replayed, 4 validated; "
            "0 violation(s), 0 drift note(s); 1 test(s) failed by their cassette"
        ]
    )
    result.stdout.fnmatch_lines(
        ["test_p.py::test_pruned (*):", "  failed: compaction chaining: 1 violation(s) in *"]
    )
