"""The course domain: reducers, event constructors, store factories, the opening story, the guard."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from castore_edu import (
    EventAlreadyExistsError,
    EventDetail,
    InMemoryEventStorageAdapter,
    SQLiteEventStorageAdapter,
)
from castore_edu.core.events import validate_event
from castore_edu.course.pokedex import (
    POKEMON_EVENT_TYPES,
    POKEMONS,
    TRAINER_EVENT_TYPES,
    TRAINERS,
    Pokemon,
    StalePrevAggregateError,
    Trainer,
    UnexpectedEventError,
    check_prev_aggregate,
    in_memory_pokedex,
    is_prev_aggregate_of,
    level_ups,
    pokemon_appeared,
    pokemon_caught,
    pokemon_leveled_up,
    pokemon_reducer,
    push_with_checked_prev_aggregate,
    sqlite_pokedex,
    tell_the_story,
    trainer_caught_pokemon,
    trainer_created,
    trainer_reducer,
)

pytestmark = pytest.mark.anyio

APPEARED = pokemon_appeared("pikachu", name="Pikachu", level=5)
CAUGHT = pokemon_caught("pikachu", version=2, trainer_id="ash")
LEVELED_UP = pokemon_leveled_up("pikachu", version=3)


def fold(reducer, events):
    aggregate = None
    for event in events:
        aggregate = reducer(aggregate, event)
    return aggregate


# -- reducers ---------------------------------------------------------------------------------


def test_a_pokemon_appears_wild() -> None:
    assert pokemon_reducer(None, APPEARED) == Pokemon("pikachu", 1, "Pikachu", 5, "wild", None)


def test_caught_then_leveled_up() -> None:
    assert fold(pokemon_reducer, [APPEARED, CAUGHT, LEVELED_UP]) == Pokemon(
        "pikachu", 3, "Pikachu", 6, "caught", "ash"
    )


def test_the_reducer_returns_new_aggregates_and_leaves_the_old_one_alone() -> None:
    wild = pokemon_reducer(None, APPEARED)
    caught = pokemon_reducer(wild, CAUGHT)
    assert caught is not wild and wild.status == "wild" and wild.version == 1
    assert pokemon_reducer(wild, CAUGHT) == caught  # pure: same inputs, same output
    with pytest.raises(dataclasses.FrozenInstanceError):
        wild.level = 99  # type: ignore[misc]


def test_an_unknown_event_type_only_moves_the_version_on() -> None:
    wild = pokemon_reducer(None, APPEARED)
    later = EventDetail(aggregate_id="pikachu", version=2, type="POKEMON_EVOLVED", payload={"into": "Raichu"})
    assert pokemon_reducer(wild, later) == dataclasses.replace(wild, version=2)
    trainer = trainer_reducer(None, trainer_created("ash", name="Ash"))
    assert trainer_reducer(trainer, dataclasses.replace(later, aggregate_id="ash")).version == 2


@pytest.mark.parametrize(
    "reducer, event",
    [
        (pokemon_reducer, CAUGHT),
        (pokemon_reducer, LEVELED_UP),
        (trainer_reducer, trainer_caught_pokemon("ash", version=2, pokemon_id="pikachu")),
    ],
)
def test_an_event_before_the_first_one_is_refused(reducer, event) -> None:
    with pytest.raises(UnexpectedEventError, match=f"{event.type} \\(version {event.version}\\) before"):
        reducer(None, event)


def test_a_trainer_collects_pokemon_ids_in_order() -> None:
    events = [
        trainer_created("ash", name="Ash"),
        trainer_caught_pokemon("ash", version=2, pokemon_id="pikachu"),
        trainer_caught_pokemon("ash", version=3, pokemon_id="charmander"),
    ]
    assert fold(trainer_reducer, events) == Trainer("ash", 3, "Ash", ("pikachu", "charmander"))


# -- event constructors -------------------------------------------------------------------------


def test_constructors_make_valid_events_of_declared_types() -> None:
    events = [
        APPEARED,
        CAUGHT,
        LEVELED_UP,
        trainer_created("ash", name="Ash"),
        trainer_caught_pokemon("ash", version=2, pokemon_id="pikachu", timestamp="2024"),
    ]
    declared = {event_type.type for event_type in (*POKEMON_EVENT_TYPES, *TRAINER_EVENT_TYPES)}
    for event in events:
        validate_event(event)  # JSON payloads, positive versions...
        assert event.type in declared
    assert APPEARED.version == 1 and APPEARED.timestamp is None and events[-1].timestamp == "2024"


def test_level_ups_grow_a_history() -> None:
    events = list(level_ups("pikachu", first_version=2, count=3, timestamp="2024"))
    assert [(e.version, e.type, e.timestamp) for e in events] == [
        (v, "POKEMON_LEVELED_UP", "2024") for v in (2, 3, 4)
    ]
    assert fold(pokemon_reducer, [APPEARED, *events]).level == 8


# -- stores -----------------------------------------------------------------------------------------


async def test_in_memory_pokedex_one_adapter_per_store_one_clock_for_both() -> None:
    pokedex = in_memory_pokedex()
    assert (pokedex.pokemons.event_store_id, pokedex.trainers.event_store_id) == (POKEMONS, TRAINERS)
    assert isinstance(pokedex.pokemons.event_storage_adapter, InMemoryEventStorageAdapter)
    assert pokedex.pokemons.event_storage_adapter is not pokedex.trainers.event_storage_adapter

    first = await pokedex.pokemons.push_event(APPEARED)
    second = await pokedex.trainers.push_event(trainer_created("pikachu", name="same id, other store"))
    assert [first.event.timestamp, second.event.timestamp] == [
        "2024-01-01T00:00:00.000Z",
        "2024-01-01T00:00:01.000Z",
    ]
    pokedex.close()  # nothing to release, and no error


async def test_sqlite_pokedex_shares_one_database_and_closes_it(tmp_path: Path) -> None:
    with sqlite_pokedex(tmp_path / "pokedex.sqlite3") as pokedex:
        adapter = pokedex.pokemons.event_storage_adapter
        assert (
            isinstance(adapter, SQLiteEventStorageAdapter)
            and adapter is pokedex.trainers.event_storage_adapter
        )
        await tell_the_story(pokedex)
    with pytest.raises(Exception, match="closed"):
        adapter.connection.execute("SELECT 1")


async def test_sqlite_data_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "pokedex.sqlite3"
    with sqlite_pokedex(path) as pokedex:
        await tell_the_story(pokedex)
    with sqlite_pokedex(path) as reopened:
        assert (await reopened.pokemons.get_aggregate("pikachu")).aggregate.level == 7
        with pytest.raises(EventAlreadyExistsError):
            await reopened.pokemons.push_event(APPEARED)


async def every_event(pokedex) -> dict[tuple[str, str], list[EventDetail]]:
    return {
        (store.event_store_id, entry.aggregate_id): await store.get_events(entry.aggregate_id)
        for store in pokedex.stores
        for entry in (await store.list_aggregate_ids()).aggregate_ids
    }


async def test_the_story_ends_as_its_docstring_says_on_both_adapters() -> None:
    in_memory, on_sqlite = in_memory_pokedex(), sqlite_pokedex()
    for pokedex in (in_memory, on_sqlite):
        await tell_the_story(pokedex)
        pikachu = (await pokedex.pokemons.get_aggregate("pikachu")).aggregate
        assert pikachu == Pokemon("pikachu", 4, "Pikachu", 7, "caught", "ash")
        assert (await pokedex.pokemons.get_aggregate("charmander")).aggregate.version == 1
        assert (await pokedex.trainers.get_aggregate("ash")).aggregate == Trainer(
            "ash", 2, "Ash", ("pikachu",)
        )
    # Same clock, same story: the same events, timestamps included.
    assert await every_event(in_memory) == await every_event(on_sqlite)
    caught = (await in_memory.pokemons.get_events("pikachu", min_version=2, max_version=2))[0]
    recorded = (await in_memory.trainers.get_events("ash", min_version=2))[0]
    assert caught.timestamp == recorded.timestamp  # pushed as one group
    on_sqlite.close()


# -- the prev_aggregate guard ----------------------------------------------------------------------

PIKACHU_V2 = Pokemon("pikachu", 2, "Pikachu", 5, "caught", "ash")


@pytest.mark.parametrize(
    "prev, fits",
    [
        (PIKACHU_V2, True),
        (dataclasses.replace(PIKACHU_V2, version=1), False),  # stale
        (dataclasses.replace(PIKACHU_V2, version=3), False),  # from the future
        (dataclasses.replace(PIKACHU_V2, aggregate_id="eevee"), False),  # another aggregate
        (None, False),
        ({"aggregate_id": "pikachu", "version": 2}, False),  # no attributes to check
    ],
)
def test_is_prev_aggregate_of(prev, fits) -> None:
    assert is_prev_aggregate_of(prev, LEVELED_UP) is fits


def test_check_prev_aggregate_says_what_it_expected_and_what_it_got() -> None:
    check_prev_aggregate(PIKACHU_V2, LEVELED_UP)
    with pytest.raises(
        StalePrevAggregateError, match="must be pikachu at version 2, got pikachu at version 1"
    ):
        check_prev_aggregate(dataclasses.replace(PIKACHU_V2, version=1), LEVELED_UP)
    with pytest.raises(ValueError, match="got None"):
        check_prev_aggregate(None, LEVELED_UP)


async def test_a_checked_push_refuses_a_stale_aggregate_and_stores_nothing() -> None:
    pokedex = in_memory_pokedex()
    await tell_the_story(pokedex)
    store = pokedex.pokemons
    stale = (await store.get_aggregate("pikachu", max_version=3)).aggregate
    with pytest.raises(StalePrevAggregateError):
        await push_with_checked_prev_aggregate(
            store, pokemon_leveled_up("pikachu", version=5), prev_aggregate=stale
        )
    assert (await store.get_aggregate("pikachu")).aggregate.version == 4

    fresh = (await store.get_aggregate("pikachu")).aggregate
    event = pokemon_leveled_up("pikachu", version=5)
    result = await push_with_checked_prev_aggregate(store, event, prev_aggregate=fresh)
    assert result.next_aggregate == (await store.get_aggregate("pikachu")).aggregate
