"""An event storage adapter that keeps everything in a Python dict.

Perfect for tests, notebooks and learning: nothing to install, nothing left behind. It keeps
each payload as JSON text, exactly as SQLite would, which buys two things at once: the same
input is accepted or refused on both adapters, and a caller who later mutates a dict it passed
in (or got back) can never change what is stored.

Like Castore's, one adapter serves one event store: it ignores ``event_store_id`` when storing
(two stores sharing an adapter would share their aggregates). Give each store its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from castore_edu.core.arguments import require_bool
from castore_edu.core.clock import Clock, utc_now
from castore_edu.core.errors import EventAlreadyExistsError
from castore_edu.core.events import AggregateIdsPage, EventDetail, GroupedEvent, LoggedEvent
from castore_edu.storage.listing import ListedAggregate, paginate, resolve_options
from castore_edu.storage.protocol import (
    check_clock,
    check_list_call,
    check_log_read,
    check_read,
    group_context_ids,
    stamp_for_storage,
    stamp_grouped_for_storage,
)


class _StoredEvent(NamedTuple):
    """An event with its payload and metadata kept as JSON text (``None`` when absent).

    ``event.payload`` may still point to the caller's object, so it is never handed out:
    :meth:`detail` rebuilds payload and metadata from the JSON text.
    """

    event: EventDetail
    payload: str | None
    metadata: str | None

    def detail(self) -> EventDetail:
        if self.payload is None and self.metadata is None:
            return self.event  # frozen and holds nothing mutable: safe to share
        event = self.event
        return EventDetail(
            aggregate_id=event.aggregate_id,
            version=event.version,
            type=event.type,
            timestamp=event.timestamp,
            payload=None if self.payload is None else json.loads(self.payload),
            metadata=None if self.metadata is None else json.loads(self.metadata),
            schema_version=event.schema_version,
        )


class InMemoryEventStorageAdapter:
    """Events in memory: ``{aggregate_id: {version: event}}`` plus an ordered log."""

    kind = "InMemoryEventStorageAdapter"

    def __init__(
        self,
        initial_events: Iterable[EventDetail] = (),
        *,
        clock: Clock = utc_now,
        event_store_id: str = "",
    ) -> None:
        check_clock(clock)
        self.clock = clock
        # Insertion-ordered, so the keys also say in which order the aggregates were created.
        self._aggregates: dict[str, dict[int, _StoredEvent]] = {}
        self._log: list[tuple[str, str, int]] = []  # (event_store_id, aggregate_id, version)
        for event in initial_events:
            stored = _StoredEvent(*stamp_for_storage(event, clock, event_store_id=event_store_id))
            self._write(event_store_id, stored, force=False)

    def __repr__(self) -> str:
        return f"InMemoryEventStorageAdapter(aggregates={len(self._aggregates)}, events={len(self._log)})"

    # -- reading ---------------------------------------------------------------------------

    async def get_events(
        self,
        aggregate_id: str,
        *,
        event_store_id: str = "",
        min_version: int | None = None,
        max_version: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[EventDetail]:
        check_read(
            aggregate_id,
            event_store_id=event_store_id,
            min_version=min_version,
            max_version=max_version,
            limit=limit,
            reverse=reverse,
        )
        stored = self._aggregates.get(aggregate_id, {})
        versions = sorted(
            version
            for version in stored
            if (min_version is None or version >= min_version)
            and (max_version is None or version <= max_version)
        )
        if reverse:
            versions.reverse()
        if limit is not None:
            versions = versions[:limit]
        return [stored[version].detail() for version in versions]

    async def list_aggregate_ids(
        self,
        *,
        event_store_id: str = "",
        limit: int | None = None,
        page_token: str | None = None,
        initial_event_after: str | None = None,
        initial_event_before: str | None = None,
        reverse: bool | None = None,
    ) -> AggregateIdsPage:
        check_list_call(event_store_id)
        options = resolve_options(
            self.kind,
            event_store_id=event_store_id,
            limit=limit,
            page_token=page_token,
            initial_event_after=initial_event_after,
            initial_event_before=initial_event_before,
            reverse=reverse,
        )
        rows = [
            ListedAggregate(events[min(events)].event.timestamp or "", created, aggregate_id)
            for created, (aggregate_id, events) in enumerate(self._aggregates.items())
        ]
        return paginate(self.kind, rows, options)

    async def read_log(self, *, after_position: int = 0, limit: int | None = None) -> list[LoggedEvent]:
        """Every event in the order it was stored, from ``after_position + 1`` on."""
        check_log_read(after_position, limit)
        end = None if limit is None else after_position + limit
        return [
            LoggedEvent(position, event_store_id, self._aggregates[aggregate_id][version].detail())
            for position, (event_store_id, aggregate_id, version) in enumerate(
                self._log[after_position:end], start=after_position + 1
            )
        ]

    async def last_position(self) -> int:
        return len(self._log)

    # -- writing ---------------------------------------------------------------------------

    async def push_event(
        self, event: EventDetail, *, event_store_id: str = "", force: bool = False
    ) -> EventDetail:
        require_bool("force", force)
        stored = _StoredEvent(*stamp_for_storage(event, self.clock, event_store_id=event_store_id))
        self._write(event_store_id, stored, force)
        return stored.event

    def group_event(self, event: EventDetail) -> GroupedEvent:
        return GroupedEvent(event=event, event_storage_adapter=self)

    async def push_event_group(
        self, grouped_events: Sequence[GroupedEvent], *, force: bool = False
    ) -> list[EventDetail]:
        """All events or none. Every check runs before the first write; if a write still
        fails (a conflict), the writes already made are undone in reverse order.

        There is no ``await`` between the first write and the last, so no other task can see
        half a group.
        """
        require_bool("force", force)
        store_ids = group_context_ids(grouped_events)
        for index, grouped in enumerate(grouped_events):
            if not isinstance(grouped.event_storage_adapter, InMemoryEventStorageAdapter):
                raise ValueError(
                    f"Event group event #{index} is not connected to an InMemoryEventStorageAdapter"
                )
        group_timestamp = self.clock()  # events without a timestamp share one
        stamped = [
            _StoredEvent(*stamp_grouped_for_storage(grouped, group_timestamp)) for grouped in grouped_events
        ]
        written: list[tuple[InMemoryEventStorageAdapter, EventDetail, _StoredEvent | None]] = []
        try:
            for grouped, store_id, stored in zip(grouped_events, store_ids, stamped, strict=True):
                adapter: InMemoryEventStorageAdapter = grouped.event_storage_adapter  # type: ignore[assignment]
                written.append((adapter, stored.event, adapter._write(store_id, stored, force)))
        except BaseException:
            for adapter, event, replaced in reversed(written):
                adapter._undo(event, replaced)
            raise
        return [stored.event for stored in stamped]

    def _write(self, event_store_id: str, stored: _StoredEvent, force: bool) -> _StoredEvent | None:
        """Store one validated, stamped event; return the one it overwrote (``force``), if any."""
        event = stored.event
        aggregate_id, version = event.aggregate_id, event.version
        events = self._aggregates.get(aggregate_id)
        replaced = None if events is None else events.get(version)
        if replaced is not None and not force:
            raise EventAlreadyExistsError(
                event_store_id=event_store_id, aggregate_id=aggregate_id, version=version
            )
        if events is None:
            events = self._aggregates[aggregate_id] = {}
        events[version] = stored
        # A forced overwrite replaces the event in place: its log position stays.
        if replaced is None:
            self._log.append((event_store_id, aggregate_id, version))
        return replaced

    def _undo(self, event: EventDetail, replaced: _StoredEvent | None) -> None:
        """Take back the latest write of ``event``: put back the event it overwrote, or forget it
        entirely, leaving no trace (not even an empty aggregate)."""
        events = self._aggregates[event.aggregate_id]
        if replaced is not None:
            events[event.version] = replaced
            return
        self._log.pop()
        del events[event.version]
        if not events:
            del self._aggregates[event.aggregate_id]
