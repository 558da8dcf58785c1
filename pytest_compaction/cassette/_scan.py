"""``pytest-compaction scan``: credentials and account identifiers left in existing cassettes.

Any layout the loader reads is scanned (this project's, stock vcrpy YAML/JSON, pydantic-ai's
``parsed_body``), with bodies decoded first (``content-encoding``, and YAML ``!!binary``, which is
how vcrpy keeps compressed bodies). What the exchanges do not read is scanned in the raw
document, scalar by scalar (see :mod:`._document`): ``metadata``, fields of an interaction no
loader knows (a response's ``url``), a stream's ``body.string`` when its events are what
replays. A finding names a place, never the value.

``--fix`` redacts in place. A file in this project's format is rewritten by the cassette writer;
in a foreign file only the offending scalars change, edited where they stand in the text, so
its comments, anchors and timestamps stay and the tool that owns it can still read it. Every
write is atomic, and the written file is scanned again before it counts as fixed.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import yaml

from . import _sse
from ._body import decode_body, parse_json_bytes
from ._document import DocumentFinding, comment_findings, edit_in_place, scan_document
from ._document import Path as DocPath
from ._exchange import CassetteData, CassetteError, Exchange, header_get
from ._file import (
    CassetteNotFound,
    Dumper,
    NotACassette,
    cassette_data,
    dump_cassette,
    dump_cassette_json,
    parse_document,
    read_cassette_text,
    write_atomic,
)
from ._find import find_cassettes
from ._redact import DEFAULT_FILTER_HEADERS, DEFAULT_FILTER_QUERY
from ._secrets import (
    PLACEHOLDER,
    Finding,
    SecretPolicy,
    credential_sized,
    find_in_text,
    is_credential,
    looks_secret,
    named_like_key,
    scan_exchange,
    sub_secrets,
)

_TRAILING_HEX = re.compile(r"[0-9a-fA-F]{32}$")

IDENTIFIER_HEADERS = frozenset({"openai-organization", "openai-project"})
COOKIE_HEADERS = frozenset({"cookie", "set-cookie"})

LAYOUT_PROJECT = "pytest-compaction"
LAYOUT_PYDANTIC_AI = "pydantic-ai"
LAYOUT_VCRPY_YAML = "vcrpy-yaml"
LAYOUT_VCRPY_JSON = "vcrpy-json"


# ---------------------------------------------------------------------------------------------
# Finding and reading cassette files


@dataclass
class CassetteFile:
    """One cassette as read: its text and raw document (for edits in place) and its exchanges."""

    path: Path
    layout: str
    doc: dict[str, Any]
    data: CassetteData
    text: str = ""

    @property
    def exchanges(self) -> list[Exchange]:
        return self.data.exchanges


def layout_of(doc: Mapping[str, Any], text: str) -> str:
    """Which tool wrote a cassette document."""
    if isinstance(doc.get("compaction"), Mapping):
        return LAYOUT_PROJECT
    for item in doc.get("interactions") or ():
        if isinstance(item, Mapping) and any(
            isinstance(item.get(part), Mapping) and "parsed_body" in item[part]
            for part in ("request", "response")
        ):
            return LAYOUT_PYDANTIC_AI
    return LAYOUT_VCRPY_JSON if text.lstrip().startswith("{") else LAYOUT_VCRPY_YAML


def read_cassette_file(path: str | os.PathLike[str]) -> CassetteFile:
    """Read and parse a cassette of any supported layout.

    The loader's checks come first (regular file, size limit, YAML alias bombs);
    :class:`NotACassette` for a YAML/JSON document without interactions.
    """
    p = Path(path)
    text = read_cassette_text(p)
    doc = parse_document(text, str(p))
    data = cassette_data(doc, str(p))  # NotACassette without interactions
    return CassetteFile(path=p, layout=layout_of(doc, text), doc=doc, data=data, text=text)


# ---------------------------------------------------------------------------------------------
# Scanning


def _header_kind(name: str) -> str:
    lname = name.lower()
    if lname in IDENTIFIER_HEADERS:
        return "an account identifier"
    if lname in COOKIE_HEADERS:
        return "a session cookie"
    return "a credential header"


def _named_findings(
    ex: Exchange, index: int, headers: frozenset[str], query: frozenset[str]
) -> Iterator[Finding]:
    """Values of headers and query parameters that are sensitive by name, whatever they hold."""
    for name, value in parse_qsl(urlsplit(ex.uri).query, keep_blank_values=True):
        if name.lower() in query and value and value != PLACEHOLDER:
            yield Finding(index, "request", f"query parameter {name!r}", "a credential")
    for part, items in (("request", ex.request_headers), ("response", ex.response_headers)):
        for name, values in items.items():
            if name.lower() in headers and any(v and v != PLACEHOLDER for v in values):
                yield Finding(index, part, f"header {name!r}", _header_kind(name))


def _request_decoded(ex: Exchange) -> Exchange:
    """The exchange with a compressed request body decoded (response bodies already are)."""
    if not ex.request_body or header_get(ex.request_headers, "content-encoding") is None:
        return ex
    try:
        headers, body = decode_body(ex.request_headers, ex.request_body)
    except CassetteError:
        return ex  # scanned as the bytes they are
    return replace(ex, request_headers=headers, request_body=body)


def scan_exchanges(
    exchanges: Sequence[Exchange],
    headers: Iterable[str] = DEFAULT_FILTER_HEADERS,
    query: Iterable[str] = DEFAULT_FILTER_QUERY,
    policy: SecretPolicy | None = None,
) -> list[Finding]:
    """Every sensitive value in the exchanges, one finding per place."""
    header_names = frozenset(h.lower() for h in headers)
    query_names = frozenset(q.lower() for q in query)
    out: list[Finding] = []
    for index, ex in enumerate(exchanges):
        seen: set[tuple[str, str]] = set()
        for finding in (
            *_named_findings(ex, index, header_names, query_names),
            *scan_exchange(_request_decoded(ex), index, policy),
        ):
            key = (finding.part, finding.location)
            if key not in seen:
                seen.add(key)
                out.append(finding)
    return out


def _stored_body(part: Mapping[str, Any], raw: Any) -> bytes | None:
    """A stored body as the loader reads it (content coding undone), None if unreadable."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if not isinstance(raw, bytes):
        return None
    headers = part.get("headers")
    listed = {
        str(k): (list(map(str, v)) if isinstance(v, list) else [str(v)])
        for k, v in (headers.items() if isinstance(headers, Mapping) else ())
    }
    try:
        return decode_body(listed, raw)[1]
    except CassetteError:
        return None


def consumed_paths(cassette: CassetteFile) -> set[DocPath]:
    """The parts of the document its exchanges are read from (and scanned as exchanges).

    A stream stored twice (``events`` and ``body.string``) is read from one of them when they
    disagree: the other is left to the document scan.
    """
    out: set[DocPath] = set()
    for i, item in enumerate(cassette.doc.get("interactions") or ()):
        if not isinstance(item, Mapping) or i >= len(cassette.exchanges):
            continue
        ex = cassette.exchanges[i]
        here: DocPath = ("interactions", i)
        request, response = item.get("request"), item.get("response")
        if isinstance(request, Mapping):
            out |= {(*here, "request", k) for k in ("method", "uri", "headers")}
            out.add((*here, "request", "parsed_body" if "parsed_body" in request else "body"))
        if not isinstance(response, Mapping):
            continue
        out |= {(*here, "response", k) for k in ("status", "status_code", "headers")}
        if "parsed_body" in response:
            out.add((*here, "response", "parsed_body"))
            continue
        body = response.get("body")
        body_path: DocPath = (*here, "response", "body")
        raw = body
        if isinstance(body, Mapping):
            body_path, raw = (*body_path, "string"), body.get("string")
        if "events" in response:
            try:
                rendered = _sse.render_entries(response["events"], "event")
            except _sse.EntryError:
                rendered = None
            if rendered == ex.response_body:
                out.add((*here, "response", "events"))
            if _stored_body(response, raw) != ex.response_body:
                continue  # the events won: body.string is not what replays
        out.add(body_path)
    return out


def scan_cassette(
    cassette: CassetteFile,
    headers: Iterable[str] = DEFAULT_FILTER_HEADERS,
    query: Iterable[str] = DEFAULT_FILTER_QUERY,
    policy: SecretPolicy | None = None,
) -> list[Finding]:
    """Every sensitive value of a cassette: in its exchanges, then in the rest of the document."""
    consumed = consumed_paths(cassette)
    return [
        *scan_exchanges(cassette.exchanges, headers, query, policy),
        *scan_document(cassette.doc, policy, skip=consumed.__contains__),
        *comment_findings(cassette.text, policy),
    ]


# ---------------------------------------------------------------------------------------------
# Redacting values


def _replacement(found: str) -> str:
    # Keep what says where the key was ("Bearer ", "?key=", "api-key: "), drop the key.
    if found[:1] in "?&":
        return found.partition("=")[0] + "=" + PLACEHOLDER
    if found[:6].lower() == "bearer":
        return found.split(None, 1)[0] + " " + PLACEHOLDER
    hex_key = _TRAILING_HEX.search(found)
    if hex_key is not None and hex_key.start() > 0:
        before = found[hex_key.start() - 1]
        if not (before.isalnum() or before in "_-"):  # a separate word: "api-key: <hex>"
            return found[: hex_key.start()] + PLACEHOLDER
    return PLACEHOLDER


def redact_text(text: str) -> str:
    """``text`` with every key-shaped substring replaced by the placeholder."""
    return sub_secrets(text, _replacement)


def redact_json(value: Any, under_key: bool = False) -> Any:
    """A copy of a JSON value with key-shaped strings redacted, and every long string under a
    field named like a key; property names that look like keys are replaced too."""
    if isinstance(value, str):
        if under_key and credential_sized(value):
            return PLACEHOLDER
        return redact_text(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = str(k)
            key = name if not looks_secret(name) else _free_name(out)
            out[key] = redact_json(v, under_key or named_like_key(name))
        return out
    if isinstance(value, list):
        return [redact_json(v, under_key) for v in value]
    return value


def _free_name(taken: Mapping[str, Any]) -> str:
    n, name = 1, PLACEHOLDER
    while name in taken:
        n += 1
        name = f"{PLACEHOLDER}-{n}"
    return name


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def redact_body(body: bytes | None) -> bytes | None:
    """The body with secrets redacted: JSON by value, server-sent events line by line, text as is.

    Binary bodies come back unchanged (a rescan still reports them).
    """
    if not body:
        return body
    is_json, value = parse_json_bytes(body)
    if is_json:
        fixed = redact_json(value)
        return body if fixed == value else _dumps(fixed).encode("utf-8")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body
    lines = text.split("\n")
    for n, line in enumerate(lines):
        if line.startswith("data:"):
            try:
                data = json.loads(line[5:])
            except ValueError:
                lines[n] = redact_text(line)
                continue
            fixed = redact_json(data)
            if fixed != data:
                lines[n] = "data: " + _dumps(fixed)
        else:
            lines[n] = redact_text(line)
    out = "\n".join(lines)
    return body if out == text else out.encode("utf-8")


def redact_uri(uri: str, query: frozenset[str]) -> str:
    """``uri`` without credentials: password or key-shaped user name, sensitive query values,
    key-shaped path segments and fragments."""
    parts = urlsplit(uri)
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = userinfo.partition(":")[0] + "@" + host
    if at and looks_secret(netloc.rpartition("@")[0]):
        netloc = host
    path = redact_text(parts.path)
    fragment = redact_text(parts.fragment)
    query_text = parts.query
    if query_text:
        pairs = parse_qsl(query_text, keep_blank_values=True)
        fixed = [
            (k, PLACEHOLDER if (k.lower() in query and v) or is_credential(k, v) else v)
            for k, v in pairs
        ]
        if fixed != pairs:
            query_text = urlencode(fixed, quote_via=quote)
    new = (netloc, path, query_text, fragment)
    if new == (parts.netloc, parts.path, parts.query, parts.fragment):
        return uri
    return urlunsplit(parts._replace(netloc=netloc, path=path, query=query_text, fragment=fragment))


def _redact_header_values(
    name: str, values: list[str], headers: frozenset[str], query: frozenset[str]
) -> list[str]:
    if name.lower() in headers:
        return [PLACEHOLDER if v else v for v in values]
    out = []
    for value in values:
        if "?" in value and (value.startswith("/") or "://" in value):
            value = redact_uri(value, query)  # a URL (location, referer)
        out.append(PLACEHOLDER if is_credential(name, value) else value)
    return out


def redact_cassette_exchange(
    ex: Exchange, headers: frozenset[str], query: frozenset[str]
) -> Exchange:
    """An exchange with everything :func:`scan_exchanges` reports redacted."""
    ex = _request_decoded(ex)
    return replace(
        ex,
        uri=redact_uri(ex.uri, query),
        reason=redacted_scalar(ex.reason, None, False) if find_in_text(ex.reason) else ex.reason,
        request_headers={
            k: _redact_header_values(k, v, headers, query) for k, v in ex.request_headers.items()
        },
        request_body=redact_body(ex.request_body),
        response_headers={
            k: _redact_header_values(k, v, headers, query) for k, v in ex.response_headers.items()
        },
        response_body=redact_body(ex.response_body) or b"",
    )


# -- foreign layouts, edited in their own document ---------------------------------------------


def _fix_raw_headers(raw: Any, headers: frozenset[str], query: frozenset[str]) -> None:
    if not isinstance(raw, dict):
        return
    for name, value in raw.items():
        if isinstance(value, list):
            raw[name] = _redact_header_values(str(name), [str(v) for v in value], headers, query)
        elif value is not None:
            raw[name] = _redact_header_values(str(name), [str(value)], headers, query)[0]


def _set_header(raw: dict[str, Any], name: str, value: str | None) -> None:
    """Set (or with ``None`` remove) a header in a raw document, keeping its case and shape."""
    for key in list(raw):
        if str(key).lower() == name:
            if value is None:
                del raw[key]
            else:
                raw[key] = [value] if isinstance(raw[key], list) else value
            return
    if value is not None:
        raw[name] = [value]


def _fix_raw_body(part: dict[str, Any], container: dict[str, Any], key: str) -> None:
    """Redact a stored body, decoding it first; a changed body is stored decoded."""
    raw = container.get(key)
    if raw is None or not isinstance(raw, (str, bytes)):
        return
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    raw_headers = part.get("headers")
    headers: dict[Any, Any] = raw_headers if isinstance(raw_headers, dict) else {}
    listed = {
        str(k): (list(map(str, v)) if isinstance(v, list) else [str(v)]) for k, v in headers.items()
    }
    coded = header_get(listed, "content-encoding") is not None
    if coded:
        try:
            _, data = decode_body(listed, data)
        except CassetteError:
            return  # left as it is; the rescan reports what remains
    fixed = redact_body(data)
    if fixed is None or fixed == data:
        return
    try:
        container[key] = fixed.decode("utf-8")
    except UnicodeDecodeError:
        container[key] = fixed
    if isinstance(raw_headers, dict):
        if coded:
            _set_header(raw_headers, "content-encoding", None)
            _set_header(raw_headers, "transfer-encoding", None)
        if header_get(listed, "content-length") is not None:
            _set_header(raw_headers, "content-length", str(len(fixed)))


def _fix_raw_interaction(item: Any, headers: frozenset[str], query: frozenset[str]) -> None:
    if not isinstance(item, dict):
        return
    request, response = item.get("request"), item.get("response")
    if isinstance(request, dict):
        if isinstance(request.get("uri"), str):
            request["uri"] = redact_uri(request["uri"], query)
        _fix_raw_headers(request.get("headers"), headers, query)
        if "parsed_body" in request:
            request["parsed_body"] = redact_json(request["parsed_body"])
        else:
            _fix_raw_body(request, request, "body")
    if isinstance(response, dict):
        status = response.get("status")
        if isinstance(status, dict) and isinstance(status.get("message"), str):
            reason = status["message"]
            if find_in_text(reason) is not None:
                status["message"] = redacted_scalar(reason, None, False)
        _fix_raw_headers(response.get("headers"), headers, query)
        if "parsed_body" in response:
            response["parsed_body"] = redact_json(response["parsed_body"])
        elif isinstance(response.get("body"), dict):
            _fix_raw_body(response, response["body"], "string")


class _BlockDumper(Dumper):
    """Multi-line strings as literal blocks, as pydantic-ai writes them (keeps diffs small)."""


def _represent_str(dumper: Any, data: str) -> Any:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _represent_str)


def _dump_doc(doc: dict[str, Any], layout: str) -> str:
    if layout == LAYOUT_VCRPY_JSON:
        return json.dumps(doc, indent=4, ensure_ascii=False) + "\n"
    out: str = yaml.dump(
        doc, Dumper=_BlockDumper, allow_unicode=True, sort_keys=False, width=2**31 - 1
    )
    return out


def redacted_scalar(value: str, policy: SecretPolicy | None, by_name: bool) -> str:
    """What replaces a secret-looking string: its key-shaped parts, else all of it."""
    if by_name:
        return PLACEHOLDER
    fixed = redact_text(value)
    return fixed if find_in_text(fixed, policy) is None else PLACEHOLDER


def _parent(doc: Any, at: DocPath) -> tuple[Any, Any]:
    """The container holding the scalar at ``at``, and its key there; (None, None) if gone."""
    node = doc
    for part in at[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None, None
    if not at or not isinstance(node, dict | list):
        return None, None
    container: Any = node
    try:
        container[at[-1]]
    except (KeyError, IndexError, TypeError):
        return None, None
    return container, at[-1]


def fix_document(
    doc: Any, findings: Iterable[DocumentFinding], policy: SecretPolicy | None = None
) -> None:
    """Redact, in ``doc``, the scalars of ``findings``: values first, then names, deepest first."""
    found = list(findings)
    for finding in (f for f in found if not f.is_name):
        parent, key = _parent(doc, finding.at)
        if parent is None:
            continue
        value = parent[key]
        if isinstance(value, bytes):
            parent[key] = PLACEHOLDER
        elif isinstance(value, str):
            parent[key] = redacted_scalar(value, policy, finding.by_name)
    for finding in sorted((f for f in found if f.is_name), key=lambda f: -len(f.at)):
        parent, key = _parent(doc, finding.at)
        if not isinstance(parent, dict):
            continue
        name = _free_name(parent)
        items = [(name if k == key else k, v) for k, v in parent.items()]
        parent.clear()
        parent.update(items)


def _fixed_comment(
    text: str, span: tuple[int, int], policy: SecretPolicy | None
) -> tuple[int, int, str]:
    """The edit that redacts a comment (all of it when its key cannot be cut out)."""
    start, end = span
    fixed = "#" + redact_text(text[start + 1 : end])
    if find_in_text(fixed, policy) is not None:
        fixed = f"# {PLACEHOLDER}"
    return start, end, fixed


def fix_cassette(
    cassette: CassetteFile,
    headers: Iterable[str] = DEFAULT_FILTER_HEADERS,
    query: Iterable[str] = DEFAULT_FILTER_QUERY,
    findings: Iterable[Finding] = (),
    policy: SecretPolicy | None = None,
) -> bool:
    """Redact everything the scan reports, writing the file atomically in its own layout.

    ``findings`` are the scan's (those of the document are redacted where they stand).
    Returns whether anything changed (nothing is written otherwise).
    """
    header_names = frozenset(h.lower() for h in headers)
    query_names = frozenset(q.lower() for q in query)
    in_document = [f for f in findings if isinstance(f, DocumentFinding)]
    doc = copy.deepcopy(cassette.doc)
    if cassette.layout == LAYOUT_PROJECT:
        # The writer writes the interactions anew from the exchanges: what else they held
        # (a stale body.string, unknown fields) goes; the document's own fields are redacted.
        fix_document(doc, (f for f in in_document if f.exchange < 0), policy)
        data = cassette_data(doc, str(cassette.path))
        exchanges = [
            redact_cassette_exchange(ex, header_names, query_names) for ex in data.exchanges
        ]
        data = replace(data, exchanges=exchanges)
        json_layout = str(cassette.path).endswith(".json")
        text = dump_cassette_json(data) if json_layout else dump_cassette(data)
        if text == cassette.text:
            return False
        write_atomic(cassette.path, text.encode("utf-8"))
        return True
    for item in doc["interactions"]:
        _fix_raw_interaction(item, header_names, query_names)
    fix_document(doc, in_document, policy)
    remarks = [_fixed_comment(cassette.text, f.span, policy) for f in in_document if f.span]
    if doc == cassette.doc and not remarks:
        return False
    edited = edit_in_place(cassette.text, cassette.doc, doc, str(cassette.path), remarks)
    text = edited if edited is not None else _dump_doc(doc, cassette.layout)
    write_atomic(cassette.path, text.encode("utf-8"))
    return True


# ---------------------------------------------------------------------------------------------
# Whole files


@dataclass
class ScanResult:
    """What the scan found in one file (and, with ``fix``, what it redacted)."""

    path: Path
    layout: str | None = None
    exchanges: int = 0
    findings: list[Finding] = field(default_factory=list)
    fixed: bool = False
    remaining: list[Finding] = field(default_factory=list)
    error: str | None = None

    @property
    def clean(self) -> bool:
        return self.error is None and not (self.remaining if self.fixed else self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "layout": self.layout,
            "exchanges": self.exchanges,
            "findings": [_finding_dict(f) for f in self.findings],
            "fixed": self.fixed,
            "remaining": [_finding_dict(f) for f in self.remaining],
            "error": self.error,
        }


def _finding_dict(finding: Finding) -> dict[str, Any]:
    return {
        "exchange": finding.exchange if finding.exchange >= 0 else None,
        "part": finding.part,
        "location": finding.location,
        "kind": finding.kind,
    }


def scan_file(
    path: str | os.PathLike[str],
    *,
    fix: bool = False,
    headers: Iterable[str] = (),
    query: Iterable[str] = (),
) -> ScanResult:
    """Scan one cassette (``headers``/``query``: names added to the default sensitive ones).

    Raises :class:`NotACassette` or :class:`CassetteError` when the file cannot be scanned.
    """
    header_names = (*DEFAULT_FILTER_HEADERS, *headers)
    query_names = (*DEFAULT_FILTER_QUERY, *query)
    cassette = read_cassette_file(path)
    result = ScanResult(
        path=cassette.path,
        layout=cassette.layout,
        exchanges=len(cassette.exchanges),
        findings=scan_cassette(cassette, header_names, query_names),
    )
    if fix and result.findings:
        result.fixed = True
        if fix_cassette(cassette, header_names, query_names, result.findings):
            cassette = read_cassette_file(cassette.path)
        result.remaining = scan_cassette(cassette, header_names, query_names)
    return result


def scan_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    fix: bool = False,
    headers: Iterable[str] = (),
    query: Iterable[str] = (),
) -> list[ScanResult]:
    """Scan every cassette under ``paths``; files named explicitly must be cassettes."""
    headers, query = tuple(headers), tuple(query)
    results: list[ScanResult] = []
    for path, explicit in find_cassettes(paths, unique=True):
        try:
            results.append(scan_file(path, fix=fix, headers=headers, query=query))
        except (NotACassette, CassetteNotFound) as exc:  # other YAML/JSON, or empty
            if explicit:
                results.append(ScanResult(path=path, error=str(exc)))
        except CassetteError as exc:
            results.append(ScanResult(path=path, error=str(exc)))
    return results
