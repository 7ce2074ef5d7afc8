"""Benchmarks of the messaging layer, called by ``python -m benchmarks.core``.

Two questions a learner asks about the connected event store:

(a) What does publishing cost? Pushes per second through a ``ConnectedEventStore`` on a
    notification bus (in-memory adapter, one no-op handler, handlers included in the timing)
    against the same pushes on the plain store. On in-memory storage a push is so cheap that
    the publishing layers weigh as much again; two intermediate rows show where that time goes
    (a channel whose adapter drops every message: the connected store, the message and the
    channel's checks; then the in-memory bus with no handler). On a real database (SQLite, kept
    in memory so that no disk is timed) the same few microseconds are a smaller share of a
    push; beside a durable commit (milliseconds, on a file) they vanish.
(b) What does a state-carrying message cost, with and without ``prev_aggregate``? Without it,
    every publish of a non-initial event reads the whole aggregate back from storage, so the
    cost grows with the aggregate; with it, the store computes the new state from the old one and
    the cost stays flat. Measured on aggregates of 10 to 10,000 events: storage reads per
    publish (counted by the adapter) and time per connected push (store, then publish).

Run on its own with ``python -m benchmarks.messaging``. Takes a few seconds.
"""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from castore_edu.connected.connected_event_store import ConnectedEventStore
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail, EventType
from castore_edu.messaging.channels import NotificationMessageBus, StateCarryingMessageBus
from castore_edu.messaging.delivery import TaskContext
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from castore_edu.storage.sqlite import SQLiteEventStorageAdapter

PUSHES = 5_000
ROUNDS = 5
AGGREGATE_SIZES = (10, 100, 1_000, 10_000)


class CountingAdapter(InMemoryEventStorageAdapter):
    """An in-memory adapter that counts its ``get_events`` calls (the storage reads)."""

    reads = 0

    async def get_events(self, aggregate_id: str, **options: Any) -> list[EventDetail]:
        self.reads += 1
        return await super().get_events(aggregate_id, **options)


def counter_reducer(aggregate: dict[str, Any] | None, event: EventDetail) -> dict[str, Any]:
    """Constant-time reducer: the cost measured is the store's and the channel's, not ours."""
    return {
        "aggregate_id": event.aggregate_id,
        "version": event.version,
        "count": (aggregate or {"count": 0})["count"] + 1,
    }


async def noop_handler(message: Any, context: TaskContext) -> None:
    pass


def make_store(initial_events: Sequence[EventDetail] = (), storage: str = "in-memory") -> EventStore:
    """A COUNTERS store on counting in-memory storage, or on an in-memory SQLite database."""
    return EventStore(
        event_store_id="COUNTERS",
        event_types=[EventType("INCREMENTED")],
        reducer=counter_reducer,
        event_storage_adapter=SQLiteEventStorageAdapter()
        if storage == "SQLite"
        else CountingAdapter(initial_events),
    )


def connect(
    store: EventStore, channel_class: type, handlers: int = 1
) -> tuple[ConnectedEventStore, InMemoryMessageBusAdapter]:
    """``store`` connected to a bus of ``channel_class`` on an in-memory adapter with no-op handlers."""
    bus = channel_class(message_bus_id="bench", source_event_stores=[store])
    adapter = InMemoryMessageBusAdapter.attach_to(bus)
    for _ in range(handlers):
        adapter.on({}, noop_handler)
    return ConnectedEventStore(store, bus), adapter


def event(aggregate_id: str, version: int) -> EventDetail:
    return EventDetail(
        aggregate_id=aggregate_id, version=version, type="INCREMENTED", timestamp="2024-01-01T00:00:00.000Z"
    )


class NullChannelAdapter:
    """A channel adapter that drops every message: isolates the cost of the layers above it."""

    async def publish_message(self, message: Any, *, replay: bool = False) -> None:
        pass

    async def publish_messages(self, messages: Any, *, replay: bool = False) -> None:
        pass


# (storage, what the events are pushed through): the rows of benchmark (a)
PUSH_VARIANTS = (
    ("in-memory", "plain store"),
    ("in-memory", "connected, null channel adapter"),
    ("in-memory", "connected, in-memory bus, no handler"),
    ("in-memory", "connected, in-memory bus, 1 no-op handler"),
    ("SQLite", "plain store"),
    ("SQLite", "connected, in-memory bus, 1 no-op handler"),
)


def push_target(storage: str, variant: str) -> tuple[Any, InMemoryMessageBusAdapter | None]:
    """The store to push to for one row of benchmark (a), and its bus adapter if any."""
    store = make_store(storage=storage)
    if variant == "plain store":
        return store, None
    if variant == "connected, null channel adapter":
        bus = NotificationMessageBus(
            message_bus_id="bench", source_event_stores=[store], message_bus_adapter=NullChannelAdapter()
        )
        return ConnectedEventStore(store, bus), None
    return connect(store, NotificationMessageBus, handlers=0 if variant.endswith("no handler") else 1)


async def push_seconds(storage: str, variant: str) -> float:
    """Seconds to push ``PUSHES`` events (aggregates of 10 events), handlers included."""
    store, adapter = push_target(storage, variant)
    events = [event(f"counter{index // 10}", index % 10 + 1) for index in range(PUSHES)]
    gc.collect()
    gc.disable()  # as timeit does: a collection landing in one run but not another is noise
    try:
        start = time.perf_counter()
        for pushed in events:
            await store.push_event(pushed)
        if adapter is not None:
            await adapter.wait_idle()
        return time.perf_counter() - start
    finally:
        gc.enable()
        if storage == "SQLite":
            store.event_storage_adapter.close()


async def publish_cost(size: int, with_prev: bool, repeats: int) -> tuple[float, float]:
    """(storage reads per publish, milliseconds per publish) for an aggregate of ``size`` events."""
    store = make_store([event("big", version) for version in range(1, size + 1)])
    connected, adapter = connect(store, StateCarryingMessageBus)
    storage: CountingAdapter = store.event_storage_adapter  # type: ignore[assignment]
    prev = (await store.get_aggregate("big")).aggregate if with_prev else None
    storage.reads = 0
    times = []
    for version in range(size + 1, size + 1 + repeats):
        start = time.perf_counter()
        result = await connected.push_event(event("big", version), prev_aggregate=prev)
        times.append(time.perf_counter() - start)
        prev = result.next_aggregate if with_prev else None
    await adapter.wait_idle()
    return storage.reads / repeats, statistics.median(times) * 1000


async def run_messaging_benchmarks(print_fn: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run both benchmarks, print a table, return the figures."""
    best = {row: math.inf for row in PUSH_VARIANTS}
    for _ in range(ROUNDS):  # interleaved, best of ROUNDS: less sensitive to a busy machine
        for row in PUSH_VARIANTS:
            best[row] = min(best[row], await push_seconds(*row))
    print_fn(f"{f'(a) {PUSHES:,} pushes, best of {ROUNDS}':<66} pushes/s   us/push   overhead")
    pushes: dict[str, dict[str, dict[str, float]]] = {}
    for (storage, variant), seconds in best.items():
        overhead = (seconds / best[storage, "plain store"] - 1) * 100
        pushes.setdefault(storage, {})[variant] = {
            "per_second": PUSHES / seconds,
            "overhead_percent": overhead,
        }
        print_fn(
            f"    {storage + ' storage, ' + variant:<62} {PUSHES / seconds:>8,.0f}  "
            f"{seconds / PUSHES * 1e6:>8.2f}  {overhead:>7.1f} %"
        )

    print_fn("(b) state-carrying publish        with prev_aggregate        without prev_aggregate")
    print_fn("    events in aggregate    reads/publish  ms/publish    reads/publish  ms/publish")
    rows = []
    for size in AGGREGATE_SIZES:
        with_reads, with_ms = await publish_cost(size, with_prev=True, repeats=200)
        without_reads, without_ms = await publish_cost(
            size, with_prev=False, repeats=max(5, min(100, 20_000 // size))
        )
        rows.append(
            {
                "events": size,
                "with_prev": {"reads_per_publish": with_reads, "ms_per_publish": with_ms},
                "without_prev": {"reads_per_publish": without_reads, "ms_per_publish": without_ms},
            }
        )
        print_fn(
            f"    {size:>19,}    {with_reads:>13.0f}  {with_ms:>10.4f}    {without_reads:>13.0f}  {without_ms:>10.4f}"
        )
    flat_ratio = rows[-1]["with_prev"]["ms_per_publish"] / rows[0]["with_prev"]["ms_per_publish"]
    growth_ratio = rows[-1]["without_prev"]["ms_per_publish"] / rows[0]["without_prev"]["ms_per_publish"]
    print_fn(
        f"    time ratio {AGGREGATE_SIZES[-1]:,} / {AGGREGATE_SIZES[0]} events: "
        f"with prev_aggregate {flat_ratio:.2f}, without {growth_ratio:.1f}"
    )
    return {
        "pushes": pushes,
        "connected_overhead_percent": {
            storage: rows_of_storage[PUSH_VARIANTS[-1][1]]["overhead_percent"]
            for storage, rows_of_storage in pushes.items()
        },
        "state_carrying": rows,
        "with_prev_time_ratio": flat_ratio,
        "without_prev_time_ratio": growth_ratio,
    }


if __name__ == "__main__":
    asyncio.run(run_messaging_benchmarks())
