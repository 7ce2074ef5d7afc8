"""Storage: where events live (notebook 02, and 08 for the ordered log).

The event store hands every read and write to a *storage adapter*. This room holds what an
adapter is (``protocol``: the calls, the ordered log, the input checks every adapter shares),
how aggregates are listed a page at a time (``listing``), and the two shipped adapters: in memory
and SQLite. ``castore_edu.testing.storage_contract`` is the suite every adapter must pass.
"""

from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from castore_edu.storage.protocol import (
    EventStorageAdapter,
    OrderedLogStorage,
    innermost_adapter,
    require_ordered_log,
)
from castore_edu.storage.sqlite import SQLiteEventStorageAdapter

__all__ = [
    "EventStorageAdapter",
    "InMemoryEventStorageAdapter",
    "OrderedLogStorage",
    "SQLiteEventStorageAdapter",
    "innermost_adapter",
    "require_ordered_log",
]
