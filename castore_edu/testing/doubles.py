"""Test doubles for event stores: the same store, on fresh in-memory storage.

``mock_event_store`` builds a *new* store (same id, types and reducer) for a test that must not
touch the real one; ``mute_event_store`` swaps the storage of the store you already have, for
code that holds a reference to it.
"""

from __future__ import annotations

from collections.abc import Iterable

from castore_edu.core.arguments import got, require_event_store
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter


def check_initial_events(initial_events: object) -> list[EventDetail]:
    """``initial_events`` as a list, checked to hold only events (each one is validated further
    when the in-memory adapter stores it)."""
    if isinstance(initial_events, str) or not hasattr(initial_events, "__iter__"):
        raise TypeError(f"initial_events must be a list of EventDetail, got {got(initial_events)}")
    events = list(initial_events)
    for index, event in enumerate(events):
        if not isinstance(event, EventDetail):
            raise TypeError(f"initial_events[{index}] must be an EventDetail, got {got(event)}")
    return events


class MockedEventStore(EventStore):
    """An event store on in-memory storage seeded with ``initial_events``; ``reset()``
    forgets everything pushed since."""

    def __init__(self, event_store: EventStore, initial_events: Iterable[EventDetail] = ()) -> None:
        require_event_store("event_store", event_store)
        self.initial_events = check_initial_events(initial_events)
        super().__init__(
            event_store_id=event_store.event_store_id,
            event_types=event_store.event_types,
            reducer=event_store.reducer,
            simulate_side_effect=event_store.simulate_side_effect,
        )
        self.reset()

    def reset(self) -> None:
        self.event_storage_adapter = InMemoryEventStorageAdapter(
            self.initial_events, event_store_id=self.event_store_id
        )


def mock_event_store(event_store: EventStore, initial_events: Iterable[EventDetail] = ()) -> MockedEventStore:
    """A new store like ``event_store``; the original is left untouched (and unconnected:
    ``on_event_pushed`` is not copied)."""
    return MockedEventStore(event_store, initial_events)


def mute_event_store(event_store: EventStore, initial_events: Iterable[EventDetail] = ()) -> None:
    """Give ``event_store`` fresh in-memory storage holding only ``initial_events``.

    Its snapshots are dropped too (``snapshots = None``): they were folded from the old storage's
    events, and a read of the new storage must not start from them."""
    require_event_store("event_store", event_store)
    event_store.event_storage_adapter = InMemoryEventStorageAdapter(
        check_initial_events(initial_events), event_store_id=event_store.event_store_id
    )
    event_store.snapshots = None
