"""What each gateway dialect changes on the wire, around the same compaction engine.

The server plays the gateway and its OpenAI upstream at once. A :class:`Wire` decides which
paths answer (each compaction path, and beside it the same prefix's ``POST /responses``),
admits or refuses a request at the gateway (credentials, query), turns the body the client sent
into the one the upstream sees, and dresses the upstream's answer, stream events and errors the
way the gateway returns them:

- ``openai``: the API itself; answers every gateway's compaction path, as it always has.
- ``azure``: ``/openai/v1/responses/compact``; an ``api-key`` header or a bearer token is
  required (401 in Azure's ``{"error": {"code", "message"}}`` otherwise); ``api-version`` is
  optional and, when given, one of ``v1``, ``preview``, ``latest``; ``model`` is a deployment.
- ``litellm``: as the LiteLLM proxy 1.108.7 with a master key (and no database) answers:
  ``/v1``, bare and ``/openai/v1`` paths; a request without credentials gets a plain-text
  ``500 Internal Server Error``; ``openai/`` model prefixes are routed to the upstream; response
  ids are ``resp_`` + base64 of
  ``litellm:custom_llm_provider:openai;model_id:<id>;response_id:<upstream id>``, and by default
  (response id security, on whenever the proxy has a master key) that id is sealed again into an
  opaque ``resp_`` + URL-safe base64 token (see :func:`seal_litellm_id`); either form is opened
  again when sent back as ``previous_response_id``. Errors carry the HTTP status as ``code`` and
  ``param: null``; an upstream error arrives as ``litellm.<Exception>: OpenAIException - `` and
  the upstream's whole error body as JSON text, then LiteLLM's hint for encrypted content that
  did not verify, then ``LiteLLM: model group '<model>' failed with the error above. No fallback
  was attempted.``; the proxy's own refusals add ``provider_specific_fields: {"error": <message>}``
  (a request without ``model``: ``<route>: Invalid model name passed in model=None. ...``).
- ``truefoundry``: ``/api/llm/responses/compact``; ``model`` must be ``<account>/<model>``.
- ``bifrost``: ``/openai/v1`` and ``/v1`` paths (``/v1`` needs ``provider/model``); ``fallbacks``
  accepted; answers add ``model``, ``extra_fields``, ``usage.cost`` and cached read/write
  tokens; every error is Bifrost's envelope (``is_bifrost_error`` false when the upstream
  failed, true when the gateway refused).
- ``ollama``, ``vllm``, ``llamastack``: servers whose compaction tokens are plaintext JSON (a
  :class:`~._tokens.PlaintextSealer`, read back when passed in again): Ollama answers one
  compaction item without an id, compacts on a ``compaction_trigger`` only with ``stream:
  true``, and refuses in plain text where it serves nothing; vLLM wants a bearer token and
  gives errors an integer ``code``; Llama Stack's errors keep only ``message`` (each class says
  where each fact comes from).
- ``xai``: ``/v1/responses/compact`` answers one ``compaction`` item (id ``cmp_<uuid>``, the
  answer's), no user turn re-issued, with ``model`` and ``usage.dropped_message_count``;
  ``context_management`` on ``/v1/responses`` is ignored; errors ``{"code", "error"}``.
- ``openrouter``: ``POST /api/v1/responses`` only (compaction there is server-side, for
  ``openai/`` models; other providers drop ``context_management``); errors
  ``{"error": {"code", "message", "metadata"}}``.
- ``vercel``: OpenAI's paths with ``provider/model`` ids; compaction for ``openai/`` models only,
  forwarded with the bare model id and answered as OpenAI answers.

Costs reported by the Bifrost dialect use fixed illustrative rates (``INPUT_PRICE`` and
``OUTPUT_PRICE`` dollars per million tokens), so answers stay deterministic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..contract._dialects import Dialect, get_dialect
from ._apierror import ApiError
from ._tokens import NOT_OLLAMA, PlaintextSealer, Sealer, TokenSealer

# Every compaction route any supported gateway exposes: the plain server answers them all.
ALL_ROUTES = frozenset(
    {
        "/v1/responses/compact",
        "/openai/v1/responses/compact",
        "/responses/compact",
        "/api/llm/responses/compact",
    }
)
# POST /responses (server-side compaction) beside each compaction route: same prefixes.
RESPONSES_ROUTES = frozenset(route.removesuffix("/compact") for route in ALL_ROUTES)
INPUT_PRICE = 1.25  # dollars per million input tokens (Bifrost dialect)
OUTPUT_PRICE = 10.0  # dollars per million output tokens (Bifrost dialect)
LITELLM_ID_FORMAT = "litellm:custom_llm_provider:{};model_id:{};response_id:{}"
_LITELLM_PREFIX = "litellm:custom_llm_provider:"
# What LiteLLM seals into a response id under response id security, and who a master key is.
LITELLM_MANAGED_ID_FORMAT = "litellm_proxy:responses_api:response_id:{};user_id:{};team_id:{}"
LITELLM_MASTER_USER = "default_user_id"
_SEAL_NONCE = 24  # LiteLLM's sealed ids: nonce (24 bytes), tag (16), then the ciphertext
_SEAL_TAG = 16
_SEAL_CONTEXT = b"pytest-compaction litellm response id"
# Appended by LiteLLM to an upstream error about encrypted content that did not verify.
LITELLM_ENCRYPTED_CONTENT_HINT = (
    "\n\n This error occurs when load balancing Responses API across deployments with different "
    "API keys.\n"
    "   Encrypted content is tied to the organization that created it and cannot be decrypted "
    "by other organizations.\n\n"
    "   Solution: Enable 'encrypted_content_affinity' to route follow-up requests to the correct "
    "deployment:\n\n"
    "   router_settings:\n"
    "     enable_pre_call_checks: true\n"
    "     optional_pre_call_checks:\n"
    "       - encrypted_content_affinity\n\n"
    "   Learn more: https://docs.litellm.ai/docs/response_api#encrypted-content-affinity-multi-"
    "region-load-balancing"
)
LITELLM_NO_FALLBACK = (
    "\n\nLiteLLM: model group '{}' failed with the error above. No fallback was attempted."
)
LITELLM_INVALID_MODEL = (
    "{}: Invalid model name passed in model={}. Call `/v1/models` to view available models for "
    "your key."
)


class PlainText(str):
    """An answer a gateway sends as ``text/plain`` rather than in a JSON envelope."""

    CONTENT_TYPE: ClassVar[str] = "text/plain; charset=utf-8"


class GatewayError(ApiError):
    """An error the gateway answers itself, before or instead of asking the upstream."""

    def __init__(self, status: int, message: str, **options: Any) -> None:
        options.setdefault("param", None)
        options.setdefault("code", None)
        super().__init__(status, message, **options)
        self.payload: dict[str, Any] | None = None


@dataclass
class Call:
    """What the gateway knows about the request being answered."""

    path: str
    model: str | None = None  # the model as the client named it
    latency_ms: int = 0
    ids: dict[str, str] = field(default_factory=dict)  # id as answered -> id as the gateway shows
    folded: int = 0  # input items a compaction folds (what xAI reports as dropped)
    triggered: bool = False  # a compaction_trigger asked for this compaction (Ollama)


class Wire:
    """OpenAI's own wire; the gateways below override what they change."""

    name: ClassVar[str] = "openai"
    # The token is bound to the compaction item's id, as the API binds it ("Encrypted content
    # item_id did not match the target item id"); gateways that forward items unchanged to
    # OpenAI keep the binding, servers that issue their own tokens do not document one.
    binds_item_ids: ClassVar[bool] = True

    def __init__(self, *, key: bytes = b"", deterministic: bool = False) -> None:
        self.profile: Dialect = get_dialect(self.name)
        self.key = key  # the server's key: gateways that seal what they hand out use it
        self.deterministic = deterministic

    @property
    def routes(self) -> frozenset[str]:
        return ALL_ROUTES | RESPONSES_ROUTES

    def is_responses(self, path: str) -> bool:
        """Whether ``path`` is POST /responses rather than the compaction endpoint."""
        return path in RESPONSES_ROUTES

    def admit(self, call: Call, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> None:
        """Refuse a request at the gateway (raise GatewayError)."""

    def upstream_request(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        """The body the upstream sees."""
        return body

    def response(self, call: Call, payload: dict[str, Any]) -> dict[str, Any]:
        """The upstream's answer as the gateway returns it."""
        return payload

    def event(self, call: Call, event: dict[str, Any]) -> dict[str, Any]:
        """A stream event as the gateway passes it on: the response it carries is dressed."""
        if isinstance(event.get("response"), dict):
            return {**event, "response": self.response(call, event["response"])}
        return event

    def stream(self, call: Call, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A whole event stream as the gateway passes it on (each event dressed by ``event``)."""
        return [self.event(call, event) for event in events]

    def sealer(self) -> TokenSealer:
        """How compaction tokens are made: encrypted under the server's key, unless overridden."""
        return Sealer(self.key, deterministic=self.deterministic)

    def error(self, call: Call, exc: ApiError) -> Any:
        """An error as the gateway returns it."""
        if isinstance(exc, GatewayError) and exc.payload is not None:
            return exc.payload
        return exc.body()


class GatewayWire(Wire):
    """A gateway or another server: it answers its own compaction paths (and ``/responses``
    beside each), not every gateway's as the plain server does."""

    @property
    def routes(self) -> frozenset[str]:
        return _with_responses(self.profile.compact_paths)


class PlaintextWire(GatewayWire):
    """A server whose ``encrypted_content`` is readable JSON it issues itself: its tokens are
    plaintext, and no binding to the item's id is documented."""

    binds_item_ids = False

    def sealer(self) -> TokenSealer:
        return PlaintextSealer()


class AzureWire(GatewayWire):
    name = "azure"
    API_VERSIONS = ("v1", "preview", "latest")

    def admit(self, call: Call, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> None:
        if not (headers.get("api-key") or headers.get("authorization")):
            raise _azure_error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                "to provide a valid key for an active subscription and use a correct regional "
                "API endpoint for your resource.",
            )
        for version in query.get("api-version", []):
            if version not in self.API_VERSIONS:
                raise _azure_error(400, "BadRequest", "API version not supported")

    def upstream_request(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        return body  # the deployment name is the model the upstream is asked for

    def error(self, call: Call, exc: ApiError) -> Any:
        if isinstance(exc, GatewayError) and exc.payload is None and exc.status == 404:
            return {"error": {"code": "404", "message": "Resource not found"}}
        return super().error(call, exc)


def _azure_error(status: int, code: str, message: str) -> GatewayError:
    error = GatewayError(status, message, code=code)
    error.payload = {"error": {"code": code, "message": message}}
    return error


class LiteLLMWire(GatewayWire):
    name = "litellm"
    EXCEPTIONS: ClassVar[dict[int, str]] = {
        400: "BadRequestError",
        401: "AuthenticationError",
        403: "PermissionDeniedError",
        404: "NotFoundError",
        408: "Timeout",
        422: "UnprocessableEntityError",
        429: "RateLimitError",
        500: "InternalServerError",
        503: "ServiceUnavailableError",
    }

    def __init__(
        self, *, key: bytes = b"", deterministic: bool = False, id_security: bool = True
    ) -> None:
        super().__init__(key=key, deterministic=deterministic)
        # LiteLLM's response id security (``disable_responses_id_security`` turns it off).
        self.id_security = id_security

    def admit(self, call: Call, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> None:
        if not any(headers.get(name) for name in self.profile.auth_headers):
            # What 1.108.7 answers without a database when no key comes with the request.
            raise PlainTextError(500, "Internal Server Error")

    def upstream_request(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body)
        model = body.get("model")
        if model is None:
            route = "/responses" if self.is_responses(call.path) else "/responses/compact"
            raise _litellm_refusal(400, LITELLM_INVALID_MODEL.format(route, None))
        if isinstance(model, str) and model.startswith("openai/"):
            body["model"] = model.removeprefix("openai/")
        previous = body.get("previous_response_id")
        if isinstance(previous, str):
            opened = open_litellm_id(previous, self.key) or previous
            body["previous_response_id"] = decode_litellm_id(opened) or opened
        return body

    def response(self, call: Call, payload: dict[str, Any]) -> dict[str, Any]:
        upstream = payload["id"]
        shown = call.ids.get(upstream)
        if shown is None:  # a stream's events all show the id its first one did
            model_id = hashlib.sha256(str(call.model).encode("utf-8")).hexdigest()
            shown = encode_litellm_id(upstream, model_id)
            if self.id_security:
                nonce = None if not self.deterministic else _derived_nonce(self.key, shown)
                shown = seal_litellm_id(shown, self.key, nonce=nonce)
            call.ids[upstream] = shown
        return {**payload, "id": shown}

    def error(self, call: Call, exc: ApiError) -> Any:
        if isinstance(exc, PlainTextError):
            return PlainText(exc.message)
        if isinstance(exc, GatewayError):
            shown: dict[str, Any] = {
                "message": exc.message,
                "type": exc.type,
                "param": exc.param,
                "code": str(exc.status),
            }
            if exc.payload is not None:
                shown.update(exc.payload)
            return {"error": shown}
        name = self.EXCEPTIONS.get(exc.status, "APIError")
        # The upstream's whole error body, as Python's json writes it, inside LiteLLM's text.
        message = f"litellm.{name}: OpenAIException - {json.dumps(exc.body())}"
        if exc.code == "invalid_encrypted_content" or "could not be verified" in exc.message:
            message += LITELLM_ENCRYPTED_CONTENT_HINT
        message += LITELLM_NO_FALLBACK.format(call.model)
        shown = {"message": message, "type": exc.type, "param": None, "code": str(exc.status)}
        return {"error": shown}


class PlainTextError(GatewayError):
    """A gateway's answer outside any JSON envelope (its ``message`` is the whole body)."""


def _litellm_refusal(status: int, message: str) -> GatewayError:
    """The proxy's own refusal: its detail comes back as ``provider_specific_fields``."""
    error = GatewayError(status, message)
    error.payload = {"provider_specific_fields": {"error": message}}
    return error


def encode_litellm_id(response_id: str, model_id: str | None, provider: str = "openai") -> str:
    """The id LiteLLM returns for an upstream response id (without response id security)."""
    text = LITELLM_ID_FORMAT.format(provider, model_id, response_id)
    return "resp_" + base64.b64encode(text.encode("utf-8")).decode("ascii")


def decode_litellm_id(value: str) -> str | None:
    """The upstream response id inside a LiteLLM id, or None when ``value`` is not one."""
    if not value.startswith("resp_"):
        return None
    try:
        text = base64.b64decode(value[5:], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not text.startswith(_LITELLM_PREFIX):
        return None
    fields = dict(part.partition(":")[::2] for part in text[len("litellm:") :].split(";"))
    return fields.get("response_id") or None


def seal_litellm_id(
    litellm_id: str, key: bytes, *, user_id: str = LITELLM_MASTER_USER, nonce: bytes | None = None
) -> str:
    """A LiteLLM id as the proxy shows it under response id security: an opaque token.

    LiteLLM seals ``litellm_proxy:responses_api:response_id:<id>;user_id:<user>;team_id:``
    with a key derived from its master key and answers ``resp_`` + URL-safe base64 of nonce (24
    bytes), tag (16) and ciphertext: 397 characters for a plain id of 172. This seals the same
    text in the same layout with AES-256-GCM under a key derived from the server's, so that the
    server can open what it handed out; LiteLLM's own cipher (XSalsa20-Poly1305) is not in the
    project's dependencies, and nobody but the issuer can open either. ``nonce``: 24 bytes, by
    default random (deterministic servers derive it from the text).
    """
    text = LITELLM_MANAGED_ID_FORMAT.format(litellm_id, user_id, "").encode("utf-8")
    nonce = os.urandom(_SEAL_NONCE) if nonce is None else nonce
    if len(nonce) != _SEAL_NONCE:
        raise ValueError(f"the nonce must be {_SEAL_NONCE} bytes, got {len(nonce)}")
    sealed = AESGCM(_seal_key(key)).encrypt(nonce, text, None)  # ciphertext, then the tag
    token = nonce + sealed[-_SEAL_TAG:] + sealed[:-_SEAL_TAG]
    return "resp_" + base64.urlsafe_b64encode(token).decode("ascii")


def open_litellm_id(value: str, key: bytes) -> str | None:
    """The LiteLLM id sealed in ``value`` with ``key``, or None when it is not such a token."""
    if not value.startswith("resp_"):
        return None
    try:
        token = base64.urlsafe_b64decode(value[5:].encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    if len(token) <= _SEAL_NONCE + _SEAL_TAG:
        return None
    nonce, tag, ciphertext = (
        token[:_SEAL_NONCE],
        token[_SEAL_NONCE : _SEAL_NONCE + _SEAL_TAG],
        token[_SEAL_NONCE + _SEAL_TAG :],
    )
    try:
        text = AESGCM(_seal_key(key)).decrypt(nonce, ciphertext + tag, None).decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        return None
    head, _, rest = text.partition("response_id:")
    if head != "litellm_proxy:responses_api:":
        return None
    return rest.split(";", 1)[0] or None


def _seal_key(key: bytes) -> bytes:
    return hashlib.sha256(_SEAL_CONTEXT + key).digest()


def _derived_nonce(key: bytes, litellm_id: str) -> bytes:
    return hmac.new(_seal_key(key), litellm_id.encode("utf-8"), "sha256").digest()[:_SEAL_NONCE]


class TrueFoundryWire(GatewayWire):
    name = "truefoundry"

    def upstream_request(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if isinstance(model, str):
            account, sep, name = model.partition("/")
            if not (sep and account and name):
                raise GatewayError(
                    400,
                    f"Invalid model '{model}': use '<provider account>/<model>', as in "
                    "'openai-main/gpt-4o'.",
                    param="model",
                    code="invalid_value",
                )
            return {**body, "model": name}
        return body


class BifrostWire(GatewayWire):
    name = "bifrost"
    PROVIDERS = ("openai",)

    def upstream_request(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body)
        fallbacks = body.pop("fallbacks", None)
        if fallbacks is not None and not (
            isinstance(fallbacks, list)
            and all(isinstance(f, str) and _split_model(f)[0] for f in fallbacks)
        ):
            raise GatewayError(
                400,
                "fallbacks must be a list of 'provider/model' strings",
                param="fallbacks",
            )
        model = body.get("model")
        if isinstance(model, str):
            provider, name = _split_model(model)
            if provider is None and call.path in ("/v1/responses/compact", "/v1/responses"):
                raise GatewayError(
                    400, f"model should be in provider/model format, got '{model}'", param="model"
                )
            if provider is not None and provider not in self.PROVIDERS:
                raise GatewayError(400, f"provider '{provider}' is not configured", param="model")
            body["model"] = name
        return body

    def response(self, call: Call, payload: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(payload.get("usage"), dict):
            return payload  # a stream's snapshot before usage is known
        usage = dict(payload["usage"])
        details = dict(usage["input_tokens_details"])
        details["cached_read_tokens"] = details.get("cached_tokens", 0)
        details["cached_write_tokens"] = details.get("cache_write_tokens", 0)
        usage["input_tokens_details"] = details
        input_cost = round(usage["input_tokens"] * INPUT_PRICE / 1e6, 12)
        output_cost = round(usage["output_tokens"] * OUTPUT_PRICE / 1e6, 12)
        usage["cost"] = {
            "input_tokens_cost": input_cost,
            "output_tokens_cost": output_cost,
            "reasoning_tokens_cost": 0.0,
            "citation_tokens_cost": 0.0,
            "search_queries_cost": 0.0,
            "request_cost": 0.0,
            "total_cost": round(input_cost + output_cost, 12),
        }
        provider, model = _split_model(call.model or "")
        out: dict[str, Any] = {}
        for key, value in payload.items():
            out[key] = usage if key == "usage" else value
            if key == "object":
                out["model"] = model
        out["extra_fields"] = {
            "request_type": "responses",
            "provider": provider or "openai",
            "model_requested": model,
            "latency": call.latency_ms,
            "chunk_index": 0,
        }
        return out

    def error(self, call: Call, exc: ApiError) -> Any:
        field: dict[str, Any] = {"type": exc.type, "code": exc.code, "message": exc.message}
        if exc.param is not None:
            field["param"] = exc.param
        extra: dict[str, Any] = {}
        if call.model is not None:
            provider, model = _split_model(call.model)
            extra = {
                "provider": provider or "openai",
                "model_requested": model,
                "request_type": "responses",
            }
        return {
            "is_bifrost_error": isinstance(exc, GatewayError),
            "status_code": exc.status,
            "error": {k: v for k, v in field.items() if v is not None},
            "extra_fields": extra,
        }


def _split_model(model: str) -> tuple[str | None, str]:
    provider, sep, name = model.partition("/")
    if sep and provider and name:
        return provider, name
    return None, model


def _with_responses(compact_paths: tuple[str, ...]) -> frozenset[str]:
    """A gateway's compaction paths and, beside each, its POST /responses path."""
    return frozenset(compact_paths) | {p.removesuffix("/compact") for p in compact_paths}


# -- servers whose compaction tokens are plaintext --------------------------------------------

_COMPACTION = "compaction"
_TRIGGER = "compaction_trigger"
# Event types that belong to an assistant message, which Ollama's compaction stream does not carry.
_MESSAGE_EVENTS = (
    "response.content_part.",
    "response.output_text.",
)
OLLAMA_NOT_FOUND = "404 page not found"  # gin's answer to a route it does not serve
OLLAMA_TRIGGER_NEEDS_STREAM = "compaction_trigger requires stream=true"
OLLAMA_TRIGGER_NOT_LAST = "compaction_trigger must be the final and only compaction trigger"
OLLAMA_TRIGGER_ON_COMPACT = "compaction_trigger is only valid on POST /v1/responses"
# vLLM's ``ErrorInfo.type`` by HTTP status (the exception names its error responses carry).
VLLM_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    405: "MethodNotAllowed",
    413: "RequestEntityTooLarge",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


def _item_type(item: Any) -> Any:
    if not isinstance(item, dict):
        return None
    return item.get("type", "message" if "role" in item else None)


def _without_id(item: Any) -> Any:
    """A compaction item as plaintext servers that mint no item id return it."""
    if _item_type(item) != _COMPACTION:
        return item
    return {k: v for k, v in item.items() if k != "id"}


def _cached_only(usage: Any) -> Any:
    """Usage whose input details hold ``cached_tokens`` only (no ``cache_write_tokens``)."""
    if not isinstance(usage, dict):
        return usage
    details = usage.get("input_tokens_details")
    out = dict(usage)
    if isinstance(details, dict):
        out["input_tokens_details"] = {"cached_tokens": details.get("cached_tokens", 0)}
    return out


class OllamaWire(PlaintextWire):
    """Ollama's OpenAI-compatible server (``ollama serve``, ``http://localhost:11434/v1``).

    ``POST /v1/responses/compact`` summarizes with the requested model and answers ``{"id",
    "object": "response.compaction", "created_at", "output", "usage"}`` whose ``output`` is one
    ``{"type": "compaction", "encrypted_content"}`` item: no user turn re-issued, no item id.
    The content is Ollama's plaintext payload ``{"type": "ollama_compaction", "version": 1,
    "summary", "retained"}``, expanded again when the item comes back as input
    (openai/responses_compact.go, ollama/ollama#18224). ``compaction_trigger`` as the last input
    item of ``POST /v1/responses`` asks for the same compaction and needs ``stream: true``
    (``400 "compaction_trigger requires stream=true"`` otherwise); the stream is
    ``response.created``, ``response.in_progress``, ``response.output_item.added`` and ``.done``
    of the compaction item, ``response.completed`` with it as the only output. The compact
    handler does not read ``previous_response_id``; ``context_management`` is not Ollama's (it
    compacts on the trigger only). Usage details hold ``cached_tokens`` and
    ``reasoning_tokens`` only. Credentials: none locally ("required but ignored",
    docs.ollama.com/api/openai-compatibility), a bearer key for ollama.com. Errors are
    ``{"error": {"message", "type", "param": null, "code"}}`` with ``type``
    ``invalid_request_error`` (400), ``not_found_error`` (404) or ``api_error`` (openai.NewError),
    and ``code`` ``"invalid_request_error"`` on 400 (writeResponsesCompactionError); a path it
    does not serve is gin's plain-text ``404 page not found``.
    """

    name = "ollama"

    def sealer(self) -> TokenSealer:
        return PlaintextSealer("ollama")

    def upstream_request(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body)
        items = body.get("input")
        listed = items if isinstance(items, list) else []
        triggers = [i for i, item in enumerate(listed) if _item_type(item) == _TRIGGER]
        if self.is_responses(call.path):
            body.pop("context_management", None)
            if not triggers or triggers[-1] != len(listed) - 1:
                return body
            _ollama_required(body)
            if body.get("stream") is not True:
                raise _ollama_refusal(OLLAMA_TRIGGER_NEEDS_STREAM)
            if len(triggers) > 1:
                raise _ollama_refusal(OLLAMA_TRIGGER_NOT_LAST)
            call.triggered = True
            return body
        _ollama_required(body)
        if triggers:
            raise _ollama_refusal(OLLAMA_TRIGGER_ON_COMPACT)
        body.pop("previous_response_id", None)
        return body

    def response(self, call: Call, payload: dict[str, Any]) -> dict[str, Any]:
        compacting = payload.get("object") == "response.compaction" or call.triggered
        out = dict(payload)
        output = payload.get("output")
        if compacting and isinstance(output, list):
            out["output"] = [_without_id(i) for i in output if _item_type(i) == _COMPACTION]
        if "usage" in out:
            out["usage"] = _cached_only(out["usage"])
        return out

    def event(self, call: Call, event: dict[str, Any]) -> dict[str, Any]:
        event = super().event(call, event)
        if "item" in event:
            return {**event, "item": _without_id(event["item"])}
        return event

    def stream(self, call: Call, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not call.triggered:
            return super().stream(call, events)
        kept: list[dict[str, Any]] = []
        for event in events:
            kind = str(event.get("type", ""))
            item = event.get("item")
            if kind.startswith(_MESSAGE_EVENTS) or kind == "response.compaction.compacting":
                continue
            if item is not None and _item_type(item) != _COMPACTION:
                continue
            if "output_index" in event:
                event = {**event, "output_index": 0}
            kept.append(event)
        return [
            {**self.event(call, event), "sequence_number": number}
            for number, event in enumerate(kept)
        ]

    def error(self, call: Call, exc: ApiError) -> Any:
        if isinstance(exc, GatewayError) and exc.payload is None and exc.status == 404:
            return PlainText(OLLAMA_NOT_FOUND)
        if isinstance(exc, GatewayError) and exc.payload is not None:
            return exc.payload
        message = exc.message
        if exc.code == "invalid_encrypted_content":
            message = NOT_OLLAMA
        kind = {400: "invalid_request_error", 404: "not_found_error"}.get(exc.status, "api_error")
        code = "invalid_request_error" if exc.status == 400 else None
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _ollama_refusal(message: str) -> GatewayError:
    error = GatewayError(400, message)
    error.payload = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request_error",
        }
    }
    return error


def _ollama_required(body: dict[str, Any]) -> None:
    """Ollama's own checks of a compaction request (decodeRawResponsesRequest)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _ollama_refusal("model is required")
    if body.get("input") is None:
        raise _ollama_refusal("input is required")


class VllmWire(PlaintextWire):
    """vLLM's OpenAI-compatible server (``vllm serve``, ``http://localhost:8000/v1``).

    Compaction: ``POST /v1/responses/compact`` (vllm-project/vllm#56970, open; the vLLM
    project's agentic-api serves the same path, vllm-project/agentic-api#144): the user turns
    re-issued with ``msg_`` ids, then one ``cmp_`` compaction item whose ``encrypted_content`` is
    plaintext (agentic-api: the model's summary; here the state as JSON, so this server reads
    it back). Started with ``--api-key`` it wants ``Authorization: Bearer <key>`` on ``/v1``
    paths and answers ``401 {"error": "Unauthorized"}`` without one (AuthenticationMiddleware);
    this server accepts any bearer token. Errors are ``ErrorResponse``: ``{"error": {"message",
    "type": <exception name>, "param", "code": <HTTP status as an integer>}}``.
    """

    name = "vllm"

    def admit(self, call: Call, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            error = GatewayError(401, "Unauthorized")
            error.payload = {"error": "Unauthorized"}
            raise error

    def error(self, call: Call, exc: ApiError) -> Any:
        if isinstance(exc, GatewayError) and exc.payload is not None:
            return exc.payload
        message = exc.message
        if isinstance(exc, GatewayError) and exc.status == 404:
            message = "Not Found"
        kind = VLLM_ERROR_TYPES.get(exc.status, "InternalServerError")
        return {"error": {"message": message, "type": kind, "param": exc.param, "code": exc.status}}


class LlamaStackWire(PlaintextWire):
    """Llama Stack (now OGX) serving the Responses API (``llama stack run``, ``/v1``).

    ``POST /v1/responses/compact`` (llamastack/llama-stack#5327, ogx-ai/ogx) summarizes with an
    LLM and answers the user turns re-issued (``msg_`` ids) and one compaction item (``cmp_``
    id) whose ``encrypted_content`` is plaintext ("plaintext in OGX"; there the summary, here
    the state as JSON, so this server reads it back); ``context_management`` compacts on
    ``POST /v1/responses``. Usage details hold ``cached_tokens`` and ``reasoning_tokens`` only
    (OpenAIResponseUsage). Credentials: a bearer token when the stack configures an auth
    provider, and provider keys in ``X-LlamaStack-Provider-Data`` (``X-OGX-Provider-Data``).
    Errors are ``OpenAIErrorResponse.from_message(...)`` with None fields left out, so
    ``{"error": {"message"}}``; a path no router serves is FastAPI's ``{"detail": "Not Found"}``.
    """

    name = "llamastack"

    def response(self, call: Call, payload: dict[str, Any]) -> dict[str, Any]:
        if "usage" not in payload:
            return payload
        return {**payload, "usage": _cached_only(payload["usage"])}

    def error(self, call: Call, exc: ApiError) -> Any:
        if isinstance(exc, GatewayError) and exc.payload is None and exc.status == 404:
            return {"detail": "Not Found"}
        return {"error": {"message": exc.message}}


# gRPC status texts (the ``code`` of xAI's errors) by the HTTP status gRPC maps them to.
XAI_STATUS_TEXT = {
    400: "Client specified an invalid argument",
    401: "The request does not have valid authentication credentials",
    403: "The caller does not have permission to execute the specified operation",
    404: "Some requested entity was not found",
    408: "Deadline expired before operation could complete",
    413: "Client specified an invalid argument",
    429: "Some resource has been exhausted",
    500: "Internal error",
    501: "Operation is not implemented or not supported",
    503: "The service is currently unavailable",
    504: "Deadline expired before operation could complete",
}
XAI_UNKNOWN = "Unknown error"


class XaiWire(GatewayWire):
    """xAI's API (``api.x.ai``) compacting with its own model, which the upstream stands for.

    ``POST /v1/responses/compact`` answers a single ``compaction`` item that stands in for the
    whole prior conversation: no user message is re-issued, one compaction per call. The item's
    id is the answer's, ``cmp_`` and a UUID; the answer names ``model`` and counts the input
    items folded as ``usage.dropped_message_count`` (docs.x.ai, Context Compaction). Such an id
    sent back as ``previous_response_id`` finds the compacted window. On ``POST /v1/responses``
    ``context_management`` is silently ignored (measured on api.x.ai, justrach/codegraff#502):
    the compact endpoint is xAI's only compaction. Errors: ``{"code": <gRPC status text>,
    "error": <message>}``.
    """

    name = "xai"
    binds_item_ids = False

    def __init__(self, *, key: bytes = b"", deterministic: bool = False) -> None:
        super().__init__(key=key, deterministic=deterministic)
        self._upstream: dict[str, str] = {}  # cmp_<uuid> as shown -> the upstream's id

    def upstream_request(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body)
        previous = body.get("previous_response_id")
        if isinstance(previous, str):
            body["previous_response_id"] = self._upstream.get(previous, previous)
        if self.is_responses(call.path):
            body.pop("context_management", None)
            return body
        given = body.get("input")
        call.folded = 1 if isinstance(given, str) else len(given) if isinstance(given, list) else 0
        return body

    def response(self, call: Call, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("object") != "response.compaction":
            return payload
        shown = self._shown_id(payload["id"])
        output = [
            {**item, "id": shown}
            for item in payload["output"]
            if isinstance(item, dict) and item.get("type") == "compaction"
        ]
        out: dict[str, Any] = {}
        for key, value in payload.items():
            if key == "id":
                value = shown
            elif key == "output":
                value = output
            elif key == "usage" and isinstance(value, dict):
                # xAI's usage details count cached tokens only (no cache_write_tokens).
                value = {**_cached_only(value), "dropped_message_count": call.folded}
            out[key] = value
            if key == "object":
                out["model"] = call.model
        return out

    def error(self, call: Call, exc: ApiError) -> Any:
        return {"code": XAI_STATUS_TEXT.get(exc.status, XAI_UNKNOWN), "error": exc.message}

    def _shown_id(self, upstream: str) -> str:
        if self.deterministic:
            digest = hashlib.sha256(self.key + upstream.encode("utf-8")).digest()
            shown = f"cmp_{uuid.UUID(bytes=digest[:16], version=4)}"
        else:
            shown = f"cmp_{uuid.uuid4()}"
        self._upstream[shown] = upstream
        return shown


OPENROUTER_PROVIDER_ERROR = "Provider returned error"


class OpenRouterWire(Wire):
    """OpenRouter (``openrouter.ai/api/v1``): server-side compaction only, and not for every model.

    It has no compact endpoint: ``POST /api/v1/responses/compact`` gets what any unknown route
    gets, ``404 {"error": {"message": "Not Found", "code": 404}}``. On ``POST /api/v1/responses``
    models are ``provider/model`` (a bare name is ``400 "<model> is not a valid model ID"``);
    ``context_management`` reaches OpenAI models (``openai/...``, served by OpenAI or Azure), and
    providers whose requests OpenRouter translates to another API (here every other provider)
    drop it and answer without a compaction item (openrouter.ai/docs/api_reference/responses/
    compaction). A request without a bearer token is ``401 "No auth credentials found"``.
    Errors are ``{"error": {"code": <status>, "message", "metadata"?}}`` (openrouter.ai/docs/
    errors); the upstream's own error comes as ``Provider returned error`` with ``metadata``
    ``{"raw": <its body as JSON text>, "provider_name": "OpenAI"}``.
    """

    name = "openrouter"
    ROUTE = "/api/v1/responses"
    COMPACTING = ("openai",)  # providers that receive context_management as the client sent it

    @property
    def routes(self) -> frozenset[str]:
        return frozenset({self.ROUTE})

    def is_responses(self, path: str) -> bool:
        return path == self.ROUTE

    def admit(self, call: Call, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> None:
        if not headers.get("authorization"):
            raise GatewayError(401, "No auth credentials found")

    def upstream_request(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if not isinstance(model, str):
            return body
        provider, _ = _split_model(model)
        if provider is None:
            raise GatewayError(400, f"{model} is not a valid model ID")
        if provider not in self.COMPACTING:
            return {k: v for k, v in body.items() if k != "context_management"}
        return body

    def error(self, call: Call, exc: ApiError) -> Any:
        if isinstance(exc, GatewayError):
            message = "Not Found" if exc.status == 404 else exc.message
            return {"error": {"message": message, "code": exc.status}}
        raw = json.dumps(exc.body())
        metadata = {"raw": raw, "provider_name": "OpenAI"}
        shown = {"message": OPENROUTER_PROVIDER_ERROR, "code": exc.status, "metadata": metadata}
        return {"error": shown}


class VercelWire(GatewayWire):
    """Vercel's AI Gateway (``ai-gateway.vercel.sh/v1``): OpenAI's paths, ``provider/model`` ids.

    ``POST /v1/responses/compact`` is forwarded to OpenAI unchanged apart from the model id, and
    OpenAI's answer is returned as is (vercel.com/docs/ai-gateway/sdks-and-apis/responses/
    compaction); it serves models routed to OpenAI only. The gateway's own refusals (a model not
    in ``provider/model`` form, a compaction for another provider) are worded here and answered
    in OpenAI's envelope: Vercel does not document them.
    """

    name = "vercel"

    def upstream_request(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if not isinstance(model, str):
            return body
        provider, name = _split_model(model)
        if provider is None:
            raise GatewayError(
                400,
                f"Invalid model '{model}': use a 'provider/model' id, as in 'openai/gpt-5.4'.",
                param="model",
                code="invalid_model",
            )
        if provider != "openai" and not self.is_responses(call.path):
            raise GatewayError(
                400,
                f"Compaction is only available for models routed to OpenAI, not '{model}'.",
                param="model",
                code="invalid_model",
            )
        return {**body, "model": name}


_WIRES: dict[str, type[Wire]] = {
    w.name: w
    for w in (
        Wire,
        AzureWire,
        LiteLLMWire,
        TrueFoundryWire,
        BifrostWire,
        OllamaWire,
        VllmWire,
        LlamaStackWire,
        XaiWire,
        OpenRouterWire,
        VercelWire,
    )
}


def make_wire(dialect: str, *, key: bytes = b"", deterministic: bool = False) -> Wire:
    """The wire of a dialect (DialectError when unknown); ``key``: the server's."""
    return _WIRES[get_dialect(dialect).name](key=key, deterministic=deterministic)
