"""The projection runner: follow the log, and commit each batch *with* its checkpoint.

A relay (``reliability/relay.py``) publishes an event and then saves its checkpoint: two writes
to two systems, so a crash between them publishes the event again, and the consumer must
deduplicate (at least once). A projection's read model lives in the *same database* as its
checkpoint, and that changes everything: one transaction can hold both. A step of the runner

1. reads the checkpoint and the next batch of the log after it;
2. opens a transaction (on SQLite ``BEGIN IMMEDIATE``, on PostgreSQL with the checkpoint's row
   locked) and checks that the checkpoint is still where it was read;
3. applies each entry of the followed event stores to the read model (``projection.apply``);
4. writes the position of the batch's last entry as the checkpoint, and commits.

Either the read model changes *and* the checkpoint moves, or neither does: a failing apply, a
cancelled task or a killed process leave both as they were, and the next step applies the same
batch again, to a read model that has never seen it. Every event is applied **exactly once**,
across crashes, with no table of processed message keys. Compare notebook 08's idempotent
consumer behind a bus, which must remember every key it has applied because its deliveries and
its database are two systems (notebook 11 sets the two side by side).

Two more things a read model needs, and the runner gives:

- **Lag**: ``await runner.lag()``, the log entries stored and not yet projected.
- **Rebuild and switch**: a projection under a new name starts from the first event while the
  old one keeps serving readers. The table ``serving_projections`` says which projection serves
  a read model; ``await new.switch(read_model)`` catches up and points the read model at ``new``
  in the transaction of its last batch; ``await old.drop()`` then removes the old one.

The SQL is the same on both databases, up to the placeholder (``?`` on SQLite).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from castore_edu.core.arguments import got, require_int, require_str
from castore_edu.projections.projection import Projection
from castore_edu.storage.protocol import OrderedLogStorage, innermost_adapter, require_ordered_log

CHECKPOINTS_TABLE = """
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection_name TEXT   PRIMARY KEY,
    position        BIGINT NOT NULL
)
"""
SERVING_TABLE = """
CREATE TABLE IF NOT EXISTS serving_projections (
    read_model      TEXT PRIMARY KEY,
    projection_name TEXT NOT NULL
)
"""
ADD_CHECKPOINT = (
    "INSERT INTO projection_checkpoints (projection_name, position) VALUES (%s, 0)"
    " ON CONFLICT (projection_name) DO NOTHING"
)
LOAD_CHECKPOINT = "SELECT position FROM projection_checkpoints WHERE projection_name = %s"
SAVE_CHECKPOINT = "UPDATE projection_checkpoints SET position = %s WHERE projection_name = %s"
DELETE_CHECKPOINT = "DELETE FROM projection_checkpoints WHERE projection_name = %s"
SERVING = "SELECT projection_name FROM serving_projections WHERE read_model = %s"
SERVED_BY = "SELECT read_model FROM serving_projections WHERE projection_name = %s ORDER BY read_model"
SERVE = (
    "INSERT INTO serving_projections (read_model, projection_name) VALUES (%s, %s)"
    " ON CONFLICT (read_model) DO UPDATE SET projection_name = excluded.projection_name"
)


def check_projection(projection: object) -> Projection:
    if not isinstance(projection, Projection):
        raise TypeError(
            f"projection must be a Projection, got {got(projection)}. "
            "Hint: Projection('leaderboard_v1', event_stores=[...], apply=...)"
        )
    return projection


def followed_storage(projection: Projection) -> OrderedLogStorage:
    """The storage whose log the projection follows: its event stores' one, which they must share."""
    adapters = [store.get_event_storage_adapter() for store in projection.event_stores]
    first = innermost_adapter(adapters[0])
    for store, adapter in zip(projection.event_stores, adapters, strict=True):
        real = innermost_adapter(adapter)
        if real is not first and not same_database(first, real):
            raise ValueError(
                f"the event stores of {projection!r} must share one database: {store!r} is stored in "
                f"{real!r}, not in {first!r}. Hint: one runner follows one database's log"
            )
    try:
        return require_ordered_log(adapters[0])
    except TypeError as error:
        raise TypeError(f"event_stores: {error}") from None


def same_database(first: Any, other: Any) -> bool:
    """Whether two adapters write to one database (SQLite: the same file; PostgreSQL: conninfo)."""
    shares = getattr(first, "shares_database_with", None)
    if callable(shares):
        return bool(shares(other))
    conninfo = getattr(first, "conninfo", None)
    return conninfo is not None and getattr(other, "conninfo", None) == conninfo


class ProjectionRunner:
    """Runs a :class:`Projection`: its read model and checkpoint change in one transaction.

    The base of :class:`~castore_edu.projections.sqlite.SQLiteProjectionRunner` and
    :class:`~castore_edu.projections.postgres.PostgresProjectionRunner`, which say how a
    transaction begins and ends on their database. ``batch_size`` entries of the log per step
    (and per transaction). ``applied`` counts the events this runner object has applied.
    """

    def __init__(self, projection: Projection, *, batch_size: int = 100) -> None:
        self.projection = check_projection(projection)
        require_int("batch_size", batch_size, minimum=1)
        self.storage = followed_storage(projection)
        self.batch_size = batch_size
        self.applied = 0
        self._ready = False
        self._dropped = False
        self._previous: str | None = None  # what served the read model before the last switch
        # The checkpoint as this runner last saw it committed (None: read it). Only a hint: a step
        # checks it inside its transaction, where no other runner can move it.
        self._known: int | None = None
        self._turns: asyncio.Lock | None = None
        self._turns_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.projection.name!r}, batch_size={self.batch_size})"

    @property
    def name(self) -> str:
        return self.projection.name

    # -- what each database says -----------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """``async with runner.transaction() as connection:`` one transaction of the runner's own
        connection: committed when the block ends, rolled back if anything escapes it."""
        raise NotImplementedError

    async def execute(self, connection: Any, statement: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """Run one statement (written with ``%s`` placeholders) on ``connection``, in the
        transaction it is in; return its rows."""
        raise NotImplementedError

    async def query(self, statement: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """Run one statement (``%s`` placeholders) on the runner's connection, as a transaction
        of its own, and return its rows."""
        raise NotImplementedError

    async def call(self, hook: Any, connection: Any, *arguments: Any) -> None:
        """Call a projection's ``apply``, ``create`` or ``drop`` as its database wants it."""
        raise NotImplementedError

    async def lock_checkpoint(self, connection: Any) -> int:
        """The checkpoint, read inside the transaction so that no other runner can move it until
        the transaction ends."""
        rows = await self.execute(connection, LOAD_CHECKPOINT, (self.name,))
        return int(rows[0][0])

    # -- where it stands -------------------------------------------------------------------

    async def fetch(self, statement: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """The rows of one statement (``%s`` placeholders) run on the runner's connection: how a
        reader reads the read model. It waits for a step in progress, so it never sees half a batch."""
        async with self._turn():
            return await self.query(statement, parameters)

    async def checkpoint(self) -> int:
        """The saved checkpoint: every followed event up to this log position is in the read model."""
        async with self._turn():
            return await self._checkpoint()

    async def lag(self) -> int:
        """Log entries stored and not yet projected (as far as the checkpoint knows)."""
        return await self.storage.last_position() - await self.checkpoint()

    async def serving(self, read_model: str) -> str | None:
        """The name of the projection that serves ``read_model``, or ``None`` before any switch."""
        require_str("read_model", read_model)
        async with self._turn():
            await self._get_ready()
            rows = await self.query(SERVING, (read_model,))
        return None if not rows else str(rows[0][0])

    # -- step by step ----------------------------------------------------------------------

    async def step(self) -> int:
        """Apply the next batch of the log and move the checkpoint, in one transaction; return how
        many events it applied (entries of other event stores are covered, not applied).

        If ``apply`` raises, nothing of the batch is kept — neither the read model's changes nor
        the checkpoint — and the error propagates: the next step tries the same batch again.
        """
        async with self._turn():
            _, applied = await self._step()
        return applied

    async def run_until_caught_up(self) -> int:
        """Step until a batch reaches the end of the log; return how many events were applied."""
        total = 0
        while True:
            async with self._turn():
                covered, applied = await self._step()
            total += applied
            if covered < self.batch_size:
                return total

    async def switch(self, read_model: str) -> str | None:
        """Catch up, then make this projection the one serving ``read_model``, in the transaction
        of the batch that reached the end of the log. Returns the projection that served it
        before (``None`` if none did): once readers have moved, ``drop()`` it."""
        require_str("read_model", read_model, hint="the name readers ask for, e.g. 'leaderboard'")
        while True:
            async with self._turn():
                covered, _ = await self._step(switch_to=read_model)
            if covered < self.batch_size:
                return self._previous

    async def drop(self) -> None:
        """Remove the projection: its tables (``projection.drop``) and its checkpoint, in one
        transaction. Refused while it serves a read model: switch that to another one first."""
        async with self._turn():
            await self._get_ready()
            async with self.transaction() as connection:
                served = [row[0] for row in await self.execute(connection, SERVED_BY, (self.name,))]
                if served:
                    raise RuntimeError(
                        f"projection {self.name!r} still serves {served}: switch "
                        f"{'it' if len(served) == 1 else 'them'} to another projection first"
                    )
                if self.projection.drop is not None:
                    await self.call(self.projection.drop, connection)
                await self.execute(connection, DELETE_CHECKPOINT, (self.name,))
            self._dropped = True

    # -- the step itself -------------------------------------------------------------------

    async def _step(self, *, switch_to: str | None = None) -> tuple[int, int]:
        """One batch: ``(log entries covered, events applied)``. See the module docstring.

        The log is read *before* the transaction begins, after the checkpoint this runner last
        committed: on SQLite the transaction holds the database's write lock, and an ``await`` of
        storage inside it could let another task of the process queue for that lock behind it.
        Inside, the checkpoint is read again: if another runner of the same name moved it
        meanwhile, this step applies nothing (and the next one reads after the moved checkpoint).
        """
        await self._get_ready()
        start = self._known if self._known is not None else await self._checkpoint()
        entries = await self.storage.read_log(after_position=start, limit=self.batch_size)
        if not entries and switch_to is None:
            return 0, 0
        applied = 0
        async with self.transaction() as connection:
            self._known = await self.lock_checkpoint(connection)
            if self._known != start:
                return self.batch_size, 0  # someone else's step went first: read again
            for entry in entries:
                if self.projection.follows(entry.event_store_id):
                    for part in self.projection.in_current_shape(entry):
                        await self.call(self.projection.apply, connection, part)
                        applied += 1
            if entries:
                await self.execute(connection, SAVE_CHECKPOINT, (entries[-1].position, self.name))
            if switch_to is not None and len(entries) < self.batch_size:
                rows = await self.execute(connection, SERVING, (switch_to,))
                self._previous = None if not rows else str(rows[0][0])
                await self.execute(connection, SERVE, (switch_to, self.name))
        self.applied += applied  # only now: the transaction has committed
        if entries:
            self._known = entries[-1].position
        return len(entries), applied

    async def _checkpoint(self) -> int:
        await self._get_ready()
        rows = await self.query(LOAD_CHECKPOINT, (self.name,))
        return int(rows[0][0])

    async def _get_ready(self) -> None:
        """Create the runner's tables, the projection's (``projection.create``) and its checkpoint
        row, once per runner, in one transaction."""
        if self._dropped:
            raise RuntimeError(
                f"projection {self.name!r} was dropped. Hint: a new runner builds it again, from the first event"
            )
        if self._ready:
            return
        async with self.transaction() as connection:
            await self.create_tables(connection)
            if self.projection.create is not None:
                await self.call(self.projection.create, connection)
            await self.execute(connection, ADD_CHECKPOINT, (self.name,))
        self._ready = True

    async def create_tables(self, connection: Any) -> None:
        """The two tables every runner shares: ``projection_checkpoints`` and ``serving_projections``."""
        await self.execute(connection, CHECKPOINTS_TABLE)
        await self.execute(connection, SERVING_TABLE)

    def _turn(self) -> AbstractAsyncContextManager[None]:
        """One call at a time per runner: its connection holds one transaction at a time."""
        loop = asyncio.get_running_loop()
        if self._turns is None or self._turns_loop is not loop:
            self._turns, self._turns_loop = asyncio.Lock(), loop
        return self._turns


async def awaited(result: Any) -> None:
    """Await ``result`` if a hook returned an awaitable (an ``async def`` hook)."""
    if inspect.isawaitable(result):
        await result


def is_async_hook(hook: Any) -> bool:
    """Whether calling ``hook`` gives a coroutine: an ``async def`` function, or an object whose
    ``__call__`` is one."""
    return inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(type(hook).__call__)
