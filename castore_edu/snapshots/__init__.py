"""Snapshots: an aggregate's fold saved at a version, so a read starts there (notebook 12).

``protocol`` says what a snapshot is and what stores and policies promise (the rules that keep a
snapshot from changing a result are in its docstring); ``config`` holds ``SnapshotConfig``, what
an ``EventStore(snapshots=...)`` calls, with the reducer-version guard; ``policy`` says when to take
one (``EveryNEvents``); ``in_memory``, ``sqlite`` and ``postgres`` keep them, the last two as JSON
text (``codec``). ``castore_edu.testing.snapshot_contract`` is the suite every store must pass.
"""

from castore_edu.snapshots.codec import AggregateCodec
from castore_edu.snapshots.config import SnapshotConfig
from castore_edu.snapshots.in_memory import InMemorySnapshotStore
from castore_edu.snapshots.policy import EveryNEvents
from castore_edu.snapshots.postgres import PostgresSnapshotStore
from castore_edu.snapshots.protocol import Snapshot, SnapshotHook, SnapshotPolicy, SnapshotStore
from castore_edu.snapshots.sqlite import SQLiteSnapshotStore

__all__ = [
    "AggregateCodec",
    "EveryNEvents",
    "InMemorySnapshotStore",
    "PostgresSnapshotStore",
    "SQLiteSnapshotStore",
    "Snapshot",
    "SnapshotConfig",
    "SnapshotHook",
    "SnapshotPolicy",
    "SnapshotStore",
]
