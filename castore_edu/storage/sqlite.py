"""An event storage adapter on SQLite: a real database in one file, from the standard library.

The whole design rests on one line of the schema::

    UNIQUE (event_store_id, aggregate_id, version)

Two writers that both try to append version ``n`` cannot both succeed: the database refuses
the second insert, and we turn that refusal into :class:`EventAlreadyExistsError`. That is
optimistic concurrency — between tasks, threads and separate processes sharing the file — and
it is the only place where this adapter decides whether a write may happen.

The other column worth a look is ``position``. It is SQLite's rowid: every accepted event gets
the next number, and since writers take the database's write lock one at a time and rows are
never deleted, positions have no gaps and follow commit order. That makes the table an ordered
log (``read_log``) that a relay can follow like a change stream.

SQLite calls are synchronous: each ``async`` method does its work in one go on the event
loop's thread. On a local file that takes microseconds to a few milliseconds, which is what a
teaching library wants; a networked database would deserve an async driver.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from castore_edu.core.arguments import require_bool
from castore_edu.core.clock import Clock, utc_now
from castore_edu.core.errors import EventAlreadyExistsError
from castore_edu.core.events import AggregateIdsPage, EventDetail, GroupedEvent, LoggedEvent
from castore_edu.storage.listing import ListedAggregate, paginate, resolve_options
from castore_edu.storage.protocol import (
    StampedRow,
    check_clock,
    check_list_call,
    check_log_read,
    check_read,
    stamp_for_storage,
    stamp_group_for_one_database,
)
from castore_edu.storage.sql import ADD_SCHEMA_VERSION, COLUMNS, list_aggregates_query, select_events

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,  -- the rowid: 1, 2, 3... in commit order
    event_store_id TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    timestamp      TEXT    NOT NULL,
    payload        TEXT,                 -- JSON
    metadata       TEXT,                 -- JSON
    schema_version INTEGER NOT NULL DEFAULT 1,  -- the payload's shape (core/upcasting.py)
    UNIQUE (event_store_id, aggregate_id, version)
)
"""

INSERT = """
INSERT INTO events (event_store_id, aggregate_id, version, type, timestamp, payload, metadata, schema_version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""

# ``force`` overwrites the event in place: same row, so the same log position.
UPSERT = (
    INSERT
    + """
ON CONFLICT (event_store_id, aggregate_id, version) DO UPDATE SET
    type = excluded.type, timestamp = excluded.timestamp,
    payload = excluded.payload, metadata = excluded.metadata, schema_version = excluded.schema_version
"""
)


class ClosedByWith:
    """What owns SQLite connections: ``close()`` releases them, and a ``with`` block calls it on
    the way out, whatever happened inside. The adapter, the snapshot store, the projection runner
    and the course's ``Pokedex`` are four."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class SQLiteEventStorageAdapter(ClosedByWith):
    """Events in an SQLite database file (``":memory:"`` for a private, throw-away one).

    One file can hold any number of event stores. Use it as a context manager, or call
    :meth:`close`, to release the connection.
    """

    kind = "SQLiteEventStorageAdapter"

    def __init__(
        self, path: str | os.PathLike[str] = ":memory:", *, clock: Clock = utc_now, timeout: float = 30.0
    ) -> None:
        check_constructor_arguments(path, timeout)
        check_clock(clock)
        self.path = os.fspath(path)
        self.clock = clock
        # isolation_level=None: we write BEGIN and COMMIT ourselves, where they belong.
        self.connection = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        self.database = self._database_file()
        self._use_wal(timeout)
        self.connection.execute("PRAGMA synchronous = FULL")  # a commit survives a power cut
        self.connection.execute(SCHEMA)
        self._add_schema_version()

    def _has_schema_version(self) -> bool:
        return any(row[1] == "schema_version" for row in self.connection.execute("PRAGMA table_info(events)"))

    def _add_schema_version(self) -> None:
        """Add the ``schema_version`` column to a file made by a release before it (its rows were
        all written in version 1). Under the write lock, and asked again there: two processes that
        open the same old file at once add it once."""
        if self._has_schema_version():
            return
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            if not self._has_schema_version():
                self.connection.execute(ADD_SCHEMA_VERSION)
            self.connection.execute("COMMIT")
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise

    def _database_file(self) -> str | None:
        """The file this connection opened, as SQLite itself reports it; ``None`` for a private
        database (``":memory:"``, ``""`` for a temporary one, a ``file:`` URI with
        ``mode=memory``...), which no other adapter can open.

        Two adapters may share a transaction only if they open the same database. Asking SQLite
        beats guessing from the path: there are many ways to spell a private database. (A memory
        database shared by name, ``cache=shared``, reports no file either, so a group across two
        of its adapters is refused too: overcautious, never wrong.)
        """
        _, _, file = self.connection.execute("PRAGMA database_list").fetchone()  # main comes first
        return os.path.realpath(file) if file else None

    def shares_database_with(self, adapter: object) -> bool:
        """True if ``adapter`` writes to this adapter's database (so one transaction can hold both)."""
        if adapter is self:
            return True
        return (
            isinstance(adapter, SQLiteEventStorageAdapter)
            and self.database is not None
            and adapter.database == self.database
        )

    def _use_wal(self, timeout: float) -> None:
        """Switch to write-ahead logging: readers never block the writer, nor it them.

        The switch needs a moment alone with the file; when another process holds it, SQLite
        answers "database is locked" at once instead of waiting, so we retry until ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.connection.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def __repr__(self) -> str:
        return f"SQLiteEventStorageAdapter({os.path.basename(self.path)!r})"

    def close(self) -> None:
        self.connection.close()

    # -- reading ---------------------------------------------------------------------------

    async def get_events(
        self,
        aggregate_id: str,
        *,
        event_store_id: str,
        min_version: int | None = None,
        max_version: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[EventDetail]:
        check_read(
            aggregate_id,
            event_store_id=event_store_id,
            min_version=min_version,
            max_version=max_version,
            limit=limit,
            reverse=reverse,
        )
        query, parameters = select_events(
            event_store_id,
            aggregate_id,
            min_version=min_version,
            max_version=max_version,
            limit=limit,
            reverse=reverse,
            placeholder="?",
        )
        return [_to_event(row) for row in self.connection.execute(query, parameters)]

    async def list_aggregate_ids(
        self,
        *,
        event_store_id: str,
        limit: int | None = None,
        page_token: str | None = None,
        initial_event_after: str | None = None,
        initial_event_before: str | None = None,
        reverse: bool | None = None,
    ) -> AggregateIdsPage:
        check_list_call(event_store_id)
        options = resolve_options(
            self.kind,
            event_store_id=event_store_id,
            limit=limit,
            page_token=page_token,
            initial_event_after=initial_event_after,
            initial_event_before=initial_event_before,
            reverse=reverse,
        )
        rows = self.connection.execute(list_aggregates_query("?"), (event_store_id,))
        return paginate(self.kind, [ListedAggregate(*row) for row in rows], options)

    async def read_log(self, *, after_position: int = 0, limit: int | None = None) -> list[LoggedEvent]:
        """Every event of every event store in this file, in commit order, after a position."""
        check_log_read(after_position, limit)
        rows = self.connection.execute(
            f"SELECT position, event_store_id, {COLUMNS} FROM events"
            " WHERE position > ? ORDER BY position LIMIT ?",
            (after_position, -1 if limit is None else limit),  # LIMIT -1: no limit
        )
        return [LoggedEvent(row[0], row[1], _to_event(row[2:])) for row in rows]

    async def last_position(self) -> int:
        (position,) = self.connection.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        return int(position)

    # -- writing ---------------------------------------------------------------------------

    async def push_event(
        self, event: EventDetail, *, event_store_id: str, force: bool = False
    ) -> EventDetail:
        require_bool("force", force)
        stamped = stamp_for_storage(event, self.clock, event_store_id=event_store_id)
        return self._write_all([(event_store_id, *stamped)], force)[0]

    def group_event(self, event: EventDetail) -> GroupedEvent:
        return GroupedEvent(event=event, event_storage_adapter=self)

    async def push_event_group(
        self, grouped_events: Sequence[GroupedEvent], *, force: bool = False
    ) -> list[EventDetail]:
        """All events in one transaction: a conflict anywhere rolls every one of them back."""
        require_bool("force", force)
        rows = stamp_group_for_one_database(
            grouped_events,
            self.clock,
            same_database=self.shares_database_with,
            database=f"SQLite database ({self.path})",
        )
        return self._write_all(rows, force)

    def _write_all(self, rows: list[StampedRow], force: bool) -> list[EventDetail]:
        """Insert checked, stamped events in one transaction and one statement: all, or none.

        ``executemany`` runs the INSERT once per row, in order, and stops at the first row the
        database refuses. It does not say which row that was, but the connection counts the rows
        it changed (``total_changes``): as many rows went in as came before the refused one.
        """
        statement = UPSERT if force else INSERT
        parameters = [
            (
                event_store_id,
                event.aggregate_id,
                event.version,
                event.type,
                event.timestamp,
                payload,
                metadata,
                event.schema_version,
            )
            for event_store_id, event, payload, metadata in rows
        ]
        # BEGIN IMMEDIATE takes the write lock now, so two writers queue up instead of both
        # reading first and then failing to upgrade their locks.
        self.connection.execute("BEGIN IMMEDIATE")
        changes_before = self.connection.total_changes
        try:
            try:
                self.connection.executemany(statement, parameters)
            except sqlite3.IntegrityError as error:
                if "UNIQUE" not in str(error):
                    raise
                event_store_id, event, _, _ = rows[self.connection.total_changes - changes_before]
                raise EventAlreadyExistsError(
                    event_store_id=event_store_id, aggregate_id=event.aggregate_id, version=event.version
                ) from None
            self.connection.execute("COMMIT")
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        return [event for _, event, _, _ in rows]


def check_constructor_arguments(path: object, timeout: object) -> None:
    """Refuse, at construction, what ``sqlite3.connect`` would refuse later or misread."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or an os.PathLike, got {path!r}")
    # bool is an int: timeout=True is a bug, not one second.
    if not isinstance(timeout, int | float) or isinstance(timeout, bool):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not timeout >= 0:  # written so that NaN fails too
        raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")


def _to_event(row: Sequence[Any]) -> EventDetail:
    aggregate_id, version, type_, timestamp, payload, metadata, schema_version = row
    return EventDetail(
        aggregate_id=aggregate_id,
        version=version,
        type=type_,
        timestamp=timestamp,
        payload=None if payload is None else json.loads(payload),
        metadata=None if metadata is None else json.loads(metadata),
        schema_version=schema_version,
    )
