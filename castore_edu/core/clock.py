"""Timestamps as castore stores them: UTC, ISO-8601, milliseconds, ``Z``.

Storage adapters stamp events, never the event store. They take a ``clock`` so that tests and
notebooks can inject a fixed or stepping clock and get the same output on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import count

Clock = Callable[[], str]


def format_timestamp(moment: datetime) -> str:
    """``2024-01-01T12:34:56.789Z`` — sortable as a plain string, like Castore's timestamps."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds") + "Z"


def utc_now() -> str:
    """The default clock: now, in UTC, formatted by :func:`format_timestamp`."""
    return format_timestamp(datetime.now(UTC))


def stepping_clock(start: str = "2024-01-01T00:00:00.000Z", step_ms: int = 1000) -> Clock:
    """A deterministic clock: each call returns ``start`` plus one more ``step_ms``.

    >>> tick = stepping_clock(step_ms=500)
    >>> tick(), tick()
    ('2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.500Z')
    """
    origin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    steps: Iterator[int] = count()
    return lambda: format_timestamp(origin + timedelta(milliseconds=step_ms * next(steps)))
