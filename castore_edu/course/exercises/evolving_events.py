"""The self-check of exercise 13 (``notebooks/exercises/08_evolving_events.ipynb``): an upcaster.

``POKEMON_SIGHTED`` is a Pokédex entry: a trainer saw a Pokémon somewhere. Version 1 of its
payload said ``{"name": "Pidgey", "level": 3, "place": "Route 1, Kanto"}``; version 2 says
``{"species": "Pidgey", "level": 3, "route": "Route 1", "region": "Kanto"}``. Some old events
also carry fields that nobody declared (``"shiny"``, ``"weather"``): an upcaster must keep them.

The learner writes ``sighted_v1_to_v2(event)``. The check gives it old events, as they were
stored — a deep copy each, to see whether the upcaster changed what it was given — and compares
what comes back with what today's code must read. The cases close the doors a wrong answer
passes through by luck: a sighting in Johto (a region copied from the example is caught), one
above today's level cap (a rule applied to history is caught), one with fields the upcaster does
not know. Then it runs the upcaster where it lives, declared on the event type of a store whose
storage holds the old events, and checks that reading left them as stored.

Each wrong answer a learner would plausibly write gets a hint that names the mistake;
``instructor/tests/test_exercises.py`` proves each one is refused.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from castore_edu.core.errors import UpcastError
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail, EventType
from castore_edu.course.exercises.feedback import Exercise, attempt, expect, not_yet, passed
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter

UPCASTER = Exercise(13, "Write an upcaster")

POKEMON_SIGHTED = "POKEMON_SIGHTED"
# Today's game caps the level of a new sighting: a rule for the command that records one.
LEVEL_CAP = 50


def pokemon_sighted(
    pokemon_id: str, *, version: int = 1, timestamp: str = "2023-05-01T00:00:00.000Z", **payload: Any
) -> EventDetail:
    """A ``POKEMON_SIGHTED`` event as last year's release stored it (schema version 1)."""
    return EventDetail(
        aggregate_id=pokemon_id,
        version=version,
        type=POKEMON_SIGHTED,
        timestamp=timestamp,
        payload=payload,
        metadata={"by": "professor-oak"},
    )


# (old event, the payload of version 2 it must become)
CASES = [
    (
        pokemon_sighted("pidgey", name="Pidgey", level=3, place="Route 1, Kanto"),
        {"species": "Pidgey", "level": 3, "route": "Route 1", "region": "Kanto"},
    ),
    (
        pokemon_sighted("sentret", version=2, name="Sentret", level=2, place="Route 29, Johto"),
        {"species": "Sentret", "level": 2, "route": "Route 29", "region": "Johto"},
    ),
    (
        pokemon_sighted("pikachu", name="Pikachu", level=4, place="Viridian Forest, Kanto", shiny=True),
        {"species": "Pikachu", "level": 4, "route": "Viridian Forest", "region": "Kanto", "shiny": True},
    ),
    (
        pokemon_sighted("onix", version=3, name="Onix", level=70, place="Rock Tunnel, Kanto", weather="fog"),
        {"species": "Onix", "level": 70, "route": "Rock Tunnel", "region": "Kanto", "weather": "fog"},
    ),
]
RENAMED = {"name": "species"}
DERIVED = ("route", "region")


def _short(value: Any, limit: int = 110) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _payload_hint(old: dict[str, Any], got: dict[str, Any], expected: dict[str, Any]) -> tuple[str, str]:
    """What is wrong with the upcaster's payload, and a hint that names the mistake."""
    if "species" not in got or "name" in got:
        return (
            "version 2 names the Pokémon's species `species`; version 1 called it `name`.",
            'rename the field: "species" takes the value of payload["name"], and "name" is gone.',
        )
    if "place" in got:
        return (
            "version 2 has no `place`: it became `route` and `region`.",
            'split payload["place"] into "route" and "region", and leave "place" out.',
        )
    dropped = sorted(set(expected) - set(got))
    if dropped:
        return (
            f"your upcaster dropped {', '.join(map(repr, dropped))}, a field version 1 carried and "
            "your upcaster does not know.",
            "keep every field you do not change: start from the old payload (a copy), then rename and split.",
        )
    if got.get("region") == "Kanto" != expected["region"]:  # the example's region, copied
        return (
            f"{expected['species']} was sighted in {expected['region']}, but your upcaster says "
            f"{got.get('region')!r}.",
            'the region is derived from the old event\'s place (the part after the last ", "), '
            "never hard-coded: old events come from every region.",
        )
    if any(got.get(name) != expected[name] for name in DERIVED):
        return (
            "the route and the region do not match the old event's place.",
            'derive both from payload["place"]: "Route 29, Johto" → route "Route 29", region "Johto" '
            '(place.rsplit(", ", 1)).',
        )
    if got.get("level") != expected["level"]:
        return (
            f"{expected['species']} was sighted at level {expected['level']}, but your upcaster says "
            f"{got.get('level')!r}.",
            "an upcaster changes the shape of a fact, never the fact: today's rules (the level cap) "
            "belong in the command that records new sightings, not in reading history.",
        )
    return (
        "the payload of version 2 is not what today's code must read.",
        "compare with the example above the task, field by field.",
    )


async def check_sighting_upcaster(upcaster: Callable[[EventDetail], Any]) -> None:
    """Give ``upcaster`` old sightings, then read them through an event store that declares it."""
    ex = UPCASTER
    for old, expected_payload in CASES:
        given = copy.deepcopy(old)
        doing = f"sighted_v1_to_v2({old.aggregate_id}'s old event)"
        result = await attempt(ex, doing, functools.partial(upcaster, given))
        expect(
            isinstance(result, EventDetail),
            ex,
            f"your upcaster returned {_short(result)}, not an event.",
            hint="return a new EventDetail: dataclasses.replace(event, payload=..., schema_version=2).",
        )
        expect(
            given.payload == old.payload,
            ex,
            "your upcaster changed the payload of the event it was given.",
            expected=f"the old event left as it was: {_short(old.payload)}",
            got=_short(given.payload),
            hint="build a new payload (a copy of the old one, then your changes): a stored event is history, "
            "and the store may hand the same object to other readers.",
        )
        expect(
            result.schema_version == 2,
            ex,
            f"the event your upcaster returned says schema_version={result.schema_version!r}.",
            expected="schema_version=2: the shape it now has",
            hint="say which version you made: dataclasses.replace(event, ..., schema_version=2).",
        )
        moved = [
            name
            for name in ("aggregate_id", "version", "timestamp", "type", "metadata")
            if getattr(result, name) != getattr(old, name)
        ]
        expect(
            not moved,
            ex,
            f"your upcaster changed {' and '.join(moved)} of the event.",
            hint="an upcaster changes the payload's shape, nothing else: dataclasses.replace(event, ...) "
            "keeps the other fields.",
        )
        if result.payload != expected_payload:
            got_payload = result.payload if isinstance(result.payload, dict) else {}
            problem, hint = _payload_hint(old.payload, got_payload, expected_payload)
            not_yet(ex, problem, expected=_short(expected_payload), got=_short(result.payload), hint=hint)
    await _read_through_a_store(ex, upcaster)
    passed(ex, "old sightings read in version 2, unknown fields kept, history left as stored.")


async def _read_through_a_store(ex: Exercise, upcaster: Callable[[EventDetail], Any]) -> None:
    """The upcaster where it lives: declared on the type, run by the store on every read."""
    storage = InMemoryEventStorageAdapter()
    stored = [await storage.push_event(old, event_store_id="POKEDEX") for old, _ in CASES]
    today = EventDetail(
        aggregate_id="mew",
        version=1,
        type=POKEMON_SIGHTED,
        timestamp="2024-05-01T00:00:00.000Z",
        payload={"species": "Mew", "level": 30, "route": "Route 3", "region": "Kanto"},
    )
    pokedex = EventStore(
        event_store_id="POKEDEX",
        event_types=[EventType(POKEMON_SIGHTED, schema_version=2, upcasters={1: upcaster})],
        reducer=lambda seen, event: {**(seen or {}), event.aggregate_id: event.payload["species"]},
        event_storage_adapter=storage,
    )
    written = (await pokedex.push_event(today)).event
    read = await attempt(
        ex,
        "reading the old sightings through an event store",
        lambda: _read_all(pokedex, [*CASES, (today, today.payload)]),
        allow=(UpcastError,),
    )
    if isinstance(read, UpcastError):
        not_yet(ex, f"the event store could not use your upcaster: {read}")
    expect(
        read == [payload for _, payload in CASES] + [today.payload] and written.schema_version == 2,
        ex,
        "read through an event store, the sightings are not what today's code must read.",
        got=_short(read),
    )
    after = [
        event
        for old, _ in CASES
        for event in await storage.get_events(old.aggregate_id, event_store_id="POKEDEX")
    ]
    expect(
        after == stored,
        ex,
        "reading changed the stored events.",
        hint="an upcaster returns a new event and leaves the one it was given alone.",
    )


async def _read_all(store: EventStore, cases: list[tuple[EventDetail, Any]]) -> list[Any]:
    payloads: list[Any] = []
    for old, _ in cases:
        events = await store.get_events(old.aggregate_id)
        payloads.extend(event.payload for event in events)
    return payloads
