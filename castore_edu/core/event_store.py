"""The event store: the one object your application talks to.

It knows an event store id, the event types, and the *reducer* that folds events into an
aggregate. It knows nothing about where events live: every read and write goes to the storage
adapter, looked up at call time, so you can create a store first and plug storage in later
(or swap it in a test).

Writing is the interesting part. ``push_event`` asks the adapter to store the event; the adapter
refuses if that version is taken (optimistic concurrency). When the store can compute the new
aggregate without reading anything — because you passed the previous aggregate, or because this
is version 1 — it returns it as ``next_aggregate``. Finally it awaits ``on_event_pushed``: the
hook a :class:`~castore_edu.connected.connected_event_store.ConnectedEventStore` uses to publish the event.

Reading can start from a *snapshot* (notebook 12): given ``snapshots=`` (a
:class:`~castore_edu.snapshots.config.SnapshotConfig`), ``get_aggregate`` folds only the events after
the latest snapshot that fits, and saves a new one when the policy says so. Snapshots are a cache:
one that cannot be loaded or saved is logged and skipped, never a failed read.
Events that evolve: a store writes each event in its type's current schema version, and reads
every event back in that version, through the type's upcasters (``core/upcasting.py``): every
reader of the store — ``get_aggregate``, the replay functions, a relay — sees today's shape only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from castore_edu.core.arguments import got, quote, require_bool, require_callable, require_str
from castore_edu.core.errors import AggregateNotFoundError, UndefinedEventStorageAdapterError
from castore_edu.core.events import (
    AggregateIdsPage,
    AggregateResult,
    EventDetail,
    EventStoreContext,
    EventType,
    GroupedEvent,
    PushEventResult,
    validate_event,
)
from castore_edu.core.upcasting import event_types_by_name, in_current_schema, upcast_event, upcast_events

if TYPE_CHECKING:  # only types here: core depends on neither storage nor snapshots
    from castore_edu.snapshots.protocol import Snapshot, SnapshotHook
    from castore_edu.storage.protocol import EventStorageAdapter

logger = logging.getLogger("castore_edu")

Reducer = Callable[[Any, EventDetail], Any]
OnEventPushed = Callable[[PushEventResult], Awaitable[Any]]
SideEffectSimulator = Callable[[dict[Any, EventDetail], EventDetail], dict[Any, EventDetail]]


class GroupingEventStore(Protocol):
    """What ``EventStore.push_event_group`` needs from the store that grouped an event: its
    ``reducer``, to compute the ``next_aggregate``, and its ``on_event_pushed`` callback, awaited
    once the whole group is stored. An :class:`EventStore` is one, and so is a
    :class:`~castore_edu.connected.connected_event_store.ConnectedEventStore` (whose callback
    also publishes), without being an ``EventStore`` subclass.
    """

    @property
    def reducer(self) -> Reducer: ...

    @property
    def on_event_pushed(self) -> OnEventPushed | None: ...


def next_aggregate(reducer: Reducer, prev_aggregate: Any, event: EventDetail) -> Any:
    """The aggregate after ``event``, when it can be had without reading storage: from the
    previous aggregate, or from nothing at version 1. Else ``None``."""
    if prev_aggregate is not None or event.version == 1:
        return reducer(prev_aggregate, event)
    return None


def index_by_version(indexed_events: dict[Any, EventDetail], event: EventDetail) -> dict[Any, EventDetail]:
    """The default side-effect simulator: a later event with the same version replaces the earlier."""
    return {**indexed_events, event.version: event}


STORAGE_ADAPTER_CALLS = ("get_events", "push_event", "push_event_group", "group_event", "list_aggregate_ids")
SNAPSHOT_HOOK_CALLS = ("load", "offer", "discard")


def check_event_types(event_types: object) -> list[EventType]:
    """``event_types`` as a list, checked to hold only :class:`EventType` declarations, each
    type once (or the same declaration again).

    A list of names (``["APPEARED"]``) is the likely slip: each name must be wrapped.
    """
    if isinstance(event_types, str) or event_types is None or not hasattr(event_types, "__iter__"):
        raise TypeError(
            f"event_types must be a list of EventType, got {got(event_types)}. "
            'Hint: event_types=[EventType("APPEARED"), ...], or [] for none'
        )
    declared = list(event_types)
    for index, event_type in enumerate(declared):
        if not isinstance(event_type, EventType):
            raise TypeError(
                f"event_types[{index}] must be an EventType, got {got(event_type)}. "
                f"Hint: wrap the name, EventType({quote(event_type)})"
            )
    return declared


def check_storage_adapter(adapter: object, *, name: str = "event_storage_adapter") -> None:
    """Refuse what cannot be a storage adapter: it must offer the five calls a store makes.

    Passing the adapter's class instead of an adapter (the parentheses forgotten) is the likely slip.
    """
    if isinstance(adapter, type):
        raise TypeError(
            f"{name} must be a storage adapter, got the class {adapter.__name__}. "
            f"Hint: create one, {adapter.__name__}()"
        )
    missing = [call for call in STORAGE_ADAPTER_CALLS if not callable(getattr(adapter, call, None))]
    if missing:
        raise TypeError(
            f"{name} must be a storage adapter, got {got(adapter)}, which lacks {', '.join(missing)}"
        )


def check_snapshots(snapshots: object) -> None:
    """Refuse what an event store cannot take snapshots with: it needs the three calls of a
    ``SnapshotHook``. A snapshot *store* passed where its configuration belongs is the likely slip."""
    missing = [call for call in SNAPSHOT_HOOK_CALLS if not callable(getattr(snapshots, call, None))]
    if missing or isinstance(snapshots, type):
        hint = ""
        if callable(getattr(snapshots, "load_latest", None)):
            hint = ". Hint: that is a snapshot store; pass SnapshotConfig(store, reducer_version=..., policy=...)"
        raise TypeError(f"snapshots must be a SnapshotConfig, got {got(snapshots)}{hint}")


class EventStore:
    """Stores and reads the events of one kind of aggregate (Pokémons, trainers…)."""

    def __init__(
        self,
        *,
        event_store_id: str,
        event_types: Iterable[EventType],
        reducer: Reducer,
        simulate_side_effect: SideEffectSimulator | None = None,
        on_event_pushed: OnEventPushed | None = None,
        event_storage_adapter: EventStorageAdapter | None = None,
        snapshots: SnapshotHook | None = None,
    ) -> None:
        require_str("event_store_id", event_store_id)
        self.event_types = event_types  # the property below: checked, and indexed by name once
        require_callable("reducer", reducer, hint="a reducer is a function (aggregate, event) -> aggregate")
        for name, callback in (
            ("simulate_side_effect", simulate_side_effect),
            ("on_event_pushed", on_event_pushed),
        ):
            if callback is not None:
                require_callable(name, callback)
        if event_storage_adapter is not None:
            check_storage_adapter(event_storage_adapter)
        if snapshots is not None:
            check_snapshots(snapshots)
        self.event_store_id = event_store_id
        self.reducer = reducer
        self.simulate_side_effect = simulate_side_effect or index_by_version
        self.on_event_pushed = on_event_pushed
        self.event_storage_adapter = event_storage_adapter
        self.snapshots = snapshots

    def __repr__(self) -> str:
        return f"{type(self).__name__}(event_store_id={self.event_store_id!r})"

    @property
    def event_types(self) -> list[EventType]:
        return self._event_types

    @event_types.setter
    def event_types(self, event_types: Iterable[EventType]) -> None:
        """Every read and write looks its event's type up by name (to upcast it, or to write it in
        its current schema version): the index is made here, once, not on every event. Two
        different declarations of one name fail here, not at the first read."""
        declared = check_event_types(event_types)
        self._types_by_name = event_types_by_name(declared)
        self._event_types = declared

    def get_event_storage_adapter(self) -> EventStorageAdapter:
        adapter = self.event_storage_adapter
        if adapter is None:
            raise UndefinedEventStorageAdapterError(event_store_id=self.event_store_id)
        return adapter

    # -- reading ---------------------------------------------------------------------------

    async def get_events(
        self,
        aggregate_id: str,
        *,
        min_version: int | None = None,
        max_version: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[EventDetail]:
        """The aggregate's events in version order (newest first with ``reverse``); ``limit``
        applies after ordering, so ``reverse=True, limit=1`` is the last event.

        Every event comes in its type's current shape (:meth:`upcast`). ``limit`` counts stored
        events: a stored event that an upcaster splits comes with all its parts.
        """
        require_bool("reverse", reverse)
        stored = await self.get_event_storage_adapter().get_events(
            aggregate_id,
            event_store_id=self.event_store_id,
            min_version=min_version,
            max_version=max_version,
            limit=limit,
            reverse=reverse,
        )
        return upcast_events(stored, self._types_by_name, reverse=reverse)

    def upcast(self, event: EventDetail) -> list[EventDetail]:
        """``event``, a stored event, in its type's current shape: the chain of its type's
        upcasters, from its schema version on (see ``core/upcasting.py``). A list, because an
        upcaster may split one event into several; an event that is current already, or of a
        type this store does not declare, is returned alone and unchanged.

        Raises :class:`~castore_edu.core.errors.UpcastError` for an event in a schema version
        newer than its type declares, or when an upcaster returns something else than the next
        version. Reads call it for you; call it on events read from elsewhere (the ordered log).
        """
        return upcast_event(event, self._types_by_name)

    async def get_aggregate(self, aggregate_id: str, *, max_version: int | None = None) -> AggregateResult:
        """Fold the aggregate's events; ``max_version`` travels back in time.

        With ``snapshots``, the fold starts from the latest snapshot that fits (this reducer
        version, at or before ``max_version``) and ``events`` holds only the events after it
        (``snapshot_version`` says which snapshot). The read starts *at* the snapshot's version:
        that event is not folded again, but it proves the snapshot's history is stored and is the
        ``last_event`` when nothing came after. The same read then offers the aggregate as a new
        snapshot, which the policy takes or leaves.
        """
        snapshot = await self._load_snapshot(aggregate_id, max_version)
        if snapshot is not None:
            events = await self.get_events(
                aggregate_id, min_version=snapshot.version, max_version=max_version
            )
            if events and events[0].version == snapshot.version:
                # By version, not events[1:]: an event split on read (upcasting) comes as several
                # parts of one version, all of them folded into the snapshot already.
                after = [event for event in events if event.version > snapshot.version]
                result = AggregateResult(
                    aggregate=self.build_aggregate(after, snapshot.aggregate),
                    events=after,
                    last_event=events[-1],
                    snapshot_version=snapshot.version,
                )
                await self._offer_snapshot(aggregate_id, result)
                return result
            logger.warning(
                "%r: no event %r at version %d, the snapshot's: the snapshot is ignored",
                self,
                aggregate_id,
                snapshot.version,
            )
        events = await self.get_events(aggregate_id, max_version=max_version)
        result = AggregateResult(
            aggregate=self.build_aggregate(events),
            events=events,
            last_event=events[-1] if events else None,
        )
        await self._offer_snapshot(aggregate_id, result)
        return result

    async def _load_snapshot(self, aggregate_id: str, max_version: int | None) -> Snapshot | None:
        """The snapshot a read may start from; ``None`` without one, or when loading failed (logged):
        a cache that failed costs a full fold, never a failed read."""
        if self.snapshots is None:
            return None
        try:
            return await self.snapshots.load(self.event_store_id, aggregate_id, max_version=max_version)
        except Exception as error:
            logger.warning("%r: no snapshot of %r loaded, folding every event: %s", self, aggregate_id, error)
            return None

    async def _offer_snapshot(self, aggregate_id: str, result: AggregateResult) -> None:
        """Offer what a read folded as a snapshot (the policy decides); a failure is logged, never raised."""
        if self.snapshots is None or not result.events:
            return
        version = result.events[-1].version
        try:
            await self.snapshots.offer(
                self.event_store_id,
                aggregate_id,
                result.aggregate,
                from_version=result.snapshot_version or 0,
                version=version,
            )
        except Exception as error:
            logger.warning(
                "%r: no snapshot of %r saved at version %d: %s", self, aggregate_id, version, error
            )

    async def get_existing_aggregate(
        self, aggregate_id: str, *, max_version: int | None = None
    ) -> AggregateResult:
        result = await self.get_aggregate(aggregate_id, max_version=max_version)
        if result.aggregate is None or result.last_event is None:
            raise AggregateNotFoundError(aggregate_id=aggregate_id, event_store_id=self.event_store_id)
        return result

    async def list_aggregate_ids(
        self,
        *,
        limit: int | None = None,
        page_token: str | None = None,
        initial_event_after: str | None = None,
        initial_event_before: str | None = None,
        reverse: bool | None = None,
    ) -> AggregateIdsPage:
        """Aggregates ordered by their first event's timestamp, a page at a time. To get the
        next page pass only ``page_token``: it carries the other options. ``reverse=None``
        means "as the token says" (or ``False`` without one)."""
        if reverse is not None:
            require_bool("reverse", reverse)
        return await self.get_event_storage_adapter().list_aggregate_ids(
            event_store_id=self.event_store_id,
            limit=limit,
            page_token=page_token,
            initial_event_after=initial_event_after,
            initial_event_before=initial_event_before,
            reverse=reverse,
        )

    def build_aggregate(self, events: Iterable[EventDetail], aggregate: Any = None) -> Any:
        """A left fold of the reducer: ``reducer(...reducer(reducer(aggregate, e1), e2)..., en)``."""
        for event in events:
            aggregate = self.reducer(aggregate, event)
        return aggregate

    def simulate_aggregate(self, events: Iterable[EventDetail], *, simulation_date: str | None = None) -> Any:
        """What the aggregate would be if these events were (or will have been) applied.

        Runs every event through ``simulate_side_effect`` (which may add or drop events, e.g.
        a scheduled one), keeps those up to ``simulation_date``, orders them by timestamp and
        renumbers their versions 1..n before folding.
        """
        if simulation_date is not None and not isinstance(simulation_date, str):
            raise TypeError(f"simulation_date must be a str timestamp or None, got {got(simulation_date)}")
        indexed: dict[Any, EventDetail] = {}
        for event in events:
            indexed = self.simulate_side_effect(indexed, event)
        # Castore iterates a JS object whose integer keys come out in ascending order; sorting
        # the keys gives the same tie order here.
        simulated = [indexed[key] for key in sorted(indexed)]
        if simulation_date is not None:
            simulated = [e for e in simulated if e.timestamp is not None and e.timestamp <= simulation_date]
        simulated.sort(key=lambda e: e.timestamp or "")
        return self.build_aggregate(
            replace(event, version=version) for version, event in enumerate(simulated, start=1)
        )

    # -- writing ---------------------------------------------------------------------------

    async def push_event(
        self, event: EventDetail, *, prev_aggregate: Any = None, force: bool = False
    ) -> PushEventResult:
        """Store ``event``, then await ``on_event_pushed``. Raises
        :class:`~castore_edu.core.errors.EventAlreadyExistsError` if the version is taken.

        ``prev_aggregate`` is *trusted*: nothing checks that it really is the state at
        ``event.version - 1``. A stale one gives a wrong ``next_aggregate``. (That is why
        snapshots are never taken from it, only from reads.)

        Bad events are refused by the adapter, before it writes anything. The event is written in
        its type's current schema version: leave ``schema_version`` out (any other version than
        the current one is refused with :class:`~castore_edu.core.errors.InvalidEventError`).
        ``force`` rewrites history, so it also discards the aggregate's snapshots from that version on.
        """
        require_bool("force", force)
        event = self._in_current_schema(event)
        stored = await self.get_event_storage_adapter().push_event(
            event, event_store_id=self.event_store_id, force=force
        )
        if force:
            await discard_snapshots(self, self.event_store_id, stored)
        result = PushEventResult(
            event=stored, next_aggregate=next_aggregate(self.reducer, prev_aggregate, stored)
        )
        if self.on_event_pushed is not None:
            await self.on_event_pushed(result)
        return result

    def group_event(self, event: EventDetail, *, prev_aggregate: Any = None) -> GroupedEvent:
        """Prepare ``event`` for :meth:`push_event_group`; nothing is stored yet.

        A bad event fails here, where the mistake is made, rather than when the group is pushed.
        The grouped event keeps the outcome of that check, so the adapter does not check (and
        JSON-encode) the same event again when the group is pushed.
        """
        event = self._in_current_schema(event)
        payload, metadata = validate_event(event)
        grouped = self.get_event_storage_adapter().group_event(event)
        grouped.validated = (event, payload, metadata)
        grouped.event_store = self
        grouped.context = EventStoreContext(self.event_store_id)
        if prev_aggregate is not None:
            grouped.prev_aggregate = prev_aggregate
        return grouped

    def _in_current_schema(self, event: EventDetail) -> EventDetail:
        """``event`` in its type's current schema version, as the store writes it (the default
        ``schema_version=1`` becomes the current one; see ``core/upcasting.py``)."""
        given: object = event  # typed as an event, but a caller may pass anything
        if not isinstance(given, EventDetail):
            return event  # the adapter refuses it, with the message of every other bad event
        return in_current_schema(event, self._types_by_name, event_store_id=self.event_store_id)

    @staticmethod
    async def push_event_group(*grouped_events: GroupedEvent, force: bool = False) -> list[PushEventResult]:
        """Store events of one or several stores together: all of them, or none.

        The first grouped event's adapter does the work for the whole group. Once everything
        is stored, every involved store's ``on_event_pushed`` runs, concurrently.
        """
        if not grouped_events:
            raise ValueError("push_event_group needs at least one grouped event")
        require_bool("force", force)
        for index, grouped in enumerate(grouped_events):
            if not isinstance(grouped, GroupedEvent):
                raise TypeError(f"grouped event #{index} is a {type(grouped).__name__}, not a GroupedEvent")
        stored = await grouped_events[0].event_storage_adapter.push_event_group(
            list(grouped_events), force=force
        )
        if force:
            for grouped, event in zip(grouped_events, stored, strict=True):
                if grouped.context is not None:
                    await discard_snapshots(grouped.event_store, grouped.context.event_store_id, event)
        results = [
            PushEventResult(
                event=event,
                next_aggregate=None
                if grouped.event_store is None
                else next_aggregate(grouped.event_store.reducer, grouped.prev_aggregate, event),
            )
            for grouped, event in zip(grouped_events, stored, strict=True)
        ]
        callbacks = [
            callback(result)
            for grouped, result in zip(grouped_events, results, strict=True)
            if grouped.event_store is not None
            and (callback := grouped.event_store.on_event_pushed) is not None
        ]
        # Wait for every callback, even after one failed (asyncio.run would cancel those still
        # running), then raise the failure that came first, as Castore's Promise.all does.
        first_failure: Exception | None = None
        for finished in asyncio.as_completed(callbacks):
            try:
                await finished
            except Exception as error:
                first_failure = first_failure or error
        if first_failure is not None:
            raise first_failure
        return results


async def discard_snapshots(event_store: object, event_store_id: str, overwritten: EventDetail) -> None:
    """After a forced write at ``overwritten``'s version, forget the store's snapshots of that
    aggregate from there on: they were folded from the history the write replaced.

    Unlike a snapshot that cannot be saved, one that cannot be discarded would change later reads,
    so a failure here is raised (the event is stored). A forced write is a repair: make it while
    nobody reads the aggregate, or a read in flight may save a snapshot of the old history again.
    """
    snapshots = getattr(event_store, "snapshots", None)  # a ConnectedEventStore passes its store's
    if snapshots is not None:
        await snapshots.discard(event_store_id, overwritten.aggregate_id, from_version=overwritten.version)
