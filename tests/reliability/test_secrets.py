"""Secrets never reach disk: a matrix of placements x key kinds, recorded over real HTTP.

Every placement is recorded through ``use_cassette`` against a loopback server, once per key
kind (OpenAI project key, Azure 32-hex key, Bifrost virtual key, JWT). Filtered placements (the
default credential headers and query parameters, and what is configured on top) must write a
cassette holding the placeholder instead; every other placement must refuse the write with a
:class:`SecretFound` naming where the secret sits, never the secret itself. After each
placement every byte under the test's directory is searched for every key, raw and encoded.
The same placements go through the pytest plugin (a pytest run of its own, keys passed in the
environment so no test file holds one) and through the recording proxy; and a replay miss, whose
message quotes the request, must not quote a key either.

``COMPACTION_RELIABILITY_SCALE=N`` draws N fresh keys per kind (default 1).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
import string
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import httpx2
import pytest
from support.loopback import Loopback, QuietHandler

from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.cassette._redact import (
    DEFAULT_FILTER_HEADERS,
    DEFAULT_FILTER_QUERY,
    SecretFound,
)
from pytest_compaction.cassette._secrets import PLACEHOLDER
from pytest_compaction.replay._recorder import ReplayError, use_cassette

brotli = pytest.importorskip("brotli")

SCALE = max(1, int(os.environ.get("COMPACTION_RELIABILITY_SCALE", "1")))
KINDS = ("openai", "azure", "bifrost", "jwt")
# Shared clients: building one loads the CA bundle, which costs more than a recording.
HX = httpx.Client()
HX2 = httpx2.Client()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_key(kind: str, rng: random.Random) -> str:
    """A key shaped like the real ones (random, so it is in no file before the test)."""
    alphabet = string.ascii_letters + string.digits
    if kind == "openai":
        body = "".join(rng.choice(alphabet + "-_") for _ in range(120))
        return "sk-proj-" + rng.choice(alphabet) + body + rng.choice(alphabet)
    if kind == "azure":
        return "".join(rng.choice("0123456789abcdef") for _ in range(32))
    if kind == "bifrost":
        return "sk-bf-" + str(uuid.UUID(int=rng.getrandbits(128), version=4))
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = {"sub": f"user-{rng.randrange(10**6)}", "iat": 1767225600, "scope": "api"}
    signature = _b64url(rng.randbytes(32))
    return f"{header}.{_b64url(json.dumps(payload).encode())}.{signature}"


def encodings_of(key: str) -> list[bytes]:
    """The forms a key could take in a file: raw, URL-quoted, JSON-escaped, base64 at 3 offsets."""
    forms = {key.encode(), quote(key, safe="").encode(), json.dumps(key)[1:-1].encode()}
    for offset in range(3):
        chunk = key.encode()[offset:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        forms.add(base64.b64encode(chunk)[1:-1])
        forms.add(base64.urlsafe_b64encode(chunk)[1:-1])
    return sorted(forms)


def leaks(root: Path, keys: list[str]) -> list[str]:
    """Every (file, key kind) pair where a key appears, in any form, anywhere under root."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for key in keys:
            if any(form in data for form in encodings_of(key)):
                found.append(f"{path.relative_to(root)}: {key[:6]}...")
    return found


# ---------------------------------------------------------------------------------------------
# The loopback server: each placement registers the answer for its own path.


@dataclass
class Answer:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b'{"object": "other"}'
    content_type: str = "application/json"


class Server:
    def __init__(self) -> None:
        self.routes: dict[str, Answer] = {}
        self.seen: list[tuple[str, str]] = []
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self._answer()

            def _answer(self) -> None:
                owner.seen.append((self.command, self.path))
                answer = owner.routes.get(self.path.split("?")[0], Answer())
                self.send_response(answer.status)
                self.send_header("content-type", answer.content_type)
                self.send_header("content-length", str(len(answer.body)))
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

        self.loopback = Loopback(Handler, poll_interval=0.05)
        self.origin = self.loopback.origin

    def close(self) -> None:
        self.loopback.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    try:
        yield srv
    finally:
        srv.close()


# ---------------------------------------------------------------------------------------------
# Placements


@dataclass
class Ctx:
    server: Server
    route: str  # this placement's own path
    key: str
    base: str | None = None  # where clients send requests (a proxy), else the server itself

    @property
    def url(self) -> str:
        return (self.base or self.server.origin) + self.route

    def answer(self, **kwargs: Any) -> None:
        self.server.routes[self.route] = Answer(**kwargs)


Action = Callable[[Ctx], None]


@dataclass
class Placement:
    name: str
    action: Action
    where: tuple[str, ...] = ()  # empty: filtered silently; else each must be a finding
    options: dict[str, Any] = field(default_factory=dict)
    kinds: tuple[str, ...] = KINDS


def _post_json(value: Any, **headers: str) -> Action:
    def act(c: Ctx) -> None:
        body = json.loads(json.dumps(value).replace("KEY", c.key))
        HX.post(c.url, json=body, headers=headers)

    return act


def _respond(
    body: Any, *, status: int = 200, coding: str | None = None, ctype: str | None = None
) -> Action:
    def act(c: Ctx) -> None:
        if isinstance(body, str):
            raw = body.replace("KEY", c.key).encode()
        else:
            raw = json.dumps(body).replace("KEY", c.key).encode()
        headers = []
        if coding is not None:
            raw = {"gzip": gzip.compress, "br": brotli.compress, "deflate": zlib.compress}[coding](
                raw
            )
            headers.append(("content-encoding", coding))
        content_type = ctype or ("application/json" if not isinstance(body, str) else "text/plain")
        c.answer(status=status, headers=headers, body=raw, content_type=content_type)
        HX2.get(c.url) if status < 300 else HX.get(c.url)

    return act


def _request_header(name: str, template: str) -> Action:
    def act(c: Ctx) -> None:
        HX.post(c.url, json={"q": 1}, headers={name: template.replace("KEY", c.key)})

    return act


def _response_header(name: str, template: str) -> Action:
    def act(c: Ctx) -> None:
        c.answer(headers=[(name, template.replace("KEY", c.key))])
        HX.get(c.url)

    return act


def _query(query: str) -> Action:
    def act(c: Ctx) -> None:
        HX.get(c.url + "?" + query.replace("KEY", quote(c.key, safe="")))

    return act


def _encoded_request(coding: str, value: Any) -> Action:
    def act(c: Ctx) -> None:
        raw = json.dumps(value).replace("KEY", c.key).encode()
        packed = gzip.compress(raw) if coding == "gzip" else brotli.compress(raw)
        HX.post(
            c.url,
            content=packed,
            headers={"content-encoding": coding, "content-type": "application/json"},
        )

    return act


def _request_text(text: str, ctype: str) -> Action:
    def act(c: Ctx) -> None:
        HX.post(c.url, content=text.replace("KEY", c.key).encode(), headers={"content-type": ctype})

    return act


def _redirect(location: str, *, follow: bool, status: int = 307) -> Action:
    def act(c: Ctx) -> None:
        target = location.replace("KEY", quote(c.key, safe="")).replace("ORIGIN", c.server.origin)
        c.answer(status=status, headers=[("location", target)], body=b"")
        HX.post(c.url, json={"q": 1}, follow_redirects=follow)

    return act


def _userinfo(c: Ctx) -> None:
    origin = c.server.origin.replace("http://", f"http://user:{quote(c.key, safe='')}@")
    HX.get(origin + c.route)


def _json_escaped(c: Ctx) -> None:
    # The key's first character written as a JSON \\u escape: not in the raw request bytes.
    escaped = f"\\u{ord(c.key[0]):04x}" + c.key[1:]
    body = '{"input": [{"role": "user", "content": "my api key: ' + escaped + '"}]}'
    HX.post(c.url, content=body.encode(), headers={"content-type": "application/json"})


def _everywhere(c: Ctx) -> None:
    c.answer(headers=[("x-echo", c.key)], body=json.dumps({"echo": {"secret": c.key}}).encode())
    HX.post(
        c.url + "?token=" + quote(c.key, safe=""),
        json={"api_key": c.key},
        headers={"x-custom-auth": c.key},
    )


def _request_header_values(name: str) -> str:
    if "authorization" in name:
        return "Bearer KEY"
    if name == "cookie":
        return "session=KEY; theme=dark"
    return "KEY"


SSE_JSON = (
    "event: response.output_text.delta\n"
    'data: {"type": "response.output_text.delta", "delta": "the api key is KEY"}\n\n'
    'data: {"type": "response.completed"}\n\n'
)
DEEP = {"a": {"b": [{"c": {"d": [{"e": {"f": {"secret": "KEY"}}}]}}]}}
ERROR_401 = {
    "error": {
        "message": "Incorrect API key provided: KEY. You can find your API key at ...",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


FILTERED: list[Placement] = [
    *[
        Placement(f"request header {name}", _request_header(name, _request_header_values(name)))
        for name in DEFAULT_FILTER_HEADERS
    ],
    *[
        Placement(
            f"response header {name}",
            _response_header(name, "session=KEY; Path=/" if "cookie" in name else "KEY"),
        )
        for name in DEFAULT_FILTER_HEADERS
    ],
    *[
        Placement(f"query parameter {name}", _query(f"{name}=KEY&b=1"))
        for name in DEFAULT_FILTER_QUERY
    ],
    Placement(
        "custom filtered header",
        _request_header("x-gateway-token", "KEY"),
        options={"filter_headers": ["x-gateway-token"]},
    ),
    Placement(
        "custom filtered query parameter",
        _query("a=1&sig=KEY"),
        options={"filter_query_parameters": ["sig"]},
    ),
    Placement(
        "307 to absolute URL ?api-key (followed)", _redirect("ORIGIN/v1/b?api-key=KEY", follow=True)
    ),
    Placement("307 to relative URL ?key (followed)", _redirect("/v1/b?x=1&key=KEY", follow=True)),
    Placement(
        "302 to URL ?api_key (not followed)",
        _redirect("/v1/b?api_key=KEY", follow=False, status=302),
    ),
    Placement(
        "content-location with ?subscription-key",
        _response_header("content-location", "/v1/b?subscription-key=KEY"),
    ),
]

REFUSED: list[Placement] = [
    Placement(
        "custom request header",
        _request_header("x-custom-auth", "KEY"),
        ("request header 'x-custom-auth'",),
    ),
    Placement(
        "custom request header, bearer",
        _request_header("x-upstream", "Bearer KEY"),
        ("request header 'x-upstream'",),
    ),
    Placement(
        "custom request header, key inside a longer value",
        _request_header("x-debug", "user=bob; key=KEY; region=eu"),
        ("request header 'x-debug'",),
    ),
    Placement(
        "custom response header",
        _response_header("x-echo-key", "KEY"),
        ("response header 'x-echo-key'",),
    ),
    Placement("query parameter token", _query("token=KEY"), ("request query parameter 'token'",)),
    Placement(
        "query parameter, second", _query("a=1&auth=KEY"), ("request query parameter 'auth'",)
    ),
    Placement(
        "query parameter named like a key",
        _query("openai_api_key=KEY"),
        ("request query parameter 'openai_api_key'",),
    ),
    Placement(
        "key in the URL path",
        lambda c: HX.get(c.url + "/keys/" + c.key + "/usage"),
        ("request uri path",),
    ),
    Placement("request body depth 1", _post_json({"api_key": "KEY"}), ("request body /api_key",)),
    Placement(
        "request body depth 2",
        _post_json({"metadata": {"openai_api_key": "KEY"}}),
        ("request body /metadata/openai_api_key",),
    ),
    Placement(
        "request body depth 3, message text",
        _post_json({"model": "m", "input": [{"role": "user", "content": "my api key is KEY"}]}),
        ("request body /input/0/content",),
    ),
    Placement(
        "request body depth 5, content part",
        _post_json(
            {
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "key=KEY"}],
                    }
                ]
            }
        ),
        ("request body /input/0/content/0/text",),
    ),
    Placement("request body depth 9", _post_json(DEEP), ("request body /a/b/0/c/d/0/e/f/secret",)),
    Placement(
        "request body camelCase field",
        _post_json({"config": {"azureApiKey": "KEY"}}),
        ("request body /config/azureApiKey",),
    ),
    Placement(
        "request body list under a key field",
        _post_json({"credentials": ["KEY"]}),
        ("request body /credentials/0",),
    ),
    Placement(
        "request body property name",
        _post_json({"api_keys": {"KEY": "primary"}}),
        ("request body /api_keys/<secret-looking name>",),
    ),
    Placement(
        "request body top-level array", _post_json([{"secret": "KEY"}]), ("request body /0/secret",)
    ),
    Placement(
        "request body URL with a key",
        _post_json({"callback": "https://hooks.example/x?key=KEY"}),
        ("request body /callback",),
    ),
    Placement("request body JSON-escaped", _json_escaped, ("request body /input/0/content",)),
    Placement(
        "request body gzip",
        _encoded_request("gzip", {"input": [{"role": "user", "content": "api_key=KEY"}]}),
        ("request body /input/0/content",),
    ),
    Placement(
        "request body br",
        _encoded_request("br", {"input": [{"role": "user", "content": "api_key=KEY"}]}),
        ("request body /input/0/content",),
    ),
    Placement(
        "request text body",
        _request_text("credentials: KEY\n", "text/plain"),
        ("request body (text) line 1",),
    ),
    Placement(
        "request form body",
        _request_text("grant_type=client&api_key=KEY", "application/x-www-form-urlencoded"),
        ("request body (text) line 1",),
    ),
    Placement(
        "request NDJSON body, line 3",
        _request_text('{"a": 1}\n{"b": 2}\n{"secret": "token KEY"}\n', "application/x-ndjson"),
        ("request body (text) line 3",),
    ),
    Placement("response body depth 1", _respond({"api_key": "KEY"}), ("response body /api_key",)),
    Placement(
        "response body depth 4",
        _respond({"output": [{"content": [{"text": "your key: KEY"}]}]}),
        ("response body /output/0/content/0/text",),
    ),
    Placement("response body depth 9", _respond(DEEP), ("response body /a/b/0/c/d/0/e/f/secret",)),
    Placement(
        "response body gzip",
        _respond({"data": {"api_key": "KEY"}}, coding="gzip"),
        ("response body /data/api_key",),
    ),
    Placement(
        "response body br",
        _respond({"data": {"secret": "KEY"}}, coding="br"),
        ("response body /data/secret",),
    ),
    Placement(
        "response body deflate",
        _respond({"password": "KEY"}, coding="deflate"),
        ("response body /password",),
    ),
    Placement(
        "response text body gzip",
        _respond("token: KEY\n", coding="gzip"),
        ("response body (text) line 1",),
    ),
    Placement(
        "SSE data JSON",
        _respond(SSE_JSON, ctype="text/event-stream"),
        ("response body line 2 /delta",),
    ),
    Placement(
        "SSE data JSON, br",
        _respond(SSE_JSON, coding="br", ctype="text/event-stream"),
        ("response body line 2 /delta",),
    ),
    Placement(
        "SSE data JSON, deep",
        _respond(
            'data: {"response": {"output": [{"auth": {"api_key": "KEY"}}]}}\n\n',
            ctype="text/event-stream",
        ),
        ("response body line 1 /response/output/0/auth/api_key",),
    ),
    Placement(
        "SSE data text",
        _respond("data: secret KEY\n\n", ctype="text/event-stream"),
        ("response body line 1 /",),
    ),
    Placement(
        "SSE comment line",
        _respond(": keep-alive token KEY\n\ndata: {}\n\n", ctype="text/event-stream"),
        ("response body line 1",),
    ),
    Placement(
        "SSE id line",
        _respond("id: KEY\ndata: {}\n\n", ctype="text/event-stream"),
        ("response body line 1",),
        kinds=("openai", "bifrost", "jwt"),  # a bare hex id is not a key (see README)
    ),
    Placement("401 error body", _respond(ERROR_401, status=401), ("response body /error/message",)),
    Placement(
        "400 error echoing the request",
        _respond(
            {"error": {"message": "bad", "param": "input", "received": {"api_key": "KEY"}}},
            status=400,
        ),
        ("response body /error/received/api_key",),
    ),
    Placement(
        "500 text error",
        _respond("upstream auth failed for key KEY", status=500),
        ("response body (text) line 1",),
    ),
    Placement(
        "502 HTML error",
        _respond(
            "<html><body><p>Bad gateway</p><!-- key=KEY --></body></html>",
            status=502,
            ctype="text/html",
        ),
        ("response body (text) line 1",),
    ),
    Placement(
        "429 with a key in a header",
        lambda c: (c.answer(status=429, headers=[("x-ratelimit-key", c.key)]), HX.get(c.url)),
        ("response header 'x-ratelimit-key'",),
    ),
    Placement(
        "307 to URL ?token (not followed)",
        _redirect("/v1/b?token=KEY", follow=False),
        ("response header 'location' query parameter 'token'",),
    ),
    Placement(
        "307 to URL ?token (followed)",
        _redirect("ORIGIN/v1/b?token=KEY", follow=True),
        (
            "exchange 0 response header 'location' query parameter 'token'",
            "exchange 1 request query parameter 'token'",
        ),
    ),
    Placement(
        "302 to a URL with the key in its path",
        _redirect("/v1/keys/KEY/usage", follow=False, status=302),
        ("response header 'location'",),
    ),
    Placement("password in URL userinfo", _userinfo, ("request uri (user:password)",)),
    Placement(
        "header, query and body at once",
        _everywhere,
        (
            "request header 'x-custom-auth'",
            "request query parameter 'token'",
            "request body /api_key",
            "response header 'x-echo'",
            "response body /echo/secret",
        ),
    ),
]
PLACEMENTS = FILTERED + REFUSED


def _keys() -> dict[str, list[str]]:
    rng = random.Random(int(os.environ.get("COMPACTION_RELIABILITY_SEED", "20260101")))
    return {kind: [make_key(kind, rng) for _ in range(SCALE)] for kind in KINDS}


KEYS = _keys()


def test_the_matrix_is_at_least_fifty_placements_by_four_key_kinds() -> None:
    names = [p.name for p in PLACEMENTS]
    assert len(set(names)) == len(names)
    assert len(PLACEMENTS) >= 50
    cases = sum(len(p.kinds) for p in PLACEMENTS)
    assert cases >= 4 * 50 - 10
    assert {p.name for p in FILTERED} >= {f"request header {h}" for h in DEFAULT_FILTER_HEADERS}


@pytest.mark.parametrize("placement", PLACEMENTS, ids=[p.name for p in PLACEMENTS])
def test_no_secret_reaches_disk(tmp_path: Path, server: Server, placement: Placement) -> None:
    used: list[str] = []
    slug = "".join(ch if ch.isalnum() else "-" for ch in placement.name)
    for kind in placement.kinds:
        for n, key in enumerate(KEYS[kind]):
            used.append(key)
            path = tmp_path / kind / f"{n}.yaml"
            ctx = Ctx(server, f"/v1/{slug}/{kind}{n}", key)
            HX.cookies.clear()
            HX2.cookies.clear()
            if not placement.where:
                with use_cassette(path, record_mode="once", **placement.options) as rec:
                    placement.action(ctx)
                assert rec.recorded >= 1, kind
                raw = path.read_bytes()
                assert PLACEHOLDER.encode() in raw, kind
                assert load_cassette(path).exchanges, kind
                continue
            with (
                pytest.raises(ReplayError) as info,
                use_cassette(path, record_mode="once", **placement.options),
            ):
                placement.action(ctx)
            cause = info.value.__cause__
            assert isinstance(cause, SecretFound), (kind, info.value)
            found = "\n".join(str(f) for f in cause.findings)
            for where in placement.where:
                assert where in found, (kind, where, found)
            message = str(info.value)
            assert f"cassette {path} was not written" in message
            assert all(form.decode() not in message for form in encodings_of(key))
            assert not path.parent.exists() or not any(path.parent.iterdir()), kind
    assert leaks(tmp_path, used) == []


# ---------------------------------------------------------------------------------------------
# The same through the pytest plugin, in a pytest run of its own.

PLUGIN_TESTS = """
import json
import os

import httpx
import pytest

ORIGIN = os.environ["SECRETS_ORIGIN"]
KEYS = json.loads(os.environ["SECRETS_KEYS"])


@pytest.fixture(params=sorted(KEYS))
def key(request):
    return KEYS[request.param]


@pytest.mark.compaction
def test_authorization_is_filtered(key):
    httpx.post(ORIGIN + "/v1/plain", json={"q": 1}, headers={"authorization": "Bearer " + key})


@pytest.mark.compaction
def test_api_key_query_is_filtered(key):
    httpx.get(ORIGIN + "/v1/plain", params={"api-key": key})


@pytest.mark.compaction
def test_key_in_message(key):
    body = {"model": "m", "input": [{"role": "user", "content": "my api key is " + key}]}
    httpx.post(ORIGIN + "/v1/plain", json=body)


@pytest.mark.compaction
def test_key_in_custom_header(key):
    httpx.get(ORIGIN + "/v1/plain", headers={"x-custom-auth": key})


@pytest.mark.compaction
def test_key_in_error_body(key):
    httpx.get(ORIGIN + "/v1/echo-error", headers={"x-echo": key})
"""


def test_through_the_plugin_filtered_pass_refused_fail_with_the_place(
    pytester: pytest.Pytester, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = {kind: values[0] for kind, values in KEYS.items()}
    monkeypatch.setenv("SECRETS_ORIGIN", server.origin)
    monkeypatch.setenv("SECRETS_KEYS", json.dumps(keys))
    server.routes["/v1/echo-error"] = Answer(
        status=401, body=json.dumps({"error": {"message": "key " + keys["openai"]}}).encode()
    )
    pytester.makepyfile(test_plugin_secrets=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("--compaction-record=once", "-p", "no:cacheprovider")
    # A refused write is found when the cassette is saved, at teardown: each refused test
    # passes its call and errors in teardown with the message.
    result.assert_outcomes(passed=20, errors=12)
    # The error reports only: under CI=1 pytest repeats each message in its short summary.
    full = result.stdout.str()
    out = full.split("short test summary info")[0]
    for name in ("test_key_in_message", "test_key_in_custom_header", "test_key_in_error_body"):
        for kind in KINDS:
            result.stdout.fnmatch_lines([f"*ERROR at teardown of {name}[[]{kind}[]]*"])
    assert out.count("request body /input/0/content: looks like") == 4
    assert out.count("request header 'x-custom-auth': looks like") == 4
    assert out.count("response body /error/message: looks like") == 4
    assert leaks(pytester.path, list(keys.values())) == []
    assert all(form.decode() not in full for key in keys.values() for form in encodings_of(key))
    written = sorted(p.name for p in (pytester.path / "cassettes").rglob("*.yaml"))
    assert len(written) == 8
    assert all(
        n.startswith(("test_authorization_is_filtered", "test_api_key_query")) for n in written
    )


# ---------------------------------------------------------------------------------------------
# The same through the recording proxy (clients vcrpy cannot see): one key kind per placement.

VIA_PROXY = [
    p for p in PLACEMENTS if not any(word in p.name for word in ("307", "302", "userinfo"))
]


@pytest.mark.parametrize("index", range(len(VIA_PROXY)), ids=[p.name for p in VIA_PROXY])
def test_no_secret_reaches_disk_through_the_proxy(
    tmp_path: Path, server: Server, index: int
) -> None:
    proxy_module = pytest.importorskip("pytest_compaction.proxy._proxy")
    placement = VIA_PROXY[index]
    kind = placement.kinds[index % len(placement.kinds)]
    key = KEYS[kind][0]
    path = tmp_path / "c.yaml"
    proxy = proxy_module.CompactionProxy(
        server.origin,
        path,
        record_mode="once",
        filter_headers=placement.options.get("filter_headers", ()),
        filter_query_parameters=placement.options.get("filter_query_parameters", ()),
    )
    HX.cookies.clear()
    with proxy:
        placement.action(Ctx(server, f"/v1/proxy-{index}", key, base=proxy.url))
    failure = proxy.failure() or ""
    assert all(form.decode() not in failure for form in encodings_of(key))
    if placement.where:
        for where in placement.where:
            assert where in failure, (kind, where, failure)
        assert "was not written" in failure
    else:
        # Written, with the placeholder (or without the header: a proxy drops hop-by-hop ones).
        assert failure == "", failure
        assert load_cassette(path).exchanges
    assert leaks(tmp_path, [key]) == []


# ---------------------------------------------------------------------------------------------
# Messages quote requests: a replay miss must not print the key to the (often public) test log.


def test_a_replay_miss_explains_without_quoting_keys(tmp_path: Path, server: Server) -> None:
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once"):
        HX.post(server.origin + "/v1/miss", json={"q": 1})
    for kind in KINDS:
        key = KEYS[kind][0]
        quoted = quote(key, safe="")
        attempts: list[tuple[str, str, Any]] = [
            ("GET", f"{server.origin}/v1/miss?api-key={quoted}", None),
            ("GET", f"{server.origin}/v1/miss?token={quoted}", None),
            ("GET", f"{server.origin}/v1/keys/{key}/miss", None),
            ("POST", f"{server.origin}/v1/miss", {"q": 1, "note": f"api key {key}"}),
        ]
        for method, url, body in attempts:
            with pytest.raises(ReplayError) as info, use_cassette(path, record_mode="none"):
                HX.request(method, url, json=body)
            message = str(info.value)
            assert "cannot be replayed" in message
            assert all(form.decode() not in message for form in encodings_of(key)), message
