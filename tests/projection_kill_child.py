"""The projection that tests/test_projection_kill.py kills with SIGKILL, again and again.

``python tests/projection_kill_child.py PATH BATCH_SIZE HOLD_AT`` runs an SQLite projection of the
``COUNTERS`` store of the file PATH until it has caught up (or is killed). Its read model holds
two tables, which one transaction per batch changes together with the checkpoint:

- ``kill_seen``: one row per applied event, its log position, and no unique key: an event
  applied twice shows as two rows, an event missed as none;
- ``kill_totals``: the sum of the events' ``by`` per counter, the fold a real read model keeps.

It reports on stdout, one line each, flushed at once (the parent waits on these lines, never on
the clock)::

    ready CHECKPOINT         where the file says the projection stands
    committed CHECKPOINT     a batch and its checkpoint are committed
    holding POSITION         it applied the event at POSITION, and waits in the open transaction
    done                     caught up: it exits

With ``HOLD_AT`` > 0 it stops in the middle of the batch that holds that position, *inside* the
transaction (it waits for a line on stdin that never comes): a kill then always lands before the
commit. ``HOLD_AT`` 0 never holds.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys

from castore_edu.core.event_store import EventStore
from castore_edu.core.events import LoggedEvent
from castore_edu.projections.projection import Projection
from castore_edu.projections.sqlite import SQLiteProjectionRunner
from castore_edu.storage.sqlite import SQLiteEventStorageAdapter

COUNTERS = "COUNTERS"
NAME = "kill_totals"


def create(connection: sqlite3.Connection) -> None:
    connection.execute("CREATE TABLE IF NOT EXISTS kill_seen (position INTEGER NOT NULL)")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS kill_totals (counter TEXT PRIMARY KEY, total INTEGER NOT NULL)"
    )


def applier(hold_at: int) -> object:
    def apply(connection: sqlite3.Connection, entry: LoggedEvent) -> None:
        connection.execute("INSERT INTO kill_seen (position) VALUES (?)", (entry.position,))
        connection.execute(
            "INSERT INTO kill_totals (counter, total) VALUES (?, ?)"
            " ON CONFLICT (counter) DO UPDATE SET total = total + excluded.total",
            (entry.event.aggregate_id, entry.event.payload["by"]),
        )
        if entry.position == hold_at:
            print(f"holding {entry.position}", flush=True)
            sys.stdin.readline()  # never answered: the parent kills us here

    return apply


async def project(path: str, batch_size: int, hold_at: int) -> None:
    adapter = SQLiteEventStorageAdapter(path)
    counters = EventStore(
        event_store_id=COUNTERS, event_types=[], reducer=lambda a, e: e, event_storage_adapter=adapter
    )
    projection = Projection(NAME, event_stores=[counters], apply=applier(hold_at), create=create)  # type: ignore[arg-type]
    runner = SQLiteProjectionRunner(projection, batch_size=batch_size)
    print(f"ready {await runner.checkpoint()}", flush=True)
    while True:
        covered_all = await runner.lag() == 0
        if covered_all:
            print("done", flush=True)
            return
        await runner.step()
        print(f"committed {await runner.checkpoint()}", flush=True)


if __name__ == "__main__":
    asyncio.run(project(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
