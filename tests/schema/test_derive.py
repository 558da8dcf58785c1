"""Schema derivation: the committed ``schemas/`` regenerate byte for byte from the reference specs.

Also: determinism across processes and input formats, the manifest's facts, the spec defects it
records, bad spec input (a clear error, exit 2, never a traceback) and the wheel shipping the
schemas. The four reference specs are parsed by ``pytest-compaction schemas derive`` processes
started together once per module: libyaml needs about two seconds per 3 MB spec.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from conftest import REFERENCE

from pytest_compaction import SpecError
from pytest_compaction.schema._derive import (
    CUSTOM_FORMATS,
    default_name,
    derive,
    derive_to,
)
from pytest_compaction.schema._overlay import load_overlay
from pytest_compaction.schema._spec import Spec, load_spec
from pytest_compaction.schema._translate import iter_schema_nodes

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schemas"
SPECS = REFERENCE / "openai-openapi"
CLI = [sys.executable, "-m", "pytest_compaction"]
PROSE = {"description", "example", "examples", "title", "discriminator", "default", "deprecated"}
# formats JSON Schema 2020-12 defines; anything else must be registered (CUSTOM_FORMATS)
STANDARD_FORMATS = {
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
}


def spec_files() -> list[Path]:
    return sorted(SPECS.glob("*_openapi.yaml")) if SPECS.is_dir() else []


OVERLAYS = COMMITTED / "overlays"


def overlaid() -> list[tuple[Path, list[Path]]]:
    """(spec, overlays) of each bundled overlaid version, oldest first.

    The bundled overlays are deltas: in the order their evidence was released, each applies
    after the ones before it, to the spec its ``extends`` names. The version of an overlay is
    that spec with it and every earlier overlay.
    """
    found = []
    for overlay in OVERLAYS.glob("*.overlay.yaml"):
        document = yaml.safe_load(overlay.read_text())
        found.append((document["x-evidence"]["released"], document["extends"], overlay))
    found.sort()
    out = []
    for count, (_, extends, _) in enumerate(found, 1):
        out.append((SPECS / extends, [overlay for _, _, overlay in found[:count]]))
    return out


def overlaid_name(spec: Path, overlays: list[Path]) -> str:
    return default_name(spec, [load_overlay(overlay) for overlay in overlays])


def overlay_flags(overlays: list[Path]) -> list[str]:
    return [flag for overlay in overlays for flag in ("--overlay", str(overlay))]


def version_dirs() -> list[Path]:
    """The committed version folders (``schemas/overlays`` holds their evidence, not a version)."""
    return sorted(p for p in COMMITTED.iterdir() if (p / "manifest.json").is_file())


needs_specs = pytest.mark.skipif(
    not SPECS.is_dir(), reason=f"reference specs not found at {SPECS} (only in a full checkout)"
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


Started = list[tuple[list[str], subprocess.Popen[str]]]


def start_all(commands: list[list[str]], **env: str) -> Started:
    """Start the commands together: the machine has two cores."""
    environment = {**os.environ, **env}
    return [
        (command, subprocess.Popen(command, env=environment, text=True, stdout=-1, stderr=-1))
        for command in commands
    ]


def wait_all(started: Started) -> list[subprocess.CompletedProcess[str]]:
    results = []
    for command, process in started:
        out, err = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return results


def run_all(commands: list[list[str]], **env: str) -> list[subprocess.CompletedProcess[str]]:
    return wait_all(start_all(commands, **env))


@dataclass
class Derivation:
    spec: Path
    folder: Path  # what ``schemas derive`` wrote
    result: subprocess.CompletedProcess[str]


@dataclass
class Reference:
    derived: dict[str, Derivation]  # by version name
    newest: Spec  # the newest spec, parsed in this process


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """Every reference spec derived by the real command, into a fresh folder."""
    if not spec_files():
        pytest.skip(f"reference specs not found at {SPECS} (only in a full checkout)")
    out = tmp_path_factory.mktemp("derived")
    commands = [
        [*CLI, "schemas", "derive", "--spec", str(s), "--out", str(out)] for s in spec_files()
    ]
    commands += [
        [*CLI, "schemas", "derive", "--spec", str(s), *overlay_flags(o), "--out", str(out)]
        for s, o in overlaid()
    ]
    # a hash seed of their own: set/dict order must not leak into the output
    started = start_all(commands, PYTHONHASHSEED="12345")
    newest = load_spec(spec_files()[-1])  # meanwhile, here
    by_name = {}
    names = [(s, default_name(s)) for s in spec_files()]
    names += [(s, overlaid_name(s, o)) for s, o in overlaid()]
    for (spec, name), result in zip(names, wait_all(started), strict=True):
        assert result.returncode == 0, result.stderr
        no_traceback(result)
        by_name[name] = Derivation(spec, out / name, result)
    return Reference(by_name, newest)


@pytest.fixture(scope="module")
def derived(reference: Reference) -> dict[str, Derivation]:
    return reference.derived


# -- regeneration -------------------------------------------------------------------------
@needs_specs
def test_four_reference_specs_two_overlays_and_six_committed_folders() -> None:
    names = [default_name(s) for s in spec_files()]
    assert len(names) == 4
    assert [n[:10] for n in names] == ["2026-04-13", "2026-05-13", "2026-07-15", "2026-08-21"]
    chains = overlaid()
    assert [[o.name for o in overlays] for _, overlays in chains] == [
        ["openai-3.57.0.overlay.yaml"],
        ["openai-3.57.0.overlay.yaml", "openai-3.60.0.overlay.yaml"],
    ]
    for spec, overlays in chains:
        assert spec.is_file(), f"{overlays[-1].name} extends {spec.name}, not a reference spec"
        names.append(overlaid_name(spec, overlays))
    assert names[-2:] == ["2026-11-19_openai-3.57.0", "2026-11-26_openai-3.60.0"]
    assert [p.name for p in version_dirs()] == names
    assert sorted(p.name for p in COMMITTED.iterdir() if p.is_dir()) == [*names, "overlays"]


@needs_specs
def test_committed_schemas_regenerate_byte_for_byte(derived: dict[str, Derivation]) -> None:
    for name, derivation in derived.items():
        fresh = folder_bytes(derivation.folder)
        committed = folder_bytes(COMMITTED / name)
        assert len(derived) == len(version_dirs())
        assert sorted(fresh) == sorted(committed), f"{name}: different files"
        assert {"manifest.json", "request.schema.json", "response.schema.json"} <= set(fresh)
        assert "error.schema.json" in fresh
        changed = [f for f in fresh if fresh[f] != committed[f]]
        assert not changed, (
            f"schemas/{name}: {changed} differ from a fresh derivation of {derivation.spec.name};"
            f" regenerate: pytest-compaction schemas derive --spec {derivation.spec} --out schemas"
            " (with --overlay schemas/overlays/<file> for an overlaid version, once per overlay"
            " of its manifest, in order)"
        )
        assert f"wrote {derivation.folder}" in derivation.result.stdout


@needs_specs
def test_derive_reports_each_defect_it_handled(derived: dict[str, Derivation]) -> None:
    for derivation in derived.values():
        manifest = json.loads((derivation.folder / "manifest.json").read_bytes())
        lines = [x for x in derivation.result.stdout.splitlines() if x.strip().startswith("defect")]
        assert len(lines) == len(manifest["defects"]) > 0
        for defect, line in zip(manifest["defects"], lines, strict=True):
            assert defect["kind"] in line and defect["location"] in line


@needs_specs
def test_same_spec_gives_identical_bytes_across_processes_and_formats(
    reference: Reference, tmp_path: Path
) -> None:
    """The command on YAML in other processes, a JSON copy here, and twice from one parse."""
    derived = reference.derived
    newest = spec_files()[-1]
    spec = reference.newest
    # deriving must not change the parsed document: a second run gives the same bytes
    first = derive(spec, "x").files
    assert derive(spec, "x").files == first
    json_copy = tmp_path / newest.name.replace(".yaml", ".json")
    json_copy.write_text(json.dumps(spec.document, default=str))
    assert json_copy.read_bytes()[:1] == b"{"
    from_json = folder_bytes(derive_to(json_copy, tmp_path / "out"))
    from_yaml = folder_bytes(derived[default_name(newest)].folder)
    assert sorted(from_json) == sorted(from_yaml)
    for name in from_yaml:
        if name != "manifest.json":
            assert from_json[name] == from_yaml[name], name
            assert first[name] == from_yaml[name], name
    manifest_json = json.loads(from_json["manifest.json"])
    manifest_yaml = json.loads(from_yaml["manifest.json"])
    # only the source differs: another file, other bytes
    assert manifest_json.pop("source") != manifest_yaml.pop("source")
    assert manifest_json == manifest_yaml


# -- the manifest ---------------------------------------------------------------------------
@needs_specs
def test_manifest_names_its_source_and_its_files() -> None:
    for spec_path in spec_files():
        name = default_name(spec_path)
        folder = COMMITTED / name
        manifest = json.loads((folder / "manifest.json").read_bytes())
        assert manifest["name"] == name
        assert manifest["source"] == {
            "file": spec_path.name,
            "sha256": sha256(spec_path.read_bytes()),
            "date": spec_path.name[:10],  # the reference specs are named DATE_COMMIT_openapi
        }
        assert manifest["info_version"] and isinstance(manifest["info_version"], str)
        assert manifest["generator_version"]
        on_disk = {p.name for p in folder.iterdir()} - {"manifest.json"}
        assert set(manifest["files"]) == on_disk
        for filename, digest in manifest["files"].items():
            assert digest == sha256((folder / filename).read_bytes()), f"{name}/{filename}"
        operation = manifest["operation"]
        assert (operation["path"], operation["method"]) == ("/responses/compact", "post")
        assert operation["operationId"] == "Compactconversation"
        assert operation["request"] == "CompactResponseMethodPublicBody"
        assert operation["response"] == "CompactResource"
        assert operation["error"] == "ErrorResponse"


def committed_manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for folder in version_dirs():
        yield folder.name, json.loads((folder / "manifest.json").read_bytes())


def test_only_the_newest_version_declares_a_429_with_retry_after() -> None:
    statuses = {name[:10]: m["operation"]["error_statuses"] for name, m in committed_manifests()}
    assert statuses["2026-08-21"] == {
        "429": {
            "headers": {
                "Retry-After": {"required": False, "schema": {"minimum": 1, "type": "integer"}}
            }
        }
    }
    assert all(not statuses[d] for d in ("2026-04-13", "2026-05-13", "2026-07-15"))


def load_doc(version: str, kind: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (COMMITTED / version / f"{kind}.schema.json").read_bytes()
    )
    return document


def test_manifest_lists_the_undefined_required_entries_it_dropped() -> None:
    for name, manifest in committed_manifests():
        dropped = {
            (d["location"], d["detail"].split("'")[1])
            for d in manifest["defects"]
            if d["kind"] == "required-undefined"
        }
        assert ("MCPApprovalResponse/required", "request_id") in dropped, name
        assert ("LocalShellToolCallOutput/required", "call_id") in dropped, name
        request = load_doc(name, "request")["$defs"]
        for schema, prop in (
            ("MCPApprovalResponse", "request_id"),
            ("LocalShellToolCallOutput", "call_id"),
        ):
            assert prop not in request[schema].get("required", []), (name, schema)
            assert prop not in request[schema]["properties"], (name, schema)
        # the rest of the required list stays
        assert "approval_request_id" in request["MCPApprovalResponse"]["required"]


@needs_specs
def test_dropped_required_entries_are_real_defects_of_the_spec(reference: Reference) -> None:
    """The newest spec itself requires what it never defines."""
    text = spec_files()[-1].read_text()
    schemas = reference.newest.schemas
    for schema, prop in (
        ("MCPApprovalResponse", "request_id"),
        ("LocalShellToolCallOutput", "call_id"),
    ):
        assert prop in schemas[schema]["required"]
        assert prop not in schemas[schema]["properties"]
    assert "$recursiveRef" in text


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_recursive_ref_is_translated_to_2020_12() -> None:
    for name, manifest in committed_manifests():
        recursive = [d for d in manifest["defects"] if d["kind"] == "recursive-ref"]
        assert recursive, name
        assert all("CompoundFilter" in d["location"] for d in recursive)
        request = load_doc(name, "request")
        keys = {key for key, _ in walk(request)}
        assert not keys & {"$recursiveRef", "$recursiveAnchor", "$dynamicRef", "$dynamicAnchor"}
        filters = request["$defs"]["CompoundFilter"]["properties"]["filters"]["items"]
        assert ("$ref", "#/$defs/CompoundFilter") in list(walk(filters))
        # the recursion works: a filter three levels down is checked against ComparisonFilter
        compound = jsonschema_rs.validator_for(
            {"$ref": "#/$defs/CompoundFilter", "$defs": request["$defs"]}
        )
        leaf: dict[str, Any] = {"type": "eq", "key": "team", "value": "core"}
        nested = {"type": "and", "filters": [{"type": "or", "filters": [leaf]}]}
        assert compound.is_valid(nested)
        del leaf["value"]
        assert not compound.is_valid(nested)


def test_nonstandard_formats_are_registered_and_nothing_else_is_unknown() -> None:
    assert set(CUSTOM_FORMATS) == {"unixtime", "float"}
    for name, manifest in committed_manifests():
        assert manifest["custom_formats"] == ["unixtime", "float"]
        used: set[str] = set()
        for kind in ("request", "response", "error"):
            nodes = iter_schema_nodes(load_doc(name, kind))
            used |= {n["format"] for n in nodes if isinstance(n.get("format"), str)}
        assert used - STANDARD_FORMATS <= set(CUSTOM_FORMATS), name
        assert "float" in used, name
    response = load_doc("2026-08-21_f85dbe223d40", "response")
    created_at = response["$defs"]["CompactResource"]["properties"]["created_at"]
    assert created_at == {"format": "unixtime", "type": "integer"}


def test_derived_documents_hold_structure_only() -> None:
    for name, _ in committed_manifests():
        for kind in ("request", "response", "error"):
            document = load_doc(name, kind)
            assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            nodes = list(iter_schema_nodes(document))
            assert len(nodes) > len(document["$defs"])
            for node in nodes:
                assert not [k for k in node if k.startswith("x-")], (name, kind, node)
                assert not node.keys() & PROSE, (name, kind, node.keys() & PROSE)
                ref = node.get("$ref")
                assert ref is None or (ref[8:] in document["$defs"] and ref[:8] == "#/$defs/")


def member_types(document: dict[str, Any], node: Any, depth: int = 0) -> set[str]:
    if not isinstance(node, dict) or depth > 20:
        return set()
    if "$ref" in node:
        return member_types(document, document["$defs"][node["$ref"][8:]], depth + 1)
    declared = node.get("type")
    return {declared} if isinstance(declared, str) else set(declared or ())


def test_item_unions_dispatch_on_type_and_leftover_one_of_is_disjoint() -> None:
    for name, _ in committed_manifests():
        request = load_doc(name, "request")
        response = load_doc(name, "response")
        assert "oneOf" not in request["$defs"]["InputItem"]
        assert "oneOf" not in response["$defs"]["ItemField"]
        assert request["$defs"]["InputItem"]["if"]["not"] == {"required": ["type"]}
        for document in (request, response):
            for key, value in walk(document):
                if key != "oneOf":
                    continue
                seen: set[str] = set()
                for member in value:
                    types = member_types(document, member)
                    assert types and not types & seen, (name, value)
                    seen |= types


# -- bad spec input -----------------------------------------------------------------------
def minimal_spec() -> dict[str, Any]:
    def body(ref: str) -> dict[str, Any]:
        return {
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}
        }

    return {
        "openapi": "3.1.0",
        "info": {"version": "0.0.1"},
        "paths": {
            "/responses/compact": {
                "post": {
                    "operationId": "Compactconversation",
                    "requestBody": body("Req"),
                    "responses": {"200": body("Res"), "400": body("ErrorResponse")},
                }
            }
        },
        "components": {
            "schemas": {
                "Req": {
                    "type": "object",
                    "properties": {"model": {"type": "string"}},
                    "required": ["model"],
                },
                "Res": {"type": "object", "properties": {"id": {"type": "string"}}},
                "ErrorResponse": {
                    "type": "object",
                    "properties": {"error": {"type": "object"}},
                    "required": ["error"],
                },
            }
        },
    }


def bad_specs() -> dict[str, tuple[bytes, str]]:
    """name -> (file content, what the message must say)."""

    def variant(change: Any) -> bytes:
        spec = minimal_spec()
        change(spec)
        return json.dumps(spec).encode()

    schemas = lambda s: s["components"]["schemas"]  # noqa: E731
    operation = lambda s: s["paths"]["/responses/compact"]["post"]  # noqa: E731
    return {
        "not-yaml": (b"{{{: [ unbalanced", "not valid YAML or JSON"),
        "not-openapi": (b"just a sentence\n", "not an OpenAPI document"),
        "binary": (b"\x00\xff\xfe\x89PNG", "not"),
        "no-operation": (
            variant(lambda s: s["paths"].pop("/responses/compact")),
            "no 'post' operation at paths['/responses/compact']",
        ),
        "dangling-ref": (
            variant(
                lambda s: schemas(s)["Req"]["properties"].update(
                    x={"$ref": "#/components/schemas/Gone"}
                )
            ),
            "'Gone' is referenced but not defined",
        ),
        "external-ref": (
            variant(lambda s: schemas(s)["Req"]["properties"].update(x={"$ref": "other.yaml#/X"})),
            "unsupported reference 'other.yaml#/X'",
        ),
        "properties-list": (
            variant(lambda s: schemas(s)["Req"].update(properties=["model"])),
            "Req/properties must be an object",
        ),
        "required-string": (
            variant(lambda s: schemas(s)["Req"].update(required="model")),
            "not a valid JSON Schema at $defs/Req/required",
        ),
        "bad-pattern": (
            variant(lambda s: schemas(s)["Req"]["properties"].update(x={"pattern": "(open"})),
            "$defs/Req/properties/x/pattern",
        ),
        "responses-list": (
            variant(lambda s: operation(s).update(responses=["200"])),
            "responses must be an object",
        ),
        "no-request-body": (
            variant(lambda s: operation(s).pop("requestBody")),
            "no application/json schema reference at paths['/responses/compact'].post.requestBody",
        ),
        "error-ref-dangling": (
            variant(
                lambda s: operation(s)["responses"].update(
                    {"429": {"$ref": "#/components/responses/Nope"}}
                )
            ),
            "dangling reference '#/components/responses/Nope'",
        ),
        "deep-json": (
            b'{"openapi": "3.1.0", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "nests too deeply",
        ),
        "deep-yaml": (
            b"openapi: 3.1.0\nx: " + b"[" * 30_000 + b"]" * 30_000 + b"\n",
            "nest deeper than",
        ),
    }


def test_a_minimal_spec_derives(tmp_path: Path) -> None:
    """The control for the bad inputs below: the same spec, unbroken, derives."""
    path = tmp_path / "good_openapi.json"
    path.write_text(json.dumps(minimal_spec()))
    target = derive_to(path, tmp_path / "out")
    assert target.name == "good"
    assert json.loads((target / "request.schema.json").read_bytes())["$defs"]["Req"][
        "required"
    ] == ["model"]


@pytest.mark.parametrize("case", sorted(bad_specs()))
def test_bad_spec_raises_spec_error_naming_the_file(case: str, tmp_path: Path) -> None:
    content, expected = bad_specs()[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as caught:
        derive_to(path, tmp_path / "out")
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_bad_specs_through_the_command_exit_2_without_traceback(tmp_path: Path) -> None:
    # the library test above covers every case; the command gets one of each family
    cases = {
        k: v
        for k, v in bad_specs().items()
        if k in ("not-yaml", "no-operation", "dangling-ref", "required-string", "deep-yaml")
    }
    paths = {}
    for case, (content, _) in cases.items():
        paths[case] = tmp_path / f"{case}.yaml"
        paths[case].write_bytes(content)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    good = tmp_path / "good_openapi.json"
    good.write_text(json.dumps(minimal_spec()))
    commands = [
        [*CLI, "schemas", "derive", "--spec", str(p), "--out", str(tmp_path / "o")]
        for p in paths.values()
    ]
    commands.append([*CLI, "schemas", "derive", "--spec", str(tmp_path / "missing.yaml")])
    commands.append([*CLI, "schemas", "derive", "--spec", str(good), "--out", str(blocker)])
    results = run_all(commands)
    for (case, (_, expected)), result in zip(cases.items(), results, strict=False):
        no_traceback(result)
        assert result.returncode == 2, (case, result.stderr)
        assert result.stderr.startswith("pytest-compaction: "), result.stderr
        assert str(paths[case]) in result.stderr and expected in result.stderr, result.stderr
        assert result.stdout == ""
    missing, blocked = results[-2:]
    for result in (missing, blocked):
        no_traceback(result)
        assert result.returncode == 2
    assert f"cannot read spec {tmp_path / 'missing.yaml'}" in missing.stderr
    assert f"cannot write {blocker}/good/" in blocked.stderr
    assert not (tmp_path / "o").exists()


# -- listing and packaging --------------------------------------------------------------------
def test_schemas_list_shows_the_six_versions_newest_last() -> None:
    [result] = run_all([[*CLI, "schemas", "list"]])
    assert result.returncode == 0, result.stderr
    head, *lines = result.stdout.splitlines()
    assert head.split("  ")[0].strip() == "version" and "source date" in head
    folders = [p.name for p in version_dirs()]
    assert [line.split()[0] for line in lines] == folders
    assert len(lines) == 6
    # each spec version: the date of its spec and the spec file
    for line in lines[:4]:
        name, date, *source = line.split()
        assert (date, " ".join(source)) == (name[:10], f"spec {name}_openapi.yaml"), line
    # each overlaid version: its evidence's release date, and every overlay it applied, in order
    assert [" ".join(line.split()) for line in lines[4:]] == [
        "2026-11-19_openai-3.57.0 2026-11-19 openai 3.57.0 SDK types (overlay "
        "openai-3.57.0.overlay.yaml) over spec 2026-08-21_f85dbe223d40_openapi.yaml (2026-08-21)",
        "2026-11-26_openai-3.60.0 2026-11-26 openai 3.60.0 SDK types (overlay "
        "openai-3.57.0.overlay.yaml, openai-3.60.0.overlay.yaml) over spec "
        "2026-08-21_f85dbe223d40_openapi.yaml (2026-08-21) (newest, default)",
    ]
    assert all("newest" not in line for line in lines[:-1])


@pytest.mark.skipif(
    importlib.util.find_spec("hatchling") is None,
    reason="hatchling is not installed in this environment (needed to build the wheel offline)",
)
def test_wheel_ships_every_schema_version(tmp_path: Path) -> None:
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = tmp_path.glob("pytest_compaction-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for folder in sorted(p for p in COMMITTED.iterdir() if p.is_dir()):
            for file in folder.iterdir():  # the overlays too: the evidence of a version
                member = f"pytest_compaction/schemas/{folder.name}/{file.name}"
                assert member in names, member
                assert archive.read(member) == file.read_bytes(), member
        archive.extractall(tmp_path / "site")
    # the installed package finds its schemas inside itself, not in a source checkout
    probe = (
        "import pytest_compaction as p, pytest_compaction.schema._versions as v;"
        "print(v.schemas_root());print(','.join(p.available_versions()));"
        "print(p.validate_request({'model': 'gpt-5'}).valid)"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    root, versions, valid = run.stdout.split()
    assert Path(root) == tmp_path / "site" / "pytest_compaction" / "schemas"
    assert versions.split(",") == [p.name for p in version_dirs()]
    assert valid == "True"
