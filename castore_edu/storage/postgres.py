"""An event storage adapter on PostgreSQL: a server database, for many writers on many machines.

The table is the SQLite adapter's, and so is the rule that makes concurrent writers safe::

    UNIQUE (event_store_id, aggregate_id, version)

Two writers that both append version ``n``, in two processes on two machines, cannot both
succeed: the server refuses the second row, and we turn that refusal into
:class:`EventAlreadyExistsError`. Payloads and metadata are stored as ``json`` (not ``jsonb``,
which would reorder their keys), so what you read back equals what you wrote.

**The ordered log, and the one thing a server database changes.** Every row takes the next
``position`` from an identity column, and ``read_log`` returns rows after a position, as on
SQLite. But SQLite lets one writer in at a time; PostgreSQL lets many transactions write at
once, and a number taken from a sequence is not a commit order. Transaction A takes position 1,
transaction B takes position 2 and commits first: for a moment the log shows 2 without 1. A relay
that reads then moves its checkpoint to 2, and when A commits, position 1 is behind the
checkpoint: skipped for good, and no error anywhere. (Notebook 09 reproduces it.)

This adapter closes the gap with the same kind of rule that guards versions: **a position is
unique too** (it is the primary key), and a writer takes the last *committed* position plus one.
Transaction B, which sees 1 uncommitted as nothing, also asks for position 1; the server makes
it wait until A has finished, then refuses it, and B writes again, now as 2. So a row can only
take position ``p`` once ``p - 1`` has committed: positions become visible in order and without
gaps, and a reader can never see 2 before 1. The cost: writers to one database take turns on
the next position. A writer that loses pays one more round trip, and a long transaction holds
every other writer back; a group of many events in one transaction pays its turn once.

eventsourcing's PostgreSQL recorder reaches the same order another way: every write transaction
begins with ``LOCK TABLE ... IN EXCLUSIVE MODE``, so writers queue for the table's lock instead
of retrying (two more round trips per write: the transaction's ``BEGIN`` and the lock). The
other well-known guard keeps writers parallel and makes the *reader* careful: store each row's
transaction id (``pg_current_xact_id()``) and read only rows of transactions older than the
oldest one still running (``pg_snapshot_xmin(pg_current_snapshot())``). Its log order is then the
transaction ids' order, not a plain number, which is more than this course's ``position`` can
carry. Notebook 09 sets the three side by side.

**Waking a reader.** Every write also sends ``NOTIFY castore_edu_events``. PostgreSQL
delivers a notification only once the transaction has committed, and only to connections that
are listening at that moment: it is a wake-up, not a delivery. :meth:`commits` listens, and a
relay nudged by it reads the log at once instead of at its next poll; whatever a listener misses
(it was disconnected), the log still has.

**Connections.** The adapter connects on first use, with psycopg 3's async API, one connection
per adapter; calls from concurrent tasks take turns on it. It reconnects when used from a new
event loop (a notebook's kernel, a later ``asyncio.run``) and after the server went away: a call
that fails raises :class:`ServerUnavailableError`, and the next one connects again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import psycopg
import psycopg.conninfo
import psycopg.errors

from castore_edu.core.arguments import require_bool
from castore_edu.core.clock import Clock, utc_now
from castore_edu.core.errors import EventAlreadyExistsError, ServerUnavailableError
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

NOTIFY_CHANNEL = "castore_edu_events"
# The constraint that refuses a position another writer took first (the primary key's default name).
POSITION_TAKEN = "events_pkey"

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS events (
        position       BIGINT  PRIMARY KEY,  -- 1, 2, 3... in commit order (see INSERT)
        event_store_id TEXT    NOT NULL,
        aggregate_id   TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        type           TEXT    NOT NULL,
        timestamp      TEXT    NOT NULL,
        payload        JSON,
        metadata       JSON,
        schema_version INTEGER NOT NULL DEFAULT 1,  -- the payload's shape (core/upcasting.py)
        UNIQUE (event_store_id, aggregate_id, version)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS relay_checkpoints (
        relay_name TEXT   PRIMARY KEY,
        position   BIGINT NOT NULL
    )
    """,
)

# A push of one event is one statement, so one round trip and, in autocommit mode, one
# transaction: as cheap to send as a plain INSERT. Its position is the last committed one plus
# one: see the module docstring for why that keeps the log in commit order. The statement also
# sends the NOTIFY that wakes listeners when it commits (pg_notify in a WITH, joined in so that it
# runs).
INSERT = f"""
WITH wake AS (SELECT pg_notify('{NOTIFY_CHANNEL}', ''))
INSERT INTO events
    (position, event_store_id, aggregate_id, version, type, timestamp, payload, metadata, schema_version)
SELECT (SELECT COALESCE(MAX(position), 0) + 1 FROM events), %s, %s, %s, %s, %s, %s::json, %s::json, %s
FROM wake
"""

# A group is one statement too: its columns travel as arrays, and its events take the positions
# after the last one, in order (WITH ORDINALITY numbers them 1, 2, 3...). %b sends the arrays in
# PostgreSQL's binary format, which psycopg writes four times faster than quoted array text.
INSERT_ALL = f"""
WITH wake AS (SELECT pg_notify('{NOTIFY_CHANNEL}', ''))
INSERT INTO events
    (position, event_store_id, aggregate_id, version, type, timestamp, payload, metadata, schema_version)
SELECT last.position + event.number, event.event_store_id, event.aggregate_id, event.version,
       event.type, event.timestamp, event.payload, event.metadata, event.schema_version
FROM wake, (SELECT COALESCE(MAX(position), 0) AS position FROM events) AS last,
     unnest(%b::text[], %b::text[], %b::int[], %b::text[], %b::text[], %b::json[], %b::json[], %b::int[])
         WITH ORDINALITY AS event(event_store_id, aggregate_id, version, type, timestamp, payload, metadata,
                                  schema_version, number)
"""

# With force, one statement per event in one transaction, each overwriting its event in place if
# the version is taken (same row, so the same log position). A forced write is rare and may update
# rows other writers are inserting after, so it takes the table's lock first: it waits for the
# writers at work, holds off new ones, and never has to retry.
UPSERT = """
INSERT INTO events
    (position, event_store_id, aggregate_id, version, type, timestamp, payload, metadata, schema_version)
VALUES ((SELECT COALESCE(MAX(position), 0) + 1 FROM events), %s, %s, %s, %s, %s, %s::json, %s::json, %s)
ON CONFLICT (event_store_id, aggregate_id, version) DO UPDATE SET
    type = excluded.type, timestamp = excluded.timestamp,
    payload = excluded.payload, metadata = excluded.metadata, schema_version = excluded.schema_version
"""

# Any fixed number: the advisory lock that lets one process at a time create the tables.
SCHEMA_LOCK = 7_210_245


def describe_server(conninfo: str) -> str:
    """``PostgreSQL at host:port, database name``: where ``conninfo`` points, without secrets."""
    settings = psycopg.conninfo.conninfo_to_dict(conninfo)
    host = settings.get("host") or settings.get("hostaddr") or "localhost"
    port = settings.get("port") or 5432
    return f"PostgreSQL at {host}:{port}, database {settings.get('dbname') or settings.get('user') or '?'}"


class OwnConnection:
    """What owns one psycopg connection, made in the event loop it was first used in:
    ``await close()`` (or ``async with``) ends it — with an await in that loop, or else by closing
    its socket, since the old loop may be gone. The adapter and the projection runner are two."""

    _connection: psycopg.AsyncConnection[Any] | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            if self._loop is asyncio.get_running_loop():
                await connection.close()
            else:
                connection.pgconn.finish()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()


class PostgresEventStorageAdapter(OwnConnection):
    """Events in a PostgreSQL database, given by a libpq connection string (``conninfo``), for
    example ``"postgresql://user@127.0.0.1:5432/pokedex"``.

    One database holds any number of event stores. Use it as an async context manager, or
    ``await adapter.close()``, to release its connection.
    """

    kind = "PostgresEventStorageAdapter"

    def __init__(self, conninfo: str, *, clock: Clock = utc_now) -> None:
        if not isinstance(conninfo, str):
            raise TypeError(f"conninfo must be a str (a libpq connection string), got {conninfo!r}")
        check_clock(clock)
        try:
            self.server = describe_server(conninfo)
        except psycopg.ProgrammingError as error:
            raise ValueError(f"not a PostgreSQL connection string: {conninfo!r} ({error})") from None
        self.conninfo = conninfo
        self.clock = clock
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turns = asyncio.Lock()
        self._tables_ready = False

    def __repr__(self) -> str:
        return f"PostgresEventStorageAdapter({self.server})"

    # -- connecting ------------------------------------------------------------------------

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The connection, for one call at a time; connected (again) when needed."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A connection and a lock belong to the loop they were made in; that loop may be
            # gone (a finished asyncio.run), so the old connection is dropped, not awaited.
            self._forget_connection()
            self._loop, self._turns = loop, asyncio.Lock()
        async with self._turns:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = await self._connect()
                yield self._connection
            except psycopg.OperationalError as error:
                self._forget_connection()
                raise ServerUnavailableError(server=self.server, reason=first_line(error)) from error

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        # autocommit: a read is one statement; writes open their transaction explicitly.
        connection = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True, connect_timeout=10)
        if not self._tables_ready:
            # Several processes may open a fresh database at once, and two concurrent
            # CREATE TABLE IF NOT EXISTS can still collide: one creator at a time.
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                for statement in SCHEMA:
                    await connection.execute(statement)
                await add_schema_version(connection)
            self._tables_ready = True
        return connection

    def _forget_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            connection.pgconn.finish()  # closes the socket without the event loop

    # -- reading ---------------------------------------------------------------------------

    async def fetch(self, query: str, parameters: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one SQL statement on this adapter's connection (autocommit) and return its rows.

        For the tables that live beside the events (the relay's checkpoints); the events
        themselves are written only through the adapter's calls."""
        async with self._session() as connection:
            cursor = await connection.execute(query, parameters)
            return await cursor.fetchall() if cursor.description is not None else []

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
            placeholder="%s",
        )
        return [_to_event(row) for row in await self.fetch(query, parameters)]

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
        rows = await self.fetch(list_aggregates_query("%s"), (event_store_id,))
        return paginate(self.kind, [ListedAggregate(*row) for row in rows], options)

    async def read_log(self, *, after_position: int = 0, limit: int | None = None) -> list[LoggedEvent]:
        """Every event of every event store in this database, after a position, in log order
        (which, thanks to the writers' lock, is commit order: see the module docstring)."""
        check_log_read(after_position, limit)
        rows = await self.fetch(
            f"SELECT position, event_store_id, {COLUMNS} FROM events"
            " WHERE position > %s ORDER BY position LIMIT %s",
            (after_position, limit),
        )
        return [LoggedEvent(row[0], row[1], _to_event(row[2:])) for row in rows]

    async def last_position(self) -> int:
        [(position,)] = await self.fetch("SELECT COALESCE(MAX(position), 0) FROM events", ())
        return int(position)

    async def commits(self) -> AsyncIterator[None]:
        """Yield once after each committed write to this database, by anyone, for as long as
        you iterate: ``async for _ in adapter.commits(): relay.nudge()``.

        A wake-up, not a delivery: notifications sent while nobody listens are gone, and several
        may arrive as one. Read the log to know what is new. Uses a connection of its own.
        """
        try:
            connection = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        except psycopg.OperationalError as error:
            raise ServerUnavailableError(server=self.server, reason=first_line(error)) from error
        try:
            await connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
            async for _ in connection.notifies():
                yield None
        except psycopg.OperationalError as error:
            raise ServerUnavailableError(server=self.server, reason=first_line(error)) from error
        finally:
            await connection.close()

    # -- writing ---------------------------------------------------------------------------

    async def push_event(
        self, event: EventDetail, *, event_store_id: str, force: bool = False
    ) -> EventDetail:
        require_bool("force", force)
        stamped, payload, metadata = stamp_for_storage(event, self.clock, event_store_id=event_store_id)
        return (await self._write_all([(event_store_id, stamped, payload, metadata)], force))[0]

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
            same_database=lambda adapter: (
                isinstance(adapter, PostgresEventStorageAdapter) and adapter.conninfo == self.conninfo
            ),
            database=f"PostgreSQL database ({self.server})",
        )
        return await self._write_all(rows, force)

    async def _write_all(self, rows: list[StampedRow], force: bool) -> list[EventDetail]:
        """Insert checked, stamped events in one transaction: all, or none.

        A taken version makes the INSERT fail, which rolls the whole transaction back; only then
        do we ask which event it was. A taken position means another writer committed first:
        write again, after it.
        """
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
        while True:
            try:
                async with self._session() as connection:
                    if force:
                        await self._upsert(connection, parameters)
                    elif len(parameters) == 1:
                        await connection.execute(INSERT, parameters[0])
                    else:
                        columns = [list(column) for column in zip(*parameters, strict=True)]
                        await connection.execute(INSERT_ALL, columns)
                return [event for _, event, _, _ in rows]
            except psycopg.errors.UniqueViolation as error:
                if error.diag.constraint_name != POSITION_TAKEN:
                    raise await self._first_conflict(rows) from None

    @staticmethod
    async def _upsert(connection: psycopg.AsyncConnection[Any], parameters: list[tuple[Any, ...]]) -> None:
        async with connection.transaction(), connection.cursor() as cursor:
            await cursor.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # see UPSERT
            await cursor.executemany(UPSERT, parameters)
            await cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")  # delivered at commit

    async def _first_conflict(self, rows: list[StampedRow]) -> EventAlreadyExistsError:
        """The error for the first event the database refused: the first whose version was
        already stored, or taken by an earlier event of the same group."""
        keys = [(event_store_id, event.aggregate_id, event.version) for event_store_id, event, _, _ in rows]
        stored = await self.fetch(
            "SELECT event_store_id, aggregate_id, version FROM events"
            " WHERE (event_store_id, aggregate_id, version) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[], %s::int[]))",
            [list(column) for column in zip(*keys, strict=True)],
        )
        taken = set(stored)
        for event_store_id, aggregate_id, version in keys:
            if (event_store_id, aggregate_id, version) in taken:
                return EventAlreadyExistsError(
                    event_store_id=event_store_id, aggregate_id=aggregate_id, version=version
                )
            taken.add((event_store_id, aggregate_id, version))
        raise AssertionError("a unique violation, yet no event of the group conflicts")  # pragma: no cover


async def add_schema_version(connection: psycopg.AsyncConnection[Any]) -> None:
    """Add the ``schema_version`` column to a table made by a release before it (its rows were all
    written in version 1). Asked first, so that an up-to-date table takes no lock for it; the
    caller holds the schema lock, so two processes never add it at once."""
    cursor = await connection.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = 'events' AND column_name = 'schema_version'"
    )
    if await cursor.fetchone() is None:
        await connection.execute(ADD_SCHEMA_VERSION)


def first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _to_event(row: Sequence[Any]) -> EventDetail:
    aggregate_id, version, type_, timestamp, payload, metadata, schema_version = row
    # psycopg decodes json columns itself (with json.loads).
    return EventDetail(
        aggregate_id=aggregate_id,
        version=version,
        type=type_,
        timestamp=timestamp,
        payload=payload,
        metadata=metadata,
        schema_version=schema_version,
    )
