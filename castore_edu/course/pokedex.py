"""The one domain of the course: Pokémon and their trainers.

Every notebook tells the same small story, so that a learner meets new *ideas* and never a new
domain. Two event stores:

- ``POKEMONS``: a Pokémon appears in the wild, gets caught by a trainer, levels up.
- ``TRAINERS``: a trainer starts their journey and records every Pokémon they catch.

Catching is the interesting moment: it changes *two* aggregates (the Pokémon is caught, the
trainer owns one more Pokémon). Notebook 06 pushes both events as one group, all or nothing.

Aggregates are frozen dataclasses. Frozen matters: a reducer must return a *new* aggregate and
never touch the old one, because the old one may still be in use — as somebody's
``prev_aggregate``, in a message already published, or at an earlier slider position of the
explorer. Each aggregate carries its ``version``: the version of the last event folded into it.
That one field is what lets :func:`is_prev_aggregate_of` tell a fresh aggregate from a stale one.

Event stores made here get a deterministic clock (:func:`castore_edu.core.clock.stepping_clock`) so
that every timestamp in the notebooks is the same on every run and on every machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from castore_edu.core.clock import Clock, stepping_clock
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail, EventType, PushEventResult
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from castore_edu.storage.protocol import EventStorageAdapter
from castore_edu.storage.sqlite import ClosedByWith, SQLiteEventStorageAdapter

POKEMONS = "POKEMONS"
TRAINERS = "TRAINERS"

# -- event types --------------------------------------------------------------------------

POKEMON_APPEARED = EventType("POKEMON_APPEARED")  # payload: {"name": str, "level": int}
POKEMON_CAUGHT = EventType("POKEMON_CAUGHT")  # payload: {"trainer_id": str}
POKEMON_LEVELED_UP = EventType("POKEMON_LEVELED_UP")  # no payload: the fact says it all
POKEMON_EVENT_TYPES = (POKEMON_APPEARED, POKEMON_CAUGHT, POKEMON_LEVELED_UP)

TRAINER_CREATED = EventType("TRAINER_CREATED")  # payload: {"name": str}
TRAINER_CAUGHT_POKEMON = EventType("TRAINER_CAUGHT_POKEMON")  # payload: {"pokemon_id": str}
TRAINER_EVENT_TYPES = (TRAINER_CREATED, TRAINER_CAUGHT_POKEMON)


# -- aggregates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pokemon:
    """A Pokémon as its events made it. ``status`` is ``"wild"`` until a trainer catches it."""

    aggregate_id: str
    version: int
    name: str
    level: int
    status: str = "wild"
    trainer_id: str | None = None


@dataclass(frozen=True)
class Trainer:
    """A trainer and the Pokémon they caught, in the order they caught them."""

    aggregate_id: str
    version: int
    name: str
    pokemon_ids: tuple[str, ...] = ()


class UnexpectedEventError(ValueError):
    """A reducer met an event that cannot happen at this point of an aggregate's life."""


# -- reducers -----------------------------------------------------------------------------


def pokemon_reducer(pokemon: Pokemon | None, event: EventDetail) -> Pokemon:
    """Fold one event into a Pokémon. Pure: same inputs, same output, nothing else touched.

    An event type this reducer does not know only moves the version on. Storage accepts types
    that were never declared (as Castore does), and a newer writer may know types an older
    reader does not: skipping them keeps old readers working.
    """
    if event.type == POKEMON_APPEARED.type:
        return Pokemon(
            aggregate_id=event.aggregate_id,
            version=event.version,
            name=event.payload["name"],
            level=event.payload["level"],
        )
    if pokemon is None:
        raise UnexpectedEventError(
            f"{event.type} (version {event.version}) before {event.aggregate_id} appeared"
        )
    if event.type == POKEMON_CAUGHT.type:
        return replace(
            pokemon, version=event.version, status="caught", trainer_id=event.payload["trainer_id"]
        )
    if event.type == POKEMON_LEVELED_UP.type:
        return replace(pokemon, version=event.version, level=pokemon.level + 1)
    return replace(pokemon, version=event.version)


def trainer_reducer(trainer: Trainer | None, event: EventDetail) -> Trainer:
    """Fold one event into a trainer (same rules as :func:`pokemon_reducer`)."""
    if event.type == TRAINER_CREATED.type:
        return Trainer(aggregate_id=event.aggregate_id, version=event.version, name=event.payload["name"])
    if trainer is None:
        raise UnexpectedEventError(
            f"{event.type} (version {event.version}) before trainer {event.aggregate_id} was created"
        )
    if event.type == TRAINER_CAUGHT_POKEMON.type:
        return replace(
            trainer,
            version=event.version,
            pokemon_ids=(*trainer.pokemon_ids, event.payload["pokemon_id"]),
        )
    return replace(trainer, version=event.version)


# -- events: small constructors that keep notebooks readable -------------------------------


def pokemon_appeared(pokemon_id: str, *, name: str, level: int, timestamp: str | None = None) -> EventDetail:
    """Version 1 of every Pokémon."""
    return EventDetail(
        aggregate_id=pokemon_id,
        version=1,
        type=POKEMON_APPEARED.type,
        timestamp=timestamp,
        payload={"name": name, "level": level},
    )


def pokemon_caught(
    pokemon_id: str, *, version: int, trainer_id: str, timestamp: str | None = None
) -> EventDetail:
    return EventDetail(
        aggregate_id=pokemon_id,
        version=version,
        type=POKEMON_CAUGHT.type,
        timestamp=timestamp,
        payload={"trainer_id": trainer_id},
    )


def pokemon_leveled_up(pokemon_id: str, *, version: int, timestamp: str | None = None) -> EventDetail:
    return EventDetail(
        aggregate_id=pokemon_id, version=version, type=POKEMON_LEVELED_UP.type, timestamp=timestamp
    )


def trainer_created(trainer_id: str, *, name: str, timestamp: str | None = None) -> EventDetail:
    """Version 1 of every trainer."""
    return EventDetail(
        aggregate_id=trainer_id,
        version=1,
        type=TRAINER_CREATED.type,
        timestamp=timestamp,
        payload={"name": name},
    )


def trainer_caught_pokemon(
    trainer_id: str, *, version: int, pokemon_id: str, timestamp: str | None = None
) -> EventDetail:
    return EventDetail(
        aggregate_id=trainer_id,
        version=version,
        type=TRAINER_CAUGHT_POKEMON.type,
        timestamp=timestamp,
        payload={"pokemon_id": pokemon_id},
    )


def level_ups(
    pokemon_id: str, *, first_version: int, count: int, timestamp: str | None = None
) -> Iterator[EventDetail]:
    """``count`` level-ups from ``first_version`` on: a quick way to grow a long history."""
    for version in range(first_version, first_version + count):
        yield pokemon_leveled_up(pokemon_id, version=version, timestamp=timestamp)


# -- event stores ---------------------------------------------------------------------------


def pokemons_event_store(event_storage_adapter: EventStorageAdapter | None = None) -> EventStore:
    """A ``POKEMONS`` store on the given adapter (or none yet: plug one in later)."""
    return EventStore(
        event_store_id=POKEMONS,
        event_types=POKEMON_EVENT_TYPES,
        reducer=pokemon_reducer,
        event_storage_adapter=event_storage_adapter,
    )


def trainers_event_store(event_storage_adapter: EventStorageAdapter | None = None) -> EventStore:
    """A ``TRAINERS`` store on the given adapter (or none yet)."""
    return EventStore(
        event_store_id=TRAINERS,
        event_types=TRAINER_EVENT_TYPES,
        reducer=trainer_reducer,
        event_storage_adapter=event_storage_adapter,
    )


@dataclass
class Pokedex(ClosedByWith):
    """The course's two event stores, side by side. ``close()`` releases SQLite connections."""

    pokemons: EventStore
    trainers: EventStore

    @property
    def stores(self) -> tuple[EventStore, EventStore]:
        return (self.pokemons, self.trainers)

    def close(self) -> None:
        """Close the SQLite adapters the stores use (in-memory ones need nothing).

        Closing an SQLite connection twice is harmless, so a shared adapter needs no bookkeeping.
        """
        for store in self.stores:
            if isinstance(store.event_storage_adapter, SQLiteEventStorageAdapter):
                store.event_storage_adapter.close()


def in_memory_pokedex(*, clock: Clock | None = None) -> Pokedex:
    """Both stores in memory, one adapter each, stamped by one shared deterministic clock.

    One adapter per store because the in-memory adapter, like Castore's, ignores the event
    store id: two stores on one adapter would mix their aggregates. One *clock* for both, so
    that timestamps follow the order of the story across the two stores.
    """
    clock = clock or stepping_clock()
    return Pokedex(
        pokemons=pokemons_event_store(InMemoryEventStorageAdapter(clock=clock)),
        trainers=trainers_event_store(InMemoryEventStorageAdapter(clock=clock)),
    )


def sqlite_pokedex(path: str = ":memory:", *, clock: Clock | None = None) -> Pokedex:
    """Both stores in one SQLite database file (rows are keyed by event store id).

    Sharing one adapter is what lets a group of events of both stores commit in one
    transaction. Close it with ``pokedex.close()`` (or use ``with``).
    """
    adapter = SQLiteEventStorageAdapter(path, clock=clock or stepping_clock())
    return Pokedex(pokemons=pokemons_event_store(adapter), trainers=trainers_event_store(adapter))


def postgres_pokedex(conninfo: str, *, clock: Clock | None = None) -> Pokedex:
    """Both stores in one PostgreSQL database (notebook 09), on one adapter, as on SQLite.

    Release its connection with ``await pokedex.pokemons.event_storage_adapter.close()``.
    """
    from castore_edu.storage.postgres import PostgresEventStorageAdapter  # needs the postgres extra

    adapter = PostgresEventStorageAdapter(conninfo, clock=clock or stepping_clock())
    return Pokedex(pokemons=pokemons_event_store(adapter), trainers=trainers_event_store(adapter))


async def tell_the_story(pokedex: Pokedex) -> None:
    """The opening scene every notebook can start from.

    Pikachu (level 5) and Charmander (level 3) appear; Ash starts his journey and catches
    Pikachu (two events, one in each store, pushed as one group); Pikachu levels up twice.
    Afterwards: Pikachu at version 4 (level 7, caught by Ash), Charmander at version 1,
    Ash at version 2.
    """
    pokemons, trainers = pokedex.pokemons, pokedex.trainers
    await pokemons.push_event(pokemon_appeared("pikachu", name="Pikachu", level=5))
    await pokemons.push_event(pokemon_appeared("charmander", name="Charmander", level=3))
    await trainers.push_event(trainer_created("ash", name="Ash"))
    await EventStore.push_event_group(
        pokemons.group_event(pokemon_caught("pikachu", version=2, trainer_id="ash")),
        trainers.group_event(trainer_caught_pokemon("ash", version=2, pokemon_id="pikachu")),
    )
    for event in level_ups("pikachu", first_version=3, count=2):
        await pokemons.push_event(event)


# -- the prev_aggregate guard ---------------------------------------------------------------


class StalePrevAggregateError(ValueError):
    """A ``prev_aggregate`` that is not the state right before the event being pushed."""


def is_prev_aggregate_of(prev_aggregate: Any, event: EventDetail) -> bool:
    """True when ``prev_aggregate`` can be the state right before ``event``.

    The store trusts whatever ``prev_aggregate`` it is given and folds the new event into it.
    An aggregate read a while ago (from a cache, say) may have missed events since: the result
    is a wrong ``next_aggregate`` and, on a state-carrying channel, a wrong message. Checking the
    id and that its version is exactly ``event.version - 1`` is cheap and catches that; if the
    push then succeeds, no other event can have slipped in between (that version would be
    taken). It cannot catch an aggregate that was *built* wrongly with the right version.
    """
    return (
        prev_aggregate is not None
        and getattr(prev_aggregate, "aggregate_id", None) == event.aggregate_id
        and getattr(prev_aggregate, "version", None) == event.version - 1
    )


def check_prev_aggregate(prev_aggregate: Any, event: EventDetail) -> None:
    """Raise :class:`StalePrevAggregateError` unless :func:`is_prev_aggregate_of` holds."""
    if not is_prev_aggregate_of(prev_aggregate, event):
        found = (
            "None"
            if prev_aggregate is None
            else f"{getattr(prev_aggregate, 'aggregate_id', '?')} at version {getattr(prev_aggregate, 'version', '?')}"
        )
        raise StalePrevAggregateError(
            f"prev_aggregate must be {event.aggregate_id} at version {event.version - 1}, got {found}"
        )


async def push_with_checked_prev_aggregate(
    store: Any, event: EventDetail, *, prev_aggregate: Any
) -> PushEventResult:
    """``store.push_event(event, prev_aggregate=...)``, refusing a stale ``prev_aggregate`` first.

    Nothing is stored when the check fails. ``store`` is an event store or a connected one.
    """
    check_prev_aggregate(prev_aggregate, event)
    result: PushEventResult = await store.push_event(event, prev_aggregate=prev_aggregate)
    return result
