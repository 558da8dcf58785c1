"""Fuzzing: the validator and the cassette loader only ever report, or raise the project's errors.

Bodies are generated from the bundled schemas themselves (a small interpreter of the keywords
they use: ``$ref``, ``if``/``then``/``else`` discriminators, ``anyOf``/``oneOf``, ``enum``...),
then mutated: wrong types, missing fields, unknown item types, huge strings, deep nesting,
numbers out of range, lone surrogates, invalid UTF-8, truncation. Cassettes are written by
``save_cassette`` and mutated the same way, plus truncated YAML, binary garbage, unsafe and
unknown YAML tags, alias bombs, self-referencing aliases and compression bombs. The only
acceptable outcomes are a report / loaded data or a :class:`CompactionError` subclass: any other
exception, or an unsafe load, fails.

``COMPACTION_RELIABILITY_SCALE=N`` runs N times as many examples.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_compaction import CompactionError, available_versions, parse_body, validate
from pytest_compaction.cassette._body import MAX_SIZE_ENV
from pytest_compaction.cassette._exchange import CassetteData, CassetteError, Exchange
from pytest_compaction.cassette._file import dump_cassette, load_cassette
from pytest_compaction.replay._recorder import use_cassette
from pytest_compaction.schema._versions import load_schema_set

SCALE = max(1, int(os.environ.get("COMPACTION_RELIABILITY_SCALE", "1")))
FUZZ = settings(
    max_examples=150 * SCALE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
COUNTS: dict[str, int] = {}


@functools.cache
def _document(version: str | None, kind: str) -> dict[str, Any]:
    return load_schema_set(version).document(kind)  # type: ignore[arg-type]


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


# ---------------------------------------------------------------------------------------------
# Bodies from the schemas


class SchemaGen:
    """Draws instances of a derived schema document, depth-limited so recursion ends."""

    def __init__(self, document: dict[str, Any], draw: Callable[[Any], Any]) -> None:
        self.defs: dict[str, Any] = document.get("$defs", {})
        self.root = document
        self.draw = draw

    def value(self, node: Any, depth: int = 0) -> Any:
        if not isinstance(node, dict) or depth > 40:
            return None
        draw = self.draw
        if "$ref" in node:
            return self.value(self.defs.get(node["$ref"].rsplit("/", 1)[-1], {}), depth + 1)
        if "if" in node:
            return self._discriminated(node, depth)
        if "const" in node:
            return node["const"]
        if "enum" in node:
            return draw(st.sampled_from(node["enum"]))
        for key in ("anyOf", "oneOf"):
            if key in node:
                branches = node[key]
                if depth > 8:  # prefer the branches that end the recursion
                    simple = [b for b in branches if b.get("type") in ("null", "string")]
                    branches = simple or branches
                return self.value(draw(st.sampled_from(branches)), depth + 1)
        if "allOf" in node:
            merged: dict[str, Any] = {}
            for part in node["allOf"]:
                value = self.value(part, depth + 1)
                if isinstance(value, dict):
                    merged.update(value)
            return merged
        kind = node.get("type")
        if isinstance(kind, list):
            kind = draw(st.sampled_from(kind))
        if kind == "object" or "properties" in node:
            return self._object(node, depth)
        if kind == "array":
            low = node.get("minItems", 0)
            high = min(node.get("maxItems", 3), low + (3 if depth < 6 else 0))
            count = draw(st.integers(low, max(low, high)))
            return [self.value(node.get("items", {}), depth + 1) for _ in range(count)]
        if kind == "string":
            low = node.get("minLength", 0)
            return draw(
                st.text(min_size=low, max_size=max(low, min(node.get("maxLength", 12), 12)))
            )
        if kind == "integer":
            return draw(st.integers(node.get("minimum", -(2**31)), node.get("maximum", 2**31)))
        if kind == "number":
            return draw(st.floats(allow_nan=False, allow_infinity=False, width=32))
        if kind == "boolean":
            return draw(st.booleans())
        if kind == "null":
            return None
        return draw(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)))

    def _object(self, node: dict[str, Any], depth: int) -> dict[str, Any]:
        properties: dict[str, Any] = node.get("properties", {})
        required = set(node.get("required", ()))
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if name in required or (depth < 6 and self.draw(st.integers(0, 3)) == 0):
                out[name] = self.value(sub, depth + 1)
        return out

    def _discriminated(self, node: dict[str, Any], depth: int) -> Any:
        """``if type == X then ... else if ...`` chains: pick one X and generate its schema."""
        options: list[tuple[Any, Any]] = []
        current: Any = node
        while isinstance(current, dict) and "if" in current:
            const = current["if"].get("properties", {}).get("type", {}).get("const")
            if const is not None:
                options.append((const, current.get("then", {})))
            current = current.get("else")
        if not options:
            return self.value({k: v for k, v in node.items() if k not in ("if", "then", "else")})
        const, schema = self.draw(st.sampled_from(options))
        value = self.value(schema, depth + 1)
        if isinstance(value, dict):
            value["type"] = const
        return value


# ---------------------------------------------------------------------------------------------
# Mutations


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, sub in value.items():
            out += _paths(sub, (*prefix, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            out += _paths(sub, (*prefix, i))
    return out


def _set(root: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    node = root
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = new
    return root


DEEP = "__deep__"
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def mutated_body(draw: Callable[[Any], Any], kind: str) -> tuple[bytes, str]:
    """(body bytes, what was done to it)."""
    version = draw(st.sampled_from(available_versions()))
    document = _document(version, kind)
    body = SchemaGen(document, draw).value(document)
    how = draw(
        st.sampled_from(
            [
                "none",
                "wrong type",
                "missing field",
                "unknown item type",
                "huge string",
                "deep nesting",
                "big numbers",
                "lone surrogate",
                "invalid utf-8",
                "truncated",
            ]
        )
    )
    paths = _paths(body)
    if how == "wrong type":
        for _ in range(draw(st.integers(1, 3))):
            body = _set(body, draw(st.sampled_from(paths)), draw(WRONG))
            paths = _paths(body)
    elif how == "missing field":
        objects = [p for p in paths if isinstance(_get(body, p), dict) and _get(body, p)]
        if objects:
            where = draw(st.sampled_from(objects))
            obj = _get(body, where)
            del obj[draw(st.sampled_from(sorted(obj)))]
    elif how == "unknown item type":
        typed = [p for p in paths if isinstance(_get(body, p), dict) and "type" in _get(body, p)]
        if typed:
            _get(body, draw(st.sampled_from(typed)))["type"] = draw(
                st.text(min_size=1, max_size=12)
            )
    elif how == "huge string":
        size = draw(st.sampled_from([10_000, 1_000_000, 10_485_761]))
        body = _set(body, draw(st.sampled_from(paths)), "x" * size)
    elif how == "deep nesting" or how == "big numbers":
        body = _set(body, draw(st.sampled_from(paths)), DEEP)
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    if how == "deep nesting":
        depth = draw(st.sampled_from([50, 511, 513, 2_000, 100_000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        text = text.replace(json.dumps(DEEP), opener * depth + "1" + closer * depth, 1)
    elif how == "big numbers":
        number = draw(st.sampled_from(["1e999", "-1e999", "9" * 5000, "NaN", "Infinity", "1e-999"]))
        text = text.replace(json.dumps(DEEP), number, 1)
    elif how == "lone surrogate" and '"' in text:
        at = text.index('"') + 1
        text = text[:at] + draw(st.sampled_from(["\\ud800", "\\udfff", "\\ud83d"])) + text[at:]
    data = text.encode("utf-8")
    if how == "invalid utf-8":
        at = draw(st.integers(0, len(data)))
        junk = draw(
            st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
        )
        data = data[:at] + junk + data[at:]
    elif how == "truncated" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    return data, how


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for part in path:
        node = node[part]
    return node


def _check_body(kind: str, data: bytes, status: int = 200) -> None:
    """Bytes and parsed forms: a Report, or a CompactionError; anything else propagates."""
    report = validate(kind, data)
    assert report.kind == kind
    for violation in report.violations:
        assert isinstance(violation.message, str) and violation.message
    try:
        value = parse_body(data)
    except CompactionError:
        return
    again = validate(kind, value)
    assert again.valid == report.valid


@pytest.mark.parametrize("kind", ["request", "response", "error"])
def test_mutated_bodies_only_ever_give_violations(kind: str) -> None:
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(mutated_body(kind))
    def run(case: tuple[bytes, str]) -> None:
        data, how = case
        _count(f"bodies:{kind}")
        _check_body(kind, data)
        outcomes[how] = outcomes.get(how, 0) + 1

    run()
    ran = COUNTS.get(f"bodies:{kind}", 0)
    print(f"\nfuzz bodies ({kind}): {ran} examples, by mutation {dict(sorted(outcomes.items()))}")
    assert ran >= FUZZ.max_examples // 2


def test_unmutated_generated_bodies_are_mostly_valid() -> None:
    """The generator follows the schemas: without mutation most bodies validate."""
    results: list[bool] = []

    @settings(FUZZ, max_examples=60 * SCALE)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        document = _document(None, "request")
        body = SchemaGen(document, data.draw).value(document)
        results.append(validate("request", body).valid)

    run()
    assert sum(results) >= 0.5 * len(results), f"{sum(results)} of {len(results)} valid"


# ---------------------------------------------------------------------------------------------
# Cassettes


@st.composite
def cassette_text(draw: Callable[[Any], Any]) -> str:
    document = _document(None, "request")
    exchanges = []
    for n in range(draw(st.integers(0, 3))):
        body = SchemaGen(document, draw).value(document)
        exchanges.append(
            Exchange(
                method="POST",
                uri=f"https://api.example/v1/responses/compact?n={n}",
                request_headers={"content-type": ["application/json"]},
                request_body=json.dumps(body).encode(),
                status=draw(st.sampled_from([200, 400, 429, 500])),
                reason="OK",
                response_headers={"content-type": ["application/json"], "x-n": [str(n)]},
                response_body=draw(st.one_of(st.binary(max_size=40), st.just(b'{"id": "resp_1"}'))),
            )
        )
    return dump_cassette(CassetteData(exchanges, draw(st.sampled_from([None, "2026-05-13"]))))


UNSAFE_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/apply:builtins.open ['{marker}', 'w']",
    "!!python/object/new:pathlib.Path ['{marker}']",
    "!!python/name:os.system",
    "!!python/module:os",
    "!custom {{a: 1}}",
    "!!binary '!!!not base64'",
    "!!set {{a, b}}",
    "!!timestamp 2001-13-45",
    "2001-13-45",
    "!!int 0x",
    "!!float nope",
    "!!omap [a, b]",
]


def _yaml_mutation(draw: Callable[[Any], Any], text: str, marker: Path) -> str:
    how = draw(
        st.sampled_from(
            ["truncate", "garbage", "wrong types", "tag", "alias bomb", "cycle", "deep", "number"]
        )
    )
    if how == "truncate":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if how == "garbage":
        junk = draw(st.binary(min_size=1, max_size=200)).decode("latin-1")
        at = draw(st.integers(0, len(text)))
        return text[:at] + junk + text[at:]
    doc = yaml.load(text, Loader=yaml.CSafeLoader)
    if how == "wrong types":
        paths = _paths(doc)
        for _ in range(draw(st.integers(1, 4))):
            doc = _set(doc, draw(st.sampled_from(paths)), draw(WRONG))
            paths = _paths(doc)
        return yaml.dump(doc, Dumper=yaml.CSafeDumper)
    placeholder = "__MUTATE__"
    paths = [p for p in _paths(doc) if p]
    doc = _set(doc, draw(st.sampled_from(paths)) if paths else (), placeholder)
    out = yaml.dump(doc, Dumper=yaml.CSafeDumper)
    if how == "tag":
        value = draw(st.sampled_from(UNSAFE_TAGS)).format(marker=marker)
    elif how == "alias bomb":
        levels = [f"l0: &l0 ['{'x' * 1000}', '{'x' * 1000}']"]
        levels += [f"l{i}: &l{i} [{', '.join(['*l' + str(i - 1)] * 10)}]" for i in range(1, 9)]
        return (
            "bomb:\n" + "".join(f"  {line}\n" for line in levels) + out.replace(placeholder, "*l8")
        )
    elif how == "cycle":
        value = "&c [1, *c]"
    elif how == "deep":
        depth = draw(st.sampled_from([100, 10_000, 200_000]))
        value = "[" * depth + "]" * depth
    else:
        value = draw(st.sampled_from(["9" * 5000, "1e999", ".nan", "0o99", "-.inf"]))
    return out.replace(placeholder, value, 1)


def _load(path: Path) -> str:
    try:
        data = load_cassette(path)
    except CassetteError as exc:
        assert str(path) in str(exc)
        return "refused"
    # What loads must be usable: bodies are bytes, headers lists of strings.
    for ex in data.exchanges:
        assert isinstance(ex.response_body, bytes)
        assert all(isinstance(v, str) for values in ex.response_headers.values() for v in values)
    return "loaded"


def test_mutated_cassettes_load_or_raise_cassette_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_SIZE_ENV, "4")  # so that bombs are cheap to build and to refuse
    marker = tmp_path / "PWNED"
    path = tmp_path / "c.yaml"
    outcomes: dict[str, int] = {}

    @settings(FUZZ, max_examples=250 * SCALE)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        text = data.draw(cassette_text())
        mutated = _yaml_mutation(data.draw, text, marker)
        raw = mutated.encode("utf-8", "surrogateescape")
        if data.draw(st.booleans()):
            raw = raw.decode("latin-1").encode("utf-8", "replace")
        path.write_bytes(raw)
        _count("cassettes")
        result = _load(path)
        outcomes[result] = outcomes.get(result, 0) + 1

    run()
    assert not marker.exists()
    print(f"\nfuzz cassettes: {COUNTS['cassettes']} examples, {outcomes}")
    assert outcomes.get("refused", 0) > 0 and outcomes.get("loaded", 0) > 0


def test_binary_garbage_and_random_text_are_refused_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    outcomes: dict[str, int] = {}

    @settings(FUZZ, max_examples=100 * SCALE)
    @given(st.one_of(st.binary(max_size=500), st.text(max_size=300).map(str.encode)))
    def run(raw: bytes) -> None:
        path.write_bytes(raw)
        _count("garbage")
        result = _load(path)
        outcomes[result] = outcomes.get(result, 0) + 1

    run()
    print(f"\nfuzz garbage: {COUNTS['garbage']} examples, {outcomes}")
    assert outcomes.get("refused", 0) > 0


def _interaction(headers: dict[str, list[str]], body: bytes) -> str:
    return yaml.safe_dump(
        {
            "version": 1,
            "interactions": [
                {
                    "request": {"method": "GET", "uri": "https://x.test/", "body": None},
                    "response": {
                        "status": {"code": 200, "message": "OK"},
                        "headers": headers,
                        "body": {"string": body},
                    },
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("coding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("br", lambda data: pytest.importorskip("brotli").compress(data)),
        ("zstd", lambda data: pytest.importorskip("zstandard").ZstdCompressor().compress(data)),
    ],
)
def test_compression_bombs_and_corrupt_bodies_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, coding: str, pack: Callable[[bytes], bytes]
) -> None:
    monkeypatch.setenv(MAX_SIZE_ENV, "1")
    path = tmp_path / "c.yaml"
    bomb = pack(b"\0" * (3 * 2**20))  # a few kB that expand to 3 MB, over the 1 MB limit
    assert len(bomb) < 64 * 1024
    path.write_text(_interaction({"content-encoding": [coding]}, bomb))
    tracemalloc.start()
    with pytest.raises(CassetteError, match=rf"declared as '{coding}' decodes to more than 1 MB"):
        load_cassette(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * 2**20  # never the whole expansion plus copies
    for corrupt in (bomb[: len(bomb) // 2], b"not compressed at all", b""):
        path.write_text(_interaction({"content-encoding": [coding]}, corrupt))
        try:
            load_cassette(path)
        except CassetteError as exc:
            assert "interaction 0" in str(exc)


def test_a_100_mb_cassette_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as handle:  # sparse: costs no disk and no time to make
        handle.write(b"version: 1\ninteractions:\n- request: {method: GET, uri: 'x'}\n")
        handle.truncate(100 * 2**20)
    tracemalloc.start()
    with pytest.raises(CassetteError, match=r"is 100 MB, over the 64 MB limit; set "):
        load_cassette(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2**20
    with pytest.raises(CassetteError, match="over the 64 MB limit"), use_cassette(path):
        pass


def test_a_cassette_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(CassetteError, match="is not a regular file"):
        load_cassette(fifo)
    with pytest.raises(CassetteError, match="is not a regular file"):
        load_cassette(tmp_path)


def test_alias_bombs_and_cycles_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    levels = ["a0: &a0 [" + ", ".join(["'" + "x" * 100 + "'"] * 10) + "]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    bomb = "bomb:\n" + "".join(f"  {line}\n" for line in levels)
    path.write_text(bomb + "interactions: []\n")
    with pytest.raises(CassetteError, match="aliases expand to more than"):
        load_cassette(path)
    path.write_text(
        "interactions:\n- request: {method: GET, uri: x}\n"
        "  response: {status: {code: 200}, headers: {h: &c [1, *c]}}\n"
    )
    with pytest.raises(CassetteError, match="refers to its own parent"):
        load_cassette(path)
