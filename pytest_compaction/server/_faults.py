"""Faults injected on demand, so clients' retry and error paths can be tested for real.

Syntax (header ``x-compaction-fault``, or a server-wide / next-N option)::

    FAULT[;times=N][;retry-after=SECONDS]

    FAULT := 429 | 500 | 503 | <any 4xx/5xx status>   an error answer with a real-looking body
           | slow:SECONDS                             answer normally after a delay
           | malformed-json                           200 with a body that is not valid JSON
           | truncated                                Content-Length larger than the bytes sent
           | drop                                     close the connection without answering
           | completed-output:empty|null|missing     a stream's ``response.completed`` carries
                                                      ``output: []``, ``output: null`` or no
                                                      ``output``; the items come only from the
                                                      ``response.output_item.done`` events
           | invalid-encrypted-content                400 ``invalid_encrypted_content`` for a
                                                      compaction item whose token this server
                                                      issued (as after a key rotation, or sent
                                                      to another organization)

``times=N`` fails only the first N attempts of a request: the attempt number is the
``x-stainless-retry-count`` header when present (what the openai SDK sends), otherwise a count
kept per ``idempotency-key`` header or, without one, per request fingerprint (method, path,
body, fault). So a client that retries the same request eventually succeeds.

``completed-output`` changes streamed ``POST /responses`` answers only; any other answer is sent
as usual.

``invalid-encrypted-content`` refuses a request (``/responses`` or ``/responses/compact``) whose
``input`` holds a compaction item with a token the server can open, as the live API refuses a
token sealed under a key it no longer holds: openai/codex#36704 (a thread broken after a key
rotation), openai/codex#8145 (the error body). The body is the API's: ``{"error": {"message":
"The encrypted content for item cmp_... could not be verified. Reason: Encrypted content could
not be decrypted or parsed.", "type": "invalid_request_error", "param": null, "code":
"invalid_encrypted_content"}}`` (an item without an id is named by its shortened token). A
request without such an item is answered as usual, so the recovery an application takes (drop
the compaction item, or start over from the full history) succeeds under the same fault.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._apierror import ApiError

FAULT_HEADER = "x-compaction-fault"
_KINDS = ("slow", "malformed-json", "truncated", "drop")
COMPLETED_OUTPUT = "completed-output"
COMPLETED_OUTPUT_FORMS = ("empty", "null", "missing")
INVALID_ENCRYPTED_CONTENT = "invalid-encrypted-content"
_TOKEN_SHOWN = 4  # characters of a token kept at each end when it names an item without id


class FaultSyntaxError(ValueError):
    """A fault specification that does not follow the documented syntax."""


@dataclass(frozen=True)
class Fault:
    spec: str
    # "status", "slow", "malformed-json", "truncated", "drop", "completed-output" or
    # "invalid-encrypted-content"
    kind: str
    status: int = 0
    form: str = ""  # completed-output: "empty", "null" or "missing"
    seconds: float = 0.0
    times: int | None = None
    retry_after: str | None = None

    def error(self) -> ApiError:
        """The answer of a ``status`` fault, shaped like the real API's."""
        headers = {"retry-after": self.retry_after} if self.retry_after is not None else {}
        if self.status == 429:
            wait = self.retry_after if self.retry_after is not None else "1"
            headers.setdefault("retry-after", wait)
            return ApiError(
                429,
                f"Rate limit reached for requests. Please try again in {wait}s.",
                param=None,
                code="rate_limit_exceeded",
                type="requests",
                headers=headers,
            )
        if self.status == 500:
            message = "The server had an error while processing your request. Sorry about that!"
        elif self.status == 503:
            message = "We're currently experiencing high demand, which may cause temporary errors."
        else:
            message = f"Fault injected on request: HTTP {self.status}."
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        return ApiError(self.status, message, param=None, code=None, type=kind, headers=headers)

    def refusal(self, body: Any, issued: Callable[[str], bool]) -> ApiError | None:
        """An ``invalid-encrypted-content`` fault's answer to ``body``, or None to answer it.

        ``issued`` tells whether a token is one the server can open. The first compaction item
        of the input carrying such a token is refused.
        """
        if self.kind != INVALID_ENCRYPTED_CONTENT or not isinstance(body, dict):
            return None
        items = body.get("input")
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or item.get("type") != "compaction":
                continue
            token = item.get("encrypted_content")
            if not isinstance(token, str) or not issued(token):
                continue
            item_id = item.get("id")
            if isinstance(item_id, str):
                subject = f"for item {item_id}"
            else:
                subject = f"{token[:_TOKEN_SHOWN]}...{token[-_TOKEN_SHOWN:]}"
            return ApiError(
                400,
                f"The encrypted content {subject} could not be verified. "
                "Reason: Encrypted content could not be decrypted or parsed.",
                param=None,
                code="invalid_encrypted_content",
            )
        return None


def parse_fault(text: str) -> Fault:
    """Parse a fault specification; FaultSyntaxError names what is wrong."""
    spec = text.strip()
    head, *options = [part.strip() for part in spec.split(";")]
    times: int | None = None
    retry_after: str | None = None
    for option in options:
        name, sep, value = option.partition("=")
        name = name.strip().lower()
        value = value.strip()
        if not sep:
            raise FaultSyntaxError(f"fault option {option!r} in {spec!r} has no '=value'")
        if name == "times":
            if not value.isdigit() or int(value) < 1:
                raise FaultSyntaxError(f"times must be a positive integer in {spec!r}")
            times = int(value)
        elif name == "retry-after":
            if not _is_seconds(value):
                raise FaultSyntaxError(
                    f"retry-after must be a number of seconds (0 to {MAX_FAULT_SECONDS:g}) "
                    f"in {spec!r}"
                )
            retry_after = value
        else:
            raise FaultSyntaxError(f"unknown fault option {name!r} in {spec!r}")
    lowered = head.lower()
    if lowered.isdigit() and len(lowered) == 3 and 400 <= int(lowered) <= 599:
        return Fault(spec, "status", status=int(lowered), times=times, retry_after=retry_after)
    if lowered.startswith(("slow:", "slow=")):
        seconds = lowered[5:]
        if not _is_seconds(seconds):
            raise FaultSyntaxError(
                f"slow needs a number of seconds (0 to {MAX_FAULT_SECONDS:g}), as in "
                f"'slow:0.2': {spec!r}"
            )
        return Fault(spec, "slow", seconds=float(seconds), times=times)
    if lowered in _KINDS and lowered != "slow":
        return Fault(spec, lowered, times=times)
    if lowered == INVALID_ENCRYPTED_CONTENT:
        return Fault(spec, lowered, times=times)
    if lowered.startswith((f"{COMPLETED_OUTPUT}:", f"{COMPLETED_OUTPUT}=")):
        form = lowered[len(COMPLETED_OUTPUT) + 1 :]
        if form not in COMPLETED_OUTPUT_FORMS:
            raise FaultSyntaxError(
                f"{COMPLETED_OUTPUT} needs one of {', '.join(COMPLETED_OUTPUT_FORMS)}, as in "
                f"'{COMPLETED_OUTPUT}:empty': {spec!r}"
            )
        return Fault(spec, COMPLETED_OUTPUT, form=form, times=times)
    raise FaultSyntaxError(
        f"unknown fault {head!r}; expected a 4xx/5xx status, 'slow:SECONDS', "
        "'malformed-json', 'truncated', 'drop', 'completed-output:empty|null|missing' or "
        f"'{INVALID_ENCRYPTED_CONTENT}'"
    )


# A longer wait is a mistake, not a fault to test against (``slow:1e308`` would never end).
MAX_FAULT_SECONDS = 3600.0


def _is_seconds(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return math.isfinite(number) and 0 <= number <= MAX_FAULT_SECONDS


class FaultPlan:
    """Which fault, if any, applies to a request: header, then next-N queue, then default."""

    def __init__(self, default: str | None = None) -> None:
        self._lock = threading.Lock()
        self._default = parse_fault(default) if default else None
        self._queue: deque[Fault] = deque()
        self._attempts: Counter[str] = Counter()

    def set_default(self, spec: str | None) -> None:
        fault = parse_fault(spec) if spec else None
        with self._lock:
            self._default = fault

    def inject(self, spec: str, count: int = 1) -> None:
        if count < 1:
            raise FaultSyntaxError(f"count must be at least 1, got {count}")
        fault = parse_fault(spec)
        with self._lock:
            self._queue.extend([fault] * count)

    def choose(
        self,
        header: str | None,
        *,
        method: str,
        path: str,
        body: bytes,
        idempotency_key: str | None,
        retry_count: str | None,
    ) -> Fault | None:
        """The fault for this attempt (FaultSyntaxError for a malformed header)."""
        if header is not None and header.strip():
            fault: Fault | None = parse_fault(header)
        else:
            with self._lock:
                fault = self._queue.popleft() if self._queue else self._default
        if fault is None or fault.times is None:
            return fault
        if retry_count is not None and retry_count.strip().isdigit():
            attempt = int(retry_count)
        else:
            key = idempotency_key or _fingerprint(method, path, body, fault.spec)
            with self._lock:
                attempt = self._attempts[key]
                self._attempts[key] += 1
        return fault if attempt < fault.times else None


def _fingerprint(method: str, path: str, body: bytes, spec: str) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), spec.encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()
