"""``python -m benchmarks.postgres`` — castore_edu on PostgreSQL, side by side with its peers.

One private PostgreSQL server (``castore_edu.testing.servers``; ``CASTORE_EDU_POSTGRES_URL`` for
your own), durable commits (the server's default ``synchronous_commit = on``), one run:

- **one event per transaction**: ``EventStore.push_event`` against raw psycopg inserting the same
  row into the same table with one statement per commit (``autocommit``: insert + commit, the
  least a durable write costs), and against eventsourcing's PostgreSQL ``Application.save``;
- **groups of 100**: ``push_event_group`` against raw psycopg's ``executemany`` of 100 rows in
  one transaction.

Each side writes to a fresh table in a schema of its own. The rounds of the variants take turns
(``benchmarks.peers.median_seconds``), so a slow moment of the disk weighs on all of them.
Prints figures and asserts nothing; ``--quick`` is a smoke test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import psycopg
import psycopg.conninfo

from benchmarks.core import counter_store
from benchmarks.peers import (
    BATCH,
    Results,
    Row,
    Timed,
    castore_push_batches,
    castore_push_each,
    draw_rates,
    eventsourcing_installed,
    median_seconds,
    print_table,
    refuse_plotting_without_matplotlib,
)
from castore_edu.storage.postgres import SCHEMA, PostgresEventStorageAdapter
from castore_edu.testing.servers import postgres_url

RAW_INSERT = """
INSERT INTO events (position, event_store_id, aggregate_id, version, type, timestamp, payload, metadata)
VALUES (%s, %s, %s, %s, %s, %s, %s::json, %s::json)
"""


def raw_row(version: int) -> tuple[object, ...]:
    return (
        version,
        "COUNTERS",
        "counter",
        version,
        "INCREMENTED",
        "2024-01-01T00:00:00.000Z",
        '{"by":1}',
        None,
    )


class PostgresBench:
    """Every round writes into a new schema of one database, dropped with the server."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.schemas = 0

    def fresh_schema(self) -> tuple[str, str]:
        """A new, empty schema; returns its name and a connection string that works in it."""
        self.schemas += 1
        name = f"castore_edu_bench_{self.schemas}"
        with psycopg.connect(self.server_url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            connection.execute(f"CREATE SCHEMA {name}")
        return name, psycopg.conninfo.make_conninfo(self.server_url, options=f"-c search_path={name}")

    async def castore_each(self, count: int) -> float:
        async with PostgresEventStorageAdapter(self.fresh_schema()[1]) as adapter:
            await adapter.last_position()  # connected, tables created: not timed
            return await castore_push_each(counter_store(adapter), count)

    async def castore_groups(self, batches: int) -> float:
        async with PostgresEventStorageAdapter(self.fresh_schema()[1]) as adapter:
            await adapter.last_position()
            return await castore_push_batches(counter_store(adapter), batches)

    async def raw(self, count: int, per_transaction: int) -> float:
        """``count`` rows of the same table: one autocommitted statement each, or ``executemany``
        of ``per_transaction`` rows in one transaction. The rows are made before the clock starts."""
        connection = await psycopg.AsyncConnection.connect(self.fresh_schema()[1], autocommit=True)
        try:
            await connection.execute(SCHEMA[0])
            rows = [raw_row(version) for version in range(1, count + 1)]
            started = time.perf_counter()
            if per_transaction == 1:
                for row in rows:
                    await connection.execute(RAW_INSERT, row)
            else:
                for start in range(0, count, per_transaction):
                    async with connection.transaction(), connection.cursor() as cursor:
                        await cursor.executemany(RAW_INSERT, rows[start : start + per_transaction])
            return time.perf_counter() - started
        finally:
            await connection.close()

    def eventsourcing_saves(self, saves: int, per_save: int = 1) -> float:
        """eventsourcing's PostgreSQL recorder: ``Application.save`` after ``per_save`` increments."""
        from eventsourcing.application import Application

        from benchmarks.peers import Counter  # defined only when eventsourcing is installed

        schema, _ = self.fresh_schema()
        settings = psycopg.conninfo.conninfo_to_dict(self.server_url)
        app: Any = Application(
            env={
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": str(settings.get("dbname", "postgres")),
                "POSTGRES_HOST": str(settings.get("host", "127.0.0.1")),
                "POSTGRES_PORT": str(settings.get("port", 5432)),
                "POSTGRES_USER": str(settings.get("user", "postgres")),
                "POSTGRES_PASSWORD": str(settings.get("password", "")),
                "POSTGRES_SCHEMA": schema,
            }
        )
        try:
            counter = Counter()
            app.save(counter)
            started = time.perf_counter()
            for _ in range(saves):
                for _ in range(per_save):
                    counter.increment(by=1)
                app.save(counter)
            return time.perf_counter() - started
        finally:
            app.close()


def rate_row(
    group: str,
    workload: str,
    events: int,
    seconds: dict[str, float],
    peer: str,
    key: str,
    target: float | None,
) -> Row:
    value = None if key not in seconds else events / seconds[key]
    return Row(group, workload, "events/s", events / seconds["castore"], peer, value, target)


async def run_all(server_url: str, quick: bool, print_fn: Callable[[str], Any]) -> Results:
    bench = PostgresBench(server_url)
    rounds, each, batches = (2, 20, 2) if quick else (9, 1000, 20)
    results = Results()
    started = time.perf_counter()

    print_fn(f"[1/2] one event per transaction, {each} per round, {rounds} rounds ...")
    variants: dict[str, Timed] = {
        "castore": lambda: bench.castore_each(each),
        "raw": lambda: bench.raw(each, 1),
    }
    if eventsourcing_installed():

        async def eventsourcing_round() -> float:
            return bench.eventsourcing_saves(each)

        variants["es"] = eventsourcing_round
    seconds = await median_seconds(rounds, variants)
    group = "PostgreSQL, one event per transaction"
    results.rows.append(
        rate_row(group, "EventStore.push_event", each, seconds, "raw psycopg: insert + commit", "raw", 0.8)
    )
    results.rows.append(
        rate_row(
            group,
            "EventStore.push_event",
            each,
            seconds,
            "eventsourcing PostgreSQL: Application.save",
            "es",
            1.0,
        )
    )

    print_fn(f"[2/2] groups of {BATCH}, {batches} per round, {rounds} rounds ...")
    seconds = await median_seconds(
        rounds,
        {"castore": lambda: bench.castore_groups(batches), "raw": lambda: bench.raw(batches * BATCH, BATCH)},
    )
    results.rows.append(
        rate_row(
            f"PostgreSQL, groups of {BATCH}",
            "push_event_group",
            batches * BATCH,
            seconds,
            f"raw psycopg: executemany of {BATCH} rows in one transaction",
            "raw",
            0.6,
        )
    )
    results.seconds = time.perf_counter() - started
    return results


def plot(results: Results, directory: str) -> str:
    """Write ``benchmarks-postgres.png`` into ``directory``: each rate beside its peer's."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    figure, axes = plt.subplots(figsize=(9, 3.6), layout="constrained")
    draw_rates(
        axes, [row for row in results.rows if row.peer_value], "castore_edu on PostgreSQL, next to its peers"
    )
    path = os.path.join(directory, "benchmarks-postgres.png")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def run(
    quick: bool = False, print_fn: Callable[[str], Any] = print, plot_directory: str | None = None
) -> Results:
    refuse_plotting_without_matplotlib(plot_directory)
    with ExitStack() as servers:
        server_url = servers.enter_context(postgres_url())
        with psycopg.connect(server_url) as connection:
            version = connection.execute("SHOW server_version").fetchone()
        print_fn(
            f"castore_edu on PostgreSQL {version[0] if version else '?'} (durable commits), psycopg {psycopg.__version__}"
        )
        results = asyncio.run(run_all(server_url, quick, print_fn))
    print_table(results, print_fn)
    print_fn(f"(ran in {results.seconds:.0f} s)")
    if plot_directory is not None:
        print_fn(f"wrote {plot(results, plot_directory)}")
    return results


def main(argv: list[str] | None = None) -> Results:
    parser = argparse.ArgumentParser(
        description="castore_edu on PostgreSQL, next to raw psycopg and eventsourcing."
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument(
        "--plot", metavar="DIR", help="also write benchmarks-postgres.png into DIR (needs matplotlib)"
    )
    options = parser.parse_args(argv)
    return run(
        quick=options.quick, print_fn=lambda line: print(line, flush=True), plot_directory=options.plot
    )


if __name__ == "__main__":
    main(sys.argv[1:])
