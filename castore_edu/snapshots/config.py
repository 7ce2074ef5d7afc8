"""A store's snapshot configuration: where snapshots live, when to take them, and the reducer
version that guards them.

Give one to an event store, and ``get_aggregate`` reads from snapshots::

    pokemons = EventStore(
        event_store_id="POKEMONS",
        event_types=POKEMON_EVENT_TYPES,
        reducer=pokemon_reducer,
        event_storage_adapter=adapter,
        snapshots=SnapshotConfig(
            SQLiteSnapshotStore(adapter, decode_aggregate=lambda data: Pokemon(**data)),
            reducer_version="v1",  # change it whenever pokemon_reducer changes what it makes
            policy=EveryNEvents(100),
        ),
    )

:class:`SnapshotConfig` is what the event store calls (the three calls of
:class:`~castore_edu.snapshots.protocol.SnapshotHook`), and it is where the **guard** lives: a
snapshot taken with another reducer version, or that does not fit the read, is never used. The
stores already leave such snapshots out; the config checks again, so that a store of your own that
forgets to cannot make a read use one.
"""

from __future__ import annotations

import logging
from typing import Any

from castore_edu.core.arguments import got
from castore_edu.snapshots.protocol import (
    Snapshot,
    SnapshotPolicy,
    SnapshotStore,
    check_reducer_version,
    check_snapshot_store,
)

logger = logging.getLogger("castore_edu")


class SnapshotConfig:
    """Snapshots of one event store's aggregates in ``store``, taken when ``policy`` says so, with
    the reducer of version ``reducer_version`` (a str, or an int: kept as text)."""

    def __init__(self, store: SnapshotStore, *, reducer_version: str | int, policy: SnapshotPolicy) -> None:
        check_snapshot_store(store)
        self.reducer_version = check_reducer_version(reducer_version)
        if not callable(getattr(policy, "due", None)):
            raise TypeError(
                f"policy must be a snapshot policy (with due(from_version=, to_version=)), got {got(policy)}. "
                "Hint: policy=EveryNEvents(100)"
            )
        self.store = store
        self.policy = policy

    def __repr__(self) -> str:
        return f"SnapshotConfig({self.store!r}, reducer_version={self.reducer_version!r}, policy={self.policy!r})"

    async def load(
        self, event_store_id: str, aggregate_id: str, *, max_version: int | None
    ) -> Snapshot | None:
        """The latest snapshot of this reducer version at or before ``max_version``, or ``None``."""
        snapshot = await self.store.load_latest(
            event_store_id, aggregate_id, reducer_version=self.reducer_version, max_version=max_version
        )
        if snapshot is None or self.fits(snapshot, aggregate_id, max_version):
            return snapshot
        logger.warning(
            "%r returned a snapshot that does not fit the read of %r (max_version=%r, reducer_version=%r): "
            "ignored, %r",
            self.store,
            aggregate_id,
            max_version,
            self.reducer_version,
            snapshot,
        )
        return None

    def fits(self, snapshot: Snapshot, aggregate_id: str, max_version: int | None) -> bool:
        """The guard: this aggregate's, this reducer version's, and not after ``max_version``."""
        return (
            isinstance(snapshot, Snapshot)
            and snapshot.aggregate_id == aggregate_id
            and snapshot.reducer_version == self.reducer_version
            and (max_version is None or snapshot.version <= max_version)
        )

    async def offer(
        self, event_store_id: str, aggregate_id: str, aggregate: Any, *, from_version: int, version: int
    ) -> bool:
        """Save ``aggregate`` as the snapshot at ``version`` if the policy says so (a read folded
        the events after ``from_version`` up to ``version``); return whether it was saved."""
        if aggregate is None or not self.policy.due(from_version=from_version, to_version=version):
            return False
        await self.store.save(
            event_store_id, Snapshot(aggregate_id, version, self.reducer_version, aggregate)
        )
        return True

    async def discard(self, event_store_id: str, aggregate_id: str, *, from_version: int) -> None:
        """Forget the aggregate's snapshots from ``from_version`` on (its history changed there)."""
        await self.store.discard(event_store_id, aggregate_id, from_version=from_version)
