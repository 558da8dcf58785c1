"""Reading an OpenAPI document and finding the compaction operation in it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .._errors import SpecError

# libyaml parses a 3 MB spec in ~2 s; the pure-Python loader takes ~40 s.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

COMPACT_PATH = "/responses/compact"
# libyaml's loader overflows the C stack somewhere past 20,000 nested flow collections.
MAX_FLOW_DEPTH = 10_000
SCHEMA_PREFIX = "#/components/schemas/"


@dataclass(frozen=True)
class Spec:
    """A parsed OpenAPI document with the facts derivation needs."""

    source: str
    sha256: str
    document: dict[str, Any]

    @property
    def info_version(self) -> str:
        info = self.document.get("info")
        return str(info.get("version", "")) if isinstance(info, dict) else ""

    @property
    def schemas(self) -> dict[str, Any]:
        components = self.document.get("components")
        schemas = components.get("schemas") if isinstance(components, dict) else None
        if not isinstance(schemas, dict):
            raise SpecError(f"{self.source}: no components.schemas section")
        return schemas

    def compact_operation(self) -> dict[str, Any]:
        paths = self.document.get("paths")
        if not isinstance(paths, dict):
            raise SpecError(f"{self.source}: no 'paths' section")
        item = paths.get(COMPACT_PATH)
        operation = item.get("post") if isinstance(item, dict) else None
        if not isinstance(operation, dict):
            raise SpecError(f"{self.source}: no 'post' operation at paths['{COMPACT_PATH}']")
        return operation

    def resolve_component(self, ref: str) -> tuple[str, Any]:
        """Follow a ``#/components/<section>/<name>`` reference."""
        parts = ref.removeprefix("#/").split("/")
        node: Any = self.document
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                raise SpecError(f"{self.source}: dangling reference {ref!r}")
            node = node[part]
        return parts[-1], node


def _nests_deeper(raw: bytes, limit: int) -> bool:
    """Whether ``[``/``{`` nest deeper than ``limit`` (quotes ignored: errs on the safe side)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for match in re.finditer(rb"[\[\]{}]", raw):
        depth += 1 if match.group() in b"[{" else -1
        if depth > limit:
            return True
    return False


def load_spec(path: str | Path) -> Spec:
    """Load an OpenAPI document (YAML or JSON), with errors that name the file."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO or a device would block or never end
        raise SpecError(f"cannot read spec {path}: not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc.strerror or exc}") from None
    try:
        if raw.lstrip()[:1] == b"{":
            document = json.loads(raw)
        elif _nests_deeper(raw, MAX_FLOW_DEPTH):
            raise SpecError(f"{path}: brackets nest deeper than {MAX_FLOW_DEPTH} levels")
        else:
            document = yaml.load(raw, Loader=_SafeLoader)
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: not valid YAML or JSON: {exc}") from None
    except RecursionError:
        raise SpecError(f"{path}: nests too deeply to be an OpenAPI document") from None
    if not isinstance(document, dict) or "openapi" not in document:
        raise SpecError(f"{path}: not an OpenAPI document (no top-level 'openapi' key)")
    return Spec(source=str(path), sha256=hashlib.sha256(raw).hexdigest(), document=document)
