"""Recorded-fixture unit tests on the corpus, written the way a project starts its own.

Copy a cassette from ``cassettes/`` to ``tests/cassettes/<module>/<test>.yaml`` (the plugin's
layout) and drop the ``cassette=`` argument, or name the file as here. Nothing is recorded and
nothing reaches the network: the plugin replays (record mode ``none``, its default), the openai
SDK issues the recorded requests and gets the recorded answers back, every exchange validated
again on the way. The corpus was recorded with the origin ``http://127.0.0.1:8000``; replay
matches method, path, query and body, never the host, so any base URL on that path works.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import openai
import pytest

from pytest_compaction import use_cassette
from pytest_compaction.replay._recorder import ReplayError

CORPUS = Path(__file__).resolve().parents[2] / "cassettes"
ORIGIN = "http://127.0.0.1:8000"
MODEL = "gpt-5.4"
HISTORY: list[Any] = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]
NEXT = {"role": "user", "content": "And 5+5?"}
MORE = {"role": "user", "content": "And 6+6?"}
# The SDK parses a re-issued user message as an output message and warns when serializing its
# input_text parts back; the bytes it sends are the ones it received.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"),
    pytest.mark.skipif(
        not CORPUS.is_dir() and not (CORPUS.parent / ".git").exists(),
        reason=f"no corpus at {CORPUS} (only in a full checkout)",
    ),
]


def cassette(name: str) -> str:
    return str(CORPUS / name)


def dumped(items: Any) -> list[Any]:
    return [i.model_dump(mode="json", exclude_none=True, warnings=False) for i in items]


@pytest.fixture
def client() -> openai.OpenAI:
    # No retries: a retry would be a second request the cassette does not hold.
    return openai.OpenAI(base_url=f"{ORIGIN}/v1", api_key="sk-test", max_retries=0, timeout=5)


@pytest.mark.compaction(cassette=cassette("scenarios/plain.yaml"))
def test_compact_a_conversation(client: openai.OpenAI, compaction_cassette: Any) -> None:
    history = [
        {"role": "system", "content": "You are a terse assistant for a bicycle shop."},
        {"role": "user", "content": "Do you fix tubeless tyres?"},
        {"role": "assistant", "content": "Yes, same day if you drop the wheel off by noon."},
        {"role": "user", "content": "And what does a sealant top-up cost?"},
    ]
    compacted = client.responses.compact(model=MODEL, input=history)  # type: ignore[arg-type]
    assert compacted.id == "resp_0001"
    assert [item.type for item in compacted.output] == ["message", "message", "compaction"]
    assert compacted.output[-1].encrypted_content.startswith("gAAAAA")  # type: ignore[union-attr]
    assert compaction_cassette.replayed == 1 and compaction_cassette.recorded == 0
    assert compaction_cassette.violations == []
    compaction_cassette.assert_all_played()


@pytest.mark.compaction(cassette=cassette("chains/compact-then-responses.yaml"))
def test_pass_the_compact_output_on(client: openai.OpenAI, compaction_cassette: Any) -> None:
    compacted = client.responses.compact(model=MODEL, input=HISTORY)  # type: ignore[arg-type]
    # the full output, as returned, then the new message: what the cassette recorded
    answer = client.responses.create(model=MODEL, input=[*dumped(compacted.output), NEXT])
    assert answer.output_text == "Echo: And 5+5?"
    follow = client.responses.create(model=MODEL, previous_response_id=answer.id, input=[MORE])  # type: ignore[list-item]
    assert follow.previous_response_id == answer.id
    assert follow.usage is not None and follow.usage.input_tokens_details.cached_tokens > 0
    compaction_cassette.assert_all_played()


@pytest.mark.compaction(cassette=cassette("streams/server-side-compaction.yaml"))
def test_a_streamed_turn_compacts_server_side(
    client: openai.OpenAI, compaction_cassette: Any
) -> None:
    long = {"role": "user", "content": "Tell me the story again. " * 200}
    stream = client.responses.create(
        model=MODEL,
        input=[long, NEXT],  # type: ignore[list-item]
        context_management=[{"type": "compaction", "compact_threshold": 1000}],  # type: ignore[list-item]
        stream=True,
    )
    events = list(stream)  # replayed one event at a time, as the server sent them
    done = [e.item.type for e in events if e.type == "response.output_item.done"]
    assert done == ["message", "compaction"]
    assert events[-1].type == "response.completed"
    final = events[-1].response
    assert [item.type for item in final.output] == ["message", "compaction"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    compaction_cassette.assert_all_played()


@pytest.mark.compaction(cassette=cassette("scenarios/error-429.yaml"))
def test_the_rate_limit_error_replays(client: openai.OpenAI) -> None:
    history = [
        {"role": "system", "content": "You are a terse assistant for a bicycle shop."},
        {"role": "user", "content": "Do you fix tubeless tyres?"},
        {"role": "assistant", "content": "Yes, same day if you drop the wheel off by noon."},
        {"role": "user", "content": "And what does a sealant top-up cost?"},
    ]
    with pytest.raises(openai.RateLimitError) as caught:
        client.responses.compact(model=MODEL, input=history)  # type: ignore[arg-type]
    assert caught.value.status_code == 429 and caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"] == "0"


@pytest.mark.compaction(cassette=cassette("dialects/azure/compaction.yaml"))
def test_through_the_azure_dialect(compaction_cassette: Any) -> None:
    azure = openai.OpenAI(
        base_url=f"{ORIGIN}/openai/v1",
        api_key="not-a-key",
        default_headers={"api-key": "not-a-key"},
        max_retries=0,
    )
    compacted = azure.responses.compact(model="shop-assistant-deployment", input=HISTORY)  # type: ignore[arg-type]
    azure.responses.create(
        model="shop-assistant-deployment",
        input=[*dumped(compacted.output), NEXT],
    )
    assert compaction_cassette.dialect == "azure"  # the cassette's, validated under its profile
    compaction_cassette.assert_all_played()


def test_the_library_replays_without_the_marker(client: openai.OpenAI) -> None:
    # use_cassette works outside pytest too; record_mode "none" is its default.
    litellm = client.with_options(base_url=f"{ORIGIN}/v1")
    with use_cassette(cassette("dialects/litellm/compaction.yaml"), record_mode="none") as rec:
        compacted = litellm.responses.compact(model=MODEL, input=HISTORY)  # type: ignore[arg-type]
        answer = litellm.responses.create(model=MODEL, input=[*dumped(compacted.output), NEXT])
    # LiteLLM seals the upstream id into its own (resp_ + base64 of nonce, tag, ciphertext)
    assert compacted.id.startswith("resp_") and len(compacted.id) > 300
    assert answer.output_text == "Echo: And 5+5?"
    assert (rec.replayed, rec.recorded, rec.violations) == (2, 0, [])
    assert rec.dialect == "litellm"


def test_a_breaks_cassette_fails_the_replay(client: openai.OpenAI) -> None:
    # What the test of a client that re-mints compaction ids sees: the recorded answers come
    # back (the refusal too), and when the block ends the cassette fails the chaining rule it
    # breaks.
    with (
        pytest.raises(ReplayError, match=r"rule 5 \(compaction-id\): exchange 1 input\[2\]\.id"),
        use_cassette(cassette("checks/compaction-id/breaks.yaml")),
    ):
        out = dumped(client.responses.compact(model=MODEL, input=HISTORY).output)  # type: ignore[arg-type]
        out[-1]["id"] = "cmp_reminted0001"
        with pytest.raises(openai.BadRequestError, match="item_id did not match"):
            client.responses.create(model=MODEL, input=[*out, NEXT])


# The README's example, as a user writes it after copying the cassette into the plugin's layout.
README_EXAMPLE = """
import openai, pytest

HISTORY = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]

@pytest.mark.compaction   # cassettes/test_chat/test_pass_the_compact_output_on.yaml
def test_pass_the_compact_output_on(compaction_cassette):
    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="sk-test", max_retries=0)
    compacted = client.responses.compact(model="gpt-5.4", input=HISTORY)
    items = [i.model_dump(mode="json", exclude_none=True) for i in compacted.output]
    answer = client.responses.create(
        model="gpt-5.4", input=[*items, {"role": "user", "content": "And 5+5?"}]
    )
    assert answer.output_text == "Echo: And 5+5?"
    follow = client.responses.create(
        model="gpt-5.4",
        previous_response_id=answer.id,
        input=[{"role": "user", "content": "And 6+6?"}],
    )
    assert follow.previous_response_id == answer.id
    compaction_cassette.assert_all_played()
"""


def test_the_readme_example_runs_on_a_copied_cassette(pytester: pytest.Pytester) -> None:
    folder = pytester.path / "cassettes" / "test_chat"
    folder.mkdir(parents=True)
    source = CORPUS / "chains" / "compact-then-responses.yaml"
    shutil.copy(source, folder / "test_pass_the_compact_output_on.yaml")
    pytester.makepyfile(test_chat=README_EXAMPLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore::UserWarning")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "1 test(s) with cassettes: 0 exchange(s) recorded, 3 replayed, 3 validated" in out
    # replay left the copy as it was
    assert (folder / "test_pass_the_compact_output_on.yaml").read_bytes() == source.read_bytes()
