"""A finding that is only what a version does not know says so, and what to do about it.

The bodies are real shapes of later versions (``program`` items and ``prompt_cache_options``
arrived in the spec of 2026-07-15; ``multi_agent_call`` is a beta compact item), judged under
a version that predates them, with the bundled versions as they are.
"""

from __future__ import annotations

import pytest

from pytest_compaction import available_versions, validate

PROGRAM = {"type": "program", "id": "prg_1", "call_id": "c1", "code": "print(1)"}


def version(prefix: str) -> str:
    (name,) = [v for v in available_versions() if v.startswith(prefix)]
    return name


def unknown_type_message(body: dict[str, object], at: str) -> str:
    report = validate("request", body, version=at)
    (violation,) = [v for v in report.violations if v.keyword == "enum"]
    assert violation.path == "/input/0/type"
    return violation.message


def test_an_item_type_a_later_version_knows_names_that_version() -> None:
    message = unknown_type_message({"model": "m", "input": [PROGRAM]}, "2026-05-13")
    assert message.startswith('input[0].type (type=program): unknown type "program"; expected')
    assert message.endswith(
        f"; this traffic is newer than the contract: schema version {version('2026-07-15')} "
        "knows it"
    )
    # the version that knows it accepts the item itself
    assert not [
        v
        for v in validate(
            "request", {"model": "m", "input": [PROGRAM]}, version="2026-07-15"
        ).violations
        if v.keyword == "enum"
    ]


def test_an_item_type_no_version_knows_says_what_to_do() -> None:
    for at in available_versions():
        message = unknown_type_message({"model": "m", "input": [{"type": "bogus"}]}, at)
        assert message.endswith(
            "; no schema version here knows it: a mistake, or traffic newer than every "
            "contract (update pytest-compaction, or derive a newer version: README, Keeping up "
            "with the API)"
        ), at


@pytest.mark.parametrize("at", ["2026-07-15", "2026-08-21"])
def test_a_beta_item_type_on_the_plain_route_points_at_the_beta_route(at: str) -> None:
    body = {"model": "m", "input": [{"type": "multi_agent_call", "id": "x"}]}
    message = unknown_type_message(body, at)
    assert message.endswith(
        f"; the beta compact route of schema version {version(at)} knows it "
        "(POST /responses/compact?beta=true: client.beta.responses.compact())"
    )


def test_before_any_beta_contract_the_later_beta_route_is_named() -> None:
    body = {"model": "m", "input": [{"type": "multi_agent_call", "id": "x"}]}
    assert unknown_type_message(body, "2026-05-13").endswith(
        f"; the beta compact route of schema version {version('2026-07-15')} knows it "
        "(POST /responses/compact?beta=true: client.beta.responses.compact())"
    )


def test_an_undocumented_property_a_later_version_declares_names_it() -> None:
    body = {"model": "m", "input": [], "prompt_cache_options": {}}
    report = validate("request", body, version="2026-05-13")
    (note,) = report.drift
    assert note.path == "/prompt_cache_options"
    assert note.message == (
        "prompt_cache_options: undocumented property (newer than the contract: schema version "
        f"{version('2026-07-15')} declares it)"
    )
    # strict turns the note into a violation that keeps the hint
    strict = validate("request", body, version="2026-05-13", strict=True)
    assert [v.message for v in strict.violations] == [note.message + " (strict)"]
    # a property no version declares is plain drift
    (plain,) = validate("request", {"model": "m", "input": [], "nope": 1}).drift
    assert plain.message == "nope: undocumented property"
