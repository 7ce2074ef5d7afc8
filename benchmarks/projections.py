"""``python -m benchmarks.projections`` — a projection's throughput against the relay's, on SQLite
and PostgreSQL.

Both follow the same ordered log, filled beforehand (one aggregate of ``INCREMENTED`` events, in
groups of 1,000), and both keep a checkpoint in the events' own database. What they do with each
batch differs:

- the **projection** (``SQLiteProjectionRunner``, ``PostgresProjectionRunner``) applies each event
  to a read model — one ``INSERT ... ON CONFLICT DO UPDATE`` that adds the event's ``by`` to its
  counter — and moves its checkpoint, **in one transaction per batch**;
- the **relay** (``Relay``) publishes each event on an in-memory bus with one no-op handler, then
  saves its checkpoint (one commit per batch).

So both pay one durable commit per batch; the projection adds a statement per event inside the
transaction, the relay a message and a delivery per event outside any. Each variant takes a new
name (a new checkpoint, and for the projection a new table) on the same filled log, and is timed
over ``steps`` batches: from the first read to the last commit (for the relay, until the bus is
idle). Variants take turns round after round (``benchmarks.peers.median_seconds``); the figure is
the median. PostgreSQL runs on a private server (``castore_edu.testing.servers``; durable
commits). Prints a table and asserts nothing; ``--quick`` is a smoke test.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from benchmarks.core import counter_store
from benchmarks.peers import Timed, median_seconds
from benchmarks.relay import bus_for, fill_log
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import LoggedEvent
from castore_edu.projections.projection import Projection
from castore_edu.projections.runner import ProjectionRunner
from castore_edu.projections.sqlite import SQLiteProjectionRunner
from castore_edu.reliability.relay import Relay
from castore_edu.storage.protocol import close_adapter
from castore_edu.storage.sqlite import SQLiteEventStorageAdapter

COUNT = "INSERT INTO {table} (aggregate_id, total) VALUES (%s, %s) ON CONFLICT (aggregate_id) DO UPDATE SET total = {table}.total + excluded.total"
TABLE = "CREATE TABLE IF NOT EXISTS {table} (aggregate_id TEXT PRIMARY KEY, total BIGINT NOT NULL)"


@dataclass(frozen=True)
class Sizes:
    log_events: int
    rounds: int
    events_per_batch_size: dict[int, int]  # batch size -> events timed


FULL = {
    "SQLite": Sizes(6_000, 5, {1: 300, 10: 1_000, 100: 5_000, 500: 5_000}),
    "PostgreSQL": Sizes(6_000, 5, {1: 300, 10: 1_000, 100: 5_000, 500: 5_000}),
}
QUICK = {
    "SQLite": Sizes(600, 1, {1: 20, 100: 500}),
    "PostgreSQL": Sizes(600, 1, {1: 20, 100: 500}),
}


@dataclass(frozen=True)
class Row:
    database: str
    batch_size: int
    events: int
    projection: float  # events/s
    relay: float  # events/s

    @property
    def ratio(self) -> float:
        return self.projection / self.relay


_names = itertools.count(1)


def sqlite_projection(store: EventStore) -> Projection:
    table = f"counts_{next(_names)}"

    def apply(connection: sqlite3.Connection, entry: LoggedEvent) -> None:
        connection.execute(
            COUNT.format(table=table).replace("%s", "?"),
            (entry.event.aggregate_id, entry.event.payload["by"]),
        )

    return Projection(
        table, event_stores=[store], apply=apply, create=lambda c: c.execute(TABLE.format(table=table))
    )


def postgres_projection(store: EventStore) -> Projection:
    table = f"counts_{next(_names)}"

    async def apply(connection: Any, entry: LoggedEvent) -> None:
        await connection.execute(
            COUNT.format(table=table), (entry.event.aggregate_id, entry.event.payload["by"])
        )

    async def create(connection: Any) -> None:
        await connection.execute(TABLE.format(table=table))

    return Projection(table, event_stores=[store], apply=apply, create=create)


async def time_projection(runner: ProjectionRunner, steps: int) -> float:
    await runner.checkpoint()  # tables created, connection open: not timed
    started = time.perf_counter()
    for _ in range(steps):
        await runner.step()
    seconds = time.perf_counter() - started
    assert await runner.checkpoint() == steps * runner.batch_size, "the log must be long enough"
    await close_adapter(runner)
    return seconds


async def time_relay(store: EventStore, batch_size: int, steps: int) -> float:
    bus, bus_adapter, deliveries = bus_for(store)
    relay = Relay(
        store.get_event_storage_adapter(),
        {store.event_store_id: bus},
        name=f"relay_{next(_names)}",
        batch_size=batch_size,
    )
    await relay.checkpoint()
    started = time.perf_counter()
    for _ in range(steps):
        await relay.step()
    await bus_adapter.wait_idle()
    seconds = time.perf_counter() - started
    assert len(deliveries.arrived) == steps * batch_size
    return seconds


async def measure(
    database: str, store: EventStore, sizes: Sizes, make_runner: Callable[[int], ProjectionRunner]
) -> list[Row]:
    """Every batch size on the filled log of ``store``: projection and relay taking turns."""
    rows = []
    for batch_size, events in sizes.events_per_batch_size.items():
        steps = events // batch_size

        async def projection_round(batch_size: int = batch_size, steps: int = steps) -> float:
            return await time_projection(make_runner(batch_size), steps)

        async def relay_round(batch_size: int = batch_size, steps: int = steps) -> float:
            return await time_relay(store, batch_size, steps)

        variants: dict[str, Timed] = {"projection": projection_round, "relay": relay_round}
        seconds = await median_seconds(sizes.rounds, variants)
        rows.append(
            Row(database, batch_size, events, events / seconds["projection"], events / seconds["relay"])
        )
    return rows


async def sqlite_rows(directory: str, sizes: Sizes) -> list[Row]:
    with SQLiteEventStorageAdapter(os.path.join(directory, "projections.sqlite")) as adapter:
        store = counter_store(adapter)
        await fill_log(store, sizes.log_events)
        return await measure(
            "SQLite",
            store,
            sizes,
            lambda batch: SQLiteProjectionRunner(sqlite_projection(store), batch_size=batch),
        )


async def postgres_rows(conninfo: str, sizes: Sizes) -> list[Row]:
    from castore_edu.projections.postgres import PostgresProjectionRunner
    from castore_edu.storage.postgres import PostgresEventStorageAdapter

    async with PostgresEventStorageAdapter(conninfo) as adapter:
        store = counter_store(adapter)
        await fill_log(store, sizes.log_events)
        return await measure(
            "PostgreSQL",
            store,
            sizes,
            lambda batch: PostgresProjectionRunner(postgres_projection(store), batch_size=batch),
        )


def print_table(rows: list[Row], print_fn: Callable[[str], Any]) -> None:
    print_fn(
        "| database | batch size | events timed | projection (apply + checkpoint, 1 transaction) | relay (publish, then checkpoint) | projection / relay |"
    )
    print_fn("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print_fn(
            f"| {row.database} | {row.batch_size:,} | {row.events:,} | {row.projection:,.0f} events/s"
            f" | {row.relay:,.0f} events/s | {row.ratio:.2f} |"
        )


def run(
    quick: bool = False,
    print_fn: Callable[[str], Any] = print,
    databases: tuple[str, ...] = ("SQLite", "PostgreSQL"),
) -> list[Row]:
    sizes = QUICK if quick else FULL
    rows: list[Row] = []
    started = time.perf_counter()
    if "SQLite" in databases:
        print_fn("[SQLite] a file on disk, synchronous = FULL ...")
        with tempfile.TemporaryDirectory(prefix="castore-projection-bench-") as directory:
            rows += asyncio.run(sqlite_rows(directory, sizes["SQLite"]))
    if "PostgreSQL" in databases:
        import psycopg
        import psycopg.conninfo

        from castore_edu.testing.servers import postgres_url

        print_fn("[PostgreSQL] a private server, durable commits ...")
        with ExitStack() as servers:
            server_url = servers.enter_context(postgres_url())
            schema = "castore_edu_bench_projections"
            with psycopg.connect(server_url, autocommit=True) as connection:
                connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                connection.execute(f"CREATE SCHEMA {schema}")
            conninfo = psycopg.conninfo.make_conninfo(server_url, options=f"-c search_path={schema}")
            try:
                rows += asyncio.run(postgres_rows(conninfo, sizes["PostgreSQL"]))
            finally:
                with psycopg.connect(server_url, autocommit=True) as connection:
                    connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    print_table(rows, print_fn)
    print_fn(f"(ran in {time.perf_counter() - started:.0f} s)")
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(
        description="A projection's throughput against the relay's, on SQLite and PostgreSQL."
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    options = parser.parse_args(argv)
    databases = ("SQLite",) if options.sqlite_only else ("SQLite", "PostgreSQL")
    return run(quick=options.quick, print_fn=lambda line: print(line, flush=True), databases=databases)


if __name__ == "__main__":
    main(sys.argv[1:])
