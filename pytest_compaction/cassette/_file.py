"""Cassette files: loading of every supported layout, reviewable atomic writes.

The written layout is stock vcrpy YAML (``version: 1`` + ``interactions``) plus one top-level
``compaction`` mapping that stock vcrpy ignores, so users can drop this project and keep their
cassettes. That head holds ``format``, ``schema_version``, ``dialect`` when one was named or
detected, and ``recorded_at`` (``'2026-12-03T12:00:00Z'``: when the exchanges were recorded,
UTC to the second, ``SOURCE_DATE_EPOCH`` when set, see :func:`recording_time`); a cassette
without it (older ones, other recorders') loads as before, with no date.

JSON bodies are stored as literal block scalars with one top-level key and one array element per
line: a re-record shows up as a line diff per input item, and libyaml reads the whole body as
one scalar.

Server-sent event streams (``content-type: text/event-stream``) are also stored as a list of
events beside the body, so a review reads one event per entry with its JSON data parsed::

    response:
      body:
        string: |+          # the stream as sent, for stock vcrpy
          event: response.created
          data: {"type":"response.created",...}

        sha256: 3f1c...     # of body.string as written
      events:               # the same stream, one entry per event
      - event: response.created
        data: {type: response.created, response: {...}, sequence_number: 0}

The events are the source of truth: loading renders them back to bytes (see :mod:`._sse`,
byte-identical for every stream), and that is what replays, so a hand edit to an event is what
the client receives. ``body.string`` is their rendering, written so that stock vcrpy replays the
same bytes. Its ``sha256`` tells which side a hand edit touched when the two disagree: an edited
``body.string`` under untouched events replays as edited; when both were edited differently,
loading refuses the cassette and names the first event that differs. Without ``events`` (stock
vcrpy or older cassettes), ``body.string`` is the stream.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from .. import _atomic
from . import _sse
from ._body import (
    MAX_SIZE_ENV,
    compact_json,
    decode_body,
    first_char,
    max_cassette_bytes,
    reviewable_text,
)
from ._exchange import (
    CassetteData,
    CassetteError,
    Exchange,
    Headers,
    header_get,
    header_name,
    headers_without,
)

try:  # libyaml when present: both faster and the same safe subset
    from yaml import CSafeDumper as _SafeDumperBase
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeDumper as _SafeDumperBase  # type: ignore[assignment]
    from yaml import SafeLoader as _SafeLoader
else:

    class _SafeLoader(  # type: ignore[no-redef]
        yaml.composer.Composer, yaml.constructor.SafeConstructor, yaml.resolver.Resolver, _CParser
    ):
        """libyaml's parser under PyYAML's own composer and safe constructor.

        libyaml's composer (what ``CSafeLoader`` uses) recurses in C without a limit: a
        cassette nested 50,000 levels deep crashes the interpreter. Composing in Python costs
        next to nothing here (bodies are single scalars) and deep nesting raises RecursionError.
        """

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)


FORMAT = 1


class CassetteNotFound(CassetteError):
    """The cassette file does not exist."""


class NotACassette(CassetteError):
    """A YAML/JSON document without an ``interactions`` list (some other file)."""


# ---------------------------------------------------------------------------------------------
# Writing


class _Literal(str):
    """A string the dumper should write as a literal block scalar."""


class Dumper(_SafeDumperBase):  # type: ignore[misc, valid-type, unused-ignore]
    """The safe YAML dumper cassettes are written with (libyaml's when present).

    No anchors and aliases: a value shared by two exchanges is written out in each, so that
    each interaction's text stands alone (see :func:`interaction_text`) and reads as it is.
    """

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_literal(dumper: Any, data: _Literal) -> Any:
    # The emitter itself falls back to a quoted scalar when block style cannot hold the text.
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style="|")


Dumper.add_representer(_Literal, _represent_literal)


class _Flow(dict):  # type: ignore[type-arg]
    """A mapping the dumper should write on one line."""


class _FlowList(list):  # type: ignore[type-arg]
    """A sequence the dumper should write on one line."""


def _represent_flow(dumper: Any, data: _Flow) -> Any:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)


def _represent_flow_list(dumper: Any, data: _FlowList) -> Any:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


Dumper.add_representer(_Flow, _represent_flow)
Dumper.add_representer(_FlowList, _represent_flow_list)

# Event data up to this many characters of JSON goes on one line; larger objects and arrays get
# one line per key or element, recursively, so that a re-record diffs per field.
_FLOW_WIDTH = 300


def _styled(value: Any) -> Any:
    if isinstance(value, str) and "\n" in value:
        return _Literal(value)  # a block scalar where YAML allows one: text reads as text
    if not isinstance(value, dict | list) or not value:
        return value
    if len(compact_json(value)) <= _FLOW_WIDTH:
        return _Flow(value) if isinstance(value, dict) else _FlowList(value)
    if isinstance(value, dict):
        return {key: _styled(item) for key, item in value.items()}
    return [_styled(item) for item in value]


def _styled_entry(entry: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "data":
            out[key] = _styled(value)
        elif isinstance(value, str) and "\n" in value:
            out[key] = _Literal(value)
        else:
            out[key] = value
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_event_stream(headers: Mapping[str, list[str]]) -> bool:
    return any(_sse.is_event_stream(v) for v in header_get(headers, "content-type") or [])


def _stream_fields(headers: Headers, body: bytes, text: str | bytes | None) -> dict[str, Any]:
    """``events`` (and the digest of the body text) for an event-stream response, else {}."""
    if not isinstance(text, str) or not text or not _is_event_stream(headers):
        return {}
    if text.encode("utf-8") != body:  # stored re-rendered (a JSON body): not a stream
        return {}
    entries = _sse.stream_entries(body)
    if entries is None or _sse.render_entries(entries) != body:  # never lose a byte
        return {}
    return {"sha256": _sha256(body), "events": [_styled_entry(e) for e in entries]}


def _body_node(text: str | bytes | None) -> Any:
    if isinstance(text, str) and ("\n" in text or len(text) > 80):
        return _Literal(text)
    return text


def _fix_length(headers: Headers, body: bytes | None) -> Headers:
    """Make ``content-length`` (when present) agree with the body as stored."""
    if header_get(headers, "content-length") is None:
        return headers
    out = dict(headers)
    out[header_name(headers, "content-length")] = [str(len(body or b""))]
    return out


def _interaction(ex: Exchange) -> dict[str, Any]:
    req_text = reviewable_text(ex.request_body)
    resp_text = reviewable_text(ex.response_body)
    req_bytes = req_text.encode("utf-8") if isinstance(req_text, str) else req_text
    resp_bytes = resp_text.encode("utf-8") if isinstance(resp_text, str) else resp_text
    response: dict[str, Any] = {
        "status": {"code": ex.status, "message": ex.reason},
        "headers": _fix_length(ex.response_headers, resp_bytes),
        "body": {"string": _body_node(resp_text) if resp_text is not None else ""},
    }
    stream = _stream_fields(ex.response_headers, ex.response_body, resp_text)
    if stream:
        response["body"]["sha256"] = stream["sha256"]
        response["events"] = stream["events"]
    return {
        "request": {
            "method": ex.method,
            "uri": ex.uri,
            "body": _body_node(req_text),
            "headers": _fix_length(ex.request_headers, req_bytes),
        },
        "response": response,
    }


def _head(
    extra: Mapping[str, Any],
    schema_version: str | None,
    dialect: str | None,
    recorded_at: datetime | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = dict(extra)
    doc["compaction"] = {"format": FORMAT, "schema_version": schema_version}
    if dialect:
        doc["compaction"]["dialect"] = dialect
    if recorded_at is not None:
        doc["compaction"]["recorded_at"] = format_recorded_at(recorded_at)
    return doc


# ---------------------------------------------------------------------------------------------
# The recording date: ``compaction.recorded_at``

SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"
_RECORDED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def recording_time() -> datetime:
    """When a cassette written now says it was recorded: UTC, whole seconds.

    ``SOURCE_DATE_EPOCH`` (seconds since 1970, the reproducible-builds convention), when set,
    is that time instead of the clock's, so that a deterministic recording is the same bytes
    whenever it is made. A value that is not a whole number of seconds is a CassetteError.
    """
    raw = os.environ.get(SOURCE_DATE_EPOCH, "").strip()
    if not raw:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (ValueError, OverflowError, OSError):
        raise CassetteError(
            f"{SOURCE_DATE_EPOCH}={raw!r} is not a whole number of seconds since 1970"
        ) from None


def format_recorded_at(when: datetime) -> str:
    """``2026-12-03T12:00:00Z``: the UTC second of ``when`` (a naive time is taken as UTC)."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_recorded_at(value: Any, path: str) -> datetime | None:
    """``compaction.recorded_at`` of a cassette head as an aware UTC time (None when absent).

    The written form is a quoted string; an unquoted one reaches here as the YAML loader's
    datetime and is read the same.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).replace(microsecond=0)
    if isinstance(value, str) and _RECORDED_AT.match(value):
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            pass
    raise CassetteError(
        f"{path}: compaction.recorded_at {value!r} is not a UTC time like 2026-12-03T12:00:00Z"
    )


def _yaml(value: Any) -> str:
    out: str = yaml.dump(value, Dumper=Dumper, allow_unicode=True, sort_keys=False, width=2**31 - 1)
    return out


def interaction_text(ex: Exchange, *, as_json: bool = False) -> str:
    """One exchange as the cassette text holds it, for :func:`cassette_text` to join.

    A writer that keeps adding exchanges to one cassette turns each into text once, so that
    writing the file costs its bytes, not a new dump of every exchange.
    """
    item = _interaction(ex)
    if not as_json:
        text = _yaml([item])  # a block sequence item, as it stands under ``interactions:``
        # After a ``|+`` block scalar the emitter may end the stream with an end-of-document
        # marker; inside the cassette the next line ends the scalar, and the loader reads the
        # document the same without one.
        return text[: -len("...\n")] if text.endswith("\n...\n") else text
    for part, key in ((item["request"], "body"), (item["response"]["body"], "string")):
        value = part[key]
        if isinstance(value, bytes):
            raise CassetteError("a binary body cannot be stored in a JSON cassette; use .yaml")
        part[key] = None if value is None else str(value)
    text = json.dumps(item, indent=2, ensure_ascii=False)
    return "\n".join("    " + line for line in text.split("\n"))


def cassette_frame(
    extra: Mapping[str, Any],
    schema_version: str | None,
    dialect: str | None,
    count: int,
    *,
    as_json: bool = False,
    recorded_at: datetime | None = None,
) -> tuple[str, str, str]:
    """What goes before, between and after the ``count`` interaction texts of a cassette
    (``recorded_at``: the head's recording date, left out when None)."""
    head = _head(extra, schema_version, dialect, recorded_at)
    if as_json:
        text = json.dumps(head, indent=2, ensure_ascii=False)[: -len("\n}")]
        if not count:
            return f'{text},\n  "interactions": [],\n  "version": 1\n}}\n', "", ""
        return f'{text},\n  "interactions": [\n', ",\n", '\n  ],\n  "version": 1\n}\n'
    items = "interactions:\n" if count else "interactions: []\n"
    return _yaml(head) + items, "", "version: 1\n"


def cassette_text(
    extra: Mapping[str, Any],
    schema_version: str | None,
    dialect: str | None,
    interactions: Sequence[str],
    *,
    as_json: bool = False,
    recorded_at: datetime | None = None,
) -> str:
    """The text of a cassette whose interactions are ``interactions`` (see
    :func:`interaction_text`): the same document as dumping it whole at once."""
    before, between, after = cassette_frame(
        extra,
        schema_version,
        dialect,
        len(interactions),
        as_json=as_json,
        recorded_at=recorded_at,
    )
    return before + between.join(interactions) + after


def dump_cassette(data: CassetteData) -> str:
    """The YAML text of a cassette (stock vcrpy layout + the ``compaction`` key)."""
    texts = [interaction_text(ex) for ex in data.exchanges]
    return cassette_text(
        data.extra, data.schema_version, data.dialect, texts, recorded_at=data.recorded_at
    )


def dump_cassette_json(data: CassetteData) -> str:
    """The stock vcrpy JSON layout (for a ``.json`` cassette path), plus the ``compaction`` key."""
    texts = [interaction_text(ex, as_json=True) for ex in data.exchanges]
    return cassette_text(
        data.extra,
        data.schema_version,
        data.dialect,
        texts,
        as_json=True,
        recorded_at=data.recorded_at,
    )


def is_json_cassette(path: str | os.PathLike[str]) -> bool:
    """A ``.json`` path holds the JSON layout; every other cassette is YAML."""
    return str(path).endswith(".json")


def write_atomic(path: str | os.PathLike[str], data: bytes | Sequence[bytes]) -> None:
    """Replace a cassette atomically (see ``_atomic``; ``data`` may come in pieces); failures
    are a CassetteError.

    A cassette its loader would refuse (over :func:`max_cassette_bytes`) is not written: the
    same limit, at write time, so that what records also replays.
    """
    limit = max_cassette_bytes()
    size = len(data) if isinstance(data, bytes) else sum(len(piece) for piece in data)
    if size > limit:
        raise CassetteError(
            f"cassette {path} would be {size / 2**20:.0f} MB, over the "
            f"{limit / 2**20:.0f} MB limit its loader accepts; set {MAX_SIZE_ENV} to record and "
            "load it (not written)"
        )
    try:
        _atomic.write_atomic(path, data)
    except OSError as exc:
        raise CassetteError(f"cassette {path} was not written: {exc}") from exc


def save_cassette(path: str | os.PathLike[str], data: CassetteData) -> None:
    """Write a cassette atomically, as JSON when the path ends in ``.json``, else YAML."""
    text = dump_cassette_json(data) if is_json_cassette(path) else dump_cassette(data)
    write_atomic(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# Loading


def _as_headers(raw: Any, where: str) -> Headers:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise CassetteError(f"{where}: headers must be a mapping")
    out: Headers = {}
    for key, values in raw.items():
        if isinstance(values, (list, tuple)):
            out[str(key)] = [str(v) for v in values]
        else:
            out[str(key)] = [str(values)]
    return out


def _as_body(part: Mapping[str, Any], where: str, *, response: bool) -> bytes | None:
    if "parsed_body" in part:  # pydantic-ai's serializer keeps JSON bodies parsed
        try:
            return json.dumps(part["parsed_body"], ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise CassetteError(f"{where}: parsed_body is not JSON data: {exc}") from None
    raw = part.get("body")
    if response:
        if isinstance(raw, Mapping):
            raw = raw.get("string")
        elif raw is not None and not isinstance(raw, (str, bytes)):
            raise CassetteError(f"{where}: response body must be a mapping with 'string'")
    if raw is None:
        return None if not response else b""
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8")
    raise CassetteError(f"{where}: body must be a string, got {type(raw).__name__}")


def _exchange(item: Any, index: int, path: str) -> Exchange:
    where = f"{path}: interaction {index}"
    if not isinstance(item, Mapping) or not isinstance(item.get("request"), Mapping):
        raise CassetteError(f"{where}: expected a mapping with 'request' and 'response'")
    req, resp = item["request"], item.get("response")
    if not isinstance(resp, Mapping):
        raise CassetteError(f"{where}: missing 'response'")
    if not isinstance(req.get("method"), str) or not isinstance(req.get("uri"), str):
        raise CassetteError(f"{where}: request needs 'method' and 'uri' strings")
    status = resp.get("status")
    if isinstance(status, Mapping):
        code, reason = status.get("code"), status.get("message") or ""
    else:  # httpx layout of older vcrpy versions
        code, reason = resp.get("status_code", status), ""
    if not isinstance(code, int) or isinstance(code, bool):
        raise CassetteError(f"{where}: response status code must be an integer")
    resp_headers = _as_headers(resp.get("headers"), where)
    body = _as_body(resp, where, response=True) or b""
    if "parsed_body" in resp:
        # The body was re-serialized, so the recorded encoding and length no longer apply.
        resp_headers = headers_without(resp_headers, "content-encoding")
    try:
        resp_headers, body = decode_body(resp_headers, body)
    except CassetteError as exc:
        raise CassetteError(f"{where}: {exc}") from None
    if "events" in resp:
        stream = _stream_body(resp, body, where)
        if stream != body and header_get(resp_headers, "content-length") is not None:
            resp_headers[header_name(resp_headers, "content-length")] = [str(len(stream))]
        body = stream
    return Exchange(
        method=req["method"].upper(),
        uri=req["uri"],
        request_headers=_as_headers(req.get("headers"), where),
        request_body=_as_body(req, where, response=False),
        status=code,
        reason=str(reason),
        response_headers=resp_headers,
        response_body=body,
    )


def _stream_body(resp: Mapping[str, Any], body: bytes, where: str) -> bytes:
    """The stream to replay: the events, or ``body.string`` when only it was edited."""
    try:
        rendered = _sse.render_entries(resp["events"], "event")
    except _sse.EntryError as exc:
        raise CassetteError(f"{where}: response events: {exc}") from None
    if rendered == body:
        return body
    raw_body = resp.get("body")
    digest = raw_body.get("sha256") if isinstance(raw_body, Mapping) else None
    if not isinstance(digest, str) or _sha256(body) == digest:
        return rendered  # the events were edited (or there is no digest): they win
    if _sha256(rendered) == digest:
        return body  # only body.string was edited
    ours = _sse.parse_stream(rendered)
    theirs = _sse.parse_stream(body)
    first = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a.raw != b.raw),
        min(len(ours), len(theirs)),
    )
    raise CassetteError(
        f"{where}: the response body.string and its events were both edited and disagree "
        f"(from event {first} on); the events are what replays, so undo the edit to "
        "body.string, or delete the events to replay body.string"
    )


def _check_expansion(doc: Any, limit: int, path: str) -> None:
    """Refuse YAML whose aliases make a cycle or expand past ``limit`` (a "billion laughs").

    The safe loader shares aliased nodes, so loading is cheap; anything that later walks or
    prints the tree would expand them. Sizes are counted once per node, memoized by identity.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            total = 1
            for child in node.items() if isinstance(node, dict) else node:
                for part in child if isinstance(node, dict) else (child,):
                    if isinstance(part, dict | list):
                        total += sizes[id(part)]
                    else:
                        total += len(part) if isinstance(part, str | bytes) else 1
                if total > limit:
                    raise CassetteError(
                        f"{path}: YAML aliases expand to more than {limit // 2**20} MB of data; "
                        "refusing to load it"
                    )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list) and id(child) not in sizes:
                if id(child) in on_path:
                    raise CassetteError(f"{path}: a YAML alias refers to its own parent")
                stack.append((child, False))


# Bad input makes the YAML and JSON parsers raise more than their own errors: timestamps out of
# range and over-long integers raise ValueError, deep nesting RecursionError.
_PARSE_ERRORS = (ValueError, TypeError, OverflowError, RecursionError)


def parse_document(text: str, path: str = "<cassette>") -> Any:
    """The YAML or JSON document of a cassette file, loaded safely and within bounds."""
    doc: Any
    if first_char(text) == "{":
        try:
            doc = json.loads(text)
        except RecursionError:
            raise CassetteError(f"{path}: not valid JSON: nested too deeply") from None
        except ValueError as exc:
            raise CassetteError(f"{path}: not valid JSON: {exc}") from None
    else:
        try:
            doc = yaml.load(text, Loader=_SafeLoader)
        except yaml.YAMLError as exc:
            raise CassetteError(f"{path}: not valid YAML: {exc}") from None
        except RecursionError:
            raise CassetteError(f"{path}: not valid YAML: nested too deeply") from None
        except _PARSE_ERRORS as exc:
            raise CassetteError(f"{path}: not valid YAML: {type(exc).__name__}: {exc}") from None
        if isinstance(doc, dict | list):
            _check_expansion(doc, 2 * max_cassette_bytes(), path)
    return doc


def parse_cassette(text: str, path: str = "<cassette>") -> CassetteData:
    """Parse cassette text: this project's layout, vcrpy YAML or JSON, pydantic-ai's."""
    return cassette_data(parse_document(text, path), path)


def cassette_data(doc: Any, path: str = "<cassette>") -> CassetteData:
    """The exchanges and header of a loaded cassette document (see :func:`parse_document`)."""
    if doc is None:
        raise CassetteNotFound(f"{path}: the cassette is empty")
    if not isinstance(doc, Mapping) or not isinstance(doc.get("interactions"), list):
        raise NotACassette(f"{path}: not a cassette (no 'interactions' list at the top level)")
    meta = doc.get("compaction")
    version: str | None = None
    dialect: str | None = None
    recorded_at: datetime | None = None
    if isinstance(meta, Mapping):
        fmt = meta.get("format", FORMAT)
        if not isinstance(fmt, int) or fmt > FORMAT:
            raise CassetteError(
                f"{path}: cassette format {fmt!r} is newer than this pytest-compaction reads "
                f"({FORMAT}); upgrade pytest-compaction"
            )
        raw_version = meta.get("schema_version")
        version = str(raw_version) if raw_version is not None else None
        raw_dialect = meta.get("dialect")
        dialect = str(raw_dialect) if raw_dialect is not None else None
        recorded_at = parse_recorded_at(meta.get("recorded_at"), path)
    exchanges = [_exchange(item, i, path) for i, item in enumerate(doc["interactions"])]
    extra = {k: v for k, v in doc.items() if k not in ("interactions", "version", "compaction")}
    return CassetteData(
        exchanges=exchanges,
        schema_version=version,
        extra=extra,
        dialect=dialect,
        recorded_at=recorded_at,
    )


def load_cassette(path: str | os.PathLike[str]) -> CassetteData:
    """Read a cassette file; :class:`CassetteNotFound` when it does not exist."""
    return parse_cassette(read_cassette_text(path), str(path))


def read_cassette_text(path: str | os.PathLike[str]) -> str:
    """The text of a cassette file; :class:`CassetteNotFound` when it does not exist.

    Files that are not regular files (a FIFO would block forever) and files larger than
    :func:`max_cassette_bytes` are refused before anything is read.
    """
    p = Path(path)
    limit = max_cassette_bytes()
    try:
        info = p.stat()
        if not stat.S_ISREG(info.st_mode):
            raise CassetteError(f"cassette {p} is not a regular file")
        if info.st_size > limit:
            raise CassetteError(
                f"cassette {p} is {info.st_size / 2**20:.0f} MB, over the "
                f"{limit / 2**20:.0f} MB limit; set {MAX_SIZE_ENV} to load it"
            )
        with p.open("rb") as handle:
            raw = handle.read(limit + 1)
    except FileNotFoundError:
        raise CassetteNotFound(f"cassette {p} does not exist") from None
    except OSError as exc:
        raise CassetteError(f"cassette {p} cannot be read: {exc}") from None
    if len(raw) > limit:  # grew since the size check
        raise CassetteError(f"cassette {p} is over the {limit / 2**20:.0f} MB limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CassetteError(f"cassette {p} is not UTF-8 text: {exc}") from None
    if not text.strip():
        raise CassetteNotFound(f"cassette {p} is empty")
    return text
