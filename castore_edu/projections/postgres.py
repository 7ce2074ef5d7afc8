"""The projection runner on PostgreSQL: the read model in the events' own database.

The same step as on SQLite (``runner.py``), with the server's tools: the runner has a psycopg
connection of its own to the database of the event stores it follows, and each step is one
transaction on it::

    BEGIN
    SELECT position FROM projection_checkpoints WHERE projection_name = ... FOR UPDATE
    ... await projection.apply(connection, entry) for each entry of the batch ...
    UPDATE projection_checkpoints SET position = ...
    COMMIT

``FOR UPDATE`` locks the checkpoint's row until the commit: a second runner of the same
projection (another process, another machine) waits there, then sees the moved checkpoint and
applies nothing twice. SQLite needs no such lock, as it lets one writer in at a time. ``apply``
is an ``async def`` function here: every statement is a round trip to the server
(``await connection.execute(...)``, with ``%s`` placeholders).

The log it follows is the adapter's (``read_log``), which the adapter keeps in commit order
(``storage/postgres.py``): a checkpoint never passes an event that commits later.

This module imports psycopg (the ``postgres`` extra), and nothing else in the library imports
it: ``from castore_edu import PostgresProjectionRunner`` loads it on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from castore_edu.core.arguments import got
from castore_edu.core.errors import ServerUnavailableError
from castore_edu.projections.projection import Projection
from castore_edu.projections.runner import LOAD_CHECKPOINT, ProjectionRunner, awaited
from castore_edu.storage.postgres import OwnConnection, PostgresEventStorageAdapter, first_line
from castore_edu.storage.protocol import innermost_adapter

# Any fixed number (not the adapter's): one process at a time creates the runners' tables.
SCHEMA_LOCK = 7_210_246


class PostgresProjectionRunner(OwnConnection, ProjectionRunner):
    """Runs ``projection`` on the PostgreSQL database of its event stores, with a connection of
    its own, opened on first use. ``await runner.fetch(sql, parameters)`` reads the read model;
    ``await runner.close()`` (or ``async with``) releases the connection."""

    def __init__(self, projection: Projection, *, batch_size: int = 100) -> None:
        super().__init__(projection, batch_size=batch_size)
        adapter = innermost_adapter(self.storage)
        if not isinstance(adapter, PostgresEventStorageAdapter):
            raise TypeError(
                f"a PostgresProjectionRunner follows events stored in PostgreSQL, got {got(adapter)}. "
                "Hint: on SQLite, use an SQLiteProjectionRunner"
            )
        self.conninfo = adapter.conninfo
        self.server = adapter.server
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _connected(self) -> psycopg.AsyncConnection[Any]:
        """The runner's connection, (re)opened when needed: after the server went away, or from a
        new event loop (a connection belongs to the loop it was made in)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop and self._connection is not None:
            self._connection.pgconn.finish()  # the old loop may be gone: no await on it
            self._connection = None
        self._loop = loop
        if self._connection is None or self._connection.closed:
            try:
                self._connection = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, connect_timeout=10
                )
            except psycopg.OperationalError as error:
                raise ServerUnavailableError(server=self.server, reason=first_line(error)) from error
        return self._connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A transaction in *pipeline mode*: psycopg sends its statements without waiting for each
        answer, and waits only where a result is read (the checkpoint's ``SELECT``) and at the
        end. A batch of ``n`` events then costs two round trips, not ``n + 4``. An error of any
        statement comes back at the latest when the block ends, and rolls the transaction back."""
        connection = await self._connected()
        try:
            async with connection.pipeline(), connection.transaction():
                yield connection
        except psycopg.OperationalError as error:
            self._connection = None  # the server went away: connect again next time
            connection.pgconn.finish()
            raise ServerUnavailableError(server=self.server, reason=first_line(error)) from error

    async def execute(
        self, connection: psycopg.AsyncConnection[Any], statement: str, parameters: Sequence[Any] = ()
    ) -> list[Any]:
        """In pipeline mode a statement's rows are known only once they are asked for, so the
        runner asks for the rows of its ``SELECT`` statements, and of nothing else."""
        cursor = await connection.execute(statement, parameters)
        return await cursor.fetchall() if statement.lstrip().upper().startswith("SELECT") else []

    async def query(self, statement: str, parameters: Sequence[Any] = ()) -> list[Any]:
        connection = await self._connected()  # autocommit: one statement, one transaction
        try:
            cursor = await connection.execute(statement, parameters)
        except psycopg.OperationalError as error:
            self._connection = None
            connection.pgconn.finish()
            raise ServerUnavailableError(server=self.server, reason=first_line(error)) from error
        return await cursor.fetchall() if cursor.description is not None else []

    async def call(self, hook: Any, connection: psycopg.AsyncConnection[Any], *arguments: Any) -> None:
        await awaited(hook(connection, *arguments))

    async def lock_checkpoint(self, connection: psycopg.AsyncConnection[Any]) -> int:
        rows = await self.execute(connection, LOAD_CHECKPOINT + " FOR UPDATE", (self.name,))
        return int(rows[0][0])

    async def create_tables(self, connection: psycopg.AsyncConnection[Any]) -> None:
        # Two processes creating the same tables at once can collide even with IF NOT EXISTS.
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        await super().create_tables(connection)
