"""What ``POST /responses/compact`` does: keep the user turns, fold everything else into a token.

The output mirrors the live API: every user message of the context is re-issued (``msg_`` id,
``status: "completed"``, content as ``input_text`` parts), followed by exactly one ``compaction``
item whose ``encrypted_content`` seals the whole transcript. A compaction item found in the input
is opened and its transcript spliced in place, so state survives any number of compactions.

Token usage is estimated, not measured: ``ceil(utf8_bytes / 4)`` of the canonical JSON (sorted
keys, no spaces) of what is counted:

- ``input_tokens``: ``{"instructions": ..., "items": transcript}`` where the transcript is the
  context with earlier compactions expanded, so usage never depends on a random nonce;
- ``cached_tokens``: the same estimate of the part of the context taken from
  ``previous_response_id`` (the server already holds it), capped at ``input_tokens``;
- ``output_tokens``: the output array; ``reasoning_tokens`` and ``cache_write_tokens`` are 0.

A request that sets ``image`` gets it back as the policy in effect (see ``_newer``). Items of
any other type (``configuration_update``, the beta route's ``agent_message``,
``multi_agent_call`` and ``multi_agent_call_output``...) are folded into the token verbatim,
as assistant turns are.
"""

from __future__ import annotations

import copy
import hashlib
import math
import threading
from dataclasses import dataclass, field
from typing import Any

from ..schema._validate import MAX_DEPTH, depth_exceeds
from ._apierror import bad_request
from ._ids import IdSource
from ._newer import IMAGE, effective_image
from ._tokens import (
    UNREADABLE,
    Sealer,
    StateTooLarge,
    TokenError,
    TokenSealer,
    canonical_json,
)

STATE_VERSION = 1
# Mirrors the real message: the token is shortened so errors stay readable.
_TOKEN_PREVIEW = 8
_OVER_WINDOW = (
    "Your input exceeds the context window of this model. Please adjust your input and try again."
)


def _digest(state: dict[str, Any]) -> bytes:
    """What identifies a sealed state across its tokens (a stream re-encrypts it)."""
    return hashlib.sha256(canonical_json(state)).digest()


def estimate_tokens(value: object) -> int:
    """The documented estimate: a quarter of the UTF-8 bytes of the canonical JSON, rounded up."""
    return math.ceil(len(canonical_json(value)) / 4)


@dataclass
class _Context:
    """The conversation being compacted, built item by item."""

    transcript: list[dict[str, Any]] = field(default_factory=list)
    instructions: list[str] = field(default_factory=list)
    reissued: list[dict[str, Any]] = field(default_factory=list)


def _text_parts(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    if isinstance(content, list):
        return [copy.deepcopy(part) for part in content]
    return []


def _item_type(item: dict[str, Any]) -> Any:
    # EasyInputMessage may omit ``type``; every SDK sends role-only messages.
    return item.get("type", "message" if "role" in item else None)


def _same_user_turn(item: dict[str, Any], message_id: str) -> bool:
    return item.get("role") == "user" and item.get("id") == message_id


def _preview(token: str) -> str:
    if len(token) <= 2 * _TOKEN_PREVIEW:
        return token
    return f"{token[:_TOKEN_PREVIEW]}...{token[-_TOKEN_PREVIEW:]}"


def input_items(raw: Any) -> list[dict[str, Any]]:
    """A request's ``input`` as items: a string is one user message; a non-object is refused."""
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    items = list(raw) if isinstance(raw, list) else []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad_request(
                f"Invalid type for 'input[{index}]': expected an object, "
                f"but got {type(item).__name__} instead.",
                param=f"input[{index}]",
                code="invalid_type",
            )
    return items


class Compactor:
    """Stateful compaction engine: the key, the id source and the response store."""

    def __init__(
        self,
        *,
        key: bytes,
        ids: IdSource,
        deterministic: bool,
        context_window: int,
        clock: Any,
        sealer: TokenSealer | None = None,
        binds_item_ids: bool = False,
    ) -> None:
        # ``sealer``: how tokens are made (a gateway's wire may use plaintext tokens).
        self._sealer: TokenSealer = sealer or Sealer(key, deterministic=deterministic)
        self._ids = ids
        # ``binds_item_ids``: a compaction item passed back must keep the id its token was
        # issued under. Sealed states (by digest) -> the ids of the items that carried them.
        self.binds_item_ids = binds_item_ids
        self._item_ids: dict[bytes, set[str]] = {}
        self.context_window = context_window
        self._clock = clock
        self._store: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    # -- what POST /responses shares with compaction ----------------------------------------

    @property
    def ids(self) -> IdSource:
        return self._ids

    def now(self) -> int:
        return int(self._clock())

    def seal_state(
        self, state: dict[str, Any], variant: int = 0, *, item_id: str | None = None
    ) -> str:
        """A compaction token for ``state`` (``variant``: another token for the same state),
        for the compaction item ``item_id`` (bound to it: see :meth:`open_item`).

        A state too large for a token is refused as a context over the model's window.
        """
        try:
            token = self._sealer.seal(state, now=self.now(), variant=variant)
        except StateTooLarge:
            raise bad_request(_OVER_WINDOW, param="input", code="context_length_exceeded") from None
        if item_id is not None:
            with self._lock:
                self._item_ids.setdefault(_digest(state), set()).add(item_id)
        return token

    def _check_item_id(self, item: dict[str, Any], state: dict[str, Any], where: str) -> None:
        """A token passed under another id than the one it was issued with is refused."""
        given = item.get("id")
        if not self.binds_item_ids or not isinstance(given, str):
            return  # an item without id is matched by its token alone
        with self._lock:
            issued = self._item_ids.get(_digest(state))
        if issued is not None and given not in issued:
            # The message the API answers (Soju06/codex-lb#1316); param and code as reported:
            # not given.
            raise bad_request(
                "Encrypted content item_id did not match the target item id.",
                param=None,
                code=None,
            )

    def prior_items(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """A copy of the items a request continues from (``previous_response_id``; [] if none).

        An id the server does not hold is refused as the API refuses it.
        """
        previous = body.get("previous_response_id")
        if previous is None:
            return []
        with self._lock:
            items = self._store.get(previous)
        if items is None:
            raise bad_request(
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        return copy.deepcopy(items)

    def remember(self, response_id: str, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self._store[response_id] = copy.deepcopy(items)

    # -- tokens -----------------------------------------------------------------------------

    def open_token(self, token: str) -> dict[str, Any]:
        """The state sealed in a compaction item's ``encrypted_content`` (TokenError if foreign).

        A state nests no deeper than the bodies it was made from (see ``_checks``): a deeper one
        was forged by someone holding the key (deterministic mode's is public) and is refused.
        """
        state = self._sealer.open(token)
        if state.get("v") != STATE_VERSION or not isinstance(state.get("items"), list):
            raise TokenError(UNREADABLE)
        if depth_exceeds(state, MAX_DEPTH):
            raise TokenError(UNREADABLE)
        return state

    def issued(self, token: str) -> bool:
        """Whether ``token`` is one this server sealed: it opens under the server's key."""
        try:
            self.open_token(token)
        except TokenError:
            return False
        return True

    # -- the operation ----------------------------------------------------------------------

    def compact(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer a request body that already passed validation (raises ApiError otherwise)."""
        ctx = _Context()
        prior = self.prior_items(body)
        for item in prior:
            self._take(ctx, item, where=None)
        cached_items = list(ctx.transcript)

        for index, item in enumerate(input_items(body.get("input"))):
            self._take(ctx, item, where=f"input[{index}]")

        instructions = body.get("instructions")
        if isinstance(instructions, str) and instructions:
            ctx.instructions.append(instructions)

        counted = {"instructions": instructions, "items": ctx.transcript}
        input_tokens = estimate_tokens(counted)
        if input_tokens > self.context_window:
            raise bad_request(_OVER_WINDOW, param="input", code="context_length_exceeded")
        cached = min(estimate_tokens({"items": cached_items}), input_tokens) if prior else 0

        state = {
            "v": STATE_VERSION,
            "model": body.get("model"),
            "instructions": ctx.instructions,
            "items": ctx.transcript,
        }
        compaction_id = self._ids.new("cmp")
        compaction = {
            "id": compaction_id,
            "type": "compaction",
            "encrypted_content": self.seal_state(state, item_id=compaction_id),
        }
        output = [*ctx.reissued, compaction]
        output_tokens = estimate_tokens(output)
        response_id = self._ids.new("resp")
        response = {
            "id": response_id,
            "object": "response.compaction",
            "created_at": int(self._clock()),
            "output": output,
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
        }
        if IMAGE in body:
            response[IMAGE] = effective_image(body[IMAGE])
        with self._lock:
            # The compacted window is what a later request continues from.
            self._store[response_id] = copy.deepcopy(output)
        return response

    def _take(self, ctx: _Context, item: dict[str, Any], *, where: str | None) -> None:
        kind = _item_type(item)
        if kind == "compaction":
            self._unpack(ctx, item, where)
            return
        if kind == "message" and item.get("role") == "user":
            given = item.get("id")
            message_id = given if isinstance(given, str) else self._ids.new("msg")
            message: dict[str, Any] = {
                "id": message_id,
                "type": "message",
                "status": "completed",
                "content": _text_parts(item.get("content")),
                "role": "user",
            }
            ctx.reissued.append(message)
            # A turn that an opened compaction already holds is not recorded twice.
            if not any(_same_user_turn(t, message_id) for t in ctx.transcript):
                ctx.transcript.append(copy.deepcopy(message))
            return
        # Assistant/system/developer turns, tool calls, reasoning...: folded, kept verbatim.
        ctx.transcript.append(copy.deepcopy(item))

    def _unpack(self, ctx: _Context, item: dict[str, Any], where: str | None) -> None:
        state = self.open_item(item, where)
        ctx.instructions.extend(i for i in state.get("instructions", []) if isinstance(i, str))
        carried = [i for i in state["items"] if isinstance(i, dict)]
        # The user turns re-issued beside a compaction item are also sealed inside it; when the
        # client sends both (the documented "pass output as next input"), keep the sealed copy,
        # which sits in the original order among the folded turns.
        carried_ids = {i["id"] for i in carried if isinstance(i.get("id"), str)}
        ctx.transcript[:] = [
            t for t in ctx.transcript if not any(_same_user_turn(t, i) for i in carried_ids)
        ]
        ctx.transcript.extend(carried)

    def open_item(self, item: dict[str, Any], where: str | None) -> dict[str, Any]:
        """The state a compaction item seals, or the API's ``invalid_encrypted_content`` error.

        ``where`` is the item's place in the request (``input[3]``); None when it came from a
        stored response.
        """
        token = item.get("encrypted_content")
        try:
            if not isinstance(token, str):
                raise TokenError("Encrypted content is missing.")
            state = self.open_token(token)
        except TokenError as exc:
            item_id = item.get("id")
            subject = (
                f"for item {item_id}" if isinstance(item_id, str) else _preview(str(token or ""))
            )
            raise bad_request(
                f"The encrypted content {subject} could not be verified. Reason: {exc}",
                param=f"{where}.encrypted_content" if where else "previous_response_id",
                code="invalid_encrypted_content",
            ) from None
        if where is not None:
            self._check_item_id(item, state, where)
        return state
