"""Bodies: undoing ``content-encoding`` within the size limit, and JSON as a cassette shows it.

A committed cassette is untrusted input: no body may decode to more than
:func:`max_cassette_bytes`. JSON bodies are stored re-rendered (:func:`render_json`), one
top-level key and one array element per line, so a re-record diffs per input item.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Mapping
from typing import Any

from ._exchange import CassetteError, Headers, header_get, header_name, headers_without

# A cassette larger than this is refused unread, and no body may decode to more: a committed
# cassette is untrusted input, and a 1 kB gzip body can expand to gigabytes.
MAX_SIZE_ENV = "PYTEST_COMPACTION_MAX_CASSETTE_MB"
DEFAULT_MAX_MB = 64


def max_cassette_bytes() -> int:
    """The largest cassette (and decoded body) accepted: ``PYTEST_COMPACTION_MAX_CASSETTE_MB``."""
    raw = os.environ.get(MAX_SIZE_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_MB * 2**20
    try:
        megabytes = float(raw)
    except ValueError:
        raise CassetteError(f"{MAX_SIZE_ENV}={raw!r} is not a number of megabytes") from None
    if not megabytes > 0:
        raise CassetteError(f"{MAX_SIZE_ENV}={raw!r} must be positive")
    return int(megabytes * 2**20)


def _too_large(coding: str, limit: int) -> CassetteError:
    return CassetteError(
        f"a body declared as {coding!r} decodes to more than {limit // 2**20} MB; "
        f"raise {MAX_SIZE_ENV} if it is genuine"
    )


def _brotli_decompress(data: bytes, limit: int) -> bytes:
    try:
        import brotli  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        try:
            import brotlicffi as brotli  # type: ignore[import-not-found, import-untyped, no-redef, unused-ignore]
        except ImportError:
            raise CassetteError(
                "a body is compressed with 'br' but no brotli module is installed: "
                "pip install brotli"
            ) from None
    decompressor = brotli.Decompressor()
    try:
        try:
            out: bytes = decompressor.process(data, output_buffer_limit=limit + 1)
        except TypeError:  # brotlicffi has no output limit
            out = decompressor.process(data)
        finished = decompressor.is_finished()
    except brotli.error as exc:
        raise CassetteError(f"a body declared as 'br' does not decompress: {exc}") from None
    if len(out) > limit:
        raise _too_large("br", limit)
    if not finished:
        raise CassetteError("a body declared as 'br' is truncated")
    return out


def _zstd_decompress(data: bytes, limit: int) -> bytes:
    try:
        import zstandard  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        raise CassetteError(
            "a body is compressed with 'zstd' but the zstandard module is not installed: "
            "pip install zstandard"
        ) from None
    # Streaming frames carry no content size, so read through a stream reader.
    try:
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            out: bytes = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise CassetteError(f"a body declared as 'zstd' does not decompress: {exc}") from None
    if len(out) > limit:
        raise _too_large("zstd", limit)
    return out


def _zlib_decompress(data: bytes, wbits: int, coding: str, limit: int) -> bytes:
    stream = zlib.decompressobj(wbits)
    out = stream.decompress(data, limit + 1)
    if len(out) > limit:
        raise _too_large(coding, limit)
    if not stream.eof:
        raise zlib.error("incomplete or truncated stream")
    return out


def _decompress(data: bytes, coding: str, limit: int) -> bytes:
    coding = coding.strip().lower()
    try:
        if coding in ("gzip", "x-gzip"):
            return _zlib_decompress(data, zlib.MAX_WBITS | 16, coding, limit)
        if coding == "deflate":
            try:
                return _zlib_decompress(data, zlib.MAX_WBITS, coding, limit)
            except zlib.error:  # raw deflate without the zlib wrapper, as some servers send
                return _zlib_decompress(data, -zlib.MAX_WBITS, coding, limit)
    except zlib.error as exc:
        raise CassetteError(f"a body declared as {coding!r} does not decompress: {exc}") from None
    if coding == "br":
        return _brotli_decompress(data, limit)
    if coding == "zstd":
        return _zstd_decompress(data, limit)
    if coding == "identity":
        return data
    raise CassetteError(f"unsupported content-encoding {coding!r}")


def decode_body(headers: Mapping[str, list[str]], body: bytes) -> tuple[Headers, bytes]:
    """Undo ``content-encoding`` and make the headers describe the decoded body.

    Codings are undone last-applied first; ``content-length`` is set to the decoded length and
    ``transfer-encoding`` dropped, since a replayed body is always complete.
    """
    codings: list[str] = []
    for value in header_get(headers, "content-encoding") or []:
        codings.extend(c for c in (p.strip() for p in value.split(",")) if c)
    limit = max_cassette_bytes() if codings else 0
    for coding in reversed(codings):
        body = _decompress(body, coding, limit)
    out = headers_without(headers, "content-encoding", "transfer-encoding", "content-length")
    if body or header_get(headers, "content-length") is not None:
        out[header_name(headers, "content-length")] = [str(len(body))]
    return out, body


# Characters YAML cannot hold in a block scalar (or would read as line breaks). They can only
# occur inside JSON strings here, where a \u escape is equivalent.
_NOT_YAML_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode


def _escape_unprintable(text: str) -> str:
    return _NOT_YAML_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _lines_for_array(items: list[Any], closing: str) -> list[str]:
    lines = [compact_json(item) + "," for item in items]
    lines[-1] = lines[-1][:-1]
    lines.append(closing)
    return lines


def render_json(value: Any) -> str:
    """JSON with one top-level key, and one element of a top-level array, per line."""
    if isinstance(value, dict) and value:
        lines = ["{"]
        last = len(value) - 1
        for i, (key, item) in enumerate(value.items()):
            comma = "" if i == last else ","
            head = compact_json(key) + ": "
            if isinstance(item, list) and item:
                lines.append(head + "[")
                lines.extend(_lines_for_array(item, "]" + comma))
            else:
                lines.append(head + compact_json(item) + comma)
        lines.append("}")
        text = "\n".join(lines)
    elif isinstance(value, list) and value:
        text = "\n".join(["[", *_lines_for_array(value, "]")])
    else:
        text = compact_json(value)
    return _escape_unprintable(text)


def first_char(text: str | bytes) -> str | bytes:
    """The first non-blank character, without copying a megabyte to find it."""
    head = text[:256].lstrip()
    return head[:1] if head or len(text) <= 256 else text.lstrip()[:1]


def parse_json_bytes(body: bytes | str | None) -> tuple[bool, Any]:
    """(True, value) when the body is JSON text, else (False, None).

    JSON nested deeper than the parser can go counts as not JSON: it is kept, scanned and
    judged as the text it is (the validator names the depth).
    """
    if body is None or not body:
        return False, None
    first = first_char(body)
    if first not in (b"{", b"[", "{", "["):
        return False, None
    try:
        return True, json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False, None


def reviewable_text(body: bytes | None) -> str | bytes | None:
    """What goes under ``body.string``: re-rendered JSON, the text as is, or bytes if binary."""
    if body is None:
        return None
    is_json, value = parse_json_bytes(body)
    if is_json:
        return render_json(value)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body
