"""Tokens that are not what the server issued, over real HTTP (openai SDK and httpx).

Deterministic mode's key is public, so anyone can forge a token the server authenticates: what
it holds must still be refused cheaply when it is not a state the server could have sealed.
Every refusal of a token is the API's ``400 invalid_encrypted_content``, naming the item; a
state too large to seal is a ``context_length_exceeded``.
"""

from __future__ import annotations

import base64
import json
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pytest_compaction import CompactionServer
from pytest_compaction.server._tokens import DETERMINISTIC_KEY, HKDF_INFO, MAX_STATE_BYTES

# The reasons of today's refusals, word for word.
NOT_BASE64 = "Encrypted content is not valid base64url."
UNREADABLE = "Encrypted content could not be decrypted or parsed."

MiB = 1024 * 1024
FIXED_TIME = 1_767_225_600
CONVERSATION: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]


@pytest.fixture
def server() -> Iterator[CompactionServer]:
    with CompactionServer(deterministic=True) as srv:
        yield srv


def sdk(server: CompactionServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=30)


def forge(plaintext: bytes) -> str:
    """A token sealed under deterministic mode's public key, with cryptography's own Fernet."""
    derived = HKDF(hashes.SHA256(), length=64, salt=None, info=HKDF_INFO).derive(DETERMINISTIC_KEY)
    fernet = Fernet(base64.urlsafe_b64encode(derived[:32]))
    return fernet.encrypt_at_time(plaintext, FIXED_TIME).decode("ascii")


def bomb(inflated_mib: int) -> bytes:
    """A zlib stream of a JSON state ``inflated_mib`` MiB long, built without inflating it.

    One 1 MiB block ends with a full flush (it refers to nothing before it), so repeating its
    bytes repeats its output; only the checksum is computed over the whole.
    """
    head, tail, filler = b'{"v":1,"items":[],"pad":"', b'"}', b"x" * MiB
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [b"\x78\xda", deflate.compress(head), deflate.flush(zlib.Z_FULL_FLUSH)]
    block = deflate.compress(filler) + deflate.flush(zlib.Z_FULL_FLUSH)
    parts += [block] * inflated_mib
    parts.append(deflate.compress(tail) + deflate.flush())
    check = zlib.adler32(head)
    for _ in range(inflated_mib):
        check = zlib.adler32(filler, check)
    parts.append(zlib.adler32(tail, check).to_bytes(4, "big"))
    return b"".join(parts)


def passing_back(token: str) -> dict[str, Any]:
    """A request body that passes ``token`` back as a compaction item, then goes on."""
    return {
        "model": "gpt-5",
        "input": [
            {"type": "compaction", "id": "cmp_forged", "encrypted_content": token},
            {"role": "user", "content": "go on"},
        ],
    }


def refusal(reason: str) -> dict[str, Any]:
    """The server's answer to a token it does not open, as it was before tokens were Fernet."""
    return {
        "error": {
            "message": "The encrypted content for item cmp_forged could not be verified. "
            f"Reason: {reason}",
            "type": "invalid_request_error",
            "param": "input[0].encrypted_content",
            "code": "invalid_encrypted_content",
        }
    }


def issued_token(server: CompactionServer) -> str:
    """A token the server issued, one whose text has "-", "_" and "=" padding in it."""
    client = sdk(server)
    for n in range(12):
        turns = [*CONVERSATION, {"role": "user", "content": "more " * n}]
        token = client.responses.compact(model="gpt-5", input=turns).output[-1].encrypted_content
        if token.endswith("=") and "-" in token and "_" in token:
            return token
    raise AssertionError("no issued token with padding, '-' and '_'")


def assert_a_forged_state_is_opened(server: CompactionServer, path: str) -> None:
    """The forgery is real: a small forged state is accepted, so a refusal is the bound's."""
    turn = {"id": "msg_forged", "type": "message", "role": "user", "content": "forged"}
    body = passing_back(forge(zlib.compress(json.dumps({"v": 1, "items": [turn]}).encode())))
    if path == "/responses":
        body["input"].append({"type": "compaction_trigger"})  # answer with a compaction item
    answer = httpx.post(server.base_url + path, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    sealed = answer.json()["output"][-1]["encrypted_content"]
    assert server.open_token(sealed)["items"][0]["content"] == "forged"


# -- decompression bombs ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/responses/compact", "/responses"])
def test_a_forged_bomb_is_refused_quickly_with_bounded_memory(
    server: CompactionServer, path: str
) -> None:
    assert_a_forged_state_is_opened(server, path)
    token = forge(bomb(2048))  # 2 GiB of state in a token under 3 MB
    assert len(token) < 3_000_000
    content = json.dumps(passing_back(token)).encode()
    with httpx.Client(timeout=60) as client:
        tracemalloc.start()
        try:
            started = time.monotonic()
            answer = client.post(
                server.base_url + path,
                content=content,
                headers={"content-type": "application/json"},
            )
            elapsed = time.monotonic() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert answer.status_code == 400
    assert answer.json() == refusal(UNREADABLE)
    assert peak < 100 * MiB, f"peak {peak / MiB:.0f} MiB"
    assert elapsed < 20, f"{elapsed:.1f} s"


def test_a_forged_state_nested_deeper_than_any_body_is_refused(
    server: CompactionServer, caplog: pytest.LogCaptureFixture
) -> None:
    deep = "[" * 900 + "]" * 900
    state = f'{{"v":1,"items":[{{"type":"x","deep":{deep}}}]}}'.encode()
    token = forge(zlib.compress(state))
    for path in ("/responses/compact", "/responses"):
        assert_a_forged_state_is_opened(server, path)
        answer = httpx.post(server.base_url + path, json=passing_back(token), timeout=30)
        assert (answer.status_code, answer.json()) == (400, refusal(UNREADABLE))
    assert not [r for r in caplog.records if r.exc_info], "an error was logged with a traceback"


def test_a_state_at_the_bound_round_trips_and_one_over_it_is_not_sealed() -> None:
    with CompactionServer(context_window=10**9) as big, httpx.Client(timeout=120) as client:
        url = f"{big.base_url}/responses/compact"

        def say(text: str) -> httpx.Response:
            return client.post(
                url, json={"model": "m", "input": [{"role": "user", "content": text}]}
            )

        made = say("x" * (MAX_STATE_BYTES - 1000))
        assert made.status_code == 200, made.text[:300]
        again = client.post(url, json={"model": "m", "input": [made.json()["output"][-1]]})
        assert again.status_code == 200, again.text[:300]
        over = say("x" * MAX_STATE_BYTES)
    assert over.status_code == 400
    assert over.json() == {
        "error": {
            "message": "Your input exceeds the context window of this model. "
            "Please adjust your input and try again.",
            "type": "invalid_request_error",
            "param": "input",
            "code": "context_length_exceeded",
        }
    }


# -- tampering, over the openai SDK ---------------------------------------------------------------


def tamperings(token: str) -> dict[str, tuple[str, str]]:
    """Each kind of change to an issued token: (the changed text, the reason it is refused)."""
    body = token.rstrip("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    stray = alphabet[alphabet.index(body[-1]) + 1]  # bits the padding says are not there
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[len(raw) // 2] ^= 0x10
    return {
        "inserted !!": (token[:50] + "!!" + token[50:], NOT_BASE64),
        "inserted space": (token[:50] + " " + token[50:], NOT_BASE64),
        "trailing newline": (token + "\n", NOT_BASE64),
        "standard alphabet": (token.replace("-", "+").replace("_", "/"), NOT_BASE64),
        "padding dropped": (body, NOT_BASE64),
        "padding added": (token + "==", NOT_BASE64),
        "stray padding bits": (body[:-1] + stray + token[len(body) :], NOT_BASE64),
        "truncated by a block": (token[:-4], UNREADABLE),
        "truncated to a prefix": (token[:100], UNREADABLE),
        "flipped bit": (base64.urlsafe_b64encode(bytes(raw)).decode(), UNREADABLE),
    }


def test_tampered_tokens_of_each_kind_are_refused_with_the_apis_error(
    server: CompactionServer,
) -> None:
    token = issued_token(server)
    client = sdk(server)
    for kind, (text, reason) in tamperings(token).items():
        assert text != token, kind
        item = {"type": "compaction", "id": "cmp_forged", "encrypted_content": text}
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.compact(model="gpt-5", input=[item])
        assert caught.value.status_code == 400, kind
        assert caught.value.body == refusal(reason)["error"], kind
    # the token as issued still opens, on its own; under an id it was not issued with it is
    # refused as the API refuses it
    item = {"type": "compaction", "encrypted_content": token}
    assert client.responses.compact(model="gpt-5", input=[item]).output[-1].type == "compaction"
    with pytest.raises(openai.BadRequestError, match="item_id did not match the target item id"):
        client.responses.compact(model="gpt-5", input=[{**item, "id": "cmp_forged"}])


def test_the_refusal_has_the_shape_of_the_live_apis(
    server: CompactionServer, reference: Path
) -> None:
    recorded = reference / "recorded" / "error-bodies"
    real = json.loads(
        (recorded / "400_invalid_encrypted_content_2026-05_with_reason.json").read_text()
    )
    body = passing_back(issued_token(server)[:-4])
    answer = httpx.post(server.base_url + "/responses/compact", json=body, timeout=30)
    ours = answer.json()
    assert answer.status_code == 400
    assert set(ours["error"]) == set(real["error"])
    assert ours["error"]["type"] == real["error"]["type"]
    assert ours["error"]["code"] == real["error"]["code"]
    # "The encrypted content … could not be verified. Reason: …", the live API's words
    reason = real["error"]["message"].rpartition(" Reason: ")[2]
    assert ours["error"]["message"].endswith(" could not be verified. Reason: " + reason)


# -- the round trip still works --------------------------------------------------------------------


def test_a_compaction_chain_round_trips(server: CompactionServer) -> None:
    client = sdk(server)

    def passed(output: list[Any]) -> list[dict[str, Any]]:
        return [i.model_dump(mode="json", exclude_unset=True, warnings=False) for i in output]

    first = client.responses.compact(model="gpt-5", input=CONVERSATION)
    second = client.responses.compact(
        model="gpt-5", input=[*passed(first.output), {"role": "user", "content": "And 4+4?"}]
    )
    token = second.output[-1].encrypted_content
    assert token.startswith("gAAAAAB") and token != first.output[-1].encrypted_content
    sealed = server.open_token(token)["items"]
    said = [i["content"] if i["role"] == "assistant" else i["content"][0]["text"] for i in sealed]
    assert said == ["What is 2+2?", "2 + 2 = 4.", "And 3+3?", "And 4+4?"]
    # the second compaction goes on through POST /responses, compacting again
    reply = client.responses.create(
        model="gpt-5",
        input=[
            *passed(second.output),
            {"role": "user", "content": "And 5+5?"},
            {"type": "compaction_trigger"},
        ],
    )
    assert reply.output_text == "Echo: And 5+5?"
    assert [i.type for i in reply.output] == ["message", "compaction"]
    third = server.open_token(reply.output[-1].encrypted_content)["items"]
    assert [i.get("id") for i in third[:4]] == [i.get("id") for i in sealed]
    assert third[-1]["content"][0]["text"] == "Echo: And 5+5?"
