"""The core: events, aggregates, the event store and commands (notebooks 01 and 02).

Everything here is about *one* idea: an aggregate is never stored, it is folded from its events
by a reducer, and a version that is already taken is refused. Nothing in this room knows where
events are stored (that is ``storage``) or who hears about them (that is ``messaging``).
Events that evolve (``upcasting.py``, notebook 13) stay here too: reading an old event in today's
shape is the event store's job, whatever the storage.
"""

from castore_edu.core.clock import Clock, stepping_clock, utc_now
from castore_edu.core.command import Command
from castore_edu.core.errors import (
    AggregateNotFoundError,
    EventAlreadyExistsError,
    InvalidEventError,
    MessageChannelEventStoreNotFoundError,
    ServerUnavailableError,
    UndefinedEventStorageAdapterError,
    UndefinedMessageChannelAdapterError,
    UpcastError,
    is_event_already_exists_error,
)
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import (
    AggregateIdEntry,
    AggregateIdsPage,
    AggregateResult,
    EventDetail,
    EventStoreContext,
    EventType,
    GroupedEvent,
    LoggedEvent,
    PushEventResult,
    Upcaster,
    validate_event,
)

__all__ = [
    "AggregateIdEntry",
    "AggregateIdsPage",
    "AggregateNotFoundError",
    "AggregateResult",
    "Clock",
    "Command",
    "EventAlreadyExistsError",
    "EventDetail",
    "EventStore",
    "EventStoreContext",
    "EventType",
    "GroupedEvent",
    "InvalidEventError",
    "LoggedEvent",
    "MessageChannelEventStoreNotFoundError",
    "PushEventResult",
    "ServerUnavailableError",
    "UndefinedEventStorageAdapterError",
    "UndefinedMessageChannelAdapterError",
    "UpcastError",
    "Upcaster",
    "is_event_already_exists_error",
    "stepping_clock",
    "utc_now",
    "validate_event",
]
