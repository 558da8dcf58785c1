"""OpenAPI Overlay 1.0 documents: changes to a spec, applied before derivation.

The public spec file cannot always be had when the API moves; an overlay carries what other
evidence shows (the openai SDK, generated from OpenAI's current spec) as a list of actions,
each citing its evidence in its ``description``. An action names its places with a JSONPath
``target`` (read by jsonpath-ng, not by code of our own) and either:

- ``update``: merged into each selected object (objects merge key by key, recursively; any
  other value replaces what was there), or appended as one entry to each selected array;
- ``remove: true``: each selected node is removed from the object or array holding it.

A target that selects nothing is an error, not a no-op: a misspelt or renamed target would
otherwise derive a contract that silently lacks the change. Actions apply in order, so a later
one can target what an earlier one added. The optional top-level ``x-evidence`` (``package``,
``version``, ``released``) says which SDK release the overlay covers; derivation records it in
the manifest, and it is what the freshness line compares the installed SDK with.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .._errors import SpecError

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ABSENT = object()
MAX_OVERLAY_BYTES = 16 * 1024 * 1024


class OverlayError(SpecError):
    """An overlay that cannot be read, or an action that cannot apply to the spec."""


@dataclass(frozen=True)
class Action:
    """One change: where (``target``), what (``update`` or ``remove``), and why."""

    index: int  # position in the overlay's ``actions`` (0-based)
    target: str
    description: str
    update: Any = _ABSENT
    remove: bool = False

    @property
    def has_update(self) -> bool:
        return self.update is not _ABSENT

    def record(self) -> dict[str, Any]:
        """What the manifest keeps of the action: where, which way, and its evidence."""
        return {
            "target": self.target,
            "change": "remove" if self.remove else "update",
            "evidence": self.description,
        }


@dataclass(frozen=True)
class Overlay:
    """A parsed overlay document."""

    source: str
    sha256: str
    title: str
    version: str
    evidence: dict[str, str] | None
    actions: tuple[Action, ...]

    def record(self) -> dict[str, Any]:
        """The manifest entry: the file, its sha256, what it covers and each action."""
        out: dict[str, Any] = {
            "file": Path(self.source).name,
            "sha256": self.sha256,
            "title": self.title,
            "version": self.version,
        }
        if self.evidence is not None:
            out["evidence"] = dict(self.evidence)
        out["actions"] = [a.record() for a in self.actions]
        return out


def _action(raw: Any, index: int, where: str) -> Action:
    here = f"{where}: actions[{index}]"
    if not isinstance(raw, dict):
        raise OverlayError(f"{here} must be an object")
    target = raw.get("target")
    if not isinstance(target, str) or not target.startswith("$"):
        raise OverlayError(f"{here}: 'target' must be a JSONPath string starting with '$'")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise OverlayError(f"{here}: 'description' must be a string")
    remove = raw.get("remove", False)
    if not isinstance(remove, bool):
        raise OverlayError(f"{here}: 'remove' must be true or false")
    update = raw.get("update", _ABSENT)
    if not remove and update is _ABSENT:
        raise OverlayError(f"{here}: has neither 'update' nor 'remove: true'")
    if update is not _ABSENT:
        try:  # what an update adds must be JSON (YAML alone has dates, sets, binary)
            json.dumps(update)
        except (TypeError, ValueError) as exc:
            raise OverlayError(f"{here}: 'update' is not plain JSON data: {exc}") from None
    unknown = sorted(k for k in raw if k not in ("target", "description", "update", "remove"))
    unknown = [k for k in unknown if not str(k).startswith("x-")]
    if unknown:
        raise OverlayError(f"{here}: unknown field(s) {', '.join(map(repr, unknown))}")
    return Action(index, target, description, update, remove)


def parse_overlay(raw: bytes, source: str) -> Overlay:
    """Parse overlay bytes (YAML or JSON); errors name ``source`` and the action."""
    try:
        document = yaml.load(raw, Loader=_SafeLoader)
    except (yaml.YAMLError, RecursionError) as exc:
        raise OverlayError(f"{source}: not valid YAML or JSON: {exc}") from None
    if not isinstance(document, dict) or "overlay" not in document:
        raise OverlayError(f"{source}: not an Overlay document (no top-level 'overlay' key)")
    version = str(document["overlay"])
    if not version.startswith("1.0"):
        raise OverlayError(f"{source}: Overlay version {version!r} is not supported (1.0.x is)")
    info = document.get("info")
    if not isinstance(info, dict) or not isinstance(info.get("title"), str):
        raise OverlayError(f"{source}: 'info' must be an object with a 'title'")
    actions = document.get("actions")
    if not isinstance(actions, list) or not actions:
        raise OverlayError(f"{source}: 'actions' must be a non-empty list")
    evidence = document.get("x-evidence")
    if evidence is not None and not (
        isinstance(evidence, dict) and isinstance(evidence.get("version"), str)
    ):
        raise OverlayError(f"{source}: 'x-evidence' must be an object with a 'version' string")
    return Overlay(
        source=source,
        sha256=hashlib.sha256(raw).hexdigest(),
        title=info["title"],
        version=str(info.get("version", "")),
        evidence={str(k): str(v) for k, v in evidence.items()} if evidence else None,
        actions=tuple(_action(a, i, source) for i, a in enumerate(actions)),
    )


def load_overlay(path: str | Path) -> Overlay:
    """Read and parse an overlay file; :class:`OverlayError` names the file."""
    path = Path(path)
    try:
        if path.is_dir():
            raise OverlayError(f"overlay {path}: is a directory, not an Overlay document")
        if not path.is_file():
            raise OverlayError(f"overlay {path}: no such file (or not a regular file)")
        with path.open("rb") as handle:
            raw = handle.read(MAX_OVERLAY_BYTES + 1)
    except OSError as exc:
        raise OverlayError(f"cannot read overlay {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_OVERLAY_BYTES:
        raise OverlayError(f"overlay {path}: larger than {MAX_OVERLAY_BYTES} bytes")
    return parse_overlay(raw, str(path))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        here = base.get(key)
        if isinstance(here, dict) and isinstance(value, dict):
            _merge(here, value)
        else:
            base[key] = copy.deepcopy(value)


def _parse_path(action: Action, where: str) -> Any:
    from jsonpath_ng.ext.parser import parse

    try:
        return parse(action.target)
    except Exception as exc:  # the library raises several kinds for a malformed path
        raise OverlayError(
            f"{where}: actions[{action.index}]: target {action.target!r} is not JSONPath: {exc}"
        ) from None


def _apply(document: dict[str, Any], action: Action, where: str) -> None:
    here = f"{where}: actions[{action.index}] (target {action.target})"
    matches = _parse_path(action, where).find(document)
    if not matches:
        raise OverlayError(f"{here} selects nothing in the spec")
    if action.remove:
        # Remove from the end so that earlier array indexes stay valid.
        for match in reversed(matches):
            holder = match.context.value if match.context is not None else None
            key = _last_key(match)
            in_object = isinstance(holder, dict) and key in holder
            in_array = isinstance(holder, list) and isinstance(key, int) and key < len(holder)
            if in_object or in_array:
                del holder[key]  # type: ignore[union-attr]
            else:
                raise OverlayError(f"{here}: cannot remove the document root")
        return
    for match in matches:
        node = match.value
        if isinstance(node, dict):
            if not isinstance(action.update, dict):
                raise OverlayError(f"{here}: selects an object, so 'update' must be an object")
            _merge(node, action.update)
        elif isinstance(node, list):
            node.append(copy.deepcopy(action.update))
        else:
            raise OverlayError(
                f"{here}: selects a {type(node).__name__} value; update needs an object or array"
            )


def _last_key(match: Any) -> Any:
    path = match.path
    fields = getattr(path, "fields", None)
    if fields:
        return fields[-1]
    index = getattr(path, "index", None)
    if isinstance(index, int):
        return index
    return None


def apply_overlay(document: dict[str, Any], overlay: Overlay) -> dict[str, Any]:
    """A copy of ``document`` with every action of ``overlay`` applied, in order."""
    out = copy.deepcopy(document)
    for action in overlay.actions:
        _apply(out, action, overlay.source)
    return out
