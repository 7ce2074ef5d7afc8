"""Idempotent consumers: handle each message's effect once, however often it is delivered.

Every delivery guarantee worth having is "at least once": a relay republishes after a crash, a
publisher retries after a lost acknowledgement, a replay pours history again. So a consumer will
see some messages twice. An *idempotent* consumer makes the second delivery harmless.

Messages about events carry a natural identity: ``(event_store_id, aggregate_id, version)``
names exactly one event, forever. :class:`IdempotentHandler` wraps a handler, remembers the keys
it has processed, and skips a message whose key it has seen:

    counter = idempotent(count_levels)        # a handler that is NOT idempotent on its own...
    bus_adapter.on({}, counter)               # ...made so by the wrapper

Two details matter:

- A key is recorded only **after** the handler succeeded. A handler that fails is retried (by the
  bus or queue) and is not skipped. The price: if the process dies between the handler's effect
  and the record, the effect happens twice. Keep the effect and the record in one transaction
  when that matters (the course's ``LevelBoard`` keeps both in memory and changes both with no
  ``await`` in between, so nothing can come between them).
- Two deliveries of the same message may run concurrently (a bus runs each in its own task). The
  second one waits for the first, then skips it if the first succeeded.

Replays (``pour_*`` with ``replay=True``) are deduplicated the same way: replaying history into a
consumer that has seen it changes nothing. To *rebuild* a read model from scratch, clear the
read model and its processed keys together, then replay.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from castore_edu.core.arguments import got, require_callable, require_str
from castore_edu.messaging.delivery import TaskContext

MessageKey = tuple[str, str, int]


def message_key(message: Any) -> MessageKey:
    """``(event_store_id, aggregate_id, version)``: the identity of the event a message carries."""
    event = getattr(message, "event", None)
    if event is None or not isinstance(getattr(message, "event_store_id", None), str):
        hint = ""
        if hasattr(message, "aggregate_id"):
            hint = ". Hint: an AggregateExistsMessage carries no event, so it has no key"
        raise TypeError(
            f"message must carry an event (a NotificationMessage or StateCarryingMessage), "
            f"got {got(message)}{hint}"
        )
    return (message.event_store_id, event.aggregate_id, event.version)


def check_key(key: object) -> MessageKey:
    """``key``, checked to be a message key: ``(event_store_id, aggregate_id, version)``."""
    if not (
        isinstance(key, tuple)
        and len(key) == 3
        and isinstance(key[0], str)
        and isinstance(key[1], str)
        and isinstance(key[2], int)
        and not isinstance(key[2], bool)
    ):
        raise TypeError(
            f"a message key must be a tuple (event_store_id: str, aggregate_id: str, version: int), "
            f"got {got(key)}. Hint: message_key(message) makes one"
        )
    return key


def check_keys(keys: object) -> set[MessageKey]:
    """``keys`` as a set, checked to be an iterable (not a str) of message keys."""
    if isinstance(keys, str) or not hasattr(keys, "__iter__"):
        raise TypeError(f"keys must be a list of message keys, got {got(keys)}")
    return {check_key(key) for key in keys}


def check_connection(connection: object) -> None:
    """Refuse what is not an SQLite connection; the adapter instead of its connection is the
    likely slip."""
    if not isinstance(connection, sqlite3.Connection):
        hint = ""
        if isinstance(getattr(connection, "connection", None), sqlite3.Connection):
            hint = ". Hint: pass the adapter's connection, adapter.connection"
        raise TypeError(f"connection must be an sqlite3.Connection, got {got(connection)}{hint}")


class ProcessedMessages(Protocol):
    """The set of message keys a consumer has processed."""

    def __contains__(self, key: object) -> bool: ...

    def add(self, key: MessageKey) -> None: ...

    def clear(self) -> None: ...


class InMemoryProcessedMessages:
    """Processed keys in a Python set."""

    def __init__(self, keys: Iterable[MessageKey] = ()) -> None:
        self.keys: set[MessageKey] = check_keys(keys)

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: MessageKey) -> None:
        self.keys.add(check_key(key))

    def clear(self) -> None:
        self.keys.clear()


class SQLiteProcessedMessages:
    """Processed keys in the table ``processed_messages`` of an SQLite database, per consumer.

    Pass the connection of the database that holds the consumer's read model, so that one
    transaction can update both (see the module docstring). Nothing here commits: on an
    autocommit connection (``isolation_level=None``, like the SQLite adapter's) every statement
    commits by itself; otherwise the caller commits the read model and the keys together.
    """

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS processed_messages (
        consumer       TEXT    NOT NULL,
        event_store_id TEXT    NOT NULL,
        aggregate_id   TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        PRIMARY KEY (consumer, event_store_id, aggregate_id, version)
    )
    """

    def __init__(self, connection: sqlite3.Connection, consumer: str) -> None:
        check_connection(connection)
        require_str("consumer", consumer, hint="name the consumer whose keys these are")
        self.connection = connection
        self.consumer = consumer
        connection.execute(self.SCHEMA)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 3:
            return False
        return (
            self.connection.execute(
                "SELECT 1 FROM processed_messages WHERE consumer = ? AND event_store_id = ?"
                " AND aggregate_id = ? AND version = ?",
                (self.consumer, *key),
            ).fetchone()
            is not None
        )

    def __len__(self) -> int:
        (count,) = self.connection.execute(
            "SELECT COUNT(*) FROM processed_messages WHERE consumer = ?", (self.consumer,)
        ).fetchone()
        return int(count)

    def add(self, key: MessageKey) -> None:
        check_key(key)
        self.connection.execute(
            "INSERT OR IGNORE INTO processed_messages (consumer, event_store_id, aggregate_id, version)"
            " VALUES (?, ?, ?, ?)",
            (self.consumer, *key),
        )

    def clear(self) -> None:
        self.connection.execute("DELETE FROM processed_messages WHERE consumer = ?", (self.consumer,))


def check_processed(processed: object) -> None:
    """Refuse what cannot keep processed keys (``in``, ``add``, ``clear``); the class instead of
    an instance (the parentheses forgotten) is the likely slip."""
    if isinstance(processed, type):
        raise TypeError(
            f"processed must keep message keys, got the class {processed.__name__}. "
            f"Hint: create one, e.g. {processed.__name__}()"
        )
    if not all(callable(getattr(processed, call, None)) for call in ("__contains__", "add", "clear")):
        raise TypeError(
            f"processed must keep message keys (like InMemoryProcessedMessages()), got {got(processed)}"
        )


Handler = Callable[[Any, TaskContext | None], Awaitable[Any]]


class IdempotentHandler:
    """``handler``, run at most once per message key; a bus handler or queue worker itself.

    ``handled`` and ``skipped`` count the messages passed on and the duplicates dropped.
    """

    def __init__(self, handler: Handler, processed: ProcessedMessages | None = None) -> None:
        require_callable("handler", handler, hint="async def handler(message, context): ...")
        if processed is not None:
            check_processed(processed)
        self.handler = handler
        self.processed: ProcessedMessages = (
            processed if processed is not None else InMemoryProcessedMessages()
        )
        self.handled = 0
        self.skipped = 0
        self._running: dict[MessageKey, asyncio.Event] = {}

    def __repr__(self) -> str:
        return f"IdempotentHandler({self.handler!r}, handled={self.handled}, skipped={self.skipped})"

    async def __call__(self, message: Any, context: TaskContext | None = None) -> None:
        key = message_key(message)
        while (running := self._running.get(key)) is not None:
            await running.wait()  # the same message is being handled: see how that ends
        if key in self.processed:
            self.skipped += 1
            return
        done = self._running[key] = asyncio.Event()
        try:
            await self.handler(message, context)
            self.processed.add(key)  # only now: a failed handler will be retried, not skipped
            self.handled += 1
        finally:
            del self._running[key]
            done.set()


def idempotent(handler: Handler, processed: ProcessedMessages | None = None) -> IdempotentHandler:
    """Wrap ``handler`` so that it runs once per ``(event_store_id, aggregate_id, version)``."""
    return IdempotentHandler(handler, processed)
