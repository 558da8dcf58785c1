"""Schemas derived for ``POST /responses``: request, response object, stream events.

The derivation's new files (their facts, their determinism, the defects they record), the
validator and the command on the new kinds, folders derived before them, and the real
recordings of server-side compaction (plain and streamed) validated under each version.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REFERENCE

from pytest_compaction import VersionError, validate
from pytest_compaction.schema._derive import RESPONSES_FILES, derive, strict_name
from pytest_compaction.schema._spec import Spec, load_spec
from pytest_compaction.schema._validate import get_validator
from pytest_compaction.schema._versions import (
    BETA_KINDS,
    COMPACT_KINDS,
    KINDS,
    RESPONSES_KINDS,
    SchemaSet,
)

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schemas"
SPECS = REFERENCE / "openai-openapi"
RECORDED = REFERENCE / "recorded" / "pydantic-ai-stock-vcrpy"
CLI = [sys.executable, "-m", "pytest_compaction"]
OLD, MAY, JULY, NEW = (
    "2026-04-13_tryAGI-85fe06bb6f18",
    "2026-05-13_5162af98d314",
    "2026-07-15_535f5dc97632",
    "2026-08-21_f85dbe223d40",
)
VERSIONS = (OLD, MAY, JULY, NEW)
ITEM_EVENTS = ("response.output_item.added", "response.output_item.done", "response.completed")


def manifest(version: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((COMMITTED / version / "manifest.json").read_bytes())
    return data


def document(version: str, kind: str, strict: bool = False) -> dict[str, Any]:
    name = f"{kind}.strict.schema.json" if strict else f"{kind}.schema.json"
    data: dict[str, Any] = json.loads((COMMITTED / version / name).read_bytes())
    return data


def messages(report: Any) -> list[str]:
    return [v.message for v in report.violations]


# -- the committed files --------------------------------------------------------------------
def test_kinds_name_the_new_documents() -> None:
    assert COMPACT_KINDS == ("request", "response", "error")
    assert RESPONSES_KINDS == ("responses.request", "responses.response", "responses.event")
    assert BETA_KINDS == ("beta.request", "beta.response")
    assert KINDS == COMPACT_KINDS + RESPONSES_KINDS + BETA_KINDS
    assert tuple(f"{kind}.schema.json" for kind in RESPONSES_KINDS) == RESPONSES_FILES


@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_has_the_responses_documents_listed_in_its_manifest(version: str) -> None:
    facts = manifest(version)
    for filename in RESPONSES_FILES:
        for name in (filename, strict_name(filename)):
            assert (COMMITTED / version / name).is_file(), name
            assert name in facts["files"], name
    responses = facts["responses"]
    assert responses["path"] == "/responses" and responses["method"] == "post"
    assert responses["operationId"] == "createResponse"
    assert (responses["request"], responses["response"], responses["event"]) == (
        "CreateResponse",
        "Response",
        "ResponseStreamEvent",
    )
    roots = ("CreateResponse", "Response", "ResponseStreamEvent")
    for kind, root in zip(RESPONSES_KINDS, roots, strict=True):
        assert document(version, kind)["$ref"] == f"#/$defs/{root}"
    assert set(ITEM_EVENTS) | {"error"} <= set(responses["event_types"])
    assert "compaction" in responses["output_item_types"]
    assert "compaction" in responses["input_item_types"]
    # the compaction operation's own facts are untouched
    assert facts["operation"]["operationId"] == "Compactconversation"


def test_compaction_trigger_is_an_input_item_of_the_newer_specs_only() -> None:
    has_trigger = {
        v: "compaction_trigger" in manifest(v)["responses"]["input_item_types"] for v in VERSIONS
    }
    assert has_trigger == {OLD: False, MAY: False, JULY: True, NEW: True}
    trigger = {"type": "compaction_trigger"}
    body = {"model": "gpt-5", "input": [{"role": "user", "content": "hi"}, trigger]}
    assert validate("responses.request", body, version=NEW).valid
    report = validate("responses.request", body, version=MAY)
    assert not report.valid
    assert 'unknown type "compaction_trigger"' in messages(report)[0]


def test_context_management_is_validated_as_declared() -> None:
    def body(entries: Any) -> dict[str, Any]:
        return {"model": "gpt-4.1", "input": "hi", "context_management": entries}

    for version in VERSIONS:
        good = [{"type": "compaction", "compact_threshold": 1000}]
        assert validate("responses.request", body(good), version=version, strict=True).valid
        assert validate("responses.request", body([{"type": "compaction"}]), version=version).valid
        nulled = [{"type": "compaction", "compact_threshold": None}]
        assert validate("responses.request", body(nulled), version=version).valid
        assert validate("responses.request", body(None), version=version).valid
    low = validate("responses.request", body([{"type": "compaction", "compact_threshold": 999}]))
    assert [(v.path, v.keyword) for v in low.violations] == [
        ("/context_management/0/compact_threshold", "minimum")
    ]
    assert "less than the minimum of 1000" in messages(low)[0]
    fractional = [{"type": "compaction", "compact_threshold": 1500.5}]
    assert not validate("responses.request", body(fractional)).valid
    untyped = validate("responses.request", body([{"compact_threshold": 2000}]))
    assert messages(untyped) == ["context_management[0]: missing required property 'type'"]
    assert not validate("responses.request", body([])).valid  # minItems 1
    wrong = validate("responses.request", {"model": "m", "stream": "yes", "store": 1})
    assert {v.path for v in wrong.violations} == {"/stream", "/store"}


def test_a_compaction_item_passed_back_is_checked_like_any_input_item() -> None:
    item = {"type": "compaction", "id": "cmp_1", "encrypted_content": "gAAAAB" + "x" * 40}
    user = {"role": "user", "content": "next"}
    for version in VERSIONS:
        body = {"model": "m", "input": [item, user], "previous_response_id": None}
        assert validate("responses.request", body, version=version, strict=True).valid
    no_token = {"type": "compaction", "id": "cmp_1"}
    report = validate("responses.request", {"model": "m", "input": [no_token]})
    assert messages(report) == [
        "input[0] (type=compaction): missing required property 'encrypted_content'"
    ]


def test_response_requires_what_its_allof_parts_declare() -> None:
    """``Response`` requires ``model``, ``tools``... declared by sibling allOf parts: kept."""
    for version in VERSIONS:
        defects = manifest(version)["responses"]["defects"]
        dropped = [d for d in defects if d["kind"] == "required-undefined"]
        assert not [d for d in dropped if d["location"].startswith("Response/")], version
        third = document(version, "responses.response")["$defs"]["Response"]["allOf"][2]
        assert {"model", "tools", "metadata", "tool_choice", "temperature", "top_p"} <= set(
            third["required"]
        )


def test_defects_of_the_responses_closures_are_in_the_manifest() -> None:
    for version in VERSIONS:
        defects = manifest(version)["responses"]["defects"]
        kinds = {(d["kind"], d["location"]) for d in defects}
        assert ("null-in-example", "ModelResponseProperties/properties/user") in kinds
        assert ("null-in-example", "Response/allOf/2/properties/usage") in kinds
        assert ("required-undefined", "ResponseAudioDoneEvent/required") in kinds
        assert defects == sorted(defects, key=lambda d: (d["kind"], d["location"], d["detail"]))
        # the compaction operation's list is what it was: no null-in-example there
        assert not [d for d in manifest(version)["defects"] if d["kind"] == "null-in-example"]


def test_stream_events_dispatch_on_their_type() -> None:
    events = document(NEW, "responses.event")
    root = events["$defs"]["ResponseStreamEvent"]
    assert "anyOf" not in root and "oneOf" not in root
    # One switch on "type": known values are dispatched, a missing or unknown one falls through.
    assert root["if"]["required"] == ["type"]
    assert "response.completed" in root["if"]["properties"]["type"]["enum"]
    assert root["else"]["required"] == ["type"]
    unknown = validate("responses.event", {"type": "response.teleported", "sequence_number": 1})
    [violation] = unknown.violations
    assert violation.path == "/type"
    assert 'unknown type "response.teleported"' in violation.message
    added = {
        "type": "response.output_item.added",
        "output_index": 1,
        "sequence_number": 7,
        "item": {"type": "compaction", "id": "cmp_1"},
    }
    report = validate("responses.event", added)
    assert messages(report) == [
        "item (type=compaction): missing required property 'encrypted_content'"
    ]
    error = {"type": "error", "code": None, "message": "boom", "param": None, "sequence_number": 3}
    assert validate("responses.event", error, strict=True).valid
    del error["message"]
    assert messages(validate("responses.event", error)) == [
        "body: missing required property 'message'"
    ]


def response_body() -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1776297292,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": "gpt-4.1",
        "output": [
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}
                ],
            },
            {"id": "cmp_1", "type": "compaction", "encrypted_content": "gAAAAB" + "y" * 40},
        ],
        "parallel_tool_calls": True,
        "metadata": {},
        "tool_choice": "auto",
        "tools": [],
        "temperature": 1.0,
        "top_p": 1.0,
        "usage": {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 15,
        },
    }


def test_response_objects_stay_open_and_report_undocumented_fields_as_drift() -> None:
    body = response_body()
    validator = get_validator("responses.response", NEW)
    assert validator.is_clean(body)  # the strict variant closes Response as a whole
    assert validate("responses.response", body, version=NEW, strict=True).valid
    body["store"] = True
    body["output"][1]["created_by"] = "x"
    report = validate("responses.response", body, version=NEW)
    assert report.valid
    assert not validator.is_clean(body)
    assert [d.message for d in report.drift] == ["store: undocumented property"]
    strict = validate("responses.response", body, version=NEW, strict=True)
    assert messages(strict) == ["store: undocumented property (strict)"]
    del body["model"]
    assert "body: missing required property 'model'" in messages(
        validate("responses.response", body, version=NEW)
    )


def test_nulls_the_spec_shows_in_its_own_examples_are_accepted_and_no_others() -> None:
    body = response_body()
    body.update(user=None, usage=None)
    assert validate("responses.response", body, version=MAY, strict=True).valid
    body["prompt_cache_key"] = None
    report = validate("responses.response", body, version=MAY)
    assert messages(report) == ["prompt_cache_key: expected string, got null"]
    assert validate("responses.response", body, version=NEW).valid  # declared nullable there
    body["model"] = None
    assert not validate("responses.response", body, version=NEW).valid


def test_cache_write_tokens_is_required_from_the_july_spec_on() -> None:
    body = response_body()
    del body["usage"]["input_tokens_details"]["cache_write_tokens"]
    verdicts = {v: validate("responses.response", body, version=v).valid for v in VERSIONS}
    assert verdicts == {OLD: True, MAY: True, JULY: False, NEW: False}


# -- reading schema sets ----------------------------------------------------------------------
def older_folder(tmp_path: Path, responses: Any = "absent") -> Path:
    """A folder as derived before the POST /responses documents existed."""
    folder = tmp_path / "older"
    folder.mkdir()
    for kind in COMPACT_KINDS:
        for name in (f"{kind}.schema.json", f"{kind}.strict.schema.json"):
            (folder / name).write_bytes((COMMITTED / NEW / name).read_bytes())
    facts = manifest(NEW)
    del facts["responses"]
    if responses != "absent":
        facts["responses"] = responses
    (folder / "manifest.json").write_text(json.dumps(facts))
    return folder


def test_an_older_folder_still_validates_compaction_and_names_the_missing_file(
    tmp_path: Path,
) -> None:
    folder = older_folder(tmp_path)
    assert validate("request", {"model": "gpt-5"}, version=str(folder)).valid
    schema_set = SchemaSet("older", folder, json.loads((folder / "manifest.json").read_bytes()))
    for kind in RESPONSES_KINDS:
        for strict in (False, True):
            with pytest.raises(VersionError) as caught:
                schema_set.document(kind, strict=strict)
            text = str(caught.value)
            assert f"{kind}.schema.json is missing from {folder}" in text
            assert "pytest-compaction schemas derive" in text
    with pytest.raises(VersionError, match=r"responses\.event\.schema\.json is missing"):
        validate("responses.event", {"type": "error"}, version=str(folder))


def test_a_spec_without_post_responses_says_so(tmp_path: Path) -> None:
    folder = older_folder(tmp_path, responses=None)
    schema_set = SchemaSet("x", folder, json.loads((folder / "manifest.json").read_bytes()))
    with pytest.raises(VersionError, match="its spec declares no POST /responses operation"):
        schema_set.document("responses.request")
    with pytest.raises(VersionError, match=r"unknown schema kind 'responses\.nothing'"):
        schema_set.document("responses.nothing")  # type: ignore[arg-type]


def test_the_compaction_kinds_compile_without_reading_the_new_documents() -> None:
    """The cold-start path (compaction validators) never reads or compiles the new kinds."""
    probe = (
        "import pytest_compaction as pc, pytest_compaction.schema._versions as v\n"
        "for version in pc.available_versions():\n"
        "    for kind in ('request', 'response', 'error'):\n"
        "        pc.get_validator(kind, version)\n"
        "sets = [v.load_schema_set(n) for n in pc.available_versions()]\n"
        "print(','.join(sorted({k for s in sets for k, _ in s._documents})))\n"
        "pc.validate('responses.event', {'type': 'error'})\n"
        "newest = pc.newest_version()\n"
        "print(','.join(sorted({k for k, _ in v.load_schema_set(newest)._documents})))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    before, after = run.stdout.split()
    assert before.split(",") == ["error", "request", "response"]
    assert "responses.event" in after.split(",")


# -- the command -------------------------------------------------------------------------------
def test_validate_command_takes_the_new_kinds(tmp_path: Path) -> None:
    good = tmp_path / "event.json"
    good.write_text(
        json.dumps(
            {
                "type": "response.output_item.done",
                "output_index": 1,
                "sequence_number": 9,
                "item": {"type": "compaction", "id": "cmp_1", "encrypted_content": "gAAAAB"},
            }
        )
    )
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "response.output_item.done", "output_index": "1"}))
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"model": "m", "context_management": [{"type": "compaction"}]}))
    older = older_folder(tmp_path)
    runs = [
        subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
        for args in (
            ["validate", "--kind", "responses.event", "--version", "2026-05", str(good)],
            ["validate", "--kind", "responses.event", str(bad)],
            ["validate", "--kind", "responses.request", "--format", "json", str(request)],
            ["validate", "--kind", "responses.response", "--version", str(older), str(good)],
        )
    ]
    ok, failing, as_json, missing = runs
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{good}: valid (responses.event, {MAY})")
    assert failing.returncode == 1
    assert "output_index: expected integer, got string" in failing.stdout
    assert "missing required property 'item'" in failing.stdout
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)[0]["kind"] == "responses.request"
    assert missing.returncode == 2
    assert "responses.response.schema.json is missing" in missing.stderr
    assert "Traceback" not in missing.stderr


# -- determinism of the derivation -------------------------------------------------------------
@cache
def may_spec() -> Spec:
    return load_spec(SPECS / f"{MAY}_openapi.yaml")


def reordered(node: Any) -> Any:
    """The same document with every mapping's keys in reverse order."""
    if isinstance(node, dict):
        return {k: reordered(node[k]) for k in reversed(list(node))}
    if isinstance(node, list):
        return [reordered(v) for v in node]
    return node


@pytest.mark.skipif(not SPECS.is_dir(), reason=f"reference specs not found at {SPECS}")
def test_the_new_files_are_deterministic_and_match_the_committed_ones() -> None:
    spec = may_spec()
    first = derive(spec, MAY).files
    flipped = Spec(spec.source, spec.sha256, reordered(copy.deepcopy(spec.document)))
    second = derive(flipped, MAY).files
    for filename in RESPONSES_FILES:
        for name in (filename, strict_name(filename)):
            assert first[name] == second[name], name
            assert first[name] == (COMMITTED / MAY / name).read_bytes(), name
    assert first["manifest.json"] == second["manifest.json"]
    assert first["manifest.json"] == (COMMITTED / MAY / "manifest.json").read_bytes()


# -- real recordings ---------------------------------------------------------------------------
@dataclass
class Recorded:
    file: str
    index: int
    request: dict[str, Any]
    response: dict[str, Any] | None  # a JSON answer
    events: list[tuple[str, dict[str, Any]]]  # a streamed answer: (event name, data)


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        name = next(line[7:] for line in lines if line.startswith("event: "))
        data = next(line[6:] for line in lines if line.startswith("data: "))
        out.append((name, json.loads(data)))
    return out


@cache
def recorded() -> tuple[Recorded, ...]:
    out = []
    for path in sorted(RECORDED.glob("*.yaml")):
        cassette = yaml.load(
            path.read_bytes(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
        for index, interaction in enumerate(cassette["interactions"]):
            if not interaction["request"]["uri"].endswith("/v1/responses"):
                continue
            text = interaction["response"]["body"]["string"]
            streamed = "event-stream" in str(interaction["response"]["headers"]["content-type"])
            out.append(
                Recorded(
                    path.name,
                    index,
                    json.loads(interaction["request"]["body"]),
                    None if streamed else json.loads(text),
                    sse(text) if streamed else [],
                )
            )
    return tuple(out)


@pytest.fixture
def recordings() -> Iterator[tuple[Recorded, ...]]:
    if not RECORDED.is_dir():
        pytest.skip(f"recordings not found at {RECORDED} (only in a full checkout)")
    yield recorded()


def test_the_recordings_hold_plain_and_streamed_server_side_compaction(
    recordings: tuple[Recorded, ...],
) -> None:
    plain = [r for r in recordings if r.file == "test_openai_responses_compact_stateful_mode.yaml"]
    streamed = [r for r in recordings if r.file.endswith("stateful_mode_stream.yaml")]
    assert len(plain) == 4 and len(streamed) == 4
    assert all(r.request["context_management"][0]["compact_threshold"] == 1000 for r in plain)
    assert [[o["type"] for o in r.response["output"]] for r in plain if r.response] == [
        ["message"],
        ["message"],
        ["message", "compaction"],
        ["message"],
    ]
    # the compaction item goes back as the client received it, before the new user turn
    passed_back = plain[3].request["input"][-2]
    assert plain[2].response is not None
    assert passed_back == plain[2].response["output"][1]


def test_recorded_requests_validate_under_every_version(recordings: tuple[Recorded, ...]) -> None:
    assert len(recordings) >= 16
    for version in VERSIONS:
        for r in recordings:
            report = validate("responses.request", r.request, version=version, strict=True)
            assert report.valid, (version, r.file, r.index, messages(report))


def response_violations(body: dict[str, Any], version: str) -> set[str]:
    report = validate("responses.response", body, version=version)
    return {v.message for v in report.violations}


def test_recorded_responses_under_the_may_spec_and_the_newest(
    recordings: tuple[Recorded, ...],
) -> None:
    """What the live service sends against what each spec declares, nothing more."""
    answers = [r.response for r in recordings if r.response is not None]
    assert len(answers) >= 10
    drift = set()
    for body in answers:
        # 05-13 declares these two strings; the service sends null (08-21 allows it)
        assert response_violations(body, MAY) == {
            "prompt_cache_key: expected string, got null",
            "safety_identifier: expected string, got null",
        }
        # the recordings predate cache_write_tokens, which the newest spec requires
        assert response_violations(body, NEW) == {
            "usage.input_tokens_details: missing required property 'cache_write_tokens'"
        }
        drift |= {d.message for d in validate("responses.response", body, version=NEW).drift}
    assert drift == {
        f"{name}: undocumented property"
        for name in ("billing", "frequency_penalty", "presence_penalty", "store")
    }


def test_recorded_stream_events_validate_and_reencrypt_the_compaction_item(
    recordings: tuple[Recorded, ...],
) -> None:
    streams = [r.events for r in recordings if r.events]
    assert len(streams) == 4
    tokens: list[str] = []
    for events in streams:
        assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
        assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
        for name, data in events:
            assert data["type"] == name
            may = validate("responses.event", data, version=MAY)
            if "response" in data:  # the lifecycle events carry the whole response
                assert {v.message for v in may.violations} == {
                    "response.prompt_cache_key: expected string, got null",
                    "response.safety_identifier: expected string, got null",
                }, name
                late = {
                    v.message for v in validate("responses.event", data, version=NEW).violations
                }
                missing = "missing required property 'cache_write_tokens'"
                assert late <= {f"response.usage.input_tokens_details: {missing}"}, name
            else:  # every event that carries an item or a part of one
                assert may.valid, (name, messages(may))
                drift = {d.message for d in may.drift}
                assert drift <= {"obfuscation: undocumented property"}, (name, drift)
        for name, data in events:
            if name in ITEM_EVENTS[:2] and data["item"]["type"] == "compaction":
                tokens.append(data["item"]["encrypted_content"])
        final = events[-1][1]["response"]["output"]
        tokens += [o["encrypted_content"] for o in final if o["type"] == "compaction"]
    # one compaction in the third stream: added, done and completed each carry another token
    assert len(tokens) == 3 and len(set(tokens)) == 3
