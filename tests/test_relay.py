"""The log-tailing relay: order, checkpoints, failures, restarts and the task mode."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from benchmarks.core import push_all
from castore_edu.core.errors import MessageChannelEventStoreNotFoundError
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail
from castore_edu.course.pokedex import level_ups, pokemon_appeared
from castore_edu.messaging.channels import (
    AggregateExistsMessageBus,
    NotificationMessageBus,
    StateCarryingMessageBus,
)
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter
from castore_edu.messaging.messages import NotificationMessage, StateCarryingMessage
from castore_edu.reliability.relay import (
    InMemoryCheckpointStore,
    Relay,
    SQLiteCheckpointStore,
    default_checkpoints,
)
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from castore_edu.storage.sqlite import SQLiteEventStorageAdapter
from castore_edu.testing.faults import (
    Fault,
    FaultSchedule,
    FaultyChannelAdapter,
    FaultyStorageAdapter,
    InjectedFault,
    SimulatedCrash,
)
from castore_edu.testing.storage_contract import AdapterWithoutLog
from tests.fixtures_pokemon import RecordingChannelAdapter, SpyEventStore, pokemon_reducer, recording_bus

pytestmark = pytest.mark.anyio


def life(aggregate_id: str, versions: int) -> list[EventDetail]:
    """An aggregate's events: appeared (at level 5), then level-ups."""
    appeared = pokemon_appeared(aggregate_id, name=aggregate_id, level=5)
    return [appeared, *level_ups(aggregate_id, first_version=2, count=versions - 1)]


def interleaved(aggregates: int = 3, versions: int = 4) -> list[EventDetail]:
    """Events of several aggregates, their pushes interleaved: a1v1, a2v1, a3v1, a1v2..."""
    lives = [life(f"pokemon{index}", versions) for index in range(aggregates)]
    return [event for batch in zip(*lives, strict=True) for event in batch]


def store_on(
    adapter: Any, store_class: type[EventStore] = EventStore, event_store_id: str = "POKEMONS"
) -> Any:
    return store_class(
        event_store_id=event_store_id, event_types=[], reducer=pokemon_reducer, event_storage_adapter=adapter
    )


def keys(adapter: RecordingChannelAdapter) -> list[tuple[str, int]]:
    return [(message.event.aggregate_id, message.event.version) for message, _replay in adapter.published]


async def faulty_setup(
    events: list[EventDetail], schedule: FaultSchedule
) -> tuple[EventStore, Any, RecordingChannelAdapter]:
    """An in-memory store holding ``events``, and a recording bus whose publishes meet ``schedule``."""
    store = store_on(InMemoryEventStorageAdapter())
    await push_all(store, events)
    bus, published = recording_bus(store)
    FaultyChannelAdapter.wrap(bus, schedule)
    return store, bus, published


# -- step by step ----------------------------------------------------------------------------


async def test_step_publishes_a_batch_in_log_order_and_moves_the_checkpoint() -> None:
    store = store_on(InMemoryEventStorageAdapter())
    events = interleaved()
    await push_all(store, events)
    bus, published = recording_bus(store)
    relay = Relay(store.event_storage_adapter, {"POKEMONS": bus}, batch_size=5)
    assert (await relay.checkpoint(), await relay.lag()) == (0, 12)
    assert await relay.step() == 5
    assert (await relay.checkpoint(), await relay.lag()) == (5, 7)
    assert await relay.catch_up() == 7
    assert await relay.step() == 0
    stored = [entry.event for entry in await store.event_storage_adapter.read_log()]
    assert [(e.aggregate_id, e.version) for e in stored] == [(e.aggregate_id, e.version) for e in events]
    assert [message for message, _ in published.published] == [
        NotificationMessage("POKEMONS", e) for e in stored
    ]
    assert all(replay is False for _, replay in published.published)
    assert relay.published == 12


async def test_state_carrying_messages_carry_the_aggregate_at_their_version() -> None:
    store = store_on(InMemoryEventStorageAdapter(), SpyEventStore)
    events = interleaved(aggregates=2, versions=3)
    await push_all(store, events)
    bus, published = recording_bus(store, StateCarryingMessageBus)
    relay = Relay(store.event_storage_adapter, {"POKEMONS": bus})
    await relay.step()
    for message, _replay in published.published:
        assert isinstance(message, StateCarryingMessage)
        expected = await store.get_aggregate(message.event.aggregate_id, max_version=message.event.version)
        assert message.aggregate == expected.aggregate
    # Folded along the log: no read of the store was needed (the checks above made 6).
    assert len(store.aggregate_reads) == 6


async def test_a_new_state_carrying_relay_reads_each_aggregate_once_then_folds() -> None:
    store = store_on(InMemoryEventStorageAdapter(), SpyEventStore)
    await push_all(store, life("pikachu", 5))
    bus, published = recording_bus(store, StateCarryingMessageBus)
    checkpoints = InMemoryCheckpointStore()
    await Relay(store.event_storage_adapter, {"POKEMONS": bus}, checkpoints=checkpoints, batch_size=2).step()
    restarted = Relay(store.event_storage_adapter, {"POKEMONS": bus}, checkpoints=checkpoints)
    await restarted.step()
    assert store.aggregate_reads == [("pikachu", 3)]
    assert [message.aggregate.level for message, _ in published.published] == [5, 6, 7, 8, 9]


async def test_a_failed_publish_keeps_the_checkpoint_before_it_and_is_retried() -> None:
    events = interleaved()
    store, bus, published = await faulty_setup(events, FaultSchedule.on_calls(3, 4))
    relay = Relay(store.event_storage_adapter, {"POKEMONS": bus}, batch_size=10)
    with pytest.raises(InjectedFault):
        await relay.step()
    assert await relay.checkpoint() == 2 and relay.failures == 1
    with pytest.raises(InjectedFault):
        await relay.step()
    assert await relay.checkpoint() == 2
    assert await relay.step() == 10
    await relay.catch_up()
    assert keys(published) == [(e.aggregate_id, e.version) for e in events]
    assert isinstance(relay.last_error, InjectedFault)


async def test_a_lost_acknowledgement_is_published_again() -> None:
    store, bus, published = await faulty_setup(
        life("pikachu", 3), FaultSchedule.on_calls(2, fault=Fault.FAIL_AFTER)
    )
    relay = Relay(store.event_storage_adapter, {"POKEMONS": bus})
    await relay.catch_up()
    assert keys(published) == [("pikachu", 1), ("pikachu", 2), ("pikachu", 2), ("pikachu", 3)]


async def test_catch_up_gives_up_after_max_failures_in_a_row() -> None:
    store, bus, _ = await faulty_setup(life("pikachu", 2), FaultSchedule.seeded(0, fail=1.0))
    relay = Relay(store.event_storage_adapter, {"POKEMONS": bus})
    with pytest.raises(InjectedFault):
        await relay.catch_up(max_failures=3)
    assert relay.failures == 4 and await relay.checkpoint() == 0


async def test_a_crash_saves_nothing_and_the_next_relay_repeats_the_batch() -> None:
    store, bus, published = await faulty_setup(
        life("pikachu", 4), FaultSchedule.on_calls(3, fault=Fault.CRASH)
    )
    checkpoints = InMemoryCheckpointStore()
    with pytest.raises(SimulatedCrash):
        await Relay(store.event_storage_adapter, {"POKEMONS": bus}, checkpoints=checkpoints).step()
    assert await checkpoints.load("relay") == 0
    await Relay(store.event_storage_adapter, {"POKEMONS": bus}, checkpoints=checkpoints).catch_up()
    assert [version for _, version in keys(published)] == [1, 2, 1, 2, 3, 4]


async def test_events_of_stores_without_a_route_are_passed_over() -> None:
    with SQLiteEventStorageAdapter() as adapter:
        pokemons, trainers = store_on(adapter), store_on(adapter, event_store_id="TRAINERS")
        await pokemons.push_event(life("pikachu", 1)[0])
        await trainers.push_event(pokemon_appeared("ash", name="Ash", level=1))
        await pokemons.push_event(life("pikachu", 2)[1])
        bus, published = recording_bus(pokemons)
        relay = Relay(adapter, {"POKEMONS": bus})
        assert await relay.step() == 3
        assert await relay.checkpoint() == 3 and keys(published) == [("pikachu", 1), ("pikachu", 2)]


def test_routes_are_checked_when_the_relay_is_built() -> None:
    pokemons, _trainers = store_on(InMemoryEventStorageAdapter()), store_on(None, event_store_id="TRAINERS")
    exists_bus = AggregateExistsMessageBus(message_bus_id="exists", source_event_stores=[pokemons])
    with pytest.raises(TypeError, match="AggregateExistsMessageBus"):
        Relay(pokemons.event_storage_adapter, {"POKEMONS": exists_bus})
    bus, _ = recording_bus(pokemons)
    with pytest.raises(MessageChannelEventStoreNotFoundError):
        Relay(pokemons.event_storage_adapter, {"TRAINERS": bus})
    for bad in (
        {"batch_size": 0},
        {"poll_interval": -1},
        {"retry_delay": float("nan")},
    ):
        with pytest.raises(ValueError):
            Relay(pokemons.event_storage_adapter, {"POKEMONS": bus}, **bad)
    with pytest.raises(TypeError):  # True is an int in Python, but not a batch size
        Relay(pokemons.event_storage_adapter, {"POKEMONS": bus}, batch_size=True)


class AdapterWithAPlainLog(InMemoryEventStorageAdapter):
    """A custom adapter written when the log was synchronous: its log calls are plain methods."""

    def read_log(self, *, after_position: int = 0, limit: int | None = None) -> list[Any]:
        return []

    def last_position(self) -> int:
        return 0


class OnlyALog:
    """A log, and none of the five calls of a storage adapter."""

    async def read_log(self, *, after_position: int = 0, limit: int | None = None) -> list[Any]:
        return []

    async def last_position(self) -> int:
        return 0


def test_a_storage_without_an_async_ordered_log_is_refused_when_the_relay_is_built() -> None:
    # (an adapter with no log at all: see the contract suite, which tries every adapter)
    with pytest.raises(
        TypeError, match=r"InMemoryEventStorageAdapter.* lacks async def read_log and async def last_position"
    ):
        Relay(AdapterWithAPlainLog(), {})
    # a wrapper passes the log of the adapter it wraps on: without one there, it has none either
    with pytest.raises(
        TypeError,
        match=r"FaultyStorageAdapter.* keeps no ordered log, because the adapter it wraps, AdapterWithoutLog\(\), has none",
    ):
        Relay(FaultyStorageAdapter(AdapterWithoutLog(InMemoryEventStorageAdapter())), {})
    with pytest.raises(TypeError, match=r"OnlyALog.* is not a storage adapter"):
        Relay(OnlyALog(), {})


async def test_lag_and_wait_until_published_await_the_end_of_the_log() -> None:
    store = store_on(InMemoryEventStorageAdapter())
    await push_all(store, interleaved(aggregates=1, versions=3))
    bus, published = recording_bus(store)
    relay = Relay(FaultyStorageAdapter(store.event_storage_adapter), {"POKEMONS": bus}, poll_interval=3600)
    assert inspect.iscoroutinefunction(relay.lag)
    assert await relay.lag() == 3
    relay.start()
    try:
        await relay.wait_until_published()
    finally:
        await relay.stop()
    assert (await relay.checkpoint(), await relay.lag()) == (3, 0)
    assert keys(published) == [("pokemon0", 1), ("pokemon0", 2), ("pokemon0", 3)]


# -- checkpoints -----------------------------------------------------------------------------


async def test_sqlite_checkpoints_live_in_the_events_database_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    events = interleaved()

    async def second_process() -> list[tuple[str, int]]:
        with SQLiteEventStorageAdapter(path) as adapter:
            bus, published = recording_bus(store_on(adapter))
            relay = Relay(adapter, {"POKEMONS": bus}, name="news")
            assert await relay.checkpoint() == 5
            await relay.catch_up()
            other = Relay(adapter, {"POKEMONS": bus}, name="audit")  # a relay of its own
            assert await other.checkpoint() == 0
            return keys(published)

    with SQLiteEventStorageAdapter(path) as adapter:
        store = store_on(adapter)
        await push_all(store, events)
        bus, published = recording_bus(store)
        relay = Relay(adapter, {"POKEMONS": bus}, name="news", batch_size=5)
        assert isinstance(relay.checkpoints, SQLiteCheckpointStore)
        await relay.step()
        assert keys(published) == [(e.aggregate_id, e.version) for e in events[:5]]
    assert await second_process() == [(e.aggregate_id, e.version) for e in events[5:]]
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT relay_name, position FROM relay_checkpoints").fetchall() == [
            ("news", 12)
        ]


def test_default_checkpoints_follow_the_adapter() -> None:
    assert isinstance(default_checkpoints(InMemoryEventStorageAdapter()), InMemoryCheckpointStore)
    with SQLiteEventStorageAdapter() as adapter:
        assert isinstance(default_checkpoints(FaultyStorageAdapter(adapter)), SQLiteCheckpointStore)


# -- restarts at every step ------------------------------------------------------------------


async def one_turn(seconds: float) -> None:
    """A "network" that takes one turn of the event loop, whatever the latency says."""
    await asyncio.sleep(0)


class BusRecorder:
    """A real in-memory bus with one handler that records every delivery.

    With ``remote=True`` each publish first waits one turn of the event loop (the in-memory bus
    itself does not wait), so a cancellation can fall before any publish of a batch.
    """

    def __init__(self, store: EventStore, *, remote: bool = False) -> None:
        self.bus = NotificationMessageBus(message_bus_id="bus", source_event_stores=[store])
        self.adapter = InMemoryMessageBusAdapter.attach_to(self.bus, retry_attempts=0)
        self.deliveries: list[tuple[str, int]] = []
        self.adapter.on({}, self.record)
        if remote:
            FaultyChannelAdapter.wrap(self.bus, latency_ms=1, sleep=one_turn)

    async def record(self, message: Any, context: Any) -> None:
        self.deliveries.append((message.event.aggregate_id, message.event.version))


def assert_everything_in_order(deliveries: list[tuple[str, int]], events: list[EventDetail]) -> None:
    """At least once, and in order per aggregate: version v is first delivered after v - 1."""
    assert set(deliveries) == {(e.aggregate_id, e.version) for e in events}
    first_seen: dict[str, list[int]] = {}
    for aggregate_id, version in deliveries:
        seen = first_seen.setdefault(aggregate_id, [])
        if version not in seen:
            assert version == len(seen) + 1, f"{aggregate_id} v{version} delivered before v{len(seen) + 1}"
            seen.append(version)


async def test_cancelling_the_relay_task_at_every_step_loses_nothing(tmp_path: Path) -> None:
    """Kill the relay after k turns of the event loop, for every k until a run ends by itself;
    a new relay (new connection, same file) then delivers everything, in order per aggregate."""
    events = interleaved(aggregates=3, versions=4)

    async def scenario(k: int) -> tuple[list[tuple[str, int]], bool]:
        path = tmp_path / f"events-{k}.sqlite"
        with SQLiteEventStorageAdapter(path) as adapter:
            store = store_on(adapter)
            await push_all(store, events)
            consumer = BusRecorder(store, remote=True)
            relay = Relay(adapter, {"POKEMONS": consumer.bus}, batch_size=5, poll_interval=3600)
            relay.start()
            for _ in range(k):
                await asyncio.sleep(0)
            finished = await relay.checkpoint() == len(events)
            await relay.stop()
            await consumer.adapter.wait_idle()
        with SQLiteEventStorageAdapter(path) as adapter:
            relay = Relay(adapter, {"POKEMONS": consumer.bus}, batch_size=5)
            await relay.catch_up()
            await consumer.adapter.wait_idle()
        return consumer.deliveries, finished

    k = 0
    duplicated_runs = 0
    while True:
        deliveries, finished = await scenario(k)
        assert_everything_in_order(deliveries, events)
        duplicated_runs += len(deliveries) > len(events)
        if finished:
            break
        k += 1
    assert k >= len(events)  # the run really had that many steps to cut
    assert duplicated_runs > 0  # some cuts fell between a publish and its checkpoint


async def test_a_chain_of_relays_each_killed_after_its_first_checkpoint_delivers_everything(
    tmp_path: Path,
) -> None:
    """Each relay dies right after the first publish that follows its first checkpoint: every
    relay makes progress, and each repeats what the previous one published unsaved."""
    events = interleaved(aggregates=2, versions=5)

    path = tmp_path / "events.sqlite"
    with SQLiteEventStorageAdapter(path) as adapter:
        store = store_on(adapter)
        await push_all(store, events)
        consumer = BusRecorder(store, remote=True)
    for _ in range(10 * len(events)):
        with SQLiteEventStorageAdapter(path) as adapter:
            relay = Relay(adapter, {"POKEMONS": consumer.bus}, batch_size=3, poll_interval=3600)
            if await relay.lag() == 0:
                break
            start = await relay.checkpoint()
            relay.start()
            while await relay.checkpoint() == start:
                await asyncio.sleep(0)
            delivered = len(consumer.deliveries)
            while await relay.lag() and len(consumer.deliveries) == delivered:
                await asyncio.sleep(0)  # until one more message went out, unsaved
            await relay.stop()
    else:
        raise AssertionError("the relays made no progress")
    await consumer.adapter.wait_idle()
    deliveries = consumer.deliveries
    assert_everything_in_order(deliveries, events)
    assert len(deliveries) > len(events)


# -- as a task -------------------------------------------------------------------------------


async def test_the_task_follows_new_events_when_nudged_by_the_store() -> None:
    store = store_on(InMemoryEventStorageAdapter())
    consumer = BusRecorder(store)
    relay = Relay(store.event_storage_adapter, {"POKEMONS": consumer.bus}, poll_interval=3600)
    store.on_event_pushed = relay.on_event_pushed
    with pytest.raises(RuntimeError, match="not running"):
        await relay.wait_until_published(1)
    relay.start()
    with pytest.raises(RuntimeError, match="already running"):
        relay.start()
    events = interleaved()
    await push_all(store, events)
    # Without the nudge the relay would sleep for an hour.
    await asyncio.wait_for(relay.wait_until_published(), timeout=5)
    await relay.stop()
    assert not relay.running
    await consumer.adapter.wait_idle()
    assert consumer.deliveries == [(e.aggregate_id, e.version) for e in events]
    await relay.stop()  # stopping twice is fine


async def test_the_task_polls_with_a_short_interval_and_retries_failed_publishes() -> None:
    store = store_on(InMemoryEventStorageAdapter())
    consumer = BusRecorder(store)
    FaultyChannelAdapter.wrap(consumer.bus, FaultSchedule.on_calls(1, 2, 5))
    relay = Relay(store.event_storage_adapter, {"POKEMONS": consumer.bus}, poll_interval=0.001, retry_delay=0)
    relay.start()
    events = interleaved(aggregates=2, versions=3)
    await push_all(store, events)  # no nudge: the short poll finds them
    await asyncio.wait_for(relay.wait_until_published(), timeout=5)
    await relay.stop()
    await consumer.adapter.wait_idle()
    assert consumer.deliveries == [(e.aggregate_id, e.version) for e in events]
    assert relay.failures == 3


async def test_a_crashed_relay_task_reports_the_crash_when_stopped() -> None:
    store = store_on(InMemoryEventStorageAdapter())
    await push_all(store, life("pikachu", 2))
    consumer = BusRecorder(store)
    FaultyChannelAdapter.wrap(consumer.bus, FaultSchedule.on_calls(2, fault=Fault.CRASH))
    relay = Relay(store.event_storage_adapter, {"POKEMONS": consumer.bus}, batch_size=1)
    relay.start()
    with pytest.raises(RuntimeError, match="not running"):
        await relay.wait_until_published()
    with pytest.raises(SimulatedCrash):
        await relay.stop()
    assert await relay.checkpoint() == 1


def test_a_relay_made_outside_a_loop_runs_in_later_loops() -> None:
    store = store_on(InMemoryEventStorageAdapter())
    bus, published = recording_bus(store)
    relay = Relay(store.event_storage_adapter, {"POKEMONS": bus}, poll_interval=3600)

    async def session(events: list[EventDetail]) -> None:
        relay.start()
        await push_all(store, events)
        relay.nudge()
        await relay.wait_until_published()
        await relay.stop()

    events = life("pikachu", 4)
    asyncio.run(session(events[:2]))
    asyncio.run(session(events[2:]))
    assert keys(published) == [("pikachu", version) for version in (1, 2, 3, 4)]


# -- the benchmark ---------------------------------------------------------------------------


async def test_the_relay_benchmark_runs_and_reports_every_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    """A smoke test on tiny sizes: the figures themselves are for people to read."""
    import benchmarks.relay as bench

    for name, value in {
        "LOG_EVENTS": 300,
        "SMALL_BATCH_EVENTS": 20,
        "PUSH_ROUNDS": 1,
        "LAG_SECONDS": 0.1,
        "PUSH_EVENTS": {"on disk": 10, "in memory": 50},
    }.items():
        monkeypatch.setattr(bench, name, value)
    lines: list[str] = []
    figures = await bench.run_relay_benchmarks(print_fn=lines.append)
    assert set(figures["relay_throughput"]) == {"batch_size=500", "batch_size=1"}
    assert set(figures["push_throughput"]) == {"on disk", "in memory"}
    assert all(set(rates) == set(bench.PUSH_VARIANTS) for rates in figures["push_throughput"].values())
    assert set(figures["lag"]) == {"connected", "relay, polling", "relay, nudged"}
    assert all(rate > 0 for rate in figures["relay_throughput"].values())
    assert all(lag["max_ms"] >= lag["p95_ms"] >= lag["median_ms"] >= 0 for lag in figures["lag"].values())
    assert len(lines) == 16 and "events/s" in lines[1]
