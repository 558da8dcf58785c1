"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove_stale_temps(target: Path) -> None:
    """Delete temp files a killed writer left beside ``target``.

    Temp names carry the writer's pid, so only files of processes that no longer exist go;
    a concurrent writer's file is left alone.
    """
    prefix = f".{target.name}."
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_text = name[len(prefix) :].split(".", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            with contextlib.suppress(OSError):
                os.unlink(target.parent / name)


def write_atomic(path: str | os.PathLike[str], data: bytes | Sequence[bytes]) -> None:
    """Replace ``path`` with ``data`` (bytes, or pieces written one after another, with no
    copy joining them) so a reader sees either the old file or the new one.

    The data goes to ``.<name>.<pid>.<random>.tmp`` in the same directory, is flushed to disk,
    then renamed over ``path``. A writer killed half-way leaves only that hidden temp file,
    which the next write to the same file removes.
    """
    target = Path(path)
    tmp = _written_temp(target, (data,) if isinstance(data, bytes) else data)
    try:
        # Keep the permissions of the file being replaced (mkstemp creates 0600).
        mode = target.stat().st_mode & 0o777 if target.exists() else _default_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _written_temp(target: Path, pieces: Iterable[bytes]) -> str:
    """A hidden temp file beside ``target`` holding ``pieces``, flushed to disk (removed again
    when writing it fails); stale temps of earlier killed writes are removed first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            for piece in pieces:
                handle.write(piece)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _default_mode() -> int:
    """The mode a new file gets under the process's umask (read without changing it)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def create_atomic(path: str | os.PathLike[str], data: bytes) -> bool:
    """Write ``data`` to ``path`` only if no file is there: True when written, False when kept.

    Like :func:`write_atomic`, a reader sees no file or the whole one: the data goes to a
    hidden temp file first, which is then linked to ``path``. Linking fails when ``path``
    exists, so a file that is there, or that another writer puts there meanwhile, is kept.
    """
    target = Path(path)
    tmp = _written_temp(target, (data,))
    try:
        os.chmod(tmp, _default_mode())
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: create exclusively instead
            try:
                with target.open("xb") as handle:
                    handle.write(data)
            except FileExistsError:
                return False
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
