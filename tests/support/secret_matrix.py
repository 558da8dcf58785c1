"""The secrets matrix: key kinds, the places a key can take in an exchange, and the upstream.

Shared by ``tests/reliability/test_secrets.py`` and the pytest runs it starts (which import this
module from the tests folder), so that the plugin goes through the very placements
``use_cassette`` and the proxy go through.

A :class:`Placement` is an action over real HTTP that puts the key somewhere: a header, a query
parameter, a body (raw, escaped, encoded, nested, compressed without saying so, UTF-16, split
over stream events), a reason phrase, the cassette's metadata. ``where`` empty means the place
is filtered by name (the cassette is written with the placeholder); otherwise the write must be
refused, and each ``where`` text must be in the refusal's list of places. A
:class:`DocumentPlacement` edits a stock vcrpy cassette instead, for ``scan --fix``.
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import httpx2
import yaml

from pytest_compaction.cassette._redact import DEFAULT_FILTER_HEADERS, DEFAULT_FILTER_QUERY
from support.loopback import Loopback, QuietHandler

SCALE = max(1, int(os.environ.get("COMPACTION_RELIABILITY_SCALE", "1")))
SEED = int(os.environ.get("COMPACTION_RELIABILITY_SEED", "20260101"))
# "own": the client's own credential, of a shape no pattern knows; only the recorder's memory
# of what the client sent catches it.
KINDS = ("openai", "azure", "google", "aws", "github", "jwt", "bifrost", "own")
# Shared clients: building one loads the CA bundle, which costs more than a recording.
HX = httpx.Client()
HX2 = httpx2.Client()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_key(kind: str, rng: random.Random) -> str:
    """A key shaped like the real ones (random, so it is in no file before the test)."""
    alnum = string.ascii_letters + string.digits

    def pick(chars: str, n: int) -> str:
        return "".join(rng.choice(chars) for _ in range(n))

    if kind == "openai":
        return "sk-proj-" + rng.choice(alnum) + pick(alnum + "-_", 120) + rng.choice(alnum)
    if kind == "azure":
        return pick("0123456789abcdef", 32)
    if kind == "google":
        return "AIza" + pick(alnum + "-_", 34) + rng.choice(alnum)
    if kind == "aws":  # an access key id and its secret, as tools pass the pair
        return "AKIA" + pick(string.ascii_uppercase + "234567", 16) + ":" + pick(alnum, 40)
    if kind == "github":
        return "ghp_" + pick(alnum, 36)
    if kind == "bifrost":
        return "sk-bf-" + str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if kind == "own":
        return pick(alnum, 10) + "." + pick(alnum, 12) + "-" + pick(string.ascii_lowercase, 5)
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = {"sub": f"user-{rng.randrange(10**6)}", "iat": 1767225600, "scope": "api"}
    signature = _b64url(rng.randbytes(32))
    return f"{header}.{_b64url(json.dumps(payload).encode())}.{signature}"


def parts_of(key: str) -> list[str]:
    """What must not reach disk: the key, and each half of an AWS pair on its own."""
    if key.startswith("AKIA") and ":" in key:
        return [key, *key.split(":")]
    return [key]


def _keys() -> dict[str, list[str]]:
    rng = random.Random(SEED)
    return {kind: [make_key(kind, rng) for _ in range(SCALE)] for kind in KINDS}


KEYS = _keys()


@contextmanager
def sent_by_the_client(kind: str, key: str) -> Iterator[None]:
    """For the client's own credential: every request carries it, as an SDK's would."""
    if kind != "own":
        yield
        return
    for client in (HX, HX2):
        client.headers["authorization"] = f"Bearer {key}"
    try:
        yield
    finally:
        for client in (HX, HX2):
            client.headers.pop("authorization", None)


# ---------------------------------------------------------------------------------------------
# The loopback server: each placement registers the answer for its own path.


@dataclass
class Answer:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b'{"object": "other"}'
    content_type: str = "application/json"
    reason: str | None = None


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

    def close(self) -> None:
        self.loopback.close()


# ---------------------------------------------------------------------------------------------
# Placements


@dataclass
class Ctx:
    server: Server
    route: str  # this placement's own path
    key: str
    base: str | None = None  # where clients send requests (a proxy), else the server itself
    cassette: Any = None  # the vcrpy cassette being recorded, for its metadata

    @property
    def url(self) -> str:
        return (self.base or self.server.origin) + self.route

    def answer(self, **kwargs: Any) -> None:
        self.server.routes[self.route] = Answer(**kwargs)


Action = Callable[[Ctx], Any]


@dataclass
class Placement:
    name: str
    action: Action
    where: tuple[str, ...] = ()  # empty: filtered silently; else each must be a finding
    options: dict[str, Any] = field(default_factory=dict)
    kinds: tuple[str, ...] = KINDS
    channels: frozenset[str] = frozenset({"use_cassette", "plugin", "proxy"})

    def wheres(self, kind: str) -> tuple[str, ...]:
        """The places to look for: the own key's places are found by value, named coarsely."""
        if kind != "own":
            return self.where
        return tuple(" ".join(w.split()[:3]) if w.startswith("exchange") else w.split()[0]
                     for w in self.where)  # fmt: skip


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
            import brotli  # type: ignore[import-untyped, unused-ignore]

            packers = {"gzip": gzip.compress, "br": brotli.compress, "deflate": zlib.compress}
            raw = packers[coding](raw)
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
        import brotli

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
# Places filtered by name on the way to the cassette: each is written, with the placeholder.
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

# The places of the first matrix, each with the exact place the refusal must name.
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
        kinds=tuple(k for k in KINDS if k != "azure"),  # a bare hex id is not a key (see README)
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


# ---------------------------------------------------------------------------------------------
# Encoded placements: the text "api key: KEY" written in each way a key is disguised, in each
# carrier that can hold it. The refusal must name the part the key is in.

UNIT = "api key: KEY"


def _json_unicode(text: str) -> str:
    return "".join(f"\\u{ord(ch):04x}" for ch in text)


def _percent(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


# name -> (how "api key: KEY" is written, whether it is JSON string text already escaped)
ENCODINGS: dict[str, tuple[Callable[[str], str], bool]] = {
    # Base64 text is not decoded to look for key shapes (an opaque token would decode to
    # noise); the credentials the client used are searched for in their base64 forms.
    "base64": (lambda t: base64.b64encode(t.encode()).decode(), False),
    "base64url": (lambda t: _b64url(t.encode()), False),
    "percent-encoded": (_percent, False),
    "percent-encoded twice": (lambda t: quote(_percent(t), safe=""), False),
    "identifier-glued": (lambda t: t.replace("KEY", "acct_KEY_v2"), False),
}
JSON_ENCODINGS: dict[str, tuple[Callable[[str], str], bool]] = {
    "JSON unicode-escaped": (_json_unicode, True),
    "nested JSON": (lambda t: json.dumps({"note": t}), False),
    "nested JSON twice": (lambda t: json.dumps(json.dumps({"note": t})), False),
}


def _json_text(value: str, escaped: bool) -> str:
    """``value`` as the inside of a JSON string (already JSON text when ``escaped``)."""
    return value if escaped else json.dumps(value)[1:-1]


def _carriers() -> dict[str, tuple[str, Callable[[Ctx, str, bool], Any], bool]]:
    """name -> (part, send(ctx, encoded text, escaped), takes JSON escapes)."""

    def request_json(c: Ctx, text: str, escaped: bool) -> None:
        body = '{"input": [{"role": "user", "content": "' + _json_text(text, escaped) + '"}]}'
        HX.post(c.url, content=body.encode(), headers={"content-type": "application/json"})

    def request_json_name(c: Ctx, text: str, escaped: bool) -> None:
        body = '{"notes": {"' + _json_text(text, escaped) + '": 1}}'
        HX.post(c.url, content=body.encode(), headers={"content-type": "application/json"})

    def request_json_item(c: Ctx, text: str, escaped: bool) -> None:
        body = '{"tags": ["a", "b", "' + _json_text(text, escaped) + '"]}'
        HX2.post(c.url, content=body.encode(), headers={"content-type": "application/json"})

    def request_text(c: Ctx, text: str, escaped: bool) -> None:
        HX.post(c.url, content=text.encode(), headers={"content-type": "text/plain"})

    def request_xml(c: Ctx, text: str, escaped: bool) -> None:
        body = f"<?xml version='1.0'?><req><note>{text}</note></req>"
        HX.post(c.url, content=body.encode(), headers={"content-type": "application/xml"})

    def request_form(c: Ctx, text: str, escaped: bool) -> None:
        body = "grant_type=client&note=" + quote(text, safe="")
        HX2.post(
            c.url,
            content=body.encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )

    def request_multipart(c: Ctx, text: str, escaped: bool) -> None:
        HX.post(c.url, files={"note": ("note.txt", text.encode(), "text/plain")})

    def response_json(c: Ctx, text: str, escaped: bool) -> None:
        body = '{"output": [{"content": [{"text": "' + _json_text(text, escaped) + '"}]}]}'
        c.answer(body=body.encode())
        HX2.get(c.url)

    def response_json_name(c: Ctx, text: str, escaped: bool) -> None:
        body = '{"seen": {"' + _json_text(text, escaped) + '": true}}'
        c.answer(body=body.encode())
        HX.get(c.url)

    def response_text(c: Ctx, text: str, escaped: bool) -> None:
        c.answer(body=text.encode(), content_type="text/plain")
        HX.get(c.url)

    def response_xml(c: Ctx, text: str, escaped: bool) -> None:
        body = f"<?xml version='1.0'?><Error><Message>{text}</Message></Error>"
        c.answer(status=403, body=body.encode(), content_type="application/xml")
        HX2.get(c.url)

    def response_sse(c: Ctx, text: str, escaped: bool) -> None:
        body = (
            "event: response.output_text.delta\n"
            'data: {"type": "response.output_text.delta", "delta": "'
            + _json_text(text, escaped)
            + '"}\n\n'
        )
        c.answer(body=body.encode(), content_type="text/event-stream")
        HX.get(c.url)

    def response_error(c: Ctx, text: str, escaped: bool) -> None:
        body = '{"error": {"message": "bad: ' + _json_text(text, escaped) + '", "code": null}}'
        c.answer(status=400, body=body.encode())
        HX.get(c.url)

    def response_html(c: Ctx, text: str, escaped: bool) -> None:
        c.answer(status=502, body=f"<html><p>{text}</p></html>".encode(), content_type="text/html")
        HX2.get(c.url)

    def request_header(c: Ctx, text: str, escaped: bool) -> None:
        HX.get(c.url, headers={"x-note": text})

    def response_header(c: Ctx, text: str, escaped: bool) -> None:
        c.answer(headers=[("x-note", text)])
        HX.get(c.url)

    def query(c: Ctx, text: str, escaped: bool) -> None:
        HX.get(c.url + "?note=" + quote(text, safe=""))

    def path(c: Ctx, text: str, escaped: bool) -> None:
        HX.get(c.url + "/notes/" + quote(text, safe=""))

    return {
        "request JSON field": ("request", request_json, True),
        "request JSON property name": ("request", request_json_name, True),
        "request JSON array item": ("request", request_json_item, True),
        "request text body": ("request", request_text, False),
        "request XML body": ("request", request_xml, False),
        "request form body": ("request", request_form, False),
        "request multipart body": ("request", request_multipart, False),
        "response JSON field": ("response", response_json, True),
        "response JSON property name": ("response", response_json_name, True),
        "response text body": ("response", response_text, False),
        "response 403 XML": ("response", response_xml, False),
        "response SSE data": ("response", response_sse, True),
        "response 400 error": ("response", response_error, True),
        "response 502 HTML": ("response", response_html, False),
        "request header": ("request", request_header, False),
        "response header": ("response", response_header, False),
        "query parameter": ("request", query, False),
        "URL path": ("request", path, False),
    }


CARRIERS = _carriers()


def _encoded(carrier: str, encoding: str, encode: Callable[[str], str], escaped: bool) -> Placement:
    part, send, _ = CARRIERS[carrier]

    def act(c: Ctx) -> None:
        send(c, encode(UNIT.replace("KEY", c.key)), escaped)

    kinds = ("own",) if encoding.startswith("base64") else KINDS
    return Placement(f"{carrier}, {encoding}", act, (f"exchange 0 {part}",), kinds=kinds)


def _whole_body(name: str, encode: Callable[[bytes], bytes], charset: str = "") -> list[Placement]:
    """The whole body written in another encoding (UTF-16, gzip) without saying so."""
    ctype = f"application/json{charset}"
    text = '{"input": [{"role": "user", "content": "' + UNIT + '"}]}'
    sse = 'data: {"type": "response.output_text.delta", "delta": "' + UNIT + '"}\n\n'

    def request(c: Ctx) -> None:
        body = encode(text.replace("KEY", c.key).encode())
        HX.post(c.url, content=body, headers={"content-type": ctype})

    def request_text(c: Ctx) -> None:
        body = encode(UNIT.replace("KEY", c.key).encode())
        HX2.post(c.url, content=body, headers={"content-type": f"text/plain{charset}"})

    def response(c: Ctx) -> None:
        c.answer(body=encode(text.replace("KEY", c.key).encode()), content_type=ctype)
        HX.get(c.url)

    def response_text(c: Ctx) -> None:
        body = encode(UNIT.replace("KEY", c.key).encode())
        c.answer(body=body, content_type=f"text/plain{charset}")
        HX.get(c.url)

    def response_sse(c: Ctx) -> None:
        body = encode(sse.replace("KEY", c.key).encode())
        c.answer(body=body, content_type=f"text/event-stream{charset}")
        HX2.get(c.url)

    def response_error(c: Ctx) -> None:
        body = encode(text.replace("KEY", c.key).encode())
        c.answer(status=401, body=body, content_type=ctype)
        HX.get(c.url)

    return [
        Placement(f"request JSON body, {name}", request, ("exchange 0 request",)),
        Placement(f"request text body, {name}", request_text, ("exchange 0 request",)),
        Placement(f"response JSON body, {name}", response, ("exchange 0 response",)),
        Placement(f"response text body, {name}", response_text, ("exchange 0 response",)),
        Placement(f"response SSE body, {name}", response_sse, ("exchange 0 response",)),
        Placement(f"response 401 body, {name}", response_error, ("exchange 0 response",)),
    ]


def _utf16(data: bytes) -> bytes:
    return data.decode().encode("utf-16")


def _sse_split(name: str, pieces: int, *, json_data: bool = True, between: str = "") -> Placement:
    """The key cut over several events (as a model streams it): no event holds it whole."""

    def act(c: Ctx) -> None:
        text = UNIT.replace("KEY", c.key)
        start = text.index(c.key)
        cuts = [start + len(c.key) * i // pieces for i in range(1, pieces)]
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        events = []
        for n, chunk in enumerate(chunks):
            if json_data:
                data = json.dumps(
                    {"type": "response.output_text.delta", "delta": chunk, "sequence_number": n}
                )
            else:
                data = chunk
            events.append(f"event: response.output_text.delta\ndata: {data}\n\n")
            if between and n == 0:
                events.append(between)
        c.answer(body="".join(events).encode(), content_type="text/event-stream")
        HX.get(c.url)

    return Placement(f"SSE split, {name}", act, ("exchange 0 response",))


def _reason(status: int, template: str) -> Placement:
    def act(c: Ctx) -> None:
        c.answer(status=status, reason=template.replace("KEY", c.key), body=b"{}")
        HX.get(c.url)

    return Placement(f"reason phrase of a {status}", act, ("exchange 0 response",))


def _metadata(name: str, value: Any, where: str) -> Placement:
    def act(c: Ctx) -> None:
        c.cassette.get_metadata(name, json.loads(json.dumps(value).replace("KEY", c.key)))
        HX.get(c.url)

    return Placement(
        f"cassette metadata {name}",
        act,
        (where,),
        channels=frozenset({"use_cassette", "plugin"}),
    )


ENCODED: list[Placement] = [
    *[
        _encoded(carrier, encoding, encode, escaped)
        for carrier in CARRIERS
        for encoding, (encode, escaped) in ENCODINGS.items()
    ],
    *[
        _encoded(carrier, encoding, encode, escaped)
        for carrier, (_, _, takes_json) in CARRIERS.items()
        if takes_json
        for encoding, (encode, escaped) in JSON_ENCODINGS.items()
    ],
    *_whole_body("UTF-16", _utf16, "; charset=utf-16"),
    *_whole_body("gzip without content-encoding", lambda b: gzip.compress(b, mtime=0)),
    _sse_split("two deltas", 2),
    _sse_split("three deltas", 3),
    _sse_split("eight deltas", 8),
    _sse_split("text data", 2, json_data=False),
    _sse_split("a ping between", 2, between=": ping\n\n"),
    _reason(200, "OK (api key: KEY)"),
    _reason(401, "Unauthorized api key: KEY"),
    _reason(503, "Unavailable (token KEY)"),
    _metadata("note", UNIT, "document /metadata/note"),
    _metadata("auth", {"api_key": "KEY"}, "document /metadata/auth/api_key"),
]

PLACEMENTS = FILTERED + REFUSED + ENCODED


def placements_for(channel: str) -> list[Placement]:
    return [p for p in PLACEMENTS if channel in p.channels]


# ---------------------------------------------------------------------------------------------
# Placements in a cassette file, for scan --fix: what the exchanges of a loader do not read.


@dataclass
class DocumentPlacement:
    name: str
    edit: Callable[[dict[str, Any], str], None]  # puts the key in a stock vcrpy document
    where: str  # the path the scan must name
    kinds: tuple[str, ...] = tuple(k for k in KINDS if k != "own")  # no client: no own key
    comment: bool = False  # in a YAML comment: added to the text, not the document


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any], str], None]:
    def edit(doc: dict[str, Any], key: str) -> None:
        node: Any = doc
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
        node[path[-1]] = json.loads(json.dumps(value).replace("KEY", key))

    return edit


DOCUMENT_PLACEMENTS: list[DocumentPlacement] = [
    DocumentPlacement("metadata text", _set(("metadata", "note"), UNIT), "/metadata/note"),
    DocumentPlacement(
        "metadata under a key-like name",
        _set(("metadata", "api_key"), "KEY"),
        "/metadata/api_key",
    ),
    DocumentPlacement(
        "metadata list item",
        _set(("metadata", "history"), ["first", UNIT]),
        "/metadata/history/1",
    ),
    DocumentPlacement(
        "metadata property name",
        _set(("metadata", "api_keys"), {"KEY": "primary"}),
        "/metadata/api_keys/<secret-looking name> (a property name)",
    ),
    DocumentPlacement("top-level unknown field", _set(("x_debug",), UNIT), "/x_debug"),
    DocumentPlacement(
        "interaction unknown field",
        _set(("interactions", 0, "debug"), {"trace": "abc", "note": UNIT}),
        "/interactions/0/debug/note",
    ),
    DocumentPlacement(
        "request unknown field",
        _set(("interactions", 0, "request", "note"), UNIT),
        "/interactions/0/request/note",
    ),
    DocumentPlacement(
        "response.url",
        _set(("interactions", 0, "response", "url"), "https://api.example/v1/x?api-key=KEY"),
        "/interactions/0/response/url",
    ),
    DocumentPlacement(
        "reason phrase",
        _set(("interactions", 0, "response", "status", "message"), "OK " + UNIT),
        "exchange 0 response status reason",
    ),
    DocumentPlacement("a YAML comment", lambda doc, key: None, "line 1", comment=True),
]


def stock_document(text: str, placement: DocumentPlacement, key: str) -> str:
    """A stock vcrpy cassette's text with ``key`` put where ``placement`` says."""
    doc = yaml.safe_load(text)
    placement.edit(doc, key)
    out = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=2**31 - 1)
    if placement.comment:
        out = f"# {UNIT.replace('KEY', key)}\n" + out
    return out
