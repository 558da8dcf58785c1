"""Checks of a recorded ``POST /responses`` event stream.

Each event's JSON data is validated against the ``responses.event`` schema of a version (when the
version has one); identical findings across events are reported once with the indexes of the
events that share them (a stream has hundreds of deltas). The shape of the stream gives notes,
not violations, because such streams are recorded on purpose: a line clients ignore, data that is
not JSON, an ``error`` event, a failed or incomplete response, a gap in ``sequence_number``, and
a stream that ends without a terminal event. Event indexes are positions in the cassette's
``events`` list (see :mod:`._sse`).

An event whose ``type`` the version's ``responses.event`` union does not list is drift, not a
violation (a violation under ``strict``): clients ignore event types they do not know. An unknown
item type inside an event (``item``, ``response.output``) stays a violation.

A ``response.completed`` (or ``response.incomplete``) event whose ``response`` carries no
``output`` (null, or no such key) is judged with the output a client builds from the
``response.output_item.done`` events before it, in ``output_index`` order, as the openai SDK
does; a note says so. An empty ``output`` beside done events is valid as it stands; a note says
that the output is the done events' items, which is what the chaining rules read.

Under a dialect the events are validated through its ``responses.event`` overlay, and a gateway
that ends its streams with ``data: [DONE]`` (the dialect's ``stream_done``) gets no note for that
last line.

Nothing here compares events with each other beyond ``sequence_number`` and that output: a real
stream re-encrypts, so a compaction item's ``encrypted_content`` differs between
``response.output_item.added``, ``response.output_item.done`` and ``response.completed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from .._errors import CompactionError
from ..cassette._sse import Event, parse_stream
from ._dialects import Dialect, dialect_validator, get_dialect

TERMINAL = ("response.completed", "response.failed", "response.incomplete", "error")
# Terminal events whose response's output a client rebuilds from the done events when absent.
_REBUILT = ("response.completed", "response.incomplete")
EVENT_KIND = "responses.event"
_SHOWN = 5  # event indexes listed per grouped finding
DONE = "[DONE]"  # the data of the line some gateways end their streams with


@dataclass
class StreamCheck:
    """What checking one stream found; messages start with the event they concern."""

    events: int = 0
    validated: bool = False  # whether the events met a schema
    violations: list[str] = field(default_factory=list)
    # (JSON pointer into the events' data, schema keyword) of each violation, in order
    violated: list[tuple[str, str]] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)  # violations the caller set aside
    drift: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _label(index: int, event: Event, value: Any) -> str:
    kind = value.get("type") if isinstance(value, Mapping) else None
    name = kind if isinstance(kind, str) else event.name
    return f"event {index}" + (f" ({name})" if name else "")


def _grouped(found: dict[tuple[str, str], list[str]]) -> list[str]:
    """One line per (pointer, message): the first event, then how many more share it."""
    out = []
    for (where, message), labels in found.items():
        line = f"{labels[0]} {where}: {message}"
        rest = labels[1:]
        if rest:
            indexes = [label.split(" ")[1] for label in rest]
            shown = ", ".join(indexes[:_SHOWN])
            more = f" and {len(indexes) - _SHOWN} more" if len(indexes) > _SHOWN else ""
            line += f" (also event{'s' if len(indexes) > 1 else ''} {shown}{more})"
        out.append(line)
    return out


def _error_text(value: Mapping[str, Any]) -> str:
    inner = value.get("error")
    source = inner if isinstance(inner, Mapping) else value
    code, message = source.get("code"), source.get("message")
    parts = [str(p) for p in (code, message) if p not in (None, "")]
    return ": ".join(parts) or "no code or message"


def _shape_notes(event: Event, value: Any, label: str) -> list[str]:
    if not isinstance(value, Mapping):
        return []
    notes = []
    kind = value.get("type")
    if event.name is not None and isinstance(kind, str) and event.name != kind:
        notes.append(f"{label}: the event name {event.name!r} differs from its data type {kind!r}")
    response = value.get("response")
    response = response if isinstance(response, Mapping) else {}
    if kind == "error":
        notes.append(f"{label}: the stream reports an error: {_error_text(value)}")
    elif kind == "response.failed":
        error = response.get("error")
        detail = _error_text(error) if isinstance(error, Mapping) else "no error object"
        notes.append(f"{label}: the response failed: {detail}")
    elif kind == "response.incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        notes.append(f"{label}: the response is incomplete: {reason or 'no reason given'}")
    return notes


def _unknown_event(violation: Any) -> bool:
    """A violation saying the event's own ``type`` is not one the version's union lists."""
    return (
        violation.path == "/type"
        and violation.keyword == "enum"
        and "unknown type " in violation.message
    )


def _unknown_event_note(kind: Any, violation: Any, version: str) -> str:
    """The drift line of an unknown event type, with the validator's hint about later versions."""
    _, _, rest = violation.message.partition("; expected one of: ")
    cut = rest.find("; ")
    hint = rest[cut:] if cut >= 0 else ""
    name = f"{kind!r}" if isinstance(kind, str) else "?"
    return (
        f"unknown event type {name} (schema version {version} does not list it; clients "
        f"ignore event types they do not know){hint}"
    )


def _with_output(value: Any, done: dict[int, Any]) -> tuple[Any, str | None]:
    """A terminal event as a client reads it when its response carries no output, and a note.

    The output is then the items of the ``response.output_item.done`` events, in
    ``output_index`` order. The value is returned unchanged when it carries an output.
    """
    if not isinstance(value, Mapping) or value.get("type") not in _REBUILT:
        return value, None
    response = value.get("response")
    if not isinstance(response, Mapping) or not done:
        return value, None
    output = response.get("output", _ABSENT)
    items = [done[i] for i in sorted(done)]
    count = f"{len(items)} item(s) of the response.output_item.done events"
    if isinstance(output, list) and not output:
        return value, f"response.output is empty: the output is the {count}"
    if output is not _ABSENT and output is not None:
        return value, None
    what = "missing" if output is _ABSENT else "null"
    rebuilt = {**value, "response": {**response, "output": items}}
    note = f"response.output is {what}: judged with the {count} (in output_index order)"
    return rebuilt, note


_ABSENT = object()


def check_stream(
    body: bytes,
    *,
    version: str | None = None,
    strict: bool = False,
    schema: bool = True,
    aside: Callable[[str], bool] | None = None,
    dialect: str | Dialect | None = None,
) -> StreamCheck:
    """Check one stream; ``schema=False`` reports only what clients would misread.

    Violations at the JSON pointers (into an event's data) for which ``aside`` is true go to
    ``outside`` instead of ``violations``. ``dialect``: the gateway profile judged under.
    """
    events = parse_stream(body)
    result = StreamCheck(events=sum(not e.is_blank for e in events))
    profile = get_dialect(dialect)
    validator: Any = None
    if schema:
        from ..schema._versions import Kind, resolve_version

        try:
            validator = dialect_validator(
                cast(Kind, EVENT_KIND), resolve_version(version), profile.name
            )
        except CompactionError as exc:
            result.notes.append(f"events not validated: {exc}")
    final = max((i for i, e in enumerate(events) if not e.is_blank), default=None)
    violations: dict[tuple[str, str], list[str]] = {}
    outside: dict[tuple[str, str], list[str]] = {}
    keywords: dict[tuple[str, str], str] = {}
    drift: dict[tuple[str, str], list[str]] = {}
    last: tuple[int, str] | None = None  # the last JSON event: index and type
    sequence: int | None = None
    done: dict[int, Any] = {}  # output_index -> the item of its response.output_item.done
    for index, event in enumerate(events):
        result.notes += [f"event {index}: {problem}" for problem in event.problems]
        if event.is_blank or not event.terminated or not schema:
            continue  # a client never delivers an event the stream ends inside
        if event.data is None:
            if event.name is not None:
                result.notes.append(f"event {index} ({event.name}): it has no data line")
            continue
        is_json, value = event.json()
        label = _label(index, event, value)
        if not is_json and profile.stream_done and event.data == DONE and index == final:
            continue  # the gateway's end-of-stream line
        if not is_json:
            text = event.data if len(event.data) <= 60 else event.data[:60] + "..."
            result.notes.append(f"{label} (line {event.line}): the data is not JSON: {text!r}")
            continue
        result.notes += _shape_notes(event, value, label)
        if isinstance(value, Mapping):
            kind = value.get("type")
            last = (index, kind if isinstance(kind, str) else "?")
            number = value.get("sequence_number")
            if isinstance(number, int) and not isinstance(number, bool):
                if sequence is not None and number != sequence + 1:
                    result.notes.append(f"{label}: sequence_number {number} follows {sequence}")
                sequence = number
            position = value.get("output_index")
            if kind == "response.output_item.done" and isinstance(value.get("item"), Mapping):
                if not isinstance(position, int) or isinstance(position, bool):
                    position = len(done)
                done[position] = value["item"]
        value, rebuilt = _with_output(value, done)
        if rebuilt is not None:
            result.notes.append(f"{label}: {rebuilt}")
        if validator is not None:
            report = validator.validate(value, strict=strict)
            for v in report.violations:
                if not strict and _unknown_event(v):
                    note = _unknown_event_note(value.get("type"), v, validator.version)
                    drift.setdefault(("/type", note), []).append(label)
                    continue
                found = outside if aside is not None and aside(v.path) else violations
                found.setdefault((v.path or "/", v.message), []).append(label)
                keywords.setdefault((v.path or "/", v.message), v.keyword)
            for d in report.drift:
                drift.setdefault((d.path or "/", d.message), []).append(label)
    if schema:
        if last is None:
            result.notes.append("the stream has no JSON events")
        elif last[1] not in TERMINAL:
            result.notes.append(
                f"the stream ends after event {last[0]} ({last[1]}) without response.completed"
            )
    result.validated = validator is not None
    result.violations = _grouped(violations)
    result.violated = [(where, keywords[where, message]) for where, message in violations]
    result.outside = _grouped(outside)
    result.drift = _grouped(drift)
    return result
