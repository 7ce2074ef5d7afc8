"""castore_edu — Castore's event store, connected event store and message channels, in Python.

Every name of the public API is importable from here: ``from castore_edu import EventStore``.
The package is laid out as the course teaches it, one folder ("room") per concept:

==================  ======================================================  ========
room                what it holds                                            notebook
==================  ======================================================  ========
``core``            events, errors, clocks, the event store, commands,       01, 02, 13
                    upcasting (events that evolve)
``storage``         the adapter protocol and ordered log; memory, SQLite     02, 08
``snapshots``       snapshot stores, a policy, the reducer-version guard     12
``messaging``       messages, channels, in-memory bus and queue adapters     03
``connected``       the connected event store                                04–06
``replay``          pouring past events into a channel again ("dam")         03, 08
``reliability``     the relay on the ordered log; idempotent consumers       08
``projections``     read models kept by projections, exactly once            11
``testing``         test doubles, fault injection, latency, the contract     02, 07
``course``          the Pokédex, the experiment, widgets, exercise checks    all
==================  ======================================================  ========

A room imports only rooms above it in this table, never ``testing`` or ``course``
(``tests/test_layout.py`` checks it); this module, the front door, re-exports the API.
"""

from castore_edu.connected import ConnectedEventStore, publish_pushed_event
from castore_edu.core import (
    AggregateIdEntry,
    AggregateIdsPage,
    AggregateNotFoundError,
    AggregateResult,
    Command,
    EventAlreadyExistsError,
    EventDetail,
    EventStore,
    EventStoreContext,
    EventType,
    GroupedEvent,
    InvalidEventError,
    LoggedEvent,
    MessageChannelEventStoreNotFoundError,
    PushEventResult,
    ServerUnavailableError,
    UndefinedEventStorageAdapterError,
    UndefinedMessageChannelAdapterError,
    Upcaster,
    UpcastError,
    is_event_already_exists_error,
    stepping_clock,
    utc_now,
)
from castore_edu.messaging import (
    AggregateExistsMessage,
    AggregateExistsMessageBus,
    AggregateExistsMessageChannel,
    AggregateExistsMessageQueue,
    DeadLetter,
    InMemoryMessageBusAdapter,
    InMemoryMessageQueueAdapter,
    MessageChannelAdapter,
    NotificationMessage,
    NotificationMessageBus,
    NotificationMessageChannel,
    NotificationMessageQueue,
    StateCarryingMessage,
    StateCarryingMessageBus,
    StateCarryingMessageChannel,
    StateCarryingMessageQueue,
    TaskContext,
    is_aggregate_exists_message,
    is_event_carrying_message,
    is_notification_message,
    is_state_carrying_message,
)
from castore_edu.projections import Projection, ProjectionRunner, SQLiteProjectionRunner
from castore_edu.reliability import (
    IdempotentHandler,
    InMemoryCheckpointStore,
    InMemoryProcessedMessages,
    PostgresCheckpointStore,
    Relay,
    SQLiteCheckpointStore,
    SQLiteProcessedMessages,
    idempotent,
    message_key,
)
from castore_edu.replay import (
    PouredAggregateIds,
    PouredCollectionEvents,
    PouredEvents,
    PouredStoreEvents,
    ScanInfo,
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from castore_edu.snapshots import (
    EveryNEvents,
    InMemorySnapshotStore,
    PostgresSnapshotStore,
    Snapshot,
    SnapshotConfig,
    SnapshotHook,
    SnapshotPolicy,
    SnapshotStore,
    SQLiteSnapshotStore,
)
from castore_edu.storage import (
    EventStorageAdapter,
    InMemoryEventStorageAdapter,
    OrderedLogStorage,
    SQLiteEventStorageAdapter,
)
from castore_edu.testing.doubles import MockedEventStore, mock_event_store, mute_event_store

__version__ = "0.1.0"

# Adapters for real servers need their drivers (an extra: ``pip install -e '.[postgres]'``, ``'.[nats]'``), so
# they are imported on first use, not with the package: ``import castore_edu`` needs nothing.
_SERVER_ADAPTERS = {
    "PostgresEventStorageAdapter": "castore_edu.storage.postgres",
    "PostgresProjectionRunner": "castore_edu.projections.postgres",
    "NatsMessageBusAdapter": "castore_edu.messaging.nats_bus",
    "NatsMessageQueueAdapter": "castore_edu.messaging.nats_queue",
}


def __getattr__(name: str) -> object:
    if name in _SERVER_ADAPTERS:
        import importlib

        return getattr(importlib.import_module(_SERVER_ADAPTERS[name]), name)
    raise AttributeError(f"module 'castore_edu' has no attribute {name!r}")


__all__ = [
    "AggregateExistsMessage",
    "AggregateExistsMessageBus",
    "AggregateExistsMessageChannel",
    "AggregateExistsMessageQueue",
    "AggregateIdEntry",
    "AggregateIdsPage",
    "AggregateNotFoundError",
    "AggregateResult",
    "Command",
    "ConnectedEventStore",
    "DeadLetter",
    "EventAlreadyExistsError",
    "EventDetail",
    "EventStorageAdapter",
    "EventStore",
    "EventStoreContext",
    "EventType",
    "EveryNEvents",
    "GroupedEvent",
    "IdempotentHandler",
    "InMemoryCheckpointStore",
    "InMemoryEventStorageAdapter",
    "InMemoryMessageBusAdapter",
    "InMemoryMessageQueueAdapter",
    "InMemoryProcessedMessages",
    "InMemorySnapshotStore",
    "InvalidEventError",
    "LoggedEvent",
    "MessageChannelAdapter",
    "MessageChannelEventStoreNotFoundError",
    "MockedEventStore",
    "NotificationMessage",
    "NotificationMessageBus",
    "NotificationMessageChannel",
    "NotificationMessageQueue",
    "OrderedLogStorage",
    "PostgresCheckpointStore",
    "PostgresSnapshotStore",
    "PouredAggregateIds",
    "PouredCollectionEvents",
    "PouredEvents",
    "PouredStoreEvents",
    "Projection",
    "ProjectionRunner",
    "PushEventResult",
    "Relay",
    "SQLiteCheckpointStore",
    "SQLiteEventStorageAdapter",
    "SQLiteProcessedMessages",
    "SQLiteProjectionRunner",
    "SQLiteSnapshotStore",
    "ScanInfo",
    "ServerUnavailableError",
    "Snapshot",
    "SnapshotConfig",
    "SnapshotHook",
    "SnapshotPolicy",
    "SnapshotStore",
    "StateCarryingMessage",
    "StateCarryingMessageBus",
    "StateCarryingMessageChannel",
    "StateCarryingMessageQueue",
    "TaskContext",
    "UndefinedEventStorageAdapterError",
    "UndefinedMessageChannelAdapterError",
    "UpcastError",
    "Upcaster",
    "idempotent",
    "is_aggregate_exists_message",
    "is_event_already_exists_error",
    "is_event_carrying_message",
    "is_notification_message",
    "is_state_carrying_message",
    "message_key",
    "mock_event_store",
    "mute_event_store",
    "pour_aggregate_events",
    "pour_event_store_aggregate_ids",
    "pour_event_store_collection_events",
    "pour_event_store_events",
    "publish_pushed_event",
    "stepping_clock",
    "utc_now",
]
