"""`pytest-compaction schemas ...` and `pytest-compaction validate`: schema tools at the edge.

Reports are data until here; this module only turns them into text or JSON and exit codes
(0 all valid, 1 a violation, 2 a usage error such as an unreadable file or unknown version).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .._errors import CompactionError
from ..cassette._secrets import mask_secrets
from ..contract._dialects import DIALECTS, dialect_validator
from ..schema._derive import derive_to
from ..schema._diff import diff_versions, format_text
from ..schema._report import Report
from ..schema._versions import KINDS, Kind, available_versions, load_schema_set, resolve_version
from ._common import add_format, add_judging, as_json

MAX_BODY_BYTES = 512 * 1024 * 1024


def add_schemas(commands: Any) -> None:
    schemas = commands.add_parser("schemas", help="derive and list schema versions")
    sub = schemas.add_subparsers(dest="schemas_command", metavar="ACTION", required=True)
    derive = sub.add_parser(
        "derive",
        help="derive JSON Schemas for /responses/compact from an OpenAPI spec",
        description=(
            "Write the schemas of POST /responses/compact (and, where the spec has them, of "
            "POST /responses and POST /responses/compact?beta=true) and a manifest to OUT/NAME. "
            "Overlays (OpenAPI Overlay 1.0) are applied to the spec first, in the order given."
        ),
    )
    derive.add_argument("--spec", required=True, help="OpenAPI 3.1 document (YAML or JSON)")
    derive.add_argument(
        "--overlay",
        action="append",
        default=[],
        metavar="FILE",
        help="an OpenAPI Overlay 1.0 document applied to the spec first (repeatable)",
    )
    derive.add_argument("--out", default="schemas", help="output folder (default: schemas)")
    derive.add_argument(
        "--source-date",
        default=None,
        metavar="YYYY-MM-DD",
        help=(
            "the date of the spec, recorded in the manifest and shown by schemas list (default: "
            "the date the spec's file name starts with, as in 2026-08-21_f85dbe223d40_openapi.yaml)"
        ),
    )
    derive.add_argument(
        "--name",
        default=None,
        help="version name (default: from the file name, or the overlay's evidence)",
    )
    derive.set_defaults(handler=run_derive)
    listing = sub.add_parser(
        "list",
        help="list the schema versions: the date and source of each, and the default",
        description=(
            "One line per schema version, oldest first: its name, the date of its source, the "
            "source (the OpenAPI spec file it was derived from, or the SDK release whose types "
            "an overlay carries over that spec) and which version is the default (the newest)."
        ),
    )
    listing.set_defaults(handler=run_list)
    _add_diff(sub)


def _add_diff(actions: Any) -> None:
    parser = actions.add_parser(
        "diff",
        help=(
            "list the changes between two schema versions, classified: POST /responses/compact, "
            "POST /responses and every other kind a version has"
        ),
        description=(
            "Compare every kind of schema A and B have (bundled version names or date prefixes, "
            "derived folders, or OpenAPI spec files): the request, response and error bodies of "
            "POST /responses/compact, the request, response object and stream event of POST "
            f"/responses, and any other ({', '.join(KINDS)}). Each change is breaking for "
            "clients (a valid request becomes invalid), breaking for recordings (a valid "
            "response, event or error becomes invalid) or compatible. A kind only one version "
            "has is reported as such, with the reason, and not compared. Exit 0 on success, 2 on "
            "usage errors."
        ),
    )
    parser.add_argument("old", metavar="A", help="the older version")
    parser.add_argument("new", metavar="B", help="the newer version")
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help=(
            "text: a line per change, grouped by kind; json: the changes, a summary per kind and "
            "the coverage of each kind (compared, or which version lacks it and why)"
        ),
    )
    parser.set_defaults(handler=run_diff)


def add_validate(commands: Any) -> None:
    validate = commands.add_parser(
        "validate",
        help="validate JSON bodies against a schema version",
        description="Exit 0 when every file is valid, 1 on any violation, 2 on usage errors.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="JSON body files ('-': stdin)")
    validate.add_argument("--kind", choices=KINDS, required=True)
    add_judging(
        validate,
        version="version name or date (default newest)",
        strict="undocumented properties are violations",
    )
    add_format(validate)
    validate.add_argument(
        "--dialect",
        choices=DIALECTS,
        default="openai",
        help="validate under a gateway's profile: its additions are checked, not drift",
    )
    validate.set_defaults(handler=run_validate)


def run_derive(args: argparse.Namespace) -> int:
    target = derive_to(args.spec, args.out, args.name, args.overlay, args.source_date)
    manifest = json.loads((target / "manifest.json").read_bytes())
    date = manifest["source"].get("date") or UNDATED
    print(
        f"wrote {target} (spec {manifest['source']['file']} of {date}, info.version "
        f"{manifest['info_version']}, {len(manifest['defects'])} defects)"
    )
    for overlay in manifest.get("overlays", []):
        print(f"  overlay {overlay['file']}: {len(overlay['actions'])} action(s) applied")
    for defect in manifest["defects"]:
        print(f"  defect {defect['kind']}: {defect['location']}: {defect['detail']}")
    responses = manifest.get("responses")
    if responses:
        # Those of POST /responses's closures that the compaction closures do not share.
        shown = {(d["kind"], d["location"]) for d in manifest["defects"]}
        for defect in responses["defects"]:
            if (defect["kind"], defect["location"]) not in shown:
                print(
                    f"  POST /responses defect {defect['kind']}: {defect['location']}: "
                    f"{defect['detail']}"
                )
    return 0


# No date known: a spec file named without one and no --source-date, or a folder derived
# before manifests recorded the date.
UNDATED = "undated"


def _spec_source(source: Any) -> tuple[str, str]:
    """(date, "spec FILE") of a manifest's ``source``."""
    source = source if isinstance(source, dict) else {}
    date = source.get("date") or UNDATED
    return str(date), f"spec {source.get('file') or '?'}"


def source_of(manifest: dict[str, Any]) -> tuple[str, str]:
    """(date, description) of the source a version was derived from.

    A plain version: the spec's date and file. A version with overlays: the release date of
    the newest evidence they carry (an SDK's types, ``covers``) and that evidence, over the
    spec with its own date.
    """
    date, spec = _spec_source(manifest.get("source"))
    overlays = [o for o in manifest.get("overlays") or () if isinstance(o, dict)]
    if not overlays:
        return date, spec
    files = ", ".join(str(o.get("file", "?")) for o in overlays)
    covers = manifest.get("covers")
    if isinstance(covers, dict) and covers.get("package") and covers.get("version"):
        released = str(covers.get("released") or UNDATED)
        evidence = f"{covers['package']} {covers['version']} SDK types"
        return released, f"{evidence} (overlay {files}) over {spec} ({date})"
    return date, f"{spec} + overlay {files}"


def run_list(args: argparse.Namespace) -> int:
    versions = available_versions()
    newest = versions[-1] if versions else None
    rows = [("version", "source date", "source", "")]
    for name in versions:
        date, source = source_of(load_schema_set(name).manifest)
        rows.append((name, date, source, "newest, default" if name == newest else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, date, source, mark in rows:
        line = f"{name.ljust(widths[0])}  {date.ljust(widths[1])}  {source}"
        print(f"{line}  ({mark})" if mark else line)
    return 0


def run_diff(args: argparse.Namespace) -> int:
    diff = diff_versions(args.old, args.new)
    if args.format == "json":
        print(as_json(diff.as_dict()))
    else:
        print(format_text(diff))
    return 0


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read(MAX_BODY_BYTES + 1)
    path = Path(name)
    if path.is_dir():
        raise CompactionError(f"{name}: is a directory, not a JSON file")
    if path.exists() and not path.is_file():  # a FIFO or a device would block or never end
        raise CompactionError(f"{name}: not a regular file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BODY_BYTES + 1)
    except OSError as exc:
        raise CompactionError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BODY_BYTES:
        raise CompactionError(f"{name}: larger than {MAX_BODY_BYTES} bytes")
    return data


def _text(name: str, report: Report, dialect: str = "openai") -> str:
    where = f"{report.kind}, {report.version}" + (f", dialect {dialect}" * (dialect != "openai"))
    if report.valid:
        head = f"{name}: valid ({where})"
    else:
        count = len(report.violations)
        head = f"{name}: {count} violation{'s' * (count != 1)} ({where})"
    lines = [head]
    lines += [f"  error: {v.message}" for v in report.violations]
    lines += [f"  drift: {d.message}" for d in report.drift]
    return "\n".join(lines)


def run_validate(args: argparse.Namespace) -> int:
    kind: Kind = args.kind
    validator = dialect_validator(kind, resolve_version(args.version), args.dialect)
    bodies = [(name, _read(name)) for name in args.files]
    results = [(name, validator.validate(data, strict=args.strict)) for name, data in bodies]
    if args.format == "json":
        payload = [
            {"file": name, "dialect": args.dialect, **report.as_dict()} for name, report in results
        ]
        print(mask_secrets(as_json(payload)))
    else:
        for name, report in results:
            print(mask_secrets(_text(name, report, args.dialect)))
    return 0 if all(report.valid for _, report in results) else 1


def register(commands: Any) -> None:
    add_schemas(commands)
    add_validate(commands)
