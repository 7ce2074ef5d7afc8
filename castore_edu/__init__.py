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
from castore_edu.channels import (
    AggregateExistsMessageBus,
    AggregateExistsMessageChannel,
    AggregateExistsMessageQueue,
    MessageChannelAdapter,
    NotificationMessageBus,
    NotificationMessageChannel,
    NotificationMessageQueue,
    StateCarryingMessageBus,
    StateCarryingMessageChannel,
    StateCarryingMessageQueue,
)
from castore_edu.connected import ConnectedEventStore, publish_pushed_event
from castore_edu.dam import (
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
from castore_edu.delivery import DeadLetter, TaskContext
from castore_edu.in_memory_bus import InMemoryMessageBusAdapter
from castore_edu.in_memory_queue import InMemoryMessageQueueAdapter
from castore_edu.messages import (
    AggregateExistsMessage,
    NotificationMessage,
    StateCarryingMessage,
    is_aggregate_exists_message,
    is_event_carrying_message,
    is_notification_message,
    is_state_carrying_message,
)
# --- end messaging ---
# --- failure modes (helper) ---
from castore_edu.experiment import ExperimentResult, FaultRates, PathResult, plot_experiment, run_experiment
from castore_edu.faults import (
    Fault,
    FaultSchedule,
    FaultyChannelAdapter,
    FaultyStorageAdapter,
    InjectedFault,
    SimulatedCrash,
)
from castore_edu.idempotency import (
    IdempotentHandler,
    InMemoryProcessedMessages,
    LevelBoard,
    SQLiteProcessedMessages,
    idempotent,
    message_key,
)
from castore_edu.relay import InMemoryCheckpointStore, Relay, SQLiteCheckpointStore
# --- end failure modes ---

__version__ = "0.1.0"
