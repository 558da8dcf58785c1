"""What ``POST /responses`` does here: a stand-in model reply, and server-side compaction.

The reply is deterministic: one assistant message whose only ``output_text`` part (with
``annotations: []`` and ``logprobs: []``) reads ``Echo: `` and the text of the request's last
user message, cut at ``REPLY_LIMIT`` characters.

Context: the window stored for ``previous_response_id`` (if any), then the request's input (a
string is one user message). A ``compaction`` item stands for everything before it: the
transcript it seals replaces what precedes it. Its token is checked as ``/responses/compact``
checks one (``400 invalid_encrypted_content`` when it does not verify).

Tokens use the estimate documented in ``_compact`` (a quarter of the UTF-8 bytes of the canonical
JSON, rounded up), applied to what the model is shown: a compaction item shows as the user turns
it seals (what it folded away costs nothing), any other item as itself.

- ``input_tokens``: ``{"instructions": ..., "items": context as shown}``;
- ``cached_tokens``: the same estimate of the part taken from ``previous_response_id``, capped at
  ``input_tokens``; ``cache_write_tokens`` and ``reasoning_tokens`` are 0;
- ``output_tokens``: the output array as shown.

Compaction: with ``context_management: [{"type": "compaction", "compact_threshold": N}]``, once
``input_tokens`` plus the reply's tokens reach ``N`` (``null``: ``DEFAULT_THRESHOLD`` of the
server's context window), a ``compaction`` item follows the assistant message, as the live
service does. It seals the whole conversation (earlier compactions opened, the reply included)
in the state format of ``/responses/compact``, so each endpoint opens the other's items. A
``compaction_trigger`` input item (in specs that declare it; it must come last) asks for one
whatever the count.

Store: unless ``store`` is false, the answer is kept under its id as the window a later request
continues from: the compaction item alone when there is one, else the context plus the reply.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ._apierror import bad_request
from ._compact import STATE_VERSION, Compactor, estimate_tokens, input_items
from ._newer import IMAGE, effective_image

REPLY_PREFIX = "Echo: "
REPLY_LIMIT = 2000  # characters of the user's text the reply repeats
DEFAULT_THRESHOLD = 0.8  # share of the context window when compact_threshold is null
_COMPACTION = "compaction"
_TRIGGER = "compaction_trigger"


@dataclass(frozen=True)
class Turn:
    """One answer, complete; a stream is told from it (see ``_stream``)."""

    response: dict[str, Any]  # the Response object, status "completed"
    compaction_state: dict[str, Any] | None  # what the compaction item seals, if there is one


@dataclass
class _Context:
    transcript: list[dict[str, Any]]  # every turn, compactions opened
    shown: list[dict[str, Any]]  # what the model is shown (compactions as their user turns)
    instructions: list[str]  # instructions sealed in opened compactions


def _item_type(item: dict[str, Any]) -> Any:
    # EasyInputMessage may omit ``type``; every SDK sends role-only messages.
    return item.get("type", "message" if "role" in item else None)


def _user_turns(items: list[Any]) -> list[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict) and i.get("role") == "user"]


def _text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def reply_text(items: list[dict[str, Any]]) -> str:
    """The stand-in model's answer to a conversation (see the module docstring)."""
    users = _user_turns(items)
    said = _text(users[-1]) if users else ""
    return REPLY_PREFIX + said[:REPLY_LIMIT]


class Responder:
    """Answers ``POST /responses`` bodies that passed the request schema."""

    def __init__(self, compactor: Compactor) -> None:
        self._compactor = compactor

    def respond(self, body: dict[str, Any]) -> Turn:
        model = body.get("model")
        if not isinstance(model, str):
            raise bad_request(
                "Missing required parameter: 'model'.",
                param="model",
                code="missing_required_parameter",
            )
        items = input_items(body.get("input"))
        threshold, forced = self._policy(body, items)
        prior = self._compactor.prior_items(body)
        turns = [(i, item) for i, item in enumerate(items) if _item_type(item) != _TRIGGER]
        places: list[str | None] = [None] * len(prior) + [f"input[{i}]" for i, _ in turns]
        context = prior + [item for _, item in turns]
        opened = self._open(context, places)

        instructions = body.get("instructions")
        counted = {"instructions": instructions, "items": opened.shown}
        input_tokens = estimate_tokens(counted)
        if input_tokens > self._compactor.context_window:
            raise bad_request(
                "Your input exceeds the context window of this model. "
                "Please adjust your input and try again.",
                param="input",
                code="context_length_exceeded",
            )
        cached = 0
        if prior:
            shown_prior = self._open(prior, [None] * len(prior)).shown
            cached = min(estimate_tokens({"items": shown_prior}), input_tokens)

        ids = self._compactor.ids
        response_id = ids.new("resp")
        message = {
            "id": ids.new("msg"),
            "type": "message",
            "status": "completed",
            "content": [
                {
                    "type": "output_text",
                    "annotations": [],
                    "logprobs": [],
                    "text": reply_text(opened.transcript),
                }
            ],
            "role": "assistant",
        }
        output: list[dict[str, Any]] = [message]
        state: dict[str, Any] | None = None
        reached = threshold is not None and input_tokens + estimate_tokens([message]) >= threshold
        if forced or reached:
            sealed_instructions = list(opened.instructions)
            if isinstance(instructions, str) and instructions:
                sealed_instructions.append(instructions)
            state = {
                "v": STATE_VERSION,
                "model": model,
                "instructions": sealed_instructions,
                "items": [*opened.transcript, copy.deepcopy(message)],
            }
            compaction_id = ids.new("cmp")
            output.append(
                {
                    "id": compaction_id,
                    "type": _COMPACTION,
                    "encrypted_content": self._compactor.seal_state(state, item_id=compaction_id),
                }
            )
        output_tokens = estimate_tokens(self._open(output, [None] * len(output)).shown)
        now = self._compactor.now()
        response = _response_object(body, response_id, model, now, output)
        response["usage"] = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }
        if body.get("store") is not False:
            window = [output[-1]] if state is not None else [*context, message]
            self._compactor.remember(response_id, window)
        return Turn(response=response, compaction_state=state)

    def reseal(self, state: dict[str, Any], variant: int) -> str:
        """Another valid token for the same state (streams re-encrypt, as the live API does)."""
        return self._compactor.seal_state(state, variant)

    # -- the request's parts ----------------------------------------------------------------

    def _policy(self, body: dict[str, Any], items: list[dict[str, Any]]) -> tuple[int | None, bool]:
        """(the compaction threshold in tokens or None, whether the input forces a compaction)."""
        threshold: int | None = None
        entries = body.get("context_management")
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            kind = entry.get("type") if isinstance(entry, dict) else None
            if kind != _COMPACTION:
                raise bad_request(
                    f"Invalid value: {kind!r}. Supported values are: 'compaction'.",
                    param=f"context_management[{index}].type",
                    code="invalid_value",
                )
            given = entry.get("compact_threshold")
            limit = (
                given
                if isinstance(given, int)
                else int(self._compactor.context_window * DEFAULT_THRESHOLD)
            )
            threshold = limit if threshold is None else min(threshold, limit)
        triggers = [i for i, item in enumerate(items) if _item_type(item) == _TRIGGER]
        if triggers and triggers[0] != len(items) - 1:
            raise bad_request(
                "A compaction_trigger item must be the final input item.",
                param=f"input[{triggers[0]}]",
                code="invalid_value",
            )
        return threshold, bool(triggers)

    def _open(self, items: list[dict[str, Any]], places: list[str | None]) -> _Context:
        """The conversation with each compaction item standing for everything before it."""
        ctx = _Context(transcript=[], shown=[], instructions=[])
        for item, where in zip(items, places, strict=True):
            if _item_type(item) == _COMPACTION:
                state = self._compactor.open_item(item, where)
                carried = [i for i in state["items"] if isinstance(i, dict)]
                sealed = state.get("instructions", [])
                ctx.transcript = copy.deepcopy(carried)
                ctx.shown = _user_turns(carried)
                ctx.instructions = [i for i in sealed if isinstance(i, str)]
            else:
                ctx.transcript.append(copy.deepcopy(item))
                ctx.shown.append(item)
        return ctx


def _response_object(
    body: dict[str, Any], response_id: str, model: str, now: int, output: list[dict[str, Any]]
) -> dict[str, Any]:
    """The Response object: only properties every bundled spec version declares.

    ``image`` (the image policy in effect, see ``_newer``) is added when the request set it.
    """

    def given(name: str, default: Any) -> Any:
        value = body.get(name)
        return default if value is None else copy.deepcopy(value)

    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": now,
        "status": "completed",
        "background": False,
        "completed_at": now,
        "error": None,
        "incomplete_details": None,
        "instructions": given("instructions", None),
        "max_output_tokens": given("max_output_tokens", None),
        "max_tool_calls": given("max_tool_calls", None),
        "model": model,
        "output": output,
        "parallel_tool_calls": given("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "temperature": given("temperature", 1.0),
        "text": given("text", {"format": {"type": "text"}, "verbosity": "medium"}),
        "tool_choice": given("tool_choice", "auto"),
        "tools": given("tools", []),
        "top_logprobs": given("top_logprobs", 0),
        "top_p": given("top_p", 1.0),
        "truncation": given("truncation", "disabled"),
        "usage": None,
        "metadata": given("metadata", {}),
    }
    if IMAGE in body:
        response[IMAGE] = effective_image(body[IMAGE])
    return response
