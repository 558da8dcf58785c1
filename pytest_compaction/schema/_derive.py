"""Derive standalone JSON Schema 2020-12 documents for /responses/compact from an OpenAPI spec.

Also, when the spec has it, for ``POST /responses`` (server-side compaction): the request, the
response object and one stream event, in ``responses.*.schema.json``.

This module chooses the components each operation's bodies start from, has ``_translate``
turn each into a document (with its strict variant), and writes the version folder and its
manifest, which records the spec it came from (file, sha256 and date) and every spec defect
worked around. The same spec always gives byte-identical files.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._atomic import write_atomic
from .._errors import CompactionError, SpecError
from ._examples import null_in_examples
from ._overlay import Overlay, apply_overlay, load_overlay
from ._passback import Addition, item_unions, passed_back
from ._spec import SCHEMA_PREFIX, Spec, load_spec
from ._strict import closed
from ._translate import Defect, Translator, check_document, translate, union_values

GENERATOR_VERSION = "6"  # 6: the manifest's source records the spec's date
SCHEMA_FILES = ("request.schema.json", "response.schema.json", "error.schema.json")
# POST /responses, the operation that compacts server-side (``context_management``): its
# request, its response object and its stream events. Absent when the spec has no such operation.
RESPONSES_PATH = "/responses"
RESPONSES_FILES = (
    "responses.request.schema.json",
    "responses.response.schema.json",
    "responses.event.schema.json",
)
# POST /responses/compact?beta=true (``client.beta.responses.compact()``): the beta request and
# answer, whose items include the multi-agent ones. Absent when the spec has no beta route.
BETA_COMPACT_PATH = "/responses/compact?beta=true"
BETA_FILES = ("beta.request.schema.json", "beta.response.schema.json")
# The item unions whose ``type`` values the manifest lists (compaction items among them).
_ITEM_UNIONS = {"input_item_types": "InputItem", "output_item_types": "OutputItem"}


def strict_name(filename: str) -> str:
    """``request.schema.json`` -> ``request.strict.schema.json`` (see ``_strict``)."""
    return filename.replace(".schema.json", ".strict.schema.json")


# Formats the spec uses that JSON Schema does not define; registered with both validators.
CUSTOM_FORMATS = ("unixtime", "float")


@dataclass(frozen=True)
class Derived:
    """The documents derived from one spec, ready to write."""

    name: str
    files: dict[str, bytes]


_DATE_PREFIX = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[_.-]|$)")


def check_date(text: str, what: str) -> str:
    """``text`` when it is a calendar date written ``YYYY-MM-DD``; else an error naming ``what``."""
    try:
        if len(text) == 10:
            return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise CompactionError(f"{what}: {text!r} is not a date written YYYY-MM-DD")


def spec_date(spec_path: str | Path) -> str | None:
    """The date a spec file's name starts with, None when it starts with none.

    The reference specs are named ``DATE_COMMIT_openapi.yaml`` (the spec as of that date), as
    in ``2026-08-21_f85dbe223d40_openapi.yaml``.
    """
    match = _DATE_PREFIX.match(Path(spec_path).name)
    if match is None:
        return None
    try:
        return datetime.date.fromisoformat(match.group(1)).isoformat()
    except ValueError:  # shaped like a date, but not one (2026-13-40_...)
        return None


def _dump(document: Any) -> bytes:
    return (json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _schema_name(ref: Any, where: str, spec: Spec) -> str:
    if not isinstance(ref, str) or not ref.startswith(SCHEMA_PREFIX):
        raise SpecError(f"{spec.source}: expected a schema reference at {where}, got {ref!r}")
    return ref[len(SCHEMA_PREFIX) :]


def _json_schema_ref(container: Any, where: str, spec: Spec) -> str:
    try:
        ref = container["content"]["application/json"]["schema"]["$ref"]
    except (KeyError, TypeError):
        raise SpecError(f"{spec.source}: no application/json schema reference at {where}") from None
    return _schema_name(ref, where, spec)


def _responses(spec: Spec, operation: dict[str, Any]) -> dict[str, Any]:
    """The operation's responses by status; YAML reads an unquoted ``200:`` as a number."""
    responses = operation.get("responses", {})
    if not isinstance(responses, dict):
        where = "paths['/responses/compact'].post.responses"
        raise SpecError(f"{spec.source}: {where} must be an object")
    return {str(status): response for status, response in responses.items()}


def _error_responses(spec: Spec, operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The error body schema name and the declared non-2xx responses (status -> headers)."""
    declared: dict[str, Any] = {}
    name = "ErrorResponse"
    for status, response in sorted(_responses(spec, operation).items()):
        if status.startswith("2"):
            continue
        where = f"paths['/responses/compact'].post.responses.{status}"
        if isinstance(response, dict) and "$ref" in response:
            if not isinstance(response["$ref"], str):
                raise SpecError(f"{spec.source}: unsupported reference at {where}")
            _, response = spec.resolve_component(response["$ref"])
        name = _json_schema_ref(response, where, spec)
        headers = {}
        declared_headers = response.get("headers") or {}
        if not isinstance(declared_headers, dict):
            raise SpecError(f"{spec.source}: {where}.headers must be an object")
        for header, definition in sorted(declared_headers.items()):
            if not isinstance(definition, dict):
                raise SpecError(f"{spec.source}: {where}.headers.{header} must be an object")
            translated = Translator(spec).schema(definition.get("schema", {}), header, header)
            headers[header] = {"required": bool(definition.get("required")), "schema": translated}
        declared[str(status)] = {"headers": headers}
    if name not in spec.schemas:
        raise SpecError(f"{spec.source}: no error body schema {name!r}")
    return name, declared


def _documents(
    spec: Spec,
    filename: str,
    root: str,
    files: dict[str, bytes],
    defects: dict[Any, Defect],
    nullable: dict[str, str],
    assembled: bool = False,
    additions: Sequence[Addition] = (),
) -> None:
    """The open and strict documents of ``root`` into ``files``; its defects into ``defects``.

    ``additions``: the passed-back properties (see ``_passback``); those of the definitions this
    closure holds are its defects too.
    """
    document, found = translate(spec, root, nullable)
    check_document(document, filename, spec)
    files[filename] = _dump(document)
    files[strict_name(filename)] = _dump(closed(document, assembled=assembled))
    found += [
        Defect("passed-back-item", a.location, a.detail)
        for a in additions
        if a.input_member in document["$defs"]
    ]
    for defect in found:
        defects[(defect.kind, defect.location, defect.detail)] = defect


def _operation_at(spec: Spec, path: str) -> dict[str, Any] | None:
    """The POST operation at ``path``, None when the spec has none."""
    paths = spec.document.get("paths")
    item = paths.get(path) if isinstance(paths, dict) else None
    operation = item.get("post") if isinstance(item, dict) else None
    return operation if isinstance(operation, dict) else None


def _event_schema_ref(ok: Any, where: str, spec: Spec) -> str:
    try:
        ref = ok["content"]["text/event-stream"]["schema"]["$ref"]
    except (KeyError, TypeError):
        raise SpecError(
            f"{spec.source}: no text/event-stream schema reference at {where}"
        ) from None
    return _schema_name(ref, where, spec)


@dataclass(frozen=True)
class _Roots:
    """The schema names an operation's bodies start from."""

    request: str
    response: str
    event: str | None = None  # a stream's event union (POST /responses only)


def _roots(spec: Spec, path: str, operation: dict[str, Any], stream: bool = False) -> _Roots:
    where = f"paths['{path}'].post"
    request = _json_schema_ref(operation.get("requestBody"), f"{where}.requestBody", spec)
    ok = _responses(spec, operation).get("200")
    response = _json_schema_ref(ok, f"{where}.responses.200", spec)
    event = _event_schema_ref(ok, f"{where}.responses.200", spec) if stream else None
    return _Roots(request, response, event)


def _item_types(spec: Spec, request: str, response: str) -> dict[str, list[str]]:
    """The ``type`` values of an operation's input and output item unions, for the manifest."""
    schemas = spec.schemas
    inputs = item_unions(schemas, request, "input")
    outputs = item_unions(schemas, response, "output")
    return {
        "input_item_types": sorted({v for u in inputs for v in union_values(spec, u)}),
        "output_item_types": sorted({v for u in outputs for v in union_values(spec, u)}),
    }


def _overlaid(spec: Spec, overlays: Sequence[Overlay]) -> Spec:
    document = spec.document
    for overlay in overlays:
        document = apply_overlay(document, overlay)
    return Spec(spec.source, spec.sha256, document) if overlays else spec


def derive(
    spec: Spec, name: str, overlays: Sequence[Overlay] = (), source_date: str | None = None
) -> Derived:
    """Derive the schemas of every operation the spec has (see the module docstring).

    ``overlays`` (OpenAPI Overlay 1.0, see ``_overlay``) are applied to the spec first, in
    order; the manifest records each one and the evidence of each of its actions.
    ``source_date`` (``YYYY-MM-DD``) is the date of the spec, recorded as the source's
    ``date``; by default the date its file name starts with (:func:`spec_date`), else null.
    """
    date = spec_date(spec.source) if source_date is None else check_date(source_date, "source_date")
    spec = _overlaid(spec, overlays)
    operation = spec.compact_operation()
    compact = _roots(spec, "/responses/compact", operation)
    error_root, error_statuses = _error_responses(spec, operation)
    responses_operation = _operation_at(spec, RESPONSES_PATH)
    create = (
        _roots(spec, RESPONSES_PATH, responses_operation, stream=True)
        if responses_operation is not None
        else None
    )
    beta_operation = _operation_at(spec, BETA_COMPACT_PATH)
    beta = _roots(spec, BETA_COMPACT_PATH, beta_operation) if beta_operation else None
    families = [
        (
            [compact.request, *([create.request] if create else [])],
            [compact.response, *([create.response] if create else [])],
        )
    ]
    if beta is not None:
        families.append(([beta.request], [beta.response]))
    spec, additions = passed_back(spec, families)

    files: dict[str, bytes] = {}
    defects: dict[Any, Defect] = {}
    nullable = null_in_examples(spec)
    roots = (compact.request, compact.response, error_root)
    for filename, root in zip(SCHEMA_FILES, roots, strict=True):
        _documents(spec, filename, root, files, defects, nullable, additions=additions)
    # Listed apart, so that the compaction operation's defects stay what they were.
    responses: dict[str, Any] | None = None
    if create is not None and create.event is not None and responses_operation is not None:
        responses_defects: dict[Any, Defect] = {}
        create_roots = (create.request, create.response, create.event)
        for filename, root in zip(RESPONSES_FILES, create_roots, strict=True):
            _documents(spec, filename, root, files, responses_defects, nullable, True, additions)
        responses = {
            "path": RESPONSES_PATH,
            "method": "post",
            "operationId": responses_operation.get("operationId"),
            "request": create.request,
            "response": create.response,
            "event": create.event,
            "event_types": union_values(spec, create.event),
            **{key: union_values(spec, union) for key, union in sorted(_ITEM_UNIONS.items())},
            "defects": [d.as_dict() for _, d in sorted(responses_defects.items())],
        }
    beta_manifest: dict[str, Any] | None = None
    if beta is not None and beta_operation is not None:
        beta_defects: dict[Any, Defect] = {}
        for filename, root in zip(BETA_FILES, (beta.request, beta.response), strict=True):
            _documents(spec, filename, root, files, beta_defects, nullable, additions=additions)
        beta_manifest = {
            "path": BETA_COMPACT_PATH,
            "method": "post",
            "operationId": beta_operation.get("operationId"),
            "request": beta.request,
            "response": beta.response,
            **_item_types(spec, beta.request, beta.response),
            "defects": [d.as_dict() for _, d in sorted(beta_defects.items())],
        }
    manifest: dict[str, Any] = {
        "name": name,
        "generator_version": GENERATOR_VERSION,
        "source": {"file": Path(spec.source).name, "sha256": spec.sha256, "date": date},
        "info_version": spec.info_version,
        "operation": {
            "path": "/responses/compact",
            "method": "post",
            "operationId": operation.get("operationId"),
            "request": compact.request,
            "response": compact.response,
            "error": error_root,
            "error_statuses": error_statuses,
        },
        "responses": responses,
        "beta": beta_manifest,
        "custom_formats": list(CUSTOM_FORMATS),
        "defects": [d.as_dict() for _, d in sorted(defects.items())],
    }
    if overlays:
        manifest["overlays"] = [o.record() for o in overlays]
        covered = [o.evidence for o in overlays if o.evidence is not None]
        if covered:
            manifest["covers"] = covered[-1]
    manifest["files"] = {f: hashlib.sha256(b).hexdigest() for f, b in sorted(files.items())}
    files["manifest.json"] = _dump(manifest)
    return Derived(name=name, files=files)


def default_name(spec_path: str | Path, overlays: Sequence[Overlay] = ()) -> str:
    """``2026-08-21_f85dbe223d40_openapi.yaml`` -> ``2026-08-21_f85dbe223d40``.

    With overlays, the last overlay's evidence names it (``2026-11-26_openai-3.60.0`` after the
    openai 3.57.0 and 3.60.0 overlays) when that overlay says when its evidence was released;
    else the spec's name and the overlays' file stems.
    """
    stem = Path(spec_path).name.split(".")[0].removesuffix("_openapi")
    covered = [o.evidence for o in overlays if o.evidence is not None]
    if covered and covered[-1].get("released") and covered[-1].get("package"):
        evidence = covered[-1]
        return f"{evidence['released']}_{evidence['package']}-{evidence['version']}"
    return "+".join([stem, *(Path(o.source).name.split(".")[0] for o in overlays)])


def derive_to(
    spec_path: str | Path,
    out_dir: str | Path,
    name: str | None = None,
    overlays: Sequence[str | Path] = (),
    source_date: str | None = None,
) -> Path:
    """Load a spec (and overlays), derive its schemas and write them to ``out_dir/name``.

    ``source_date``: the spec's date when its file name does not start with it (see
    :func:`derive`).
    """
    if source_date is not None:
        check_date(source_date, "--source-date")  # before the slow load of the spec
    spec = load_spec(spec_path)
    loaded = [load_overlay(path) for path in overlays]
    derived = derive(spec, name or default_name(spec_path, loaded), loaded, source_date)
    target = Path(out_dir) / derived.name
    for filename, data in derived.files.items():
        try:
            write_atomic(target / filename, data)
        except OSError as exc:
            raise CompactionError(
                f"cannot write {target / filename}: {exc.strerror or exc}"
            ) from None
    return target
