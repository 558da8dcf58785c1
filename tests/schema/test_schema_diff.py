"""``pytest-compaction schemas diff``: every change between versions, classified.

The facts below were found by diffing every consecutive pair of bundled versions; each is
asserted in the pair where it happens and nowhere else, and the classification is checked
against what the validator itself says about real bodies.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_compaction import validate, validate_request, validate_response
from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.cli import main
from pytest_compaction.schema._diff import (
    IMPACTS,
    Change,
    SchemaDiff,
    diff_versions,
    format_text,
    impact_of,
)
from pytest_compaction.schema._versions import KINDS, RESPONSES_KINDS, load_schema_set

PAIRS = [
    ("2026-04-13", "2026-05-13"),
    ("2026-05-13", "2026-07-15"),
    ("2026-07-15", "2026-08-21"),
]


@pytest.fixture(scope="module")
def diffs() -> dict[tuple[str, str], SchemaDiff]:
    return {pair: diff_versions(*pair) for pair in PAIRS}


def find(diff: SchemaDiff, kind: str, location: str, change: str) -> list[Change]:
    return [c for c in diff.changes if (c.kind, c.location, c.change) == (kind, location, change)]


# (pair, kind, location, change code, impact)
FACTS = [
    (PAIRS[0], "request", "prompt_cache_retention", "property-added", "compatible"),
    (PAIRS[0], "request", "service_tier", "property-added", "compatible"),
    (
        PAIRS[1],
        "response",
        "usage.input_tokens_details.cache_write_tokens",
        "required-added",
        "breaking-for-recordings",
    ),
    (PAIRS[1], "request", "prompt_cache_options", "property-added", "compatible"),
    (PAIRS[1], "request", "input[type=program]", "item-type-added", "compatible"),
    (PAIRS[1], "request", "input[type=program_output]", "item-type-added", "compatible"),
    (PAIRS[1], "response", "output[type=program]", "item-type-added", "compatible"),
    (PAIRS[1], "response", "output[type=program_output]", "item-type-added", "compatible"),
    (PAIRS[2], "request", "service_tier", "enum-widened", "compatible"),
    (
        PAIRS[2],
        "request",
        "input[type=function_call_output].call_id",
        "required-removed",
        "compatible",
    ),
    (
        PAIRS[2],
        "response",
        "output[type=function_call_output].call_id",
        "required-removed",
        "compatible",
    ),
]


@pytest.mark.parametrize(("pair", "kind", "location", "code", "impact"), FACTS)
def test_reference_changes_happen_in_one_pair_only(
    diffs: dict[tuple[str, str], SchemaDiff],
    pair: tuple[str, str],
    kind: str,
    location: str,
    code: str,
    impact: str,
) -> None:
    (change,) = find(diffs[pair], kind, location, code)
    assert change.impact == impact
    for other, diff in diffs.items():
        if other != pair:
            assert not find(diff, kind, location, code), f"also in {other}"


def test_details_name_what_changed(diffs: dict[tuple[str, str], SchemaDiff]) -> None:
    (tier,) = find(diffs[PAIRS[2]], "request", "service_tier", "enum-widened")
    assert tier.detail == 'enum widened with "fast"' and tier.schema == "ServiceTierEnum"
    (cache,) = find(
        diffs[PAIRS[1]],
        "response",
        "usage.input_tokens_details.cache_write_tokens",
        "required-added",
    )
    assert cache.detail == "newly required (new field)" and cache.schema == "ResponseUsage"
    assert cache.pointer.endswith("/properties/cache_write_tokens")
    (program,) = find(diffs[PAIRS[1]], "response", "output[type=program]", "item-type-added")
    assert program.name == "program" and program.schema == "ItemField"


def test_errors_never_changed(diffs: dict[tuple[str, str], SchemaDiff]) -> None:
    for diff in diffs.values():
        assert diff.of_kind("error") == []


def test_same_version_has_no_changes() -> None:
    assert diff_versions("2026-07-15", "2026-07-15").changes == ()


def test_reversed_diff_turns_widening_into_breaking() -> None:
    back = diff_versions("2026-08-21", "2026-07-15")
    (tier,) = find(back, "request", "service_tier", "enum-narrowed")
    assert tier.impact == "breaking-for-clients"
    (call_id,) = find(back, "request", "input[type=function_call_output].call_id", "required-added")
    assert call_id.impact == "breaking-for-clients"
    back = diff_versions("2026-07-15", "2026-05-13")
    (program,) = find(back, "response", "output[type=program]", "item-type-removed")
    assert program.impact == "breaking-for-recordings"
    (cache,) = find(
        back, "response", "usage.input_tokens_details.cache_write_tokens", "property-removed"
    )
    assert cache.impact == "compatible"  # open objects: the field is merely undocumented now
    (options,) = find(back, "request", "prompt_cache_options", "property-removed")
    assert options.impact == "breaking-for-clients"  # the API rejects unknown parameters


# -- the classification agrees with the validator ----------------------------------------------
def test_breaking_for_recordings_is_what_the_validator_sees(reference: Path) -> None:
    cassette = (
        reference / "recorded" / "pydantic-ai" / "test_openai_responses_compact_messages.yaml"
    )
    (exchange,) = [e for e in load_cassette(cassette).exchanges if e.path.endswith("/compact")]
    body = json.loads(exchange.response_body)
    assert validate_response(body, version="2026-05-13").valid
    (violation,) = validate_response(body, version="2026-07-15").violations
    assert violation.path == "/usage/input_tokens_details/cache_write_tokens"
    breaking = [
        c
        for c in diff_versions("2026-05-13", "2026-07-15").of_kind("response")
        if c.impact == "breaking-for-recordings"
    ]
    assert [c.location for c in breaking] == ["usage.input_tokens_details.cache_write_tokens"]


def test_breaking_for_clients_is_what_the_validator_sees() -> None:
    body: dict[str, Any] = {"model": "gpt-5", "service_tier": "fast"}
    assert validate_request(body, version="2026-08-21").valid
    assert not validate_request(body, version="2026-07-15").valid
    widened = find(
        diff_versions("2026-07-15", "2026-08-21"), "request", "service_tier", "enum-widened"
    )
    assert widened and widened[0].impact == "compatible"
    item = {"model": "gpt-5", "input": [{"type": "function_call_output", "output": "4"}]}
    assert validate_request(item, version="2026-08-21").valid
    assert not validate_request(item, version="2026-07-15").valid


# -- small hand-made versions, for the kinds of change the reference specs lack -------------------
def write_version(root: Path, name: str, response: dict[str, Any]) -> str:
    folder = root / name
    folder.mkdir()
    empty = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}
    documents = {"request": empty, "response": response, "error": empty}
    for kind, document in documents.items():
        (folder / f"{kind}.schema.json").write_text(json.dumps(document))
    (folder / "manifest.json").write_text(json.dumps({"name": name}))
    return str(folder)


def test_hand_made_changes(tmp_path: Path) -> None:
    old = {
        "$ref": "#/$defs/Root",
        "$defs": {
            "Root": {
                "type": "object",
                "properties": {
                    "count": {"type": "integer", "minimum": 0},
                    "name": {"type": "string", "maxLength": 10},
                    "mode": {"enum": ["a", "b"], "type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "note": {"type": "string"},
                    "gone": {"type": "string"},
                },
                "required": ["count"],
            }
        },
    }
    new = json.loads(json.dumps(old))
    root = new["$defs"]["Root"]
    root["properties"]["count"] = {"type": "number", "minimum": 1}
    root["properties"]["name"] = {"type": "string", "maxLength": 20}
    root["properties"]["mode"] = {"enum": ["a", "c"], "type": "string"}
    root["properties"]["tags"]["items"] = {"type": "integer"}
    root["properties"]["note"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    del root["properties"]["gone"]
    root["required"] = ["count", "name"]
    root["additionalProperties"] = False
    diff = diff_versions(write_version(tmp_path, "v1", old), write_version(tmp_path, "v2", new))
    got = {(c.location, c.change, c.impact) for c in diff.changes}
    assert got == {
        ("count", "type-widened", "compatible"),  # integer -> number
        ("count", "constraint-tightened", "breaking-for-recordings"),
        ("name", "constraint-relaxed", "compatible"),
        ("name", "required-added", "breaking-for-recordings"),
        ("mode", "enum-widened", "compatible"),
        ("mode", "enum-narrowed", "breaking-for-recordings"),
        ("tags[]", "type-widened", "compatible"),
        ("tags[]", "type-narrowed", "breaking-for-recordings"),
        ("note", "type-widened", "compatible"),  # now also null
        ("gone", "property-removed", "compatible"),
        ("", "closed", "breaking-for-recordings"),
    }


# -- the command ------------------------------------------------------------------------------
def test_command_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "diff", "2026-07-15", "2026-08-21"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == "schema changes 2026-07-15_535f5dc97632 -> 2026-08-21_f85dbe223d40"
    assert (
        '  compatible               service_tier: enum widened with "fast"  [ServiceTierEnum]'
        in lines
    )
    assert "error: no changes" in lines
    # breaking changes come first within a closure
    request = lines[lines.index(next(line for line in lines if line.startswith("request:"))) + 1]
    assert request.startswith("  breaking for clients")

    assert main(["schemas", "diff", "2026-05-13", "2026-07-15", "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["old"] == "2026-05-13_5162af98d314"
    assert payload["summary"]["response"]["breaking-for-recordings"] == sum(
        1
        for c in payload["changes"]
        if c["kind"] == "response" and c["impact"] == "breaking-for-recordings"
    )
    assert {
        "kind": "response",
        "location": "usage.input_tokens_details.cache_write_tokens",
        "change": "required-added",
    }.items() <= next(
        c
        for c in payload["changes"]
        if c["location"] == "usage.input_tokens_details.cache_write_tokens"
    ).items()


def test_command_with_a_spec_file_matches_the_bundled_version(
    reference: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = reference / "openai-openapi" / "2026-08-21_f85dbe223d40_openapi.yaml"
    assert main(["schemas", "diff", "2026-07-15", str(spec)]) == 0
    derived = capsys.readouterr().out
    assert main(["schemas", "diff", "2026-07-15", "2026-08-21"]) == 0
    assert derived == capsys.readouterr().out


def test_command_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "diff", "2026-07-15", "nope"]) == 2
    assert "unknown schema version 'nope'" in capsys.readouterr().err
    assert main(["schemas", "diff", "2026", "2026-07-15"]) == 2
    assert "ambiguous" in capsys.readouterr().err
    assert main(["schemas", "diff", str(tmp_path / "missing.yaml"), "2026-07-15"]) == 2
    assert "missing.yaml: no such spec file or schema folder" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("openapi: 3.1.0\n")
    assert main(["schemas", "diff", str(bad), "2026-07-15"]) == 2
    assert "bad.yaml" in capsys.readouterr().err


# -- every kind: POST /responses and whatever else KINDS lists ------------------------------------
def test_the_responses_kinds_of_real_versions_are_compared(
    diffs: dict[tuple[str, str], SchemaDiff], capsys: pytest.CaptureFixture[str]
) -> None:
    diff = diffs[PAIRS[1]]
    (moderation,) = find(diff, "responses.response", "moderation", "property-added")
    assert (moderation.schema, moderation.impact) == ("Response", "compatible")
    (effort,) = find(diff, "responses.request", "reasoning.effort", "enum-widened")
    assert effort.detail == 'enum widened with "max"' and effort.impact == "compatible"
    event = "[type=response.completed].response.usage.input_tokens_details.cache_write_tokens"
    (cache,) = find(diff, "responses.event", event, "required-added")
    assert (cache.schema, cache.impact) == ("ResponseUsage", "breaking-for-recordings")

    assert main(["schemas", "diff", "2026-05-13", "2026-07-15"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  compatible               moderation: added (optional)  [Response]" in lines
    assert (
        f"  breaking for recordings  {event}: newly required (new field)  [ResponseUsage]" in lines
    )
    headers = [line.split(":")[0] for line in lines[1:] if not line.startswith("  ")]
    assert headers == list(KINDS)  # every kind, in the order of KINDS
    assert "responses.response: 51 changes (1 breaking for recordings, 50 compatible)" in lines


def test_counts_cover_every_kind_in_the_order_of_kinds(
    diffs: dict[tuple[str, str], SchemaDiff],
) -> None:
    for diff in diffs.values():
        counts = diff.counts()
        assert list(counts) == list(KINDS)
        for kind in KINDS:
            assert sum(counts[kind].values()) == len(diff.of_kind(kind))
    assert sum(diffs[PAIRS[1]].counts()["responses.event"].values()) > 0


def test_request_kinds_break_clients_and_the_others_break_recordings() -> None:
    for kind in ("request", "responses.request"):
        assert impact_of(kind, "enum-narrowed") == "breaking-for-clients"  # type: ignore[arg-type]
        assert impact_of(kind, "property-removed") == "breaking-for-clients"  # type: ignore[arg-type]
    for kind in ("response", "error", "responses.response", "responses.event"):
        assert impact_of(kind, "enum-narrowed") == "breaking-for-recordings"  # type: ignore[arg-type]
        assert impact_of(kind, "property-removed") == "compatible"  # type: ignore[arg-type]
    back = diff_versions("2026-08-21", "2026-07-15")
    (tier,) = find(back, "responses.request", "service_tier", "enum-narrowed")
    assert tier.impact == "breaking-for-clients"
    (tier,) = find(back, "responses.response", "service_tier", "enum-narrowed")
    assert tier.impact == "breaking-for-recordings"


def test_a_property_moved_between_composed_schemas_is_not_removed(
    diffs: dict[tuple[str, str], SchemaDiff],
) -> None:
    # 2026-07-15 moved reasoning and truncation from ResponseProperties into CreateResponse and
    # Response (parts of one allOf): the body still accepts them, as the validator says.
    body = {"model": "gpt-5", "reasoning": {"effort": "low"}, "truncation": "auto"}
    for version in PAIRS[1]:
        assert validate("responses.request", body, version=version, strict=True).valid
    diff = diffs[PAIRS[1]]
    for kind in ("responses.request", "responses.response"):
        for name in ("reasoning", "truncation"):
            assert not [c for c in diff.of_kind(kind) if c.location == name], (kind, name)
    # what did change inside the moved property is still reported, at its body location
    (mode,) = find(diff, "responses.request", "reasoning.mode", "property-added")
    assert mode.schema == "Reasoning"
    # 2026-08-21 moved service_tier from ModelResponseProperties and widened its enum
    (tier,) = find(diffs[PAIRS[2]], "responses.request", "service_tier", "enum-widened")
    assert tier.detail == 'enum widened with "fast", "ultrafast"'
    assert not find(diffs[PAIRS[2]], "responses.request", "service_tier", "property-removed")


# -- small specs: with and without POST /responses ------------------------------------------------
def _body(ref: str, media: str = "application/json") -> dict[str, Any]:
    return {"content": {media: {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def small_spec(*, responses: bool = True) -> dict[str, Any]:
    """POST /responses/compact, and POST /responses (JSON answer and event stream) if asked."""
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"version": "0.0.1"},
        "paths": {
            "/responses/compact": {
                "post": {
                    "operationId": "Compactconversation",
                    "requestBody": _body("Req"),
                    "responses": {"200": _body("Res"), "400": _body("ErrorResponse")},
                }
            }
        },
        "components": {
            "schemas": {
                "Req": {
                    "type": "object",
                    "properties": {"model": {"type": "string"}},
                    "required": ["model"],
                },
                "Res": {"type": "object", "properties": {"id": {"type": "string"}}},
                "ErrorResponse": {
                    "type": "object",
                    "properties": {"error": {"type": "object"}},
                    "required": ["error"],
                },
            }
        },
    }
    if responses:
        ok = _body("Response")
        ok["content"].update(_body("ResponseStreamEvent", "text/event-stream")["content"])
        spec["paths"]["/responses"] = {
            "post": {
                "operationId": "createResponse",
                "requestBody": _body("CreateResponse"),
                "responses": {"200": ok},
            }
        }
        spec["components"]["schemas"].update(
            {
                "CreateResponse": {
                    "type": "object",
                    "properties": {"model": {"type": "string"}, "store": {"type": "boolean"}},
                },
                "Response": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}},
                    "required": ["id"],
                },
                "ResponseStreamEvent": {
                    "type": "object",
                    "properties": {"type": {"type": "string"}},
                    "required": ["type"],
                },
            }
        )
    return spec


def write_spec(root: Path, name: str, spec: dict[str, Any]) -> str:
    path = root / f"{name}_openapi.json"
    path.write_text(json.dumps(spec))
    return str(path)


def test_versions_differing_only_in_post_responses_show_that_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = small_spec()
    changed["components"]["schemas"]["CreateResponse"]["required"] = ["model"]
    old = write_spec(tmp_path, "a", small_spec())
    new = write_spec(tmp_path, "b", changed)
    diff = diff_versions(old, new)
    ((kind, location, code, impact),) = [
        (c.kind, c.location, c.change, c.impact) for c in diff.changes
    ]
    assert (kind, location, code, impact) == (
        "responses.request",
        "model",
        "required-added",
        "breaking-for-clients",
    )
    assert main(["schemas", "diff", old, new]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:5] == [
        "request: no changes",
        "response: no changes",
        "error: no changes",
        "responses.request: 1 change (1 breaking for clients)",
    ]
    assert lines[5] == "  breaking for clients     model: newly required  [CreateResponse]"
    assert "responses.response: no changes" in lines and "responses.event: no changes" in lines


def test_a_kind_only_one_version_has_is_reported_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = write_spec(tmp_path, "a", small_spec(responses=False))
    full = write_spec(tmp_path, "b", small_spec())
    assert main(["schemas", "diff", plain, full]) == 0
    lines = capsys.readouterr().out.splitlines()
    for kind in RESPONSES_KINDS:
        assert f"{kind}: only in b (the spec of a declares no POST /responses)" in lines
    assert "request: no changes" in lines

    assert main(["schemas", "diff", full, plain]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "responses.event: only in b (the spec of a declares no POST /responses)" in lines

    assert main(["schemas", "diff", plain, full, "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert list(payload["kinds"]) == list(KINDS) == list(payload["summary"])
    assert payload["kinds"]["request"] == {
        "coverage": "compared",
        "operation": "POST /responses/compact",
        "old_absence": None,
        "new_absence": None,
    }
    assert payload["kinds"]["responses.request"] == {
        "coverage": "only-in-new",
        "operation": "POST /responses",
        "old_absence": {
            "version": "a",
            "reason": "not-in-spec",
            "detail": "the spec of a declares no POST /responses",
        },
        "new_absence": None,
    }
    assert payload["summary"]["responses.request"] == dict.fromkeys(IMPACTS, 0)
    assert payload["changes"] == []


def test_folders_derived_before_a_kind_existed_say_so(tmp_path: Path) -> None:
    # hand-made folders hold only the compaction documents, and their manifests predate the rest
    old = write_version(tmp_path, "v1", {"type": "object"})
    new = write_version(tmp_path, "v2", {"type": "object"})
    diff = diff_versions(old, new)
    coverage = diff.coverage("responses.request")
    assert coverage is not None and coverage.coverage == "in-neither"
    assert coverage.old is not None and coverage.old.reason == "derived-before"
    text = format_text(diff)
    assert (
        "responses.request: in neither version (both were derived before POST /responses "
        "schemas were)"
    ) in text.splitlines()

    one_sided = diff_versions(old, "2026-08-21")
    assert (
        "responses.event: only in 2026-08-21_f85dbe223d40 (v1 was derived before POST "
        "/responses schemas were; derive it again to compare them)"
    ) in format_text(one_sided).splitlines()


def test_a_missing_file_is_absent_and_an_unreadable_one_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundled = load_schema_set("2026-08-21").path
    copy = tmp_path / bundled.name
    shutil.copytree(bundled, copy)
    (copy / "responses.event.schema.json").unlink()
    diff = diff_versions("2026-08-21", copy)
    coverage = diff.coverage("responses.event")
    assert coverage is not None and coverage.coverage == "only-in-old"
    assert format_text(diff).splitlines()[6] == (
        "responses.event: only in 2026-08-21_f85dbe223d40 (2026-08-21_f85dbe223d40 declares "
        "POST /responses, but its folder has no responses.event schema)"
    )
    assert diff.of_kind("responses.event") == [] and diff.of_kind("responses.request") == []

    broken = tmp_path / "broken" / bundled.name
    shutil.copytree(bundled, broken)
    (broken / "responses.request.schema.json").write_text("{not json")
    assert main(["schemas", "diff", "2026-08-21", str(broken)]) == 2
    assert "responses.request.schema.json is unreadable" in capsys.readouterr().err


# -- one schema swapped for another at the same place ---------------------------------------------
def _options_version(root: Path, name: str, target: str, ttl: list[str]) -> str:
    schemas = {
        "Root": {
            "type": "object",
            "properties": {"options": {"anyOf": [{"$ref": f"#/$defs/{target}"}, {"type": "null"}]}},
        },
        target: {"type": "object", "properties": {"ttl": {"type": "string", "enum": ttl}}},
    }
    return write_version(root, name, {"$ref": "#/$defs/Root", "$defs": schemas})


def test_a_reference_swapped_for_another_compares_their_contents(tmp_path: Path) -> None:
    old = _options_version(tmp_path, "a", "Options", ["30m", "1h"])
    same = _options_version(tmp_path, "b", "CompactOptions", ["30m", "1h"])
    narrower = _options_version(tmp_path, "c", "CompactOptions", ["30m"])
    assert diff_versions(old, same).of_kind("response") == []  # a rename is no change
    ((change,),) = [diff_versions(old, narrower).of_kind("response")]
    assert (change.location, change.change, change.detail) == (
        "options.ttl",
        "enum-narrowed",
        'enum narrowed: "1h" no longer allowed',
    )
    # the overlaid version gives the compact request's prompt cache options their own schema
    request = diff_versions("2026-08-21", "2026-11-19").of_kind("request")
    assert not [c for c in request if c.impact != "compatible"], request
