"""Keeping the proxy's cassette file up to date while exchanges keep coming.

Each kept exchange is turned into cassette text, encoded, once, when it is kept; a write joins
those texts in their frame (:func:`~pytest_compaction.cassette._file.cassette_frame`), so its
cost is the file's bytes, not a new dump and scan of every exchange. Writes are atomic and one
runs at a time, outside the proxy's lock, so requests are served while a write runs. Exchanges
kept while a write runs go out together in the next one: a handler waiting for its exchange to
reach the file either finds a write that began after its exchange was kept, or starts one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .._errors import CompactionError
from ..cassette._file import cassette_frame, is_json_cassette, write_atomic


@dataclass(frozen=True)
class Snapshot:
    """What the file is to hold: the cassette's header and the texts of its exchanges (UTF-8,
    see :func:`~pytest_compaction.cassette._file.interaction_text`), as of ``generation`` (the
    number of exchanges kept so far)."""

    generation: int
    extra: Mapping[str, Any]
    schema_version: str | None
    dialect: str | None
    interactions: Sequence[bytes]
    recorded_at: datetime | None = None  # the head's date (None: left out)


class CassetteWriter:
    """Writes ``path`` from the snapshots the owner takes (``snapshot``, called with no lock
    of the writer's held by anybody else writing)."""

    def __init__(self, path: Path, snapshot: Callable[[], Snapshot]) -> None:
        self.path = path
        self.as_json = is_json_cassette(path)
        self._snapshot = snapshot
        self._lock = threading.Lock()  # one write at a time
        self._generation = 0  # what the file holds
        self.written = False  # the file was written at least once

    def flush(self, generation: int) -> str | None:
        """Return once the file holds every exchange up to ``generation``; the error of a
        write that failed (the next call tries again), else None."""
        with self._lock:
            if self._generation >= generation:
                return None
            try:
                snap = self._snapshot()
                before, between, after = cassette_frame(
                    snap.extra,
                    snap.schema_version,
                    snap.dialect,
                    len(snap.interactions),
                    as_json=self.as_json,
                    recorded_at=snap.recorded_at,
                )
                pieces = [before.encode()]
                for n, text in enumerate(snap.interactions):
                    if n and between:
                        pieces.append(between.encode())
                    pieces.append(text)
                pieces.append(after.encode())
                write_atomic(self.path, pieces)
            except CompactionError as exc:
                return str(exc)
            self._generation = snap.generation
            self.written = True
            return None
