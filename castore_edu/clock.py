"""Timestamps as castore stores them: UTC, ISO-8601, milliseconds, ``Z``.

Storage adapters stamp events, never the event store. They take a ``clock`` so that tests and
notebooks can inject a fixed or stepping clock and get the same output on every run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from itertools import count

Clock = Callable[[], str]


def format_timestamp(moment: datetime) -> str:
    """``2024-01-01T12:34:56.789Z`` — sortable as a plain string, like Castore's timestamps."""
    utc = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds") + "Z"


_second_formatted: tuple[int, str] = (-1, "")
_last_stamp: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """The default clock: now, in UTC.

    Stamping is on the path of every push, so the date and time up to the second are formatted
    once per second and reused, and a whole stamp is reused within its millisecond (pushes in a
    loop get many per millisecond).
    """
    global _second_formatted, _last_stamp
    millis = int(time.time() * 1000)
    if _last_stamp[0] == millis:
        return _last_stamp[1]
    second, milli = divmod(millis, 1000)
    if _second_formatted[0] != second:
        _second_formatted = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    stamp = f"{_second_formatted[1]}.{milli:03d}Z"
    _last_stamp = (millis, stamp)
    return stamp


def stepping_clock(start: str = "2024-01-01T00:00:00.000Z", step_ms: int = 1000) -> Clock:
    """A deterministic clock: each call returns ``start`` plus one more ``step_ms``.

    >>> tick = stepping_clock(step_ms=500)
    >>> tick(), tick()
    ('2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.500Z')
    """
    origin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    steps: Iterator[int] = count()
    return lambda: format_timestamp(origin + timedelta(milliseconds=step_ms * next(steps)))
