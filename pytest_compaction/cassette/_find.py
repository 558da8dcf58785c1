"""Which files are cassettes to read: one rule for check, scan, import and the pytest collector.

A file named explicitly is read as it is, hidden or not. A folder is walked for regular files
ending in :data:`CASSETTE_SUFFIXES`, leaving out every hidden name (file or folder) below it,
as most tools do: editors' backups, ``.git`` and a killed write's temp file are not cassettes.
Only regular files are candidates: a named pipe or a device would block a reader, so one named
explicitly is refused and one inside a folder is passed over.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .._errors import CompactionError
from .._settings import CASSETTE_SUFFIXES


def has_cassette_suffix(path: Path) -> bool:
    return path.suffix.lower() in CASSETTE_SUFFIXES


def cassette_file(name: str | os.PathLike[str]) -> Path:
    """The file a cassette name means: a name without a cassette suffix gets ``.yaml``."""
    path = Path(name)
    if path.suffix not in CASSETTE_SUFFIXES:
        path = path.with_name(path.name + ".yaml")
    return path


def _hidden(name: str) -> bool:
    return name.startswith(".")


def hidden_below(path: Path, root: Path) -> bool:
    """Whether a name of ``path`` below ``root`` (the file's or a folder's) is hidden."""
    return any(_hidden(part) for part in path.relative_to(root).parts)


def walk(folder: Path) -> list[Path]:
    """The candidate cassettes below ``folder``, sorted; hidden folders are not entered."""
    found: list[Path] = []
    for current, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not _hidden(name)]
        for name in files:
            path = Path(current, name)
            if not _hidden(name) and has_cassette_suffix(path) and path.is_file():
                found.append(path)
    return sorted(found)


def find_cassettes(
    paths: Iterable[str | os.PathLike[str]], *, unique: bool = False
) -> list[tuple[Path, bool]]:
    """(file, named explicitly) for every candidate cassette under ``paths``, in order.

    With ``unique``, a file reached twice (named and inside a named folder, say) comes once.
    A path that does not exist, or is neither a regular file nor a folder, is a
    :class:`CompactionError`.
    """
    out: list[tuple[Path, bool]] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            pairs = [(path, True)]
        elif path.is_dir():
            pairs = [(file, False) for file in walk(path)]
        elif path.exists():
            raise CompactionError(f"{raw}: not a regular file or a folder")
        else:
            raise CompactionError(f"{raw}: no such file or folder")
        for file, explicit in pairs:
            if unique:
                key = file.resolve()
                if key in seen:
                    continue
                seen.add(key)
            out.append((file, explicit))
    return out
