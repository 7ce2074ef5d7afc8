"""Benchmarks of the relay, next to the connected event store, measured in the same run.

Three questions:

(a) **Relay throughput**: how fast does a relay move events from an SQLite log (a file on disk,
    durable settings) to an in-memory bus with one no-op handler? The log is filled first, then
    timed from the first read to the last checkpoint. With ``batch_size=1`` every event costs a
    durable checkpoint commit; with large batches the commits are shared.
(b) **Push and publish**: events per second through a ``ConnectedEventStore`` (store, then
    publish, one event at a time), against a plain store (push only) and a plain store followed
    by a relay catching up (push, then relay: the same work, done in two places). On disk, every
    push waits for its durable commit, which dominates; in memory (``":memory:"``) only the
    computing is left, so the cost of the publishing code itself shows.
(c) **End-to-end lag at a fixed push rate**: a writer pushes at ``PUSH_RATE`` events per second
    while a relay runs as a task; the lag of an event is the time from the end of its push to its
    delivery to the handler. A relay that only polls adds up to one poll interval; one nudged by
    ``on_event_pushed`` follows at once. The connected store publishes inside the push (its lag
    is ~0) — that is what its convenience buys, and what its failure modes cost.

Run with ``python -m benchmarks.relay`` (about 10 s; less on a fast disk). Figures depend on the machine (the
disk's sync latency above all); they are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks.core import counter_store, increments, push_all
from castore_edu.connected.connected_event_store import ConnectedEventStore
from castore_edu.core.event_store import EventStore
from castore_edu.messaging.channels import NotificationMessageBus
from castore_edu.messaging.delivery import TaskContext
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter
from castore_edu.reliability.relay import Relay
from castore_edu.storage.sqlite import SQLiteEventStorageAdapter

LOG_EVENTS = 20_000  # events the relay moves in (a)
SMALL_BATCH_EVENTS = 500  # events for batch_size=1
PUSH_EVENTS = {"on disk": 200, "in memory": 2_000}  # events per round of (b)
PUSH_ROUNDS = 3
PUSH_VARIANTS = ("push only", "connected", "push, then relay")
PUSH_RATE = 100  # events per second in (c)
LAG_SECONDS = 2.0
POLL_INTERVAL = 0.05


class Deliveries:
    """A no-op bus handler that notes when each event arrived (``perf_counter`` seconds)."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, int], float] = {}

    async def __call__(self, message: Any, context: TaskContext) -> None:
        self.arrived[(message.event.aggregate_id, message.event.version)] = time.perf_counter()


def bus_for(store: EventStore) -> tuple[NotificationMessageBus, InMemoryMessageBusAdapter, Deliveries]:
    bus = NotificationMessageBus(message_bus_id="bench", source_event_stores=[store])
    adapter = InMemoryMessageBusAdapter.attach_to(bus)
    deliveries = Deliveries()
    adapter.on({}, deliveries)
    return bus, adapter, deliveries


async def fill_log(store: EventStore, count: int, chunk: int = 1_000) -> None:
    """``count`` events in ``count / chunk`` transactions (groups), to fill the log fast."""
    events = increments(count)
    for start in range(0, count, chunk):
        await EventStore.push_event_group(
            *(store.group_event(event) for event in events[start : start + chunk])
        )


async def relay_rate(directory: str, count: int, batch_size: int) -> float:
    """Events per second a relay moves from a filled SQLite log to the bus."""
    with SQLiteEventStorageAdapter(os.path.join(directory, f"relay-{batch_size}.sqlite")) as adapter:
        store = counter_store(adapter)
        await fill_log(store, count)
        bus, bus_adapter, deliveries = bus_for(store)
        relay = Relay(adapter, {store.event_store_id: bus}, batch_size=batch_size)
        started = time.perf_counter()
        await relay.catch_up()
        await bus_adapter.wait_idle()
        seconds = time.perf_counter() - started
        assert len(deliveries.arrived) == count
        return count / seconds


async def push_seconds(path: str, count: int, variant: str) -> float:
    """Seconds to push ``count`` events for ``variant``: "push only", "connected" (push and
    publish) or "push, then relay" (push everything, then a relay publishes everything)."""
    with SQLiteEventStorageAdapter(path) as adapter:
        store = counter_store(adapter)
        bus, bus_adapter, deliveries = bus_for(store)
        events = increments(count)
        started = time.perf_counter()
        if variant == "connected":
            await push_all(ConnectedEventStore(store, bus), events)
        else:
            await push_all(store, events)
        if variant == "push, then relay":
            await Relay(adapter, {store.event_store_id: bus}).catch_up()
        await bus_adapter.wait_idle()
        seconds = time.perf_counter() - started
        assert len(deliveries.arrived) == (0 if variant == "push only" else count)
        return seconds


async def push_rates(directory: str | None, count: int, rounds: int) -> dict[str, float]:
    """Median events per second of each variant, on disk (``directory``) or in memory (``None``).

    The variants take turns, round after round, so that a slow moment of the disk weighs on
    all of them alike.
    """
    times: dict[str, list[float]] = {variant: [] for variant in PUSH_VARIANTS}
    for round_number in range(rounds):
        for variant in PUSH_VARIANTS:
            path = (
                ":memory:"
                if directory is None
                else os.path.join(directory, f"push-{round_number}-{variant}.sqlite")
            )
            times[variant].append(await push_seconds(path, count, variant))
    return {variant: count / statistics.median(seconds) for variant, seconds in times.items()}


async def lags(directory: str, variant: str) -> list[float]:
    """Seconds from the end of each push to its delivery, pushing at ``PUSH_RATE`` per second."""
    with SQLiteEventStorageAdapter(os.path.join(directory, f"lag-{variant}.sqlite")) as adapter:
        store = counter_store(adapter)
        bus, bus_adapter, deliveries = bus_for(store)
        relay = None
        writer: Any = store
        if variant == "connected":
            writer = ConnectedEventStore(store, bus)
        else:
            relay = Relay(adapter, {store.event_store_id: bus}, poll_interval=POLL_INTERVAL)
            if variant == "relay, nudged":
                store.on_event_pushed = relay.on_event_pushed
            relay.start()
        pushed: dict[tuple[str, int], float] = {}
        events = increments(int(PUSH_RATE * LAG_SECONDS))
        started = time.perf_counter()
        for index, event in enumerate(events):
            # Paced on an absolute schedule, so a slow push does not slow the rate down.
            await asyncio.sleep(max(0.0, started + index / PUSH_RATE - time.perf_counter()))
            await writer.push_event(event)
            pushed[(event.aggregate_id, event.version)] = time.perf_counter()
        if relay is not None:
            await relay.wait_until_published()
            await relay.stop()
        await bus_adapter.wait_idle()
        return [max(0.0, deliveries.arrived[key] - at) for key, at in pushed.items()]


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def run_relay_benchmarks(print_fn: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run (a), (b) and (c); print the figures and return them."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="castore-relay-bench-") as directory:
        print_fn("Relay: SQLite log on disk -> in-memory bus, one no-op handler")
        throughput = {
            "batch_size=500": await relay_rate(directory, LOG_EVENTS, 500),
            "batch_size=1": await relay_rate(directory, SMALL_BATCH_EVENTS, 1),
        }
        for name, rate in throughput.items():
            print_fn(f"  relay throughput ({name:>14}): {rate:>10,.0f} events/s")
        results["relay_throughput"] = throughput

        pushes = {}
        for where, count in PUSH_EVENTS.items():
            print_fn(
                f"Push and publish, one event at a time, SQLite {where} (median of {PUSH_ROUNDS} x {count:,} events)"
            )
            pushes[where] = await push_rates(directory if where == "on disk" else None, count, PUSH_ROUNDS)
            for variant, rate in pushes[where].items():
                print_fn(f"  {variant:<18}: {rate:>10,.0f} events/s")
        results["push_throughput"] = pushes

        print_fn(f"End-to-end lag at {PUSH_RATE} pushes/s for {LAG_SECONDS:g} s (push end -> handler)")
        lag_results = {}
        for variant in ("connected", "relay, polling", "relay, nudged"):
            lag_results[variant] = summary(await lags(directory, variant))
            figures = lag_results[variant]
            print_fn(
                f"  {variant:<15}: median {figures['median_ms']:7.2f} ms, p95 {figures['p95_ms']:7.2f} ms,"
                f" max {figures['max_ms']:7.2f} ms"
            )
        print_fn(
            f"  (polling every {POLL_INTERVAL * 1000:g} ms; the nudged relay is woken by on_event_pushed)"
        )
        results["lag"] = lag_results
    return results


if __name__ == "__main__":
    asyncio.run(run_relay_benchmarks())
