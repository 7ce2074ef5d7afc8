"""The log-tailing relay: publish what storage *has*, not what a caller hoped to publish.

A :class:`~castore_edu.connected.connected_event_store.ConnectedEventStore` stores an event and then publishes it: two
writes to two systems, with nothing to make them one. If the process dies (or the publish fails)
in between, the event is stored and its message is lost for good. Castore's documentation points
to the other way: let the storage's own *data stream* (DynamoDB streams, a database's change log)
feed the message channel. This module is that other way.

The shipped storage adapters (in memory, SQLite, PostgreSQL) keep an ordered log
(:class:`~castore_edu.storage.protocol.OrderedLogStorage`): every accepted event gets the next
position (1, 2, 3...). A :class:`Relay` follows it, awaiting ``read_log`` and ``last_position``
(coroutines, so that a server database can serve them too):

1. read the log after its *checkpoint* (the last position it has published), a batch at a time;
2. publish each event on the channel routed to its event store — a ``NotificationMessage`` on a
   notification channel, a ``StateCarryingMessage`` with the aggregate at that version on a
   state-carrying one;
3. only then, move the checkpoint forward.

Why this loses nothing: an event is in the log as soon as it is stored, and the checkpoint only
passes it once its publish succeeded. A failed publish leaves the checkpoint before it, so the
next step publishes it again; a crash (or a cancelled task) forgets whatever was published since
the last checkpoint, so the next relay publishes that again. Messages are delivered **at least
once** — sometimes twice, which is why consumers must be idempotent (see ``idempotency``) — and,
the log being in commit order and each step publishing in log order, in order per aggregate
*from the checkpoint on*. After a failed step or a restart the relay goes back to its
checkpoint, so a consumer sees an aggregate's versions go back, then forward again (v1, v2, v3,
v2, v3, v4): a consumer that keeps the latest state should ignore versions at or below the one
it has (notebook 08, section 3).

"The log is in commit order, without gaps" is what makes a checkpoint safe: no event can appear
later at a position the relay has already passed. Without a guard, that holds for SQLite and
memory only: SQLite lets one writer in at a time, and memory appends to a list. On a server
database many transactions write at once, and one that took a lower position can commit
*after* one that took a higher position: a relay that had already passed the higher one would
skip the lower one for good. The PostgreSQL adapter
guards its log against that: a position is unique, and a writer takes the last committed one
plus one, so its log is in commit order with one unique position per event (see
``storage/postgres.py`` and notebook 09), and the relay follows it as it follows SQLite. An
adapter for another server database needs such a guard before a relay can follow it.

Checkpoints live where the events live: for an SQLite or PostgreSQL adapter in the table
``relay_checkpoints`` of the same database (keyed by the relay's name), so a relay started after
a restart continues where the old one stopped. For the in-memory adapter, an :class:`InMemoryCheckpointStore` plays
that part: keep the object to "survive" a simulated restart.

A forced overwrite (``push_event(..., force=True)`` on an existing version) changes an event in
place and keeps its log position: a relay that has passed it does not publish it again.

Events that evolve: the log holds each event as it was stored, in the schema version of its day.
Before publishing one, the relay brings it to its current shape through the upcasters of the
event store it is routed from (``EventStore.upcast``), so a consumer sees what ``get_events``
shows, never an old shape (``core/upcasting.py``).

A relay only follows storage that keeps an ordered log: its constructor refuses any other with
a ``TypeError`` that says what is missing
(:func:`~castore_edu.storage.protocol.require_ordered_log`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from castore_edu.core.arguments import got, require_duration, require_int, require_str
from castore_edu.core.events import EventDetail, LoggedEvent
from castore_edu.messaging.channels import (
    MessageChannel,
    NotificationMessageChannel,
    StateCarryingMessageChannel,
)
from castore_edu.messaging.messages import NotificationMessage, StateCarryingMessage
from castore_edu.storage.protocol import EventStorageAdapter, innermost_adapter, require_ordered_log
from castore_edu.storage.sqlite import SQLiteEventStorageAdapter

if TYPE_CHECKING:  # a type only: importing it would import its driver
    from castore_edu.storage.postgres import PostgresEventStorageAdapter

logger = logging.getLogger("castore_edu")


class CheckpointStore(Protocol):
    """Where a relay remembers the last log position it has published, by relay name.

    Both calls are coroutines: a checkpoint kept on a server database is a query away.
    """

    async def load(self, relay_name: str) -> int: ...

    async def save(self, relay_name: str, position: int) -> None: ...


def check_checkpoint_arguments(relay_name: object, position: object = 0) -> None:
    """What every checkpoint store checks: a relay's name, and a log position (an int >= 0)."""
    require_str("relay_name", relay_name)
    require_int("position", position, minimum=0)


CHECKPOINT_STORE_OF = {
    "SQLiteEventStorageAdapter": "SQLiteCheckpointStore",
    "PostgresEventStorageAdapter": "PostgresCheckpointStore",
    "InMemoryEventStorageAdapter": "InMemoryCheckpointStore",
}


def check_adapter_kind(adapter: object, expected: str) -> None:
    """Refuse an ``adapter`` that is not of the ``expected`` kind, pointing to the checkpoint
    store that fits the adapter given, if there is one.

    Recognised by ``kind``, the name every shipped adapter carries: importing the PostgreSQL
    adapter's class here would import its driver.
    """
    kind = getattr(adapter, "kind", None)
    if kind == expected:
        return
    fitting = CHECKPOINT_STORE_OF.get(kind) if isinstance(kind, str) else None
    hint = f". Hint: a {kind} keeps its checkpoints in a {fitting}" if fitting else ""
    raise TypeError(f"adapter must be a {expected}, got {got(adapter)}{hint}")


class InMemoryCheckpointStore:
    """Checkpoints in a dict. Survives a simulated restart as long as you keep this object."""

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}

    async def load(self, relay_name: str) -> int:
        check_checkpoint_arguments(relay_name)
        return self.positions.get(relay_name, 0)

    async def save(self, relay_name: str, position: int) -> None:
        check_checkpoint_arguments(relay_name, position)
        self.positions[relay_name] = position


class SQLiteCheckpointStore:
    """Checkpoints in the ``relay_checkpoints`` table of the events' own SQLite database.

    Each ``save`` is its own committed transaction, so a relay started on the same file after a
    crash reads exactly the last position that was saved.
    """

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS relay_checkpoints (
        relay_name TEXT    PRIMARY KEY,
        position   INTEGER NOT NULL
    )
    """

    def __init__(self, adapter: SQLiteEventStorageAdapter) -> None:
        check_adapter_kind(adapter, "SQLiteEventStorageAdapter")
        self.connection = adapter.connection
        self.connection.execute(self.SCHEMA)

    async def load(self, relay_name: str) -> int:
        check_checkpoint_arguments(relay_name)
        row = self.connection.execute(LOAD_CHECKPOINT.replace("%s", "?"), (relay_name,)).fetchone()
        return 0 if row is None else int(row[0])

    async def save(self, relay_name: str, position: int) -> None:
        check_checkpoint_arguments(relay_name, position)
        self.connection.execute(SAVE_CHECKPOINT.replace("%s", "?"), (relay_name, position))


class PostgresCheckpointStore:
    """Checkpoints in the ``relay_checkpoints`` table of the events' own PostgreSQL database
    (the adapter creates it with its own tables), through the adapter's connection.

    Like the SQLite one, each ``save`` commits on its own: a relay process started anywhere
    after a crash continues from the last position saved.
    """

    def __init__(self, adapter: PostgresEventStorageAdapter) -> None:
        check_adapter_kind(adapter, "PostgresEventStorageAdapter")
        self.adapter = adapter

    async def load(self, relay_name: str) -> int:
        check_checkpoint_arguments(relay_name)
        rows = await self.adapter.fetch(LOAD_CHECKPOINT, (relay_name,))
        return 0 if not rows else int(rows[0][0])

    async def save(self, relay_name: str, position: int) -> None:
        check_checkpoint_arguments(relay_name, position)
        await self.adapter.fetch(SAVE_CHECKPOINT, (relay_name, position))


# The same statements on both databases, up to the placeholder (``?`` on SQLite).
LOAD_CHECKPOINT = "SELECT position FROM relay_checkpoints WHERE relay_name = %s"
SAVE_CHECKPOINT = (
    "INSERT INTO relay_checkpoints (relay_name, position) VALUES (%s, %s)"
    " ON CONFLICT (relay_name) DO UPDATE SET position = excluded.position"
)


def check_checkpoint_store(checkpoints: object) -> None:
    """Refuse what cannot keep checkpoints: it needs ``load`` and ``save``. Passing the class
    instead of a store (the parentheses forgotten) is the likely slip."""
    if isinstance(checkpoints, type):
        raise TypeError(
            f"checkpoints must be a checkpoint store, got the class {checkpoints.__name__}. "
            f"Hint: create one, e.g. {checkpoints.__name__}()"
        )
    missing = [call for call in ("load", "save") if not callable(getattr(checkpoints, call, None))]
    if missing:
        raise TypeError(
            f"checkpoints must be a checkpoint store (with async load and save), got {got(checkpoints)}"
        )


def check_routes(routes: object) -> dict[str, MessageChannel]:
    """``routes`` as a dict, checked: event store ids (str) to notification or state-carrying
    channels, each of which lists that store among its sources."""
    if not isinstance(routes, Mapping):
        raise TypeError(
            f"routes must be a dict of event store ids to channels, got {got(routes)}. "
            'Hint: routes={"POKEMONS": pokemons_bus}'
        )
    for event_store_id, channel in routes.items():
        require_str("routes key", event_store_id, hint="a route's key is an event store id")
        if not isinstance(channel, NotificationMessageChannel | StateCarryingMessageChannel):
            raise TypeError(
                f"the relay publishes notification or state-carrying messages; the route of "
                f"{event_store_id!r} is a {type(channel).__name__}"
            )
        channel.get_event_store(event_store_id)  # fails now, not at the first event
    return dict(routes)


def default_checkpoints(storage: Any) -> CheckpointStore:
    """The events' own database for an SQLite or PostgreSQL adapter, else a fresh in-memory store."""
    real = innermost_adapter(storage)
    if isinstance(real, SQLiteEventStorageAdapter):
        return SQLiteCheckpointStore(real)
    if getattr(real, "kind", None) == "PostgresEventStorageAdapter":  # no import of its driver here
        return PostgresCheckpointStore(real)
    return InMemoryCheckpointStore()


class Relay:
    """Publishes every event of ``storage``'s ordered log on the channel routed to its event store.

    ``storage`` must keep an ordered log (an :class:`~castore_edu.storage.protocol.OrderedLogStorage`,
    as both shipped adapters do): the constructor refuses any other with a ``TypeError``.
    ``routes`` maps event store ids to notification or state-carrying channels; each channel must
    list that store among its sources. Events of other stores are passed over.

    Step by step: ``await relay.step()`` publishes one batch. As a task: ``relay.start()`` ...
    ``await relay.stop()``; the task reads the log again ``poll_interval`` seconds after it caught
    up, or as soon as :meth:`nudge` is called (plug :meth:`on_event_pushed` into an event store to
    nudge it on every push). After a failed publish it waits ``retry_delay`` seconds (or a nudge).
    Where it stands: ``await relay.checkpoint()`` and ``await relay.lag()``.
    """

    def __init__(
        self,
        storage: EventStorageAdapter,
        routes: Mapping[str, MessageChannel],
        *,
        name: str = "relay",
        checkpoints: CheckpointStore | None = None,
        batch_size: int = 100,
        poll_interval: float = 0.05,
        retry_delay: float = 0.05,
        cache_size: int = 1024,
    ) -> None:
        try:
            self.storage = require_ordered_log(storage)  # fails now, not at the first step
        except TypeError as error:
            raise TypeError(f"storage: {error}") from None  # say which argument it is
        self.routes = check_routes(routes)
        require_str("name", name)
        if checkpoints is not None:
            check_checkpoint_store(checkpoints)
        require_int("batch_size", batch_size, minimum=1)
        require_duration("poll_interval", poll_interval)
        require_duration("retry_delay", retry_delay)
        require_int("cache_size", cache_size, minimum=0)
        self.name = name
        self.checkpoints = checkpoints if checkpoints is not None else default_checkpoints(storage)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.published = 0  # messages this relay object has published
        self.failures = 0  # steps that ended with a failed publish
        self.last_error: Exception | None = None
        # Aggregates of recent events, to build state-carrying messages without reading storage.
        self._aggregates: OrderedDict[tuple[str, str], tuple[int, Any]] = OrderedDict()
        self._cache_size = cache_size
        self._task: asyncio.Task[None] | None = None
        self._wake_up: asyncio.Event | None = None
        self._waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"Relay({self.name!r}, routes={sorted(self.routes)})"

    # -- where it stands -------------------------------------------------------------------

    async def checkpoint(self) -> int:
        """The checkpoint, as saved: every event up to this log position has been published.

        Read from the checkpoint store each time (``await relay.checkpoint()``), so it is also
        right for a relay that has not stepped yet and continues where an earlier one stopped.
        """
        return await self.checkpoints.load(self.name)

    async def lag(self) -> int:
        """Events stored but not yet published (as far as the checkpoint knows): ``await relay.lag()``."""
        return await self.storage.last_position() - await self.checkpoint()

    # -- step by step ----------------------------------------------------------------------

    async def step(self) -> int:
        """Publish the next batch of the log; return how many log entries it covered.

        If a publish fails, the checkpoint moves to the last event published before it and the
        error is raised: the next step starts again from the event that failed. A
        ``BaseException`` (a cancelled task, a :class:`~castore_edu.testing.faults.SimulatedCrash`) saves
        nothing, as a real crash could not: the next relay repeats the batch.
        """
        start = await self.checkpoint()
        entries = await self.storage.read_log(after_position=start, limit=self.batch_size)
        done = start
        try:
            for entry in entries:
                await self._publish(entry)
                done = entry.position
        except Exception as error:
            self.failures += 1
            self.last_error = error
            await self._save(start, done)
            raise
        await self._save(start, done)
        return len(entries)

    async def catch_up(self, *, max_failures: int = 10) -> int:
        """Step until everything in the log is published; return how many entries that took.

        A failed publish is retried at once, up to ``max_failures`` failures in a row. A batch
        shorter than ``batch_size`` reached the end of the log: no need to load the checkpoint
        again to know it.
        """
        require_int("max_failures", max_failures, minimum=0)
        covered = failures = 0
        while True:
            try:
                count = await self.step()
            except Exception:
                failures += 1
                if failures > max_failures:
                    raise
                continue
            failures = 0
            covered += count
            if count < self.batch_size:
                return covered

    async def _save(self, start: int, done: int) -> None:
        if done > start:
            await self.checkpoints.save(self.name, done)
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._waiters.clear()

    async def _publish(self, entry: LoggedEvent) -> None:
        """Publish the event of ``entry`` in its current shape: the log holds events as they were
        stored, so each goes through its event store's upcasters first (``EventStore.upcast``),
        as a read through the store would. A stored event that an upcaster splits is published as
        its parts, in order; on a state-carrying channel each part carries the aggregate at the
        stored event's version, after all of its parts. An event that its store cannot upcast
        (:class:`~castore_edu.core.errors.UpcastError`) stops the relay there, as a failed publish
        does, until the code can read it: skipping it would lose it for good."""
        channel = self.routes.get(entry.event_store_id)
        if channel is None:
            return
        event_store = channel.get_event_store(entry.event_store_id)
        upcast = getattr(event_store, "upcast", None)  # a store of one's own may not upcast
        events = [entry.event] if upcast is None else upcast(entry.event)
        if isinstance(channel, StateCarryingMessageChannel):
            aggregate = await self._aggregate_at(event_store, entry, events)
            for event in events:
                await channel.publish_message(StateCarryingMessage(entry.event_store_id, event, aggregate))
                self.published += 1
        else:
            for event in events:
                await channel.publish_message(NotificationMessage(entry.event_store_id, event))
                self.published += 1

    async def _aggregate_at(self, event_store: Any, entry: LoggedEvent, events: list[EventDetail]) -> Any:
        """The aggregate at ``entry``'s version: folded from the previous one when this relay has
        it (the log brings an aggregate's events in version order), else read from the store.
        ``events`` are the stored event's current-shape parts (usually one)."""
        stored = entry.event
        key = (entry.event_store_id, stored.aggregate_id)
        cached = self._aggregates.get(key)
        if cached is not None and cached[0] == stored.version:
            return cached[1]  # the same event again, after a failed publish
        if stored.version == 1 or (cached is not None and cached[0] == stored.version - 1):
            aggregate = None if cached is None or stored.version == 1 else cached[1]
            for event in events:
                aggregate = event_store.reducer(aggregate, event)
        else:
            result = await event_store.get_aggregate(stored.aggregate_id, max_version=stored.version)
            aggregate = result.aggregate
        self._aggregates[key] = (stored.version, aggregate)
        self._aggregates.move_to_end(key)
        if len(self._aggregates) > self._cache_size:
            self._aggregates.popitem(last=False)
        return aggregate

    # -- as a task -------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the log until cancelled: step, and when caught up (or after a failed publish)
        wait for a nudge or ``poll_interval`` (``retry_delay``) seconds."""
        self._wake_up = asyncio.Event()
        try:
            while True:
                try:
                    covered = await self.step()
                except Exception as error:
                    logger.info("relay %s: publish failed, retrying: %r", self.name, error)
                    await self._pause(self.retry_delay)
                    continue
                if covered < self.batch_size:
                    await self._pause(self.poll_interval)
                else:
                    await asyncio.sleep(0)  # more to do, but let the other tasks run too
        finally:
            self._wake_up = None
            for waiter in self._waiters:
                waiter.cancel()
            self._waiters.clear()

    async def _pause(self, seconds: float) -> None:
        wake_up = self._wake_up
        assert wake_up is not None
        # The timer only sets the same event a nudge sets. (Not ``asyncio.wait_for``: on
        # Python 3.11 it can swallow a cancellation that arrives as the wait ends.)
        timer = asyncio.get_running_loop().call_later(seconds, wake_up.set)
        try:
            await wake_up.wait()
        finally:
            timer.cancel()
        wake_up.clear()

    def nudge(self) -> None:
        """Tell a running relay to read the log now instead of at the end of its pause."""
        if self._wake_up is not None:
            self._wake_up.set()

    async def on_event_pushed(self, result: Any) -> None:
        """An ``on_event_pushed`` callback for event stores: nudge the relay after every push.

        Only a shortcut for latency: the relay would find the event at its next poll anyway.
        """
        self.nudge()

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a task of the running event loop; return the task."""
        if self.running:
            raise RuntimeError(f"relay {self.name!r} is already running")
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"relay {self.name}")
        return self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Cancel the task started by :meth:`start` and wait for it to end.

        A relay that died of something else than the cancellation raises that error here.
        """
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait([task])
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error

    async def wait_until_published(self, position: int | None = None) -> None:
        """Wait until the running relay's checkpoint reaches ``position`` (default: the end of
        the log now)."""
        if position is not None:
            require_int("position", position, minimum=0)
        target = await self.storage.last_position() if position is None else position
        self.nudge()
        while await self.checkpoint() < target:
            task = self._task
            if task is None or task.done():
                raise RuntimeError(f"relay {self.name!r} is not running")
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
