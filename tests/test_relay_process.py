"""The relay as its own process (``castore-relay``), and the kill test.

Separate OS processes, as in production: two writers push to PostgreSQL, ``castore-relay``
publishes the log on a NATS bus, a consumer keeps a read model from it. The relay and the
consumer are killed with SIGKILL at seeded random moments, several times each, and started
again. Every stored event must reach the read model exactly once, in order per aggregate.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from castore_edu.reliability.relay_command import main, parse_route

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = str(ROOT / "tests" / "kill_test_processes.py")
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(ROOT)}


def start(*command: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *command],
        env=ENVIRONMENT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_route_reads_store_kind_and_channel() -> None:
    assert parse_route("POKEMONS=bus:POKEMON_NEWS") == ("POKEMONS", "bus", "POKEMON_NEWS")
    assert parse_route("TRAINERS=queue:jobs") == ("TRAINERS", "queue", "jobs")
    for wrong in ("POKEMONS", "POKEMONS=topic:x", "=bus:x", "POKEMONS=bus:"):
        with pytest.raises(ValueError, match="a route reads STORE=bus:ID or STORE=queue:ID"):
            parse_route(wrong)


def test_a_wrong_route_is_refused_with_the_form_to_use(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["--storage", str(tmp_path / "events.sqlite"), "--route", "POKEMONS"]) == 2
    assert (
        "castore-relay: a route reads STORE=bus:ID or STORE=queue:ID, got 'POKEMONS'"
        in capsys.readouterr().err
    )


def stored_events(conninfo: str) -> list[tuple[str, int]]:
    with psycopg.connect(conninfo) as connection:
        rows = connection.execute("SELECT aggregate_id, version FROM events ORDER BY position").fetchall()
    return [(aggregate_id, version) for aggregate_id, version in rows]


def applied_events(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    with sqlite3.connect(path) as connection:
        try:
            return connection.execute("SELECT aggregate_id, version FROM applied ORDER BY n").fetchall()
        except sqlite3.OperationalError:  # the consumer has not created its tables yet
            return []


def test_killing_the_relay_and_the_consumer_loses_and_repeats_nothing(
    tmp_path: Path, postgres_conninfo: str, nats_server_url: str
) -> None:
    rng = random.Random(20261201)
    read_model = tmp_path / "read_model.sqlite"
    bus_id = f"kill-test-{os.getpid()}"
    relay_command = [
        "-m", "castore_edu.reliability.relay_command",
        "--storage", postgres_conninfo,
        "--nats", nats_server_url,
        "--route", f"COUNTERS=bus:{bus_id}",
        "--poll-interval", "0.2",
    ]  # fmt: skip
    consumer_command = [PROCESSES, "consumer", nats_server_url, bus_id, str(read_model)]
    running = {"relay": start(*relay_command), "consumer": start(*consumer_command)}
    writers = [start(PROCESSES, "writer", postgres_conninfo, name, "90") for name in ("ash", "misty")]
    kills = {"relay": 0, "consumer": 0}
    while_writing = 0  # kills that landed while the writers were still pushing
    try:
        for victim in rng.sample(["relay", "consumer"] * 3, 6):
            time.sleep(rng.uniform(0.2, 0.9))
            running[victim].kill()  # SIGKILL: no cleanup, no last checkpoint, no ack
            running[victim].wait()
            kills[victim] += 1
            while_writing += any(writer.poll() is None for writer in writers)
            running[victim] = start(*(relay_command if victim == "relay" else consumer_command))
        for writer in writers:
            _, errors = writer.communicate(timeout=120)
            assert writer.returncode == 0, errors
        last_kill = time.monotonic()
        stored = stored_events(postgres_conninfo)
        deadline = last_kill + 120
        while len(applied_events(read_model)) < len(stored) and time.monotonic() < deadline:
            time.sleep(0.1)
        converged = time.monotonic() - last_kill
    finally:
        for process in running.values():
            process.send_signal(signal.SIGTERM)
        for process in [*running.values(), *writers]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    applied = applied_events(read_model)
    assert len(stored) == 180 and sorted(applied) == sorted(stored)  # every event, exactly once
    for aggregate_id in {aggregate_id for aggregate_id, _ in stored}:
        versions = [version for name, version in applied if name == aggregate_id]
        assert versions == list(range(1, len(versions) + 1)), aggregate_id  # in order per aggregate
    assert kills == {"relay": 3, "consumer": 3} and while_writing >= 3
    assert running["relay"].returncode == 0  # the last relay stopped cleanly on SIGTERM
    print(
        f"\nkill test: {len(stored)} events, relay killed {kills['relay']}x, consumer {kills['consumer']}x "
        f"({while_writing} of the kills while events were being written); "
        f"read model complete {converged:.1f} s after the writers finished"
    )


@pytest.mark.anyio
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_the_command_relays_until_told_to_stop(
    tmp_path: Path, database: str, nats_server_url: str, request: pytest.FixtureRequest
) -> None:
    """``run`` in this process: events stored before and while it runs reach a NATS bus listener
    (on PostgreSQL woken by NOTIFY, on SQLite by polling); stopping it saves the checkpoint."""
    import asyncio

    import anyio

    from castore_edu import EventDetail, EventStore, NotificationMessageBus, NotificationMessageQueue
    from castore_edu.messaging.nats_bus import NatsMessageBusAdapter
    from castore_edu.messaging.nats_queue import NatsMessageQueueAdapter
    from castore_edu.reliability.relay import default_checkpoints
    from castore_edu.reliability.relay_command import open_storage, parse_arguments, run
    from castore_edu.storage.protocol import close_adapter

    storage_spec = (
        str(tmp_path / "events.sqlite")
        if database == "sqlite"
        else request.getfixturevalue("postgres_conninfo")
    )
    kind = "queue" if database == "sqlite" else "bus"  # one of each
    channel_id = f"command-{database}-{os.getpid()}"
    route = f"POKEMONS={kind}:{channel_id}"
    options = parse_arguments(
        ["--storage", storage_spec, "--nats", nats_server_url, "--route", route, "--poll-interval", "0.1"]
    )
    writer = open_storage(storage_spec)
    pokemons = EventStore(
        event_store_id="POKEMONS",
        event_types=[],
        reducer=lambda a, e: e.version,
        event_storage_adapter=writer,
    )
    await pokemons.push_event(EventDetail(aggregate_id="pikachu", version=1, type="APPEARED"))
    received: list[int] = []

    async def keep(message: object, context: object) -> None:
        received.append(message.event.version)  # type: ignore[attr-defined]

    listener: Any
    if kind == "bus":
        bus = NotificationMessageBus(message_bus_id=channel_id, source_event_stores=[pokemons])
        listener = NatsMessageBusAdapter.attach_to(bus, servers=nats_server_url)
        listener.on({}, keep)
    else:
        queue = NotificationMessageQueue(message_queue_id=channel_id, source_event_stores=[pokemons])
        listener = NatsMessageQueueAdapter.attach_to(queue, servers=nats_server_url, worker=keep)
    stop = asyncio.Event()
    relaying = asyncio.ensure_future(run(options, stop))
    try:
        await pokemons.push_event(EventDetail(aggregate_id="pikachu", version=2, type="LEVELLED_UP"))
        with anyio.fail_after(30):
            while received != [1, 2]:
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        relay = await relaying
        await listener.close()
    assert relay.published == 2
    assert await default_checkpoints(writer).load("relay") == 2  # saved in the events' own database
    await close_adapter(writer)


@pytest.mark.anyio
async def test_main_stops_when_told_and_says_what_it_published(
    tmp_path: Path, nats_server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from castore_edu.reliability.relay_command import main_async

    stop = asyncio.Event()
    stop.set()  # as a SIGTERM would, right away
    arguments = [
        "--storage",
        str(tmp_path / "e.sqlite"),
        "--nats",
        nats_server_url,
        "--route",
        "P=bus:main-test",
    ]
    assert await main_async(arguments, stop) == 0
    assert "relay relay: published 0 messages; checkpoint saved" in capsys.readouterr().out


@pytest.mark.anyio
async def test_a_lost_wake_up_connection_is_listened_to_again() -> None:
    """``commits()`` fails (its server went away): the relay is not woken for a poll interval,
    then the command listens again, and the next commit nudges it."""
    import asyncio

    from castore_edu.reliability.relay_command import _nudge_on_commits

    class FlakyCommits:
        calls = 0

        async def commits(self) -> Any:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("the server went away")
            yield None
            await asyncio.Event().wait()  # then nothing more

    class RelayDouble:
        name, poll_interval, nudges = "double", 0.01, 0

        def nudge(self) -> None:
            self.nudges += 1

    storage, relay = FlakyCommits(), RelayDouble()
    waking = asyncio.ensure_future(_nudge_on_commits(storage, relay))  # type: ignore[arg-type]
    try:
        for _ in range(500):
            if relay.nudges:
                break
            await asyncio.sleep(0.01)
    finally:
        waking.cancel()
        await asyncio.gather(waking, return_exceptions=True)
    assert (storage.calls, relay.nudges) == (2, 1)
