"""Sealing and opening the ``encrypted_content`` of compaction items.

A token is a Fernet token, the format of the live API's tokens (``gAAAAAB…``, base64url with
``=`` padding), made and verified by the ``cryptography`` package::

    base64url(0x80 || timestamp (8 bytes) || IV (16) || AES-128-CBC(PKCS7(plaintext)) || HMAC (32))

The plaintext is the zlib-compressed canonical JSON of the folded state; the HMAC is
HMAC-SHA256 over everything before it. The Fernet key and the key of deterministic IVs are
derived from the server key with HKDF-SHA256, so one secret serves both purposes without reusing
a key across them.

- Normal mode: ``Fernet.encrypt_at_time`` (random IV), the timestamp from the server's clock.
- Deterministic mode: the timestamp is the server's fixed clock and the IV is
  ``HMAC-SHA256(iv_key, variant || plaintext)[:16]``, so the same state gives the same token
  within one version of the package (zlib's output is part of it). Fernet's public API always
  draws a random IV, so this mode builds the same format from cryptography's documented AES-CBC,
  PKCS7 and HMAC primitives; ``Fernet.decrypt`` opens both alike.

Opening accepts only a token exactly as issued: canonical base64url (the URL-safe alphabet,
the padding the encoder writes, no whitespace, no stray bits: decoding and encoding again gives
back the same text), then ``Fernet.decrypt`` (any flipped bit, truncation or foreign key fails
the HMAC), then inflation with a hard bound of ``MAX_STATE_BYTES`` (a forged, highly compressible
token is refused after at most that much output, never inflated whole), then a JSON object.
Sealing refuses a state over the same bound (:class:`StateTooLarge`), so the server never issues
a token it would not open. Anyone holding the key can forge tokens (deterministic mode's key is
public), so opening trusts nothing a token holds: past this module, the compactor checks the
state's shape and nesting (``_compact``).

:class:`PlaintextSealer` makes the tokens of servers that encrypt nothing (Ollama, vLLM, Llama
Stack): the ``encrypted_content`` is readable JSON, opened by reading it, and verifies nothing
(anyone can write one, as anyone can for those servers). Both kinds are a :class:`TokenSealer`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import zlib
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FERNET_VERSION = 0x80
IV_LEN = 16
TAG_LEN = 32
# version, timestamp, IV and HMAC around a ciphertext of whole AES blocks (at least one).
_OVERHEAD = 1 + 8 + IV_LEN + TAG_LEN
_BLOCK = 16
# The largest canonical JSON a token carries: twenty times the default context window
# (400,000 tokens of 4 bytes, about 1.6 MB), a conversation no model takes. It bounds what a
# forged token costs to refuse; sealing more is answered as a context over the window.
MAX_STATE_BYTES = 32 * 1024 * 1024
_INFLATE_STEP = 1024 * 1024  # output per zlib call, so a bomb is stopped within one step
HKDF_INFO = b"pytest-compaction encrypted_content"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
# The fixed key of deterministic mode: public on purpose, it only makes runs reproducible.
DETERMINISTIC_KEY = hashlib.sha256(b"pytest-compaction deterministic key").digest()

NOT_BASE64 = "Encrypted content is not valid base64url."
UNREADABLE = "Encrypted content could not be decrypted or parsed."


OLLAMA_PAYLOAD = "ollama_compaction"  # Ollama's payload type (openai/responses_compact.go)
OLLAMA_VERSION = 1
NOT_OLLAMA = "unsupported compaction item: encrypted_content is not an Ollama payload"


class TokenSealer(Protocol):
    """What the compactor seals states with and opens tokens with."""

    def seal(self, state: dict[str, Any], *, now: int, variant: int = 0) -> str: ...

    def open(self, token: str) -> dict[str, Any]: ...


class TokenError(ValueError):
    """A token that does not decode, does not verify, or does not hold a state object."""


class StateTooLarge(TokenError):
    """A state whose canonical JSON is over ``MAX_STATE_BYTES``: it is not sealed."""


def canonical_json(value: object) -> bytes:
    """Compact JSON with sorted keys: the one byte form used for sealing and estimating."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Sealer:
    """Seals states into tokens and opens them, under keys derived from one server key."""

    def __init__(self, key: bytes, *, deterministic: bool = False) -> None:
        derived = HKDF(hashes.SHA256(), length=64, salt=None, info=HKDF_INFO).derive(key)
        self._signing_key, self._encryption_key = derived[:16], derived[16:32]
        self._fernet = Fernet(base64.urlsafe_b64encode(derived[:32]))
        self._iv_key = derived[32:]
        self._deterministic = deterministic

    def seal(self, state: dict[str, Any], *, now: int, variant: int = 0) -> str:
        """Encrypt and authenticate ``state`` (a JSON object), timestamped ``now``.

        In deterministic mode the IV comes from the plaintext and ``variant``: the same state
        sealed again under another variant gives another token (a stream re-encrypts its
        compaction item for each event that carries it, as the live service does).
        """
        document = canonical_json(state)
        if len(document) > MAX_STATE_BYTES:
            raise StateTooLarge(
                f"the state is {len(document)} bytes, over the {MAX_STATE_BYTES} a token carries"
            )
        plaintext = zlib.compress(document, 6)
        if not self._deterministic:
            return self._fernet.encrypt_at_time(plaintext, now).decode("ascii")
        salt = variant.to_bytes(4, "big") if variant else b""
        iv = hmac.new(self._iv_key, salt + plaintext, hashlib.sha256).digest()[:IV_LEN]
        return self._fernet_token(plaintext, now, iv)

    def _fernet_token(self, plaintext: bytes, now: int, iv: bytes) -> str:
        """The Fernet token of ``plaintext`` with the given timestamp and IV (the spec's steps)."""
        padder = padding.PKCS7(algorithms.AES.block_size).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self._encryption_key), modes.CBC(iv)).encryptor()
        head = (
            bytes([FERNET_VERSION])
            + now.to_bytes(8, "big")
            + iv
            + encryptor.update(padded)
            + encryptor.finalize()
        )
        mac = crypto_hmac.HMAC(self._signing_key, hashes.SHA256())
        mac.update(head)
        return base64.urlsafe_b64encode(head + mac.finalize()).decode("ascii")

    def open(self, token: str) -> dict[str, Any]:
        """Verify and decrypt a token sealed under this key; raise TokenError otherwise."""
        raw = _strict_base64url(token)
        if len(raw) < _OVERHEAD + _BLOCK or (len(raw) - _OVERHEAD) % _BLOCK:
            raise TokenError(UNREADABLE)
        if raw[0] != FERNET_VERSION:
            raise TokenError(UNREADABLE)
        try:
            plaintext = self._fernet.decrypt(token)
        except InvalidToken:
            raise TokenError(UNREADABLE) from None
        document = _inflate(plaintext, MAX_STATE_BYTES)
        try:
            state = json.loads(document)
        except (ValueError, RecursionError):  # authentic but unreadable: a different format
            raise TokenError(UNREADABLE) from None
        if not isinstance(state, dict):
            raise TokenError(UNREADABLE)
        return state


def _strict_base64url(token: str) -> bytes:
    """The bytes of a token in canonical padded base64url; TokenError for any other text."""
    if len(token) % 4 or not _BASE64URL.fullmatch(token):
        raise TokenError(NOT_BASE64)
    try:
        raw = base64.urlsafe_b64decode(token)
    except binascii.Error:
        raise TokenError(NOT_BASE64) from None
    # Stray bits before the padding decode like zero bits: only the encoder's own text passes.
    if base64.urlsafe_b64encode(raw).decode("ascii") != token:
        raise TokenError(NOT_BASE64)
    return raw


def _inflate(data: bytes, limit: int) -> bytes:
    """One whole zlib stream holding at most ``limit`` bytes; TokenError otherwise."""
    inflater = zlib.decompressobj()
    out = bytearray()
    try:
        chunk = inflater.decompress(data, _INFLATE_STEP)
        while True:
            out += chunk
            if len(out) > limit:
                raise TokenError(UNREADABLE)
            if inflater.eof:
                break
            if not chunk and not inflater.unconsumed_tail:
                raise TokenError(UNREADABLE)  # the stream stops before its end
            chunk = inflater.decompress(inflater.unconsumed_tail, _INFLATE_STEP)
    except zlib.error:
        raise TokenError(UNREADABLE) from None
    if inflater.unused_data:
        raise TokenError(UNREADABLE)  # bytes after the stream: not what the server sealed
    return bytes(out)


class PlaintextSealer:
    """Tokens that are readable JSON: nothing is encrypted, so nothing is verified.

    ``envelope`` ``"state"``: the state's own canonical JSON (``{"instructions", "items", "model",
    "v"}``). ``"ollama"``: Ollama's continuation payload, ``{"type": "ollama_compaction",
    "version": 1, "summary", "retained"}`` in that order (the field order of Ollama's Go struct),
    this server's transcript items as ``retained`` (Ollama's own holds its chat messages) and a
    one-line ``summary``; instructions are not carried, as Ollama's payload carries none. A token
    is never re-encrypted, so ``variant`` changes nothing. Opening refuses a token over
    ``MAX_STATE_BYTES``, one that is not a JSON object, and for Ollama one that is not its
    payload (in Ollama's own words, ``NOT_OLLAMA``).
    """

    def __init__(self, envelope: str = "state") -> None:
        if envelope not in ("state", "ollama"):
            raise ValueError(f"unknown plaintext envelope {envelope!r}")
        self.envelope = envelope

    def seal(self, state: dict[str, Any], *, now: int, variant: int = 0) -> str:
        if self.envelope == "ollama":
            items = state.get("items", [])
            count = len(items) if isinstance(items, list) else 0
            payload: dict[str, Any] = {
                "type": OLLAMA_PAYLOAD,
                "version": OLLAMA_VERSION,
                "summary": f"Summary of {count} earlier conversation item(s).",
                "retained": items,
            }
            document = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        else:
            document = canonical_json(state).decode("utf-8")
        if len(document.encode("utf-8")) > MAX_STATE_BYTES:
            raise StateTooLarge(f"the state is over the {MAX_STATE_BYTES} bytes a token carries")
        return document

    def open(self, token: str) -> dict[str, Any]:
        refused = NOT_OLLAMA if self.envelope == "ollama" else UNREADABLE
        if len(token) > MAX_STATE_BYTES:
            raise TokenError(refused)
        try:
            document = json.loads(token)
        except (ValueError, RecursionError):
            raise TokenError(refused) from None
        if not isinstance(document, dict):
            raise TokenError(refused)
        if self.envelope == "state":
            return document
        summary = document.get("summary")
        retained = document.get("retained")
        if (
            set(document) != {"type", "version", "summary", "retained"}
            or document.get("type") != OLLAMA_PAYLOAD
            or document.get("version") != OLLAMA_VERSION
            or not (isinstance(summary, str) and summary.strip())
            or not isinstance(retained, list)
        ):
            raise TokenError(refused)
        return {"v": 1, "model": None, "instructions": [], "items": retained}
