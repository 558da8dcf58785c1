"""Two recordings of the same tests compared: ``pytest-compaction diff OLD NEW`` as a library.

OLD and NEW are each a cassette file or a folder of cassettes; folders pair their cassettes by
path relative to the folder (which files are cassettes is ``cassette._find``'s rule, and a file
in a folder that is not a cassette at all is passed over, as ``check`` does). Within a pair,
exchanges pair by position. For each pair of exchanges the comparison reports:

- a change of route (method, path, query) and of status;
- the fields and list items that changed in the request and response bodies, each at its path
  (``output[1]``, ``usage.input_tokens``) with short old and new values. Lists pair their items
  by kind (an object's ``type`` and ``role``), so an item that disappeared shows as removed
  rather than as every later item changed. An event stream is compared by what it ends with:
  the ``response`` of its last event that carries one (its event type at ``(final event)``),
  not by its text;
- a change of verdict: each side judged as ``check`` judges it (``_run.check_cassette_data``:
  the version and dialect the cassette recorded, else the ones given), exchange by exchange,
  and the chaining rules across the cassette.

Values that differ between any two recordings are normalised: ids (``id``, ``*_id``), encrypted
tokens (``encrypted_content``), timestamps (``*_at``) and the token counts under ``usage``. A
change of such a value is counted, not shown, unless ``normalise`` is false; a field that
appears, disappears or changes type is shown either way. Exchanges and cassettes on one side
only are reported as such.

Values and violation lines are masked (``cassette._secrets.mask_secrets``) before they are
shortened, so that no part of a key survives a cut. Input that cannot be compared (a missing
path, a folder without cassettes, a file that is not a cassette, bad YAML, an unknown version)
raises :class:`CompactionError` with one line naming the file. Results are data until the
command prints them.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .._data import as_data
from .._errors import CompactionError
from ..cassette._body import parse_json_bytes
from ..cassette._exchange import CassetteData, CassetteError, Exchange
from ..cassette._find import find_cassettes
from ..cassette._secrets import mask_secrets
from ..cassette._sse import parse_stream
from ..contract._dialects import get_dialect
from ..contract._judge import is_stream
from ._results import CassetteResult, ExchangeResult

# check's own reading and judging, so that a verdict here is the verdict ``check`` gives.
from ._run import _Versions, check_cassette_data, display_path, read_cassette

Presence = Literal["both", "old only", "new only"]
Side = Literal["request", "response"]
Kind = Literal["changed", "added", "removed"]
PathPart = str | int

# A body JSON can parse but a field-by-field walk cannot follow (about 500 levels of lists).
TOO_DEEP = "nested too deeply to compare field by field"
MASK = "<secret>"  # what mask_secrets puts in a key's place
# How long a value may be in a report; longer ones are cut (after masking).
SHORT = 40
# What a verdict change means, in ``check --against``'s words.
NOW_FAILING = "now failing"
NOW_PASSING = "now passing"


@dataclass(frozen=True)
class FieldChange:
    """One field or list item that differs between the two sides of an exchange."""

    side: Side
    path: str  # "output[1]", "usage.input_tokens"; "(body)" for the body as a whole
    kind: Kind
    old: str | None = None  # short rendering; None when added
    new: str | None = None  # short rendering; None when removed

    def __str__(self) -> str:
        where = f"{self.side} {self.path}"
        if self.kind == "removed":
            return f"{where}: removed ({self.old})"
        if self.kind == "added":
            return f"{where}: added ({self.new})"
        return f"{where}: {self.old} -> {self.new}"

    def as_dict(self) -> dict[str, Any]:
        return as_data(self, "side path kind old new")


@dataclass(frozen=True)
class ExchangeDiff:
    """One position of a cassette: both exchanges compared, or the one side that has it."""

    index: int
    method: str  # the NEW side's, else the OLD side's
    path: str
    presence: Presence = "both"
    old_route: str | None = None  # "POST /v1/responses?x=1" when the routes differ
    new_route: str | None = None
    old_status: int | None = None
    new_status: int | None = None
    changes: tuple[FieldChange, ...] = ()
    old_passed: bool | None = None  # None: not judged (a route no schema covers, or absent)
    new_passed: bool | None = None
    violations: tuple[str, ...] = ()  # what the failing side of a verdict change breaks
    normalised: int = 0  # value changes set aside (ids, tokens, timestamps, usage counts)

    @property
    def name(self) -> str:
        return f"exchange {self.index}: {self.method} {self.path}"

    @property
    def status_changed(self) -> bool:
        return self.presence == "both" and self.old_status != self.new_status

    @property
    def verdict(self) -> str | None:
        """``now failing`` or ``now passing`` when both sides were judged and differ."""
        if self.old_passed is None or self.new_passed is None:
            return None
        if self.old_passed == self.new_passed:
            return None
        return NOW_FAILING if self.old_passed else NOW_PASSING

    @property
    def changed(self) -> bool:
        return (
            self.presence != "both"
            or self.old_route != self.new_route
            or self.status_changed
            or bool(self.changes)
            or self.verdict is not None
        )

    def as_dict(self) -> dict[str, Any]:
        return as_data(
            self,
            "index method path presence old_route new_route old_status new_status changes "
            "old_passed new_passed verdict violations normalised",
        )


@dataclass(frozen=True)
class CassetteDiff:
    """One cassette path: its two recordings compared, or the one side that has it."""

    path: str
    presence: Presence = "both"
    old_exchanges: int = 0
    new_exchanges: int = 0
    old_version: str | None = None  # the versions each side is judged by
    new_version: str | None = None
    exchanges: tuple[ExchangeDiff, ...] = ()  # only the positions with a difference
    old_chain: tuple[str, ...] = ()  # chaining rules broken, per side
    new_chain: tuple[str, ...] = ()
    normalised: int = 0

    @property
    def chain_verdict(self) -> str | None:
        if self.presence != "both" or bool(self.old_chain) == bool(self.new_chain):
            return None
        return NOW_FAILING if self.new_chain else NOW_PASSING

    @property
    def verdict_changes(self) -> int:
        changes = sum(e.verdict is not None for e in self.exchanges)
        return changes + (self.chain_verdict is not None)

    @property
    def changed(self) -> bool:
        return (
            self.presence != "both"
            or self.old_version != self.new_version
            or bool(self.exchanges)
            or self.chain_verdict is not None
        )

    def as_dict(self) -> dict[str, Any]:
        return as_data(
            self,
            "path presence changed old_exchanges new_exchanges old_version new_version "
            "verdict_changes chain_verdict old_chain new_chain normalised exchanges",
        )


@dataclass(frozen=True)
class DiffResult:
    """Everything ``diff`` found between OLD and NEW."""

    old: str
    new: str
    cassettes: tuple[CassetteDiff, ...]
    normalise: bool = True

    @property
    def differences(self) -> bool:
        return any(c.changed for c in self.cassettes)

    def summary(self) -> dict[str, int]:
        both = [c for c in self.cassettes if c.presence == "both"]
        return {
            "cassettes": len(self.cassettes),
            "changed": sum(c.changed for c in both),
            "unchanged": sum(not c.changed for c in both),
            "old_only": sum(c.presence == "old only" for c in self.cassettes),
            "new_only": sum(c.presence == "new only" for c in self.cassettes),
            "exchanges_changed": sum(len(c.exchanges) for c in both),
            "verdict_changes": sum(c.verdict_changes for c in both),
            "normalised": sum(c.normalised for c in both),
        }

    def as_dict(self) -> dict[str, Any]:
        return as_data(
            self, "old new normalise differences summary cassettes", summary=self.summary()
        )


# -- values -------------------------------------------------------------------------------------


def short(value: Any, *, item: bool = False) -> str:
    """A value as a report shows it: scalars as JSON (strings masked, then cut), containers
    by what they are (``object with 3 fields``, ``list of 2 items``). An object with a
    ``type`` is named by it: ``compaction item`` (``item``: a list element, the way output and
    input items are), else ``object of type server_error``."""
    if isinstance(value, Mapping):
        kind = value.get("type")
        if isinstance(kind, str):
            role = value.get("role")
            text = f"{kind} item" if item else f"object of type {kind}"
            text += f", role {role}" if isinstance(role, str) else ""
            return _cut(mask_secrets(text))
        return f"object with {_count(len(value), 'field')}"
    if isinstance(value, list):
        return f"list of {_count(len(value), 'item')}"
    if isinstance(value, str):
        masked = mask_secrets(value)
        return json.dumps(_cut(masked), ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def _cut(text: str) -> str:
    if len(text) <= SHORT:
        return text
    end = SHORT - 1
    # Never cut through a mask: "<secr…" would read as if something had been left out.
    start = text.rfind(MASK, 0, end + len(MASK) - 1)
    if start != -1 and start < end < start + len(MASK):
        end = start + len(MASK)
    return text[:end] + ("…" if end < len(text) else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def render_path(parts: Sequence[PathPart]) -> str:
    """``("output", 1, "id")`` as ``output[1].id``; the empty path as ``(body)``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part and all(c.isalnum() or c in "_-" for c in part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return mask_secrets(out) if out else "(body)"


def volatile(parts: Sequence[PathPart]) -> bool:
    """Whether a field's value differs between any two recordings: ids, encrypted tokens,
    timestamps, and the token counts under ``usage``."""
    names = [p for p in parts if isinstance(p, str)]
    if not names or not isinstance(parts[-1], str):
        return False
    key = names[-1]
    if key == "id" or key.endswith("_id") or key == "encrypted_content" or key.endswith("_at"):
        return True
    return key.endswith("_tokens") and "usage" in names[:-1]


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _same(old: Any, new: Any) -> bool:
    return _kind_of(old) == _kind_of(new) and old == new


def _item_key(value: Any) -> tuple[str, ...]:
    """What pairs list items: an object's type and role, any other value itself."""
    if isinstance(value, Mapping):
        return ("object", str(value.get("type")), str(value.get("role")))
    if isinstance(value, list):
        return ("list",)
    return ("value", _kind_of(value), json.dumps(value, sort_keys=True))


@dataclass
class _Collector:
    side: Side
    normalise: bool
    changes: list[FieldChange] = field(default_factory=list)
    normalised: int = 0

    def add(self, parts: Sequence[PathPart], kind: Kind, old: Any = None, new: Any = None) -> None:
        item = bool(parts) and isinstance(parts[-1], int)
        self.changes.append(
            FieldChange(
                self.side,
                render_path(parts),
                kind,
                None if kind == "added" else short(old, item=item),
                None if kind == "removed" else short(new, item=item),
            )
        )

    def compare(self, old: Any, new: Any, parts: tuple[PathPart, ...] = ()) -> None:
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            for key in old:
                if key not in new:
                    self.add((*parts, key), "removed", old=old[key])
                else:
                    self.compare(old[key], new[key], (*parts, key))
            for key in new:
                if key not in old:
                    self.add((*parts, key), "added", new=new[key])
            return
        if isinstance(old, list) and isinstance(new, list):
            self._compare_lists(old, new, parts)
            return
        if _same(old, new):
            return
        if self.normalise and volatile(parts) and _kind_of(old) == _kind_of(new):
            self.normalised += 1
            return
        self.add(parts, "changed", old=old, new=new)

    def _compare_lists(self, old: list[Any], new: list[Any], parts: tuple[PathPart, ...]) -> None:
        matcher = difflib.SequenceMatcher(
            None, [_item_key(v) for v in old], [_item_key(v) for v in new], autojunk=False
        )
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                    self.compare(old[i], new[j], (*parts, j))
                continue
            for i in range(i1, i2):
                self.add((*parts, i), "removed", old=old[i])
            for j in range(j1, j2):
                self.add((*parts, j), "added", new=new[j])


# -- bodies -------------------------------------------------------------------------------------

BodyForm = Literal["empty", "JSON", "text", "event stream"]


@dataclass(frozen=True)
class _Body:
    form: BodyForm
    value: Any = None  # JSON: the document; text: the text; stream: its final response
    final_event: str | None = None  # a stream's last event that carries a response
    raw: bytes = b""


def _request_body(ex: Exchange) -> _Body:
    return _plain_body(ex.request_body)


def _plain_body(raw: bytes | None) -> _Body:
    if raw is None or not raw.strip():
        return _Body("empty", raw=raw or b"")
    ok, value = parse_json_bytes(raw)
    if ok:
        return _Body("JSON", value, raw=raw)
    return _Body("text", raw.decode("utf-8", "replace"), raw=raw)


def _response_body(ex: Exchange) -> _Body:
    ok, request = parse_json_bytes(ex.request_body) if ex.request_body else (False, None)
    body = ex.response_body
    if not is_stream(ex.response_headers, body=body, request_body=request if ok else None):
        return _plain_body(body)
    final: Any = None
    final_event: str | None = None
    for event in parse_stream(body):
        parsed, data = event.json()
        if parsed and isinstance(data, Mapping) and isinstance(data.get("response"), Mapping):
            final = data["response"]
            name = data.get("type")
            final_event = name if isinstance(name, str) else event.name
    return _Body("event stream", final, final_event, raw=body)


def _compare_bodies(collector: _Collector, old: _Body, new: _Body) -> None:
    if old.form != new.form:
        collector.changes.append(
            FieldChange(
                collector.side,
                "(body)",
                "changed",
                _form(old),
                _form(new),
            )
        )
        return
    if old.form == "event stream" and old.final_event != new.final_event:
        collector.changes.append(
            FieldChange(
                collector.side,
                "(final event)",
                "changed",
                short(old.final_event),
                short(new.final_event),
            )
        )
    before = (len(collector.changes), collector.normalised)
    try:
        collector.compare(old.value, new.value)
    except RecursionError:
        # Parsed, but nested deeper than a field-by-field walk can follow: compare the bytes.
        del collector.changes[before[0] :]
        collector.normalised = before[1]
        if old.raw != new.raw:
            collector.changes.append(
                FieldChange(
                    collector.side,
                    f"(body, {TOO_DEEP})",
                    "changed",
                    f"{len(old.raw)} bytes",
                    f"{len(new.raw)} bytes",
                )
            )


def _form(body: _Body) -> str:
    if body.form == "text":
        return f"text {short(body.value)}"
    return body.form


# -- exchanges ----------------------------------------------------------------------------------


def _route(ex: Exchange) -> str:
    parts = urlsplit(ex.uri)
    return f"{ex.method} {parts.path}" + (f"?{parts.query}" if parts.query else "")


def _violations(result: ExchangeResult | None) -> tuple[str, ...]:
    if result is None:
        return ()
    return tuple(mask_secrets(line) for line in result.verdict.lines())


def _passed(result: ExchangeResult | None) -> bool | None:
    return None if result is None else result.passed


def compare_exchanges(
    old: Exchange,
    new: Exchange,
    index: int,
    *,
    normalise: bool = True,
    old_result: ExchangeResult | None = None,
    new_result: ExchangeResult | None = None,
) -> ExchangeDiff:
    """The two exchanges at ``index`` compared; the results are their verdicts, if judged."""
    request = _Collector("request", normalise)
    _compare_bodies(request, _request_body(old), _request_body(new))
    response = _Collector("response", normalise)
    _compare_bodies(response, _response_body(old), _response_body(new))
    old_route, new_route = _route(old), _route(new)
    old_passed, new_passed = _passed(old_result), _passed(new_result)
    violations: tuple[str, ...] = ()
    if old_passed is not None and new_passed is not None and old_passed != new_passed:
        violations = _violations(new_result if old_passed else old_result)
    return ExchangeDiff(
        index=index,
        method=new.method,
        path=urlsplit(new.uri).path,
        old_route=mask_secrets(old_route) if old_route != new_route else None,
        new_route=mask_secrets(new_route) if old_route != new_route else None,
        old_status=old.status,
        new_status=new.status,
        changes=(*request.changes, *response.changes),
        old_passed=old_passed,
        new_passed=new_passed,
        violations=violations,
        normalised=request.normalised + response.normalised,
    )


def _one_sided(
    ex: Exchange, index: int, presence: Presence, result: ExchangeResult | None
) -> ExchangeDiff:
    old = presence == "old only"
    passed = _passed(result)
    return ExchangeDiff(
        index=index,
        method=ex.method,
        path=urlsplit(ex.uri).path,
        presence=presence,
        old_status=ex.status if old else None,
        new_status=None if old else ex.status,
        old_passed=passed if old else None,
        new_passed=None if old else passed,
        violations=_violations(result) if passed is False else (),
    )


# -- cassettes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Side:
    """One side's cassette, read and judged."""

    data: CassetteData
    judged: CassetteResult

    def result(self, index: int) -> ExchangeResult | None:
        for ex in self.judged.exchanges:
            if ex.index == index:
                return ex
        return None


def compare_cassettes(old: _Side, new: _Side, path: str, *, normalise: bool = True) -> CassetteDiff:
    """Two recordings of one cassette compared, position by position."""
    diffs: list[ExchangeDiff] = []
    normalised = 0
    old_list, new_list = old.data.exchanges, new.data.exchanges
    for index in range(max(len(old_list), len(new_list))):
        if index >= len(new_list):
            diff = _one_sided(old_list[index], index, "old only", old.result(index))
        elif index >= len(old_list):
            diff = _one_sided(new_list[index], index, "new only", new.result(index))
        else:
            diff = compare_exchanges(
                old_list[index],
                new_list[index],
                index,
                normalise=normalise,
                old_result=old.result(index),
                new_result=new.result(index),
            )
        normalised += diff.normalised
        if diff.changed:
            diffs.append(diff)
    return CassetteDiff(
        path=path,
        old_exchanges=len(old_list),
        new_exchanges=len(new_list),
        old_version=old.judged.version,
        new_version=new.judged.version,
        exchanges=tuple(diffs),
        old_chain=tuple(mask_secrets(str(v)) for v in old.judged.chain),
        new_chain=tuple(mask_secrets(str(v)) for v in new.judged.chain),
        normalised=normalised,
    )


def _one_line(problem: object) -> str:
    return " ".join(str(problem).split())


def _read(path: Path, explicit: bool) -> CassetteData | None:
    try:
        return read_cassette(path, explicit)
    except CassetteError as exc:
        raise CompactionError(_one_line(exc)) from None


def _read_named(path: Path) -> CassetteData:
    data = _read(path, explicit=True)
    if data is None:  # a file named explicitly is read as a cassette, never passed over
        raise CompactionError(f"{path}: not a cassette")
    return data


def _cassettes(root: Path) -> Iterator[tuple[str, Path, CassetteData]]:
    """(relative path, file, content) of each cassette under a folder."""
    for file, _ in find_cassettes([root]):
        data = _read(file, explicit=False)
        if data is not None:
            yield file.relative_to(root).as_posix(), file, data


def _judge(
    data: CassetteData, display: str, versions: _Versions, strict: bool, dialect: str | None
) -> _Side:
    judged = check_cassette_data(data, display, versions, strict, dialect)
    if judged.error is not None:
        raise CompactionError(_one_line(judged.error))
    return _Side(data, judged)


def _kind(path: Path, raw: str | os.PathLike[str]) -> str:
    if path.is_file():
        return "file"
    if path.is_dir():
        return "folder"
    if path.exists():
        raise CompactionError(f"{os.fspath(raw)}: not a regular file or a folder")
    raise CompactionError(f"{os.fspath(raw)}: no such file or folder")


def diff_paths(
    old: str | os.PathLike[str],
    new: str | os.PathLike[str],
    *,
    normalise: bool = True,
    version: str | None = None,
    strict: bool = False,
    dialect: str | None = None,
) -> DiffResult:
    """Compare the recordings under ``old`` with those under ``new`` (two files, or two folders).

    ``version`` judges cassettes that do not record theirs (default: the newest); ``strict``
    and ``dialect`` judge as ``check`` does. ``normalise`` false shows the changes of ids,
    encrypted tokens, timestamps and usage counts too. Input that cannot be compared raises
    :class:`CompactionError` with one line naming the path.
    """
    if dialect is not None:
        dialect = get_dialect(dialect).name  # an unknown name is a usage error, before any work
    old_path, new_path = Path(old), Path(new)
    kinds = (_kind(old_path, old), _kind(new_path, new))
    versions = _Versions(version, None)

    def judged(data: CassetteData, display: str) -> _Side:
        return _judge(data, display, versions, strict, dialect)

    results: list[CassetteDiff] = []
    if kinds == ("file", "file"):
        old_data, new_data = _read_named(old_path), _read_named(new_path)
        old_show, new_show = display_path(old_path), display_path(new_path)
        shown = new_show if old_show == new_show else f"{old_show} -> {new_show}"
        results.append(
            compare_cassettes(
                judged(old_data, old_show), judged(new_data, new_show), shown, normalise=normalise
            )
        )
    elif kinds == ("folder", "folder"):
        before = {rel: (file, data) for rel, file, data in _cassettes(old_path)}
        after = {rel: (file, data) for rel, file, data in _cassettes(new_path)}
        for folder, found in ((old, before), (new, after)):
            if not found:
                raise CompactionError(f"{os.fspath(folder)}: no cassettes found in this folder")
        for rel in sorted(before.keys() | after.keys()):
            if rel not in after:
                count = len(before[rel][1].exchanges)
                results.append(CassetteDiff(rel, "old only", old_exchanges=count))
            elif rel not in before:
                count = len(after[rel][1].exchanges)
                results.append(CassetteDiff(rel, "new only", new_exchanges=count))
            else:
                (old_file, old_data), (new_file, new_data) = before[rel], after[rel]
                results.append(
                    compare_cassettes(
                        judged(old_data, display_path(old_file)),
                        judged(new_data, display_path(new_file)),
                        rel,
                        normalise=normalise,
                    )
                )
    else:
        raise CompactionError(
            f"{os.fspath(old)} is a {kinds[0]} and {os.fspath(new)} a {kinds[1]}: "
            "give two cassette files or two folders"
        )
    return DiffResult(
        display_path(old_path), display_path(new_path), tuple(results), normalise=normalise
    )
