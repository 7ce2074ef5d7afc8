"""``python -m benchmarks.nats`` — castore_edu on NATS JetStream, side by side with raw nats-py.

One private NATS server with JetStream and one private PostgreSQL server
(``castore_edu.testing.servers``; ``CASTORE_EDU_NATS_URL`` and ``CASTORE_EDU_POSTGRES_URL`` for
your own), one run:

- **publish with the broker's acknowledgement**: ``NatsMessageBusAdapter.publish_message`` of live
  ``NotificationMessage``s against raw nats-py ``js.publish`` of the same JSON bytes with the same
  ``Nats-Msg-Id`` header, on a stream with the same settings. Both wait for each ack before the
  next publish, as a relay does; the raw side's bytes and headers are made before the clock starts.
- **relay from PostgreSQL to NATS**: ``Relay.catch_up`` of a filled log, 100 events a batch,
  against raw psycopg reading the same pages and ``js.publish``-ing the same bytes, committing its
  position after each page as the relay's checkpoint does (the like-for-like floor).
- **end-to-end lag**: events pushed on PostgreSQL at a steady rate, timed from the end of each
  push to its delivery to a bus handler in this process, with the relay polling the log every
  ``POLL_INTERVAL`` seconds against the relay also woken by ``adapter.commits()`` (the
  adapter's ``LISTEN``/``NOTIFY``).

Each round of either side opens a connection of its own and publishes into a fresh stream (so that
no broker id of an earlier round makes a message a duplicate), both before its clock starts. The
rounds of the variants take turns (``benchmarks.peers.median_seconds``), so a slow moment of the
machine weighs on all of them. Prints figures and asserts nothing; ``--quick`` is a smoke
test; ``--plot DIR`` also writes ``benchmarks-nats.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.aio.client
import psycopg

from benchmarks.core import counter_store, increments
from benchmarks.peers import (
    BATCH,
    Results,
    Row,
    draw_rates,
    median_seconds,
    print_table,
    refuse_plotting_without_matplotlib,
)
from benchmarks.postgres import PostgresBench, rate_row
from benchmarks.relay import Deliveries, fill_log, summary
from castore_edu.messaging.channels import NotificationMessageBus
from castore_edu.messaging.messages import NotificationMessage
from castore_edu.messaging.nats_bus import NatsMessageBusAdapter
from castore_edu.messaging.nats_jetstream import DUPLICATE_WINDOW_SECONDS, message_id
from castore_edu.messaging.wire import encode_message
from castore_edu.reliability.relay import SAVE_CHECKPOINT, Relay
from castore_edu.storage.postgres import PostgresEventStorageAdapter
from castore_edu.testing.servers import nats_url, postgres_url

POLL_INTERVAL = 0.05  # seconds between the polling relay's reads, as in benchmarks.relay
LAG_GROUP = "end-to-end lag, push on PostgreSQL -> NATS bus handler"


@dataclass(frozen=True)
class Sizes:
    rounds: int
    publishes: int  # per round and side
    relay_events: int  # in the log, per round
    push_rate: int  # events per second in the lag runs
    lag_seconds: float


QUICK = Sizes(rounds=2, publishes=200, relay_events=500, push_rate=50, lag_seconds=1.0)
DEFAULT = Sizes(rounds=11, publishes=1_000, relay_events=3_000, push_rate=100, lag_seconds=3.0)


@dataclass
class NatsResults(Results):
    # "relay, polling" / "relay, woken by commits()" -> {"median_ms", "p95_ms", "max_ms"}
    lags: dict[str, dict[str, float]] = field(default_factory=dict)


class NatsBench:
    """The rounds of every variant. Each round publishes into streams of its own, so that the
    broker ids of one round (``COUNTERS#counter#1`` ...) are never duplicates of an earlier one's."""

    def __init__(self, nats_server: str, postgres: PostgresBench) -> None:
        self.nats_server = nats_server
        self.postgres = postgres
        self.rounds = itertools.count(1)

    @contextlib.asynccontextmanager
    async def raw_stream(self, kind: str) -> AsyncIterator[tuple[Any, str]]:
        """For the raw side: a connection of its own and a fresh stream with the adapter's
        settings, as each castore_edu round has; yields JetStream and the subject prefix."""
        client = await nats.connect(self.nats_server)
        try:
            prefix = f"raw.{kind}.{next(self.rounds)}"
            js = client.jetstream()
            await js.add_stream(
                name=prefix.replace(".", "-"),
                subjects=[f"{prefix}.>"],
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            )
            yield js, prefix
        finally:
            await client.close()

    def bus_adapter(self, kind: str) -> tuple[NotificationMessageBus, NatsMessageBusAdapter]:
        """A bus of the counter store on a channel of its own, with its NATS adapter."""
        bus = NotificationMessageBus(
            message_bus_id=f"bench {kind} {next(self.rounds)}", source_event_stores=[counter_store(None)]
        )
        return bus, NatsMessageBusAdapter.attach_to(bus, servers=self.nats_server)

    # -- publish ------------------------------------------------------------------------------

    async def castore_publish(self, count: int) -> float:
        _, adapter = self.bus_adapter("publish")
        try:
            await adapter.wait_idle()  # connected, stream made: not timed
            messages = [NotificationMessage("COUNTERS", event) for event in increments(count)]
            started = time.perf_counter()
            for message in messages:
                await adapter.publish_message(message)
            return time.perf_counter() - started
        finally:
            await adapter.close()

    async def raw_publish(self, count: int) -> float:
        messages = [NotificationMessage("COUNTERS", event) for event in increments(count)]
        sends = [(encode_message(m), {"Nats-Msg-Id": message_id(m, replay=False)}) for m in messages]
        async with self.raw_stream("publish") as (js, prefix):
            subject = f"{prefix}.live.COUNTERS.INCREMENTED"
            started = time.perf_counter()
            for data, headers in sends:
                await js.publish(subject, data, headers=headers)
            return time.perf_counter() - started

    # -- relay --------------------------------------------------------------------------------

    async def filled_log(self, count: int) -> PostgresEventStorageAdapter:
        storage = PostgresEventStorageAdapter(self.postgres.fresh_schema()[1])
        await fill_log(counter_store(storage), count)
        return storage

    async def castore_relay(self, count: int) -> float:
        storage = await self.filled_log(count)
        bus, adapter = self.bus_adapter("relay")
        try:
            await adapter.wait_idle()
            relay = Relay(storage, {"COUNTERS": bus}, batch_size=BATCH)
            started = time.perf_counter()
            await relay.catch_up()
            return time.perf_counter() - started
        finally:
            await adapter.close()
            await storage.close()

    async def raw_relay(self, count: int) -> float:
        """Pages of ``BATCH`` rows, each row published as the relay's bytes, the position saved
        (one autocommitted upsert) after each page."""
        storage = await self.filled_log(count)
        await storage.close()
        connection = await psycopg.AsyncConnection.connect(storage.conninfo, autocommit=True)
        try:
            async with self.raw_stream("relay") as (js, prefix):
                started = time.perf_counter()
                position = 0
                while True:
                    cursor = await connection.execute(RAW_PAGE, (position, BATCH))
                    rows = await cursor.fetchall()
                    for row in rows:
                        tail, data, headers = raw_publication(row)
                        await js.publish(f"{prefix}.{tail}", data, headers=headers)
                    if rows:
                        position = rows[-1][0]
                        await connection.execute(SAVE_CHECKPOINT, ("raw", position))
                    if len(rows) < BATCH:
                        return time.perf_counter() - started
        finally:
            await connection.close()

    # -- lag ----------------------------------------------------------------------------------

    async def lags(self, sizes: Sizes, woken: bool) -> list[float]:
        """Seconds from the end of each push to its delivery, pushing ``sizes.push_rate`` a second;
        the relay polls, and is also nudged by every commit when ``woken``."""
        storage = PostgresEventStorageAdapter(self.postgres.fresh_schema()[1])
        store = counter_store(storage)
        bus, adapter = self.bus_adapter("lag")
        deliveries = Deliveries()
        adapter.on({}, deliveries)
        relay = Relay(storage, {"COUNTERS": bus}, poll_interval=POLL_INTERVAL)
        waking: asyncio.Task[None] | None = None
        try:
            await adapter.wait_idle()  # its consumer is there and read
            await storage.last_position()  # connected, tables made
            if woken:
                waking = asyncio.get_running_loop().create_task(nudge_on_commits(storage, relay))
                await asyncio.sleep(0.2)  # its LISTEN is in place
            relay.start()
            pushed: dict[tuple[str, int], float] = {}
            started = time.perf_counter()
            for index, event in enumerate(increments(int(sizes.push_rate * sizes.lag_seconds))):
                await asyncio.sleep(max(0.0, started + index / sizes.push_rate - time.perf_counter()))
                await store.push_event(event)
                pushed[(event.aggregate_id, event.version)] = time.perf_counter()
            await relay.wait_until_published()
            while len(deliveries.arrived) < len(pushed):
                await asyncio.sleep(0.01)
            return [max(0.0, deliveries.arrived[key] - at) for key, at in pushed.items()]
        finally:
            await relay.stop()
            if waking is not None:
                waking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waking
            await adapter.close()
            await storage.close()


async def nudge_on_commits(storage: PostgresEventStorageAdapter, relay: Relay) -> None:
    """Nudge ``relay`` after every commit to the database (its NOTIFY)."""
    async for _ in storage.commits():
        relay.nudge()


def raw_publication(row: tuple[Any, ...]) -> tuple[str, bytes, dict[str, str]]:
    """A log row as the relay publishes it, built by hand: the subject's tail, the JSON bytes of
    its notification message, and its broker id."""
    _, event_store_id, aggregate_id, version, type_, timestamp, payload, metadata = row
    event = {"aggregate_id": aggregate_id, "version": version, "type": type_}
    event |= {"timestamp": timestamp, "payload": payload, "metadata": metadata}
    data = {"kind": "notification", "event_store_id": event_store_id, "event": event}
    identity = f"{event_store_id}#{aggregate_id}#{version}"
    return (
        f"live.{event_store_id}.{type_}",
        json.dumps(data, ensure_ascii=False).encode(),
        {"Nats-Msg-Id": identity},
    )


RAW_PAGE = (
    "SELECT position, event_store_id, aggregate_id, version, type, timestamp, payload, metadata"
    " FROM events WHERE position > %s ORDER BY position LIMIT %s"
)


def lag_rows(lags: dict[str, dict[str, float]]) -> list[Row]:
    woken, polling = lags["relay, woken by commits()"], lags["relay, polling"]
    return [
        Row(
            LAG_GROUP,
            f"relay woken by commits(), {name}",
            "ms",
            woken[key],
            f"relay polling every {POLL_INTERVAL * 1000:g} ms, {name}",
            polling[key],
        )
        for name, key in (("p50", "median_ms"), ("p95", "p95_ms"))
    ]


async def run_all(
    nats_server: str, postgres_server: str, sizes: Sizes, print_fn: Callable[[str], Any]
) -> NatsResults:
    bench = NatsBench(nats_server, PostgresBench(postgres_server))
    results = NatsResults()
    started = time.perf_counter()
    print_fn(f"[1/3] publish with ack, {sizes.publishes} per round, {sizes.rounds} rounds ...")
    seconds = await median_seconds(
        sizes.rounds,
        {
            "castore": lambda: bench.castore_publish(sizes.publishes),
            "raw": lambda: bench.raw_publish(sizes.publishes),
        },
    )
    results.rows.append(
        rate_row(
            "NATS publish, broker ack",
            "NatsMessageBusAdapter.publish_message",
            sizes.publishes,
            seconds,
            "raw nats-py: js.publish, same bytes and Nats-Msg-Id",
            "raw",
            0.8,
        )
    )
    print_fn(f"[2/3] relay PostgreSQL -> NATS, {sizes.relay_events} events, batch {BATCH} ...")
    seconds = await median_seconds(
        sizes.rounds,
        {
            "castore": lambda: bench.castore_relay(sizes.relay_events),
            "raw": lambda: bench.raw_relay(sizes.relay_events),
        },
    )
    results.rows.append(
        rate_row(
            "relay PostgreSQL -> NATS",
            f"Relay.catch_up, batch {BATCH}",
            sizes.relay_events,
            seconds,
            "raw psycopg pages + js.publish, position saved per page",
            "raw",
            None,
        )
    )
    print_fn(f"[3/3] end-to-end lag at {sizes.push_rate} pushes/s for {sizes.lag_seconds:g} s ...")
    for name, woken in (("relay, polling", False), ("relay, woken by commits()", True)):
        results.lags[name] = summary(await bench.lags(sizes, woken))
    results.rows.extend(lag_rows(results.lags))
    results.seconds = time.perf_counter() - started
    return results


def plot(results: NatsResults, directory: str) -> str:
    """Write ``benchmarks-nats.png`` into ``directory``: the rates beside raw nats-py, and the lags."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    figure, (rates, lags) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    rate_rows = [row for row in results.rows if row.unit == "events/s"]
    draw_rates(rates, rate_rows, "castore_edu next to raw nats-py / psycopg")
    names = list(results.lags)
    for offset, key, label in ((-0.2, "median_ms", "p50"), (0.2, "p95_ms", "p95")):
        lags.bar(
            [i + offset for i in range(len(names))], [results.lags[n][key] for n in names], 0.4, label=label
        )
    lags.set_xticks(range(len(names)), names, fontsize=8)
    lags.set_ylabel("ms from the end of a push to its delivery")
    lags.set_title("End-to-end lag, PostgreSQL -> NATS bus handler")
    lags.legend(fontsize=8)
    path = os.path.join(directory, "benchmarks-nats.png")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def run(
    quick: bool = False, plot_directory: str | None = None, print_fn: Callable[[str], Any] = print
) -> NatsResults:
    refuse_plotting_without_matplotlib(plot_directory)
    sizes = QUICK if quick else DEFAULT
    with ExitStack() as servers:
        nats_server = servers.enter_context(nats_url())
        postgres_server = servers.enter_context(postgres_url())
        print_fn(
            f"castore_edu on NATS JetStream (nats-py {nats.aio.client.__version__}) and PostgreSQL "
            f"(psycopg {psycopg.__version__}); medians of {sizes.rounds} rounds"
        )
        results = asyncio.run(run_all(nats_server, postgres_server, sizes, print_fn))
    print_table(results, print_fn)
    for name, figures in results.lags.items():
        print_fn(
            f"lag, {name:<26}: p50 {figures['median_ms']:7.2f} ms, p95 {figures['p95_ms']:7.2f} ms,"
            f" max {figures['max_ms']:7.2f} ms"
        )
    print_fn(f"(ran in {results.seconds:.0f} s)")
    if plot_directory is not None:
        print_fn(f"wrote {plot(results, plot_directory)}")
    return results


def main(argv: list[str] | None = None) -> NatsResults:
    parser = argparse.ArgumentParser(description="castore_edu on NATS JetStream, next to raw nats-py.")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument(
        "--plot", metavar="DIR", help="also write benchmarks-nats.png into DIR (needs matplotlib)"
    )
    options = parser.parse_args(argv)
    return run(
        quick=options.quick, plot_directory=options.plot, print_fn=lambda line: print(line, flush=True)
    )


if __name__ == "__main__":
    main(sys.argv[1:])
