"""``python -m benchmarks.core`` — what the event store costs on this machine.

Prints figures, asserts nothing: speed targets are for people to read, not for unit tests to
flake on. ``--quick`` runs smaller sizes (a smoke test for CI). ``--peers`` runs only the
comparison with eventsourcing and raw sqlite3 (``benchmarks.peers``), ``--all`` these
figures and then that comparison; ``--plot DIR`` also writes the comparison's plots.

Every measurement is the median of several rounds, so one hiccup of the machine does not
decide the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from castore_edu import (
    EventDetail,
    EventStore,
    EventType,
    InMemoryEventStorageAdapter,
    SQLiteEventStorageAdapter,
)
from castore_edu.storage.sqlite import INSERT, SCHEMA


def counter_store(adapter: Any) -> EventStore:
    return EventStore(
        event_store_id="COUNTERS",
        event_types=[EventType("INCREMENTED")],
        reducer=lambda total, event: (total or 0) + event.payload["by"],
        event_storage_adapter=adapter,
    )


def increments(count: int, aggregate_id: str = "counter") -> list[EventDetail]:
    return [
        EventDetail(aggregate_id=aggregate_id, version=version, type="INCREMENTED", payload={"by": 1})
        for version in range(1, count + 1)
    ]


def median_rate(rounds: int, run_round: Callable[[], float], count: int) -> float:
    """Median of ``count / seconds`` over ``rounds`` runs of ``run_round`` (which returns seconds)."""
    return statistics.median(count / run_round() for _ in range(rounds))


def time_async(coroutine_factory: Callable[[], Awaitable[Any]]) -> float:
    async def timed() -> float:
        start = time.perf_counter()
        await coroutine_factory()
        return time.perf_counter() - start

    return asyncio.run(timed())


async def push_all(store: EventStore, events: list[EventDetail]) -> None:
    for event in events:
        await store.push_event(event)


def bench_push_in_memory(count: int, rounds: int) -> float:
    events = increments(count)
    return median_rate(
        rounds,
        lambda: time_async(lambda: push_all(counter_store(InMemoryEventStorageAdapter()), events)),
        count,
    )


def bench_push_sqlite(count: int, rounds: int, directory: str) -> float:
    events = increments(count)

    def one_round() -> float:
        path = tempfile.mktemp(suffix=".sqlite", dir=directory)
        with SQLiteEventStorageAdapter(path) as adapter:
            return time_async(lambda: push_all(counter_store(adapter), events))

    return median_rate(rounds, one_round, count)


def stopwatch() -> Callable[[], float]:
    """Start timing; call the result to read the seconds elapsed."""
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


def raw_connection(path: str) -> sqlite3.Connection:
    """castore_edu's table with castore_edu's settings, and nothing else."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute(SCHEMA)
    return connection


def raw_inserts(path: str, count: int, per_transaction: int, *, build_rows: bool = False) -> float:
    """``count`` rows of castore_edu's INSERT, ``per_transaction`` rows per transaction.

    The rows are made before the clock starts, unless ``build_rows``: then each transaction also
    builds its rows and JSON-encodes their payloads, as any event store must do with its events.
    """
    connection = raw_connection(path)

    def rows(first: int, last: int) -> list[tuple[object, ...]]:
        return [
            (
                "COUNTERS",
                "counter",
                version,
                "INCREMENTED",
                "2024-01-01T00:00:00.000Z",
                json.dumps({"by": 1}),
                None,
                1,  # schema_version
            )
            for version in range(first, last + 1)
        ]

    ready = [] if build_rows else rows(1, count)
    elapsed = stopwatch()
    for start in range(0, count, per_transaction):
        end = min(start + per_transaction, count)
        batch = rows(start + 1, end) if build_rows else ready[start:end]
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(INSERT, batch)
        connection.execute("COMMIT")
    seconds = elapsed()
    connection.close()
    return seconds


def bench_raw_sqlite(count: int, rounds: int, directory: str) -> float:
    """The physical limit: the same rows, durability settings and one transaction per row,
    written by plain ``sqlite3`` with no event store around it."""

    def one_round() -> float:
        return raw_inserts(tempfile.mktemp(suffix=".sqlite", dir=directory), count, per_transaction=1)

    return median_rate(rounds, one_round, count)


def bench_get_aggregate(adapter: Any, size: int, rounds: int) -> float:
    """Median milliseconds to read and fold a ``size``-event aggregate."""
    store = counter_store(adapter)
    asyncio.run(push_all(store, increments(size, "big")))
    times = [time_async(lambda: store.get_aggregate("big")) for _ in range(rounds)]
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="only the comparison with eventsourcing and raw sqlite3 (benchmarks.peers)",
    )
    parser.add_argument(
        "--all", action="store_true", help="these figures, then the comparison with the peers"
    )
    parser.add_argument(
        "--plot", metavar="DIR", help="with --peers or --all: write the comparison's PNG plots into DIR"
    )
    options = parser.parse_args(argv)
    if options.peers or options.all:
        # These figures first: importing the peers (eventsourcing) grows the heap, and with it the
        # garbage collector's work during the pushes measured here.
        core = {} if options.peers else main(["--quick"] if options.quick else [])
        from benchmarks import peers as bench_peers

        print()
        bench_peers.run(
            quick=options.quick, plot_directory=options.plot, print_fn=lambda line: print(line, flush=True)
        )
        return core
    pushes, durable_pushes, rounds = (2_000, 200, 3) if options.quick else (20_000, 1_000, 5)
    figures: dict[str, float] = {}
    print(f"castore_edu benchmark — {os.cpu_count()} cores, medians of {rounds} rounds")
    with tempfile.TemporaryDirectory() as directory:
        figures["push_in_memory_per_s"] = bench_push_in_memory(pushes, rounds)
        figures["push_sqlite_per_s"] = bench_push_sqlite(durable_pushes, rounds, directory)
        figures["raw_sqlite_per_s"] = bench_raw_sqlite(durable_pushes, rounds, directory)
        figures["get_aggregate_1000_in_memory_ms"] = bench_get_aggregate(
            InMemoryEventStorageAdapter(), 1_000, rounds
        )
        with SQLiteEventStorageAdapter(os.path.join(directory, "read.sqlite")) as adapter:
            figures["get_aggregate_1000_sqlite_ms"] = bench_get_aggregate(adapter, 1_000, rounds)
    sqlite_share = figures["push_sqlite_per_s"] / figures["raw_sqlite_per_s"]
    rows = [
        ("push_event, in memory", f"{figures['push_in_memory_per_s']:,.0f} events/s", "target ≥ 100,000/s"),
        (
            "push_event, SQLite (durable)",
            f"{figures['push_sqlite_per_s']:,.0f} events/s",
            f"{sqlite_share:.0%} of raw sqlite3, target ≥ 80 %",
        ),
        (
            "raw sqlite3 insert (same settings)",
            f"{figures['raw_sqlite_per_s']:,.0f} rows/s",
            "the physical limit",
        ),
        (
            "get_aggregate, 1,000 events, in memory",
            f"{figures['get_aggregate_1000_in_memory_ms']:.2f} ms",
            "target ≤ 10 ms",
        ),
        ("get_aggregate, 1,000 events, SQLite", f"{figures['get_aggregate_1000_sqlite_ms']:.2f} ms", ""),
    ]
    for name, value, note in rows:
        print(f"  {name:<42} {value:>20}   {note}")
    if not options.quick:
        run_messaging_and_relay()
    return figures


def run_messaging_and_relay() -> None:
    """The connected store's cost, the prev_aggregate scaling and the relay (about 20 s)."""
    from benchmarks.messaging import run_messaging_benchmarks
    from benchmarks.relay import run_relay_benchmarks

    indent = lambda line: print("  " + line, flush=True)  # noqa: E731
    print("\nConnected event store and prev_aggregate:")
    asyncio.run(run_messaging_benchmarks(print_fn=indent))
    print("\nRelay from the SQLite log:")
    asyncio.run(run_relay_benchmarks(print_fn=indent))


if __name__ == "__main__":
    main()
