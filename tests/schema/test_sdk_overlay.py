"""The bundled overlays against the installed SDK's own types.

The overlays in ``schemas/overlays`` are deltas: in the order their evidence was released
(``openai-3.57.0``, then ``openai-3.60.0``), each applies after the ones before it to the
2026-08-21 spec, and the newest one's evidence is the SDK release the dev extra pins. Every
action cites an SDK type in its description (``openai <its overlay's version> <module>.<Class>:
...``). On the spec with every overlay applied, each property an action adds must exist on that
type of the installed SDK with the same required-ness, and each enum must hold exactly the values
of the SDK's ``Literal``. Derivation with the overlays must accept SDK-built bodies that the
2026-08-21 contract does not, and what only the newest overlay adds must be undocumented in the
version before it.
"""

from __future__ import annotations

import collections.abc
import importlib
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import typing_extensions as te
import yaml
from conftest import REFERENCE

pydantic = pytest.importorskip("pydantic", reason="pydantic is needed to read the SDK's models")
openai = pytest.importorskip("openai", reason="the openai SDK is not installed")

from pytest_compaction import validate  # noqa: E402
from pytest_compaction.schema._derive import derive_to  # noqa: E402
from pytest_compaction.schema._overlay import Action, apply_overlay, load_overlay  # noqa: E402

OVERLAY_DIR = Path(__file__).resolve().parents[2] / "schemas" / "overlays"
SPEC = REFERENCE / "openai-openapi" / "2026-08-21_f85dbe223d40_openapi.yaml"
BASE_VERSION = "2026-08-21"
PREVIOUS_VERSION = "2026-11-19_openai-3.57.0"  # the bundled version before the newest
EVIDENCE = re.compile(r"^openai (?P<version>\d+\.\d+\.\d+) (?P<name>[A-Za-z_][\w.]*): \S")

needs_spec = pytest.mark.skipif(
    not SPEC.is_file(), reason=f"reference spec not found at {SPEC} (only in a full checkout)"
)


def raw_overlay(path: Path) -> dict[str, Any]:
    return typing.cast(dict[str, Any], yaml.safe_load(path.read_text(encoding="utf-8")))


# Oldest first: the order they apply in. The last one's evidence is the installed SDK.
CHAIN = sorted(
    OVERLAY_DIR.glob("*.overlay.yaml"), key=lambda p: raw_overlay(p)["x-evidence"]["released"]
)
NEWEST = CHAIN[-1]
ACTIONS = [(path, action) for path in CHAIN for action in load_overlay(path).actions]


# -- the SDK side ---------------------------------------------------------------------------


def import_dotted(name: str) -> Any:
    """The object a dotted ``module.attr`` name names (the longest importable module prefix)."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def is_model(tp: Any) -> bool:
    return isinstance(tp, type) and (issubclass(tp, pydantic.BaseModel) or te.is_typeddict(tp))


def sdk_fields(model: Any) -> dict[str, tuple[Any, bool]]:
    """Wire name -> (annotation, required) of a pydantic model or a TypedDict."""
    if issubclass(model, pydantic.BaseModel):
        return {
            (info.alias or name): (info.annotation, info.is_required())
            for name, info in model.model_fields.items()
        }
    out: dict[str, tuple[Any, bool]] = {}
    for key, hint in te.get_type_hints(model, include_extras=True).items():
        origin = typing.get_origin(hint)
        if origin is te.Required:
            required = True
        elif origin is te.NotRequired:
            required = False
        else:
            required = key in model.__required_keys__
        out[key] = (hint, required)
    return out


def leaves(tp: Any) -> list[Any]:
    """The members of a type with Optional, Annotated, Required and Union taken apart."""
    origin = typing.get_origin(tp)
    if origin in (te.Annotated, te.Required, te.NotRequired):
        return leaves(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [leaf for arg in typing.get_args(tp) for leaf in leaves(arg)]
    return [] if tp is type(None) else [tp]


def literal_values(tp: Any) -> set[Any]:
    return {
        value
        for leaf in leaves(tp)
        if typing.get_origin(leaf) in (typing.Literal, te.Literal)
        for value in typing.get_args(leaf)
    }


def is_closed_literal(tp: Any) -> bool:
    """A ``Literal`` with no open ``str`` alternative."""
    found = leaves(tp)
    return bool(found) and all(
        typing.get_origin(leaf) in (typing.Literal, te.Literal) for leaf in found
    )


def list_item(tp: Any) -> Any | None:
    for leaf in leaves(tp):
        if typing.get_origin(leaf) in (list, collections.abc.Iterable):
            return typing.get_args(leaf)[0]
    return None


def type_values(tp: Any) -> set[Any]:
    """The ``type`` discriminator values of a model or of the models of a union."""
    out: set[Any] = set()
    for leaf in leaves(tp):
        if is_model(leaf):
            fields = sdk_fields(leaf)
            if "type" in fields:
                out |= literal_values(fields["type"][0])
    return out


# -- the spec side --------------------------------------------------------------------------


def resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def enum_values(spec: dict[str, Any], node: Any) -> set[Any]:
    """Every enum value a schema allows, through $ref, anyOf, oneOf and allOf (null left out)."""
    node = resolve(spec, node)
    if not isinstance(node, dict):
        return set()
    out = {v for v in node.get("enum", ()) if v is not None}
    for key in ("anyOf", "oneOf", "allOf"):
        for member in node.get(key, ()):
            out |= enum_values(spec, member)
    return out


def object_branches(spec: dict[str, Any], node: Any) -> list[dict[str, Any]]:
    """The object schemas of a property (its anyOf/oneOf members, null left out)."""
    node = resolve(spec, node)
    if not isinstance(node, dict):
        return []
    if "properties" in node:
        return [node]
    return [
        b for key in ("anyOf", "oneOf") for m in node.get(key, ()) for b in object_branches(spec, m)
    ]


def find_one(spec: dict[str, Any], target: str) -> Any:
    from jsonpath_ng.ext.parser import parse

    matches = parse(target).find(spec)
    assert len(matches) == 1, f"{target} selects {len(matches)} nodes"
    return matches[0].value


# -- the checks -----------------------------------------------------------------------------


def check_enum(spec: dict[str, Any], schema: Any, annotation: Any, where: str) -> None:
    allowed = enum_values(spec, schema)
    sdk = literal_values(annotation)
    if allowed or sdk:
        if allowed and not sdk:
            raise AssertionError(f"{where}: spec enum {sorted(allowed)}, SDK has no Literal")
        if sdk and not allowed:
            assert not is_closed_literal(annotation), f"{where}: SDK Literal {sorted(sdk)}, no enum"
            return
        assert allowed == sdk, f"{where}: enum {sorted(allowed)} != SDK Literal {sorted(sdk)}"


def check_object(
    spec: dict[str, Any], schema: dict[str, Any], model: Any, where: str, names: Any = None
) -> int:
    """Compare the properties ``names`` (default: all) of an object schema with a model.

    Returns how many properties were compared (nested ones included).
    """
    assert is_model(model), f"{where}: {model!r} is not a pydantic model or TypedDict"
    fields = sdk_fields(model)
    required = set(schema.get("required", ()))
    count = 0
    for name in names if names is not None else schema.get("properties", {}):
        here = f"{where}.{name}"
        assert name in fields, f"{here}: not a field of {model.__module__}.{model.__qualname__}"
        annotation, sdk_required = fields[name]
        assert (name in required) == sdk_required, (
            f"{here}: required in overlaid schema is {name in required}, in the SDK {sdk_required}"
        )
        count += 1 + check_value(spec, schema["properties"][name], annotation, here)
    return count


def check_value(spec: dict[str, Any], schema: Any, annotation: Any, where: str) -> int:
    """Compare a property schema with its SDK annotation: enum, inline objects, array items."""
    check_enum(spec, schema, annotation, where)
    count = 0
    if isinstance(schema, dict) and "$ref" in schema:
        return count  # an existing component: not part of the change
    item = list_item(annotation)
    if isinstance(schema, dict) and schema.get("type") == "array" and item is not None:
        return check_value(spec, schema.get("items", {}), item, where + "[]")
    models = [leaf for leaf in leaves(annotation) if is_model(leaf)]
    branches = [b for b in object_branches(spec, schema) if "$ref" not in b]
    if not models:
        assert not branches, f"{where}: an object in the spec, not in the SDK"
        return count
    for branch in branches:
        if len(models) == 1:
            count += check_object(spec, branch, models[0], where)
            continue
        values = enum_values(spec, branch["properties"].get("type", {}))
        match = [m for m in models if type_values(m) & values]
        assert len(match) == 1, f"{where}: no single SDK member for type {sorted(values)}"
        count += check_object(spec, branch, match[0], f"{where}<{sorted(values)[0]}>")
    return count


def evidence(overlay: Path, action: Action) -> Any:
    version = raw_overlay(overlay)["x-evidence"]["version"]
    found = EVIDENCE.match(action.description)
    assert found and found["version"] == version, (
        f"{overlay.name}: description does not start with 'openai {version} <model>: ': "
        f"{action.description!r}"
    )
    return import_dotted(found["name"])


def check_action(spec: dict[str, Any], overlay: Path, action: Action) -> int:
    """Compare what one action changes with its SDK type; returns how many values it compared."""
    sdk = evidence(overlay, action)
    update = action.update
    target = action.target
    sdk_field = OVERLAY_EXTRAS[overlay][action.index].get("x-sdk-field")
    if target == "$.components.schemas":
        (name,) = update
        return check_object(spec, spec["components"]["schemas"][name], sdk, name)
    if target.endswith(".properties"):
        holder = find_one(spec, target[: -len(".properties")])
        return check_object(spec, holder, sdk, target, names=list(update))
    if target.endswith((".anyOf", ".oneOf")):
        member = resolve(spec, update)
        values = enum_values(spec, member["properties"]["type"])
        assert values, f"{target}: the added member has no type value"
        assert values <= type_values(sdk), (
            f"{target}: {sorted(values)} not a member type in the SDK"
        )
        return 1
    if "enum" in update:
        node = find_one(spec, target)
        annotation = sdk_fields(sdk)[sdk_field][0] if sdk_field is not None else sdk
        # An enum that is one member of a union is compared as the union's whole.
        parent = target.rsplit(".", 1)[0] if re.search(r"\.(anyOf|oneOf)\[\d+\]$", target) else None
        whole = find_one(spec, parent) if parent else node
        check_enum(spec, whole, annotation, target)
        return 1
    if set(update) == {"$ref"}:
        return check_object(spec, resolve(spec, update), sdk, target)
    raise AssertionError(f"{target}: no check for this kind of action")


OVERLAY_EXTRAS = {
    path: [{k: v for k, v in raw.items() if str(k).startswith("x-")} for raw in document]
    for path in CHAIN
    for document in [raw_overlay(path)["actions"]]
}


@pytest.fixture(scope="module")
def base_spec() -> dict[str, Any]:
    loaded: Any = yaml.load(SPEC.read_bytes(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return typing.cast(dict[str, Any], loaded)


@pytest.fixture(scope="module")
def overlaid(base_spec: dict[str, Any]) -> dict[str, Any]:
    out = base_spec
    for path in CHAIN:
        out = apply_overlay(out, load_overlay(path))
    return out


def test_overlays_name_their_evidence_and_the_newest_is_installed() -> None:
    assert [raw_overlay(p)["x-evidence"] for p in CHAIN] == [
        {"package": "openai", "version": "3.57.0", "released": "2026-11-19"},
        {"package": "openai", "version": "3.60.0", "released": "2026-11-26"},
    ]
    assert [p.name for p in CHAIN] == ["openai-3.57.0.overlay.yaml", "openai-3.60.0.overlay.yaml"]
    assert openai.__version__ == "3.60.0", "the newest overlay's evidence is openai 3.60.0"


@needs_spec
def test_every_action_applies(base_spec: dict[str, Any]) -> None:
    out = base_spec
    for path in CHAIN:
        overlay = load_overlay(path)
        applied = apply_overlay(out, overlay)
        assert applied is not out
        assert len(overlay.actions) == len(OVERLAY_EXTRAS[path])
        out = applied


@needs_spec
@pytest.mark.parametrize(
    ("overlay", "action"),
    ACTIONS,
    ids=[f"{p.name.removesuffix('.overlay.yaml')}:{a.index}:{a.target}" for p, a in ACTIONS],
)
def test_action_matches_sdk(overlaid: dict[str, Any], overlay: Path, action: Action) -> None:
    assert check_action(overlaid, overlay, action) > 0


# -- bodies built from the SDK's types --------------------------------------------------------


def compacting_event() -> dict[str, Any]:
    from openai.types.responses.response_compaction_compacting_event import (
        ResponseCompactionCompactingEvent,
    )

    event = ResponseCompactionCompactingEvent(
        item_id="cmp_001", output_index=0, sequence_number=3, type="response.compaction.compacting"
    )
    return event.model_dump(mode="json", exclude_none=True)


def configuration_update() -> dict[str, Any]:
    from openai.types.responses.response_configuration_update_item_param import (
        ResponseConfigurationUpdateItemParam,
    )

    item = ResponseConfigurationUpdateItemParam.model_validate(
        {
            "type": "configuration_update",
            "reasoning": {"effort": "low"},
            "text": {"format": {"type": "text"}},
        }
    )
    return item.model_dump(mode="json", exclude_none=True)


def compact_request() -> dict[str, Any]:
    from openai.types.responses.response_compact_params import ResponseCompactParams

    body: ResponseCompactParams = {
        "model": "gpt-5.4",
        "image": {"context_compression": "auto"},
        "input": [
            {"role": "user", "content": "hello"},
            typing.cast(Any, configuration_update()),
            {"type": "compaction_trigger", "id": "ct_001"},
        ],
    }
    return dict(body)


def compact_response() -> dict[str, Any]:
    from openai.types.responses.compacted_response import CompactedResponse

    resource = CompactedResponse.model_validate(
        {
            "id": "resp_001",
            "object": "response.compaction",
            "created_at": 1775143637,
            "output": [{"id": "cmp_001", "type": "compaction", "encrypted_content": "gAAAAB"}],
            "usage": {
                "input_tokens": 10,
                "input_tokens_details": {
                    "cached_tokens": 0,
                    "cache_write_tokens": 4,
                    "cache_write_tokens_details": {"ttl_30m_tokens": 3, "ttl_12h_tokens": 1},
                },
                "output_tokens": 5,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 15,
            },
            "image": {"context_compression": "enabled"},
        }
    )
    return resource.model_dump(mode="json", exclude_none=True)


def create_request() -> dict[str, Any]:
    return {
        "model": "gpt-5.4",
        "input": [{"role": "user", "content": "hello"}, configuration_update()],
        "image": {"context_compression": "disabled"},
        "prompt_cache_options": {"ttl": "12h", "mode": "implicit", "prewarm": True},
    }


# What the openai 3.60.0 types add (schemas/overlays/openai-3.60.0.overlay.yaml).
SAFETY_IDENTIFIER = "user-7f3a"


def compact_request_360() -> dict[str, Any]:
    from openai.types.responses.response_compact_params import ResponseCompactParams

    body: ResponseCompactParams = {
        "model": "gpt-6.2-sol-healthcare",
        "input": [{"role": "user", "content": "hello"}],
        "safety_identifier": SAFETY_IDENTIFIER,
    }
    return dict(body)


def compact_response_360() -> dict[str, Any]:
    from openai.types.responses.compacted_response import CompactedResponse

    resource = CompactedResponse.model_validate(
        {
            "id": "resp_002",
            "object": "response.compaction",
            "created_at": 1775143637,
            "output": [{"id": "cmp_002", "type": "compaction", "encrypted_content": "gAAAAB"}],
            "usage": {
                "input_tokens": 10,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": 5,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 15,
            },
            "safety_identifier": SAFETY_IDENTIFIER,
            "service_tier": "default",
        }
    )
    return resource.model_dump(mode="json", exclude_none=True)


def beta_compact_request_360() -> dict[str, Any]:
    from openai.types.beta.response_compact_params import ResponseCompactParams

    body: ResponseCompactParams = {
        "model": "gpt-6.2-astra-healthcare",
        "input": [{"role": "user", "content": "hello"}],
        "safety_identifier": SAFETY_IDENTIFIER,
    }
    return dict(body)


def beta_compact_response_360() -> dict[str, Any]:
    from openai.types.beta.beta_compacted_response import BetaCompactedResponse

    resource = BetaCompactedResponse.model_validate(compact_response_360())
    return resource.model_dump(mode="json", exclude_none=True)


BODIES = {
    "compacting-event": ("responses.event", compacting_event),
    "compact-request": ("request", compact_request),
    "compact-response": ("response", compact_response),
    "create-request": ("responses.request", create_request),
    "compact-request-3.60": ("request", compact_request_360),
    "compact-response-3.60": ("response", compact_response_360),
    "beta-compact-request-3.60": ("beta.request", beta_compact_request_360),
    "beta-compact-response-3.60": ("beta.response", beta_compact_response_360),
}
# What each 3.60 body carries that the version before the newest does not declare.
NEW_IN_360 = {
    "compact-request-3.60": ["/safety_identifier"],
    "compact-response-3.60": ["/safety_identifier", "/service_tier"],
    "beta-compact-request-3.60": ["/safety_identifier"],
    "beta-compact-response-3.60": ["/safety_identifier", "/service_tier"],
}


@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SPEC.is_file():
        pytest.skip(f"reference spec not found at {SPEC} (only in a full checkout)")
    target = derive_to(SPEC, tmp_path_factory.mktemp("overlaid"), overlays=CHAIN)
    assert target.name == "2026-11-26_openai-3.60.0"
    return target


@pytest.mark.parametrize("case", sorted(BODIES))
def test_sdk_bodies_valid_under_overlay(derived: Path, case: str) -> None:
    kind, build = BODIES[case]
    report = validate(kind, build(), version=str(derived))
    assert report.valid and not report.drift, report


@needs_spec
@pytest.mark.parametrize("case", sorted(BODIES))
def test_sdk_bodies_not_clean_under_base(case: str) -> None:
    kind, build = BODIES[case]
    report = validate(kind, build(), version=BASE_VERSION)
    assert not (report.valid and not report.drift), report


@pytest.mark.parametrize("case", sorted(NEW_IN_360))
def test_what_360_adds_is_strictly_valid_in_the_newest_and_undocumented_before(case: str) -> None:
    kind, build = BODIES[case]
    body = build()
    newest = validate(kind, body, version="2026-11-26", strict=True)
    assert newest.version == "2026-11-26_openai-3.60.0"
    assert newest.valid and not newest.drift, newest
    before = validate(kind, body, version=PREVIOUS_VERSION, strict=True)
    assert sorted(v.path for v in before.violations) == NEW_IN_360[case], before
    for violation in before.violations:
        name = violation.path.lstrip("/")
        assert violation.message == (
            f"{name}: undocumented property (newer than the contract: schema version "
            "2026-11-26_openai-3.60.0 declares it) (strict)"
        )
    # not strict: drift, not a violation
    loose = validate(kind, body, version=PREVIOUS_VERSION)
    assert loose.valid and sorted(n.path for n in loose.drift) == NEW_IN_360[case], loose
