"""Castore's core Pokémon fixture, shared by the test modules (``from tests.pokemon import ...``).

It mirrors ``core/src/eventStore/eventStore.fixtures.test.ts``: one store, ``POKEMONS``, three
event types, and the three events of Pikachu's life with year-only timestamps (timestamps are
compared as plain strings, so ``"2022" < "2023"`` is all the fixture needs).

Events are frozen, so sharing them between tests is safe. Event stores are mutable (their
adapter and ``on_event_pushed`` can be swapped), so each test makes its own with
:func:`pokemons_event_store`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from castore_edu import EventDetail, EventStorageAdapter, EventStore, EventType, PushEventResult

POKEMONS = "POKEMONS"
PIKACHU_ID = "pikachuId"

POKEMON_APPEARED = EventType("POKEMON_APPEARED")
POKEMON_CAUGHT = EventType("POKEMON_CAUGHT")
POKEMON_LEVELED_UP = EventType("POKEMON_LEVELED_UP")
POKEMON_EVENT_TYPES = (POKEMON_APPEARED, POKEMON_CAUGHT, POKEMON_LEVELED_UP)

PIKACHU_APPEARED = EventDetail(
    aggregate_id=PIKACHU_ID,
    version=1,
    type="POKEMON_APPEARED",
    timestamp="2022",
    payload={"name": "Pikachu", "level": 42},
)
PIKACHU_CAUGHT = EventDetail(aggregate_id=PIKACHU_ID, version=2, type="POKEMON_CAUGHT", timestamp="2023")
PIKACHU_LEVELED_UP = EventDetail(
    aggregate_id=PIKACHU_ID, version=3, type="POKEMON_LEVELED_UP", timestamp="2024"
)
PIKACHU_EVENTS = (PIKACHU_APPEARED, PIKACHU_CAUGHT, PIKACHU_LEVELED_UP)

CHARIZARD_LEVELED_UP = EventDetail(
    aggregate_id="charizard1", version=3, type="POKEMON_LEVELED_UP", timestamp="2024"
)


@dataclass(frozen=True)
class PokemonAggregate:
    aggregate_id: str
    version: int
    name: str
    level: int
    status: str


def pokemons_reducer(pokemon: PokemonAggregate | None, event: EventDetail) -> PokemonAggregate:
    """Appeared creates a wild Pokémon, caught catches it, levelled-up adds one level.

    Any other event type only moves the version on, as in Castore's fixture.
    """
    match event.type:
        case "POKEMON_APPEARED":
            return PokemonAggregate(
                aggregate_id=event.aggregate_id,
                version=event.version,
                name=event.payload["name"],
                level=event.payload["level"],
                status="wild",
            )
        case "POKEMON_CAUGHT":
            return replace(pokemon, version=event.version, status="caught")
        case "POKEMON_LEVELED_UP":
            return replace(pokemon, version=event.version, level=pokemon.level + 1)
        case _:
            return replace(pokemon, version=event.version)


def pokemons_event_store(
    event_storage_adapter: EventStorageAdapter | None = None, **options: Any
) -> EventStore:
    """A fresh ``POKEMONS`` store; ``options`` go to :class:`EventStore` (``on_event_pushed``…)."""
    return EventStore(
        event_store_id=POKEMONS,
        event_types=POKEMON_EVENT_TYPES,
        reducer=pokemons_reducer,
        event_storage_adapter=event_storage_adapter,
        **options,
    )


def pikachu_after(events: Iterable[EventDetail]) -> PokemonAggregate | None:
    """Pikachu's state after ``events``, folded by hand (independent of ``build_aggregate``)."""
    aggregate = None
    for event in events:
        aggregate = pokemons_reducer(aggregate, event)
    return aggregate


class PushRecorder:
    """An ``on_event_pushed`` callback that keeps every result it is awaited with.

    With a ``delay`` it sleeps first, so a caller that does not await it sees nothing.
    """

    def __init__(self, delay: float = 0) -> None:
        self.delay = delay
        self.results: list[PushEventResult] = []

    async def __call__(self, result: PushEventResult) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.results.append(result)

    @property
    def versions(self) -> list[int]:
        return [result.event.version for result in self.results]
