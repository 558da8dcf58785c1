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
- ``litellm``: ``/v1``, bare and ``/openai/v1`` paths; ``openai/`` model prefixes are routed to
  the upstream; response ids become ``resp_`` + base64 of
  ``litellm:custom_llm_provider:openai;model_id:<id>;response_id:<upstream id>`` (decoded again
  when sent back as ``previous_response_id``); errors carry the HTTP status as ``code`` and
  upstream messages are prefixed ``litellm.<Exception>: OpenAIException - ``.
- ``truefoundry``: ``/api/llm/responses/compact``; ``model`` must be ``<account>/<model>``.
- ``bifrost``: ``/openai/v1`` and ``/v1`` paths (``/v1`` needs ``provider/model``); ``fallbacks``
  accepted; answers add ``model``, ``extra_fields``, ``usage.cost`` and cached read/write
  tokens; every error is Bifrost's envelope (``is_bifrost_error`` false when the upstream
  failed, true when the gateway refused).

Costs reported by the Bifrost dialect use fixed illustrative rates (``INPUT_PRICE`` and
``OUTPUT_PRICE`` dollars per million tokens), so answers stay deterministic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..contract._dialects import Dialect, get_dialect
from ._apierror import ApiError

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


class Wire:
    """OpenAI's own wire; the gateways below override what they change."""

    name: ClassVar[str] = "openai"

    def __init__(self) -> None:
        self.profile: Dialect = get_dialect(self.name)

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

    def error(self, call: Call, exc: ApiError) -> Any:
        """An error as the gateway returns it."""
        if isinstance(exc, GatewayError) and exc.payload is not None:
            return exc.payload
        return exc.body()


class AzureWire(Wire):
    name = "azure"
    API_VERSIONS = ("v1", "preview", "latest")

    @property
    def routes(self) -> frozenset[str]:
        return _with_responses(self.profile.compact_paths)

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


class LiteLLMWire(Wire):
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

    @property
    def routes(self) -> frozenset[str]:
        return _with_responses(self.profile.compact_paths)

    def upstream_request(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body)
        model = body.get("model")
        if isinstance(model, str) and model.startswith("openai/"):
            body["model"] = model.removeprefix("openai/")
        previous = body.get("previous_response_id")
        if isinstance(previous, str):
            body["previous_response_id"] = decode_litellm_id(previous) or previous
        return body

    def response(self, call: Call, payload: dict[str, Any]) -> dict[str, Any]:
        model_id = hashlib.sha256(str(call.model).encode("utf-8")).hexdigest()
        return {**payload, "id": encode_litellm_id(payload["id"], model_id)}

    def error(self, call: Call, exc: ApiError) -> Any:
        message = exc.message
        if not isinstance(exc, GatewayError):
            name = self.EXCEPTIONS.get(exc.status, "APIError")
            message = f"litellm.{name}: OpenAIException - {message}"
        return {
            "error": {
                "message": message,
                "type": exc.type,
                "param": exc.param,
                "code": str(exc.status),
            }
        }


def encode_litellm_id(response_id: str, model_id: str | None, provider: str = "openai") -> str:
    """The id LiteLLM returns for an upstream response id."""
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


class TrueFoundryWire(Wire):
    name = "truefoundry"

    @property
    def routes(self) -> frozenset[str]:
        return _with_responses(self.profile.compact_paths)

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


class BifrostWire(Wire):
    name = "bifrost"
    PROVIDERS = ("openai",)

    @property
    def routes(self) -> frozenset[str]:
        return _with_responses(self.profile.compact_paths)

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


_WIRES: dict[str, type[Wire]] = {
    w.name: w for w in (Wire, AzureWire, LiteLLMWire, TrueFoundryWire, BifrostWire)
}


def make_wire(dialect: str) -> Wire:
    """The wire of a dialect (DialectError when unknown)."""
    return _WIRES[get_dialect(dialect).name]()
