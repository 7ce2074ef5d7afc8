"""SimulatedLatencyAdapter: transparent (the whole adapter contract holds through it), slow, counted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from castore_edu import (
    EventAlreadyExistsError,
    EventStore,
    InMemoryEventStorageAdapter,
    SQLiteEventStorageAdapter,
    stepping_clock,
)
from castore_edu.core.clock import Clock, utc_now
from castore_edu.testing.latency import CallCounts, SimulatedLatencyAdapter
from castore_edu.testing.storage_contract import AdapterWithoutLog, StorageAdapterContract, event, store

pytestmark = pytest.mark.anyio


class TestThroughTheWrapperInMemory(StorageAdapterContract):
    """Every promise of the in-memory adapter still holds behind the wrapper."""

    def make_adapter(self, clock: Clock = utc_now) -> SimulatedLatencyAdapter:
        return SimulatedLatencyAdapter(InMemoryEventStorageAdapter(clock=clock), latency_ms=0)

    def make_sibling(self, adapter: Any) -> SimulatedLatencyAdapter:
        return SimulatedLatencyAdapter(InMemoryEventStorageAdapter(clock=adapter.inner.clock), latency_ms=0)

    def make_stranger(self, adapter: Any) -> SimulatedLatencyAdapter:
        return SimulatedLatencyAdapter(self.opened(SQLiteEventStorageAdapter()), latency_ms=0)

    one_log_for_all_stores = False  # one adapter (and so one log) per store


class TestThroughTheWrapperOnSQLite(StorageAdapterContract):
    """...and so do the SQLite adapter's, groups (one transaction) included."""

    def make_adapter(self, clock: Clock = utc_now) -> SimulatedLatencyAdapter:
        return SimulatedLatencyAdapter(self.opened(SQLiteEventStorageAdapter(clock=clock)), latency_ms=0)

    def make_sibling(self, adapter: Any) -> SimulatedLatencyAdapter:
        return adapter  # one SQLite database holds both stores

    def make_stranger(self, adapter: Any) -> SimulatedLatencyAdapter:
        return SimulatedLatencyAdapter(InMemoryEventStorageAdapter(), latency_ms=0)


def counting(inner: Any = None, latency_ms: float = 0) -> SimulatedLatencyAdapter:
    return SimulatedLatencyAdapter(
        inner if inner is not None else InMemoryEventStorageAdapter(), latency_ms=latency_ms
    )


async def test_reads_count_calls_and_the_events_they_return() -> None:
    adapter = counting()
    pokemons = store("POKEMONS", adapter)

    for version in (1, 2, 3):
        await pokemons.push_event(event(version=version))
    await pokemons.get_events("pikachu")
    await pokemons.get_aggregate("pikachu", max_version=2)
    await pokemons.get_events("nobody")
    await pokemons.list_aggregate_ids()
    assert adapter.counts == CallCounts(reads=3, events_read=5, writes=3, events_written=3, listings=1)


async def test_a_refused_write_is_a_round_trip_that_writes_nothing() -> None:
    adapter = counting()
    pokemons = store("POKEMONS", adapter)
    await pokemons.push_event(event())
    with pytest.raises(EventAlreadyExistsError):
        await pokemons.push_event(event())
    assert adapter.counts == CallCounts(writes=2, events_written=1)


async def test_reset_counts_returns_what_was_counted_and_starts_again() -> None:
    adapter = counting()
    await adapter.push_event(event(), event_store_id="S")
    assert adapter.reset_counts() == CallCounts(writes=1, events_written=1)
    assert adapter.counts == CallCounts()


async def test_a_group_is_one_round_trip_counted_on_the_adapter_that_runs_it() -> None:
    head, other = counting(), counting()
    pokemons, trainers = store("POKEMONS", head), store("TRAINERS", other)
    await EventStore.push_event_group(
        pokemons.group_event(event("pikachu")),
        trainers.group_event(event("ash")),
        pokemons.group_event(event("mew")),
    )
    assert head.counts == CallCounts(writes=1, events_written=3)
    assert other.counts == CallCounts()
    assert [e.aggregate_id for e in await trainers.get_events("ash")] == [
        "ash"
    ]  # stored in the other adapter


async def test_a_group_mixing_wrapped_and_bare_adapters_of_the_same_kind_works() -> None:
    wrapped, bare = counting(), InMemoryEventStorageAdapter()
    pokemons, trainers = store("POKEMONS", wrapped), store("TRAINERS", bare)
    await EventStore.push_event_group(
        pokemons.group_event(event("pikachu")), trainers.group_event(event("ash"))
    )
    assert len(await trainers.get_events("ash")) == 1


async def test_every_call_waits_the_latency() -> None:
    adapter = counting(latency_ms=20)

    started = time.perf_counter()
    await adapter.push_event(event(), event_store_id="S")
    await adapter.get_events("pikachu", event_store_id="S")
    assert (time.perf_counter() - started) >= 0.039


async def test_waiting_does_not_block_other_tasks() -> None:
    """Like a driver waiting on a socket: ten concurrent reads take about one latency, not ten."""
    adapter = counting(latency_ms=50)

    started = time.perf_counter()
    await asyncio.gather(*(adapter.get_events("pikachu", event_store_id="S") for _ in range(10)))
    elapsed = time.perf_counter() - started
    assert 0.049 <= elapsed < 0.25  # one latency (50 ms), with generous room for a slow machine
    assert adapter.counts.reads == 10


def test_a_negative_latency_is_refused() -> None:
    with pytest.raises(ValueError, match="latency_ms"):
        counting(latency_ms=-1)


async def test_the_ordered_log_is_passed_through_without_counting() -> None:
    adapter = counting(InMemoryEventStorageAdapter(clock=stepping_clock()))
    await adapter.push_event(event(), event_store_id="S")
    adapter.reset_counts()
    assert await adapter.last_position() == 1
    assert [entry.position for entry in await adapter.read_log()] == [1]
    assert adapter.counts == CallCounts()


async def test_a_wrapper_around_an_adapter_without_a_log_has_none_either() -> None:
    adapter = counting(AdapterWithoutLog(InMemoryEventStorageAdapter()))
    with pytest.raises(TypeError, match=r"AdapterWithoutLog\(\) keeps no ordered log"):
        await adapter.read_log()
    with pytest.raises(TypeError, match="lacks async def read_log and async def last_position"):
        await adapter.last_position()
