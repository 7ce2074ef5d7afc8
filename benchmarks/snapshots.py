"""``python -m benchmarks.snapshots`` — ``get_aggregate`` of a long aggregate, with a snapshot and without.

Pikachu has 10,000 events (``--quick``: 1,000), a Pokédex reducer folds them into a ``Pokemon``
dataclass. Three ways to read it, on each storage:

- **without snapshots**: read and fold every event;
- **snapshot 99 events back** (at 9,901): the most that reads coming often fold under
  ``EveryNEvents(100)``, which saves a new snapshot as soon as a read passes a multiple of 100;
- **snapshot at the last event**: the best case (read one event, fold none).

The snapshots are placed first, and the timed reads save none (their policy is never due), so
every round reads the same thing.

The target is the worst case at ≤ 0.05 × the time without. In memory, on SQLite (events and
snapshots in one file) and, with ``--postgres``, on a private PostgreSQL server
(``castore_edu.testing.servers``; ``CASTORE_EDU_POSTGRES_URL`` for your own, in a schema of its own,
dropped after). The variants take turns within each round (``benchmarks.peers.median_seconds``).
Prints the table and the ratio; asserts nothing but that every read returns the same Pikachu.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from benchmarks.peers import median_seconds
from castore_edu import (
    EventStore,
    InMemoryEventStorageAdapter,
    InMemorySnapshotStore,
    PostgresSnapshotStore,
    Snapshot,
    SnapshotConfig,
    SQLiteEventStorageAdapter,
    SQLiteSnapshotStore,
)
from castore_edu.course.pokedex import Pokemon, level_ups, pokemon_appeared, pokemons_event_store
from castore_edu.snapshots.protocol import SnapshotStore

TARGET = 0.05
BEHIND = 99  # events after the snapshot: the most EveryNEvents(100) leaves to reads that come often
BATCH = 1_000  # events per push_event_group while seeding


@dataclass(frozen=True)
class SnapshotRow:
    """Median milliseconds per ``get_aggregate`` on one storage, and the events each read returned."""

    storage: str
    size: int
    ms_without: float
    ms_behind: float
    ms_at_last: float
    events_read: dict[str, int]

    @property
    def ratio(self) -> float:
        """The worst case of the policy against no snapshot: the figure the target is about."""
        return self.ms_behind / self.ms_without


def history(size: int) -> list[Any]:
    return [
        pokemon_appeared("pikachu", name="Pikachu", level=1),
        *level_ups("pikachu", first_version=2, count=size - 1),
    ]


async def seed(store: EventStore, events: list[Any]) -> None:
    for start in range(0, len(events), BATCH):
        await EventStore.push_event_group(
            *(store.group_event(event) for event in events[start : start + BATCH])
        )


def decode_pokemon(data: Any) -> Pokemon:
    return Pokemon(**data)


class NoNewSnapshots:
    """A policy never due: the timed reads use the snapshots placed for them and save none."""

    def due(self, *, from_version: int, to_version: int) -> bool:
        return False


async def measure(
    storage: str, adapter: Any, snapshots: SnapshotStore, size: int, rounds: int
) -> SnapshotRow:
    """Seed ``size`` events, place the two snapshots, then time the three reads in turns."""
    plain = pokemons_event_store(adapter)
    await seed(plain, history(size))
    reading: dict[str, EventStore] = {"without": plain}
    # One reducer version per variant, so that each finds only the snapshot placed for it.
    for name, version in (("behind", size - BEHIND), ("last", size)):
        aggregate = (await plain.get_aggregate("pikachu", max_version=version)).aggregate
        await snapshots.save("POKEMONS", Snapshot("pikachu", version, name, aggregate))
        reading[name] = pokemons_event_store(adapter)
        reading[name].snapshots = SnapshotConfig(snapshots, reducer_version=name, policy=NoNewSnapshots())

    expected = (await plain.get_aggregate("pikachu")).aggregate
    assert expected == Pokemon("pikachu", size, "Pikachu", size)
    events_read: dict[str, int] = {}

    def timed(name: str, store: EventStore) -> Callable[[], Any]:
        async def one_read() -> float:
            started = time.perf_counter()
            result = await store.get_aggregate("pikachu")
            elapsed = time.perf_counter() - started
            assert result.aggregate == expected
            events_read[name] = len(result.events) + (result.snapshot_version is not None)
            return elapsed

        return one_read

    medians = await median_seconds(rounds, {name: timed(name, store) for name, store in reading.items()})
    return SnapshotRow(
        storage,
        size,
        ms_without=medians["without"] * 1000,
        ms_behind=medians["behind"] * 1000,
        ms_at_last=medians["last"] * 1000,
        events_read=events_read,
    )


@asynccontextmanager
async def postgres_storage(server_url: str) -> AsyncIterator[Any]:
    """A PostgreSQL adapter in a fresh schema of ``server_url``'s database, dropped afterwards."""
    import psycopg
    import psycopg.conninfo

    from castore_edu.storage.postgres import PostgresEventStorageAdapter

    schema = f"castore_edu_bench_snapshots_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        conninfo = psycopg.conninfo.make_conninfo(server_url, options=f"-c search_path={schema}")
        async with PostgresEventStorageAdapter(conninfo) as adapter:
            yield adapter
    finally:
        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


async def run_all(size: int, rounds: int, postgres_server: str | None) -> list[SnapshotRow]:
    rows = [await measure("in memory", InMemoryEventStorageAdapter(), InMemorySnapshotStore(), size, rounds)]
    with (
        tempfile.TemporaryDirectory() as directory,
        SQLiteEventStorageAdapter(os.path.join(directory, "pokedex.sqlite")) as adapter,
    ):
        store = SQLiteSnapshotStore(adapter, decode_aggregate=decode_pokemon)
        rows.append(await measure("SQLite (one file)", adapter, store, size, rounds))
    if postgres_server is not None:
        async with postgres_storage(postgres_server) as adapter:
            store = PostgresSnapshotStore(adapter, decode_aggregate=decode_pokemon)
            rows.append(await measure("PostgreSQL", adapter, store, size, rounds))
    return rows


def print_table(rows: list[SnapshotRow], print_fn: Callable[[str], Any]) -> None:
    print_fn(
        "| storage | events | without snapshots | snapshot 99 events back | snapshot at the last event "
        f"| ratio (99 back / without) | target ≤ {TARGET:g} |"
    )
    print_fn("|---|---:|---:|---:|---:|---:|:---:|")
    for row in rows:
        read = row.events_read
        print_fn(
            f"| {row.storage} | {row.size:,} | {row.ms_without:,.2f} ms ({read['without']:,} read) "
            f"| {row.ms_behind:,.3f} ms ({read['behind']:,} read) | {row.ms_at_last:,.3f} ms ({read['last']:,} read) "
            f"| {row.ratio:.4f} | {'met' if row.ratio <= TARGET else 'NOT met'} |"
        )


def run(
    quick: bool = False,
    print_fn: Callable[[str], Any] = print,
    postgres: bool = False,
    postgres_server: str | None = None,
) -> list[SnapshotRow]:
    """The table for 10,000 events (1,000 with ``quick``). ``postgres`` starts a private server
    (or uses ``CASTORE_EDU_POSTGRES_URL``); ``postgres_server`` names one to use instead."""
    size, rounds = (1_000, 3) if quick else (10_000, 15)
    started = time.perf_counter()
    if postgres and postgres_server is None:
        from castore_edu.testing.servers import postgres_url

        with postgres_url() as server_url:
            rows = asyncio.run(run_all(size, rounds, server_url))
    else:
        rows = asyncio.run(run_all(size, rounds, postgres_server))
    print_fn(
        f"get_aggregate of a {size:,}-event Pokémon, median of {rounds} rounds taken in turns; "
        "snapshots placed beforehand"
    )
    print_table(rows, print_fn)
    for row in rows:
        print_fn(f"{row.storage}: a snapshot 99 events back reads in {row.ratio:.4f} × the time without")
    print_fn(f"(ran in {time.perf_counter() - started:.0f} s)")
    return rows


def main(argv: list[str] | None = None) -> list[SnapshotRow]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("--quick", action="store_true", help="1,000 events and 3 rounds: a smoke test")
    parser.add_argument("--postgres", action="store_true", help="also on a private PostgreSQL server")
    options = parser.parse_args(argv)
    return run(quick=options.quick, print_fn=lambda line: print(line, flush=True), postgres=options.postgres)


if __name__ == "__main__":
    main(sys.argv[1:])
