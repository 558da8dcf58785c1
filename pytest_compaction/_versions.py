"""The bundled schema versions: where they live and how a name selects one."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

from ._errors import VersionError

# The bodies of POST /responses/compact: what ``schemas diff`` and the cassette checks cover.
CompactKind = Literal["request", "response", "error"]
# POST /responses (server-side compaction): request, response object, one stream event.
ResponsesKind = Literal["responses.request", "responses.response", "responses.event"]
Kind = Literal[CompactKind, ResponsesKind]
COMPACT_KINDS: tuple[CompactKind, ...] = ("request", "response", "error")
RESPONSES_KINDS: tuple[ResponsesKind, ...] = (
    "responses.request",
    "responses.response",
    "responses.event",
)
KINDS: tuple[Kind, ...] = (*COMPACT_KINDS, *RESPONSES_KINDS)


def schemas_root() -> Path:
    """``schemas/`` ships inside the wheel; in a source checkout it sits beside the package."""
    packaged = Path(__file__).with_name("schemas")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "schemas"


@cache
def available_versions() -> tuple[str, ...]:
    """Bundled version names, oldest first (names start with their date)."""
    root = schemas_root()
    if not root.is_dir():
        return ()
    return tuple(sorted(p.name for p in root.iterdir() if (p / "manifest.json").is_file()))


def newest_version() -> str:
    versions = available_versions()
    if not versions:
        raise VersionError(f"no schema versions found under {schemas_root()}")
    return versions[-1]


def resolve_version(version: str | Path | None = None) -> str:
    """A full version name from a name, a unique date prefix, or a folder of derived schemas.

    ``None`` means the newest bundled version.
    """
    if version is None or version == "":
        return newest_version()
    text = str(version)
    if Path(text, "manifest.json").is_file():
        return str(Path(text).resolve())
    versions = available_versions()
    if text in versions:
        return text
    matches = [v for v in versions if v.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(versions) or "(none)"
    if matches:
        raise VersionError(f"schema version {text!r} is ambiguous: matches {', '.join(matches)}")
    raise VersionError(f"unknown schema version {text!r}; known versions: {known}")


class SchemaSet:
    """The derived documents of one version, each read from disk on first use."""

    def __init__(self, name: str, path: Path, manifest: dict[str, Any]) -> None:
        self.name = name
        self.path = path
        self.manifest = manifest
        self._documents: dict[tuple[str, bool], dict[str, Any]] = {}

    def document(self, kind: Kind, strict: bool = False) -> dict[str, Any]:
        """The open document of a kind, or its strict variant (every declared object closed)."""
        key = (kind, strict)
        if key not in self._documents:
            self._documents[key] = self._read(kind, strict)
        return self._documents[key]

    def _read(self, kind: Kind, strict: bool) -> dict[str, Any]:
        if kind not in KINDS:
            raise VersionError(f"unknown schema kind {kind!r}; known kinds: {', '.join(KINDS)}")
        file = self.path / (f"{kind}.strict.schema.json" if strict else f"{kind}.schema.json")
        if strict and not file.exists():
            # Folders derived before the strict variant was written alongside.
            from ._strict import closed

            return closed(self.document(kind), assembled=kind in RESPONSES_KINDS)
        if not file.exists() and kind in RESPONSES_KINDS:
            raise VersionError(self._missing(file))
        try:
            document: dict[str, Any] = json.loads(file.read_bytes())
        except (OSError, ValueError) as exc:
            raise VersionError(
                f"schema version {self.name!r}: {file} is unreadable: {exc}"
            ) from None
        return document

    def _missing(self, file: Path) -> str:
        """Why a POST /responses schema is absent: the spec lacks it, or an older derivation."""
        where = f"schema version {self.name!r}: {file.name} is missing from {self.path}"
        if "responses" in self.manifest and self.manifest["responses"] is None:
            return f"{where}: its spec declares no POST /responses operation"
        return (
            f"{where}: the folder was derived before POST /responses schemas were; derive it "
            "again with: pytest-compaction schemas derive --spec <spec> --out <folder>"
        )


@cache
def load_schema_set(version: str | None = None) -> SchemaSet:
    name = resolve_version(version)
    folder = Path(name) if Path(name).is_absolute() else schemas_root() / name
    try:
        manifest = json.loads((folder / "manifest.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise VersionError(f"schema version {name!r} at {folder} is unreadable: {exc}") from None
    return SchemaSet(Path(name).name, folder, manifest)
