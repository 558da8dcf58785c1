"""Secrets in every form they take on the wire stop the write, recorded over real HTTP.

Each case records through ``use_cassette`` against a loopback server and must fail with a
:class:`SecretFound` naming the place (never the value), leave no cassette, and leave the key in
no form (raw, percent-encoded, JSON-escaped, base64 at each offset) in any file. The classes:
keys behind an escape, an encoding or an identifier; other vendors' keys and fields named like
a key; the credentials the client really used, whatever their shape; and the bytes a scan of
JSON strings alone misses (the status reason, keys split across stream deltas, UTF-16 and
compressed bodies without a content-encoding). Beside them, real-looking traffic that holds
no secret (long encrypted_content, token counts, cache keys, request ids) is still recorded.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import string
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import httpx2
import openai
import pytest
from conftest import compaction_body
from support.loopback import Loopback, QuietHandler

from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.cassette._redact import SecretFound
from pytest_compaction.replay._recorder import ReplayError, use_cassette

brotli = pytest.importorskip("brotli")
zstandard = pytest.importorskip("zstandard")

RNG = random.Random(1515)
ALNUM = string.ascii_letters + string.digits


def _pick(alphabet: str, n: int) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def _shaped(n: int) -> str:
    """Random letters and digits, both present (a credential's shape, no vendor prefix)."""
    return _pick(string.ascii_letters, 2) + _pick(ALNUM, n - 4) + _pick(string.digits, 2)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


SK = "sk-proj-" + _pick(ALNUM, 1) + _pick(ALNUM + "-_", 118) + _pick(ALNUM, 1)
JWT = ".".join(
    (
        _b64url(b'{"alg":"HS256","typ":"JWT"}'),
        _b64url(json.dumps({"sub": f"user-{RNG.randrange(10**6)}", "iat": 1767225600}).encode()),
        _b64url(RNG.randbytes(32)),
    )
)
VENDOR_KEYS = {
    "Google": "AIza" + _pick(ALNUM + "-_", 35),
    "AWS access key id": "AKIA" + _pick(string.ascii_uppercase + string.digits, 16),
    "AWS temporary key id": "ASIA" + _pick(string.ascii_uppercase + string.digits, 16),
    "GitHub classic": "ghp_" + _pick(ALNUM, 36),
    "GitHub OAuth": "gho_" + _pick(ALNUM, 36),
    "GitHub app": "ghs_" + _pick(ALNUM, 36),
    "GitHub fine-grained": "github_pat_" + _pick(ALNUM, 22) + "_" + _pick(ALNUM, 59),
    "Stripe": "sk_live_" + _pick(ALNUM, 24),
    "Stripe restricted": "rk_live_" + _pick(ALNUM, 24),
    "Slack": f"xoxb-{RNG.randrange(10**11)}-{RNG.randrange(10**12)}-{_pick(ALNUM, 24)}",
    "Hugging Face": "hf_" + _pick(ALNUM, 34),
    "GitLab": "glpat-" + _pick(ALNUM + "-_", 20),
    "Anthropic": "sk-ant-api03-" + _pick(ALNUM + "-_", 93) + "AA",
    "Azure identifiable": (
        _pick(ALNUM, 52)
        + "JQQJ99"
        + _pick(ALNUM, 1)
        + _pick("ABCDEFGHIJKL", 1)
        + _pick(ALNUM, 16)
        + _pick(string.ascii_letters, 1)
        + _pick(ALNUM, 7)
    ),
}
AWS_SECRET = _shaped(40)
AZURE_84 = _shaped(84)
SAS_SIG = base64.b64encode(RNG.randbytes(32)).decode()
AMZ_TOKEN = "IQoJb3JpZ2luX2VjE" + _pick(ALNUM + "/+", 300) + "=="
FIELD_VALUE = _shaped(40)
# A credential the client sends that looks like no key at all.
ODD = 'vault/Pass+word="' + _pick(string.digits, 6) + '"'
ENV_ONLY = "env-only " + _pick(string.ascii_lowercase, 12)

ALL_SECRETS = [SK, JWT, *VENDOR_KEYS.values(), AWS_SECRET, AZURE_84, SAS_SIG, AMZ_TOKEN]
ALL_SECRETS += [FIELD_VALUE, ODD, ENV_ONLY]


def encodings_of(secret: str) -> list[bytes]:
    """The forms a secret could take in a file: raw, URL-quoted, JSON-escaped, base64."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    raw = secret.encode()
    for offset in range(3):
        chunk = raw[offset:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        forms.add(base64.b64encode(chunk).decode()[1:-1])
        forms.add(base64.urlsafe_b64encode(chunk).decode()[1:-1])
    return sorted(form.encode() for form in forms)


def leaks(root: Path) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [
            f"{path.name}: {s[:6]}..."
            for s in ALL_SECRETS
            if any(f in data for f in encodings_of(s))
        ]
    return found


# ---------------------------------------------------------------------------------------------
# The loopback server: each case registers the answer for its own path.


@dataclass
class Answer:
    status: int = 200
    reason: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b'{"object": "other"}'
    content_type: str = "application/json"


class Server:
    def __init__(self) -> None:
        self.routes: dict[str, Answer] = {}
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self._answer()

            def _answer(self) -> None:
                answer = owner.routes.get(self.path.split("?")[0], Answer())
                self.send_response(answer.status, answer.reason)
                self.send_header("content-type", answer.content_type)
                self.send_header("content-length", str(len(answer.body)))
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

        self.loopback = Loopback(Handler, poll_interval=0.05)
        self.origin = self.loopback.origin


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    try:
        yield srv
    finally:
        srv.loopback.close()


@dataclass
class Ctx:
    server: Server
    route: str

    @property
    def url(self) -> str:
        return self.server.origin + self.route

    def answer(self, **kwargs: Any) -> None:
        self.server.routes[self.route] = Answer(**kwargs)


@dataclass
class Case:
    name: str
    action: Callable[[Ctx], Any]
    where: str  # the start of the place a finding must name


def _post(body: Any, **headers: str) -> Callable[[Ctx], Any]:
    return lambda c: httpx.post(c.url, json=body, headers=headers)


def _post_raw(content: bytes, ctype: str) -> Callable[[Ctx], Any]:
    return lambda c: httpx.post(c.url, content=content, headers={"content-type": ctype})


def _respond(body: bytes, ctype: str = "application/json", **answer: Any) -> Callable[[Ctx], Any]:
    def act(c: Ctx) -> None:
        c.answer(body=body, content_type=ctype, **answer)
        httpx2.get(c.url)

    return act


def _message(text: str) -> dict[str, Any]:
    return {"model": "gpt-5.4", "input": [{"role": "user", "content": text}]}


def _item(item: dict[str, Any]) -> dict[str, Any]:
    return {"model": "gpt-5.4", "input": [item]}


def _escaped_char(key: str, at: int) -> str:
    return key[:at] + f"\\u{ord(key[at]):04x}" + key[at + 1 :]


def _sse(events: list[dict[str, Any]]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# ---------------------------------------------------------------------------------------------
# 1. Keys behind an escape, an encoding or an identifier

ESCAPED = [
    Case(
        "function_call arguments: a key after \\n in a JSON string",
        _post(
            _item(
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "write_env",
                    "arguments": json.dumps({"path": ".env", "text": "HOME=/root\n" + SK + "\n"}),
                }
            )
        ),
        "request body /input/0/arguments",
    ),
    Case(
        "function_call_output: a JSON string holding a JSON string holding the key",
        _post(
            _item(
                {
                    "type": "function_call_output",
                    "call_id": "call_1",
                    "output": json.dumps({"stdout": json.dumps({"env": "PATH=/bin\n" + SK})}),
                }
            )
        ),
        "request body /input/0/output",
    ),
    Case(
        "a \\u escape inside a key in an encoded string",
        _post(
            _item(
                {
                    "type": "function_call_output",
                    "call_id": "call_1",
                    "output": '{"note": "' + _escaped_char(SK, 3) + '"}',
                }
            )
        ),
        "request body /input/0/output",
    ),
    Case(
        "a key after a literal \\t in a message",
        _post(_message("the config reads\\t" + SK)),
        "request body /input/0/content",
    ),
    Case(
        "a JWT after \\n in a JSON string",
        _post(_item({"type": "function_call", "arguments": json.dumps({"lines": "a\n" + JWT})})),
        "request body /input/0/arguments",
    ),
    Case(
        "form body, key after %20",
        _post_raw(f"note=my%20key%20{quote(SK)}&x=1".encode(), "application/x-www-form-urlencoded"),
        "request body",
    ),
    Case(
        "form body, key after %3D",
        _post_raw(
            f"config=OPENAI_API_KEY%3D{quote(SK)}".encode(), "application/x-www-form-urlencoded"
        ),
        "request body",
    ),
    Case(
        "URL path, key after %20",
        lambda c: httpx.get(c.url + "/notes/key%20" + SK),
        "request uri path",
    ),
    Case(
        "redirect location, key after %3D in its path",
        lambda c: (
            c.answer(status=302, headers=[("location", "/login/next%3D" + SK)], body=b""),
            httpx.get(c.url, follow_redirects=False),
        ),
        "response header 'location'",
    ),
    Case(
        "double-encoded query (%253D)",
        lambda c: httpx.get(c.url + "?next=%252Fv1%253Fkey%253D" + SK),
        "request query parameter 'next'",
    ),
    Case(
        "a key glued behind resp_",
        _respond(json.dumps({"id": "resp_" + SK, "object": "response"}).encode()),
        "response body /id",
    ),
    Case(
        "a key glued behind an identifier in a header",
        lambda c: httpx.post(c.url, json={"q": 1}, headers={"x-debug": "OPENAI_KEY_" + SK}),
        "request header 'x-debug'",
    ),
]

# ---------------------------------------------------------------------------------------------
# 2. Other vendors' keys, and fields named like a key

VENDORS = [
    *[
        Case(
            f"{vendor} key in a message",
            _post(_message(f"please use {key} for the call")),
            "request body /input/0/content",
        )
        for vendor, key in VENDOR_KEYS.items()
    ],
    Case(
        "AWS secret under aws_secret_access_key",
        _post({"metadata": {"aws_secret_access_key": AWS_SECRET}}),
        "request body /metadata/aws_secret_access_key",
    ),
    Case(
        "AWS secret under SecretAccessKey in a response",
        _respond(json.dumps({"Result": {"SecretAccessKey": AWS_SECRET}}).encode()),
        "response body /Result/SecretAccessKey",
    ),
    Case(
        "Azure 84-character key in a custom header",
        lambda c: httpx.post(c.url, json={"q": 1}, headers={"x-gateway": AZURE_84}),
        "request header 'x-gateway'",
    ),
    Case(
        "SAS signature in a query",
        lambda c: httpx.get(c.url + "?sv=2022-11-02&sr=b&sig=" + quote(SAS_SIG, safe="")),
        "request query parameter 'sig'",
    ),
    Case(
        "x-amz-security-token header",
        lambda c: httpx.get(c.url, headers={"x-amz-security-token": AMZ_TOKEN}),
        "request header 'x-amz-security-token'",
    ),
    *[
        Case(
            f"a field named {name}",
            _post({"metadata": {name: FIELD_VALUE}}),
            f"request body /metadata/{name}",
        )
        for name in ("token", "key", "pat", "accessKey", "client_key")
    ],
    Case(
        "a name like a key assigned in a text",
        _post(_message(f"set DEPLOY_TOKEN={FIELD_VALUE} in the CI settings")),
        "request body /input/0/content",
    ),
]

# ---------------------------------------------------------------------------------------------
# 3. The credentials the client used, whatever their shape


def _echo(body: bytes, ctype: str = "text/plain") -> Callable[[Ctx], Any]:
    def act(c: Ctx) -> None:
        c.answer(body=body, content_type=ctype)
        httpx.get(c.url, headers={"authorization": "Bearer " + ODD})

    return act


def _b64_echo(encode: Callable[[bytes], bytes], shift: int) -> Callable[[Ctx], Any]:
    return _echo(b"blob: " + encode(b"x" * shift + ODD.encode() + b"tail"))


KNOWN = [
    Case("echoed raw in JSON", _echo(json.dumps({"echo": ODD}).encode(), "application/json"), ""),
    Case("echoed percent-encoded", _echo(f"next=/a?c={quote(ODD, safe='')}".encode()), ""),
    Case("echoed quote_plus-encoded", _echo(f"c={quote_plus(ODD)}".encode()), ""),
    Case("echoed JSON-escaped in text", _echo(json.dumps({"c": ODD}).encode()[1:-1]), ""),
    *[
        Case(f"echoed in base64 at offset {shift}", _b64_echo(base64.b64encode, shift), "")
        for shift in range(3)
    ],
    *[
        Case(
            f"echoed in base64url at offset {shift}",
            _b64_echo(base64.urlsafe_b64encode, shift),
            "",
        )
        for shift in range(3)
    ],
    Case(
        "echoed in a response header",
        lambda c: (
            c.answer(headers=[("x-echo", ODD)]),
            httpx.get(c.url, headers={"authorization": "Bearer " + ODD}),
        ),
        "response header 'x-echo'",
    ),
]

# ---------------------------------------------------------------------------------------------
# 4. Every byte


def _deltas(kind: str, text: str) -> bytes:
    events = [{"type": "response.created", "sequence_number": 0}]
    events += [
        {"type": kind, "item_id": "msg_1", "output_index": 0, "delta": piece}
        for piece in _pieces(text, 8)
    ]
    events.append({"type": "response.completed", "sequence_number": 99})
    return _sse(events)


BYTES = [
    Case(
        "the status reason",
        lambda c: (c.answer(reason="OK " + SK), httpx.get(c.url)),
        "response status reason",
    ),
    Case(
        "a key split across output_text deltas",
        _respond(
            _deltas("response.output_text.delta", f"your key is {SK}, keep it"),
            "text/event-stream",
        ),
        "response body (the response.output_text.delta",
    ),
    Case(
        "a key split across function_call_arguments deltas",
        _respond(
            _deltas("response.function_call_arguments.delta", json.dumps({"key": SK})),
            "text/event-stream",
        ),
        "response body (the response.function_call_arguments.delta",
    ),
    Case(
        "a key split across plain data lines",
        _respond(
            "".join(f"data: {p}\n\n" for p in _pieces(f"echo {SK} done", 8)).encode(),
            "text/event-stream",
        ),
        "response body (the data lines joined)",
    ),
    Case(
        "a UTF-16 JSON body",
        _respond(json.dumps({"note": f"key {SK}"}).encode("utf-16"), "application/json"),
        "response body (UTF-16) /note",
    ),
    Case(
        "a UTF-16-LE text body without a byte order mark",
        _respond(f"the key is {SK}\n".encode("utf-16-le"), "text/plain"),
        "response body (UTF-16)",
    ),
    Case(
        "a gzip request body without content-encoding",
        _post_raw(gzip.compress(json.dumps({"note": SK}).encode()), "application/json"),
        "request body (gzip-compressed) /note",
    ),
    Case(
        "a zlib response body without content-encoding",
        _respond(zlib.compress(json.dumps({"note": SK}).encode())),
        "response body (deflate-compressed) /note",
    ),
    Case(
        "a zstd response body without content-encoding",
        _respond(zstandard.ZstdCompressor().compress(json.dumps({"note": SK}).encode())),
        "response body (zstd-compressed) /note",
    ),
    Case(
        "a brotli response body without content-encoding",
        _respond(brotli.compress(json.dumps({"note": SK}).encode())),
        "response body (br-compressed) /note",
    ),
]

CASES = [*ESCAPED, *VENDORS, *KNOWN, *BYTES]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_write_is_refused(tmp_path: Path, server: Server, case: Case) -> None:
    slug = "".join(ch if ch.isalnum() else "-" for ch in case.name)
    path = tmp_path / "c.yaml"
    with pytest.raises(ReplayError) as info, use_cassette(path, record_mode="once"):
        case.action(Ctx(server, f"/v1/{slug}"))
    cause = info.value.__cause__
    assert isinstance(cause, SecretFound), info.value
    found = "\n".join(str(f) for f in cause.findings)
    assert case.where in found, found
    message = str(info.value)
    assert f"cassette {path} was not written" in message
    assert not any(form.decode() in message for s in ALL_SECRETS for form in encodings_of(s))
    assert not path.exists()
    assert leaks(tmp_path) == []


def test_a_credential_from_the_environment_is_searched_for(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_ONLY)
    ctx = Ctx(server, "/v1/env-echo")
    ctx.answer(body=json.dumps({"note": f"hello {ENV_ONLY}"}).encode())
    path = tmp_path / "c.yaml"
    with pytest.raises(ReplayError) as info, use_cassette(path, record_mode="once"):
        httpx.get(ctx.url)
    assert isinstance(info.value.__cause__, SecretFound)
    assert "response body /note" in str(info.value)
    assert not path.exists() and leaks(tmp_path) == []


def test_a_key_sent_through_the_sdk_in_a_nested_tool_output_is_refused(
    tmp_path: Path, server: Server
) -> None:
    ctx = Ctx(server, "/v1/responses/compact")
    ctx.answer(body=json.dumps(compaction_body({"input": []}, 1)).encode())
    client = openai.OpenAI(api_key="sk-test-" + "0" * 24, base_url=server.origin + "/v1")
    output = json.dumps({"stdout": json.dumps({"env": "A=1\n" + SK})})
    path = tmp_path / "c.yaml"
    with pytest.raises(ReplayError) as info, use_cassette(path, record_mode="once"):
        client.responses.compact(
            model="gpt-5.4",
            input=[{"type": "function_call_output", "call_id": "call_1", "output": output}],
        )
    assert "request body /input/0/output" in str(info.value)
    assert not path.exists() and leaks(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# What holds no secret is still recorded


def _token(size: int) -> str:
    return "gAAAAAB" + base64.urlsafe_b64encode(RNG.randbytes(size)).decode()


def test_real_looking_traffic_without_secrets_is_recorded(tmp_path: Path, server: Server) -> None:
    # Key shapes inside a long base64url token are chance, not keys: "_sk-proj-..." mid-token.
    glued = _token(3000)
    glued = glued[:2000] + "_sk-proj-" + _pick(ALNUM, 40) + glued[2000:]
    response = {
        "id": f"resp_{RNG.getrandbits(192):048x}",
        "object": "response.compaction",
        "output": [{"id": "cmp_1", "type": "compaction", "encrypted_content": glued}],
        "usage": {
            "input_tokens": 250000,
            "input_tokens_details": {"cached_tokens": 1024},
            "output_tokens": 900,
            "output_tokens_details": {"reasoning_tokens": 512},
            "total_tokens": 250900,
        },
        "logprobs": [{"token": "Hello", "logprob": -0.1}, {"token": "_internationalization"}],
    }
    ctx = Ctx(server, "/v1/clean")
    ctx.answer(
        body=json.dumps(response).encode(),
        headers=[
            ("openai-processing-ms", "8123"),
            ("x-request-id", f"req_{RNG.getrandbits(128):032x}"),
        ],
    )
    request = {
        "model": "gpt-5.4",
        "input": [
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": _token(1500)},
            {"role": "user", "content": "count the input_tokens; token_count is 12 and key=3"},
        ],
        "max_output_tokens": 1000,
        "prompt_cache_key": f"task-{RNG.getrandbits(128):032x}",
        "safety_identifier": f"{RNG.getrandbits(256):064x}",
        "metadata": {"key": "author", "token": "hello-world-again", "pat": "src/**/*.py"},
    }
    path = tmp_path / "c.yaml"
    headers = {"idempotency-key": f"stainless-python-retry-{RNG.getrandbits(128):032x}"}
    with use_cassette(path, record_mode="once") as rec:
        httpx.post(ctx.url, json=request, headers=headers)
    assert rec.recorded == 1
    (ex,) = load_cassette(path).exchanges
    assert json.loads(ex.response_body)["output"][0]["encrypted_content"] == glued
    assert json.loads(ex.request_body or b"")["prompt_cache_key"] == request["prompt_cache_key"]
