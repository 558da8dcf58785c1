"""Keeping secrets off disk: header/query redaction, and a scan of everything about to be written.

Redaction replaces values with a fixed placeholder (the header stays, so a reader sees that it was
sent). The scan is the last gate before a write: a key-shaped string anywhere stops the write and
is reported by location only, never by value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ._cassette import Exchange, Headers, parse_json_bytes
from ._errors import CompactionError

PLACEHOLDER = "REDACTED"

DEFAULT_FILTER_HEADERS: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "openai-organization",
    "openai-project",
    "cookie",
    "set-cookie",
    "x-bf-vk",
    "x-litellm-api-key",
    "ocp-apim-subscription-key",
    "x-goog-api-key",
)

DEFAULT_FILTER_QUERY: tuple[str, ...] = ("api-key", "api_key", "key", "subscription-key")

# Key-shaped strings. The look-behind keeps them from firing inside longer opaque tokens
# (encrypted_content is base64url, where "sk-" can appear mid-token).
_EDGE = r"(?<![A-Za-z0-9_\-])"
_SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an API key (sk-...)", re.compile(_EDGE + r"sk-[A-Za-z0-9_\-]{16,}")),
    (
        "a JWT",
        re.compile(_EDGE + r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    ),
    ("a bearer token", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9_\-.=+/]{16,}")),
    (
        "a key in a URL",
        re.compile(r"(?i)[?&](api[_\-]?key|key|subscription[_\-]?key|access_token)=[^&\s\"']{16,}"),
    ),
)
# Azure-style keys are bare 32-hex strings: only flagged where a key is plausible (header and
# query values, JSON fields named like keys), since ids and hashes look the same elsewhere.
_HEX_KEY = re.compile(r"[0-9a-fA-F]{32}")
_KEY_FIELD = re.compile(
    r"(?i)(^|[_\-])(api[_\-]?key|secret|password|passwd|access[_\-]?token|auth[_\-]?token"
    r"|refresh[_\-]?token|subscription[_\-]?key|client[_\-]?secret|private[_\-]?key)$"
)


@dataclass(frozen=True)
class Finding:
    """Where a secret-looking value sits; never the value itself."""

    exchange: int
    part: str  # "request" or "response"
    location: str  # "header 'x'", "query parameter 'k'", "body /a/0/b", "uri"
    kind: str

    def __str__(self) -> str:
        return f"exchange {self.exchange} {self.part} {self.location}: looks like {self.kind}"


class SecretFound(CompactionError):
    """A value about to be written looks like a credential; nothing was written."""

    def __init__(self, path: str, findings: Sequence[Finding]) -> None:
        self.path = path
        self.findings = tuple(findings)
        lines = [f"cassette {path} was not written: it would contain what looks like a secret"]
        lines += [f"  {f}" for f in self.findings[:20]]
        if len(self.findings) > 20:
            lines.append(f"  ... and {len(self.findings) - 20} more")
        lines.append(
            "Filter the header with compaction_filter_headers (ini) / 'filter_headers' in "
            "compaction_config, or scrub the body with a before_record_request/response hook."
        )
        super().__init__("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Redaction


def redact_headers(headers: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """A copy of ``headers`` with the values of the named headers replaced by the placeholder."""
    drop = {n.lower() for n in names}
    out: dict[str, Any] = {}
    for key, value in headers.items():
        if key.lower() in drop:
            out[key] = [PLACEHOLDER] * len(value) if isinstance(value, list) else PLACEHOLDER
        else:
            out[key] = value
    return out


def redact_query(uri: str, names: Iterable[str]) -> str:
    """``uri`` with the values of the named query parameters replaced by the placeholder."""
    parts = urlsplit(uri)
    if not parts.query:
        return uri
    drop = {n.lower() for n in names}
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k.lower() in drop for k, _ in pairs):
        return uri
    query = urlencode(
        [(k, PLACEHOLDER if k.lower() in drop else v) for k, v in pairs], quote_via=quote
    )
    return urlunsplit(parts._replace(query=query))


# ---------------------------------------------------------------------------------------------
# Scanning


def _kind_of(text: str) -> str | None:
    for kind, pattern in _SECRET_PATTERNS:
        if pattern.search(text):
            return kind
    return None


def _pointer_token(key: object) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _scan_json(value: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """(JSON pointer, kind) of every string that looks like a secret."""
    stack: list[tuple[Any, str, str | None]] = [(value, pointer, None)]
    while stack:
        node, where, key = stack.pop()
        if isinstance(node, str):
            kind = _kind_of(node)
            named_like_key = key is not None and _KEY_FIELD.search(key) is not None
            if kind is None and named_like_key and node != PLACEHOLDER and len(node) >= 16:
                kind = f"a credential (field {key!r})"
            if kind is not None:
                yield where or "/", kind
        elif isinstance(node, dict):
            for k, v in node.items():
                stack.append((v, f"{where}/{_pointer_token(k)}", str(k)))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                stack.append((v, f"{where}/{i}", None))


def _scan_headers(headers: Headers) -> Iterator[tuple[str, str]]:
    for name, values in headers.items():
        for value in values:
            if value == PLACEHOLDER:
                continue
            kind = _kind_of(value)
            if kind is None and _HEX_KEY.fullmatch(value.strip()):
                kind = "a 32-hex API key"
            if kind is not None:
                yield f"header {name!r}", kind


def _scan_uri(uri: str) -> Iterator[tuple[str, str]]:
    parts = urlsplit(uri)
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if value == PLACEHOLDER:
            continue
        kind = _kind_of(value)
        if kind is None and _HEX_KEY.fullmatch(value):
            kind = "a 32-hex API key"
        if kind is not None:
            yield f"query parameter {name!r}", kind
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo:
        yield "uri (user:password)", "a password"
    if _kind_of(parts.path):
        yield "uri path", "an API key"


def _scan_body(body: bytes | None) -> Iterator[tuple[str, str]]:
    if not body:
        return
    is_json, value = parse_json_bytes(body)
    if is_json:
        for pointer, kind in _scan_json(value):
            yield f"body {pointer}", kind
        return
    text = body.decode("utf-8", errors="replace")
    # Server-sent events: each data line is usually JSON; report pointers within them.
    if "\ndata:" in text or text.startswith(("data:", "event:")):
        for n, line in enumerate(text.splitlines()):
            if line.startswith("data:"):
                try:
                    value = json.loads(line[5:])
                except ValueError:
                    value = line[5:]
                for pointer, kind in _scan_json(value):
                    yield f"body line {n + 1} {pointer}", kind
        return
    text_kind = _kind_of(text)
    if text_kind is not None:
        yield "body (text)", text_kind


def scan_exchange(ex: Exchange, index: int) -> list[Finding]:
    """Every place in an exchange that looks like a secret."""
    found: list[Finding] = []
    for part, items in (
        ("request", [*_scan_uri(ex.uri), *_scan_headers(ex.request_headers)]),
        ("request", list(_scan_body(ex.request_body))),
        ("response", list(_scan_headers(ex.response_headers))),
        ("response", list(_scan_body(ex.response_body))),
    ):
        found.extend(Finding(index, part, where, kind) for where, kind in items)
    return found


def redact_exchange(
    ex: Exchange, headers: Iterable[str], query: Iterable[str] = DEFAULT_FILTER_QUERY
) -> Exchange:
    """A copy of ``ex`` with filtered headers and query parameters replaced by the placeholder."""
    names = tuple(headers)
    return Exchange(
        method=ex.method,
        uri=redact_query(ex.uri, query),
        request_headers=redact_headers(ex.request_headers, names),
        request_body=ex.request_body,
        status=ex.status,
        reason=ex.reason,
        response_headers=redact_headers(ex.response_headers, names),
        response_body=ex.response_body,
    )


def check_no_secrets(path: str, exchanges: Sequence[Exchange]) -> None:
    """Raise :class:`SecretFound` when any exchange still holds a secret-looking value."""
    findings = [f for i, ex in enumerate(exchanges) for f in scan_exchange(ex, i)]
    if findings:
        raise SecretFound(path, findings)
