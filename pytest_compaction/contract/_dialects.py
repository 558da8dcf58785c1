"""Gateway dialects: how OpenAI and the gateways in front of it speak compaction.

A :class:`Dialect` profile says which paths are compaction endpoints, which headers carry
credentials (filtered when recording, on top of the defaults), and which *schema overlays* apply.
An overlay is a JSON Schema document shipped in ``overlays/<dialect>.<kind>.json`` that is merged
into the derived schema of a version before the project's validator is built on the result, so a
gateway's additions are validated like any spec field, and the drift walk, which reports what no
applicable schema declares, no longer lists them. Under the plain ``openai`` profile nothing is
merged: the same additions are drift notes.

Overlay files declare how they apply with a top-level ``"x-overlay"`` keyword:

``"extend"``
    Deep merge into the derived document. Keywords at the overlay's root merge into the
    definition the derived root refers to (``CompactResource``, ``CompactResponseMethodPublicBody``,
    ``ErrorResponse``); ``$defs`` entries merge into same-named definitions or are added.
    Objects merge key by key, ``required`` lists are united, any other keyword is the overlay's.
    Both schemas then hold at once (``{"$ref": ...}`` beside an added ``pattern`` means both).
``"replace"``
    The overlay's root becomes the document's root; the derived definitions stay available to
    ``$ref``. Used where a gateway answers in an envelope of its own rather than an extension of
    OpenAI's: Bifrost's error envelope (``is_bifrost_error``, ``error`` with optional ``type``,
    ``code``, ``param``), and Azure's errors, whose own layer answers ``{"error": {"code",
    "message"}}`` without ``type`` or ``param``. A replacing root must be a single ``$ref``, so
    that the strict variant closes the object it names.

Beside the merged keywords, a definition (or the root) of an extending overlay may carry
``"x-optional": [names]``: those properties are no longer required by that definition (its own
``required`` and those of its inline ``allOf``/``anyOf``/``oneOf`` parts; referenced definitions
are left alone). This is the one way an overlay relaxes the spec, used where a gateway drops
properties the spec requires; naming a property the definition does not require is an error.
An object schema nested in such a definition (``ResponseUsage``'s ``input_tokens_details``) may
carry ``x-optional`` too; there a name must be required or declared, after the merge, by that
object (a property a version does not have yet is declared by the overlay itself).

``stream_done``: the gateway ends every event stream with ``data: [DONE]``, which is then no
finding; anywhere else the line is still noted as data that is not JSON.

The plaintext-token servers (``ollama``, ``vllm``, ``llamastack``) put readable JSON, not an
encrypted token, in ``encrypted_content``; the spec types it as a string, so no overlay is needed
for that (the embedded OpenAI server refuses such a token, as the API would). Their overlays:
Ollama's compaction items have no ``id`` and carry its ``ollama_compaction`` payload, and Ollama's
and Llama Stack's usage details lack ``cache_write_tokens``; vLLM's and Llama Stack's error
envelopes replace OpenAI's. They serve OpenAI's own ``/v1/responses/compact`` on local ports, so
nothing detects them: they are chosen by name.

A profile may have no compaction path at all (OpenRouter serves server-side compaction on
``POST /responses`` only): its ``compact_paths`` is empty. ``signature_hosts`` are host names only
that gateway serves; like ``signature_paths`` they let :func:`detect_dialect` name it.

The xAI overlays: a compact answer's ``output`` is exactly one ``compaction`` item (no user turns
re-issued) and carries ``model`` and ``usage.dropped_message_count``; errors are xAI's
``{"code": <gRPC status text>, "error": <message>}``. OpenRouter's errors are its
``{"error": {"code": <HTTP status>, "message", "metadata"?}}``. Vercel's AI Gateway returns
OpenAI's answers as they are: no overlay.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from .._errors import CompactionError
from ..schema._strict import closed
from ..schema._versions import (
    KINDS,
    RESPONSES_KINDS,
    Kind,
    SchemaSet,
    load_schema_set,
    resolve_version,
)
from ._routes import COMPACT_SUFFIX, RESPONSES_SUFFIX, request_path

if TYPE_CHECKING:
    from ..schema._report import Report
    from ..schema._validate import Validator

DEFAULT_DIALECT = "openai"
_OVERLAY_KEY = "x-overlay"
_OPTIONAL_KEY = "x-optional"
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", _OVERLAY_KEY})
# Host names only Azure OpenAI serves from.
_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")


class DialectError(CompactionError):
    """An unknown dialect name, or an overlay that cannot apply to a schema version."""


@dataclass(frozen=True)
class Dialect:
    """What the plugin knows about one gateway's wire."""

    name: str
    title: str
    compact_paths: tuple[str, ...]  # normalized request paths answering compaction
    base_path: str  # what an OpenAI client's base_url ends with for this gateway
    auth_headers: tuple[str, ...]  # credentials this gateway accepts, never written to cassettes
    overlay_kinds: tuple[Kind, ...] = ()  # kinds with an overlays/<name>.<kind>.json file
    signature_paths: tuple[str, ...] = ()  # compaction (or /responses) paths no other serves
    # Host names only this gateway serves (a leading dot: any subdomain), which detect it on
    # its compaction and ``/responses`` paths alike.
    signature_hosts: tuple[str, ...] = ()
    stream_done: bool = False  # event streams end with ``data: [DONE]``

    def __str__(self) -> str:
        return self.name

    def is_compact_path(self, uri_or_path: str) -> bool:
        """Whether a URL or path is one of this gateway's compaction endpoints."""
        return request_path(uri_or_path) in self.compact_paths

    def canonical_path(self, uri_or_path: str) -> str:
        """The path for request matching: every compaction alias of the gateway is its first."""
        path = request_path(uri_or_path)
        return self.compact_paths[0] if path in self.compact_paths else path

    def overlay(self, kind: Kind) -> dict[str, Any] | None:
        """The overlay document for ``kind``, or None when the gateway leaves it as OpenAI's."""
        return _load_overlay(self.name, kind) if kind in self.overlay_kinds else None


_DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect(
            name="openai",
            title="OpenAI",
            compact_paths=("/v1/responses/compact",),
            base_path="/v1",
            auth_headers=("authorization", "openai-organization", "openai-project"),
        ),
        Dialect(
            name="azure",
            title="Azure OpenAI",
            compact_paths=("/openai/v1/responses/compact",),
            base_path="/openai/v1",
            auth_headers=("api-key", "authorization", "ocp-apim-subscription-key"),
            overlay_kinds=("request", "error"),
        ),
        Dialect(
            name="litellm",
            title="LiteLLM proxy",
            compact_paths=(
                "/v1/responses/compact",
                "/responses/compact",
                "/openai/v1/responses/compact",
            ),
            base_path="/v1",
            auth_headers=(
                "authorization",
                "x-litellm-api-key",
                "api-key",
                "x-api-key",
                "x-goog-api-key",
                "ocp-apim-subscription-key",
            ),
            # Its streams are re-serialized (responses.event overlay) and end with [DONE].
            overlay_kinds=("response", "error", "responses.response", "responses.event"),
            stream_done=True,
        ),
        Dialect(
            name="truefoundry",
            title="TrueFoundry AI gateway",
            compact_paths=("/api/llm/responses/compact",),
            base_path="/api/llm",
            auth_headers=("authorization",),
            overlay_kinds=("request",),
            signature_paths=("/api/llm/responses/compact",),
        ),
        Dialect(
            name="bifrost",
            title="Bifrost",
            compact_paths=("/openai/v1/responses/compact", "/v1/responses/compact"),
            base_path="/openai/v1",
            auth_headers=("authorization", "x-bf-vk", "x-api-key"),
            overlay_kinds=("request", "response", "error"),
        ),
        # Plaintext-token servers: encrypted_content is readable JSON. None is told apart by its
        # paths (OpenAI's own /v1/responses/compact) or hosts (local): chosen by name only.
        # ollama/ollama openai/responses_compact.go: one compaction item without an id;
        # compaction_trigger on /v1/responses needs stream: true; docs.ollama.com: local servers
        # ignore the key, ollama.com takes a bearer key.
        Dialect(
            name="ollama",
            title="Ollama",
            compact_paths=("/v1/responses/compact",),
            base_path="/v1",
            auth_headers=("authorization",),
            overlay_kinds=("response", "responses.response", "responses.event"),
        ),
        # vllm-project/vllm#56970 (open) and vllm-project/agentic-api#144: /v1/responses/compact,
        # plaintext encrypted_content; `vllm serve --api-key` wants a bearer token; ErrorInfo.code
        # is the HTTP status as an integer.
        Dialect(
            name="vllm",
            title="vLLM",
            compact_paths=("/v1/responses/compact",),
            base_path="/v1",
            auth_headers=("authorization",),
            overlay_kinds=("error",),
        ),
        # llamastack/llama-stack#5327 (OGX): /v1/responses/compact, "plaintext in OGX"; provider
        # keys travel in X-LlamaStack-Provider-Data / X-OGX-Provider-Data; errors keep only
        # their message (OpenAIErrorResponse, exclude_none).
        Dialect(
            name="llamastack",
            title="Llama Stack",
            compact_paths=("/v1/responses/compact",),
            base_path="/v1",
            auth_headers=("authorization", "x-llamastack-provider-data", "x-ogx-provider-data"),
            overlay_kinds=("response", "responses.response", "responses.event", "error"),
        ),
        # docs.x.ai/developers/advanced-api-usage/context-compaction: one compaction item whose id
        # is the answer's (cmp_<uuid>), no user turns re-issued; errors {"code", "error"}.
        Dialect(
            name="xai",
            title="xAI API",
            compact_paths=("/v1/responses/compact",),
            base_path="/v1",
            auth_headers=("authorization",),
            overlay_kinds=("response", "error"),
            signature_hosts=("api.x.ai", ".api.x.ai"),
        ),
        # openrouter.ai/docs/api_reference/responses/compaction: server-side compaction only (no
        # compact endpoint); openrouter.ai/docs/errors: {"error": {"code", "message", "metadata"}}.
        Dialect(
            name="openrouter",
            title="OpenRouter",
            compact_paths=(),
            base_path="/api/v1",
            auth_headers=("authorization",),
            overlay_kinds=("error",),
            signature_paths=("/api/v1/responses", "/api/v1/responses/compact"),
            signature_hosts=("openrouter.ai",),
        ),
        # vercel.com/docs/ai-gateway/sdks-and-apis/responses/compaction: OpenAI's path, forwarded
        # unchanged apart from the provider/model id, OpenAI's answer returned as is.
        Dialect(
            name="vercel",
            title="Vercel AI Gateway",
            compact_paths=("/v1/responses/compact",),
            base_path="/v1",
            auth_headers=("authorization",),
            signature_hosts=("ai-gateway.vercel.sh",),
        ),
    )
}
DIALECTS: tuple[str, ...] = tuple(_DIALECTS)  # the same as _settings.DIALECT_NAMES


def get_dialect(name: str | Dialect | None = None) -> Dialect:
    """The profile named ``name`` (None: ``openai``); :class:`DialectError` when unknown."""
    if isinstance(name, Dialect):
        return name
    key = (name or DEFAULT_DIALECT).strip().lower()
    try:
        return _DIALECTS[key]
    except KeyError:
        raise DialectError(
            f"unknown dialect {name!r}; known dialects: {', '.join(DIALECTS)}"
        ) from None


def all_auth_headers() -> tuple[str, ...]:
    """Every dialect's credential headers (what auto-detection must filter), deduplicated."""
    return tuple(dict.fromkeys(h for d in _DIALECTS.values() for h in d.auth_headers))


def detect_dialect(uri: str) -> Dialect | None:
    """The gateway a request URL unambiguously belongs to, else None.

    Only signals no other gateway shares count: an Azure host name or the ``api-version`` query
    parameter (Azure), the ``/api/llm`` prefix (TrueFoundry). ``/v1/...``, ``/openai/v1/...`` and
    a bare ``/responses/compact`` are served by several gateways (or any OpenAI-compatible server)
    and stay undetected. On ``/responses`` paths as on compaction paths: the host names of xAI
    (``api.x.ai``), OpenRouter (``openrouter.ai``) and Vercel's AI Gateway
    (``ai-gateway.vercel.sh``), and OpenRouter's ``/api/v1`` prefix; a port never counts.
    """
    parts = urlsplit(uri) if "://" in uri else urlsplit("//x" + uri if uri.startswith("/") else uri)
    host = (parts.hostname or "").lower()
    path = request_path(parts.path or "/")
    if path.endswith((COMPACT_SUFFIX, RESPONSES_SUFFIX)):
        hosted = next((d for d in _DIALECTS.values() if _serves(host, d.signature_hosts)), None)
        if hosted is not None:
            return hosted
    if path.endswith(RESPONSES_SUFFIX):
        return next((d for d in _DIALECTS.values() if path in d.signature_paths), None)
    if not path.endswith(COMPACT_SUFFIX):
        return None
    query = {k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    if host.endswith(_AZURE_HOSTS) or "api-version" in query:
        return _DIALECTS["azure"]
    return next((d for d in _DIALECTS.values() if path in d.signature_paths), None)


def _serves(host: str, hosts: tuple[str, ...]) -> bool:
    """Whether ``host`` is one of ``hosts`` (an entry with a leading dot: any subdomain)."""
    return any(host.endswith(h) if h.startswith(".") else host == h for h in hosts)


def dialect_for(uri: str, name: str | Dialect | None = None) -> Dialect:
    """``name`` when given, else the dialect detected from ``uri``, else ``openai``."""
    if name is not None:
        return get_dialect(name)
    return detect_dialect(uri) or _DIALECTS[DEFAULT_DIALECT]


# -- overlays -----------------------------------------------------------------------------------


@cache
def _load_overlay(name: str, kind: Kind) -> dict[str, Any]:
    resource = resources.files(__package__).joinpath("overlays", f"{name}.{kind}.json")
    where = f"overlays/{name}.{kind}.json"
    try:
        document = json.loads(resource.read_bytes())
    except (OSError, ValueError) as exc:
        raise DialectError(f"dialect {name}: overlay {where} is unreadable: {exc}") from None
    mode = document.get(_OVERLAY_KEY, "extend") if isinstance(document, dict) else None
    if mode not in ("extend", "replace"):
        raise DialectError(f"dialect {name}: {where}: {_OVERLAY_KEY} must be extend or replace")
    if mode == "replace" and set(_root_keywords(document)) != {"$ref"}:
        raise DialectError(f"dialect {name}: {where}: a replacing overlay's root must be a $ref")
    loaded: dict[str, Any] = document
    return loaded


def _root_keywords(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in _ANNOTATIONS and k != "$defs"}


def _merge(base: dict[str, Any], extra: dict[str, Any], where: str = "overlay") -> None:
    """Merge ``extra`` into ``base`` in place (the rules in the module docstring)."""
    for key, value in extra.items():
        here = base.get(key)
        if key == _OPTIONAL_KEY:
            continue  # applied by _relax, once the definition is merged
        if key == "required" and isinstance(here, list) and isinstance(value, list):
            base[key] = [*here, *(v for v in value if v not in here)]
        elif isinstance(here, dict) and isinstance(value, dict):
            _merge(here, value, f"{where}/{key}")
            if _OPTIONAL_KEY in value:
                _relax(here, value[_OPTIONAL_KEY], f"{where}/{key}", declared=True)
        else:
            base[key] = copy.deepcopy(value)


def _relax(node: dict[str, Any], names: Any, where: str, *, declared: bool = False) -> None:
    """Drop ``names`` from the ``required`` lists of ``node`` and its inline composition parts.

    ``declared``: a name ``node`` declares among its ``properties`` counts as found even where
    no version requires it (nested objects, see the module docstring).
    """
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise DialectError(f"{where}: {_OPTIONAL_KEY} must be a list of property names")
    found: set[str] = set()
    properties = node.get("properties")
    if declared and isinstance(properties, dict):
        found.update(n for n in names if n in properties)

    def visit(part: Any) -> None:
        if not isinstance(part, dict):
            return
        required = part.get("required")
        if isinstance(required, list):
            found.update(n for n in names if n in required)
            part["required"] = [n for n in required if n not in names]
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in part.get(key, []):
                visit(sub)

    visit(node)
    unknown = [n for n in names if n not in found]
    if unknown:
        raise DialectError(f"{where}: {_OPTIONAL_KEY} names {unknown}, which it does not require")


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def overlaid_document(base: dict[str, Any], overlay: dict[str, Any], where: str) -> dict[str, Any]:
    """The derived document ``base`` with ``overlay`` applied (neither is modified)."""
    document = copy.deepcopy(base)
    defs: dict[str, Any] = document.setdefault("$defs", {})
    extra_defs = overlay.get("$defs", {})
    referenced = set(_refs(overlay))
    for name in extra_defs:
        # A definition the overlay neither finds in the spec nor uses itself is a misspelt or
        # renamed target: merging it would silently validate nothing.
        if name not in defs and name not in referenced:
            raise DialectError(
                f"{where}: extends $defs/{name}, which this schema version does not define"
            )
    root = _root_keywords(overlay)
    if overlay.get(_OVERLAY_KEY) == "replace":
        defs.update(copy.deepcopy(extra_defs))
        return {"$schema": base.get("$schema"), "$defs": defs, **copy.deepcopy(root)}
    for name, schema in extra_defs.items():
        if name in defs:
            _merge(defs[name], schema, f"{where}: $defs/{name}")
        else:
            defs[name] = {k: copy.deepcopy(v) for k, v in schema.items() if k != _OPTIONAL_KEY}
        if _OPTIONAL_KEY in schema:
            _relax(defs[name], schema[_OPTIONAL_KEY], f"{where}: $defs/{name}")
    if root:
        target = str(base.get("$ref", "")).rsplit("/", 1)[-1]
        if target not in defs:
            raise DialectError(f"{where}: the derived document has no root definition to extend")
        _merge(defs[target], root, f"{where}: $defs/{target}")
        if _OPTIONAL_KEY in root:
            _relax(defs[target], root[_OPTIONAL_KEY], f"{where}: $defs/{target}")
    return document


class _OverlaidSchemaSet(SchemaSet):
    """A version's schema set seen through a dialect: overlaid kinds are merged documents."""

    def __init__(self, base: SchemaSet, dialect: Dialect) -> None:
        super().__init__(base.name, base.path, base.manifest)
        self._base = base
        self._dialect = dialect
        self._merged: dict[tuple[str, bool], dict[str, Any]] = {}

    def document(self, kind: Kind, strict: bool = False) -> dict[str, Any]:
        overlay = self._dialect.overlay(kind)
        if overlay is None:
            return self._base.document(kind, strict)
        key = (kind, strict)
        if key not in self._merged:
            if strict:
                # As the version's own strict documents: Response is closed as one assembly.
                assembled = kind in RESPONSES_KINDS
                self._merged[key] = closed(self.document(kind), assembled=assembled)
            else:
                where = f"dialect {self._dialect.name}, {kind} overlay on {self.name}"
                self._merged[key] = overlaid_document(self._base.document(kind), overlay, where)
        return self._merged[key]


@cache
def dialect_validator(
    kind: Kind,
    version: str | None = None,
    dialect: str = DEFAULT_DIALECT,
    backend: Literal["rs", "python"] = "rs",
) -> Validator:
    """The cached validator of ``kind`` for a version seen through a dialect's overlays."""
    # Imported here: profiles and path rules are needed by the recorder long before validation.
    from ..schema._validate import Validator, get_validator

    profile = get_dialect(dialect)
    name = resolve_version(version)
    if profile.overlay(kind) is None:
        return get_validator(kind, name, backend)
    return Validator(_OverlaidSchemaSet(load_schema_set(name), profile), kind, backend)


def validate_with_dialect(
    kind: Kind,
    body: Any,
    *,
    dialect: str | Dialect | None = None,
    version: str | None = None,
    strict: bool = False,
) -> Report:
    """Validate a body (parsed, or raw bytes/str) of ``kind`` under a dialect's profile."""
    if kind not in KINDS:
        raise DialectError(f"unknown body kind {kind!r}; expected one of {', '.join(KINDS)}")
    validator = dialect_validator(kind, resolve_version(version), get_dialect(dialect).name)
    return validator.validate(body, strict=strict)


def kind_of(status: int) -> Kind:
    """``response`` for a 2xx answer, else ``error``."""
    return "response" if 200 <= status < 300 else "error"
