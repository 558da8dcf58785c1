"""Server-sent event streams: bytes to events, events to plain data, and back to bytes.

:func:`parse_stream` cuts a stream into events the way an SSE client reads it (a blank line ends
an event; CRLF, LF and CR all end lines) and keeps every byte: each event holds its exact
``raw`` bytes, so ``b"".join(e.raw for e in events)`` is the stream. Nothing is dropped or
repaired; what a client would ignore or misread (a line without ``:``, an unknown field, a
``retry`` that is not a number, an event the stream ends inside) is listed in the event's
``problems``.

:func:`event_entry` turns an event into the plain data a cassette stores: a mapping whose keys,
in order, are its lines (``comment``, ``id``, ``event``, ``retry``, and ``data`` holding the
parsed JSON, or ``text`` holding data that is not compact JSON). When those keys cannot
reproduce the bytes exactly (``data:`` without a space, CRLF line ends, a malformed line...),
the entry is ``{"raw": <the text as received>}`` instead. :func:`render_entry` is the inverse:
``render_entry(event_entry(e)) == e.raw`` for every event of a UTF-8 stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import CompactionError

# Fields a client acts on; other names are ignored by every SSE client.
FIELDS = ("event", "data", "id", "retry")
# The keys an entry may carry besides ``raw``.
ENTRY_KEYS = ("comment", "id", "event", "retry", "data", "text")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode


class EntryError(CompactionError):
    """A stored event entry that cannot be rendered to bytes."""


@dataclass(frozen=True)
class Event:
    """One event of a stream, as a client reads it, with the exact bytes it came from."""

    raw: bytes
    fields: tuple[tuple[str, str], ...] = ()  # (name, value) per line; comments have name ""
    problems: tuple[str, ...] = ()
    line: int = 1  # the stream line (1-based) its first field is on
    terminated: bool = True  # a blank line ends it (a client drops an event the stream ends in)

    def _values(self, name: str) -> list[str]:
        return [value for field, value in self.fields if field == name]

    def _last(self, name: str) -> str | None:
        # A field given twice counts once, as its last line, as clients read it.
        values = self._values(name)
        return values[-1] if values else None

    @property
    def name(self) -> str | None:
        """The ``event`` field (the last one, as clients read it); None when absent."""
        return self._last("event")

    @property
    def data(self) -> str | None:
        """The ``data`` lines joined by newlines; None when the event has no data field."""
        values = self._values("data")
        return "\n".join(values) if values else None

    @property
    def id(self) -> str | None:
        return self._last("id")

    @property
    def retry(self) -> str | None:
        return self._last("retry")

    @property
    def comments(self) -> list[str]:
        return self._values("")

    @property
    def is_blank(self) -> bool:
        """Only blank lines (a stream's trailing newlines): no event for a client."""
        return not self.fields

    def json(self) -> tuple[bool, Any]:
        """(True, value) when the data is JSON, else (False, None)."""
        data = self.data
        if data is None:
            return False, None
        try:
            return True, json.loads(data)
        except (ValueError, RecursionError):
            return False, None


def _lines(body: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(line, line end) pairs; the last line's end is empty when the stream stops mid-line."""
    start = 0
    for match in _LINE_END.finditer(body):
        yield body[start : match.start()], match.group()
        start = match.end()
    if start < len(body):
        yield body[start:], b""


def _field(text: str, number: int) -> tuple[tuple[str, str], str | None]:
    """The (name, value) of one non-blank line, and what is wrong with it, if anything."""
    if text.startswith(":"):
        return ("", text[1:]), None
    name, colon, value = text.partition(":")
    if value.startswith(" "):
        value = value[1:]
    if not colon:
        if name in FIELDS:
            return (name, ""), None
        return (name, ""), (
            f"line {number}: {_show(text)} has no ':'; clients read it as a field named like "
            "the whole line and ignore it"
        )
    if name not in FIELDS:
        return (name, value), f"line {number}: unknown field {_show(name)}; clients ignore it"
    if name == "retry" and not (value.isascii() and value.isdigit()):
        return (name, value), f"line {number}: retry {_show(value)} is not a number of ms"
    if name == "id" and "\0" in value:
        return (name, value), f"line {number}: an id with a NUL character is ignored by clients"
    return (name, value), None


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_stream(body: bytes) -> list[Event]:
    """The events of a stream, every byte kept (see the module docstring)."""
    events: list[Event] = []
    start = 0  # where the current event's bytes begin
    pos = 0
    fields: list[tuple[str, str]] = []
    problems: list[str] = []
    first_line = 0
    number = 0
    for line, end in _lines(body):
        number += 1
        pos += len(line) + len(end)
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]  # a leading byte order mark is not part of the first line
        if not line:
            if fields or problems:
                events.append(Event(body[start:pos], tuple(fields), tuple(problems), first_line))
                start, fields, problems = pos, [], []
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"line {number}: not UTF-8 (byte {exc.start} of the line)")
            text = line.decode("utf-8", errors="replace")
        if not fields:
            first_line = number
        field, problem = _field(text, number)
        fields.append(field)
        if problem:
            problems.append(problem)
    if start < len(body):
        if fields:
            problems.append(
                f"line {number}: the stream ends inside this event (no blank line after it); "
                "clients drop it"
            )
            events.append(Event(body[start:], tuple(fields), tuple(problems), first_line, False))
        else:
            events.append(Event(body[start:], (), (), number))
    return events


# ---------------------------------------------------------------------------------------------
# Entries: the plain-data form a cassette stores


def _data_entry(data: str) -> tuple[str, Any]:
    """``("data", value)`` when ``data`` is compact JSON that renders back the same, else text."""
    try:
        value = json.loads(data)
        if _compact(value) == data:
            return "data", value
    except (ValueError, RecursionError):
        pass
    return "text", data


def event_entry(event: Event) -> dict[str, Any]:
    """The plain data a cassette stores for an event (see the module docstring)."""
    try:
        text = event.raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EntryError("the event is not UTF-8 text") from None
    entry: dict[str, Any] = {}
    pending: list[str] = []  # consecutive data lines, or consecutive comment lines
    pending_key: str | None = None
    structured = not event.problems

    def flush() -> None:
        nonlocal pending, pending_key, structured
        if pending_key is None:
            return
        if pending_key == "data":
            key, value = _data_entry("\n".join(pending))
        else:
            key, value = "comment", "\n".join(pending)
        if key in entry or (key in ("data", "text") and ("data" in entry or "text" in entry)):
            structured = False
        entry[key] = value
        pending, pending_key = [], None

    for name, value in event.fields:
        key = "comment" if name == "" else name
        if key in ("data", "comment"):
            if pending_key != key:
                flush()
                pending_key = key
            pending.append(value)
            continue
        flush()
        if key in entry:
            structured = False
        entry[key] = value
    flush()
    if structured and entry:
        try:
            if render_entry(entry) == event.raw:
                return entry
        except EntryError:
            pass
    return {"raw": text}


def _line(name: str, value: str, where: str) -> str:
    if "\n" in value or "\r" in value:
        raise EntryError(f"{where}: {name} holds a line break")
    return f"{name}: {value}\n"


def render_entry(entry: Mapping[str, Any], where: str = "event") -> bytes:
    """The bytes of one stored entry (the inverse of :func:`event_entry`)."""
    if not isinstance(entry, Mapping):
        raise EntryError(f"{where}: expected a mapping, got {type(entry).__name__}")
    if "raw" in entry:
        if len(entry) != 1:
            others = ", ".join(sorted(str(k) for k in entry if k != "raw"))
            raise EntryError(f"{where}: 'raw' stands alone; remove {others}, or remove 'raw'")
        raw = entry["raw"]
        if not isinstance(raw, str):
            raise EntryError(f"{where}: raw must be text, got {type(raw).__name__}")
        return _encode(raw, where)
    unknown = [str(k) for k in entry if k not in ENTRY_KEYS]
    if unknown:
        raise EntryError(
            f"{where}: unknown key(s) {', '.join(unknown)}; an event has "
            f"{', '.join(ENTRY_KEYS)} or raw"
        )
    if not entry:
        raise EntryError(f"{where}: an event needs at least one of {', '.join(ENTRY_KEYS)}")
    if "data" in entry and "text" in entry:
        raise EntryError(f"{where}: has both data and text; keep one")
    out: list[str] = []
    for key, value in entry.items():
        if key == "data":
            try:
                text = _compact(value)
            except (TypeError, ValueError, RecursionError) as exc:
                raise EntryError(f"{where}: data is not JSON data: {exc}") from None
            out.append(f"data: {text}\n")
            continue
        if key == "retry" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise EntryError(f"{where}: {key} must be text, got {type(value).__name__}")
        if key in ("comment", "text"):
            if "\r" in value:
                raise EntryError(f"{where}: {key} holds a carriage return; use raw")
            prefix = ":" if key == "comment" else "data: "
            out.extend(f"{prefix}{part}\n" for part in value.split("\n"))
        else:
            out.append(_line(key, value, where))
    out.append("\n")
    return _encode("".join(out), where)


def _encode(text: str, where: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EntryError(f"{where}: not encodable as UTF-8: {exc.reason}") from None


def render_entries(entries: Any, where: str = "events") -> bytes:
    """The stream a list of stored entries renders to."""
    if not isinstance(entries, list):
        raise EntryError(f"{where}: expected a list of events, got {type(entries).__name__}")
    return b"".join(render_entry(e, f"{where} {i}") for i, e in enumerate(entries))


def stream_entries(body: bytes) -> list[dict[str, Any]] | None:
    """The entries of a stream, or None when they cannot reproduce it (not UTF-8)."""
    try:
        entries = [event_entry(e) for e in parse_stream(body)]
    except EntryError:
        return None
    return entries


def is_event_stream(content_type: str | None) -> bool:
    """Whether a content-type header value names a server-sent event stream."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


def looks_like_stream(body: bytes | str | None) -> bool:
    """Whether a body reads as an event stream: its first field line is ``event:`` or ``data:``.

    Comment lines (``:``) and blank lines before it are skipped; a JSON body never starts so.
    """
    if body is None:
        return False
    raw = body.encode("utf-8", "replace") if isinstance(body, str) else bytes(body)
    raw = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    for line, _ in _lines(raw[:65536]):
        if not line or line.startswith(b":"):
            continue
        return line.startswith((b"event:", b"data:"))
    return False


def asks_for_stream(request_body: Any) -> bool:
    """Whether a request body (parsed JSON, or its bytes/text) carries ``"stream": true``."""
    if isinstance(request_body, bytes | bytearray | str):
        try:
            request_body = json.loads(request_body)
        except (ValueError, RecursionError):
            return False
    return isinstance(request_body, Mapping) and request_body.get("stream") is True
