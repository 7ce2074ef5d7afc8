"""The projection runner on SQLite: the read model in the events' own file.

The runner opens a connection of its own to the file of the event stores it follows, and each
step is one transaction on it::

    BEGIN IMMEDIATE                   -- the write lock, now: no other writer until COMMIT
    SELECT position FROM projection_checkpoints ...  -- still where the step read the log after?
    ... projection.apply(connection, entry) for each entry of the batch ...
    UPDATE projection_checkpoints SET position = ...
    COMMIT                            -- the read model and the checkpoint, together

A connection of its own, because a transaction belongs to a connection: the event storage
adapter's connection commits every push by itself, and a step must not share its transaction
with anybody else's writes. ``apply`` is a plain function (``def``, not ``async def``): it runs
while the transaction holds the database's write lock, so it should do its SQL and return, with
no ``await`` that would let other tasks of the process queue for that lock.

A process killed in the middle of a step leaves a transaction that never committed: SQLite's
write-ahead log drops it when the file is opened next (``synchronous = FULL``: a commit that
returned is on disk). ``tests/test_projection_kill.py`` checks it with real ``SIGKILL``\\ s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from castore_edu.core.arguments import got
from castore_edu.projections.projection import Projection
from castore_edu.projections.runner import ProjectionRunner, is_async_hook
from castore_edu.storage.protocol import innermost_adapter
from castore_edu.storage.sqlite import ClosedByWith


class SQLiteProjectionRunner(ClosedByWith, ProjectionRunner):
    """Runs ``projection`` on the SQLite file of its event stores, with a connection of its own
    (``runner.connection``, which a reader may use too). ``timeout``: seconds to wait for the
    write lock. Close it with ``runner.close()`` (or use ``with``)."""

    def __init__(self, projection: Projection, *, batch_size: int = 100, timeout: float = 30.0) -> None:
        super().__init__(projection, batch_size=batch_size)
        adapter = innermost_adapter(self.storage)
        if getattr(adapter, "kind", None) != "SQLiteEventStorageAdapter":
            raise TypeError(
                f"an SQLiteProjectionRunner follows events stored in SQLite, got {got(adapter)}. "
                "Hint: on PostgreSQL, use a PostgresProjectionRunner"
            )
        if adapter.database is None:
            raise ValueError(
                f"{adapter!r} keeps its events in a private database (':memory:'), which no other "
                "connection can open. Hint: store the events in a file, SQLiteEventStorageAdapter('events.sqlite')"
            )
        for hook_name in ("apply", "create", "drop"):
            hook = getattr(projection, hook_name)
            if hook is not None and is_async_hook(hook):
                raise TypeError(
                    f"on SQLite, {hook_name} must be a plain function (def, not async def): it runs "
                    "inside a transaction that holds the database's write lock"
                )
        self.path = adapter.database
        # isolation_level=None: the runner writes BEGIN and COMMIT itself, as the adapter does.
        self.connection = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        self.connection.execute("PRAGMA synchronous = FULL")  # a commit survives a power cut

    def close(self) -> None:
        self.connection.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[sqlite3.Connection]:
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
            self.connection.execute("COMMIT")
        except BaseException:
            if self.connection.in_transaction:  # a COMMIT that failed may have ended it already
                self.connection.execute("ROLLBACK")
            raise

    async def execute(
        self, connection: sqlite3.Connection, statement: str, parameters: Sequence[Any] = ()
    ) -> list[Any]:
        return connection.execute(statement.replace("%s", "?"), parameters).fetchall()

    async def query(self, statement: str, parameters: Sequence[Any] = ()) -> list[Any]:
        return await self.execute(self.connection, statement, parameters)

    async def call(self, hook: Any, connection: sqlite3.Connection, *arguments: Any) -> None:
        result = hook(connection, *arguments)
        if hasattr(result, "__await__"):  # an async hook in disguise (a lambda returning a coroutine)
            getattr(result, "close", lambda: None)()
            raise TypeError(
                f"on SQLite, a projection's hooks must be plain functions; {hook!r} returned {got(result)}"
            )
