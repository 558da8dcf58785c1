"""How old a cassette may be: ``max_age`` (``30d``, ``12h``, ``2w``) and what its passing does.

A cassette's age is counted from ``compaction.recorded_at`` in its head (see
``cassette._file.recording_time``), never from the file's modification time, which a git
clone or checkout resets. A cassette without that key (written before it existed, or by
another recorder) has no known age and is not age-checked; the recording says so.

``max_age_action``:

- ``warn`` (the default): the stale cassette replays as usual, and a note says how old it is;
- ``fail``: the stale cassette still replays, and the test fails naming its age;
- ``rerecord``: under a record mode that may write (``once``, ``new_episodes``, ``all``,
  ``rewrite``) the stale cassette is replaced by this run's exchanges, as ``rewrite`` would;
  under ``none`` nothing can be recorded, so the test fails and says so.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from .._errors import CompactionError
from .._settings import AGE_ACTIONS as AGE_ACTIONS

AGE_FORMS = "a positive whole number followed by s, m, h, d or w (30d, 12h, 2w)"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_age(value: object, where: str = "max_age") -> timedelta | None:
    """``"30d"`` as a timedelta; a timedelta as it is; None or ``""`` as None (no limit).

    Anything else is a CompactionError naming ``where`` and the accepted forms.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise CompactionError(f"{where} = {value!r} must be positive")
        return value
    match = _AGE.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        raise CompactionError(f"{where} = {value!r} is not an age: use {AGE_FORMS}")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def check_action(value: object, where: str = "max_age_action") -> str:
    """One of :data:`AGE_ACTIONS` (None means ``warn``), else a CompactionError naming ``where``."""
    if value is None:
        return "warn"
    if value not in AGE_ACTIONS:
        raise CompactionError(f"{where} = {value!r} is not one of {', '.join(AGE_ACTIONS)}")
    return str(value)


def show_age(age: timedelta) -> str:
    """An age the way a person reads it: ``40 days``, ``3 hours``, ``12 minutes``."""
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' * (n != 1)}"
    return f"{seconds} second{'s' * (seconds != 1)}"


def show_limit(limit: timedelta) -> str:
    """``max_age`` in the form it is given (``30d``), the largest unit that divides it."""
    seconds = int(limit.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def stale_by(recorded_at: datetime, limit: timedelta, now: datetime) -> timedelta | None:
    """The cassette's age when it is older than ``limit``, else None."""
    age = now - recorded_at
    return age if age > limit else None
