"""Recorded exchanges as data and as the openai SDK's models, without HTTP."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx2
import openai
import pytest
from conftest import Upstream
from openai.types.responses import CompactedResponse

from pytest_compaction._errors import CompactionError
from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.replay._fixtures import load_compacted_responses, load_exchanges
from pytest_compaction.replay._recorder import use_cassette
from pytest_compaction.replay._transport import Httpx2CassetteTransport

CHAIN = "test_openai_responses_compact_with_auto_previous_response_id_chain.yaml"


def _record(path: Path, upstream: Upstream, *texts: str) -> None:
    client = openai.OpenAI(base_url=upstream.base_url, api_key="x", max_retries=0)
    with use_cassette(path, record_mode="once"):
        for text in texts:
            client.responses.compact(model="gpt-5.4", input=[{"role": "user", "content": text}])
        client.models.list()  # a GET that is not a compaction


def test_exchanges_as_data_from_a_real_pydantic_ai_cassette(reference: Path) -> None:
    path = reference / "recorded" / "pydantic-ai" / CHAIN
    raw = json.loads(json.dumps(_parsed_bodies(path)))
    exchanges = load_exchanges(path)
    assert len(exchanges) == 8
    compact = [ex.is_compact for ex in exchanges]
    assert compact == [False, False, True, False, True, False, True, False]
    for ex, (request, response) in zip(exchanges, raw, strict=True):
        assert ex.request == request  # the JSON as recorded, by value
        assert ex.response == response
        assert ex.status == 200 and ex.ok
        assert ex.method == "POST"
        assert ex.header("openai-version") == "2020-10-01"
        assert ex.header("content-type", part="request") == "application/json"
    compacts = load_exchanges(path, compact_only=True)
    assert [ex.index for ex in compacts] == [2, 4, 6]
    assert compacts[0].path == "/v1/responses/compact"
    assert compacts[0].request["input"] == []
    assert compacts[0].request["previous_response_id"].startswith("resp_")


def _parsed_bodies(path: Path) -> list[tuple[object, object]]:
    import yaml

    doc = yaml.safe_load(path.read_text())
    return [
        (item["request"]["parsed_body"], item["response"]["parsed_body"])
        for item in doc["interactions"]
    ]


def test_both_reference_layouts_give_the_same_data(reference: Path) -> None:
    for path in sorted((reference / "recorded" / "pydantic-ai").glob("*.yaml")):
        stock = reference / "recorded" / "pydantic-ai-stock-vcrpy" / path.name
        ours, theirs = load_exchanges(path), load_exchanges(stock)
        assert [(e.request, e.response, e.status) for e in ours] == [
            (e.request, e.response, e.status) for e in theirs
        ], path.name


def test_typed_models_from_real_recordings(reference: Path) -> None:
    path = reference / "recorded" / "pydantic-ai" / CHAIN
    models = load_compacted_responses(path)
    assert len(models) == 3
    data = [ex.response for ex in load_exchanges(path, compact_only=True)]
    for model, body in zip(models, data, strict=True):
        assert isinstance(model, CompactedResponse)
        assert model.id == body["id"]
        assert model.object == "response.compaction"
        assert model.usage.input_tokens == body["usage"]["input_tokens"]
        assert model.output[-1].type == "compaction"
        assert model.output[-1].encrypted_content == body["output"][-1]["encrypted_content"]
    # The very objects the SDK hands to calling code when it receives these responses
    transport = Httpx2CassetteTransport(path, match_on=("method", "path", "body"))
    client = openai.OpenAI(
        base_url="https://api.openai.com/v1",
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )
    for ex, model in zip(load_exchanges(path, compact_only=True), models, strict=True):
        live = client.responses.compact(**ex.request)
        assert type(live) is type(model)
        assert live.model_dump(warnings=False) == model.model_dump(warnings=False)
        assert [type(item) for item in live.output] == [type(item) for item in model.output]


def test_models_from_a_current_recording(tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "c.yaml"
    _record(path, upstream, "one", "two")
    models = load_compacted_responses(path)
    assert [m.id for m in models] == ["resp_0001", "resp_0002"]
    assert models[1].output[0].type == "message"
    assert models[1].usage.input_tokens_details.cache_write_tokens == 0
    everything = load_exchanges(path)
    assert [(e.method, e.is_compact) for e in everything] == [
        ("POST", True),
        ("POST", True),
        ("GET", False),
    ]
    with pytest.raises(CompactionError, match=r"exchange 2 \(GET .*/models\) is not a"):
        everything[2].as_model()


def test_error_responses_and_non_json_bodies(tmp_path: Path) -> None:
    from pytest_compaction.cassette._exchange import CassetteData, Exchange
    from pytest_compaction.cassette._file import save_cassette

    error = {"error": {"message": "bad", "type": "invalid_request_error", "param": None}}
    path = tmp_path / "e.yaml"
    save_cassette(
        path,
        CassetteData(
            [
                Exchange(
                    "POST",
                    "https://api.openai.com/v1/responses/compact",
                    request_body=b'{"model":"m"}',
                    status=400,
                    reason="Bad Request",
                    response_body=json.dumps(error).encode(),
                ),
                Exchange(
                    "POST",
                    "https://api.openai.com/v1/responses/compact",
                    request_body=b'{"model":"m"}',
                    response_body=b"data: not json\n\n",
                ),
            ]
        ),
    )
    bad, text = load_exchanges(path)
    assert (bad.status, bad.ok, bad.response) == (400, False, error)
    with pytest.raises(CompactionError, match="is an error response"):
        bad.as_model()
    assert text.response is None and text.text == "data: not json\n\n"
    with pytest.raises(CompactionError, match="the response body is not a JSON object"):
        text.as_model()
    with pytest.raises(CompactionError, match="not a JSON object"):
        load_compacted_responses(path)


def test_missing_openai_is_a_clear_error(
    tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    _record(path, upstream, "one")
    monkeypatch.setitem(sys.modules, "openai.types.responses", None)
    with pytest.raises(CompactionError, match="needs the openai package: pip install openai"):
        load_compacted_responses(path)
    # plain data needs no SDK
    assert load_exchanges(path)[0].response["id"] == "resp_0001"


def test_missing_cassette_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CompactionError, match=r"cassette .*nope.yaml does not exist"):
        load_exchanges(tmp_path / "nope.yaml")


# ---------------------------------------------------------------------------------------------
# The fixture


def test_fixture_from_the_marker_and_from_indirect_parameters(
    pytester: pytest.Pytester, upstream: Upstream, reference: Path
) -> None:
    cassettes = pytester.path / "cassettes" / "test_consumer"
    _record(cassettes / "history.yaml", upstream, "first", "second")
    real = reference / "recorded" / "pydantic-ai-stock-vcrpy" / CHAIN
    pytester.makepyfile(
        test_consumer=f"""
import pytest
from openai.types.responses import CompactedResponse


def summarize(response):
    # code under test: consumes compaction results, makes no HTTP calls
    return [item.type for item in response.output]


@pytest.mark.compaction("history")
def test_from_marker(compaction_exchanges):
    assert [e.status for e in compaction_exchanges] == [200, 200, 200]
    first = compaction_exchanges[0]
    assert first.request["input"][0]["content"] == "first"
    model = first.as_model()
    assert isinstance(model, CompactedResponse)
    assert summarize(model) == ["message", "compaction"]


@pytest.mark.parametrize(
    "compaction_exchanges", ["history", {str(real)!r}], indirect=True
)
def test_from_parameters(compaction_exchanges):
    compacts = [e for e in compaction_exchanges if e.is_compact]
    assert compacts
    for e in compacts:
        assert summarize(e.as_model())[-1] == "compaction"


def test_without_a_cassette(compaction_exchanges):
    pass


@pytest.mark.parametrize("compaction_exchanges", ["missing"], indirect=True)
def test_missing(compaction_exchanges):
    pass
"""
    )
    upstream.close()  # nothing may reach the network
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*compaction_exchanges needs a cassette: mark the test with "
            "@pytest.mark.compaction('name') or parametrize the fixture with indirect=True*",
            "*compaction_exchanges: cassette *test_consumer/missing.yaml does not exist*",
        ]
    )


def test_loading_is_the_loader_of_every_layout(reference: Path) -> None:
    path = reference / "recorded" / "pydantic-ai-stock-vcrpy" / CHAIN
    exchanges = load_exchanges(path)
    loaded = load_cassette(path).exchanges
    assert [e.response_body for e in exchanges] == [e.response_body for e in loaded]
    assert [e.url for e in exchanges] == [e.uri for e in loaded]
