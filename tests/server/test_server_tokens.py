"""The sealed ``encrypted_content`` format and the fault syntax, without HTTP.

A token is a Fernet token (``gAAAAAB…``, the format of the live API's tokens) that
``cryptography``'s own ``Fernet`` opens under the key HKDF derives from the server key.
"""

from __future__ import annotations

import base64
import json
import os
import re
import zlib
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pytest_compaction.server import TokenError, parse_fault
from pytest_compaction.server._faults import FaultSyntaxError
from pytest_compaction.server._tokens import (
    HKDF_INFO,
    MAX_STATE_BYTES,
    NOT_BASE64,
    UNREADABLE,
    Sealer,
    StateTooLarge,
    _inflate,
)

KEY = b"0123456789abcdef0123456789abcdef"
STATE = {"v": 1, "items": [{"role": "assistant", "content": "ünïcode ✓ " * 50}]}
NOW = 1_767_225_600
# What every Fernet token is: base64url with "=" padding of 0x80, an 8-byte time, a 16-byte IV,
# whole AES blocks and a 32-byte HMAC.
FERNET_TEXT = re.compile(r"gAAAAA[A-Za-z0-9_-]+={0,2}")


def fernet_of(key: bytes) -> Fernet:
    derived = HKDF(hashes.SHA256(), length=64, salt=None, info=HKDF_INFO).derive(key)
    return Fernet(base64.urlsafe_b64encode(derived[:32]))


def is_fernet_token(token: str) -> bool:
    raw = base64.urlsafe_b64decode(token)
    return (
        FERNET_TEXT.fullmatch(token) is not None
        and len(token) % 4 == 0
        and raw[0] == 0x80
        and len(raw) >= 57 + 16
        and (len(raw) - 57) % 16 == 0
    )


@pytest.mark.parametrize("deterministic", [False, True])
def test_a_token_is_a_fernet_token_that_cryptography_opens(deterministic: bool) -> None:
    token = Sealer(KEY, deterministic=deterministic).seal(STATE, now=NOW)
    assert is_fernet_token(token), token[:40]
    assert token.startswith("gAAAAABpVbkA")  # 0x80, then 2026-01-01T00:00:00Z
    fernet = fernet_of(KEY)
    assert fernet.extract_timestamp(token) == NOW
    assert json.loads(zlib.decompress(fernet.decrypt(token))) == STATE
    assert "ünïcode".encode() not in base64.urlsafe_b64decode(token)  # not readable


def test_real_tokens_have_the_format_the_server_issues(reference: Path) -> None:
    recorded = reference / "recorded" / "pydantic-ai-stock-vcrpy"
    text = "".join(path.read_text() for path in sorted(recorded.glob("*.yaml")))
    real = set(re.findall(r"gAAAAA[A-Za-z0-9_=-]+", text))
    assert len(real) >= 5
    assert all(is_fernet_token(token) for token in real)
    assert is_fernet_token(Sealer(KEY).seal(STATE, now=NOW))


def test_round_trip_and_random_ivs_unless_deterministic() -> None:
    sealer = Sealer(KEY)
    assert sealer.open(sealer.seal(STATE, now=NOW)) == STATE
    assert sealer.seal(STATE, now=NOW) != sealer.seal(STATE, now=NOW)
    fixed = Sealer(KEY, deterministic=True)
    assert fixed.seal(STATE, now=NOW) == Sealer(KEY, deterministic=True).seal(STATE, now=NOW)
    assert fixed.seal(STATE, now=NOW, variant=1) != fixed.seal(STATE, now=NOW)
    assert fixed.seal({"v": 1, "items": []}, now=NOW) != fixed.seal(STATE, now=NOW)
    assert fixed.open(fixed.seal(STATE, now=NOW, variant=2)) == STATE


def test_every_flipped_bit_is_detected() -> None:
    sealer = Sealer(KEY)
    raw = base64.urlsafe_b64decode(sealer.seal(STATE, now=NOW))
    for index in range(len(raw)):
        tampered = bytearray(raw)
        tampered[index] ^= 1 << (index % 8)
        with pytest.raises(TokenError, match=re.escape(UNREADABLE)):
            sealer.open(base64.urlsafe_b64encode(bytes(tampered)).decode())


def test_only_the_text_the_encoder_wrote_is_read() -> None:
    sealer = Sealer(KEY)
    # A token ends in "=" when its byte count is not a multiple of 3: one in three is not.
    tokens = [sealer.seal({**STATE, "pad": os.urandom(16 * n).hex()}, now=NOW) for n in range(12)]
    token = next(t for t in tokens if t.endswith("="))
    last = token.rstrip("=")[-1]
    stray = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    bits = stray[stray.index(last) + 1]  # low bits the padding says are not there
    standard = token.replace("-", "+").replace("_", "/")
    assert standard != token
    for text in (
        token[:40] + "!!" + token[40:],
        token[:40] + " " + token[40:],
        token + "\n",
        " " + token,
        standard,
        token.rstrip("="),
        token + "==",
        token.rstrip("=")[:-1] + bits + token[len(token.rstrip("=")) :],
    ):
        with pytest.raises(TokenError, match=re.escape(NOT_BASE64)):
            sealer.open(text)
    short = base64.urlsafe_b64encode(b"x").decode()
    for text in (token[:-4], token[:-8], token[:80], token[:-8] + "AAAAAAAA", "", short):
        with pytest.raises(TokenError, match=re.escape(UNREADABLE)):
            sealer.open(text)


@pytest.mark.parametrize(
    "token", ["", "!!!", "gAAAAABpzfWE_k5OtOa3sTEbupueyuGGrezu8qQw", "wQ==", "é", "gAAAAA=="]
)
def test_garbage_is_a_token_error(token: str) -> None:
    with pytest.raises(TokenError):
        Sealer(KEY).open(token)


def test_foreign_key_is_rejected() -> None:
    with pytest.raises(TokenError, match="could not be decrypted or parsed"):
        Sealer(b"another key, same length, 32 by").open(Sealer(KEY).seal(STATE, now=NOW))


def test_what_is_not_a_state_object_is_refused_though_authentic() -> None:
    fernet, sealer = fernet_of(KEY), Sealer(KEY)
    for plaintext in (b"not zlib", zlib.compress(b"[1, 2]"), zlib.compress(b"{"), b""):
        with pytest.raises(TokenError, match=re.escape(UNREADABLE)):
            sealer.open(fernet.encrypt_at_time(plaintext, NOW).decode())


def test_inflation_stops_at_the_bound() -> None:
    data = b"x" * 5_000_000
    packed = zlib.compress(data, 9)
    assert _inflate(packed, len(data)) == data
    with pytest.raises(TokenError, match=re.escape(UNREADABLE)):
        _inflate(packed, len(data) - 1)
    for broken in (packed[:-1], packed[: len(packed) // 2], packed + b"\0", packed + packed):
        with pytest.raises(TokenError, match=re.escape(UNREADABLE)):
            _inflate(broken, len(data))


def test_a_state_over_the_bound_is_not_sealed() -> None:
    over = {"v": 1, "items": [{"type": "x", "text": "x" * MAX_STATE_BYTES}]}
    with pytest.raises(StateTooLarge):
        Sealer(KEY).seal(over, now=NOW)


@pytest.mark.parametrize(
    ("spec", "kind", "status", "seconds", "times", "retry_after"),
    [
        ("429", "status", 429, 0.0, None, None),
        ("500;times=1", "status", 500, 0.0, 1, None),
        (" 503 ; retry-after=2.5 ; times=3 ", "status", 503, 0.0, 3, "2.5"),
        ("slow:0.2", "slow", 0, 0.2, None, None),
        ("SLOW=1", "slow", 0, 1.0, None, None),
        ("malformed-json", "malformed-json", 0, 0.0, None, None),
        ("truncated;times=2", "truncated", 0, 0.0, 2, None),
        ("drop", "drop", 0, 0.0, None, None),
    ],
)
def test_fault_syntax(
    spec: str, kind: str, status: int, seconds: float, times: int | None, retry_after: str | None
) -> None:
    fault = parse_fault(spec)
    assert (fault.kind, fault.status, fault.seconds, fault.times, fault.retry_after) == (
        kind,
        status,
        seconds,
        times,
        retry_after,
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "unknown fault"),
        ("399", "unknown fault"),
        ("600", "unknown fault"),
        ("slow", "unknown fault"),
        ("slow:-1", "slow needs a number"),
        ("slow:nan", "slow needs a number"),
        ("slow:1e308", r"slow needs a number of seconds \(0 to 3600\)"),
        ("slow:3601", r"slow needs a number of seconds \(0 to 3600\)"),
        ("429;retry-after=1e308", r"retry-after must be a number of seconds \(0 to 3600\)"),
        ("500;times", "has no '=value'"),
        ("500;times=x", "positive integer"),
        ("500;color=red", "unknown fault option 'color'"),
    ],
)
def test_fault_syntax_errors_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(FaultSyntaxError, match=message):
        parse_fault(spec)
