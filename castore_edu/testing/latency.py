"""A storage adapter wrapper that makes any adapter behave like a remote database: slow, and counted.

In memory, a read costs microseconds, so "one more read" looks free. Against a real database
across a network, every call is a round trip of a millisecond or more, and a read also carries
every event it returns. :class:`SimulatedLatencyAdapter` wraps an adapter, waits
``latency_ms`` (with ``asyncio.sleep``, so other tasks run meanwhile, as they would while a real
driver waits on a socket) before every call, and counts what crosses the "network":

- ``reads``: ``get_events`` calls, and ``events_read``: the events they returned;
- ``writes``: ``push_event`` and ``push_event_group`` calls (a group is one round trip), and
  ``events_written``;
- ``listings``: ``list_aggregate_ids`` calls.

Notebook 05 uses it to measure what ``prev_aggregate`` saves a connected event store.

The ordered log of the wrapped adapter (``read_log``, ``last_position``) is passed through as
is, without latency or counting: it stands for the database's own change stream, not for calls
the application makes. Both stay coroutines, as on every adapter; wrapping an adapter without a
log gives a wrapper without one (its log calls raise the ``TypeError`` of
:func:`~castore_edu.storage.protocol.require_ordered_log`, and a relay refuses it).

Grouped events keep working through the wrapper: ``group_event`` hands out grouped events that
point at the wrapper, and ``push_event_group`` unwraps them for the wrapped adapter, which still
decides whether the group is valid and stores it all or nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from castore_edu.core.arguments import require_duration
from castore_edu.core.event_store import check_storage_adapter
from castore_edu.core.events import AggregateIdsPage, EventDetail, GroupedEvent, LoggedEvent
from castore_edu.storage.protocol import EventStorageAdapter, require_ordered_log


@dataclass(frozen=True)
class CallCounts:
    """What went over the simulated network since the counters were last reset."""

    reads: int = 0
    events_read: int = 0
    writes: int = 0
    events_written: int = 0
    listings: int = 0


class SimulatedLatencyAdapter:
    """Wraps ``inner``: every call waits ``latency_ms`` first, and is counted."""

    def __init__(self, inner: EventStorageAdapter, *, latency_ms: float = 1.0) -> None:
        check_storage_adapter(inner, name="inner")
        require_duration("latency_ms", latency_ms, unit="milliseconds")
        self.inner = inner
        self.latency_ms = latency_ms
        self.counts = CallCounts()

    def __repr__(self) -> str:
        return f"SimulatedLatencyAdapter({self.inner!r}, latency_ms={self.latency_ms})"

    def reset_counts(self) -> CallCounts:
        """Zero the counters; return what they held."""
        counts, self.counts = self.counts, CallCounts()
        return counts

    def _count(self, **increments: int) -> None:
        self.counts = replace(
            self.counts, **{name: getattr(self.counts, name) + value for name, value in increments.items()}
        )

    async def _round_trip(self) -> None:
        await asyncio.sleep(self.latency_ms / 1000)

    async def get_events(self, aggregate_id: str, **options: Any) -> list[EventDetail]:
        """The wrapped adapter's ``get_events``, every option passed through untouched."""
        await self._round_trip()
        events = await self.inner.get_events(aggregate_id, **options)
        self._count(reads=1, events_read=len(events))
        return events

    async def push_event(
        self, event: EventDetail, *, event_store_id: str, force: bool = False
    ) -> EventDetail:
        await self._round_trip()
        self._count(writes=1)
        stored = await self.inner.push_event(event, event_store_id=event_store_id, force=force)
        self._count(events_written=1)
        return stored

    def group_event(self, event: EventDetail) -> GroupedEvent:
        return GroupedEvent(event=event, event_storage_adapter=self)

    async def push_event_group(
        self, grouped_events: Sequence[GroupedEvent], *, force: bool = False
    ) -> list[EventDetail]:
        unwrapped = [
            replace(grouped, event_storage_adapter=grouped.event_storage_adapter.inner)
            if isinstance(grouped.event_storage_adapter, SimulatedLatencyAdapter)
            else grouped
            for grouped in grouped_events
        ]
        await self._round_trip()
        self._count(writes=1)
        stored = await self.inner.push_event_group(unwrapped, force=force)
        self._count(events_written=len(stored))
        return stored

    async def list_aggregate_ids(self, **options: Any) -> AggregateIdsPage:
        await self._round_trip()
        self._count(listings=1)
        return await self.inner.list_aggregate_ids(**options)

    async def read_log(self, *, after_position: int = 0, limit: int | None = None) -> list[LoggedEvent]:
        return await require_ordered_log(self.inner).read_log(after_position=after_position, limit=limit)

    async def last_position(self) -> int:
        return await require_ordered_log(self.inner).last_position()
