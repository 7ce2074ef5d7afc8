"""A projection: how the events of some event stores become a read model in a database.

CQRS (Command Query Responsibility Segregation) splits an application in two sides. Commands
write *events* (the event store: one aggregate at a time, optimistic concurrency); queries read
*read models*, tables shaped for the question they answer ("which trainer caught the most
Pokémon?"), which no aggregate can answer without folding every other one. A **projection**
is what turns the first into the second: it follows the storage's ordered log and applies each
event to the read model's tables.

A :class:`Projection` says three things, and nothing about *how* it is run:

- its ``name``, which is also the name of its checkpoint: the log position up to which its read
  model is up to date. A new name is a new read model, built from the first event (a rebuild);
- the ``event_stores`` it follows: entries of other stores in the log are passed over;
- ``apply(connection, entry)``: the change one log entry makes to the read model, with the
  database connection *of the runner's transaction*. ``create`` and ``drop`` make and remove
  the read model's tables.

A runner (``runner.py``; one per database) calls ``apply`` inside the same transaction that
moves the checkpoint, so the read model and its checkpoint are committed together or not at all.

Events reach ``apply`` in their **current shape**: the log holds events as they were stored,
so every entry's event goes through its store's ``upcast`` first (notebook 13), and a read model
never sees a shape that its code no longer knows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from castore_edu.core.arguments import require_callable, require_event_stores, require_str
from castore_edu.core.events import LoggedEvent

if TYPE_CHECKING:  # a type only
    from castore_edu.core.event_store import EventStore

# apply(connection, entry): on SQLite a plain function; on PostgreSQL an async one.
Apply = Callable[[Any, LoggedEvent], Awaitable[None] | None]
# create(connection) / drop(connection): make or remove the read model's tables.
Schema = Callable[[Any], Awaitable[None] | None]


class Projection:
    """The events of ``event_stores``, applied to a read model by ``apply(connection, entry)``.

    ``name`` names the projection and its checkpoint (a rebuild is a new name); ``create`` and
    ``drop`` (optional) make and remove its tables, each called with a connection in a
    transaction. See the module docstring; a runner (``SQLiteProjectionRunner``,
    ``PostgresProjectionRunner``) runs it.
    """

    def __init__(
        self,
        name: str,
        *,
        event_stores: Iterable[EventStore],
        apply: Apply,
        create: Schema | None = None,
        drop: Schema | None = None,
    ) -> None:
        require_str("name", name, hint="a projection's name is also its checkpoint's, e.g. 'leaderboard_v1'")
        stores = require_event_stores("event_stores", event_stores)
        if not stores:
            raise ValueError(
                "event_stores must name at least one event store: the ones the projection follows"
            )
        ids = [store.event_store_id for store in stores]
        repeated = sorted({store_id for store_id in ids if ids.count(store_id) > 1})
        if repeated:
            raise ValueError(f"event_stores must have different ids, got {repeated} more than once")
        require_callable("apply", apply, hint="apply(connection, entry) changes the read model for one entry")
        for hook_name, hook in (("create", create), ("drop", drop)):
            if hook is not None:
                require_callable(hook_name, hook, hint=f"{hook_name}(connection) runs SQL on the read model")
        self.name = name
        self.event_stores: tuple[EventStore, ...] = tuple(stores)
        self.apply = apply
        self.create = create
        self.drop = drop
        self._stores_by_id = dict(zip(ids, stores, strict=True))

    def __repr__(self) -> str:
        return f"Projection({self.name!r}, event_stores={sorted(self._stores_by_id)})"

    def follows(self, event_store_id: str) -> bool:
        """Whether log entries of ``event_store_id`` are applied (else they are passed over)."""
        return event_store_id in self._stores_by_id

    def in_current_shape(self, entry: LoggedEvent) -> list[LoggedEvent]:
        """``entry`` as its event store reads it today (``EventStore.upcast``): an event stored in
        an older schema version comes up to date, maybe as several parts (a split), each at the
        entry's position, applied in the same transaction."""
        events = self._stores_by_id[entry.event_store_id].upcast(entry.event)
        if len(events) == 1 and events[0] is entry.event:
            return [entry]
        return [LoggedEvent(entry.position, entry.event_store_id, event) for event in events]
