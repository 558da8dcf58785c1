"""The sealed ``encrypted_content`` format and the fault syntax, without HTTP."""

from __future__ import annotations

import base64

import pytest

from pytest_compaction.server import TokenError, parse_fault
from pytest_compaction.server._faults import FaultSyntaxError
from pytest_compaction.server._tokens import NONCE_LEN, TAG_LEN, VERSION, seal, unseal

KEY = b"0123456789abcdef0123456789abcdef"
STATE = {"v": 1, "items": [{"role": "assistant", "content": "ünïcode ✓ " * 50}]}


def test_round_trip_and_layout() -> None:
    token = seal(STATE, KEY)
    assert unseal(token, KEY) == STATE
    raw = base64.urlsafe_b64decode(token)
    assert raw[0] == VERSION
    assert len(raw) > 1 + NONCE_LEN + TAG_LEN
    assert not token.startswith("gAAAAA")  # never mistaken for a real token
    assert "ünïcode".encode() not in raw  # the state is not readable in the token


def test_nonces_random_unless_deterministic() -> None:
    assert seal(STATE, KEY) != seal(STATE, KEY)
    assert seal(STATE, KEY, deterministic=True) == seal(STATE, KEY, deterministic=True)
    other = {"v": 1, "items": []}
    assert seal(other, KEY, deterministic=True) != seal(STATE, KEY, deterministic=True)


def test_every_flipped_byte_is_detected() -> None:
    raw = bytearray(base64.urlsafe_b64decode(seal(STATE, KEY)))
    for index in range(0, len(raw), 7):
        tampered = bytearray(raw)
        tampered[index] ^= 0x01
        with pytest.raises(TokenError):
            unseal(base64.urlsafe_b64encode(bytes(tampered)).decode(), KEY)


@pytest.mark.parametrize(
    "token", ["", "!!!", "gAAAAABpzfWE_k5OtOa3sTEbupueyuGGrezu8qQw", "wQ==", "é"]
)
def test_garbage_is_a_token_error(token: str) -> None:
    with pytest.raises(TokenError):
        unseal(token, KEY)


def test_foreign_key_is_rejected() -> None:
    with pytest.raises(TokenError, match="could not be decrypted or parsed"):
        unseal(seal(STATE, KEY), b"another key, same length, 32 by")


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
