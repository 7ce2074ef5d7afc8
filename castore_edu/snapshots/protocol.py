"""What a snapshot is, and what a snapshot store and a snapshot policy promise.

An aggregate is never stored: it is folded from its events, every time (notebook 01). That is
what makes it trustworthy, and what makes a long history slow: reading an aggregate of 10,000
events means reading and folding 10,000 events. A *snapshot* is the fold saved at one version,
so that a later read starts from it and reads only the events after it.

Three rules keep a snapshot from ever changing a result:

1. **It is a cache, never the truth.** The events stay the only truth; any snapshot can be
   thrown away and folded again. So a snapshot is only ever taken from what storage returned
   (``EventStore.get_aggregate``), never from a ``prev_aggregate`` a caller passed to a push:
   that one is trusted, unchecked (notebook 05), and a stale one saved as a snapshot would be
   folded into every later read.
2. **It belongs to one reducer.** A snapshot is the output of the reducer that folded it. Change
   the reducer (a new field, a bug fixed) and the old snapshots hold what the *old* reducer made.
   Each snapshot therefore carries the ``reducer_version`` it was taken with, and a read uses only
   snapshots of the version declared now: bump it whenever the reducer changes what it makes.
3. **It is a copy.** A store hands out a fresh copy on every read and keeps its own copy on every
   save, so a caller that changes an aggregate in place cannot change a stored snapshot.

A store keeps every snapshot it is given, keyed by ``(event_store_id, aggregate_id,
reducer_version, version)``: a read back in time (``max_version``) uses the latest one at or before
that version. The calls are coroutines, as a storage adapter's are: on a server database a
snapshot is a query away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from castore_edu.core.arguments import got, require_str
from castore_edu.core.events import MAX_VERSION


@dataclass(frozen=True, slots=True)
class Snapshot:
    """``aggregate`` is what the reducer of version ``reducer_version`` folded from the events
    ``1..version`` of ``aggregate_id``."""

    aggregate_id: str
    version: int
    reducer_version: str
    aggregate: Any


@runtime_checkable
class SnapshotStore(Protocol):
    """Where snapshots are kept, per event store."""

    async def load_latest(
        self, event_store_id: str, aggregate_id: str, *, reducer_version: str, max_version: int | None = None
    ) -> Snapshot | None:
        """The snapshot of ``aggregate_id`` with the highest version ``<= max_version`` among
        those taken with ``reducer_version`` (snapshots of any other version are never returned);
        ``None`` if there is none."""

    async def save(self, event_store_id: str, snapshot: Snapshot) -> None:
        """Keep a copy of ``snapshot`` (replacing one with the same key)."""

    async def discard(self, event_store_id: str, aggregate_id: str, *, from_version: int = 1) -> int:
        """Forget the aggregate's snapshots at ``from_version`` and after, of every reducer
        version; return how many were forgotten."""

    async def list_snapshots(self, event_store_id: str, aggregate_id: str) -> list[Snapshot]:
        """Every snapshot kept for the aggregate, any reducer version, by version then reducer version."""


class SnapshotPolicy(Protocol):
    """When to take a snapshot."""

    def due(self, *, from_version: int, to_version: int) -> bool:
        """A read folded the events after ``from_version`` (0: from the first event on) up to
        ``to_version``: should the aggregate at ``to_version`` be saved as a snapshot?"""


class SnapshotHook(Protocol):
    """The three calls an :class:`~castore_edu.core.event_store.EventStore` makes when it is given
    ``snapshots=``: :class:`~castore_edu.snapshots.config.SnapshotConfig` is one."""

    async def load(
        self, event_store_id: str, aggregate_id: str, *, max_version: int | None
    ) -> Snapshot | None:
        """The snapshot a read of the aggregate (up to ``max_version``) may start from, or ``None``."""

    async def offer(
        self, event_store_id: str, aggregate_id: str, aggregate: Any, *, from_version: int, version: int
    ) -> bool:
        """A read folded ``aggregate`` at ``version``, starting after ``from_version``: save it as a
        snapshot if the policy says so; return whether it was saved."""

    async def discard(self, event_store_id: str, aggregate_id: str, *, from_version: int) -> None:
        """History changed at ``from_version`` (a forced push): forget the snapshots from there on."""


# -- the checks every snapshot store shares ---------------------------------------------------


def check_reducer_version(reducer_version: object) -> str:
    """A reducer version as the stores key it: a non-empty str, or an int (``2`` and ``"2"`` are the
    same version, since stores keep it as text)."""
    if isinstance(reducer_version, int) and not isinstance(reducer_version, bool):
        return str(reducer_version)
    if isinstance(reducer_version, str):
        return require_str("reducer_version", reducer_version)
    raise TypeError(
        f"reducer_version must be a str or an int, got {got(reducer_version)}. "
        'Hint: a name you change whenever the reducer changes, e.g. reducer_version="v2"'
    )


def check_version(name: str, version: object) -> None:
    """A snapshot's version, or a version a discard starts from: an int in ``1..MAX_VERSION``."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"{name} must be an int, got {got(version)}")
    if not 1 <= version <= MAX_VERSION:
        raise ValueError(f"{name} must lie within 1..MAX_VERSION ({MAX_VERSION}), got {version}")


def check_max_version(max_version: object) -> None:
    """A read's bound, as storage takes it: ``None`` (the latest) or any int within ±MAX_VERSION
    (``0`` and below find nothing, as they find no event)."""
    if max_version is None:
        return
    if isinstance(max_version, bool) or not isinstance(max_version, int):
        raise TypeError(f"max_version must be an int or None, got {got(max_version)}")
    if abs(max_version) > MAX_VERSION:
        raise ValueError(f"max_version must lie within ±MAX_VERSION ({MAX_VERSION}), got {max_version}")


def check_key(event_store_id: object, aggregate_id: object) -> None:
    """Every call names an event store and an aggregate; the store id may be empty, as in storage."""
    if not isinstance(event_store_id, str):
        raise TypeError(f"event_store_id must be a str, got {got(event_store_id)}")
    require_str("aggregate_id", aggregate_id)


def check_snapshot(snapshot: object) -> Snapshot:
    """``snapshot``, checked to be a :class:`Snapshot` a store can key."""
    if not isinstance(snapshot, Snapshot):
        raise TypeError(f"snapshot must be a Snapshot, got {got(snapshot)}")
    require_str("snapshot.aggregate_id", snapshot.aggregate_id)
    check_version("snapshot.version", snapshot.version)
    if not isinstance(snapshot.reducer_version, str) or not snapshot.reducer_version:
        raise TypeError(
            f"snapshot.reducer_version must be a non-empty str, got {got(snapshot.reducer_version)}"
        )
    if snapshot.aggregate is None:
        raise ValueError("a snapshot of no aggregate (None) would stand for nothing: keep None out of stores")
    return snapshot


def check_load(
    event_store_id: object, aggregate_id: object, reducer_version: object, max_version: object
) -> str:
    """The checks of ``load_latest``; returns the reducer version as stores key it."""
    check_key(event_store_id, aggregate_id)
    check_max_version(max_version)
    return check_reducer_version(reducer_version)


def check_discard(event_store_id: object, aggregate_id: object, from_version: object) -> None:
    check_key(event_store_id, aggregate_id)
    check_version("from_version", from_version)


def check_snapshot_store(store: object) -> None:
    """Refuse what cannot keep snapshots; the class instead of a store is the likely slip."""
    if isinstance(store, type):
        raise TypeError(
            f"store must be a snapshot store, got the class {store.__name__}. Hint: create one, {store.__name__}()"
        )
    if not isinstance(store, SnapshotStore):
        raise TypeError(
            f"store must be a snapshot store (async load_latest, save, discard, list_snapshots), got {got(store)}"
        )
