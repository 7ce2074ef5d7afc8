"""``python -m benchmarks.peers`` — castore_edu side by side with what a Python user would
pick instead, measured in one process and one run.

The peers:

- **eventsourcing** (the optional ``bench`` extra: ``pip install -e '.[bench]'``), the established
  Python event sourcing library, with its in-memory "POPO" recorder and its SQLite recorder.
  Without it, its rows say "not installed" and everything else still runs.
- **raw sqlite3**: the same rows in the same table, with the same journal (WAL) and synchronous
  (FULL) settings and one transaction per event, written by plain ``sqlite3`` with nothing around
  it. No event store on SQLite can be faster: this is the physical limit of the disk and the
  database on this machine. Against the relay, raw sqlite3 reads and decodes the log twice over:
  with nothing else, and committing its position after each page, as the relay's durable
  checkpoint does (the like-for-like figure: same pages, same durability).

Each workload is timed on both sides doing the same job, and the table prints the median of
several rounds and the ratio castore_edu / peer. Which layer of eventsourcing matches which layer of
castore_edu is a choice; ``docs/benchmarks.md`` explains each one. In short:

- *store level*: a command's write with the aggregate in hand. castore_edu builds an
  ``EventDetail`` and calls ``EventStore.push_event(event, prev_aggregate=...)``, which stores the
  event and returns the next aggregate. eventsourcing calls a decorated command method on its
  aggregate (which builds the event and applies it) and then ``Application.save``.
- *storage level*: an event that already exists is stored. castore_edu's adapter
  ``push_event`` (validates, encodes JSON, stamps, stores) against eventsourcing's
  ``EventStore.put`` (encodes, stores) or, on SQLite, its recorder's ``insert_events`` (stores
  bytes that are already encoded: the raw storage path).

Prints figures and asserts nothing. ``--quick`` is a smoke test (about 10 s); the default run takes
about a minute on 2 cores (two when the disk is slow: durable SQLite pushes wait for it).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.core import counter_store, increments, raw_connection, raw_inserts, stopwatch
from benchmarks.messaging import event as fixed_time_event, publish_cost, push_target
from benchmarks.relay import relay_rate
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from castore_edu.storage.sqlite import SQLiteEventStorageAdapter

try:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event
    from eventsourcing.system import Follower
except ImportError:  # the `bench` extra is not installed: the peer rows say so
    Application = None  # type: ignore[assignment,misc]
else:
    # Module level, because eventsourcing finds event and aggregate classes again by their
    # import path (their "topic") when it reads events back.

    class Counter(Aggregate):  # type: ignore[misc]
        """The same counter as ``benchmarks.core.counter_store``, the eventsourcing way."""

        @event("Created")
        def __init__(self) -> None:
            self.total = 0

        @event("Incremented")
        def increment(self, by: int) -> None:
            self.total += by

    class NoOpFollower(Follower):  # type: ignore[misc]
        """Follows a leader's notification log and does nothing with the events (like the relay's
        no-op handler); pulls 100 at a time, as the relay reads its log."""

        pull_section_size = 100

        def policy(self, domain_event: Any, processing_event: Any) -> None:
            pass


EVENT_STORE_ID = "COUNTERS"  # the id counter_store uses
BATCH = 100  # events per group / batch
POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def eventsourcing_installed() -> bool:
    return Application is not None


def sqlite_env(path: str) -> dict[str, str]:
    """eventsourcing on an SQLite file: it switches the file to WAL itself and keeps SQLite's
    default ``synchronous = FULL``, the settings castore_edu uses."""
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}


# -- sizes and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How much work each round does. Rates do not depend on these (beyond noise)."""

    rounds: int
    pushes: int  # in-memory pushes per round, one per call
    durable_rounds: int  # more and shorter rounds: the disk's speed drifts, the variants take turns
    durable_pushes: int  # SQLite pushes per round (each waits for the disk)
    batches: int  # in-memory batches of BATCH events per round
    durable_batches: int  # SQLite batches per round
    connected_pushes: int
    publishes: int  # state-carrying publishes with prev_aggregate, per aggregate size
    relay_events: int
    aggregate: int = 1_000  # events of the aggregate that is rebuilt
    state_sizes: tuple[int, ...] = (10, 100, 1_000, 10_000)


QUICK = Sizes(
    rounds=3,
    pushes=1_000,
    durable_rounds=3,
    durable_pushes=40,
    batches=5,
    durable_batches=4,
    connected_pushes=1_000,
    publishes=30,
    relay_events=1_000,
)
DEFAULT = Sizes(
    rounds=5,
    pushes=5_000,
    durable_rounds=15,
    durable_pushes=100,
    batches=30,
    durable_batches=15,
    connected_pushes=10_000,
    publishes=200,
    relay_events=10_000,
)


@dataclass
class Row:
    """One line of the table: castore_edu's figure next to one peer's.

    ``target`` is a bound on ``ratio`` (castore_edu / peer): at least this much for rates, at
    most this much for times.
    """

    group: str
    workload: str
    unit: str  # "events/s" (higher is better) or "ms" (lower is better)
    castore_edu: float
    peer: str
    peer_value: float | None  # None: the peer is not installed
    target: float | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.unit != "ms"

    @property
    def ratio(self) -> float | None:
        return None if not self.peer_value else self.castore_edu / self.peer_value

    @property
    def target_met(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    @property
    def speedup(self) -> float | None:
        """How many times faster castore_edu is than the peer (> 1: castore_edu wins)."""
        ratio = self.ratio
        if ratio is None:
            return None
        return ratio if self.higher_is_better else 1 / ratio


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    # aggregate size -> {"with": ms, "without": ms, "reads_with": n, "reads_without": n}
    state_carrying: dict[int, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


# -- timing --------------------------------------------------------------------------------

Timed = Callable[[], Awaitable[float]]  # one round of one variant; returns the seconds it timed


async def median_seconds(rounds: int, variants: dict[str, Timed]) -> dict[str, float]:
    """Median seconds of each variant over ``rounds`` rounds.

    Variants take turns within each round, so a slow moment of the machine (or the disk) weighs on
    all of them alike, and the turns rotate from round to round, so no variant always runs right
    after the same other one. The garbage collector is off while a round is timed, as ``timeit``
    does: a collection landing in one round and not in another is noise.
    """
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            run = variants[name]
            gc.collect()
            gc.disable()
            try:
                times[name].append(await run())
            finally:
                gc.enable()
    return {name: statistics.median(values) for name, values in times.items()}


def peer_only(run: Callable[[], float]) -> Timed:
    """Turn a synchronous round (eventsourcing, raw sqlite3) into a variant."""

    async def timed() -> float:
        return run()

    return timed


# -- castore_edu rounds --------------------------------------------------------------------


def counter_event(version: int, aggregate_id: str = "counter") -> EventDetail:
    return EventDetail(aggregate_id=aggregate_id, version=version, type="INCREMENTED", payload={"by": 1})


async def castore_push_each(store: EventStore, count: int) -> float:
    """A command's write, ``count`` times: build the event, push it with the aggregate in hand,
    keep the next aggregate the store returns."""
    aggregate = None
    elapsed = stopwatch()
    for version in range(1, count + 1):
        result = await store.push_event(counter_event(version), prev_aggregate=aggregate)
        aggregate = result.next_aggregate
    seconds = elapsed()
    assert aggregate == count
    return seconds


async def castore_adapter_push_each(adapter: Any, count: int) -> float:
    """Storage level: existing events handed to the adapter one by one."""
    events = increments(count)
    elapsed = stopwatch()
    for pushed in events:
        await adapter.push_event(pushed, event_store_id=EVENT_STORE_ID)
    return elapsed()


async def castore_push_batches(store: EventStore, batches: int) -> float:
    """``batches`` groups of BATCH events, each stored all or nothing."""
    elapsed = stopwatch()
    for start in range(0, batches * BATCH, BATCH):
        await EventStore.push_event_group(
            *(store.group_event(counter_event(version)) for version in range(start + 1, start + BATCH + 1))
        )
    return elapsed()


async def castore_rebuild(store: EventStore, size: int) -> float:
    elapsed = stopwatch()
    result = await store.get_aggregate("big")
    seconds = elapsed()
    assert result.aggregate == size
    return seconds


async def connected_push(variant: str, count: int) -> float:
    """In-memory store, plain or connected to a notification bus with one no-op handler."""
    store, bus_adapter = push_target("in-memory", variant)
    events = [fixed_time_event(f"counter{index // 10}", index % 10 + 1) for index in range(count)]
    elapsed = stopwatch()
    for pushed in events:
        await store.push_event(pushed)
    if bus_adapter is not None:
        await bus_adapter.wait_idle()
    return elapsed()


# -- eventsourcing rounds ------------------------------------------------------------------


def es_save(env: dict[str, str], saves: int, per_save: int = 1) -> float:
    """A command's write, the eventsourcing way: ``counter.increment(by=1)`` builds the event and
    applies it, ``per_save`` times; ``app.save(counter)`` stores the new events in one insert."""
    app: Any = Application(env=env)
    counter = Counter()
    app.save(counter)
    elapsed = stopwatch()
    for _ in range(saves):
        for _ in range(per_save):
            counter.increment(by=1)
        app.save(counter)
    seconds = elapsed()
    app.close()
    return seconds


def es_domain_events(count: int) -> list[Any]:
    """``count`` existing events of one counter: its creation and ``count - 1`` increments."""
    counter = Counter()
    for _ in range(count - 1):
        counter.increment(by=1)
    return list(counter.collect_events())


def es_store_each(env: dict[str, str], count: int, layer: str) -> float:
    """Storage level, one existing event per call: through the event store (``layer="put"``:
    mapper + recorder) or, already encoded as ``StoredEvent``, straight to the recorder
    (``layer="insert"``: the raw storage path)."""
    app: Any = Application(env=env)
    events = es_domain_events(count)
    if layer == "insert":
        items, store = (
            [app.mapper.to_stored_event(domain_event) for domain_event in events],
            app.recorder.insert_events,
        )
    else:
        items, store = events, app.events.put
    elapsed = stopwatch()
    for item in items:
        store([item])
    seconds = elapsed()
    app.close()
    return seconds


def es_filled(env: dict[str, str], size: int) -> tuple[Any, Any]:
    """An application holding one counter of ``size`` events, saved 1,000 at a time."""
    app: Any = Application(env=env)
    counter = Counter()
    for _ in range(size - 1):
        counter.increment(by=1)
        if counter.version % 1_000 == 0:
            app.save(counter)
    app.save(counter)
    return app, counter.id


def es_rebuild(app: Any, counter_id: Any, size: int) -> float:
    """``repository.get``: no cache and no snapshots by default, so every event is read and applied."""
    elapsed = stopwatch()
    counter = app.repository.get(counter_id)
    seconds = elapsed()
    assert counter.total == size - 1 and counter.version == size
    return seconds


def es_follow(leader_path: str, count: int) -> float:
    """A follower pulls a leader's SQLite notification log, converts each notification back to a
    domain event, runs its (no-op) policy and records its position (tracking, in memory)."""
    leader, _ = es_filled(sqlite_env(leader_path), count)
    leader.notification_log.section_size = BATCH
    follower = NoOpFollower(env=POPO)
    follower.follow(leader.name, leader.notification_log)
    elapsed = stopwatch()
    follower.pull_and_process(leader.name)
    seconds = elapsed()
    assert follower.recorder.max_tracking_id(leader.name) == count
    leader.close()
    return seconds


# -- raw sqlite3 rounds ---------------------------------------------------------------------


def raw_rebuild(path: str, size: int) -> float:
    """Read the aggregate's rows, decode each payload and fold: what get_aggregate must do."""
    connection = sqlite3.connect(path)
    elapsed = stopwatch()
    total = 0
    for (payload,) in connection.execute(
        "SELECT payload FROM events WHERE event_store_id = ? AND aggregate_id = ? ORDER BY version",
        (EVENT_STORE_ID, "big"),
    ):
        total += json.loads(payload)["by"]
    seconds = elapsed()
    connection.close()
    assert total == size
    return seconds


def raw_log_read(path: str, count: int, *, save_position: bool = False) -> float:
    """Read the whole log in pages of BATCH positions and decode every payload: the least a
    relay must do.

    ``save_position=True`` also commits the last position read after each page, as an upsert in
    a table of the same database with the same settings (WAL, ``synchronous = FULL``): what the
    relay's durable checkpoint costs it, so that both sides pay for the same durability.
    """
    connection = raw_connection(path) if save_position else sqlite3.connect(path)
    if save_position:
        connection.execute("CREATE TABLE IF NOT EXISTS positions (name TEXT PRIMARY KEY, position INTEGER)")
    elapsed = stopwatch()
    position = read = 0
    while True:
        rows = connection.execute(
            "SELECT position, event_store_id, aggregate_id, version, type, timestamp, payload, metadata"
            " FROM events WHERE position > ? ORDER BY position LIMIT ?",
            (position, BATCH),
        ).fetchall()
        if not rows:
            break
        for row in rows:
            json.loads(row[6])
        position = rows[-1][0]
        read += len(rows)
        if save_position:
            connection.execute(
                "INSERT INTO positions VALUES ('raw', ?)"
                " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (position,),
            )
    seconds = elapsed()
    connection.close()
    assert read == count
    return seconds


# -- the workloads ---------------------------------------------------------------------------


class Bench:
    """Runs every workload, adding rows to ``results`` and printing progress as it goes."""

    GROUPS = 7

    def __init__(self, sizes: Sizes, directory: str, print_fn: Callable[[str], Any]) -> None:
        self.sizes = sizes
        self.directory = directory
        self.print = print_fn
        self.results = Results()
        self.files = 0
        self.group_number = 0

    def path(self, name: str) -> str:
        """A fresh database file (every round writes to a new one, so no round finds a big file)."""
        self.files += 1
        return os.path.join(self.directory, f"{self.files}-{name}.sqlite")

    def start_group(self, title: str) -> Callable[[], float]:
        self.group_number += 1
        self.print(f"[{self.group_number}/{self.GROUPS}] {title} ...")
        return stopwatch()

    def add(
        self,
        group: str,
        workload: str,
        unit: str,
        castore_value: float,
        peer: str,
        peer_value: float | None,
        target: float | None = None,
    ) -> None:
        self.results.rows.append(Row(group, workload, unit, castore_value, peer, peer_value, target))

    def add_rate_rows(
        self,
        group: str,
        workload: str,
        count: int,
        seconds: dict[str, float],
        ours: str,
        peers: dict[str, tuple[str, float | None]],
    ) -> None:
        """Rows of events per second: ``peers`` maps a variant to (peer name, target)."""
        for variant, (peer, target) in peers.items():
            peer_rate = count / seconds[variant] if variant in seconds else None
            self.add(group, workload, "events/s", count / seconds[ours], peer, peer_rate, target)

    async def run(self) -> Results:
        started = stopwatch()
        for workload in (
            self.push_each_in_memory,
            self.push_each_sqlite,
            self.push_batches,
            self.rebuild,
            self.connected,
            self.state_carrying,
            self.relay,
        ):
            elapsed = await workload()
            self.print(f"      done in {elapsed:.1f} s")
        self.results.seconds = started()
        return self.results

    async def push_each_in_memory(self) -> float:
        elapsed = self.start_group("push, one event per call, in memory")
        count = self.sizes.pushes
        variants: dict[str, Timed] = {
            "store": lambda: castore_push_each(counter_store(InMemoryEventStorageAdapter()), count),
            "adapter": lambda: castore_adapter_push_each(InMemoryEventStorageAdapter(), count),
        }
        if eventsourcing_installed():
            variants["es save"] = peer_only(lambda: es_save(POPO, count))
            variants["es put"] = peer_only(lambda: es_store_each(POPO, count, "put"))
        seconds = await median_seconds(self.sizes.rounds, variants)
        group = "push, one event per call"
        self.add_rate_rows(
            group,
            "in memory: EventStore.push_event",
            count,
            seconds,
            "store",
            {"es save": ("eventsourcing POPO: Application.save", 4.0)},
        )
        self.add_rate_rows(
            group,
            "in memory, storage: adapter.push_event",
            count,
            seconds,
            "adapter",
            {"es put": ("eventsourcing POPO: EventStore.put", None)},
        )
        return elapsed()

    async def push_each_sqlite(self) -> float:
        elapsed = self.start_group("push, one event per call, SQLite file (durable: one commit per event)")
        count = self.sizes.durable_pushes

        async def store_round() -> float:
            with SQLiteEventStorageAdapter(self.path("store")) as adapter:
                return await castore_push_each(counter_store(adapter), count)

        async def adapter_round() -> float:
            with SQLiteEventStorageAdapter(self.path("adapter")) as adapter:
                return await castore_adapter_push_each(adapter, count)

        variants: dict[str, Timed] = {
            "store": store_round,
            "adapter": adapter_round,
            "raw": peer_only(lambda: raw_inserts(self.path("raw"), count, 1)),
        }
        if eventsourcing_installed():
            variants["es save"] = peer_only(lambda: es_save(sqlite_env(self.path("es-save")), count))
            variants["es insert"] = peer_only(
                lambda: es_store_each(sqlite_env(self.path("es-insert")), count, "insert")
            )
        seconds = await median_seconds(self.sizes.durable_rounds, variants)
        group = "push, one event per call"
        self.add_rate_rows(
            group,
            "SQLite: EventStore.push_event",
            count,
            seconds,
            "store",
            {
                "es save": ("eventsourcing SQLite: Application.save", 1.0),
                "raw": ("raw sqlite3, 1 row per transaction", 0.85),
            },
        )
        self.add_rate_rows(
            group,
            "SQLite, storage: adapter.push_event",
            count,
            seconds,
            "adapter",
            {"es insert": ("eventsourcing SQLite: recorder.insert_events", None)},
        )
        return elapsed()

    async def push_batches(self) -> float:
        elapsed = self.start_group(f"push in batches of {BATCH}, in memory and SQLite file")
        batches, durable = self.sizes.batches, self.sizes.durable_batches

        async def sqlite_round() -> float:
            with SQLiteEventStorageAdapter(self.path("group")) as adapter:
                return await castore_push_batches(counter_store(adapter), durable)

        variants: dict[str, Timed] = {
            "memory": lambda: castore_push_batches(counter_store(InMemoryEventStorageAdapter()), batches),
            "sqlite": sqlite_round,
            "raw": peer_only(lambda: raw_inserts(self.path("raw-batch"), durable * BATCH, BATCH)),
            "raw built": peer_only(
                lambda: raw_inserts(self.path("raw-built"), durable * BATCH, BATCH, build_rows=True)
            ),
        }
        if eventsourcing_installed():
            variants["es memory"] = peer_only(lambda: es_save(POPO, batches, BATCH))
            variants["es sqlite"] = peer_only(
                lambda: es_save(sqlite_env(self.path("es-batch")), durable, BATCH)
            )
        seconds = await median_seconds(self.sizes.rounds, variants)
        group = f"push in batches of {BATCH}"
        self.add_rate_rows(
            group,
            "in memory: push_event_group",
            batches * BATCH,
            seconds,
            "memory",
            {"es memory": ("eventsourcing POPO: Application.save", None)},
        )
        self.add_rate_rows(
            group,
            "SQLite: push_event_group",
            durable * BATCH,
            seconds,
            "sqlite",
            {
                "es sqlite": ("eventsourcing SQLite: Application.save", None),
                "raw": (f"raw sqlite3, {BATCH} rows per transaction", 0.6),
                "raw built": (f"raw sqlite3, {BATCH} rows per transaction, built and JSON-encoded", None),
            },
        )
        return elapsed()

    async def rebuild(self) -> float:
        size = self.sizes.aggregate
        elapsed = self.start_group(f"rebuild an aggregate of {size:,} events, in memory and SQLite file")
        memory_store = counter_store(InMemoryEventStorageAdapter(increments(size, "big")))
        sqlite_path = self.path("rebuild")
        sqlite_adapter = SQLiteEventStorageAdapter(sqlite_path)
        sqlite_store = counter_store(sqlite_adapter)
        await EventStore.push_event_group(
            *(sqlite_store.group_event(pushed) for pushed in increments(size, "big"))
        )
        variants: dict[str, Timed] = {
            "memory": lambda: castore_rebuild(memory_store, size),
            "sqlite": lambda: castore_rebuild(sqlite_store, size),
            "raw": peer_only(lambda: raw_rebuild(sqlite_path, size)),
        }
        if eventsourcing_installed():
            es_memory = es_filled(POPO, size)
            es_sqlite = es_filled(sqlite_env(self.path("es-rebuild")), size)
            variants["es memory"] = peer_only(lambda: es_rebuild(*es_memory, size))
            variants["es sqlite"] = peer_only(lambda: es_rebuild(*es_sqlite, size))
        try:
            seconds = await median_seconds(self.sizes.rounds * 2, variants)
        finally:
            sqlite_adapter.close()
        ms = {variant: value * 1000 for variant, value in seconds.items()}
        group = f"rebuild a {size:,}-event aggregate"
        self.add(
            group,
            "in memory: get_aggregate",
            "ms",
            ms["memory"],
            "eventsourcing POPO: repository.get",
            ms.get("es memory"),
            1.0,
        )
        self.add(
            group,
            "SQLite: get_aggregate",
            "ms",
            ms["sqlite"],
            "eventsourcing SQLite: repository.get",
            ms.get("es sqlite"),
            1.0,
        )
        self.add(
            group,
            "SQLite: get_aggregate",
            "ms",
            ms["sqlite"],
            "raw sqlite3: select, json.loads, fold",
            ms["raw"],
        )
        return elapsed()

    async def connected(self) -> float:
        elapsed = self.start_group("connected store: push + publish on an in-memory notification bus")
        count = self.sizes.connected_pushes
        plain, connected = "plain store", "connected, in-memory bus, 1 no-op handler"
        seconds = await median_seconds(
            self.sizes.rounds,
            {
                plain: lambda: connected_push(plain, count),
                connected: lambda: connected_push(connected, count),
            },
        )
        self.add(
            "connected store (in memory)",
            "push + publish, notification bus, 1 no-op handler",
            "events/s",
            count / seconds[connected],
            "castore_edu plain EventStore.push_event",
            count / seconds[plain],
        )
        return elapsed()

    async def state_carrying(self) -> float:
        elapsed = self.start_group(
            "state-carrying publish with and without prev_aggregate, "
            + " / ".join(f"{size:,}" for size in self.sizes.state_sizes)
            + " events"
        )
        for size in self.sizes.state_sizes:
            reads_with, ms_with = await publish_cost(size, with_prev=True, repeats=self.sizes.publishes)
            reads_without, ms_without = await publish_cost(
                size,
                with_prev=False,
                repeats=max(5, min(self.sizes.publishes, 20 * self.sizes.publishes // size)),
            )
            self.results.state_carrying[size] = {
                "with": ms_with,
                "without": ms_without,
                "reads_with": reads_with,
                "reads_without": reads_without,
            }
            self.add(
                "state-carrying publish (in memory)",
                f"{size:,} events: with prev_aggregate",
                "ms",
                ms_with,
                "castore_edu without prev_aggregate",
                ms_without,
            )
        return elapsed()

    async def relay(self) -> float:
        count = self.sizes.relay_events
        elapsed = self.start_group(f"relay: {count:,} events from an SQLite log to a bus, {BATCH} per batch")

        async def relay_round() -> float:
            # relay_rate fills (and names) its own database file: give it a fresh directory.
            return count / await relay_rate(tempfile.mkdtemp(dir=self.directory), count, BATCH)

        def raw_round(save_position: bool) -> float:
            path = self.path("relay-raw")
            raw_inserts(path, count, 1_000)
            return raw_log_read(path, count, save_position=save_position)

        variants: dict[str, Timed] = {
            "relay": relay_round,
            "raw": peer_only(lambda: raw_round(False)),
            "raw saving": peer_only(lambda: raw_round(True)),
        }
        if eventsourcing_installed():
            variants["es"] = peer_only(lambda: es_follow(self.path("es-leader"), count))
        seconds = await median_seconds(self.sizes.rounds, variants)
        self.add_rate_rows(
            "relay from the SQLite log",
            "Relay.catch_up, 1 no-op handler",
            count,
            seconds,
            "relay",
            {
                "es": ("eventsourcing: Follower.pull_and_process", None),
                "raw": ("raw sqlite3: read the log, json.loads", 0.4),
                "raw saving": ("raw sqlite3: read, json.loads, commit the position per page", None),
            },
        )
        return elapsed()


# -- the table and the plots ------------------------------------------------------------------


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "not installed"
    if unit == "ms":
        return f"{value:,.3f} ms" if value < 1 else f"{value:,.2f} ms"
    return f"{value:,.0f}/s"


def format_target(row: Row) -> str:
    if row.target is None:
        return ""
    bound = "≥" if row.higher_is_better else "≤"
    met = {True: "met", False: "NOT met", None: "-"}[row.target_met]
    return f"{bound} {row.target:g}x {met}"


def table(results: Results) -> list[str]:
    """The table as lines of text (Markdown, so docs/benchmarks.md can take it as is)."""
    lines = [
        "| workload | castore_edu | peer | peer | castore_edu / peer | target |",
        "|---|---:|---|---:|---:|---|",
    ]
    for row in results.rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(
            f"| {row.group}: {row.workload} | {format_value(row.castore_edu, row.unit)} | {row.peer} "
            f"| {format_value(row.peer_value, row.unit)} | {ratio} | {format_target(row)} |"
        )
    return lines


def print_table(results: Results, print_fn: Callable[[str], Any]) -> None:
    """The table, after a blank line that sets it apart from the progress lines."""
    print_fn("")
    for line in table(results):
        print_fn(line)


def plot(results: Results, directory: str) -> list[str]:
    """Write the two PNGs of docs/benchmarks.md into ``directory``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    os.makedirs(directory, exist_ok=True)
    paths = []

    sizes = sorted(results.state_carrying)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for key, label, marker in (
        ("without", "without prev_aggregate (reads the aggregate)", "o"),
        ("with", "with prev_aggregate (no read)", "s"),
    ):
        axes.plot(sizes, [results.state_carrying[size][key] for size in sizes], marker=marker, label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("events in the aggregate")
    axes.set_ylabel("ms per push + publish (median)")
    axes.set_title("State-carrying publish: the cost of re-reading the aggregate")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    paths.append(os.path.join(directory, "benchmarks-prev-aggregate.png"))
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)

    compared = [(row, row.speedup) for row in results.rows if not row.peer.startswith("castore_edu")]
    peer_rows = [row for row, speedup in compared if speedup is not None]
    speedups = [speedup for _, speedup in compared if speedup is not None]
    labels = [f"{row.group}: {row.workload}\nvs {row.peer}" for row in peer_rows]
    figure, axes = plt.subplots(figsize=(11, 0.55 * len(peer_rows) + 1.5), layout="constrained")
    # raw sqlite3 is the limit no event store on SQLite can pass: grey, not a win or a loss
    colours = [
        "tab:gray" if row.peer.startswith("raw") else "tab:green" if value >= 1 else "tab:orange"
        for row, value in zip(peer_rows, speedups, strict=True)
    ]
    positions = range(len(peer_rows))
    axes.barh(positions, speedups, color=colours)
    axes.set_yticks(list(positions), labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xscale("log")
    ticks = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20]
    axes.set_xticks(ticks, [f"{tick:g}x" for tick in ticks])
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlim(min(0.1, min(speedups) / 1.5), max(20, max(speedups) * 1.5))
    axes.axvline(1, color="black", linewidth=1)
    for position, value in zip(positions, speedups, strict=True):
        axes.annotate(
            f"{value:.2f}x",
            (value, position),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    axes.set_xlabel("castore_edu speed relative to the peer (> 1: castore_edu is faster; log scale)")
    axes.set_title("castore_edu vs eventsourcing (green: faster, orange: slower) and raw sqlite3 (grey)")
    paths.append(os.path.join(directory, "benchmarks-peers.png"))
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)
    return paths


def draw_rates(axes: Any, rows: list[Row], title: str) -> None:
    """Horizontal bars: castore_edu's rate beside its peer's, one pair per row (one matplotlib axes)."""
    positions = range(len(rows))
    axes.barh([p - 0.2 for p in positions], [row.castore_edu for row in rows], 0.4, label="castore_edu")
    axes.barh([p + 0.2 for p in positions], [row.peer_value or 0 for row in rows], 0.4, label="peer")
    axes.set_yticks(list(positions), [f"{row.group}\nvs {row.peer}" for row in rows], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("events per second (median of the rounds)")
    axes.set_title(title)
    axes.legend(fontsize=8)


def refuse_plotting_without_matplotlib(plot_directory: str | None) -> None:
    """Say at once, before any figure is measured, that ``--plot`` cannot be honoured."""
    if plot_directory is not None and importlib.util.find_spec("matplotlib") is None:
        raise SystemExit("--plot needs matplotlib (the notebooks extra): pip install -e '.[notebooks]'")


def machine() -> str:
    import platform

    return (
        f"{platform.python_implementation()} {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores"
    )


def run(
    quick: bool = False, plot_directory: str | None = None, print_fn: Callable[[str], Any] = print
) -> Results:
    """Run every workload, print progress and the table; optionally write the plots."""
    refuse_plotting_without_matplotlib(plot_directory)
    sizes = QUICK if quick else DEFAULT
    print_fn(
        f"castore_edu vs peers — {machine()}; medians of {sizes.rounds} rounds"
        f" ({sizes.durable_rounds} for one-by-one SQLite pushes)"
        + (
            ""
            if eventsourcing_installed()
            else "; eventsourcing is not installed (pip install -e '.[bench]'): its rows are empty"
        )
    )
    with tempfile.TemporaryDirectory(prefix="castore-peers-") as directory:
        results = asyncio.run(Bench(sizes, directory, print_fn).run())
    print_table(results, print_fn)
    print_fn(f"(ran in {results.seconds:.0f} s)")
    if plot_directory is not None:
        for path in plot(results, plot_directory):
            print_fn(f"wrote {path}")
    return results


def main(argv: list[str] | None = None) -> Results:
    parser = argparse.ArgumentParser(
        description="castore_edu side by side with eventsourcing and raw sqlite3."
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test (about 10 s)")
    parser.add_argument("--plot", metavar="DIR", help="also write the PNG plots into DIR (needs matplotlib)")
    options = parser.parse_args(argv)
    return run(
        quick=options.quick, plot_directory=options.plot, print_fn=lambda line: print(line, flush=True)
    )


if __name__ == "__main__":
    main(sys.argv[1:])
