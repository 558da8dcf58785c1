"""What looks like a secret, and where an exchange holds one.

The key-shaped patterns, the rule for names that hold keys (``api_key``, ``clientSecret``) and
the scans live here only, for the gate before a cassette is written (``_redact``) and for
``pytest-compaction scan`` (``_scan``). A finding names a place, never the value; a value already
replaced by :data:`PLACEHOLDER` is not a finding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ._body import parse_json_bytes
from ._exchange import Exchange, Headers

PLACEHOLDER = "REDACTED"

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
    # Azure-style keys are bare 32-hex strings, which ids and hashes also are: in free text
    # they count only right after a word that names a key ("api-key: ...", "key=...").
    (
        "a 32-hex API key",
        re.compile(
            r"(?i)(?:api[\s_\-]?key|secret|password|passwd|token|credential|\bkey)s?\b"
            r"[^\n]{0,24}?(?<![A-Za-z0-9_\-])[0-9a-f]{32}(?![A-Za-z0-9_\-])"
        ),
    ),
)
# A whole header or query value of 32 hex digits is taken for a key; so is any value under a
# JSON field named like a key. Elsewhere ids and hashes (safety_identifier) look the same.
_HEX_KEY = re.compile(r"[0-9a-fA-F]{32}")
_KEY_FIELD = re.compile(
    r"(?i)(^|[_\-.\s])(api[_\-]?key|secret|password|passwd|access[_\-]?token|auth[_\-]?token"
    r"|refresh[_\-]?token|subscription[_\-]?key|client[_\-]?secret|private[_\-]?key"
    r"|api[_\-]?token|session[_\-]?token|bearer[_\-]?token|authorization|credential)s?$"
)
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


@dataclass(frozen=True)
class Finding:
    """Where a secret-looking value sits; never the value itself."""

    exchange: int
    part: str  # "request" or "response"
    location: str  # "header 'x'", "query parameter 'k'", "body /a/0/b", "uri"
    kind: str

    def __str__(self) -> str:
        return f"exchange {self.exchange} {self.part} {self.location}: looks like {self.kind}"


def _kind_of(text: str) -> str | None:
    for kind, pattern in _SECRET_PATTERNS:
        if pattern.search(text):
            return kind
    return None


def _value_kind(value: str) -> str | None:
    """A header or query value: key-shaped text, or a whole value of 32 hex digits."""
    kind = _kind_of(value)
    if kind is None and _HEX_KEY.fullmatch(value.strip()):
        kind = "a 32-hex API key"
    return kind


def named_like_key(name: str) -> bool:
    """``api_key``, ``x-api-key``, ``azureApiKey``, ``clientSecret``: a name under which any
    value long enough (:func:`credential_sized`) is a credential."""
    return _KEY_FIELD.search(_CAMEL.sub(r"\1_\2", name)) is not None


def credential_sized(value: str) -> bool:
    """Long enough to be a credential when held under a name like a key (and not redacted)."""
    return len(value) >= 16 and value != PLACEHOLDER


def looks_secret(value: str) -> bool:
    """A value that is key-shaped, or 32 hex digits as a whole (the placeholder is not)."""
    return bool(value) and value != PLACEHOLDER and _value_kind(value.strip()) is not None


def is_credential(name: str, value: str) -> bool:
    """A value to redact: key-shaped, or long and held under a name that says it is a key."""
    return looks_secret(value) or (named_like_key(name) and credential_sized(value))


def _held_kind(name: str, value: str, holder: str) -> str | None:
    """What a value held under ``name`` (a header, a parameter) looks like, if anything."""
    kind = _value_kind(value)
    if kind is None and named_like_key(name) and credential_sized(value):
        kind = f"a credential (in a {holder} named like a key)"
    return kind


def sub_secrets(text: str, replace: Callable[[str], str]) -> str:
    """``text`` with every key-shaped part replaced by what ``replace`` makes of it."""
    for _, pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: replace(m.group(0)), text)
    return text


def mask_secrets(text: str) -> str:
    """``text`` with every key-shaped part replaced, for messages that quote a URL or path."""
    return sub_secrets(text, lambda _: "<secret>")


def _label(name: object) -> str:
    """A name fit for a message: one that itself looks like a secret is not repeated."""
    text = str(name)
    if _kind_of(text) or _HEX_KEY.search(text):
        return "<secret-looking name>"
    return text


def _pointer_token(key: object) -> str:
    return _label(key).replace("~", "~0").replace("/", "~1")


def _scan_json(value: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """(JSON pointer, kind) of every string, property name included, that looks like a secret.

    Strings under a field named like a key (at any depth) are credentials whatever they look like.
    """
    stack: list[tuple[Any, str, bool]] = [(value, pointer, False)]
    while stack:
        node, where, under_key = stack.pop()
        if isinstance(node, str):
            kind = _kind_of(node)
            if kind is None and under_key and credential_sized(node):
                kind = "a credential (in a field named like a key)"
            if kind is not None:
                yield where or "/", kind
        elif isinstance(node, dict):
            for k, v in node.items():
                child = f"{where}/{_pointer_token(k)}"
                name_kind = _kind_of(str(k))
                if name_kind is None and under_key and _HEX_KEY.fullmatch(str(k)):
                    name_kind = "a 32-hex API key"
                if name_kind is not None:
                    yield child, f"{name_kind} (as a property name)"
                stack.append((v, child, under_key or named_like_key(str(k))))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                stack.append((v, f"{where}/{i}", under_key))


def _scan_headers(headers: Headers) -> Iterator[tuple[str, str]]:
    for name, values in headers.items():
        label = f"header {_label(name)!r}"
        if _kind_of(name):
            yield f"{label} (its name)", "a secret"
        for value in values:
            if value == PLACEHOLDER:
                continue
            if "?" in value and (value.startswith("/") or "://" in value):
                # A URL (location, referer): say which of its query parameters holds the key.
                found = list(_scan_uri(value))
                yield from ((f"{label} {where}", kind) for where, kind in found)
                if found:
                    continue
            kind = _held_kind(name, value, "header")
            if kind is not None:
                yield label, kind


def _scan_uri(uri: str) -> Iterator[tuple[str, str]]:
    parts = urlsplit(uri)
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        label = f"query parameter {_label(name)!r}"
        if _kind_of(name) or _HEX_KEY.fullmatch(name):
            yield label, "a secret (as a parameter name)"
        if value == PLACEHOLDER:
            continue
        kind = _held_kind(name, value, "parameter")
        if kind is not None:
            yield label, kind
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo:
        yield "uri (user:password)", "a password"
    elif userinfo and _value_kind(userinfo):
        yield "uri (user name)", "an API key"
    if _kind_of(parts.path):
        yield "uri path", "an API key"
    if parts.fragment and _kind_of(parts.fragment):
        yield "uri fragment", "an API key"


def _scan_text(text: str, data_lines: bool) -> Iterator[tuple[str, str]]:
    """Line by line; with ``data_lines``, server-sent-event ``data:`` lines are read as JSON."""
    for n, line in enumerate(text.splitlines(), start=1):
        if data_lines and line.startswith("data:"):
            try:
                value = json.loads(line[5:])
            except ValueError:
                value = line[5:]
            for pointer, kind in _scan_json(value):
                yield f"body line {n} {pointer}", kind
            continue
        line_kind = _kind_of(line)
        if line_kind is not None:
            yield (f"body line {n}" if data_lines else f"body (text) line {n}"), line_kind


def _scan_body(body: bytes | None) -> Iterator[tuple[str, str]]:
    if not body:
        return
    is_json, value = parse_json_bytes(body)
    if is_json:
        for pointer, kind in _scan_json(value):
            yield f"body {pointer}", kind
        return
    text = body.decode("utf-8", errors="replace")
    # Server-sent events: data lines are usually JSON, so report pointers within them; the
    # other lines (event, id, comments) are scanned as text.
    sse = "\ndata:" in text or text.startswith(("data:", "event:", "id:", ":"))
    yield from _scan_text(text, sse)


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
