"""What a storage adapter is, and the input checks every shipped adapter shares.

The event store never touches a database itself: it hands every read and write to an
*adapter*. Swapping the adapter (in memory for tests and notebooks, SQLite for anything that
must survive a restart) changes where events live, never what the event store does.

Two protocols describe an adapter:

- :class:`EventStorageAdapter`: the five calls an event store makes. Every adapter has them.
- :class:`OrderedLogStorage`: those five plus an *ordered log* of every event the adapter holds,
  across event stores (``read_log``, ``last_position``). Both shipped adapters keep one; a custom
  adapter may leave it out, and then only what follows the log (a relay) refuses it, with the
  ``TypeError`` of :func:`require_ordered_log`.

Why a log: an event store reads one aggregate at a time, but a relay (notebook 08) must publish
*every* event once it is stored, across aggregates and stores, and resume after a crash. A log
numbered 1, 2, 3... gives it both: it remembers the last position it published (a checkpoint)
and asks for what came after.

Why async: on a server database, reading the log is a query over the network, and an asyncio
program can only wait for that without blocking every other task if the call is a coroutine.
So both log calls are coroutines on every adapter, even where (memory, SQLite) the answer is
at hand: code written against the protocol then works on any of them.

What a position promises: positions grow in the order a reader can see the events, so a reader
that follows the log with a checkpoint never misses one. The shipped adapters get that cheaply:
memory appends to a list, and SQLite's rowid is gap-free and in commit order because SQLite
lets one writer in at a time. That holds for SQLite and memory only. On a server database many
transactions write at once: one that took a lower position can commit *after* one that took a
higher position, and a reader that passed the higher one would skip it for good. An adapter
there needs more than a sequence (a later notebook, 09, shows the guard).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from castore_edu.core.arguments import require_bool
from castore_edu.core.clock import Clock
from castore_edu.core.events import (
    MAX_VERSION,
    AggregateIdsPage,
    EventDetail,
    GroupedEvent,
    LoggedEvent,
    check_text,
    is_valid_unicode,
    validate_event,
)


@runtime_checkable
class EventStorageAdapter(Protocol):
    """The five calls an event store makes to its storage.

    An adapter is the last line of defence: ``push_event`` and ``push_event_group`` make sure
    every event passed :func:`~castore_edu.core.events.validate_event` before writing any of them,
    so a bad event is refused whole, on every adapter alike. Each event is checked once per push:
    for a group, the check ``EventStore.group_event`` made stands (see
    :func:`stamp_grouped_for_storage`).
    """

    async def get_events(
        self,
        aggregate_id: str,
        *,
        event_store_id: str,
        min_version: int | None = None,
        max_version: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[EventDetail]: ...

    async def push_event(
        self, event: EventDetail, *, event_store_id: str, force: bool = False
    ) -> EventDetail: ...

    async def push_event_group(
        self, grouped_events: Sequence[GroupedEvent], *, force: bool = False
    ) -> list[EventDetail]: ...

    def group_event(self, event: EventDetail) -> GroupedEvent: ...

    async def list_aggregate_ids(
        self,
        *,
        event_store_id: str,
        limit: int | None = None,
        page_token: str | None = None,
        initial_event_after: str | None = None,
        initial_event_before: str | None = None,
        reverse: bool | None = None,
    ) -> AggregateIdsPage: ...


@runtime_checkable
class OrderedLogStorage(EventStorageAdapter, Protocol):
    """A storage adapter that also keeps an ordered log of every event it holds, across event
    stores: what a relay follows, the way a change stream follows a database.

    Both shipped adapters are ``OrderedLogStorage``; see the module docstring for what a
    position promises, and why both calls are coroutines.
    """

    async def read_log(self, *, after_position: int = 0, limit: int | None = None) -> list[LoggedEvent]:
        """The events after ``after_position`` (at most ``limit`` of them), in log order."""

    async def last_position(self) -> int:
        """The position of the last event in the log; 0 while it is empty."""


def adapter_layers(adapter: Any) -> Iterator[Any]:
    """``adapter``, then every adapter it wraps, down to the real storage.

    A wrapper (the fault injector and the latency simulator of ``castore_edu.testing``) names the
    adapter it wraps in its ``inner`` attribute; following ``inner`` to the end finds the storage.
    """
    while adapter is not None:
        yield adapter
        adapter = getattr(adapter, "inner", None)


def innermost_adapter(adapter: Any) -> Any:
    """The real storage under any wrappers (what a relay asks when it chooses where to keep its
    checkpoint)."""
    *_, innermost = adapter_layers(adapter)
    return innermost


LOG_CALLS = ("read_log", "last_position")


def missing_log_calls(adapter: object) -> list[str]:
    """The log calls ``adapter`` lacks: each of ``read_log`` and ``last_position`` that it does not
    define as a coroutine function (an adapter written before the log became async has them as
    plain methods, and awaiting their result would fail much later, far from the cause)."""
    return [name for name in LOG_CALLS if not inspect.iscoroutinefunction(getattr(adapter, name, None))]


def require_ordered_log(storage: object) -> OrderedLogStorage:
    """``storage`` itself, checked to keep an ordered log; else a ``TypeError`` that names it and
    says what is missing.

    A wrapper (the fault injector, the latency simulator) passes on the log of the adapter it wraps
    in ``inner``, so every layer down to the real adapter must have one.
    """
    for layer in adapter_layers(storage):
        missing = missing_log_calls(layer)
        if missing:
            wrapped = "" if layer is storage else f", because the adapter it wraps, {layer!r}, has none"
            needed = " and ".join(f"async def {name}" for name in missing)
            raise TypeError(
                f"{storage!r} keeps no ordered log{wrapped}: it lacks {needed}. "
                "Only a storage adapter with an ordered log can be followed (see OrderedLogStorage)."
            )
    if not isinstance(storage, OrderedLogStorage):
        raise TypeError(
            f"{storage!r} is not a storage adapter: it lacks some of the calls of EventStorageAdapter"
        )
    return storage


async def close_adapter(adapter: Any) -> None:
    """Close an adapter (storage, or a channel's), whether its ``close()`` is a plain call (SQLite:
    a local file) or a coroutine (PostgreSQL, NATS: a connection to a server)."""
    closing = adapter.close()
    if inspect.isawaitable(closing):
        await closing


def with_timestamp(event: EventDetail, timestamp: str) -> EventDetail:
    """A copy of ``event`` (which is frozen) that has ``timestamp``.

    This is ``dataclasses.replace(event, timestamp=timestamp)`` written out: ``replace`` looks up
    the dataclass's fields on every call, which costs about twice the constructor call here, and
    a push or a group of 100 makes one copy per event. ``tests/test_event_store.py`` checks
    that the copy keeps every field, so a field added to ``EventDetail`` cannot be forgotten.
    """
    return EventDetail(
        aggregate_id=event.aggregate_id,
        version=event.version,
        type=event.type,
        timestamp=timestamp,
        payload=event.payload,
        metadata=event.metadata,
        schema_version=event.schema_version,
    )


def stamp_for_storage(
    event: EventDetail, clock: Clock, *, event_store_id: str
) -> tuple[EventDetail, str | None, str | None]:
    """What every adapter does before writing an event: check it (see
    :func:`~castore_edu.core.events.validate_event`) and the id of its event store, stamp it with
    ``clock()`` unless it has a timestamp (an event that has one costs no call of the clock), and
    return it with the JSON text of its payload and metadata."""
    check_event_store_id(event_store_id)
    payload, metadata = validate_event(event)
    if event.timestamp is None:
        event = with_timestamp(event, clock())
    return event, payload, metadata


def stamp_grouped_for_storage(
    grouped: GroupedEvent, timestamp: str
) -> tuple[EventDetail, str | None, str | None]:
    """:func:`stamp_for_storage` for an event of a group, which is checked once per push too.

    ``EventStore.group_event`` has already validated the event, where the mistake was made, and
    kept the outcome in ``grouped.validated``; checking it again would only encode the same JSON
    twice. That outcome stands as long as it is about the very event being pushed (``is``: an
    event is frozen, but a grouped event's ``event`` can be swapped). Any other grouped event —
    one made by hand, or whose event changed after grouping — is validated here, so a bad event
    is refused before anything is written, whoever made the group. The events of a group that
    have no timestamp all get ``timestamp``.
    """
    validated = grouped.validated
    if validated is not None and validated[0] is grouped.event:
        event, payload, metadata = validated
    else:
        event = grouped.event
        payload, metadata = validate_event(event)
    if event.timestamp is None:
        event = with_timestamp(event, timestamp)
    return event, payload, metadata


# What a database adapter writes for one event: its event store id, the checked and stamped
# event, and the JSON text of its payload and metadata.
StampedRow = tuple[str, EventDetail, str | None, str | None]


def stamp_group_for_one_database(
    grouped_events: Sequence[GroupedEvent],
    clock: Clock,
    *,
    same_database: Callable[[object], bool],
    database: str,
) -> list[StampedRow]:
    """The rows of a group that a database adapter writes in one transaction, after checking that
    every grouped event belongs to that database (``same_database(adapter)``; ``database`` names
    it in the error). The events of a group that have no timestamp share one stamp."""
    store_ids = group_context_ids(grouped_events)
    for index, grouped in enumerate(grouped_events):
        if not same_database(grouped.event_storage_adapter):
            raise ValueError(
                f"Event group event #{index} is not stored in the same {database} as the first one; "
                "a group is one transaction in one database"
            )
    timestamp = clock()
    return [
        (store_id, *stamp_grouped_for_storage(grouped, timestamp))
        for store_id, grouped in zip(store_ids, grouped_events, strict=True)
    ]


def check_event_store_id(event_store_id: object) -> None:
    """An event store id is stored beside each event, so it follows the rule of the event's own
    text (see :func:`~castore_edu.core.events.check_text`); it may be empty (the in-memory
    adapter's default, which it ignores)."""
    check_text(event_store_id, "event_store_id", may_be_empty=True)


def check_list_call(event_store_id: object) -> None:
    """The check of ``list_aggregate_ids`` that its listing options (``listing.resolve_options``,
    which checks ``reverse``, ``limit``, the bounds and the page token) leave out."""
    check_read_text("event_store_id", event_store_id, may_be_empty=True)


def check_clock(clock: object) -> None:
    """An adapter calls its clock at every push; a clock that cannot be called would fail there,
    far from the constructor where the mistake was made."""
    if not callable(clock):
        raise TypeError(f"clock must be a callable returning a timestamp str, got {clock!r}")


def check_limit(limit: int | None) -> None:
    """``None`` means no limit, ``0`` an empty result; anything else must be a positive int."""
    if limit is None:
        return
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise TypeError(f"limit must be an int or None, got {limit!r}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")


def check_read(
    aggregate_id: str,
    *,
    event_store_id: str,
    min_version: int | None,
    max_version: int | None,
    limit: int | None,
    reverse: bool,
) -> None:
    """Reject reads that could only be mistakes, with an error that names the argument.

    A version bound or a limit beyond :data:`~castore_edu.core.events.MAX_VERSION` could match
    nothing more than ``MAX_VERSION`` does, and a database driver refuses integers wider than its
    column (SQLite's ``OverflowError``): an error that names the argument is clearer.
    """
    check_read_text("aggregate_id", aggregate_id)
    check_read_text("event_store_id", event_store_id, may_be_empty=True)
    for name, value in (("min_version", min_version), ("max_version", max_version), ("limit", limit)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise TypeError(f"{name} must be an int or None, got {value!r}")
        if value is not None and abs(value) > MAX_VERSION:
            raise ValueError(f"{name} must lie within ±MAX_VERSION ({MAX_VERSION}), got {value}")
    check_limit(limit)
    require_bool("reverse", reverse)


def check_read_text(name: str, value: object, *, may_be_empty: bool = False) -> None:
    """A read names what the write stored: text that every adapter can hold (no NUL, valid
    Unicode, see :func:`~castore_edu.core.events.check_text`), else a ``ValueError`` naming it."""
    if not isinstance(value, str) or (not value and not may_be_empty):
        raise ValueError(f"{name} must be a{'' if may_be_empty else ' non-empty'} str, got {value!r}")
    if "\x00" in value or not is_valid_unicode(value):
        raise ValueError(f"{name} must be valid Unicode without NUL (\\x00), got {value!r}")


def check_log_read(after_position: int, limit: int | None) -> None:
    if not isinstance(after_position, int) or isinstance(after_position, bool) or after_position < 0:
        raise ValueError(f"after_position must be an int >= 0, got {after_position!r}")
    check_limit(limit)


def group_context_ids(grouped_events: Sequence[GroupedEvent]) -> list[str]:
    """The event store id of each grouped event; a group must name one for every event."""
    if not grouped_events:
        raise ValueError("An event group needs at least one grouped event")
    ids = []
    for index, grouped in enumerate(grouped_events):
        if grouped.context is None:
            raise ValueError(
                f"Event group event #{index} misses context: make it with "
                "event_store.group_event(...), not adapter.group_event(...)"
            )
        check_event_store_id(grouped.context.event_store_id)
        ids.append(grouped.context.event_store_id)
    return ids
