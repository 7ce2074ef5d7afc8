"""InMemoryEventStorageAdapter: the contract suite, plus what only memory does."""

from __future__ import annotations

from typing import Any

import pytest

from castore_edu import EventAlreadyExistsError, EventStore, InMemoryEventStorageAdapter
from castore_edu.core.clock import Clock, utc_now
from castore_edu.testing.storage_contract import YEARS, StorageAdapterContract, event, store

pytestmark = pytest.mark.anyio


class TestInMemoryAdapter(StorageAdapterContract):
    def make_adapter(self, clock: Clock = utc_now) -> InMemoryEventStorageAdapter:
        return InMemoryEventStorageAdapter(clock=clock)

    def make_sibling(self, adapter: Any) -> InMemoryEventStorageAdapter:
        return InMemoryEventStorageAdapter(clock=adapter.clock)

    def make_stranger(self, adapter: Any) -> Any:
        from castore_edu import SQLiteEventStorageAdapter

        return self.opened(SQLiteEventStorageAdapter())

    one_log_for_all_stores = False  # one adapter (and so one log) per store


async def test_initial_events_are_stored_in_order() -> None:
    e1, e2 = event(version=1, timestamp=YEARS[0]), event(version=2, timestamp=YEARS[1])
    adapter = InMemoryEventStorageAdapter([e1, e2], event_store_id="POKEMONS")
    assert await adapter.get_events("pikachu") == [e1, e2]
    assert [(entry.position, entry.event_store_id) for entry in await adapter.read_log()] == [
        (1, "POKEMONS"),
        (2, "POKEMONS"),
    ]


def test_duplicate_initial_events_are_refused() -> None:
    with pytest.raises(EventAlreadyExistsError):
        InMemoryEventStorageAdapter([event(), event()])


async def test_one_adapter_ignores_the_event_store_id() -> None:
    """Like Castore's: two stores sharing one in-memory adapter share their aggregates."""
    adapter = InMemoryEventStorageAdapter()
    await adapter.push_event(event(), event_store_id="POKEMONS")
    with pytest.raises(EventAlreadyExistsError):
        await adapter.push_event(event(), event_store_id="TRAINERS")


async def test_subclasses_may_join_a_group() -> None:
    class Custom(InMemoryEventStorageAdapter):
        pass

    pokemons, trainers = store("POKEMONS", InMemoryEventStorageAdapter()), store("TRAINERS", Custom())
    await EventStore.push_event_group(pokemons.group_event(event("a")), trainers.group_event(event("b")))
    assert len(await trainers.get_events("b")) == 1


class FailingWrites(InMemoryEventStorageAdapter):
    """Fails when asked to write a chosen aggregate — a storage fault after earlier writes."""

    def __init__(self, failing_aggregate: str) -> None:
        super().__init__()
        self.failing_aggregate = failing_aggregate
        self.writes = 0

    def _write(self, event_store_id: str, stamped: Any, force: bool) -> Any:
        self.writes += 1
        if stamped[0].aggregate_id == self.failing_aggregate:
            raise OSError("disk on fire")
        return super()._write(event_store_id, stamped, force)


async def test_a_write_failing_mid_group_rolls_back_every_adapter() -> None:
    a, b = InMemoryEventStorageAdapter(), FailingWrites("agg2")
    pokemons, trainers = store("POKEMONS", a), store("TRAINERS", b)
    with pytest.raises(OSError, match="disk on fire"):
        await EventStore.push_event_group(
            pokemons.group_event(event("agg1")), trainers.group_event(event("agg2"))
        )
    assert b.writes == 1
    assert await a.get_events("agg1") == [] and await b.get_events("agg2") == []
    # no empty aggregate is left behind to break later listings (Castore leaves one)
    assert (await a.list_aggregate_ids()).aggregate_ids == []
    assert await a.read_log() == []


async def test_a_failed_group_restores_a_forced_overwrite() -> None:
    adapter = FailingWrites("boom")
    pokemons = store("POKEMONS", adapter)
    original = event("pikachu", timestamp=YEARS[0], payload={"level": 1})
    await pokemons.push_event(original)
    with pytest.raises(OSError):
        await EventStore.push_event_group(
            pokemons.group_event(event("pikachu", type="REWRITTEN")),
            pokemons.group_event(event("boom")),
            force=True,
        )
    assert await pokemons.get_events("pikachu") == [original]
    assert [entry.event for entry in await adapter.read_log()] == [original]
