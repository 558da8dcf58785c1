"""Keeping secrets off disk: header/query redaction, and the last gate before a write.

Redaction replaces values with a fixed placeholder (the header stays, so a reader sees that it was
sent). The gate scans everything about to be written (see ``_secrets``): a key-shaped string
anywhere stops the write and is reported by location only, never by value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .._errors import CompactionError
from ._exchange import Exchange
from ._secrets import PLACEHOLDER, Finding, SecretPolicy, scan_exchange

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

# Request headers that never count for matching or judging and change from client to client
# and run to run: not written unless asked (``keep_volatile_headers``), so that a cassette
# stays close to its bodies and a re-record's diff shows what changed.
VOLATILE_REQUEST_HEADERS: tuple[str, ...] = (
    "host",  # the URI keeps the host; the header is the client's copy of it
    "content-length",  # derived from the body, which is stored
    "user-agent",
    "accept-encoding",
    "connection",
    "keep-alive",
    "idempotency-key",
)
VOLATILE_PREFIXES: tuple[str, ...] = ("x-stainless-",)


def is_volatile_header(name: str) -> bool:
    lower = name.lower()
    return lower in VOLATILE_REQUEST_HEADERS or lower.startswith(VOLATILE_PREFIXES)


# Response and request headers that carry a URL, whose query is redacted like the request's.
URL_HEADERS: tuple[str, ...] = ("location", "content-location", "referer")


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


def redact_url_headers(headers: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Filtered query parameters redacted inside URL-valued headers (a redirect's location)."""
    params = tuple(names)
    out: dict[str, Any] = {}
    for key, value in headers.items():
        if key.lower() in URL_HEADERS:
            if isinstance(value, list):
                value = [redact_query(v, params) if isinstance(v, str) else v for v in value]
            elif isinstance(value, str):
                value = redact_query(value, params)
        out[key] = value
    return out


def redact_exchange(
    ex: Exchange,
    headers: Iterable[str],
    query: Iterable[str] = DEFAULT_FILTER_QUERY,
    *,
    keep_volatile_headers: bool = False,
) -> Exchange:
    """A copy of ``ex`` with filtered headers and query parameters replaced by the placeholder,
    and the volatile request headers left out (unless ``keep_volatile_headers``)."""
    names = tuple(headers)
    params = tuple(query)
    request_headers = ex.request_headers
    if not keep_volatile_headers:
        request_headers = {k: v for k, v in request_headers.items() if not is_volatile_header(k)}
    return Exchange(
        method=ex.method,
        uri=redact_query(ex.uri, params),
        request_headers=redact_url_headers(redact_headers(request_headers, names), params),
        request_body=ex.request_body,
        status=ex.status,
        reason=ex.reason,
        response_headers=redact_url_headers(redact_headers(ex.response_headers, names), params),
        response_body=ex.response_body,
    )


def check_no_secrets(
    path: str, exchanges: Sequence[Exchange], policy: SecretPolicy | None = None
) -> None:
    """Raise :class:`SecretFound` when any exchange still holds a secret-looking value."""
    findings = [f for i, ex in enumerate(exchanges) for f in scan_exchange(ex, i, policy)]
    if findings:
        raise SecretFound(path, findings)
