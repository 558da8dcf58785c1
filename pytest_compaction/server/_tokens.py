"""Sealing and opening the ``encrypted_content`` of compaction items.

A token is ``base64url(version || nonce || ciphertext || tag)`` where

- ``version`` is one byte (``0xC1``), so a token never starts like a real Fernet token (``gAAAAA``)
  and cannot be mistaken for one;
- ``nonce`` is 16 bytes, random, or derived from the plaintext in deterministic mode;
- ``ciphertext`` is the zlib-compressed compact JSON of the folded state, XORed with a keystream
  whose blocks are ``HMAC-SHA256(enc_key, nonce || counter)`` (counter mode over HMAC);
- ``tag`` is ``HMAC-SHA256(mac_key, version || nonce || ciphertext)``.

``enc_key`` and ``mac_key`` are derived from the server key with HMAC, so one secret serves both
purposes without reusing a key across them. Only the standard library is used: the point is an
opaque token that is authenticated (tampering and foreign keys are detected) and that really
carries the state, not secrecy against a determined attacker.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import zlib
from typing import Any

VERSION = 0xC1
NONCE_LEN = 16
TAG_LEN = 32
# The fixed key of deterministic mode: public on purpose, it only makes runs reproducible.
DETERMINISTIC_KEY = hashlib.sha256(b"pytest-compaction deterministic key").digest()


class TokenError(ValueError):
    """A token that does not decode, does not verify, or does not hold a state object."""


def _subkey(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, b"pytest-compaction/" + label, hashlib.sha256).digest()


def _keystream_xor(enc_key: bytes, nonce: bytes, data: bytes) -> bytes:
    blocks = -(-len(data) // hashlib.sha256().digest_size)
    stream = b"".join(
        hmac.new(enc_key, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest()
        for counter in range(blocks)
    )[: len(data)]
    # One big-integer XOR is far faster than a per-byte loop for multi-megabyte states.
    mixed = int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")
    return mixed.to_bytes(len(data), "big")


def canonical_json(value: object) -> bytes:
    """Compact JSON with sorted keys: the one byte form used for sealing and estimating."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(
    state: dict[str, Any], key: bytes, *, deterministic: bool = False, variant: int = 0
) -> str:
    """Encrypt and authenticate ``state`` (a JSON object) into a URL-safe token.

    In deterministic mode the nonce comes from the plaintext and ``variant``: the same state
    sealed again under another variant gives another token (a stream re-encrypts its
    compaction item for each event that carries it, as the live service does).
    """
    plaintext = zlib.compress(canonical_json(state), 6)
    if deterministic:
        salt = variant.to_bytes(4, "big") if variant else b""
        mac = hmac.new(_subkey(key, b"nonce"), salt + plaintext, hashlib.sha256)
        nonce = mac.digest()[:NONCE_LEN]
    else:
        nonce = os.urandom(NONCE_LEN)
    ciphertext = _keystream_xor(_subkey(key, b"enc"), nonce, plaintext)
    head = bytes([VERSION]) + nonce + ciphertext
    tag = hmac.new(_subkey(key, b"mac"), head, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(head + tag).decode("ascii")


def unseal(token: str, key: bytes) -> dict[str, Any]:
    """Verify and decrypt a token made by :func:`seal` under ``key``; raise TokenError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise TokenError("Encrypted content is not valid base64url.") from exc
    if len(raw) < 1 + NONCE_LEN + TAG_LEN or raw[0] != VERSION:
        raise TokenError("Encrypted content could not be decrypted or parsed.")
    head, tag = raw[:-TAG_LEN], raw[-TAG_LEN:]
    expected = hmac.new(_subkey(key, b"mac"), head, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, expected):
        raise TokenError("Encrypted content could not be decrypted or parsed.")
    nonce, ciphertext = head[1 : 1 + NONCE_LEN], head[1 + NONCE_LEN :]
    try:
        state = json.loads(zlib.decompress(_keystream_xor(_subkey(key, b"enc"), nonce, ciphertext)))
    except (zlib.error, ValueError) as exc:  # authentic but unreadable: a different format
        raise TokenError("Encrypted content could not be decrypted or parsed.") from exc
    if not isinstance(state, dict):
        raise TokenError("Encrypted content could not be decrypted or parsed.")
    return state
