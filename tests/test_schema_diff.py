"""``pytest-compaction schemas diff``: every change between versions, classified.

The facts below were found by diffing every consecutive pair of bundled versions; each is
asserted in the pair where it happens and nowhere else, and the classification is checked
against what the validator itself says about real bodies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_compaction import validate_request, validate_response
from pytest_compaction._cassette import load_cassette
from pytest_compaction._schema_diff import Change, SchemaDiff, diff_versions
from pytest_compaction.cli import main

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
