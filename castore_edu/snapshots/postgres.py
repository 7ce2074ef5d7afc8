"""Snapshots in a PostgreSQL table, beside the events, through the events' adapter.

The store sends its statements through the adapter's connection (``await adapter.fetch(query,
parameters)``, as :class:`~castore_edu.reliability.relay.PostgresCheckpointStore` does), so it opens
no connection of its own and imports no driver: the adapter, which needs psycopg, is the one you
made. It creates its table on first use, one creator at a time (an advisory lock, as the adapter
takes for its own tables: two ``CREATE TABLE IF NOT EXISTS`` running at once can still collide).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from castore_edu.snapshots.sql import DISCARD, LIST, LOAD_LATEST, SAVE, SCHEMA, listed

if TYPE_CHECKING:  # a type only: importing it would import its driver
    from castore_edu.storage.postgres import PostgresEventStorageAdapter

# Any fixed number, other than the adapter's: the lock that lets one session at a time create the table.
SNAPSHOT_SCHEMA_LOCK = 7_210_246
# One statement (a DO block runs in one transaction), so the lock is held until the table exists.
CREATE_TABLE = f"DO $$ BEGIN PERFORM pg_advisory_xact_lock({SNAPSHOT_SCHEMA_LOCK}); {SCHEMA}; END $$"


class PostgresSnapshotStore:
    """Snapshots in the table ``snapshots`` of the events' own PostgreSQL database.

    ``encode_aggregate`` and ``decode_aggregate`` as for
    :class:`~castore_edu.snapshots.sqlite.SQLiteSnapshotStore`.
    """

    def __init__(
        self,
        adapter: PostgresEventStorageAdapter,
        *,
        encode_aggregate: AggregateEncoder = to_json_data,
        decode_aggregate: AggregateDecoder = as_is,
    ) -> None:
        # Recognised by ``kind``, the name every shipped adapter carries: no import of its class.
        if getattr(adapter, "kind", None) != "PostgresEventStorageAdapter":
            raise TypeError(
                f"adapter must be a PostgresEventStorageAdapter, got {got(adapter)}. "
                "Hint: on SQLite use SQLiteSnapshotStore, in memory InMemorySnapshotStore"
            )
        self.adapter = adapter
        self.codec = AggregateCodec(encode_aggregate, decode_aggregate)
        self._table_ready = False

    def __repr__(self) -> str:
        return f"PostgresSnapshotStore({self.adapter.server})"

    async def _fetch(self, query: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if not self._table_ready:
            await self.adapter.fetch(CREATE_TABLE)
            self._table_ready = True
        return await self.adapter.fetch(query, parameters)

    async def load_latest(
        self, event_store_id: str, aggregate_id: str, *, reducer_version: str, max_version: int | None = None
    ) -> Snapshot | None:
        reducer_version = check_load(event_store_id, aggregate_id, reducer_version, max_version)
        bound = MAX_VERSION if max_version is None else max_version
        rows = await self._fetch(LOAD_LATEST, (event_store_id, aggregate_id, reducer_version, bound))
        if not rows:
            return None
        [(version, text)] = rows
        return Snapshot(aggregate_id, int(version), reducer_version, self.codec.loads(text))

    async def save(self, event_store_id: str, snapshot: Snapshot) -> None:
        check_key(event_store_id, check_snapshot(snapshot).aggregate_id)
        text = self.codec.dumps(snapshot.aggregate)
        await self._fetch(
            SAVE, (event_store_id, snapshot.aggregate_id, snapshot.reducer_version, snapshot.version, text)
        )

    async def discard(self, event_store_id: str, aggregate_id: str, *, from_version: int = 1) -> int:
        check_discard(event_store_id, aggregate_id, from_version)
        rows = await self._fetch(DISCARD + " RETURNING version", (event_store_id, aggregate_id, from_version))
        return len(rows)

    async def list_snapshots(self, event_store_id: str, aggregate_id: str) -> list[Snapshot]:
        check_key(event_store_id, aggregate_id)
        return listed(aggregate_id, await self._fetch(LIST, (event_store_id, aggregate_id)), self.codec)
