"""The schema versions: where they live and how a name selects one.

The bundled versions ship in ``schemas/``. Versions a user derived (``schemas derive``) join
them from the folders named by the environment variable :data:`SCHEMA_PATH_ENV` (separated
like ``PATH``) and by :func:`add_schema_dirs` (the plugin's ``--compaction-schema-path`` and
``compaction_schema_path`` ini key). Each folder is a version folder (it holds a
``manifest.json``) or holds version folders. All are addressed alike, by name or unique date
prefix, and the newest by name (names start with their date) is the default.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, Literal

from .._errors import VersionError

# The bodies of POST /responses/compact: what ``schemas diff`` and the cassette checks cover.
CompactKind = Literal["request", "response", "error"]
# POST /responses (server-side compaction): request, response object, one stream event.
ResponsesKind = Literal["responses.request", "responses.response", "responses.event"]
# POST /responses/compact?beta=true (``client.beta.responses.compact()``): request and answer.
BetaKind = Literal["beta.request", "beta.response"]
Kind = Literal[CompactKind, ResponsesKind, BetaKind]
COMPACT_KINDS: tuple[CompactKind, ...] = ("request", "response", "error")
RESPONSES_KINDS: tuple[ResponsesKind, ...] = (
    "responses.request",
    "responses.response",
    "responses.event",
)
BETA_KINDS: tuple[BetaKind, ...] = ("beta.request", "beta.response")
KINDS: tuple[Kind, ...] = (*COMPACT_KINDS, *RESPONSES_KINDS, *BETA_KINDS)
SCHEMA_PATH_ENV = "COMPACTION_SCHEMA_PATH"
_added: list[Path] = []


def schemas_root() -> Path:
    """``schemas/`` ships inside the wheel; in a source checkout it sits beside the package."""
    packaged = Path(__file__).parent.parent / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


def schema_dirs() -> tuple[Path, ...]:
    """Where user-derived versions are looked for: the environment's, then the added ones."""
    env = [Path(p) for p in os.environ.get(SCHEMA_PATH_ENV, "").split(os.pathsep) if p.strip()]
    return tuple(dict.fromkeys(p.resolve() for p in [*env, *_added]))


def add_schema_dirs(paths: Iterable[str | Path]) -> None:
    """Let the versions in ``paths`` join the bundled ones (for the rest of the process)."""
    for path in paths:
        folder = Path(path).resolve()
        if not folder.is_dir():
            raise VersionError(f"schema path {path}: no such folder")
        if folder not in _added:
            _added.append(folder)
    _registry_for.cache_clear()


def _version_folders(folder: Path) -> list[Path]:
    if (folder / "manifest.json").is_file():
        return [folder]
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / "manifest.json").is_file())


@cache
def _registry_for(dirs: tuple[Path, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {p.name: p for p in _version_folders(schemas_root())}
    for folder in dirs:
        for version in _version_folders(folder):
            known = found.get(version.name)
            if known is not None and known.resolve() != version.resolve():
                raise VersionError(
                    f"schema version {version.name!r} in {version.parent} has the name of the "
                    f"one in {known.parent}; rename one of them (schemas derive --name)"
                )
            found[version.name] = version
    return dict(sorted(found.items()))


def _registry() -> dict[str, Path]:
    return _registry_for(schema_dirs())


def available_versions() -> tuple[str, ...]:
    """Every version name, bundled and user-derived, oldest first (names start with a date)."""
    return tuple(_registry())


def version_folder(name: str) -> Path:
    """The folder of a version name from :func:`available_versions`."""
    return _registry()[name]


def newest_version() -> str:
    versions = available_versions()
    if not versions:
        raise VersionError(f"no schema versions found under {schemas_root()}")
    return versions[-1]


def resolve_version(version: str | Path | None = None) -> str:
    """A full version name from a name, a unique date prefix, or a folder of derived schemas.

    ``None`` means the newest version (bundled or user-derived).
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
        if not file.exists() and kind in BETA_KINDS:
            raise VersionError(self._no_beta(file))
        if not file.exists() and kind in RESPONSES_KINDS:
            raise VersionError(self._missing(file))
        try:
            document: dict[str, Any] = json.loads(file.read_bytes())
        except (OSError, ValueError) as exc:
            raise VersionError(
                f"schema version {self.name!r}: {file} is unreadable: {exc}"
            ) from None
        return document

    @property
    def has_beta(self) -> bool:
        """Whether the version has a contract for ``POST /responses/compact?beta=true``."""
        return (self.path / "beta.request.schema.json").is_file()

    def _no_beta(self, file: Path) -> str:
        if "beta" in self.manifest and self.manifest["beta"] is None:
            return (
                f"schema version {self.name!r} has no beta compact contract: its spec declares "
                "no POST /responses/compact?beta=true (the spec has it from 2026-07-15 on); "
                "judge beta calls under a newer version (--compaction-version / --version)"
            )
        return (
            f"schema version {self.name!r}: {file.name} is missing from {self.path}: the folder "
            "was derived before beta schemas were; derive it again with: pytest-compaction "
            "schemas derive --spec <spec> --out <folder>"
        )

    def _missing(self, file: Path) -> str:
        """Why a POST /responses schema is absent: the spec lacks it, or an older derivation."""
        where = f"schema version {self.name!r}: {file.name} is missing from {self.path}"
        if "responses" in self.manifest and self.manifest["responses"] is None:
            return f"{where}: its spec declares no POST /responses operation"
        return (
            f"{where}: the folder was derived before POST /responses schemas were; derive it "
            "again with: pytest-compaction schemas derive --spec <spec> --out <folder>"
        )


def load_schema_set(version: str | Path | None = None) -> SchemaSet:
    """The version ``version`` names (see :func:`resolve_version`), read once per folder.

    The name is resolved on every call, so that "the newest" follows the schema path as it is
    now; the documents are cached by the folder they come from.
    """
    name = resolve_version(version)
    folder = Path(name) if Path(name).is_absolute() else version_folder(name)
    return _load_schema_set(name, folder)


@cache
def _load_schema_set(name: str, folder: Path) -> SchemaSet:
    try:
        manifest = json.loads((folder / "manifest.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise VersionError(f"schema version {name!r} at {folder} is unreadable: {exc}") from None
    return SchemaSet(Path(name).name, folder, manifest)


# -- freshness ---------------------------------------------------------------------------------
def _release(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def freshness(version: str | None = None) -> str | None:
    """One line when the installed SDK is newer than the release the contract covers, else None.

    A version derived with an overlay records the SDK release its evidence came from
    (``covers`` in the manifest); a plain spec version records none and gets no line.
    """
    from importlib import metadata

    schema_set = load_schema_set(version)
    covers = schema_set.manifest.get("covers")
    if not isinstance(covers, dict) or not covers.get("package") or not covers.get("version"):
        return None
    package, covered = str(covers["package"]), str(covers["version"])
    try:
        installed = metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
    if _release(installed) <= _release(covered):
        return None
    return (
        f"the installed {package} {installed} is newer than {package} {covered}, the release "
        f"schema version {schema_set.name} covers: traffic it sends may be newer than the "
        "contract (update pytest-compaction, or derive a version from a newer spec or overlay)"
    )
