"""A cassette document as written: every scalar by its path, and edits of a scalar's own text.

:func:`scan_document` reads every string of a raw YAML/JSON document, property names
included, the way the write gate reads a body: key-shaped text anywhere, and any value long
enough under a name like a key. It reports each by its path from the document's root
(``/metadata/note``, ``/interactions/0/response/url``), never by its value.

:func:`edit_in_place` turns a fixed copy of a document back into the file's text by editing
only the scalars that changed (and removing the entries that went), at the positions the YAML
parser (or a JSON scanner) gives them: comments, anchors, key order, quoting and timestamps
stay as they were. The result is parsed again and must equal the fixed copy; when the change
cannot be made that way (a mapping that grew, YAML merge keys), it returns None and the caller
writes the document whole.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from .._pointer import escape
from ._body import first_char
from ._file import parse_document
from ._secrets import (
    Finding,
    SecretPolicy,
    credential_shaped,
    credential_sized,
    find_in_text,
    generic_key_name,
    looks_secret,
    named_like_key,
)

Path = tuple[str | int, ...]
_NAME_KIND = "a credential (in a field named like a key)"


@dataclass(frozen=True)
class DocumentFinding(Finding):
    """A secret-looking scalar of the document, by its path (``at``) from the root.

    ``exchange`` is the interaction it sits in, or -1 outside the interactions; ``part`` is
    ``"document"``; ``location`` the path as a pointer, a secret-looking name masked.
    """

    at: Path = field(default=(), compare=False, repr=False)
    is_name: bool = field(default=False, compare=False, repr=False)
    by_name: bool = field(default=False, compare=False, repr=False)
    span: tuple[int, int] | None = field(default=None, compare=False, repr=False)  # a comment

    def __str__(self) -> str:
        return f"document {self.location}: looks like {self.kind}"


def _allowed(text: str, policy: SecretPolicy | None) -> bool:
    if policy is None:
        return False
    return text in policy.allow_values or any(p.fullmatch(text) for p in policy.allow_patterns)


_HEX_RUN = re.compile(r"[0-9a-fA-F]{32}")


def _token(key: str | int, policy: SecretPolicy | None) -> str:
    text = str(key)
    if isinstance(key, str) and (
        _HEX_RUN.search(text) or looks_secret(text) or find_in_text(text, policy) is not None
    ):
        return "<secret-looking name>"
    return escape(text)


def pointer(path: Path, policy: SecretPolicy | None = None) -> str:
    """``/interactions/0/response/url``: a path as a JSON pointer, secret-looking names masked."""
    return "".join("/" + _token(part, policy) for part in path) or "/"


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return None


def scan_document(
    doc: Any,
    policy: SecretPolicy | None = None,
    *,
    prefix: Path = (),
    skip: Callable[[Path], bool] | None = None,
) -> list[DocumentFinding]:
    """Every secret-looking string of ``doc`` (keys and values), one finding per scalar.

    As in a JSON body: any long value under a name like a key (``api_key``, at any depth) is a
    credential, and a credential-shaped one directly under a generic name (``token``).
    ``prefix`` is where ``doc`` sits in a larger document; ``skip`` leaves out the subtrees
    something else reads (the exchanges of a cassette).
    """
    found: list[DocumentFinding] = []
    seen: set[int] = set()  # a YAML alias shares its node: each container is read once
    stack: list[tuple[Any, Path, bool, bool]] = [(doc, prefix, False, False)]
    while stack:
        node, path, under_key, generic = stack.pop()
        if skip is not None and path != prefix and skip(path):
            continue
        if isinstance(node, dict | list):
            if id(node) in seen:
                continue
            seen.add(id(node))
        if isinstance(node, dict):
            children: list[tuple[Any, Path, bool, bool]] = []
            for key, value in node.items():
                child = (*path, key)
                name = str(key)
                kind = find_in_text(name, policy) if isinstance(key, str) else None
                if kind is None and under_key and looks_secret(name):
                    kind = "a key"  # a bare key (32 hex digits) used as a name under a key
                if kind is not None:
                    found.append(_finding(child, f"{kind} (as a property name)", policy, True))
                children.append(
                    (value, child, under_key or named_like_key(name), generic_key_name(name))
                )
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend(
                (v, (*path, i), under_key, generic) for i, v in reversed(list(enumerate(node)))
            )
        else:
            text = _as_text(node)
            if not text:
                continue
            kind = find_in_text(text, policy)
            held = (under_key and credential_sized(text)) or (
                generic and credential_shaped(text.strip())
            )
            if kind is None and held and not _allowed(text, policy):
                kind = _NAME_KIND
            if kind is not None:
                # Under a name like a key, the whole value goes when it is fixed.
                found.append(_finding(path, kind, policy, False, bool(under_key or held)))
    return found


def _finding(
    path: Path, kind: str, policy: SecretPolicy | None, is_name: bool, by_name: bool = False
) -> DocumentFinding:
    exchange = path[1] if len(path) > 1 and path[0] == "interactions" else -1
    return DocumentFinding(
        exchange=exchange if isinstance(exchange, int) else -1,
        part="document",
        location=pointer(path, policy) + (" (a property name)" if is_name else ""),
        kind=kind,
        at=path,
        is_name=is_name,
        by_name=by_name,
    )


# ---------------------------------------------------------------------------------------------
# The document's text, node by node


@dataclass(eq=False)
class _Node:
    """A node of the document and where its text is (``start``/``end``: character offsets)."""

    kind: str  # "scalar", "map" or "seq"
    start: int
    end: int
    style: str = ""  # of a scalar: "" plain, "'", '"', "|", ">", or "json"
    tag: str = ""
    value: str = ""  # of a scalar: its text as parsed
    pairs: list[tuple[_Node, _Node]] = field(default_factory=list)
    items: list[_Node] = field(default_factory=list)
    flow: bool = False


def _from_yaml(root: yaml.Node) -> _Node:
    memo: dict[int, _Node] = {}
    stack: list[yaml.Node] = [root]
    while stack:  # children first, without recursion (a document may nest deeply)
        node = stack[-1]
        if id(node) in memo:
            stack.pop()
            continue
        kids: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            kids = list(node.value)
        pending = [k for k in kids if id(k) not in memo]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        start, end = node.start_mark.index, node.end_mark.index
        if isinstance(node, yaml.ScalarNode):
            memo[id(node)] = _Node(
                "scalar", start, end, node.style or "", node.tag, value=node.value
            )
        elif isinstance(node, yaml.MappingNode):
            pairs = [(memo[id(k)], memo[id(v)]) for k, v in node.value]
            flow = bool(getattr(node, "flow_style", False))
            memo[id(node)] = _Node("map", start, end, pairs=pairs, flow=flow)
        else:
            items = [memo[id(v)] for v in node.value]
            flow = bool(getattr(node, "flow_style", False))
            memo[id(node)] = _Node("seq", start, end, items=items, flow=flow)
    return memo[id(root)]


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_JSON_ATOM = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


def _from_json(text: str) -> _Node:
    """The JSON document's nodes with their offsets (the text was parsed before: it is JSON)."""

    def skip(i: int) -> int:
        m = _JSON_SPACE.match(text, i)
        return m.end() if m else i

    def string(i: int) -> tuple[_Node, int]:
        value, end = _scanstring(text, i + 1)
        return _Node("scalar", i, end, "json", value=value), end

    root: _Node | None = None
    # (container, pending key) frames; a value completes the frame on top.
    stack: list[tuple[_Node, _Node | None]] = []
    i = skip(0)
    while True:
        char = text[i]
        node: _Node
        if char in "{[":
            container = _Node("map" if char == "{" else "seq", i, -1, flow=True)
            i = skip(i + 1)
            if text[i] in "}]":
                container.end = i + 1
                i = skip(i + 1)
                node = container
            else:
                if container.kind == "map":
                    key, i = string(i)
                    i = skip(skip(i) + 1)  # the colon
                    stack.append((container, key))
                else:
                    stack.append((container, None))
                continue
        elif char == '"':
            node, i = string(i)
            i = skip(i)
        else:
            m = _JSON_ATOM.match(text, i)
            if m is None:
                raise ValueError(f"unexpected {char!r} at {i}")
            node = _Node("scalar", i, m.end(), "json", tag="atom", value=m.group())
            i = skip(m.end())
        while True:  # hand the finished node to its container, closing those that end
            if not stack:
                root = node
                break
            container, pending = stack.pop()
            if pending is not None:
                container.pairs.append((pending, node))
            else:
                container.items.append(node)
            if text[i] == ",":
                i = skip(i + 1)
                if container.kind == "map":
                    key, i = string(i)
                    i = skip(skip(i) + 1)
                    stack.append((container, key))
                else:
                    stack.append((container, None))
                break
            container.end = i + 1  # "}" or "]"
            i = skip(i + 1)
            node = container
        if root is not None:
            return root


def document_nodes(text: str) -> _Node | None:
    """The nodes of a cassette's text, or None when it cannot be read again (it was, once)."""
    try:
        if first_char(text) == "{":
            return _from_json(text)
        # The document was read once already, within bounds: libyaml may compose it again.
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (yaml.YAMLError, ValueError, IndexError, RecursionError):
        return None
    return None if root is None else _from_yaml(root)


def _scalar_spans(root: _Node) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.kind == "scalar":
            spans.append((node.start, node.end))
        stack += [n for pair in node.pairs for n in pair] + node.items
    return sorted(spans)


def comments(text: str) -> list[tuple[int, int]]:
    """Where the comments of a YAML text are: the text outside every scalar after a ``#``."""
    if "#" not in text or first_char(text) == "{":
        return []
    root = document_nodes(text)
    if root is None:
        return []
    found: list[tuple[int, int]] = []
    at = 0
    for start, end in [*_scalar_spans(root), (len(text), len(text))]:
        gap = text[at:start] if start > at else ""
        offset = at
        at = max(at, end)
        i = gap.find("#")
        while i >= 0:
            if i == 0 and offset > 0 and not text[offset - 1].isspace():
                i = gap.find("#", i + 1)
                continue
            if i > 0 and not gap[i - 1].isspace():
                i = gap.find("#", i + 1)
                continue
            stop = gap.find("\n", i)
            stop = len(gap) if stop < 0 else stop
            found.append((offset + i, offset + stop))
            i = gap.find("#", stop)
    return found


def comment_findings(text: str, policy: SecretPolicy | None = None) -> list[DocumentFinding]:
    """The comments of a YAML text that hold something secret-looking, by line."""
    out: list[DocumentFinding] = []
    for start, end in comments(text):
        kind = find_in_text(text[start + 1 : end], policy)
        if kind is not None:
            line = text.count("\n", 0, start) + 1
            out.append(
                DocumentFinding(-1, "document", f"line {line} (a comment)", kind, span=(start, end))
            )
    return out


# ---------------------------------------------------------------------------------------------
# Edits


_PROPERTIES = re.compile(r"(?:(?:&[^\s]+|![^\s]*)\s+)*")
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
Edit = tuple[int, int, str]


class _CannotEdit(Exception):
    """The change is not one of a scalar's text or a removed entry."""


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (every character printable or escaped)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif (
            code < 0x20
            or 0x7F <= code <= 0x9F
            or 0xD800 <= code <= 0xDFFF
            or code == 0xFEFF
            or code in (0x2028, 0x2029, 0x85)
        ):
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _plain_ok(text: str, in_flow: bool) -> bool:
    """Whether ``text`` reads back as itself written plain (as a mapping value)."""
    if in_flow and not _PLAIN.fullmatch(text):
        return False
    if not text or text != text.strip() or "\n" in text or not _printable(text):
        return False
    try:
        return bool(yaml.safe_load("k: " + text) == {"k": text})
    except yaml.YAMLError:
        return False


def _literal(raw: str, old: str, new: str) -> str | None:
    """A literal block scalar with the changed lines rewritten, its header and indent kept."""
    header, nl, content = raw.partition("\n")
    if not nl:
        return None
    old_lines, new_lines = old.split("\n"), new.split("\n")
    raw_lines = content.split("\n")
    if len(old_lines) != len(new_lines) or len(raw_lines) < len(old_lines):
        return None
    for n, (was, now) in enumerate(zip(old_lines, new_lines, strict=True)):
        if was == now:
            continue
        line = raw_lines[n]
        indent = line[: len(line) - len(was)]
        if not line.endswith(was) or indent.strip() or not now or now[0] in " \t":
            return None
        raw_lines[n] = indent + now
    return header + "\n" + "\n".join(raw_lines)


def _printable(text: str) -> bool:
    return (
        all(
            ch in "\n\t"
            or not (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or 0xD800 <= ord(ch) <= 0xDFFF)
            for ch in text
        )
        and "\ufeff" not in text
        and "\r" not in text
    )


def _literal_block(text: str, source: str, start: int) -> str | None:
    """``text`` as a new literal block scalar, indented under the line ``start`` is on."""
    if not _printable(text) or text[:1] in " \t" or not text.strip("\n"):
        return None
    line = source[_line_start(source, start) : start]
    indent = " " * (len(line) - len(line.lstrip(" ")) + 2)
    body = text.rstrip("\n")
    trailing = len(text) - len(body)
    chomp = "-" if trailing == 0 else ("" if trailing == 1 else "+")
    lines = [indent + part if part else "" for part in body.split("\n")]
    return f"|{chomp}\n" + "\n".join(lines) + "\n" * max(trailing, 1)


def _render_yaml(node: _Node, text: str, new: Any, in_flow: bool) -> str:
    span = text[node.start : node.end]
    props = _PROPERTIES.match(span)
    head = props.group() if props else ""
    body = span[len(head) :]
    anchor = " ".join(p for p in head.split() if p.startswith("&"))
    prefix = anchor + " " if anchor else ""
    if isinstance(new, bytes):
        return prefix + "!!binary " + _quoted(base64.b64encode(new).decode("ascii"))
    if not isinstance(new, str):
        raise _CannotEdit
    tags = [p for p in head.split() if p.startswith("!") and p not in ("!!binary",)]
    prefix += "".join(t + " " for t in tags)
    if node.style == "|" and node.tag.endswith(":str"):
        edited = _literal(body, node.value, new)
        if edited is not None:
            return prefix + edited
    block = node.style in ("|", ">")
    if node.style == "" and _plain_ok(new, in_flow):
        return prefix + new
    if node.style in ("", "'", "|", ">") and "\n" not in new and _printable(new):
        # Single-quoted, as vcrpy writes a string it cannot leave plain.
        quoted = "'" + new.replace("'", "''") + "'"
        return prefix + quoted + (body[len(body.rstrip("\n")) :] if block else "")
    if "\n" in new and not in_flow and (block or node.style == ""):
        literal = _literal_block(new, text, node.start)
        if literal is not None and (block or text[node.end : node.end + 1] in ("\n", "")):
            # A block scalar ends at the start of the next line: so does this one.
            return prefix + (literal if block else literal.rstrip("\n"))
    trail = body[len(body.rstrip("\n")) :] if block else ""
    return prefix + _quoted(new) + trail


def _render(node: _Node, text: str, new: Any, in_flow: bool = False) -> str:
    if node.style == "json":
        if not isinstance(new, str):
            raise _CannotEdit
        return json.dumps(new, ensure_ascii=False)
    return _render_yaml(node, text, new, in_flow)


def _line_start(text: str, i: int) -> int:
    return text.rfind("\n", 0, i) + 1


def _removal(text: str, pairs: list[tuple[_Node, _Node]], j: int, flow: bool) -> Edit:
    key, value = pairs[j]
    if flow:  # "a": 1, "b": 2: the entry and one comma next to it
        if j + 1 < len(pairs):
            return key.start, pairs[j + 1][0].start, ""
        if j > 0:
            return pairs[j - 1][1].end, value.end, ""
        return key.start, value.end, ""
    start = _line_start(text, key.start)
    if text[start : key.start].strip():
        raise _CannotEdit  # "- key: value": the entry opens a sequence item
    end = value.end
    if not text[_line_start(text, end) : end].strip():
        end = _line_start(text, end)  # the value ended where the next entry's indent starts
    else:
        newline = text.find("\n", end)
        rest = text[end : newline if newline >= 0 else len(text)]
        if rest.strip() and not rest.strip().startswith("#"):
            raise _CannotEdit
        end = len(text) if newline < 0 else newline + 1
    return start, end, ""


def _diff(
    node: _Node, old: Any, new: Any, text: str, edits: list[Edit], in_flow: bool = False
) -> None:
    if old == new and type(old) is type(new):
        return
    if node.kind == "scalar":
        edits.append((node.start, node.end, _render(node, text, new, in_flow)))
        return
    in_flow = in_flow or node.flow
    if node.kind == "seq":
        if not (isinstance(old, list) and isinstance(new, list)):
            raise _CannotEdit
        if not len(node.items) == len(old) == len(new):
            raise _CannotEdit
        for child, was, now in zip(node.items, old, new, strict=True):
            _diff(child, was, now, text, edits, in_flow)
        return
    if not (isinstance(old, dict) and isinstance(new, dict)) or len(node.pairs) != len(old):
        raise _CannotEdit  # merge keys or duplicate keys: the text and the data differ
    old_items, new_items = list(old.items()), list(new.items())
    if len(new_items) == len(old_items):
        for (key_node, value_node), (old_key, was), (new_key, now) in zip(
            node.pairs, old_items, new_items, strict=True
        ):
            if old_key != new_key:
                if key_node.kind != "scalar":
                    raise _CannotEdit
                rendered = _render(key_node, text, new_key, True)  # a key stays on its line
                edits.append((key_node.start, key_node.end, rendered))
            _diff(value_node, was, now, text, edits, in_flow)
        return
    kept = iter(new_items)
    upcoming = next(kept, None)
    for j, ((_, value_node), (old_key, was)) in enumerate(zip(node.pairs, old_items, strict=True)):
        if upcoming is not None and upcoming[0] == old_key:
            _diff(value_node, was, upcoming[1], text, edits, in_flow)
            upcoming = next(kept, None)
        else:
            edits.append(_removal(text, node.pairs, j, node.flow))
    if upcoming is not None:
        raise _CannotEdit  # an entry was added or moved


def _apply(text: str, edits: list[Edit]) -> str:
    out: list[str] = []
    at = 0
    for start, end, replacement in sorted(set(edits)):
        if start < at:
            raise _CannotEdit  # two edits of one place (an alias used in two ways)
        out += [text[at:start], replacement]
        at = end
    out.append(text[at:])
    return "".join(out)


def edit_in_place(
    text: str, old: Any, new: Any, path: str = "<cassette>", also: Iterable[Edit] = ()
) -> str | None:
    """``text`` with only what differs between ``old`` (its document) and ``new`` edited.

    ``also`` are edits outside the document's values (its comments). None when that is not
    possible, or when the edited text would not read back as ``new``.
    """
    root = document_nodes(text)
    if root is None:
        return None
    edits: list[Edit] = list(also)
    try:
        _diff(root, old, new, text, edits)
        edited = _apply(text, edits)
    except _CannotEdit:
        return None
    try:
        again = parse_document(edited, path)
    except Exception:
        return None
    return edited if again == new else None
