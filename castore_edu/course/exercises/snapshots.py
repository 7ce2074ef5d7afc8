"""The self-check of exercise 12: a read that starts from a snapshot, written by hand (notebook 12).

The learner's ``get_aggregate_from_snapshots(event_store, snapshots, aggregate_id, *,
reducer_version, max_version=None)`` gets what ``EventStore.get_aggregate`` has inside when it is
given ``snapshots=``: an event store (no snapshots of its own) and the snapshots a store kept for
one Pokémon, of two reducer versions, in no particular order. It must return the aggregate at
``max_version`` — the same as a fold of every event — while reading only the events after the
latest snapshot that fits.

The check closes the doors a wrong answer would slip through by luck:

- **the store's reducer works in place** (it changes the dict it is given and returns it, a common
  Python habit): folding from a snapshot's own aggregate, without a copy, changes the kept
  snapshot, and the check compares every snapshot with its copy after each call;
- **a snapshot of another reducer version is the newest one**, and it holds another answer (that
  reducer counted each level-up twice): a read that ignores the version returns its levels;
- **a snapshot lies after some of the max_versions asked**, so a read that picks the newest
  snapshot whatever ``max_version`` says returns a version after it;
- **the snapshots come shuffled**, so the first one that fits is not the latest;
- **the storage counts the events it returns**, so a read that gets every event and slices, or
  starts at the snapshot's own version, shows — and folding that event twice adds a level.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail, EventType
from castore_edu.course.exercises.feedback import Exercise, attempt, expect, not_yet, passed
from castore_edu.course.pokedex import POKEMON_APPEARED, POKEMON_LEVELED_UP, level_ups, pokemon_appeared
from castore_edu.snapshots.protocol import Snapshot
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from castore_edu.testing.latency import SimulatedLatencyAdapter

SNAPSHOT_READ = Exercise(12, "Read an aggregate from a snapshot")

PIKACHU_EVENTS = 60
# (version, reducer version) of the snapshots the learner gets, in this (shuffled) order.
KEPT = [(20, "v1"), (50, "v2"), (40, "v1"), (10, "v1"), (30, "v1")]
# The reads the check makes: (reducer_version, max_version), and the snapshot each should start from.
READS: list[tuple[str, int | None, int | None]] = [
    ("v1", 35, 30),
    ("v1", None, 40),
    ("v1", 25, 20),
    ("v1", 45, 40),
    ("v1", 7, None),  # no snapshot at or before 7
    ("v3", None, None),  # no snapshot of that version
]


def pokemon_reducer_in_place(pokemon: dict[str, Any] | None, event: EventDetail) -> dict[str, Any]:
    """The exercise store's reducer: a Pokémon as a dict, changed in place and returned."""
    if event.type == POKEMON_APPEARED.type:
        return {"id": event.aggregate_id, "version": event.version, "level": event.payload["level"]}
    assert pokemon is not None, f"{event.type} before the Pokémon appeared"
    pokemon["version"] = event.version
    if event.type == POKEMON_LEVELED_UP.type:
        pokemon["level"] += 1
    return pokemon


def twice_the_level_ups(pokemon: dict[str, Any] | None, event: EventDetail) -> dict[str, Any]:
    """Reducer version "v2", kept by the store from an experiment: every level-up counted twice."""
    folded = pokemon_reducer_in_place(pokemon, event)
    if event.type == POKEMON_LEVELED_UP.type:
        folded["level"] += 1
    return folded


def snapshot_store_exercise() -> tuple[EventStore, SimulatedLatencyAdapter, list[Snapshot]]:
    """Pikachu with 60 events (level 1 + 59 level-ups) on counting storage, and its kept snapshots."""
    history = [
        pokemon_appeared("pikachu", name="Pikachu", level=1),
        *level_ups("pikachu", first_version=2, count=PIKACHU_EVENTS - 1),
    ]
    counting = SimulatedLatencyAdapter(
        InMemoryEventStorageAdapter(history, event_store_id="POKEMONS"), latency_ms=0
    )
    store = EventStore(
        event_store_id="POKEMONS",
        event_types=[EventType(POKEMON_APPEARED.type), EventType(POKEMON_LEVELED_UP.type)],
        reducer=pokemon_reducer_in_place,
        event_storage_adapter=counting,
    )
    reducers = {"v1": pokemon_reducer_in_place, "v2": twice_the_level_ups}
    snapshots = []
    for version, reducer_version in KEPT:
        aggregate = None
        for event in history[:version]:
            aggregate = reducers[reducer_version](aggregate, event)
        snapshots.append(Snapshot("pikachu", version, reducer_version, aggregate))
    return store, counting, snapshots


def the_truth(max_version: int | None) -> dict[str, Any]:
    """Pikachu folded from every event up to ``max_version``: what any right read returns."""
    version = PIKACHU_EVENTS if max_version is None else max_version
    return {"id": "pikachu", "version": version, "level": version}


def diagnose(result: Any, max_version: int | None, start: int | None, events_read: int) -> str | None:
    """What the learner's read did wrong, in a hint that names the mistake; ``None`` if nothing."""
    truth = the_truth(max_version)
    if not isinstance(result, dict) or set(result) != set(truth):
        return (
            f"return the aggregate itself (a dict like {truth!r}), "
            f"not {type(result).__name__}: the fold of the events onto the snapshot's aggregate"
        )
    if max_version is not None and result["version"] > max_version:
        if result["version"] in {version for version, _ in KEPT}:
            return (
                f"your read started from the snapshot at {result['version']}, after max_version: "
                "use only snapshots with version <= max_version"
            )
        return "your read went past max_version: pass max_version to get_events too"
    if result == {**truth, "level": truth["level"] + 1}:
        return (
            "the event at the snapshot's own version was folded again (one level too many): "
            "the snapshot already holds it, so read from min_version=snapshot.version + 1"
        )
    if result["level"] > result["version"]:  # only reducer v2 counts more levels than events
        return (
            "your read started from the snapshot of reducer version 'v2' (its levels are "
            "another reducer's): use only snapshots with snapshot.reducer_version == reducer_version"
        )
    if result == {**truth, "level": truth["level"] - 1}:
        return (
            "the first event after the snapshot was skipped (one level short): "
            "read from min_version=snapshot.version + 1"
        )
    if result != truth:
        return f"the aggregate should be {truth!r}, the fold of every event up to max_version"
    needed = truth["version"] - (start or 0)
    if events_read > needed:
        if start is not None and events_read == truth["version"]:
            return (
                f"your read got all {events_read} events, where the {needed} after the "
                f"snapshot at {start} suffice: read only those (get_events with min_version)"
            )
        return (
            f"your read got {events_read} events, where {needed} suffice: start from the "
            f"latest snapshot that fits (the highest version{'' if start is None else f', here {start}'})"
        )
    return None


async def check_fold_from_snapshot(get_aggregate_from_snapshots: Callable[..., Any]) -> None:
    """Read Pikachu six ways (several max_versions, an unknown reducer version), checking the value,
    the events read and the kept snapshots after each."""
    ex = SNAPSHOT_READ
    store, counting, snapshots = snapshot_store_exercise()
    pristine = copy.deepcopy(snapshots)

    def read(reducer_version: str, max_version: int | None) -> Any:
        return get_aggregate_from_snapshots(
            store, snapshots, "pikachu", reducer_version=reducer_version, max_version=max_version
        )

    for reducer_version, max_version, start in READS:
        call = f"get_aggregate_from_snapshots(..., reducer_version={reducer_version!r}, max_version={max_version!r})"
        counting.reset_counts()
        result = await attempt(
            ex, call, functools.partial(read, reducer_version, max_version), allow=(ValueError, IndexError)
        )
        if isinstance(result, ValueError | IndexError):
            not_yet(
                ex,
                f"{call} raised {type(result).__name__}: {result}",
                hint="when no snapshot fits (none of this reducer version, or none at or before max_version), "
                "fold every event up to max_version instead"
                if start is None
                else "read the error: it comes from your code (or from what your code called).",
            )
        changed = [kept for kept, before in zip(snapshots, pristine, strict=True) if kept != before]
        if changed:
            not_yet(
                ex,
                f"after {call}, a kept snapshot has changed: the store's reducer changes the aggregate it is "
                "given, in place, and yours was the snapshot's own.",
                expected=f"the snapshot at {changed[0].version} as it was kept",
                got=short_dict(changed[0].aggregate),
                hint="fold onto a copy of the snapshot's aggregate (copy.deepcopy(snapshot.aggregate)), as a "
                "snapshot store does: a snapshot must never change",
            )
        expect(
            counting.counts.reads <= 1,
            ex,
            f"{call} read the storage {counting.counts.reads} times; one read of the events after the "
            "snapshot is enough.",
        )
        mistake = diagnose(result, max_version, start, counting.counts.events_read)
        if mistake is not None:
            truth = the_truth(max_version)
            not_yet(
                ex,
                f"{call} returned {short_dict(result)} after reading {counting.counts.events_read} events.",
                expected=f"{truth!r}, reading {truth['version'] - (start or 0)} events",
                hint=mistake,
            )
    passed(
        ex,
        "every read started from the latest snapshot that fits, read only the events after it, "
        "and left the snapshots as they were.",
    )


def short_dict(value: Any, limit: int = 90) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
