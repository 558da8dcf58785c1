"""Where a key could hide: its forms in a file or an output, and the search for them.

A key leaks when any of its forms is present: raw, URL-quoted, JSON-escaped, or base64 (at the
three offsets a longer text can put it at), or any of these once a stored string is decoded.
:func:`leaks` searches every file under a folder;
:func:`shown` a text (a message, captured output, an HTTP body), where a long piece of a key
counts too: a message that cuts a quotation short must not cut a key.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

import yaml


def encodings_of(key: str) -> list[bytes]:
    """The forms a key could take in a file: raw, URL-quoted, JSON-escaped, base64 at 3 offsets."""
    forms = {key.encode(), quote(key, safe="").encode(), json.dumps(key)[1:-1].encode()}
    for offset in range(3):
        chunk = key.encode()[offset:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        forms.add(base64.b64encode(chunk)[1:-1])
        forms.add(base64.urlsafe_b64encode(chunk)[1:-1])
    return sorted(forms)


def _unwrapped(data: bytes) -> Iterator[bytes]:
    """``data`` and what it decodes to: gzip/zlib/brotli, UTF-16, base64, percent-encoding."""
    yield data
    for unpack in (gzip.decompress, zlib.decompress, _brotli):
        with contextlib.suppress(Exception):
            yield unpack(data)
    for codec in ("utf-16", "utf-16-le", "utf-16-be"):
        with contextlib.suppress(UnicodeDecodeError):
            yield data.decode(codec).encode("utf-8", "surrogatepass")
    compact = re.sub(rb"\s+", b"", data)
    if len(compact) >= 16 and re.fullmatch(rb"[A-Za-z0-9+/_\-]+={0,2}", compact):
        with contextlib.suppress(ValueError):
            yield base64.urlsafe_b64decode(compact.replace(b"+", b"-").replace(b"/", b"_") + b"==")
    if b"%" in data:
        once = unquote_to_bytes(data)
        yield once
        yield unquote_to_bytes(once)


def _brotli(data: bytes) -> bytes:
    import brotli  # type: ignore[import-untyped, unused-ignore]

    return bytes(brotli.decompress(data))


def _scalars(data: bytes) -> Iterator[bytes]:
    """Every string of a YAML or JSON document, property names too (bytes as they are)."""
    try:
        doc = yaml.safe_load(data)
    except (yaml.YAMLError, ValueError, RecursionError):
        return
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack += [*node.keys(), *node.values()]
        elif isinstance(node, list):
            stack += node
        elif isinstance(node, str):
            yield node.encode("utf-8", "surrogatepass")
        elif isinstance(node, bytes):
            yield node


def leaks(root: Path, keys: Iterable[str]) -> list[str]:
    """Every (file, key) pair where a key appears, in any form, anywhere under ``root``.

    The file's bytes are searched, and each string of a YAML/JSON file once decoded (a body
    stored gzip-compressed, as UTF-16 or base64 is a body holding the key all the same).
    """
    keys = list(keys)
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        texts = [data]
        if path.suffix in (".yaml", ".yml", ".json"):
            texts += [t for scalar in _scalars(data) for t in _unwrapped(scalar)]
        for key in keys:
            forms = encodings_of(key)
            if any(form in text for text in texts for form in forms):
                found.append(f"{path.relative_to(root)}: {key[:6]}...")
    return found


# A message may cut a quotation short: a piece this long of a key shows too much of it.
FRAGMENT = 20


def fragments_of(key: str) -> list[bytes]:
    """Every piece of ``FRAGMENT`` characters of the key (of a key no longer than that: it)."""
    raw = key.encode()
    if len(raw) <= FRAGMENT:
        return [raw]
    return [raw[i : i + FRAGMENT] for i in range(len(raw) - FRAGMENT + 1)]


def shown(text: str | bytes, keys: Iterable[str]) -> list[str]:
    """The keys (by their first characters) that ``text`` shows, whole in any form or in part."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return [
        f"{key[:6]}..."
        for key in keys
        if any(form in data for form in [*encodings_of(key), *fragments_of(key)])
    ]
