"""Snapshots in a dict: for tests, notebooks, and aggregates that only need to live as long as
the process.

It keeps a deep copy of every aggregate it is given and hands out a deep copy on every read
(``copy.deepcopy``), so any aggregate works — dict, dataclass, object — and nothing a caller does to
an aggregate afterwards, even a reducer that changes it in place, reaches the stored snapshot.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from castore_edu.snapshots.protocol import Snapshot, check_discard, check_key, check_load, check_snapshot


class InMemorySnapshotStore:
    """Snapshots in memory: ``{(event_store_id, aggregate_id): {(reducer_version, version): snapshot}}``."""

    def __init__(self) -> None:
        self._snapshots: dict[tuple[str, str], dict[tuple[str, int], Snapshot]] = {}

    def __repr__(self) -> str:
        count = sum(len(kept) for kept in self._snapshots.values())
        return f"InMemorySnapshotStore(aggregates={len(self._snapshots)}, snapshots={count})"

    async def load_latest(
        self, event_store_id: str, aggregate_id: str, *, reducer_version: str, max_version: int | None = None
    ) -> Snapshot | None:
        reducer_version = check_load(event_store_id, aggregate_id, reducer_version, max_version)
        kept = self._snapshots.get((event_store_id, aggregate_id), {})
        fitting = [
            snapshot
            for (kept_reducer_version, version), snapshot in kept.items()
            if kept_reducer_version == reducer_version and (max_version is None or version <= max_version)
        ]
        if not fitting:
            return None
        return _copy(max(fitting, key=lambda snapshot: snapshot.version))

    async def save(self, event_store_id: str, snapshot: Snapshot) -> None:
        check_key(event_store_id, check_snapshot(snapshot).aggregate_id)
        kept = self._snapshots.setdefault((event_store_id, snapshot.aggregate_id), {})
        kept[snapshot.reducer_version, snapshot.version] = _copy(snapshot)

    async def discard(self, event_store_id: str, aggregate_id: str, *, from_version: int = 1) -> int:
        check_discard(event_store_id, aggregate_id, from_version)
        kept = self._snapshots.get((event_store_id, aggregate_id), {})
        doomed = [key for key in kept if key[1] >= from_version]
        for key in doomed:
            del kept[key]
        return len(doomed)

    async def list_snapshots(self, event_store_id: str, aggregate_id: str) -> list[Snapshot]:
        check_key(event_store_id, aggregate_id)
        kept = self._snapshots.get((event_store_id, aggregate_id), {})
        return [_copy(kept[key]) for key in sorted(kept, key=lambda key: (key[1], key[0]))]


def _copy(snapshot: Snapshot) -> Snapshot:
    return replace(snapshot, aggregate=copy.deepcopy(snapshot.aggregate))
