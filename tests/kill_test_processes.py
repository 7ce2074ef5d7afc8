"""The processes of the relay kill test (tests/test_relay_process.py), one per role.

``python tests/kill_test_processes.py writer CONNINFO NAME COUNT``
    pushes COUNT events to the counters ``NAME-0`` .. ``NAME-2`` of event store COUNTERS, in turn,
    one transaction each, then exits.
``python tests/kill_test_processes.py consumer NATS_URL BUS_ID READ_MODEL``
    listens on the NATS bus BUS_ID and keeps a read model in the SQLite file READ_MODEL, until
    killed.

The consumer is what makes "exactly once, in order" true at the read model, whatever the broker
delivers: in one SQLite transaction, it skips an event at or below the version it has applied
(a duplicate), refuses one beyond the next (raises: the broker redelivers it later, once its
predecessor has come), and applies the next one, recording it in ``applied`` in the order applied.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from typing import Any

from castore_edu import EventDetail, EventStore, NotificationMessageBus, PostgresEventStorageAdapter

EVENT_STORE_ID = "COUNTERS"


async def write(conninfo: str, name: str, count: int) -> None:
    adapter = PostgresEventStorageAdapter(conninfo)
    store = EventStore(
        event_store_id=EVENT_STORE_ID,
        event_types=[],
        reducer=lambda a, e: e.version,
        event_storage_adapter=adapter,
    )
    for index in range(count):
        aggregate_id, version = f"{name}-{index % 3}", index // 3 + 1
        await store.push_event(EventDetail(aggregate_id=aggregate_id, version=version, type="INCREMENTED"))
        await asyncio.sleep(0.03)  # a steady trickle, so that the kills land while events flow
    await adapter.close()


class NotYet(Exception):
    """An event that came before its predecessor: the broker will bring it again."""


def read_model(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS counters (aggregate_id TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    connection.execute(
        "CREATE TABLE IF NOT EXISTS applied (n INTEGER PRIMARY KEY, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL)"
    )
    return connection


async def consume(nats_url: str, bus_id: str, path: str) -> None:
    from castore_edu.messaging.nats_bus import NatsMessageBusAdapter

    connection = read_model(path)

    async def apply(message: Any, context: Any) -> None:
        event = message.event
        connection.execute("BEGIN IMMEDIATE")
        try:
            row = connection.execute(
                "SELECT version FROM counters WHERE aggregate_id = ?", (event.aggregate_id,)
            ).fetchone()
            applied = 0 if row is None else row[0]
            if event.version > applied + 1:
                raise NotYet(f"{event.aggregate_id} v{event.version} before v{applied + 1}")
            if event.version == applied + 1:
                connection.execute(
                    "INSERT INTO counters VALUES (?, ?) ON CONFLICT (aggregate_id) DO UPDATE SET version = excluded.version",
                    (event.aggregate_id, event.version),
                )
                connection.execute(
                    "INSERT INTO applied (aggregate_id, version) VALUES (?, ?)",
                    (event.aggregate_id, event.version),
                )
            connection.execute("COMMIT")  # only now may the broker hear that it is done
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    store = EventStore(event_store_id=EVENT_STORE_ID, event_types=[], reducer=lambda a, e: a)
    bus = NotificationMessageBus(message_bus_id=bus_id, source_event_stores=[store])
    adapter = NatsMessageBusAdapter.attach_to(
        bus, servers=nats_url, ack_wait=1.0, retry_attempts=10_000, retry_delay_ms=50
    )
    adapter.on({}, apply)
    print("consuming", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    role, *arguments = sys.argv[1:]
    if role == "writer":
        asyncio.run(write(arguments[0], arguments[1], int(arguments[2])))
    else:
        asyncio.run(consume(*arguments))
