"""Replay ("pour") past data into a message channel — Castore's lib-dam.

A new read model, a fixed bug in a projection, a fresh service: each needs the messages it missed.
These functions read events (or aggregate ids) back from event stores and publish them again,
always with ``replay=True`` so that consumers can tell a replay from real time (a bus handler
only receives replays if its filter says ``on_replay=True``).

- ``pour_aggregate_events``: the events of one aggregate, in version order.
- ``pour_event_store_aggregate_ids``: an ``AggregateExistsMessage`` per aggregate of a store.
- ``pour_event_store_events``: every event of a store, in timestamp order.
- ``pour_event_store_collection_events``: every event of several stores, in one timestamp order.

``filters`` keeps events whose timestamp lies between ``"from"`` and ``"to"`` (both inclusive,
compared as strings, as everywhere in Castore). ``rate_limit`` (messages per second) spaces the
publishes at least ``1 / rate_limit`` seconds apart, to spare a slow consumer.

How the store-wide pours keep timestamp order without loading a whole store into memory: they
list aggregates page by page, in the order of their first event (``PAGE_SIZE`` per page, as
Castore), and load each listed aggregate's events into a buffer. An aggregate not listed yet
starts no earlier than the last one listed — its *cursor* — so (events of an aggregate being in
timestamp order) every buffered event older than the smallest cursor of the stores still being
listed can safely be published. Castore lets a store that has been listed to the end publish all
its buffered events at once, even those newer than events still to come from another store;
here, nothing is released past the smallest cursor until every store has been listed to the end,
so the order is global.

Events with equal timestamps keep the order of ``event_stores``, then of the listing (aggregates
by first event, ties in creation order), then of versions. (Castore's order at equal timestamps
follows a quirk of JavaScript's sort.)
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from castore_edu.core.arguments import got, require_event_store, require_str
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import AggregateIdEntry, EventDetail
from castore_edu.messaging.delivery import is_finite_number
from castore_edu.messaging.messages import AggregateExistsMessage, NotificationMessage

PAGE_SIZE = 20

# What ``options`` may hold: keyword arguments of ``get_events`` / of ``list_aggregate_ids``.
GET_EVENTS_OPTIONS = ("min_version", "max_version", "limit", "reverse")
LISTING_OPTIONS = ("limit", "initial_event_after", "initial_event_before", "reverse")


@dataclass(frozen=True)
class PouredEvents:
    """What ``pour_aggregate_events`` published."""

    poured_event_count: int
    first_poured_event: EventDetail | None = None
    last_poured_event: EventDetail | None = None


@dataclass(frozen=True)
class PouredAggregateIds:
    """What ``pour_event_store_aggregate_ids`` published, and the range of aggregates it listed."""

    poured_aggregate_id_count: int
    first_scanned_aggregate: AggregateIdEntry | None = None
    last_scanned_aggregate: AggregateIdEntry | None = None


@dataclass(frozen=True)
class ScanInfo:
    """The first and the last aggregate listed in one store."""

    first_scanned_aggregate: AggregateIdEntry | None = None
    last_scanned_aggregate: AggregateIdEntry | None = None


@dataclass(frozen=True)
class PouredStoreEvents:
    """What ``pour_event_store_events`` published, and the range of aggregates it listed."""

    poured_event_count: int
    first_scanned_aggregate: AggregateIdEntry | None = None
    last_scanned_aggregate: AggregateIdEntry | None = None


@dataclass(frozen=True)
class PouredCollectionEvents:
    """What ``pour_event_store_collection_events`` published; ``scans`` by event store id."""

    poured_event_count: int
    scans: dict[str, ScanInfo]


class _Publisher:
    """Publishes replayed messages, at most ``rate_limit`` per second (no limit: as fast as possible)."""

    def __init__(self, channel: Any, rate_limit: float | None) -> None:
        expected = "rate_limit must be a positive number of messages per second, or None"
        if rate_limit is not None and (
            isinstance(rate_limit, bool) or not isinstance(rate_limit, int | float)
        ):
            raise TypeError(f"{expected}, got {got(rate_limit)}")
        if rate_limit is not None and not (is_finite_number(rate_limit) and rate_limit > 0):
            raise ValueError(f"{expected}, got {rate_limit!r}")
        if not callable(getattr(channel, "publish_message", None)):
            raise TypeError(
                f"message_channel must be a message channel (a bus or a queue), got {got(channel)}"
            )
        self._channel = channel
        self._interval = None if rate_limit is None else 1 / rate_limit
        self._not_before: float | None = None
        self.count = 0

    async def publish(self, message: Any) -> None:
        if self._interval is not None:
            loop = asyncio.get_running_loop()
            if self._not_before is not None and (delay := self._not_before - loop.time()) > 0:
                await asyncio.sleep(delay)
            self._not_before = loop.time() + self._interval
        await self._channel.publish_message(message, replay=True)
        self.count += 1


def _time_window(filters: Mapping[str, str] | None) -> tuple[str | None, str | None]:
    """The ``"from"`` and ``"to"`` timestamps of ``filters``, checked."""
    if filters is None:
        return None, None
    if not isinstance(filters, Mapping):
        raise TypeError(
            f'filters must be a dict such as {{"from": timestamp, "to": timestamp}}, got {got(filters)}'
        )
    unknown = sorted(str(key) for key in set(filters) - {"from", "to"})
    if unknown:
        raise ValueError(f"Unknown filter keys {unknown}; allowed: ['from', 'to']")
    for key, timestamp in filters.items():
        if timestamp is not None and not isinstance(timestamp, str):
            raise TypeError(f"filters[{key!r}] must be a str timestamp, got {got(timestamp)}")
    return filters.get("from"), filters.get("to")


def _options(options: Mapping[str, Any] | None, allowed: tuple[str, ...], of: str) -> dict[str, Any]:
    """``options`` as a dict, checked to hold only keyword arguments of ``of`` (``allowed``).

    Their values are checked by ``of`` itself, when it is called.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict of keyword arguments of {of}, got {got(options)}")
    if "page_token" in options and of == "list_aggregate_ids":
        raise ValueError("options cannot hold page_token: the pour pages through the listing itself")
    unknown = sorted(str(key) for key in set(options) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown options {unknown} for {of}; allowed: {list(allowed)}")
    return dict(options)


def _within(timestamp: str | None, start: str | None, end: str | None) -> bool:
    return (
        timestamp is not None and (start is None or start <= timestamp) and (end is None or timestamp <= end)
    )


async def pour_aggregate_events(
    *,
    event_store: EventStore,
    message_channel: Any,
    aggregate_id: str,
    options: Mapping[str, Any] | None = None,
    filters: Mapping[str, str] | None = None,
    rate_limit: float | None = None,
) -> PouredEvents:
    """Publish the events of one aggregate (``options``: keyword arguments of ``get_events``)."""
    require_event_store("event_store", event_store)
    require_str("aggregate_id", aggregate_id)
    get_events_options = _options(options, GET_EVENTS_OPTIONS, "get_events")
    start, end = _time_window(filters)
    publisher = _Publisher(message_channel, rate_limit)
    events = await event_store.get_events(aggregate_id, **get_events_options)
    events = [event for event in events if _within(event.timestamp, start, end)]
    for event in events:
        await publisher.publish(NotificationMessage(event_store.event_store_id, event))
    if not events:
        return PouredEvents(0)
    return PouredEvents(len(events), events[0], events[-1])


async def pour_event_store_aggregate_ids(
    *,
    event_store: EventStore,
    message_channel: Any,
    options: Mapping[str, Any] | None = None,
    rate_limit: float | None = None,
) -> PouredAggregateIds:
    """Publish an ``AggregateExistsMessage`` per aggregate, in listing order.

    ``options`` are keyword arguments of ``list_aggregate_ids``; ``limit`` is the page size, not
    a cap on the total (every page is poured).
    """
    require_event_store("event_store", event_store)
    options = _options(options, LISTING_OPTIONS, "list_aggregate_ids")
    publisher = _Publisher(message_channel, rate_limit)
    first = last = page_token = None
    while True:
        page = await event_store.list_aggregate_ids(**options, page_token=page_token)
        for entry in page.aggregate_ids:
            first = first or entry
            last = entry
            await publisher.publish(
                AggregateExistsMessage(
                    event_store.event_store_id, entry.aggregate_id, entry.initial_event_timestamp
                )
            )
        page_token = page.next_page_token
        if page_token is None:
            return PouredAggregateIds(publisher.count, first, last)


async def pour_event_store_events(
    *,
    event_store: EventStore,
    message_channel: Any,
    filters: Mapping[str, str] | None = None,
    rate_limit: float | None = None,
) -> PouredStoreEvents:
    """Publish every event of one store in timestamp order."""
    require_event_store(
        "event_store", event_store, hint="for several stores, use pour_event_store_collection_events"
    )
    poured = await pour_event_store_collection_events(
        event_stores=[event_store], message_channel=message_channel, filters=filters, rate_limit=rate_limit
    )
    scan = poured.scans[event_store.event_store_id]
    return PouredStoreEvents(
        poured.poured_event_count, scan.first_scanned_aggregate, scan.last_scanned_aggregate
    )


# (timestamp, rank of the store, rank of the aggregate in its store's listing, rank of the version)
_Buffered = tuple[tuple[str, int, int, int], EventDetail]


@dataclass
class _Scan:
    """How far the listing of one store has gone."""

    rank: int  # position in event_stores: first tie-breaker
    event_store: EventStore
    page_token: str | None = None
    cursor: str = ""  # initial timestamp of the last aggregate listed
    done: bool = False
    listed: int = 0  # aggregates listed so far: second tie-breaker
    first: AggregateIdEntry | None = None
    last: AggregateIdEntry | None = None

    async def list_next_page(self, start: str | None, end: str | None, buffer: list[_Buffered]) -> None:
        """List one more page of aggregates and buffer their events between ``start`` and ``end``."""
        page = await self.event_store.list_aggregate_ids(
            limit=PAGE_SIZE, initial_event_before=end, page_token=self.page_token
        )
        for entry in page.aggregate_ids:
            for version_rank, event in enumerate(await self.event_store.get_events(entry.aggregate_id)):
                timestamp = event.timestamp
                if timestamp is not None and _within(timestamp, start, end):
                    # The sort key is unique: the heap never has to compare two events.
                    heapq.heappush(buffer, ((timestamp, self.rank, self.listed, version_rank), event))
            self.listed += 1
            self.first = self.first or entry
            self.last = entry
            self.cursor = entry.initial_event_timestamp
        self.page_token = page.next_page_token
        self.done = page.next_page_token is None


def _check_event_stores(event_stores: object) -> None:
    """A list of event stores, each once (the result reports each store under its id)."""
    if isinstance(event_stores, str) or not isinstance(event_stores, Sequence):
        raise TypeError(f"event_stores must be a list of event stores, got {got(event_stores)}")
    seen: set[str] = set()
    for index, event_store in enumerate(event_stores):
        store_id = require_event_store(f"event_stores[{index}]", event_store).event_store_id
        if store_id in seen:
            raise ValueError(f"event_stores lists the event store {store_id!r} twice")
        seen.add(store_id)


async def pour_event_store_collection_events(
    *,
    event_stores: Sequence[EventStore],
    message_channel: Any,
    filters: Mapping[str, str] | None = None,
    rate_limit: float | None = None,
) -> PouredCollectionEvents:
    """Publish every event of several stores in one timestamp order."""
    _check_event_stores(event_stores)
    start, end = _time_window(filters)
    publisher = _Publisher(message_channel, rate_limit)
    scans = [_Scan(rank, event_store) for rank, event_store in enumerate(event_stores)]
    buffer: list[_Buffered] = []
    while listing := [scan for scan in scans if not scan.done]:
        lowest = min(scan.cursor for scan in listing)
        for scan in listing:
            if scan.cursor == lowest:  # the stores holding the release back
                await scan.list_next_page(start, end, buffer)
        # Events at the horizon itself wait: an aggregate still unlisted may tie with them.
        horizon = min((scan.cursor for scan in scans if not scan.done), default=None)
        while buffer and (horizon is None or buffer[0][0][0] < horizon):
            (_timestamp, rank, _listed, _version), event = heapq.heappop(buffer)
            await publisher.publish(NotificationMessage(scans[rank].event_store.event_store_id, event))
    scan_infos = {scan.event_store.event_store_id: ScanInfo(scan.first, scan.last) for scan in scans}
    return PouredCollectionEvents(publisher.count, scan_infos)
