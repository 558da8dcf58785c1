"""The validator, as a library: real recordings, the spec's own examples, discriminated items,
drift, versions, both backends, and bodies that are not what they should be."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REFERENCE

from pytest_compaction import (
    BodyError,
    Report,
    VersionError,
    available_versions,
    get_validator,
    load_cassette,
    newest_version,
    parse_body,
    resolve_version,
    validate,
    validate_request,
    validate_response,
)
from pytest_compaction.schema._validate import EXPLAINED_ITEMS, MAX_DEPTH
from pytest_compaction.schema._versions import schemas_root

RECORDED = REFERENCE / "recorded"
SPECS = REFERENCE / "openai-openapi"
V0413, V0513, V0715, V0821, V1119, V1126 = (
    "2026-04-13_tryAGI-85fe06bb6f18",
    "2026-05-13_5162af98d314",
    "2026-07-15_535f5dc97632",
    "2026-08-21_f85dbe223d40",
    "2026-11-19_openai-3.57.0",  # the 2026-08-21 spec with the openai 3.57.0 SDK's overlay
    "2026-11-26_openai-3.60.0",  # ... and then the openai 3.60.0 SDK's overlay
)
CACHE_WRITE = "usage.input_tokens_details: missing required property 'cache_write_tokens'"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def needs(folder: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not folder.is_dir(), reason=f"reference material not found at {folder} (full checkout only)"
    )


def shape(report: Report) -> list[tuple[str, str]]:
    return [(v.path, v.message) for v in report.violations]


def test_bundled_versions_are_the_four_reference_versions_and_the_overlaid_two() -> None:
    assert available_versions() == (V0413, V0513, V0715, V0821, V1119, V1126)
    assert newest_version() == V1126


# -- real recordings ----------------------------------------------------------------------
def compact_exchanges() -> Iterator[tuple[str, int, Any]]:
    for layout in ("pydantic-ai", "pydantic-ai-stock-vcrpy"):
        for path in sorted((RECORDED / layout).glob("*.yaml")):
            for index, exchange in enumerate(load_cassette(path).exchanges):
                if exchange.path.endswith("/responses/compact"):
                    yield f"{layout}/{path.name}#{index}", index, exchange


@needs(RECORDED)
def test_recordings_hold_fourteen_compact_exchanges_in_both_layouts() -> None:
    exchanges = list(compact_exchanges())
    assert len(exchanges) == 14
    assert sum(name.startswith("pydantic-ai/") for name, _, _ in exchanges) == 7
    assert all(e.method == "POST" and e.status == 200 for _, _, e in exchanges)


@needs(RECORDED)
def test_every_recorded_compact_request_is_valid_under_every_version() -> None:
    for name, _, exchange in compact_exchanges():
        body = json.loads(exchange.request_body)
        for version in available_versions():
            report = validate_request(body, version=version)
            # every field these requests use is declared since the oldest version
            assert report.drift == (), (name, version, report.drift)
            assert report.valid, (name, version, shape(report))
            assert report.version == version


@needs(RECORDED)
def test_recorded_compact_responses_predate_cache_write_tokens() -> None:
    """Valid until 2026-05-13; from 2026-07-15 on, invalid for exactly one reason each."""
    for name, _, exchange in compact_exchanges():
        raw = exchange.response_body
        assert json.loads(raw)["object"] == "response.compaction"
        for version in (V0413, V0513):
            report = validate_response(raw, status=exchange.status, version=version)
            assert report.valid and report.drift == (), (name, version, shape(report))
        for version in (V0715, V0821):
            for backend in ("rs", "python"):
                report = get_validator("response", version, backend).validate(raw)
                assert not report.valid
                [violation] = report.violations
                assert violation.path == "/usage/input_tokens_details/cache_write_tokens", name
                assert violation.message == CACHE_WRITE
                assert violation.keyword == "required" and violation.item_type is None
                assert report.drift == ()


@needs(RECORDED)
def test_recorded_compaction_output_fed_back_as_input_is_a_valid_request() -> None:
    """What SDK users do next: pass ``output`` as the next ``input``."""
    for name, _, exchange in compact_exchanges():
        output = json.loads(exchange.response_body)["output"]
        assert output[-1]["type"] == "compaction"
        model = json.loads(exchange.request_body)["model"]
        report = validate_request({"model": model, "input": output})
        assert report.valid, (name, shape(report))
        # The spec's input messages declare no ``id``; derivation lets a passed-back item carry
        # what its output twin has (a recorded defect), so the chain is clean even under strict.
        assert report.drift == (), (name, shape(report))
        assert any(item["type"] == "message" and "id" in item for item in output)
        strict = validate_request({"model": model, "input": output}, strict=True)
        assert strict.valid, (name, shape(strict))
        # ... and only what the output item had: a property no output item has is still drift
        output[0] = {**output[0], "colour": "blue"}
        again = validate_request({"model": model, "input": output})
        assert [d.path for d in again.drift] == ["/input/0/colour"]


ERROR_BODIES = RECORDED / "error-bodies"


@needs(ERROR_BODIES)
def test_published_error_bodies_match_the_error_schema_of_every_version() -> None:
    files = sorted(ERROR_BODIES.glob("*.json"))
    assert len(files) == 4
    for path in files:
        status = int(path.name[:3])
        for version in available_versions():
            report = validate_response(path.read_bytes(), status=status, version=version)
            assert report.kind == "error"
            assert report.valid and report.drift == (), (path.name, version, shape(report))


@needs(ERROR_BODIES)
def test_a_non_openai_404_body_is_not_an_openai_error() -> None:
    text = (ERROR_BODIES / "404_chatgpt_codex_compact.txt").read_text()
    body = json.loads(re.search(r"\{.*?\}", text).group())  # type: ignore[union-attr]
    assert body == {"detail": "Not Found"}
    report = validate_response(body, status=404)
    assert shape(report) == [("/error", "body: missing required property 'error'")]
    assert [d.path for d in report.drift] == ["/detail"]


def test_error_body_missing_its_fields_names_each() -> None:
    report = validate_response({"error": {"message": "x"}}, status=500)
    # one violation per property, each pointing where it belongs, in pointer order
    assert shape(report) == [
        (f"/error/{name}", f"error: missing required property '{name}'")
        for name in ("code", "param", "type")
    ]
    nullable = {"error": {"message": "m", "type": "t", "param": None, "code": None}}
    assert validate_response(nullable, status=429).valid


# -- the spec's own examples --------------------------------------------------------------
def yaml_block(text: str, key: str, indent: int) -> Any:
    """One mapping entry of the spec, cut out of the text (parsing 3 MB takes two seconds)."""
    start = text.index(f"\n{' ' * indent}{key}:\n") + 1
    end = re.compile(rf"\n {{{indent}}}\S").search(text, text.index("\n", start))
    return yaml.load(text[start : end.start() if end else None], Loader=_Loader)[key]


def spec_text(version: str) -> str:
    return (SPECS / f"{version}_openapi.yaml").read_text()


@needs(SPECS)
@pytest.mark.parametrize("version", [V0413, V0513, V0715, V0821])
def test_the_specs_own_compact_resource_example_is_invalid(version: str) -> None:
    example = yaml_block(spec_text(version), "CompactResource", 4)["example"]
    assert [item["type"] for item in example["output"]] == ["message", "message", "compaction"]
    expected = [
        ("/output/0/id", "output[0] (type=message): missing required property 'id'"),
        ("/output/0/status", "output[0] (type=message): missing required property 'status'"),
        ("/output/1/id", "output[1] (type=message): missing required property 'id'"),
        ("/output/1/status", "output[1] (type=message): missing required property 'status'"),
        ("/usage/input_tokens_details", "usage: missing required property 'input_tokens_details'"),
        (
            "/usage/output_tokens_details",
            "usage: missing required property 'output_tokens_details'",
        ),
    ]
    for backend in ("rs", "python"):
        report = get_validator("response", version, backend).validate(example)
        assert shape(report) == expected, backend
        assert [v.item_type for v in report.violations] == ["message"] * 4 + [None] * 2
        assert {v.keyword for v in report.violations} == {"required"}


@needs(SPECS)
@pytest.mark.parametrize("version", [V0413, V0513, V0715, V0821])
def test_the_operations_own_request_and_response_examples(version: str) -> None:
    """The operation's documented exchange: the request is valid everywhere; the response only
    lacks ``cache_write_tokens`` in the spec that introduced the requirement."""
    examples = yaml_block(spec_text(version), "/responses/compact", 2)["post"]["x-oaiMeta"]
    curl = examples["examples"]["request"]["curl"]
    request = json.loads(curl.split("-d '", 1)[1].rsplit("'", 1)[0])
    assert request["input"][1]["type"] == "message"
    report = validate_request(request, version=version)
    assert report.valid and report.drift == (), shape(report)
    response = json.loads(examples["examples"]["response"])
    report = validate_response(response, version=version)
    if version == V0715:
        assert shape(report) == [("/usage/input_tokens_details/cache_write_tokens", CACHE_WRITE)]
    else:
        assert report.valid, shape(report)


# -- discriminated items ------------------------------------------------------------------
ITEM_TYPES = re.compile(r"expected one of: (.*)$")


def test_the_common_sdk_request_shapes_are_valid() -> None:
    for item in (
        {"type": "message", "role": "user", "content": "hi"},  # matches two members literally
        {"role": "user", "content": "hi"},  # no type at all
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "message", "role": "developer", "content": "be brief"},
    ):
        for version in available_versions():
            report = validate_request(
                {"model": "gpt-5.1-codex-max", "input": [item]}, version=version
            )
            assert report.valid and report.drift == (), (item, version, shape(report))
    assert validate_request({"model": "gpt-5", "input": "a plain string"}).valid


def test_an_unknown_item_type_is_one_violation_naming_the_allowed_values() -> None:
    body = {"model": "gpt-5", "input": [{"type": "message_v2", "role": "user", "content": "x"}]}
    report = validate_request(body)
    [violation] = report.violations
    assert violation.path == "/input/0/type"
    assert violation.item_type == "message_v2"
    assert violation.message.startswith(
        'input[0].type (type=message_v2): unknown type "message_v2"; expected one of: '
    )
    allowed = ITEM_TYPES.search(violation.message).group(1)  # type: ignore[union-attr]
    for name in ("message", "function_call", "function_call_output", "compaction", "reasoning"):
        assert f'"{name}"' in allowed
    # versions differ in what they allow: program items arrived on 2026-07-15
    old = validate_request(
        {"model": "gpt-5", "input": [{"type": "program", "id": "p"}]}, version="2026-05-13"
    )
    [violation] = old.violations
    assert violation.message.startswith('input[0].type (type=program): unknown type "program"')
    assert '"program"' not in ITEM_TYPES.search(violation.message).group(1)  # type: ignore[union-attr]


def test_a_function_call_without_call_id_names_item_property_and_type() -> None:
    body = {
        "model": "gpt-5",
        "input": [
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "name": "weather", "arguments": "{}"},
        ],
    }
    for backend in ("rs", "python"):
        [violation] = get_validator("request", None, backend).validate(body).violations
        assert (
            violation.message
            == "input[1] (type=function_call): missing required property 'call_id'"
        )
        # the pointer ends with the missing property; the message names the object lacking it
        assert violation.path == "/input/1/call_id"
        assert violation.item_type == "function_call"
        assert violation.keyword == "required"
        assert violation.schema_path.endswith("/required")


def test_violations_come_in_numeric_pointer_order() -> None:
    call = {"type": "function_call", "name": "weather", "arguments": "{}"}
    items: list[dict[str, Any]] = [{"role": "user", "content": "hi"}] * 12
    items[2] = items[10] = call
    items[11] = {**call, "call_id": "c1", "arguments": 3}
    for backend in ("rs", "python"):
        report = get_validator("request", None, backend).validate({"model": "m", "input": items})
        assert [v.path for v in report.violations] == [
            "/input/2/call_id",
            "/input/10/call_id",
            "/input/11/arguments",
        ], backend


def test_a_problem_deep_inside_an_item_carries_the_innermost_item_type() -> None:
    body = {
        "model": "gpt-5",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text"}]}],
    }
    [violation] = validate_request(body).violations
    assert (violation.path, violation.item_type) == ("/input/0/content/0/text", "input_text")
    assert (
        violation.message
        == "input[0].content[0] (type=input_text): missing required property 'text'"
    )


# -- drift -----------------------------------------------------------------------------------
def test_undeclared_properties_are_drift_unless_strict() -> None:
    body = {
        "model": "gpt-5",
        "input": [{"type": "message", "role": "user", "content": "hi", "cache_hint": True}],
        "fallbacks": ["gpt-4o"],
    }
    report = validate_request(body)
    assert report.valid and report.violations == ()
    assert sorted((d.path, d.message, d.item_type) for d in report.drift) == [
        ("/fallbacks", "fallbacks: undocumented property", None),
        (
            "/input/0/cache_hint",
            "input[0].cache_hint (type=message): undocumented property",
            "message",
        ),
    ]
    strict = validate_request(body, strict=True)
    assert not strict.valid
    assert sorted(shape(strict)) == [
        ("/fallbacks", "fallbacks: undocumented property (strict)"),
        (
            "/input/0/cache_hint",
            "input[0].cache_hint (type=message): undocumented property (strict)",
        ),
    ]
    assert {v.keyword for v in strict.violations} == {"drift"}
    assert strict.drift == ()  # each finding counts once: a violation, not also drift


def test_drift_is_noted_once_however_many_schemas_reach_it() -> None:
    body = {
        "model": "gpt-5",
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "x", "lang": "en"}],
            }
        ],
    }
    for backend in ("rs", "python"):
        report = get_validator("request", None, backend).validate(body)
        assert [d.path for d in report.drift] == ["/input/0/content/0/lang"]


def test_a_violation_and_drift_are_both_reported() -> None:
    body = {"input": "x", "extra": 1}
    report = validate_request(body)
    assert shape(report) == [("/model", "body: missing required property 'model'")]
    assert [d.path for d in report.drift] == ["/extra"]
    assert report.as_dict()["valid"] is False
    assert report.as_dict()["drift"] == [
        {"path": "/extra", "message": "extra: undocumented property", "item_type": None}
    ]


# -- versions ----------------------------------------------------------------------------------
def test_versions_by_folder_name_date_prefix_folder_path_or_default() -> None:
    assert resolve_version(None) == resolve_version("") == V1126
    assert resolve_version("2026-11-19") == V1119
    assert resolve_version("2026-07-15") == V0715
    assert resolve_version("2026-04") == V0413
    assert resolve_version(V0513) == V0513
    assert Path(resolve_version(schemas_root() / V0513)) == (schemas_root() / V0513).resolve()
    assert validate("request", {"model": "m"}, version="2026-05-13").version == V0513
    assert validate("request", {"model": "m"}).version == V1126


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("2025-01-01", "unknown schema version '2025-01-01'"),
        ("2026", "is ambiguous"),
        ("latest", "unknown"),
    ],
)
def test_an_unknown_version_is_a_version_error_listing_the_known(name: str, says: str) -> None:
    with pytest.raises(VersionError) as caught:
        validate_request({"model": "m"}, version=name)
    assert says in str(caught.value)
    assert V0413 in str(caught.value)


def test_versions_differ_where_the_spec_changed() -> None:
    tier = {"model": "gpt-5", "service_tier": "fast"}  # 'fast' arrived on 2026-08-21
    assert validate_request(tier, version="2026-08-21").valid
    old = validate_request(tier, version="2026-07-15")
    [violation] = old.violations
    assert violation.path == "/service_tier"
    assert violation.message.startswith('service_tier: "fast" is not one of: "auto", "default"')
    retention = {"model": "gpt-5", "prompt_cache_retention": "24h"}
    assert validate_request(retention, version="2026-05-13").valid
    before = validate_request(retention, version="2026-04-13")
    assert before.valid and [d.path for d in before.drift] == ["/prompt_cache_retention"]


# -- both backends --------------------------------------------------------------------------
INVALID_REQUESTS: list[Any] = [
    {"input": "x"},
    {"model": 5},
    {"model": "m", "input": 7},
    {"model": "m", "input": ["hello"]},
    {"model": "m", "input": [{"type": "bogus"}]},
    {"model": "m", "input": [{"type": "function_call"}, {"type": "reasoning", "summary": []}]},
    {"model": "m", "input": [{"type": "message", "role": "wizard", "content": "x"}]},
    {"model": "m", "input": [{"type": "message", "role": "user", "content": 3}]},
    {"model": "m", "prompt_cache_key": "k" * 65, "service_tier": "turbo"},
    {"model": "m", "input": [{"type": "function_call_output", "call_id": "", "output": "x"}]},
    {"model": "m", "input": [{"type": "function_call_output", "output": "x", "namespace": "a b"}]},
    {"model": "m", "instructions": ["not", "a", "string"], "previous_response_id": 1},
    [1, 2],
    None,
]


@pytest.mark.parametrize("body", INVALID_REQUESTS, ids=lambda b: json.dumps(b)[:40])
def test_both_backends_agree_on_verdicts_and_messages(body: Any) -> None:
    fast = get_validator("request", None, "rs").validate(body)
    reference = get_validator("request", None, "python").validate(body)
    assert not fast.valid
    # schema paths are each backend's own (one walks through $ref, the other does not)
    assert [(v.path, v.message, v.item_type, v.keyword) for v in fast.violations] == [
        (v.path, v.message, v.item_type, v.keyword) for v in reference.violations
    ]
    assert fast.drift == reference.drift
    for violation in fast.violations:
        # the longest: every item type the union lists, and what to do about an unknown one
        assert len(violation.message) < 1000 and "\n" not in violation.message
        assert not violation.message.startswith(("...", "'", '"'))


def test_limit_messages_are_short_and_say_the_limit() -> None:
    report = validate_request({"model": "m", "prompt_cache_key": "k" * 5000})
    [violation] = report.violations
    assert violation.path == "/prompt_cache_key"
    assert violation.message.endswith("is longer than 64 characters (5000 given)")
    assert len(violation.message) < 130


# -- bodies that are not what they should be --------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"this is not json", "body is not JSON: Expecting value at line 1 column 1"),
        (b'{"model": "\xff\xfe"}', "body is not UTF-8: invalid byte at offset 11"),
        (b'{"model": "m",', "body is not JSON: Expecting property name"),
        (b"", "body is not JSON"),
        (b'{"model": "m", "temperature": NaN}', "body is not JSON: NaN is not a JSON value"),
        (b'{"model": "m", "n": 1' + b"0" * 5000 + b"}", "body is not JSON: Exceeds the limit"),
        (b'{"input":' + b"[" * 10_000 + b"]" * 10_000 + b"}", "body nests deeper than"),
    ],
)
def test_bytes_that_are_not_json_raise_body_error_or_become_one_violation(
    raw: bytes, says: str
) -> None:
    with pytest.raises(BodyError) as caught:
        parse_body(raw)
    assert str(caught.value).startswith(says)
    report = validate_request(raw)
    [violation] = report.violations
    assert violation.message.startswith(says) and violation.path == ""
    assert violation.keyword == "json"


@pytest.mark.parametrize(
    ("raw", "got"),
    [(b"[1, 2]", "array"), (b'"hello"', "string"), (b"42", "integer"), (b"null", "null")],
)
def test_json_that_is_not_an_object_is_one_violation(raw: bytes, got: str) -> None:
    for kind in ("request", "response", "error"):
        report = validate(kind, raw)  # type: ignore[arg-type]
        assert shape(report) == [("", f"body: expected object, got {got}")]


def test_ten_thousand_levels_of_already_parsed_nesting_is_refused_cleanly() -> None:
    deep: Any = "leaf"
    for _ in range(10_000):
        deep = {"content": [deep]}
    for backend in ("rs", "python"):
        report = get_validator("request", None, backend).validate({"model": "m", "input": [deep]})
        [violation] = report.violations
        assert violation.keyword == "depth"
        assert violation.message == f"body: nesting deeper than {MAX_DEPTH} levels"


def test_a_50_mb_body_gets_one_short_violation(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    size = 50 * 1024 * 1024
    with path.open("wb") as handle:
        handle.write(b'{"model": "gpt-5", "input": "')
        handle.write(b"x" * size)
        handle.write(b'"}')
    report = validate_request(path.read_bytes())
    [violation] = report.violations
    assert violation.path == "/input"
    assert violation.message.endswith(f"is longer than 10485760 characters ({size} given)")
    assert len(violation.message) < 160


# -- long arrays: a bounded explanation --------------------------------------------------------
OK_ITEM = {"type": "message", "role": "user", "content": "hi"}
BAD_ITEM = {"type": "message", "role": "user", "content": 5}


def test_a_hundred_thousand_failing_items_are_explained_a_thousand_at_a_time() -> None:
    """Explaining them all took 97 s and 4.7 GB; the first thousand say what is wrong."""
    body = {"model": "gpt-5.4", "input": [BAD_ITEM] * 100_000}
    report = validate_request(body)
    limit, *items = report.violations
    assert (limit.path, limit.keyword) == ("/input", "limit")
    assert limit.message == (
        "input: 100000 items; the first 1000 from item 0 on are explained, "
        "items 1000 to 99999 were not examined"
    )
    assert [v.path for v in items] == [f"/input/{i}/content" for i in range(EXPLAINED_ITEMS)]


def test_the_first_failing_window_is_explained_with_the_body_s_own_indexes() -> None:
    items = [OK_ITEM] * 6_000
    items[2_500] = items[2_501] = BAD_ITEM
    report = validate_request({"model": "gpt-5.4", "input": items})
    assert [(v.path, v.message) for v in report.violations] == [
        (
            "/input",
            "input: 6000 items; the first 1000 from item 2000 on are explained, "
            "items 3000 to 5999 were not examined",
        ),
        (
            "/input/2500/content",
            "input[2500].content (type=message): expected string or array, got integer",
        ),
        (
            "/input/2501/content",
            "input[2501].content (type=message): expected string or array, got integer",
        ),
    ]
    # In the last window nothing is left out, so nothing is said about a limit.
    items[2_500] = items[2_501] = OK_ITEM
    items[5_999] = BAD_ITEM
    report = validate_request({"model": "gpt-5.4", "input": items})
    assert [v.path for v in report.violations] == ["/input/5999/content"]


def test_a_long_valid_array_does_not_hide_a_failure_elsewhere() -> None:
    report = validate_request({"input": [OK_ITEM] * 3_000})
    assert [(v.path, v.keyword) for v in report.violations] == [
        ("/input", "limit"),
        ("/model", "required"),
    ]
    assert validate_request({"model": "gpt-5.4", "input": [OK_ITEM] * 3_000}).valid
