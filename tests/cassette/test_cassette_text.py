"""A cassette's text joined from its interactions' texts is the text of the whole document.

Writers that keep adding exchanges to one cassette (the recording proxy) turn each exchange into
text once and join the pieces (``interaction_text``, ``cassette_text``). These tests hold that
join to the bytes of dumping the whole document at once, YAML and JSON, over generated exchanges
(text with blank and trailing lines, binary, streams, unicode, shared values) and the real
recordings in the reference folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REFERENCE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_compaction.cassette import _file
from pytest_compaction.cassette._exchange import CassetteData, CassetteError, Exchange
from pytest_compaction.cassette._file import (
    dump_cassette,
    dump_cassette_json,
    load_cassette,
    parse_cassette,
)


def whole_yaml(data: CassetteData) -> str:
    """The reference: the document dumped in one call (without the end-of-document marker
    libyaml adds when the last block scalar keeps its trailing newlines)."""
    doc = _file._head(data.extra, data.schema_version, data.dialect)
    doc["interactions"] = [_file._interaction(ex) for ex in data.exchanges]
    doc["version"] = 1
    out: str = yaml.dump(
        doc, Dumper=_file.Dumper, allow_unicode=True, sort_keys=False, width=2**31 - 1
    )
    return out.removesuffix("...\n")


def whole_json(data: CassetteData) -> str:
    doc = _file._head(data.extra, data.schema_version, data.dialect)
    items = []
    for ex in data.exchanges:
        item = _file._interaction(ex)
        for part, key in ((item["request"], "body"), (item["response"]["body"], "string")):
            part[key] = None if part[key] is None else str(part[key])
        items.append(item)
    doc["interactions"] = items
    doc["version"] = 1
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("\n\n \t|-#:'\""),
    max_size=60,
)
SSE = st.lists(
    st.dictionaries(st.sampled_from(["type", "delta", "n"]), TEXT | st.integers(), max_size=3),
    max_size=4,
).map(lambda events: "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode())


@st.composite
def exchanges(draw: Any) -> Exchange:
    stream = draw(st.booleans())
    body = draw(
        SSE
        if stream
        else st.one_of(
            TEXT.map(str.encode),
            st.binary(max_size=30),
            st.dictionaries(TEXT, TEXT | st.integers(), max_size=3).map(
                lambda d: json.dumps(d).encode()
            ),
        )
    )
    content_type = "text/event-stream" if stream else "application/json"
    return Exchange(
        method=draw(st.sampled_from(["POST", "GET"])),
        uri="https://api.example/v1/responses" + draw(st.sampled_from(["", "/compact"])),
        request_headers={"content-type": ["application/json"], "x-t": [draw(TEXT)]},
        request_body=draw(st.none() | TEXT.map(str.encode)),
        status=draw(st.sampled_from([200, 400, 500])),
        reason=draw(TEXT),
        response_headers={"content-type": [content_type], "content-length": ["1"]},
        response_body=body,
    )


CASSETTES = st.builds(
    CassetteData,
    st.lists(exchanges(), max_size=4),
    st.sampled_from([None, "2026-05-13"]),
    st.dictionaries(st.sampled_from(["metadata", "notes"]), TEXT | st.lists(TEXT), max_size=2),
    dialect=st.sampled_from([None, "openai", "azure"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CASSETTES)
def test_yaml_joined_from_interactions_is_the_whole_document(data: CassetteData) -> None:
    text = dump_cassette(data)
    assert text == whole_yaml(data)
    assert len(parse_cassette(text).exchanges) == len(data.exchanges)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CASSETTES)
def test_json_joined_from_interactions_is_the_whole_document(data: CassetteData) -> None:
    try:
        text = dump_cassette_json(data)
    except CassetteError as exc:  # a binary body: refused, as before
        assert "binary body" in str(exc)
        return
    assert text == whole_json(data)
    assert json.loads(text)["version"] == 1


def test_a_value_shared_by_two_exchanges_is_written_in_each_without_anchors() -> None:
    headers = {"content-type": ["application/json"]}
    ex = Exchange("POST", "https://x/v1/responses/compact", headers, b"{}", 200, "OK", headers, b"")
    text = dump_cassette(CassetteData([ex, ex]))
    assert "&id" not in text and "*id" not in text
    assert text == whole_yaml(CassetteData([ex, ex]))
    assert len(parse_cassette(text).exchanges) == 2


def test_the_real_recordings_rewrite_to_the_same_bytes_either_way(tmp_path: Path) -> None:
    folders = [REFERENCE / "recorded" / name for name in ("pydantic-ai", "pydantic-ai-stock-vcrpy")]
    files = sorted(p for folder in folders if folder.is_dir() for p in folder.glob("*.yaml"))
    if not files:
        pytest.skip(f"the reference recordings are not here ({folders[0]})")
    for path in files:
        data = load_cassette(path)
        assert dump_cassette(data) == whole_yaml(data), path.name
        assert dump_cassette_json(data) == whole_json(data), path.name
