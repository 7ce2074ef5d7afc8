"""castore_edu — Castore's event store, connected event store and message channels, in Python.

Everything of the public API is importable from here: ``from castore_edu import EventStore``.
"""

from castore_edu.clock import stepping_clock, utc_now
from castore_edu.command import Command
from castore_edu.errors import (
    AggregateNotFoundError,
    EventAlreadyExistsError,
    InvalidEventError,
    MessageChannelEventStoreNotFoundError,
    UndefinedEventStorageAdapterError,
    UndefinedMessageChannelAdapterError,
    is_event_already_exists_error,
)
from castore_edu.event_store import EventStore
from castore_edu.events import (
    AggregateIdEntry,
    AggregateIdsPage,
    AggregateResult,
    EventDetail,
    EventStoreContext,
    EventType,
    GroupedEvent,
    LoggedEvent,
    PushEventResult,
)
from castore_edu.in_memory import InMemoryEventStorageAdapter
from castore_edu.sqlite import SQLiteEventStorageAdapter
from castore_edu.storage import EventStorageAdapter
from castore_edu.test_tools import MockedEventStore, mock_event_store, mute_event_store

# --- messaging (helper) ---
# --- end messaging ---
# --- failure modes (helper) ---
# --- end failure modes ---

__version__ = "0.1.0"
