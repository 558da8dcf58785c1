"""What looks like a secret, and where an exchange holds one.

The key-shaped patterns, the rules for names that hold keys (``api_key``, ``clientSecret``) and
the scans live here only, for the gate before a cassette is written (``_redact``) and for
``pytest-compaction scan`` (``_scan``). A finding names a place and a kind, never the value; a
value already replaced by :data:`PLACEHOLDER` is not a finding.

What counts:
- vendor key shapes (OpenAI/Anthropic ``sk-``, JWTs, Google ``AIza``, AWS ``AKIA``/``ASIA`` and
  the secret next to them, GitHub, Stripe, Slack, Hugging Face, GitLab, Azure's identifiable
  84-character keys), bearer tokens, keys in URL queries (``?key=``, SAS ``sig=``), 32 hex digits
  after a word naming a key, and credential-shaped values assigned to a name like a key;
- values under names like a key: specific names (``api_key``, ``aws_secret_access_key``,
  ``accessKey``) hold credentials whatever they look like, generic ones (``key``, ``token``,
  ``pat``) only when the value is credential-shaped;
- text as it decodes: percent-encoding and JSON string escapes are undone (up to three rounds,
  so a JSON string inside a JSON string and ``%253D`` count), and a match is reported at the
  encoded run it came from;
- every byte of an exchange: URI, header names and values, the status reason, bodies (JSON,
  text, server-sent events with their deltas joined, UTF-16, compressed without a declared
  ``content-encoding``, bounded by the cassette size limit);
- the credentials the client really used (:attr:`SecretPolicy.known`), raw and in every
  encoded form (percent, JSON, base64 and base64url at each byte offset), whatever their shape.

A key-shaped string inside a long opaque token (``encrypted_content`` is base64url, where ``sk-``
occurs by chance) is not a key: a candidate counts when it starts a run of token characters, or
when it is glued behind a short identifier (``resp_``, ``OPENAI_KEY_``) and ends within the
length of a key.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from ._body import _decompress, max_cassette_bytes, parse_json_bytes
from ._exchange import CassetteError, Exchange, Headers

PLACEHOLDER = "REDACTED"
KNOWN_KIND = "a credential this recording used"

# The usual variables that hold a provider's key: their values are searched for in every byte
# a recorder writes, whatever their shape.
KEY_ENV_VARS: tuple[str, ...] = (
    "OPENAI_API_KEY",
    "OPENAI_ADMIN_KEY",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_AD_TOKEN",
    "AZURE_API_KEY",
    "LITELLM_API_KEY",
    "LITELLM_MASTER_KEY",
    "ANTHROPIC_API_KEY",
    "OPENROUTER_API_KEY",
    "XAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "TOGETHER_API_KEY",
    "DEEPSEEK_API_KEY",
    "FIREWORKS_API_KEY",
    "PERPLEXITY_API_KEY",
    "COHERE_API_KEY",
    "HF_TOKEN",
    "PORTKEY_API_KEY",
    "BIFROST_API_KEY",
    "TFY_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
_KNOWN_MIN = 8  # shorter values ("test", "x") would match everywhere


@dataclass(frozen=True)
class SecretPolicy:
    """What a scan never reports, and the credentials it always looks for.

    ``allow_values`` are exact strings (a test's fake key; its encoded forms too), a candidate
    that fullmatches one of ``allow_patterns`` is not reported either; ``known`` are the
    credentials the client really used, searched for raw and encoded in every byte.
    """

    allow_values: frozenset[str] = frozenset()
    allow_patterns: tuple[re.Pattern[str], ...] = ()
    known: tuple[str, ...] = ()


def known_credentials(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The values of :data:`KEY_ENV_VARS` that are set (8 characters or more)."""
    env = os.environ if environ is None else environ
    values = (env.get(name, "").strip() for name in KEY_ENV_VARS)
    return tuple(dict.fromkeys(v for v in values if len(v) >= _KNOWN_MIN))


@dataclass(frozen=True)
class Finding:
    """Where a secret-looking value sits; never the value itself."""

    exchange: int
    part: str  # "request" or "response"
    location: str  # "header 'x'", "query parameter 'k'", "body /a/0/b", "uri"
    kind: str

    def __str__(self) -> str:
        return f"exchange {self.exchange} {self.part} {self.location}: looks like {self.kind}"


# ---------------------------------------------------------------------------------------------
# Key shapes

# Vendor prefixes: each regex starts with a literal, so the engine skips to it.
_TOKENS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("an Anthropic API key (sk-ant-...)", r"sk-ant-[A-Za-z0-9_\-]{16,}"),
        # OpenSSH's security-key algorithm names ("sk-ecdsa-sha2-nistp256@openssh.com") are not.
        ("an API key (sk-...)", r"sk-(?!ecdsa-sha2-|ssh-ed25519)[A-Za-z0-9_\-]{16,}"),
        # The signature may be missing: unsigned ("alg": "none") and cut-off tokens count.
        ("a JWT", r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]*)?"),
        ("a Google API key (AIza...)", r"AIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])"),
        ("an AWS access key id", r"AKIA[0-9A-Z]{16}(?![0-9A-Za-z])"),
        ("an AWS access key id", r"ASIA[0-9A-Z]{16}(?![0-9A-Za-z])"),
        ("an AWS access key id", r"ABIA[0-9A-Z]{16}(?![0-9A-Za-z])"),
        ("an AWS access key id", r"ACCA[0-9A-Z]{16}(?![0-9A-Za-z])"),
        ("a GitHub token", r"gh[pousr]_[A-Za-z0-9]{36,}"),
        ("a GitHub token", r"github_pat_[A-Za-z0-9_]{22,}"),
        ("a Stripe key", r"sk_(?:live|test)_[A-Za-z0-9]{16,}"),
        ("a Stripe key", r"rk_(?:live|test)_[A-Za-z0-9]{16,}"),
        ("a Slack token", r"xox[abprs]-[A-Za-z0-9\-]{10,}"),
        ("a Hugging Face token (hf_...)", r"hf_[A-Za-z0-9]{30,}"),
        ("a GitLab token (glpat-...)", r"glpat-[A-Za-z0-9_\-]{20,}"),
    )
)
_AWS_KIND = "an AWS access key id"
_AZURE_KIND = "an Azure key"
# Azure's identifiable keys: 52 random characters, a fixed signature, a checksum tail.
_AZURE_SIGNATURE = "JQQJ9"
_AZURE = re.compile(
    r"[A-Za-z0-9]{52}JQQJ9[9DH][A-Za-z0-9][A-L][A-Za-z0-9]{16}[A-Za-z][A-Za-z0-9]{7}(?![A-Za-z0-9])"
)
_BEARER = re.compile(r"bearer\s+([A-Za-z0-9_\-.=+/]{16,})", re.IGNORECASE)
_URL_KEY = re.compile(
    r"[?&](api[_\-]?key|key|subscription[_\-]?key|access[_\-]?token|token|client[_\-]?secret"
    r"|x-amz-security-token|sig|x-amz-signature)=([^&\s\"']{16,})",
    re.IGNORECASE,
)
_SIGNATURES = frozenset({"sig", "x-amz-signature"})
# Azure-style keys are bare 32-hex strings, which ids and hashes also are: in free text they
# count only right after a word that names a key ("api-key: ...", "key=...").
_HEX_WORDS = ("key", "secret", "password", "passwd", "token", "credential")
# 32 hex digits standing alone, in lowered text. A leading character instead of a look-behind:
# the engine then skips base64 runs, where no position starts a match.
_HEX_ALONE = re.compile(r"[^a-z0-9_\-]([0-9a-f]{32})(?![a-z0-9_\-])")
_HEX_FIRST = re.compile(r"([0-9a-f]{32})(?![a-z0-9_\-])")
_HEX_REACH = 40  # how far before the hex digits the word may start ("api key: ... <hex>")
_HEX_AFTER_WORD = re.compile(
    r"(?:api[\s_\-]?key|secret|password|passwd|token|credential|\bkey)s?\b"
    r"[^\n]{0,24}?(?<![A-Za-z0-9_\-])[0-9a-f]{32}(?![A-Za-z0-9_\-])",
    re.IGNORECASE,
)
# "name = value" / "name": "value" in free text (env files, YAML, code, JSON in a string).
# Found from the value: an assignment whose value is credential-shaped is rare, names are not.
_ASSIGNED = re.compile(r"([:=])([ \t]*)([\"']?)([A-Za-z0-9_\-+/=.~]{20,})([\"']?)")
# Unquoted values that are code, not data: a dotted name ("base64.urlsafe_b64encode").
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
# Words, digit runs and capitals in a value: made of long words ("PKCS7PrivateKeyTypes",
# "fs.s3.consistent.retryCount", "_validate_s3_bucket_and_key"), it is a name, not a secret,
# whose random characters break into pieces of one or two.
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_WORDY = 3.5  # mean length of the pieces from which a value reads as words
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_SECRET_KIND = "an AWS secret access key"
_AWS_WINDOW = 256

_HEX_KEY = re.compile(r"[0-9a-fA-F]{32}")
_AZURE_LONG = re.compile(r"[A-Za-z0-9]{84}")
# A value that could be a credential: one token of 20 or more key characters, letters and
# digits both (longer than any word a tokenizer emits, which logprobs list under "token").
_SHAPED = re.compile(r"(?=[^0-9]*[0-9])(?=[^A-Za-z]*[A-Za-z])[A-Za-z0-9_\-+/=.~]{20,}")
# Names as environment variables spell them (GITHUB_TOKEN, NPM_TOKEN): in free text a shaped
# value assigned to one is a credential.
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*_(?:TOKEN|KEY|SECRET|PAT|PASSWORD|PASS|PWD)")

_KEY_FIELD = re.compile(
    r"(?i)(^|[_\-.\s])(api[_\-]?key|secret|password|passwd|access[_\-]?token|auth[_\-]?token"
    r"|refresh[_\-]?token|subscription[_\-]?key|client[_\-]?secret|private[_\-]?key"
    r"|api[_\-]?token|session[_\-]?token|bearer[_\-]?token|authorization|credential"
    r"|access[_\-]?key|secret[_\-]?key|client[_\-]?key|security[_\-]?token|sas[_\-]?token)s?$"
)
# Names too common to hold only credentials: a value under them counts when it is shaped like one.
_GENERIC_FIELD = re.compile(r"(?i)(?:x[_\-])?(?:key|token|pat)")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")

# Base64 context. A candidate glued behind key characters counts only behind a short identifier
# ending in "_" or "-", and only when it ends within the length of a key; one behind "/" or "+"
# counts unless a long run of standard base64 surrounds it.
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_GLUE = 64
_KEY_MAX = 256
_BLOB = 512
_STD_B64_RUN = re.compile(r"[A-Za-z0-9+/]+")


def _standalone(text: str, start: int, end: int) -> bool:
    if start == 0:
        return True
    before = text[start - 1]
    if before in "+/":
        left = start >= _BLOB and _STD_B64_RUN.fullmatch(text, start - _BLOB, start)
        right = len(text) >= end + _BLOB and _STD_B64_RUN.fullmatch(text, end, end + _BLOB)
        return not (left or right)
    if before not in _KEY_CHARS:
        return True
    if before not in "_-" or end - start > _KEY_MAX:
        return False
    i = start - 1
    floor = max(0, start - _GLUE - 1)
    while i > floor and text[i - 1] in _KEY_CHARS:
        i -= 1
    return i == 0 or text[i - 1] not in _KEY_CHARS


# ---------------------------------------------------------------------------------------------
# Text as it decodes: percent-encoding and JSON escapes, with the way back to the encoded text

_ESCAPE = re.compile(r"%[0-7][0-9A-Fa-f]|\\u[0-9A-Fa-f]{4}|\\[\"\\/bfnrt]")
_JSON_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_ROUNDS = 3

# One round of decoding: positions (in the decoded text) of the decoded characters, and the
# encoded span each came from.
_Map = tuple[list[int], list[int], list[int]]


def _decode_round(text: str) -> tuple[str, _Map] | None:
    at: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    parts: list[str] = []
    last = 0
    shrink = 0
    for m in _ESCAPE.finditer(text):
        s, e = m.span()
        token = m.group()
        if token[0] == "%":
            char = chr(int(token[1:], 16))
        elif token[1] == "u":
            char = chr(int(token[2:], 16))
        else:
            char = _JSON_ESCAPES[token[1]]
        parts.append(text[last:s])
        parts.append(char)
        at.append(s - shrink)
        starts.append(s)
        ends.append(e)
        shrink += e - s - 1
        last = e
    if not at:
        return None
    parts.append(text[last:])
    return "".join(parts), (at, starts, ends)


def _char_span(pos: int, mapping: _Map) -> tuple[int, int]:
    at, starts, ends = mapping
    k = bisect_right(at, pos) - 1
    if k >= 0 and at[k] == pos:
        return starts[k], ends[k]
    base = pos if k < 0 else ends[k] + (pos - at[k] - 1)
    return base, base + 1


@dataclass(frozen=True)
class _View:
    """The text after some rounds of decoding, and how to find a span in the original."""

    text: str
    maps: tuple[_Map, ...] = ()

    def span(self, start: int, end: int) -> tuple[int, int]:
        for mapping in reversed(self.maps):
            start, end = _char_span(start, mapping)[0], _char_span(end - 1, mapping)[1]
        return start, end


def _views(text: str) -> Iterator[_View]:
    yield _View(text)
    if "%" not in text and "\\" not in text:
        return
    maps: list[_Map] = []
    for _ in range(_ROUNDS):
        decoded = _decode_round(text)
        if decoded is None:
            return
        text, mapping = decoded
        maps.append(mapping)
        yield _View(text, tuple(maps))


# ---------------------------------------------------------------------------------------------
# Matching one view

# (order, kind, start, end, candidate): order ranks kinds as the rules are listed; the
# candidate is what an allowed value must equal.
_Hit = tuple[int, str, int, int, str]
_ORDER_AZURE = len(_TOKENS)
_ORDER_BEARER = _ORDER_AZURE + 1
_ORDER_URL = _ORDER_BEARER + 1
_ORDER_HEX = _ORDER_URL + 1
_ORDER_NAMED = _ORDER_HEX + 1
_ORDER_AWS_SECRET = _ORDER_NAMED + 1
_ORDER_KNOWN = _ORDER_AWS_SECRET + 1
_NAMED_KIND = "a credential (after a name like a key)"
_MIN_LEN = 16  # no pattern matches less


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _lowered(text: str) -> str:
    """``text`` in lower case, each character where it was (so positions carry over)."""
    low = text.lower()
    return low if len(low) == len(text) else _NON_ASCII.sub("\0", text).lower()


def _finds(low: str, word: str) -> Iterator[int]:
    """Positions of ``word`` in the lowered text ``low``."""
    i = low.find(word)
    while i != -1:
        yield i
        i = low.find(word, i + 1)


def _view_hits(text: str) -> Iterator[_Hit]:
    yield from _token_hits(text)
    low = _lowered(text)
    yield from _bearer_hits(text, low)
    if "=" in text:
        for m in _URL_KEY.finditer(text):
            kind = "a signature in a URL" if m.group(1).lower() in _SIGNATURES else "a key in a URL"
            yield _ORDER_URL, kind, m.start(), m.end(), m.group(2)
    yield from _hex_after_words(text, low)
    if ":" in text or "=" in text:
        yield from _assigned(text)


def _token_hits(text: str) -> Iterator[_Hit]:
    for order, (kind, pattern) in enumerate(_TOKENS):
        for m in pattern.finditer(text):
            if _standalone(text, m.start(), m.end()):
                yield order, kind, m.start(), m.end(), m.group()
                if kind == _AWS_KIND:
                    yield from _aws_secrets(text, m.start(), m.end())
    i = text.find(_AZURE_SIGNATURE)
    while i != -1:
        azure = _AZURE.match(text, i - 52) if i >= 52 else None
        if azure is not None and _standalone(text, azure.start(), azure.end()):
            yield _ORDER_AZURE, _AZURE_KIND, azure.start(), azure.end(), azure.group()
        i = text.find(_AZURE_SIGNATURE, i + 1)


def _bearer_hits(text: str, low: str) -> Iterator[_Hit]:
    for i in _finds(low, "bearer"):
        if i and (text[i - 1].isalnum() or text[i - 1] == "_"):
            continue
        m = _BEARER.match(text, i)
        if m is not None:
            yield _ORDER_BEARER, "a bearer token", m.start(), m.end(), m.group(1)


def _aws_secrets(text: str, start: int, end: int) -> Iterator[_Hit]:
    """The 40-character secret written near an AWS access key id."""
    low = max(start - _AWS_WINDOW, text.rfind("\0", 0, start) + 1)
    high = text.find("\0", end, end + _AWS_WINDOW)
    for m in _AWS_SECRET.finditer(text, low, end + _AWS_WINDOW if high == -1 else high):
        if _SHAPED.fullmatch(m.group()):
            yield _ORDER_AWS_SECRET, _AWS_SECRET_KIND, m.start(), m.end(), m.group()


def _hex_after_words(text: str, low: str) -> Iterator[_Hit]:
    if not any(word in low for word in _HEX_WORDS):
        return
    first = _HEX_FIRST.match(low)
    for hexed in itertools.chain((first,) if first else (), _HEX_ALONE.finditer(low)):
        end = hexed.end()
        for m in _HEX_AFTER_WORD.finditer(text, max(0, hexed.start(1) - _HEX_REACH), end):
            if m.end() == end:
                yield _ORDER_HEX, "a 32-hex API key", m.start(), end, m.group()[-32:]
                break


def _assigned(text: str) -> Iterator[_Hit]:
    for m in _ASSIGNED.finditer(text):
        op, blank, opening, value, closing = m.groups()
        if not _SHAPED.fullmatch(value):
            continue
        if not (opening and opening == closing):
            # Unquoted: data ("TOKEN=...", "token: ..."), not code ("key = make_key(...)",
            # "key: KeyType") nor an ARN ("secret:name").
            after = text[m.end(4) : m.end(4) + 1]
            spaced = blank or text[m.start() - 1 : m.start()] in (" ", "\t")
            if after in ("(", "[") or (op == "=") == bool(spaced) or _DOTTED.fullmatch(value):
                continue
        pieces = _WORDS.findall(value)
        if pieces and sum(map(len, pieces)) >= _WORDY * len(pieces):
            continue
        end = m.start()
        while end > 0 and text[end - 1] in " \t\"']":
            end -= 1
        start = end
        floor = max(0, end - _GLUE)
        while start > floor and text[start - 1] in _NAME_CHARS:
            start -= 1
        name = text[start:end]
        last = name.rpartition(".")[2]
        if last and (named_like_key(name) or generic_key_name(last) or _ENV_NAME.fullmatch(last)):
            yield _ORDER_NAMED, _NAMED_KIND, m.start(4), m.end(4), value


# ---------------------------------------------------------------------------------------------
# Text: every view, allowed values left out, known credentials searched


def _allowed(candidate: str, policy: SecretPolicy | None) -> bool:
    if policy is None or not (policy.allow_values or policy.allow_patterns):
        return False
    forms = {candidate, unquote(candidate)}
    if forms & policy.allow_values:
        return True
    return any(p.fullmatch(form) for p in policy.allow_patterns for form in forms)


def _b64_stable(data: bytes, alphabet: Callable[[bytes], bytes]) -> Iterator[str]:
    """The part of the base64 of ``data`` that is the same wherever ``data`` sits."""
    for shift in range(3):
        encoded = alphabet(b"\0" * shift + data).decode()
        start = -(-8 * shift // 6)
        stop = (8 * (shift + len(data))) // 6
        if stop - start >= _KNOWN_MIN:
            yield encoded[start:stop]


@lru_cache(maxsize=64)
def _known_forms(known: tuple[str, ...], allowed: frozenset[str]) -> tuple[str, ...]:
    forms: set[str] = set()
    for value in known:
        if len(value) < _KNOWN_MIN or value in allowed:
            continue
        raw = value.encode()
        forms |= {
            value,
            quote(value, safe=""),
            quote(value),
            quote_plus(value),
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
        }
        forms.update(_b64_stable(raw, base64.b64encode))
        forms.update(_b64_stable(raw, base64.urlsafe_b64encode))
    return tuple(sorted(forms, key=len, reverse=True))


def _forms(policy: SecretPolicy | None) -> tuple[str, ...]:
    if policy is None or not policy.known:
        return ()
    known = tuple(v for v in policy.known if not _allowed(v, policy))
    return _known_forms(known, policy.allow_values) if known else ()


def _known_spans(text: str, forms: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    for form in forms:
        i = text.find(form)
        while i != -1:
            yield i, i + len(form)
            i = text.find(form, i + 1)


def _text_hits(text: str, policy: SecretPolicy | None = None, raw: bool = True) -> Iterator[_Hit]:
    """Every secret in ``text``, spans in the text as given (an encoded run where it decoded).

    ``raw=False``: only what its decoded forms add (a caller that scanned the text as it is).
    """
    forms = _forms(policy)
    if len(text) < _MIN_LEN and not (forms and len(text) >= _KNOWN_MIN):
        return
    for view in _views(text):
        if not raw and not view.maps:
            continue
        if len(view.text) >= _MIN_LEN:
            for order, kind, start, end, candidate in _view_hits(view.text):
                if not _allowed(candidate, policy):
                    yield (order, kind, *view.span(start, end), candidate)
        for start, end in _known_spans(view.text, forms):
            yield (_ORDER_KNOWN, KNOWN_KIND, *view.span(start, end), "")


# Between strings scanned as one text: no rule reaches across it (a blank is not a value, NUL
# is not a blank, and the AWS secret search stops at NUL).
_SEP = "\n\0\n"


def _batch_kinds(texts: list[str], policy: SecretPolicy | None) -> list[str | None]:
    """The first-ranked kind of secret in each text. Their raw forms are scanned as one text,
    so a body of ten thousand strings costs a few searches, not ten thousand times as many."""
    best: list[_Hit | None] = [None] * len(texts)
    starts: list[int] = []
    pos = 0
    for text in texts:
        starts.append(pos)
        pos += len(text) + len(_SEP)

    def keep(i: int, hit: _Hit) -> None:
        old = best[i]
        if old is None or hit[0] < old[0]:
            best[i] = hit

    joined = _SEP.join(texts)
    for hit in _view_hits(joined):
        if not _allowed(hit[4], policy):
            keep(bisect_right(starts, hit[2]) - 1, hit)
    for start, end in _known_spans(joined, _forms(policy)):
        keep(bisect_right(starts, start) - 1, (_ORDER_KNOWN, KNOWN_KIND, start, end, ""))
    for i, text in enumerate(texts):
        if "%" in text or "\\" in text:
            for hit in _text_hits(text, policy, raw=False):
                keep(i, hit)
    return [None if hit is None else hit[1] for hit in best]


def _first_kind(text: str, policy: SecretPolicy | None = None) -> str | None:
    best: _Hit | None = None
    for hit in _text_hits(text, policy):
        if best is None or hit[0] < best[0]:
            best = hit
            if hit[0] == 0:
                break
    return None if best is None else best[1]


def find_in_text(text: str, policy: SecretPolicy | None = None) -> str | None:
    """The kind of secret in a free text (decoded forms and known credentials included)."""
    return _first_kind(text, policy)


def sub_secrets(
    text: str, replace: Callable[[str], str], policy: SecretPolicy | None = None
) -> str:
    """``text`` with every key-shaped part replaced by what ``replace`` makes of it; with
    ``policy``, the known credentials in every encoded form too (allowed values stay).

    A key found only once the text is decoded is replaced where it sits: the whole encoded run.
    """
    spans = sorted((hit[2], hit[3]) for hit in _text_hits(text, policy))
    if not spans:
        return text
    out: list[str] = []
    last = 0
    start, end = spans[0]
    for s, e in [*spans[1:], (len(text) + 1, len(text) + 1)]:
        if s < end:
            end = max(end, e)
            continue
        out += [text[last:start], replace(text[start:end])]
        last = end
        start, end = s, e
    out.append(text[last:])
    return "".join(out)


def mask_secrets(text: str, policy: SecretPolicy | None = None) -> str:
    """``text`` with every key-shaped part (and, with ``policy``, every known credential)
    replaced, for messages that quote a URL, a path or a body."""
    return sub_secrets(text, lambda _: "<secret>", policy)


# ---------------------------------------------------------------------------------------------
# Names and values


def _value_kind(value: str, policy: SecretPolicy | None = None) -> str | None:
    """A header or query value: key-shaped text, or a whole value of 32 hex digits or of
    84 letters and digits (Azure)."""
    kind = _first_kind(value, policy)
    if kind is None and not _allowed(value, policy):
        if _HEX_KEY.fullmatch(value):
            kind = "a 32-hex API key"
        elif _AZURE_LONG.fullmatch(value):
            kind = _AZURE_KIND
    return kind


def named_like_key(name: str) -> bool:
    """``api_key``, ``x-api-key``, ``azureApiKey``, ``clientSecret``, ``aws_secret_access_key``:
    a name under which any value long enough (:func:`credential_sized`) is a credential."""
    return _KEY_FIELD.search(_CAMEL.sub(r"\1_\2", name)) is not None


def generic_key_name(name: str) -> bool:
    """``key``, ``token``, ``pat``, ``x-token``: a name under which a credential-shaped value
    (:func:`credential_shaped`) is a credential."""
    return _GENERIC_FIELD.fullmatch(name.strip()) is not None


def credential_sized(value: str) -> bool:
    """Long enough to be a credential when held under a name like a key (and not redacted)."""
    return len(value) >= 16 and value != PLACEHOLDER


def credential_shaped(value: str) -> bool:
    """One token of 20 or more key characters, with letters and digits (not prose, not a
    number, not a date)."""
    return value != PLACEHOLDER and _SHAPED.fullmatch(value) is not None


def looks_secret(value: str) -> bool:
    """A value that is key-shaped, or 32 hex digits as a whole (the placeholder is not)."""
    return bool(value) and value != PLACEHOLDER and _value_kind(value.strip()) is not None


def is_credential(name: str, value: str) -> bool:
    """A value to redact: key-shaped, or held under a name that says it is a key."""
    return looks_secret(value) or _held_by_name(named_like_key(name), generic_key_name(name), value)


def _held_by_name(specific: bool, generic: bool, value: str) -> bool:
    """A value that a name like a key makes a credential: any long one under a specific name,
    a credential-shaped one under a generic name."""
    return (specific and credential_sized(value)) or (generic and credential_shaped(value.strip()))


def _held_kind(name: str, value: str, holder: str, policy: SecretPolicy | None) -> str | None:
    """What a value held under ``name`` (a header, a parameter) looks like, if anything."""
    kind = _value_kind(value.strip(), policy)
    named = _held_by_name(named_like_key(name), generic_key_name(name), value)
    if kind is None and named and not _allowed(value, policy):
        kind = f"a credential (in a {holder} named like a key)"
    return kind


def _label(name: object, policy: SecretPolicy | None = None) -> str:
    """A name fit for a message: one that itself looks like a secret is not repeated."""
    text = str(name)
    if _first_kind(text, policy) or _HEX_KEY.search(text):
        return "<secret-looking name>"
    return text


def _pointer(parts: Iterable[object], policy: SecretPolicy | None) -> str:
    tokens = [_label(p, policy).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(tokens) if tokens else "/"


# ---------------------------------------------------------------------------------------------
# JSON

_FIELD_KIND = "a credential (in a field named like a key)"
# (node, path to it, under a name like a key, directly under a generic name)
_Frame = tuple[Any, tuple[object, ...], bool, bool]


def _scan_json(value: Any, policy: SecretPolicy | None = None) -> Iterator[tuple[str, str]]:
    """(JSON pointer, kind) of every string, property name included, that looks like a secret.

    Strings under a field named like a key (at any depth) are credentials whatever they look
    like; directly under a generic name (``token``) when they are shaped like one.
    """
    shortest = _KNOWN_MIN if _forms(policy) else _MIN_LEN
    texts: list[str] = []
    # In walk order: a property name's finding, or a string to judge (its index in texts).
    events: list[tuple[tuple[object, ...], str, int, bool, bool]] = []
    # Property names repeat (every item has "type", "content"): each is judged once.
    names: dict[str, tuple[str | None, bool, bool]] = {}
    stack: list[_Frame] = [(value, (), False, False)]
    while stack:
        node, path, under_key, generic = stack.pop()
        if isinstance(node, str):
            if len(node) >= shortest:
                events.append((path, "", len(texts), under_key, generic))
                texts.append(node)
        elif isinstance(node, dict):
            for k, v in node.items():
                name = str(k)
                child = (*path, name)
                info = names.get(name)
                if info is None:
                    name_kind = _first_kind(name, policy) if len(name) >= _KNOWN_MIN else None
                    info = names[name] = (name_kind, named_like_key(name), generic_key_name(name))
                name_kind, strong, generic_name = info
                if name_kind is None and under_key and _HEX_KEY.fullmatch(name):
                    name_kind = "a 32-hex API key"
                if name_kind is not None:
                    events.append((child, f"{name_kind} (as a property name)", -1, False, False))
                stack.append((v, child, under_key or strong, generic_name))
        elif isinstance(node, list):
            stack.extend((v, (*path, i), under_key, generic) for i, v in enumerate(node))
    kinds = _batch_kinds(texts, policy) if texts else []
    for path, kind, i, under_key, generic in events:
        if i >= 0:
            text = texts[i]
            kind = kinds[i] or ""
            if not kind and _held_by_name(under_key, generic, text) and not _allowed(text, policy):
                kind = _FIELD_KIND
            if not kind and _nested_credential(text, under_key, policy):
                kind = _FIELD_KIND
        if kind:
            yield _pointer(path, policy), kind


_NESTED = 3  # how deep JSON inside JSON strings is parsed (a tool's arguments, its output)


def _parsed(text: str) -> tuple[bool, Any]:
    """A string that is itself JSON (an object, an array, or an encoded string of them)."""
    head = text[:64].lstrip()[:1]
    if head in ("{", "["):
        return parse_json_bytes(text)
    if head == '"' and text.rstrip().endswith('"'):
        try:
            return True, json.loads(text)
        except (ValueError, RecursionError):
            pass
    return False, None


def _nested_credential(text: str, under_key: bool, policy: SecretPolicy | None) -> bool:
    """Whether a string that is JSON holds a credential by the name rules (``arguments``
    holding ``{"token": "..."}``); the key shapes in it are found in the string as text."""
    stack: list[tuple[Any, bool, bool, int]] = [(text, under_key, False, 0)]
    while stack:
        node, under, generic, depth = stack.pop()
        if isinstance(node, str):
            if depth and _held_by_name(under, generic, node) and not _allowed(node, policy):
                return True
            if depth < _NESTED and len(node) >= _MIN_LEN:
                is_json, inner = _parsed(node)
                if is_json:
                    stack.append((inner, under, False, depth + 1))
        elif isinstance(node, dict):
            for k, v in node.items():
                name = str(k)
                stack.append((v, under or named_like_key(name), generic_key_name(name), depth))
        elif isinstance(node, list):
            stack.extend((v, under, generic, depth) for v in node)
    return False


# ---------------------------------------------------------------------------------------------
# Headers, URIs, bodies


def _scan_headers(headers: Headers, policy: SecretPolicy | None) -> Iterator[tuple[str, str]]:
    for name, values in headers.items():
        label = f"header {_label(name, policy)!r}"
        if _first_kind(name, policy):
            yield f"{label} (its name)", "a secret"
        for value in values:
            if value == PLACEHOLDER:
                continue
            if "?" in value and (value.startswith("/") or "://" in value):
                # A URL (location, referer): say which of its query parameters holds the key.
                found = list(_scan_uri(value, policy))
                yield from ((f"{label} {where}", kind) for where, kind in found)
                if found:
                    continue
            kind = _held_kind(name, value, "header", policy)
            if kind is not None:
                yield label, kind


def _scan_uri(uri: str, policy: SecretPolicy | None) -> Iterator[tuple[str, str]]:
    parts = urlsplit(uri)
    found = False
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        label = f"query parameter {_label(name, policy)!r}"
        if _first_kind(name, policy) or _HEX_KEY.fullmatch(name):
            found = True
            yield label, "a secret (as a parameter name)"
        if value == PLACEHOLDER:
            continue
        kind = _held_kind(name, value, "parameter", policy)
        if kind is None and name.lower() in _SIGNATURES and credential_sized(value):
            kind = None if _allowed(value, policy) else "a signature in a URL"
        if kind is not None:
            found = True
            yield label, kind
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo:
        found = True
        yield "uri (user:password)", "a password"
    elif userinfo and _value_kind(unquote(userinfo), policy):
        found = True
        yield "uri (user name)", "an API key"
    if _first_kind(parts.path, policy):
        found = True
        yield "uri path", "an API key"
    if parts.fragment and _first_kind(parts.fragment, policy):
        found = True
        yield "uri fragment", "an API key"
    if not found:
        kind = _first_kind(uri, policy)
        if kind is not None:
            yield "uri", kind


def _number(value: Any, default: int) -> int:
    return value if isinstance(value, int) else default


def _stream_pieces(value: Any) -> Iterator[tuple[tuple[object, ...], str, str]]:
    """(stream, its printed name, text) for each piece an event adds to a streamed text.

    The printed name holds the event type and numbers only: an id could hold a secret.
    """
    if not isinstance(value, dict):
        return
    numbers = tuple(
        value[k]
        for k in ("output_index", "content_index", "index")
        if isinstance(value.get(k), int)
    )
    item = value.get("item_id")
    kind = value.get("type")
    kind = kind if isinstance(kind, str) and _TYPE_NAME.fullmatch(kind) else "delta"
    name = " ".join([kind, *map(str, numbers)])
    delta = value.get("delta")
    if isinstance(delta, str):
        yield (kind, numbers, item), name, delta
    elif isinstance(delta, dict):
        for field in ("text", "partial_json", "content", "arguments", "thinking"):
            if isinstance(delta.get(field), str):
                yield (kind, field, numbers, item), f"{kind}.{field}", delta[field]
    for n, choice in enumerate(value.get("choices") or ()):
        if not isinstance(choice, dict) or not isinstance(choice.get("delta"), dict):
            continue
        index = _number(choice.get("index"), n)
        inner = choice["delta"]
        if isinstance(inner.get("content"), str):
            yield ("choice", index), f"choice {index} content", inner["content"]
        for call in inner.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                number = _number(call.get("index"), 0)
                yield (
                    ("call", index, number),
                    f"choice {index} tool call {number}",
                    function["arguments"],
                )


_TYPE_NAME = re.compile(r"[a-z_.]{1,64}")


class _Stream:
    """Server-sent events: the texts their deltas add up to, and the data lines joined."""

    def __init__(self) -> None:
        self.pieces: dict[tuple[object, ...], list[str]] = {}
        self.names: dict[tuple[object, ...], str] = {}
        self.raw: list[str] = []

    def add(self, value: Any) -> None:
        for stream, name, piece in _stream_pieces(value):
            self.pieces.setdefault(stream, []).append(piece)
            self.names[stream] = name

    def joined(self, policy: SecretPolicy | None) -> Iterator[tuple[str, str]]:
        for stream, pieces in self.pieces.items():
            if len(pieces) > 1:
                kind = _first_kind("".join(pieces), policy)
                if kind is not None:
                    yield f"body (the {self.names[stream]} deltas joined)", kind
        if len(self.raw) > 1:
            kind = _first_kind("".join(self.raw), policy)
            if kind is not None:
                yield "body (the data lines joined)", kind


# Where str.splitlines() breaks lines, so line numbers match a reader's.
_LINE_BREAK = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _kinds_by_line(
    text: str, line_of: Callable[[int], int], policy: SecretPolicy | None
) -> dict[int, str]:
    """The first-ranked kind of secret on each line of ``text``, scanned as one text."""
    best: dict[int, _Hit] = {}
    for hit in _text_hits(text, policy):
        n = line_of(hit[2])
        if n not in best or hit[0] < best[n][0]:
            best[n] = hit
    return {n: hit[1] for n, hit in best.items()}


def _text_line_kinds(text: str, policy: SecretPolicy | None) -> dict[int, str]:
    breaks: list[int] = []

    def line_of(pos: int) -> int:
        if not breaks:
            breaks.extend(m.start() for m in _LINE_BREAK.finditer(text))
            breaks.append(len(text))
        return bisect_right(breaks, pos - 1) + 1

    return _kinds_by_line(text, line_of, policy)


def _numbered_line_kinds(
    lines: list[tuple[int, str]], policy: SecretPolicy | None
) -> dict[int, str]:
    starts = []
    pos = 0
    for _, line in lines:
        starts.append(pos)
        pos += len(line) + 1
    joined = "\n".join(line for _, line in lines)
    return _kinds_by_line(joined, lambda p: lines[bisect_right(starts, p) - 1][0], policy)


def _scan_text(
    text: str, data_lines: bool, policy: SecretPolicy | None
) -> Iterator[tuple[str, str]]:
    """Line by line; with ``data_lines``, server-sent-event ``data:`` lines are read as JSON.

    Lines that are text are scanned as one text (a megabyte of short lines is one search, not
    a million), each finding named by its line.
    """
    if not data_lines:
        for n, kind in sorted(_text_line_kinds(text, policy).items()):
            yield f"body (text) line {n}", kind
        return
    stream = _Stream()
    found: list[tuple[int, str, str]] = []
    other: list[tuple[int, str]] = []
    event: list[str] = []
    event_line = 0
    for n, line in enumerate([*text.splitlines(), ""], start=1):
        if line.startswith("data:"):
            if not event:
                event_line = n
            event.append(line[5:])
            try:
                value: Any = json.loads(line[5:])
            except ValueError:
                value = line[5:]
                stream.raw.append(value[1:] if value.startswith(" ") else value)
            here = [(n, f"body line {n} {ptr}", kind) for ptr, kind in _scan_json(value, policy)]
            stream.add(value)
            found += here
            continue
        if not line and len(event) > 1:
            # One event of several data lines: its data is the lines joined by newlines.
            is_json, value = parse_json_bytes("\n".join(event))
            if is_json:
                for pointer, kind in _scan_json(value, policy):
                    found.append((event_line, f"body event at line {event_line} {pointer}", kind))
                stream.add(value)
        if not line:
            event = []
        else:
            other.append((n, line))
    found += [
        (n, f"body line {n}", kind) for n, kind in _numbered_line_kinds(other, policy).items()
    ]
    found.sort(key=lambda item: item[0])
    yield from ((where, kind) for _, where, kind in found)
    if not found:
        yield from stream.joined(policy)


# Bodies compressed without a content-encoding: their magic bytes.
def _undeclared_coding(body: bytes) -> str | None:
    if body[:2] == b"\x1f\x8b":
        return "gzip"
    if body[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if len(body) > 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0:
        return "deflate"
    return None


def _unpacked(body: bytes) -> tuple[str, bytes] | None:
    """A compressed body undone within the size limit; brotli and raw deflate, which have no
    magic, are tried on bodies that are not text."""
    coding = _undeclared_coding(body)
    if coding is None:
        if body.isascii():
            return None
        try:
            body.decode("utf-8")
            return None
        except UnicodeDecodeError:
            pass
    limit = max_cassette_bytes()
    for name in (coding,) if coding else ("br", "deflate"):
        try:
            return name, _decompress(body, name, limit)
        except (CassetteError, ValueError, EOFError):
            continue
    return None


def _utf16(body: bytes) -> str | None:
    """The text of a UTF-16 body (a byte order mark, or NUL in every other byte)."""
    if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        codec = "utf-16"
    else:
        head = body[:64]
        if len(head) < 4 or len(head) % 2:
            head = head[: len(head) - len(head) % 2]
        if len(head) < 4:
            return None
        if head[1::2].count(0) * 10 >= len(head) // 2 * 9 and head[::2].count(0) == 0:
            codec = "utf-16-le"
        elif head[::2].count(0) * 10 >= len(head) // 2 * 9 and head[1::2].count(0) == 0:
            codec = "utf-16-be"
        else:
            return None
    text = body.decode(codec, errors="replace")
    sample = text[:4096]
    readable = sum(1 for c in sample if c.isprintable() or c in "\r\n\t")
    return text if readable * 20 >= len(sample) * 19 else None


def _scan_decoded(text: str, policy: SecretPolicy | None) -> Iterator[tuple[str, str]]:
    is_json, value = parse_json_bytes(text)
    if is_json:
        for pointer, kind in _scan_json(value, policy):
            yield f"body {pointer}", kind
        return
    # Server-sent events: data lines are usually JSON, so report pointers within them; the
    # other lines (event, id, comments) are scanned as text.
    sse = "\ndata:" in text or text.startswith(("data:", "event:", "id:", ":"))
    yield from _scan_text(text, sse, policy)


def _scan_body(
    body: bytes | None, policy: SecretPolicy | None, depth: int = 0
) -> Iterator[tuple[str, str]]:
    if not body:
        return
    found = False
    unpacked = _unpacked(body) if depth < 2 else None
    text16 = _utf16(body) if unpacked is None else None
    if unpacked is not None:
        coding, inner = unpacked
        for where, kind in _scan_body(inner, policy, depth + 1):
            found = True
            yield where.replace("body", f"body ({coding}-compressed)", 1), kind
    else:
        if text16 is not None:
            for where, kind in _scan_decoded(text16, policy):
                found = True
                yield where.replace("body", "body (UTF-16)", 1), kind
        is_json, value = parse_json_bytes(body)
        if is_json:
            for pointer, kind in _scan_json(value, policy):
                found = True
                yield f"body {pointer}", kind
        else:
            for where, kind in _scan_decoded(body.decode("utf-8", errors="replace"), policy):
                found = True
                yield where, kind
    forms = _forms(policy)
    if not found and forms and any(form.encode() in body for form in forms):
        yield "body", KNOWN_KIND


def scan_exchange(ex: Exchange, index: int, policy: SecretPolicy | None = None) -> list[Finding]:
    """Every place in an exchange that looks like a secret (``policy``: what is allowed, and
    the credentials the client used)."""
    found: list[Finding] = []
    reason: list[tuple[str, str]] = []
    if ex.reason:
        kind = _first_kind(ex.reason, policy)
        if kind is not None:
            reason.append(("status reason", kind))
    for part, items in (
        ("request", [*_scan_uri(ex.uri, policy), *_scan_headers(ex.request_headers, policy)]),
        ("request", list(_scan_body(ex.request_body, policy))),
        ("response", reason),
        ("response", list(_scan_headers(ex.response_headers, policy))),
        ("response", list(_scan_body(ex.response_body, policy))),
    ):
        found.extend(Finding(index, part, where, kind) for where, kind in items)
    return found
