"""Snapshots in an SQLite table: in the events' own database file, or in a file of their own.

Beside the events (``SQLiteSnapshotStore(adapter)``) is the simple choice: one file to back up,
one connection. A file of its own (``SQLiteSnapshotStore("snapshots.sqlite")``) says what a
snapshot is — a cache that can be deleted at any time and rebuilt from the events — and keeps a
snapshot's writes off the events' file. Both are correct: nothing ever needs a snapshot and an
event in one transaction, because a snapshot is only a copy of what the events already say.

Each call is one statement in its own transaction (autocommit), like the adapter's reads.
"""

from __future__ import annotations

import os
import sqlite3

from castore_edu.core.arguments import got
from castore_edu.core.events import MAX_VERSION
from castore_edu.snapshots.codec import (
    AggregateCodec,
    AggregateDecoder,
    AggregateEncoder,
    as_is,
    to_json_data,
)
from castore_edu.snapshots.protocol import Snapshot, check_discard, check_key, check_load, check_snapshot
from castore_edu.snapshots.sql import DISCARD, LIST, LOAD_LATEST, SAVE, SCHEMA, for_sqlite, listed
from castore_edu.storage.sqlite import ClosedByWith, SQLiteEventStorageAdapter


class SQLiteSnapshotStore(ClosedByWith):
    """Snapshots in the table ``snapshots`` of ``database``: an :class:`SQLiteEventStorageAdapter`
    (its file and connection), or the path of a file of their own (``":memory:"`` for a private one).

    ``encode_aggregate`` and ``decode_aggregate`` say how an aggregate becomes JSON data and back
    (see :mod:`~castore_edu.snapshots.codec`): pass ``decode_aggregate`` when aggregates are dataclasses.
    """

    def __init__(
        self,
        database: SQLiteEventStorageAdapter | str | os.PathLike[str] = ":memory:",
        *,
        encode_aggregate: AggregateEncoder = to_json_data,
        decode_aggregate: AggregateDecoder = as_is,
        timeout: float = 30.0,
    ) -> None:
        self.codec = AggregateCodec(encode_aggregate, decode_aggregate)
        if isinstance(database, SQLiteEventStorageAdapter):
            self.connection, self._owns_connection = database.connection, False
            self.path = database.path
        elif isinstance(database, str | os.PathLike):
            self.path = os.fspath(database)
            # isolation_level=None: every statement commits on its own, as the adapter's do.
            self.connection = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._owns_connection = True
        else:
            raise TypeError(
                f"database must be an SQLiteEventStorageAdapter or a file path, got {got(database)}"
            )
        self.connection.execute(SCHEMA)

    def __repr__(self) -> str:
        return f"SQLiteSnapshotStore({os.path.basename(self.path)!r})"

    def close(self) -> None:
        """Close the connection this store opened (one it shares with an adapter stays open)."""
        if self._owns_connection:
            self.connection.close()

    async def load_latest(
        self, event_store_id: str, aggregate_id: str, *, reducer_version: str, max_version: int | None = None
    ) -> Snapshot | None:
        reducer_version = check_load(event_store_id, aggregate_id, reducer_version, max_version)
        bound = MAX_VERSION if max_version is None else max_version
        row = self.connection.execute(
            for_sqlite(LOAD_LATEST), (event_store_id, aggregate_id, reducer_version, bound)
        ).fetchone()
        if row is None:
            return None
        version, text = row
        return Snapshot(aggregate_id, int(version), reducer_version, self.codec.loads(text))

    async def save(self, event_store_id: str, snapshot: Snapshot) -> None:
        check_key(event_store_id, check_snapshot(snapshot).aggregate_id)
        text = self.codec.dumps(snapshot.aggregate)
        self.connection.execute(
            for_sqlite(SAVE),
            (event_store_id, snapshot.aggregate_id, snapshot.reducer_version, snapshot.version, text),
        )

    async def discard(self, event_store_id: str, aggregate_id: str, *, from_version: int = 1) -> int:
        check_discard(event_store_id, aggregate_id, from_version)
        cursor = self.connection.execute(for_sqlite(DISCARD), (event_store_id, aggregate_id, from_version))
        return cursor.rowcount

    async def list_snapshots(self, event_store_id: str, aggregate_id: str) -> list[Snapshot]:
        check_key(event_store_id, aggregate_id)
        rows = self.connection.execute(for_sqlite(LIST), (event_store_id, aggregate_id))
        return listed(aggregate_id, rows, self.codec)
