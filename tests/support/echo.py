"""A loopback upstream that echoes what a client sent: the way keys come back in answers.

Real services quote a caller's key back (``Incorrect API key provided: sk-...``), gateways echo
request headers in debug fields, and some error pages repeat the request line. :class:`Echo`
answers every request with a JSON error quoting the credential the request carried (the
``authorization`` token, an ``api-key``/``x-api-key`` header, or a ``key``/``api-key`` query
parameter); a test registers other answers per path with :meth:`Echo.route`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from support.loopback import Loopback, QuietHandler


@dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def credential(self) -> str:
        """The credential the request carried, wherever it was put."""
        lowered = {k.lower(): v for k, v in self.headers.items()}
        auth = lowered.get("authorization", "")
        if auth:
            return auth.split(" ", 1)[-1]
        for name in ("api-key", "x-api-key", "x-goog-api-key"):
            if name in lowered:
                return lowered[name]
        query = dict(parse_qsl(urlsplit(self.path).query))
        return query.get("key") or query.get("api-key") or ""


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"object": "other"}'
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


def echo_error(seen: Seen) -> Reply:
    """What the API answers a bad key with, the key quoted."""
    message = f"Incorrect API key provided: {seen.credential()}. You can find your API key at ..."
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return Reply(status=401, body=json.dumps({"error": error}).encode())


class Echo:
    """The upstream: ``origin`` (``http://127.0.0.1:PORT``), ``base_url`` (``origin + /v1``)."""

    def __init__(self, default: Callable[[Seen], Reply] = echo_error) -> None:
        self.seen: list[Seen] = []
        self.routes: dict[str, Callable[[Seen], Reply]] = {}
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                self._answer(self.rfile.read(int(self.headers.get("content-length") or 0)))

            def _answer(self, body: bytes) -> None:
                seen = Seen(self.command, self.path, dict(self.headers.items()), body)
                owner.seen.append(seen)
                answer = owner.routes.get(urlsplit(self.path).path, default)(seen)
                self.send_response(answer.status)
                self.send_header("content-type", answer.content_type)
                self.send_header("content-length", str(len(answer.body)))
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

        self.loopback = Loopback(Handler, poll_interval=0.05)
        self.origin = self.loopback.origin
        self.base_url = self.origin + "/v1"

    def route(self, path: str, answer: Callable[[Seen], Reply]) -> None:
        self.routes[path] = answer

    def close(self) -> None:
        self.loopback.close()

    def __enter__(self) -> Echo:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
