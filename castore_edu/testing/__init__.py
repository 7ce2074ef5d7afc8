"""Testing aids: test doubles, fault injection, simulated latency, and the storage contract.

- ``doubles``: ``mock_event_store`` and ``mute_event_store`` (notebook 02), the same store on
  fresh in-memory storage.
- ``faults``: adapters that fail or "crash" on a seeded schedule (notebook 07), so every failure
  of the connected store can be reproduced.
- ``latency``: a storage wrapper that waits and counts calls (notebooks 04–06).
- ``contention``: many commands racing for one aggregate, and a sleep counted in turns of the
  event loop, so that retry counts are the same on every run (notebook 02). Import it from
  ``castore_edu.testing.contention``.
- ``storage_contract``: the one test suite every storage adapter must pass. It needs pytest, so
  it is not imported here: ``from castore_edu.testing.storage_contract import StorageAdapterContract``.
- ``projection_contract``: the same for projection runners (notebook 11), one suite run on SQLite
  and PostgreSQL; it needs pytest too: ``from castore_edu.testing.projection_contract import
  ProjectionRunnerContract``.

The library never imports this room; it serves tests, notebooks and whoever writes an adapter.
"""

from castore_edu.testing.doubles import MockedEventStore, mock_event_store, mute_event_store
from castore_edu.testing.faults import (
    Fault,
    FaultSchedule,
    FaultyChannelAdapter,
    FaultyStorageAdapter,
    InjectedFault,
    SimulatedCrash,
)
from castore_edu.testing.latency import CallCounts, SimulatedLatencyAdapter

__all__ = [
    "CallCounts",
    "Fault",
    "FaultSchedule",
    "FaultyChannelAdapter",
    "FaultyStorageAdapter",
    "InjectedFault",
    "MockedEventStore",
    "SimulatedCrash",
    "SimulatedLatencyAdapter",
    "mock_event_store",
    "mute_event_store",
]
