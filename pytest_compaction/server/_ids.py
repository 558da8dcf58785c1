"""Object ids: random like the real API's, or from per-prefix counters in deterministic mode."""

from __future__ import annotations

import secrets
import threading
from collections import Counter


class IdSource:
    def __init__(self, *, deterministic: bool) -> None:
        self._deterministic = deterministic
        self._counters: Counter[str] = Counter()
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        if not self._deterministic:
            # Same length as the real ids (50 hex digits after the prefix).
            return f"{prefix}_{secrets.token_hex(25)}"
        with self._lock:
            self._counters[prefix] += 1
            return f"{prefix}_{self._counters[prefix]:04d}"
