"""``python -m pytest_compaction``: the same commands as the ``pytest-compaction`` script."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
