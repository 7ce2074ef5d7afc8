"""mock_event_store and mute_event_store, as Castore's test tools behave.

Castore runs these on its blueprint fixture; the core Pokémon fixture has the same shape
(an appeared event, then a caught one), so it is used here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from castore_edu import (
    AggregateIdEntry,
    AggregateIdsPage,
    EventDetail,
    EventStore,
    InMemoryEventStorageAdapter,
    MockedEventStore,
    PushEventResult,
    mock_event_store,
    mute_event_store,
)
from tests.pokemon import (
    PIKACHU_APPEARED,
    PIKACHU_CAUGHT,
    PIKACHU_ID,
    PIKACHU_LEVELED_UP,
    PushRecorder,
    pikachu_after,
    pokemons_event_store,
)

pytestmark = pytest.mark.anyio

CHARIZARD_APPEARED = EventDetail(
    aggregate_id="charizardId",
    version=1,
    type="POKEMON_APPEARED",
    timestamp="2025",
    payload={"name": "Charizard", "level": 36},
)


async def events_of(store: EventStore, aggregate_id: str = PIKACHU_ID) -> list[EventDetail]:
    return await store.get_events(aggregate_id)


async def listed(store: EventStore) -> AggregateIdsPage:
    return await store.list_aggregate_ids()


async def push(store: EventStore, event: EventDetail) -> PushEventResult:
    return await store.push_event(event)


ONLY_PIKACHU = AggregateIdsPage([AggregateIdEntry(PIKACHU_ID, PIKACHU_APPEARED.timestamp)])


# -- mock_event_store -----------------------------------------------------------------------


def test_mock_is_a_new_store_like_the_original_and_leaves_it_alone() -> None:
    def simulate(indexed: dict[Any, EventDetail], event: EventDetail) -> dict[Any, EventDetail]:
        return {**indexed, event.version: event}

    original = pokemons_event_store(simulate_side_effect=simulate)
    mock = mock_event_store(original, [PIKACHU_APPEARED])
    assert original.event_storage_adapter is None
    assert isinstance(mock, MockedEventStore) and isinstance(mock, EventStore) and mock is not original
    assert mock.event_store_id == original.event_store_id
    assert mock.event_types == original.event_types
    assert mock.reducer is original.reducer
    assert mock.simulate_side_effect is simulate
    assert isinstance(mock.event_storage_adapter, InMemoryEventStorageAdapter)
    assert list(mock.initial_events) == [PIKACHU_APPEARED]


async def test_mock_serves_its_initial_events() -> None:
    mock = mock_event_store(pokemons_event_store(), [PIKACHU_APPEARED])
    assert await listed(mock) == ONLY_PIKACHU
    assert await events_of(mock) == [PIKACHU_APPEARED]
    assert (await mock.get_aggregate(PIKACHU_ID)).aggregate == pikachu_after([PIKACHU_APPEARED])


async def test_mock_without_initial_events_is_empty() -> None:
    mock = mock_event_store(pokemons_event_store())
    assert await listed(mock) == AggregateIdsPage([])
    assert list(mock.initial_events) == []


async def test_reset_forgets_what_was_pushed_since() -> None:
    mock = mock_event_store(pokemons_event_store(), [PIKACHU_APPEARED])
    await push(mock, PIKACHU_CAUGHT)
    await push(mock, CHARIZARD_APPEARED)
    assert await events_of(mock) == [PIKACHU_APPEARED, PIKACHU_CAUGHT]

    mock.reset()
    assert await events_of(mock) == [PIKACHU_APPEARED]
    assert await listed(mock) == ONLY_PIKACHU
    assert list(mock.initial_events) == [PIKACHU_APPEARED]

    # A reset mock is writable again, and resets again to the same start.
    await push(mock, PIKACHU_CAUGHT)
    await push(mock, PIKACHU_LEVELED_UP)
    mock.reset()
    assert await events_of(mock) == [PIKACHU_APPEARED]


async def test_mock_does_not_share_storage_with_the_original_or_other_mocks() -> None:
    original = pokemons_event_store(InMemoryEventStorageAdapter([PIKACHU_APPEARED, PIKACHU_CAUGHT]))
    first = mock_event_store(original, [PIKACHU_APPEARED])
    second = mock_event_store(original, [PIKACHU_APPEARED])
    assert await events_of(first) == [PIKACHU_APPEARED]  # not the original's events

    await push(first, PIKACHU_CAUGHT)
    await push(first, PIKACHU_LEVELED_UP)
    assert await events_of(second) == [PIKACHU_APPEARED]
    assert await events_of(original) == [PIKACHU_APPEARED, PIKACHU_CAUGHT]


async def test_mock_does_not_copy_on_event_pushed() -> None:
    recorder = PushRecorder()
    original = pokemons_event_store(on_event_pushed=recorder)
    mock = mock_event_store(original, [PIKACHU_APPEARED])
    assert mock.on_event_pushed is None
    await push(mock, PIKACHU_CAUGHT)
    assert recorder.results == []
    assert original.on_event_pushed is recorder


def test_a_mock_made_outside_a_loop_works_in_later_loops() -> None:
    mock = mock_event_store(pokemons_event_store(), [PIKACHU_APPEARED])
    asyncio.run(push(mock, PIKACHU_CAUGHT))
    mock.reset()
    asyncio.run(push(mock, PIKACHU_CAUGHT))
    assert asyncio.run(events_of(mock)) == [PIKACHU_APPEARED, PIKACHU_CAUGHT]


# -- mute_event_store -----------------------------------------------------------------------


async def test_mute_gives_the_store_fresh_in_memory_storage() -> None:
    store = pokemons_event_store()
    assert mute_event_store(store, [PIKACHU_APPEARED]) is None
    assert isinstance(store.event_storage_adapter, InMemoryEventStorageAdapter)
    assert await listed(store) == ONLY_PIKACHU
    assert await events_of(store) == [PIKACHU_APPEARED]
    await push(store, PIKACHU_CAUGHT)
    assert await events_of(store) == [PIKACHU_APPEARED, PIKACHU_CAUGHT]


async def test_mute_replaces_existing_storage_and_muting_again_starts_over() -> None:
    real = InMemoryEventStorageAdapter([PIKACHU_APPEARED, PIKACHU_CAUGHT, PIKACHU_LEVELED_UP])
    store = pokemons_event_store(real)
    mute_event_store(store)
    assert store.event_storage_adapter is not real
    assert await events_of(store) == []

    await push(store, PIKACHU_APPEARED)
    mute_event_store(store, [CHARIZARD_APPEARED])
    assert await events_of(store) == []
    assert await events_of(store, "charizardId") == [CHARIZARD_APPEARED]
    # The real storage never saw the muted writes.
    assert [logged.event for logged in await real.read_log()] == [
        PIKACHU_APPEARED,
        PIKACHU_CAUGHT,
        PIKACHU_LEVELED_UP,
    ]


async def test_mute_keeps_the_rest_of_the_store() -> None:
    recorder = PushRecorder()
    store = pokemons_event_store(on_event_pushed=recorder)
    mute_event_store(store, [PIKACHU_APPEARED])
    await push(store, PIKACHU_CAUGHT)
    assert store.on_event_pushed is recorder
    assert recorder.versions == [2]
