"""Which bodies of an exchange the schemas cover, and what validating them finds.

One rule for everything that reads exchanges (the recorder, the proxy, ``check``, ``import``):

- ``POST .../responses/compact``: the request as ``request``; a 2xx answer as ``response``,
  any other as ``error``; both under the dialect's profile. A beta call (``?beta=true``, or
  the ``openai-beta: responses_multi_agent=...`` header) as ``beta.request`` and
  ``beta.response``; under a version without a beta contract, one violation says so.
- ``POST .../responses``: the request as ``responses.request``; a 2xx JSON answer as
  ``responses.response``, any other as ``error``; an event stream event by event as
  ``responses.event`` (see :mod:`._events`).
- A compaction request's parameters the compact endpoint rejects (``include``, ``store``...) are
  violations, not drift; a successful answer's compaction items get notes: not exactly one, or
  none where the input passed the request's ``compact_threshold`` (see :mod:`._reported`).
- Anything else is not validated. An event stream there is still read for what a client would
  misread (notes only).

A ``Response`` object (a ``/responses`` answer, or the ``response`` of a stream event) carries
many properties the compaction contract does not read, and there the spec and the live service
disagree: the service sends ``prompt_cache_key: null`` and ``safety_identifier: null``, which
the 2026-05-13 spec types as strings. Violations of those properties are reported as notes, not
failures; the properties in :data:`RESPONSE_CONTRACT` fail as everywhere else. ``strict`` sets
nothing aside.

Findings are :class:`Report` values. A stream's are grouped per (pointer, message) across its
events: the pointer is into each event's data, and the message starts with the events it
concerns. How a reader counts them and words a failure is :mod:`._tally`'s.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from .._pointer import unescape
from ..cassette._exchange import Exchange
from ..cassette._sse import asks_for_stream, is_event_stream, looks_like_stream
from ..schema._report import DriftNote, Report, Violation
from ..schema._versions import Kind, load_schema_set
from ._dialects import Dialect, validate_with_dialect
from ._reported import answer_notes, reject_parameters
from ._routes import Route, is_beta, route_of

STREAM_KIND: Kind = "responses.event"
# What a compaction client reads of a Response: which one it is and how it ended, the output
# items (the compaction item among them) and the token usage.
RESPONSE_CONTRACT = frozenset(
    {
        "id",
        "object",
        "model",
        "status",
        "output",
        "previous_response_id",
        "usage",
        "error",
        "incomplete_details",
    }
)
_ASIDE = " (outside the compaction contract: not a failure)"
_EMPTY = Violation("", "body: empty, expected JSON", keyword="json")


class Judged(NamedTuple):
    """What validating one body found; ``report`` is None where no schema covers it."""

    report: Report | None
    notes: tuple[str, ...] = ()  # not failures: what a stream does, findings set aside


def request_kind(route: Route, beta: bool = False) -> Kind:
    if route == "compact":
        return "beta.request" if beta else "request"
    return "responses.request"


def response_kind(route: Route, status: int, beta: bool = False) -> Kind:
    if not 200 <= status < 300:
        return "error"
    if route == "compact":
        return "beta.response" if beta else "response"
    return "responses.response"


def _no_beta(kind: Kind, version: str) -> Report | None:
    """A beta call under a version without a beta contract: one violation that says so."""
    if not kind.startswith("beta.") or load_schema_set(version).has_beta:
        return None
    name = load_schema_set(version).name
    message = (
        f"body: a beta call (POST /responses/compact?beta=true), and schema version {name} has "
        "no beta compact contract (the spec has one from 2026-07-15 on); judge it under a "
        "newer version"
    )
    return Report(kind, version, (Violation("", message, keyword="version"),))


def is_stream(headers: Mapping[str, Any], *, body: Any = None, request_body: Any = None) -> bool:
    """Whether a response is an event stream (``headers``: one value or a list per name).

    A ``content-type`` header decides. Without one (recorders may scrub headers), the response
    is a stream when its ``body`` reads as one (its first field line is ``event:`` or
    ``data:``), or when ``request_body`` asked for one (``"stream": true``) and the body is not
    JSON.
    """
    for key, values in headers.items():
        if str(key).lower() == "content-type":
            values = values if isinstance(values, list | tuple) else [values]
            if any(str(v).strip() for v in values):
                return any(is_event_stream(str(v)) for v in values)
    if body is None or (isinstance(body, bytes | bytearray | str) and not body.strip()):
        return False
    if isinstance(body, bytes | bytearray | str):
        if looks_like_stream(bytes(body) if isinstance(body, bytearray) else body):
            return True
        return asks_for_stream(request_body) and not _is_json(body)
    return False  # a body already parsed is JSON


def _is_json(body: bytes | bytearray | str) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def outside_contract(pointer: str, *, event: bool = False) -> bool:
    """Whether a violation's pointer lies in a Response property :data:`RESPONSE_CONTRACT` omits.

    ``event``: the pointer is into a stream event, whose Response sits under ``/response``.
    """
    parts = pointer.split("/")[1:]
    if event:
        if len(parts) < 2 or parts[0] != "response":
            return False
        parts = parts[1:]
    return bool(parts) and unescape(parts[0]) not in RESPONSE_CONTRACT


def _empty(body: Any) -> bool:
    return body is None or (isinstance(body, bytes | str) and not body.strip())


def judge_request(
    method: str,
    uri: str,
    body: Any,
    *,
    version: str,
    dialect: str | Dialect | None = None,
    strict: bool = False,
    headers: Mapping[str, Any] | None = None,
) -> Report | None:
    """The request body (parsed JSON, or raw bytes) judged; None when no schema covers it.

    ``headers``: the request's, which can ask for the beta contract (see ``_routes.is_beta``).
    """
    route = route_of(method, uri)
    if route is None:
        return None
    kind = request_kind(route, is_beta(uri, headers))
    missing = _no_beta(kind, version)
    if missing is not None:
        return missing
    if _empty(body):
        return Report(kind, version, (_EMPTY,))
    report = validate_with_dialect(kind, body, dialect=dialect, version=version, strict=strict)
    return reject_parameters(report) if route == "compact" else report


def judge_response(
    method: str,
    uri: str,
    status: int,
    headers: Mapping[str, Any],
    body: Any,
    *,
    version: str,
    dialect: str | Dialect | None = None,
    strict: bool = False,
    request_headers: Mapping[str, Any] | None = None,
    request_body: Any = None,
) -> Judged:
    """The response body (parsed JSON, or raw bytes; a stream as bytes) judged.

    ``request_headers``: the request's, which can ask for the beta contract; ``request_body``:
    the request's, whose ``"stream": true`` marks a stream whose content-type was scrubbed.
    A successful answer's compaction items are read too (see ``_reported``): notes only.
    """
    stream = is_stream(headers, body=body, request_body=request_body)
    judged = _judge_body(
        method,
        uri,
        status,
        body,
        stream=stream,
        version=version,
        dialect=dialect,
        strict=strict,
        request_headers=request_headers,
    )
    noted = answer_notes(route_of(method, uri), status, request_body, body, stream=stream)
    return judged._replace(notes=(*judged.notes, *noted)) if noted else judged


def _judge_body(
    method: str,
    uri: str,
    status: int,
    body: Any,
    *,
    stream: bool,
    version: str,
    dialect: str | Dialect | None = None,
    strict: bool = False,
    request_headers: Mapping[str, Any] | None = None,
) -> Judged:
    """:func:`judge_response` without the notes on the answer's compaction items (``stream``:
    whether the answer is an event stream, as :func:`is_stream` read it)."""
    route = route_of(method, uri)
    if stream:
        return _judge_stream(route, body, version=version, strict=strict, dialect=dialect)
    if route is None:
        return Judged(None)
    kind = response_kind(route, status, is_beta(uri, request_headers))
    missing = _no_beta(kind, version)
    if missing is not None:
        return Judged(missing)
    if _empty(body):
        return Judged(Report(kind, version, (_EMPTY,)))
    report = validate_with_dialect(kind, body, dialect=dialect, version=version, strict=strict)
    if kind != "responses.response" or strict or report.valid:
        return Judged(report)
    aside = [v for v in report.violations if outside_contract(v.path)]
    if not aside:
        return Judged(report)
    kept = tuple(v for v in report.violations if v not in aside)
    notes = tuple(f"response {v.path}: {v.message}{_ASIDE}" for v in aside)
    return Judged(report._replace(violations=kept), notes)


def _judge_stream(
    route: Route | None,
    body: Any,
    *,
    version: str,
    strict: bool,
    dialect: str | Dialect | None = None,
) -> Judged:
    from ._events import check_stream

    raw = body if isinstance(body, bytes) else str(body or "").encode()
    aside = None if strict else functools.partial(outside_contract, event=True)
    found = check_stream(
        raw,
        version=version,
        strict=strict,
        schema=route == "responses",
        aside=aside,
        dialect=dialect,
    )
    notes = (*found.notes, *(line + _ASIDE for line in found.outside))
    if not found.validated:
        return Judged(None, notes)
    report = Report(
        STREAM_KIND,
        version,
        tuple(
            Violation(where, line, keyword=keyword)
            for line, (where, keyword) in zip(found.violations, found.violated, strict=True)
        ),
        tuple(DriftNote("", line) for line in found.drift),
    )
    return Judged(report, notes)


def judge_exchange(
    exchange: Exchange,
    *,
    version: str,
    dialect: str | Dialect | None = None,
    strict: bool = False,
    request_body: Any = None,
) -> tuple[Report | None, Judged]:
    """Both ends of a recorded exchange; ``request_body``: its request already parsed."""
    request = judge_request(
        exchange.method,
        exchange.uri,
        exchange.request_body if request_body is None else request_body,
        version=version,
        dialect=dialect,
        strict=strict,
        headers=exchange.request_headers,
    )
    response = judge_response(
        exchange.method,
        exchange.uri,
        exchange.status,
        exchange.response_headers,
        exchange.response_body,
        version=version,
        dialect=dialect,
        strict=strict,
        request_headers=exchange.request_headers,
        request_body=exchange.request_body if request_body is None else request_body,
    )
    return request, response


def lines(
    request: Report | None, response: Report | None, status: int
) -> tuple[list[str], list[str]]:
    """(violation lines, drift lines) of an exchange, as every reader prints them.

    ``request /pointer: message``, ``response (status 200) /pointer: message``; drift without
    the status; a stream's lines start with their event.
    """
    violations = _lines(request, "request", drift=False)
    violations += _lines(response, f"response (status {status})", drift=False)
    drift = _lines(request, "request", drift=True) + _lines(response, "response", drift=True)
    return violations, drift


def _lines(report: Report | None, label: str, *, drift: bool) -> list[str]:
    if report is None:
        return []
    found: tuple[Violation | DriftNote, ...] = report.drift if drift else report.violations
    if report.kind == STREAM_KIND:
        return [f.message for f in found]
    return [f"{label} {f.path or '/'}: {f.message}" for f in found]
