"""Gateway dialects end to end: the server speaks each one, recordings validate under its profile.

Every test drives real HTTP on 127.0.0.1: the openai SDK (or httpx) against the embedded server
in a dialect, recorded with ``use_cassette`` or the pytest plugin, replayed with the server
stopped, then validated under the dialect's profile and under plain OpenAI's.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from pytest_compaction import CompactionServer, available_versions, use_cassette
from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.cli import main
from pytest_compaction.contract._dialects import (
    DIALECTS,
    DialectError,
    detect_dialect,
    dialect_validator,
    get_dialect,
    kind_of,
    overlaid_document,
    validate_with_dialect,
)
from pytest_compaction.replay._recorder import ReplayError
from pytest_compaction.schema._versions import load_schema_set
from pytest_compaction.server._tokens import DETERMINISTIC_KEY
from pytest_compaction.server._wire import decode_litellm_id, encode_litellm_id, open_litellm_id

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

KEY = "sk-dialect-" + "k3" * 16
AZURE_KEY = "0123456789abcdef0123456789abcdef"
VIRTUAL_KEY = "sk-bf-" + "v9" * 16
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Plan the launch."},
    {"role": "assistant", "content": "Step one: a checklist."},
    {"role": "user", "content": "Summarize it."},
]


@dataclass
class Scenario:
    """How a client talks to one gateway."""

    model: str
    named: bool  # the dialect is given to use_cassette (else detected from the URL)
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)


SCENARIOS = {
    "openai": Scenario("gpt-5.4", named=False),
    "azure": Scenario(
        "my-gpt-deployment",
        named=False,  # detected from the api-version query parameter
        headers={"api-key": AZURE_KEY},
        query={"api-version": "preview"},
    ),
    "litellm": Scenario("openai/gpt-4o", named=True, headers={"x-litellm-api-key": KEY}),
    "truefoundry": Scenario("openai-main/gpt-4o", named=False),  # detected from /api/llm
    "bifrost": Scenario(
        "openai/gpt-4o",
        named=True,
        headers={"x-bf-vk": VIRTUAL_KEY},
        extra_body={"fallbacks": ["openai/gpt-4o-mini"]},
    ),
    "xai": Scenario("grok-4.5", named=True),  # detected from api.x.ai only
    "vercel": Scenario("openai/gpt-5.4", named=True),  # detected from ai-gateway.vercel.sh only
    "vllm": Scenario("Qwen/Qwen3-8B", named=True),  # OpenAI's paths: chosen by name only
    "llamastack": Scenario(
        "openai/gpt-4o",
        named=True,
        headers={"x-llamastack-provider-data": json.dumps({"openai_api_key": KEY})},
    ),
}
# Dialects with a compaction endpoint (OpenRouter compacts on POST /responses only: its own
# tests are in test_dialects_gateways.py).
COMPACTING = tuple(d for d in DIALECTS if get_dialect(d).compact_paths)
# Ollama's compact endpoint reads no previous_response_id and answers an unknown path in plain
# text: its own tests are in test_dialects_plaintext.py.
COMPACTING = tuple(d for d in COMPACTING if d != "ollama")


def run_client(base_url: str, scenario: Scenario) -> list[Any]:
    """A compaction, one chained on it by previous_response_id, and one the server refuses."""
    client = openai.OpenAI(
        base_url=base_url,
        api_key=KEY,
        max_retries=0,
        timeout=5,
        default_headers=scenario.headers,
        default_query=scenario.query,
    )
    compact = client.responses.with_raw_response.compact
    first = compact(model=scenario.model, input=HISTORY, extra_body=scenario.extra_body or None)
    second = compact(
        model=scenario.model,
        input=[{"role": "user", "content": "And the budget?"}],
        previous_response_id=first.parse().id,
    )
    assert second.parse().usage.input_tokens_details.cached_tokens > 0  # the chain was found
    with pytest.raises(openai.BadRequestError) as rejected:
        compact(model=scenario.model, input="x", previous_response_id="resp_unknown")
    return [first.http_response.json(), second.http_response.json(), rejected.value.body]


def exchanges_report(path: Path, dialect: str) -> tuple[list[str], list[str]]:
    """Violations and drift of every exchange of a cassette under a dialect (strict)."""
    violations: list[str] = []
    drift: list[str] = []
    for ex in load_cassette(path).exchanges:
        for kind, raw in (("request", ex.request_body), (kind_of(ex.status), ex.response_body)):
            report = validate_with_dialect(kind, raw, dialect=dialect)  # type: ignore[arg-type]
            violations += [f"{kind} {v.path}: {v.message}" for v in report.violations]
            drift += [f"{kind} {d.path}" for d in report.drift]
    return violations, drift


# -- record, replay offline, validate: one gateway at a time -----------------------------------


@pytest.mark.parametrize("dialect", COMPACTING)
def test_record_replay_validate_through_the_openai_sdk(dialect: str, tmp_path: Path) -> None:
    scenario = SCENARIOS[dialect]
    path = tmp_path / f"{dialect}.yaml"
    named = dialect if scenario.named else None
    with CompactionServer(dialect=dialect, deterministic=True) as server:
        with use_cassette(path, record_mode="once", dialect=named) as recording:
            live = run_client(server.base_url, scenario)
        base_url = server.base_url
    assert (recording.recorded, recording.validated) == (3, 3)
    assert recording.violations == [] and recording.drift == []

    text = path.read_text()
    doc = yaml.safe_load(text)
    assert doc["compaction"]["dialect"] == dialect
    for secret in (KEY, AZURE_KEY, VIRTUAL_KEY):
        assert secret not in text
    for name in scenario.headers:
        assert all(ex["request"]["headers"][name] == ["REDACTED"] for ex in doc["interactions"]), (
            name
        )

    # The server is gone: everything below is served from the cassette, dialect from its header.
    with use_cassette(path, record_mode="none") as replay:
        assert run_client(base_url, scenario) == live
    assert (replay.replayed, replay.validated, replay.recorded) == (3, 3, 0)
    assert replay.dialect == dialect
    assert replay.violations == [] and replay.drift == []

    violations, drift = exchanges_report(path, dialect)
    assert violations == [] and drift == []


def test_litellm_ids_carry_the_upstream_id(tmp_path: Path) -> None:
    with CompactionServer(dialect="litellm", deterministic=True) as server:
        body = {"model": "openai/gpt-4o", "input": "hi"}
        answer = httpx.post(
            f"{server.base_url}/responses/compact", json=body, headers={"x-litellm-api-key": KEY}
        ).json()
    # Sealed by default (LiteLLM's response id security); the plain id is inside.
    assert answer["id"].startswith("resp_") and decode_litellm_id(answer["id"]) is None
    plain = open_litellm_id(answer["id"], DETERMINISTIC_KEY)
    assert plain is not None and decode_litellm_id(plain) == "resp_0001"
    assert decode_litellm_id("resp_0001") is None
    assert decode_litellm_id(encode_litellm_id("resp_x", None)) == "resp_x"


def test_bifrost_extras_are_drift_under_plain_openai(tmp_path: Path) -> None:
    path = tmp_path / "bifrost.yaml"
    with CompactionServer(dialect="bifrost", deterministic=True) as server:
        with use_cassette(path, record_mode="once", dialect="bifrost"):
            run_client(server.base_url, SCENARIOS["bifrost"])
        base_url = server.base_url
    violations, drift = exchanges_report(path, "openai")
    assert violations == []
    assert {
        "request /fallbacks",
        "response /model",
        "response /extra_fields",
        "response /usage/cost",
        "response /usage/input_tokens_details/cached_read_tokens",
        "response /usage/input_tokens_details/cached_write_tokens",
        "error /is_bifrost_error",
        "error /status_code",
        "error /extra_fields",
    } == set(drift)
    # Strict OpenAI replay turns the same drift into failures naming each field.
    with (
        pytest.raises(ReplayError, match=r"/extra_fields: extra_fields: undocumented"),
        use_cassette(path, record_mode="none", dialect="openai", strict=True),
    ):
        run_client(base_url, SCENARIOS["bifrost"])


def test_litellm_aliases_replay_for_each_other_only_under_the_dialect(tmp_path: Path) -> None:
    path = tmp_path / "alias.yaml"
    body = {"model": "openai/gpt-4o", "input": "hi"}
    auth = {"x-litellm-api-key": KEY}
    with CompactionServer(dialect="litellm", deterministic=True) as server:
        with use_cassette(path, record_mode="once", dialect="litellm"):
            url = f"{server.url}/v1/responses/compact"
            recorded = httpx.post(url, json=body, headers=auth).json()
        origin = server.url
    with use_cassette(path, dialect="litellm") as replay:
        answer = httpx.post(f"{origin}/responses/compact", json=body, headers=auth).json()
        assert answer == recorded
    assert replay.replayed == 1
    with (
        pytest.raises(ReplayError, match="cannot be replayed"),
        use_cassette(path, dialect="openai"),
    ):
        httpx.post(f"{origin}/responses/compact", json=body)


# -- every answer of the server validates under its dialect's profile ---------------------------


def _send(client: httpx.Client, path: str, body: Any, **headers: str) -> tuple[int, Any]:
    response = client.post(path, json=body, headers=headers)
    return response.status_code, response.json()


def answers_of(dialect: str) -> list[tuple[str, int, Any]]:
    """(case, status, body) for a range of requests to a server in ``dialect``."""
    profile = get_dialect(dialect)
    model = SCENARIOS[dialect].model
    route = profile.compact_paths[0]
    # A compaction path of another gateway (the plain server answers them all, so: none).
    elsewhere = {"openai": "/v2/responses/compact", "truefoundry": "/v1/responses/compact"}.get(
        dialect, "/api/llm/responses/compact"
    )
    out: list[tuple[str, int, Any]] = []
    auth = {"authorization": f"Bearer {KEY}"}
    with (
        CompactionServer(dialect=dialect, context_window=300) as server,
        httpx.Client(base_url=server.url, timeout=5, headers=auth) as client,
    ):
        status, first = _send(client, route, {"model": model, "input": HISTORY})
        out.append(("ok", status, first))
        chained = {"model": model, "input": "more", "previous_response_id": first["id"]}
        out.append(("chained", *_send(client, route, chained)))
        folded = {"model": model, "input": [first["output"][-1], {"role": "user", "content": "b"}]}
        out.append(("token", *_send(client, route, folded)))
        out.append(("no model", *_send(client, route, {"input": "x"})))
        out.append(("unknown", *_send(client, route, {"model": model, "temperature": 1})))
        out.append(("too long", *_send(client, route, {"model": model, "input": "x" * 4000})))
        missing = {"model": model, "previous_response_id": "resp_missing"}
        out.append(("not found", *_send(client, route, missing)))
        for fault in ("429", "500", "503;retry-after=2"):
            fault_body = {"model": model, "input": "x"}
            out.append((fault, *_send(client, route, fault_body, **{"x-compaction-fault": fault})))
        out.append(("route", *_send(client, elsewhere, {"model": model})))
        if dialect == "azure":
            bare = httpx.post(f"{server.url}{route}", json={"model": model, "input": "x"})
            out.append(("no key", bare.status_code, bare.json()))
            versioned = f"{route}?api-version=2020-01-01"
            out.append(("api-version", *_send(client, versioned, {"model": model})))
        if dialect == "truefoundry":
            out.append(("unprefixed", *_send(client, route, {"model": "gpt-4o", "input": "x"})))
        if dialect == "bifrost":
            bad = {"model": model, "input": "x", "fallbacks": "gpt-4o"}
            out.append(("fallbacks", *_send(client, route, bad)))
            out.append(("no provider", *_send(client, "/v1/responses/compact", {"model": "m"})))
    return out


@pytest.mark.parametrize("dialect", COMPACTING)
def test_every_server_answer_validates_strictly_under_its_dialect(dialect: str) -> None:
    answers = answers_of(dialect)
    for case, status, body in answers:
        report = validate_with_dialect(kind_of(status), body, dialect=dialect, strict=True)
        assert report.valid, (case, status, body, [v.message for v in report.violations])
    statuses = {case: status for case, status, _ in answers}
    assert statuses["ok"] == statuses["chained"] == statuses["token"] == 200
    assert statuses["no model"] == statuses["unknown"] == statuses["too long"] == 400
    assert (statuses["429"], statuses["500"], statuses["503;retry-after=2"]) == (429, 500, 503)
    assert statuses["route"] == 404
    errors = {case: body for case, status, body in answers if status >= 400}
    if dialect == "litellm":
        assert all(body["error"]["code"] == str(statuses[c]) for c, body in errors.items())
        # The proxy refuses a request without a model itself; the upstream's errors come
        # wrapped in LiteLLM's text.
        assert errors["no model"]["error"]["provider_specific_fields"] == {
            "error": errors["no model"]["error"]["message"]
        }
        assert errors["unknown"]["error"]["message"].startswith(
            "litellm.BadRequestError: OpenAIException - "
        )
    if dialect == "bifrost":
        assert errors["429"]["is_bifrost_error"] is False  # the upstream failed
        assert errors["fallbacks"]["is_bifrost_error"] is True  # the gateway refused
        assert errors["no provider"]["status_code"] == 400
        assert errors["429"]["extra_fields"]["model_requested"] == "gpt-4o"
    if dialect == "azure":
        assert errors["no key"] == {
            "error": {"code": "401", "message": errors["no key"]["error"]["message"]}
        }
        assert statuses["no key"] == 401 and statuses["api-version"] == 400
    if dialect == "truefoundry":
        assert errors["unprefixed"]["error"]["param"] == "model"


def test_a_bifrost_error_envelope_passes_only_under_bifrost() -> None:
    with CompactionServer(dialect="bifrost") as server:
        response = httpx.post(
            f"{server.base_url}/responses/compact",
            json={"model": "openai/gpt-4o", "input": "x"},
            headers={"x-compaction-fault": "429;retry-after=1"},
        )
    body = response.json()
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert body["error"]["code"] == "rate_limit_exceeded" and "param" not in body["error"]
    report = validate_with_dialect("error", body, dialect="bifrost", strict=True)
    assert report.valid and not report.drift
    plain = validate_with_dialect("error", body, dialect="openai")
    assert [v.message for v in plain.violations] == ["error: missing required property 'param'"]
    assert {d.path for d in plain.drift} == {"/is_bifrost_error", "/status_code", "/extra_fields"}
    # The envelope replaces OpenAI's error shape: an OpenAI error body is not a Bifrost one.
    openai_shaped = {"error": {"message": "m", "type": "t", "param": None, "code": None}}
    report = validate_with_dialect("error", openai_shaped, dialect="bifrost")
    assert {v.message for v in report.violations} == {
        "body: missing required property 'is_bifrost_error'",
        "body: missing required property 'extra_fields'",
        "error.code: expected string, got null",  # Bifrost omits an unknown code, never nulls it
    }


# -- a broken gateway field is a violation naming it --------------------------------------------


def _bifrost_answer() -> dict[str, Any]:
    with CompactionServer(dialect="bifrost", deterministic=True) as server:
        response = httpx.post(
            f"{server.base_url}/responses/compact", json={"model": "gpt-4o", "input": "hi"}
        )
    answer: dict[str, Any] = response.json()
    return answer


def test_a_broken_dialect_field_is_a_violation_naming_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = _bifrost_answer()
    answer["usage"]["cost"]["total_cost"] = "0.01"
    answer["extra_fields"]["latency"] = -1
    report = validate_with_dialect("response", answer, dialect="bifrost")
    assert [(v.path, v.message) for v in report.violations] == [
        ("/extra_fields/latency", "extra_fields.latency: -1 is less than the minimum of 0"),
        ("/usage/cost/total_cost", "usage.cost.total_cost: expected number, got string"),
    ]
    file = tmp_path / "answer.json"
    file.write_text(json.dumps(answer))
    assert main(["validate", "--kind", "response", "--dialect", "bifrost", str(file)]) == 1
    out = capsys.readouterr().out
    assert "2 violations (response, " in out and ", dialect bifrost)" in out
    assert "error: usage.cost.total_cost: expected number, got string" in out
    # Plain OpenAI does not know the field: not a violation, a drift note.
    assert main(["validate", "--kind", "response", str(file)]) == 0
    out = capsys.readouterr().out
    assert "drift: usage.cost: undocumented property" in out
    assert main(["validate", "--kind", "response", "--dialect", "bifrost", "--format", "json",
                 str(file)]) == 1  # fmt: skip
    assert json.loads(capsys.readouterr().out)[0]["dialect"] == "bifrost"


def test_litellm_ids_and_status_codes_are_checked() -> None:
    answer = _bifrost_answer()
    del answer["model"], answer["extra_fields"], answer["usage"]["cost"]
    report = validate_with_dialect("response", answer, dialect="litellm")
    assert [v.path for v in report.violations] == ["/id"]
    assert "does not match the pattern" in report.violations[0].message
    error = {"error": {"message": "m", "type": "t", "param": None, "code": "rate_limit"}}
    assert [
        v.path for v in validate_with_dialect("error", error, dialect="litellm").violations
    ] == ["/error/code"]
    request = {"model": "gpt-4o", "input": "x"}
    report = validate_with_dialect("request", request, dialect="truefoundry")
    assert [v.path for v in report.violations] == ["/model"]
    assert validate_with_dialect("request", request, dialect="openai").valid


def test_litellm_encrypted_ids_are_accepted_plain_upstream_ids_are_not() -> None:
    # With a master key the proxy encrypts the routing string (NaCl secret box, or AES-GCM
    # behind "v2:gcm:"), base64url-encoded: long, opaque, never an upstream id.
    answer = _bifrost_answer()
    del answer["model"], answer["extra_fields"], answer["usage"]["cost"]
    sealed = bytes(range(256))[:150]
    for accepted in (
        "resp_" + base64.urlsafe_b64encode(sealed).decode(),
        "resp_v2:gcm:" + base64.urlsafe_b64encode(sealed[:120]).decode(),
        encode_litellm_id("resp_x", None),
    ):
        answer["id"] = accepted
        assert validate_with_dialect("response", answer, dialect="litellm").valid, accepted
    for refused in ("resp_0d4b654a05c1a7a70069deb79f81b88197a19f61e394151ecc", "resp_!" * 20):
        answer["id"] = refused
        report = validate_with_dialect("response", answer, dialect="litellm")
        assert [v.path for v in report.violations] == ["/id"], refused


# -- profiles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://res.openai.azure.com/openai/v1/responses/compact", "azure"),
        ("http://127.0.0.1:9/openai/v1/responses/compact?api-version=preview", "azure"),
        ("https://gw.example/api/llm/responses/compact", "truefoundry"),
        ("/api/llm/responses/compact/", "truefoundry"),
        ("https://api.openai.com/v1/responses/compact", None),
        ("http://127.0.0.1:4000/openai/v1/responses/compact", None),
        ("http://127.0.0.1:4000/responses/compact", None),
        ("https://res.openai.azure.com/openai/v1/models", None),
    ],
)
def test_detect_dialect_only_where_unambiguous(uri: str, expected: str | None) -> None:
    found = detect_dialect(uri)
    assert (found.name if found else None) == expected


def test_every_overlay_applies_to_every_bundled_version() -> None:
    answer = _bifrost_answer()
    for version in available_versions():
        for dialect in DIALECTS:
            for kind in ("request", "response", "error"):
                validator = dialect_validator(kind, version, dialect)  # type: ignore[arg-type]
                overlay = get_dialect(dialect).overlay(kind)  # type: ignore[arg-type]
                if overlay is None:
                    continue
                document = validator.document
                assert "x-overlay" not in document
                if overlay["x-overlay"] == "replace":
                    assert set(overlay) - {"$schema", "$comment", "x-overlay", "$defs"} == {"$ref"}
        report = dialect_validator("response", version, "bifrost").validate(answer)
        # Older versions predate cache_write_tokens; the Bifrost fields themselves always pass.
        assert all("cost" not in v.path and "extra" not in v.path for v in report.violations)


def test_an_overlay_naming_an_unknown_definition_is_refused() -> None:
    base = load_schema_set(None).document("response")
    overlay = {"x-overlay": "extend", "$defs": {"ResponseUsge": {"properties": {}}}}
    with pytest.raises(DialectError, match=r"extends \$defs/ResponseUsge, which this schema"):
        overlaid_document(base, overlay, "test overlay")
    assert "ResponseUsge" not in base["$defs"]  # the cached document is untouched


def test_unknown_dialects_are_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DialectError, match="known dialects: openai, azure, litellm"):
        get_dialect("kong")
    with (
        pytest.raises(DialectError, match="unknown dialect 'kong'"),
        use_cassette(tmp_path / "c.yaml", dialect="kong"),
    ):
        pass
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--kind", "request", "--dialect", "kong", "x.json"])
    assert exit_info.value.code == 2


def test_cassettes_without_a_dialect_still_load_and_detect(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    with CompactionServer(dialect="truefoundry", deterministic=True) as server:
        with use_cassette(path, record_mode="once"):
            httpx.post(
                f"{server.base_url}/responses/compact",
                json={"model": "openai-main/gpt-4o", "input": "hi"},
            )
        base_url = server.base_url
    doc = yaml.safe_load(path.read_text())
    assert doc["compaction"]["dialect"] == "truefoundry"
    del doc["compaction"]["dialect"]  # as written before dialects existed
    path.write_text(yaml.safe_dump(doc))
    assert load_cassette(path).dialect is None
    with use_cassette(path) as replay:
        httpx.post(
            f"{base_url}/responses/compact",
            json={"model": "openai-main/gpt-4o", "input": "hi"},
        )
    assert replay.dialect is None and replay.validated == 1
    assert replay.dialect_for(replay.exchanges[0].uri).name == "truefoundry"


# -- the plugin: marker, ini key and option ----------------------------------------------------

GATEWAYS = """
import openai
import pytest

LITELLM = "{litellm}"
BIFROST = "{bifrost}"
HISTORY = [{{"role": "user", "content": "hello"}}, {{"role": "assistant", "content": "hi"}}]


@pytest.mark.compaction(dialect="litellm")
def test_litellm(compaction_cassette):
    client = openai.OpenAI(base_url=LITELLM, api_key="{key}", max_retries=0)
    first = client.responses.compact(model="openai/gpt-4o", input=HISTORY)
    assert first.id.startswith("resp_") and len(first.id) > 300  # sealed: LiteLLM's default
    client.responses.compact(model="openai/gpt-4o", input="more", previous_response_id=first.id)
    assert compaction_cassette.validated == 2


@pytest.mark.compaction
def test_bifrost(compaction_cassette):
    client = openai.OpenAI(base_url=BIFROST, api_key="{key}", max_retries=0,
                           default_headers={{"x-bf-vk": "{vk}"}})
    out = client.responses.compact(model="openai/gpt-4o", input=HISTORY,
                                   extra_body={{"fallbacks": ["openai/gpt-4o-mini"]}})
    assert out.model_extra["extra_fields"]["provider"] == "openai"
    with pytest.raises(openai.RateLimitError):
        client.responses.compact(model="openai/gpt-4o", input=HISTORY,
                                 extra_headers={{"x-compaction-fault": "429"}})
    assert compaction_cassette.validated == 2
"""


def test_plugin_marker_ini_and_option_select_the_dialect(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncompaction_dialect = bifrost\n")
    with (
        CompactionServer(dialect="litellm") as litellm,
        CompactionServer(dialect="bifrost") as bifrost,
    ):
        pytester.makepyfile(
            test_gateways=GATEWAYS.format(
                litellm=litellm.base_url, bifrost=bifrost.base_url, key=KEY, vk=VIRTUAL_KEY
            )
        )
        recorded = pytester.runpytest_inprocess("--compaction-record=once")
    recorded.assert_outcomes(passed=2)
    recorded.stdout.fnmatch_lines(["*4 exchange(s) recorded*4 validated; 0 violation(s), 0 drift*"])
    folder = pytester.path / "cassettes" / "test_gateways"
    for name, dialect in (("test_litellm", "litellm"), ("test_bifrost", "bifrost")):
        text = (folder / f"{name}.yaml").read_text()
        assert yaml.safe_load(text)["compaction"]["dialect"] == dialect
        assert KEY not in text and VIRTUAL_KEY not in text

    # Servers stopped. Replay under the recorded dialects...
    replayed = pytester.runpytest_inprocess()
    replayed.assert_outcomes(passed=2)
    replayed.stdout.fnmatch_lines(["*4 replayed, 4 validated; 0 violation(s), 0 drift*"])

    # ...and with the option forcing plain OpenAI: the marker still wins for LiteLLM; Bifrost's
    # extras become drift notes and its error envelope (no 'param') a violation.
    plain = pytester.runpytest_inprocess("--compaction-dialect=openai")
    plain.assert_outcomes(passed=1, failed=1)
    plain.stdout.fnmatch_lines(
        [
            "*exchange 1 of cassette*test_bifrost.yaml does not conform to schema version*",
            "*response (status 429) /error/param: error: missing required property 'param'*",
            "*drift: exchange 0 response /extra_fields: extra_fields: undocumented property*",
        ]
    )
    bad = pytester.runpytest_inprocess("--compaction-dialect=kong")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    pytester.makeini("[pytest]\ncompaction_dialect = kong\n")
    bad = pytester.runpytest_inprocess()
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


# -- serve --dialect -----------------------------------------------------------------------------


def test_serve_speaks_the_dialect() -> None:
    command = [sys.executable, "-c", "from pytest_compaction.cli import main; main()"]
    process = subprocess.Popen(
        [*command, "serve", "--dialect", "truefoundry", "--deterministic"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.endswith("/api/llm")
        client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=5)
        out = client.responses.compact(model="openai-main/gpt-4o", input="hi")
        assert out.id == "resp_0001"
        with pytest.raises(openai.BadRequestError, match="provider account"):
            client.responses.compact(model="gpt-4o", input="hi")
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
