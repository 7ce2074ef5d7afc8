"""Messaging: messages, channels, and the in-memory adapters that deliver them (notebook 03).

A *message* says what happened (``messages``); a *channel* — a bus that fans out, a queue that
hands each message to one worker — checks where it comes from and passes it to its *adapter*
(``channels``). The in-memory adapters (``in_memory_bus``, ``in_memory_queue``) share retries,
dead letters and ``wait_idle`` (``delivery``). Nothing here reads or writes an event store.

The NATS JetStream adapters (``nats_bus``, ``nats_queue``, on ``nats_jetstream`` and the JSON of
``wire``) need the ``nats`` extra, so they are not imported here: import them from their modules,
or by name from the front door (``from castore_edu import NatsMessageBusAdapter``).
"""

from castore_edu.messaging.channels import (
    AggregateExistsMessageBus,
    AggregateExistsMessageChannel,
    AggregateExistsMessageQueue,
    MessageChannel,
    MessageChannelAdapter,
    NotificationMessageBus,
    NotificationMessageChannel,
    NotificationMessageQueue,
    StateCarryingMessageBus,
    StateCarryingMessageChannel,
    StateCarryingMessageQueue,
)
from castore_edu.messaging.delivery import DeadLetter, TaskContext
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter
from castore_edu.messaging.in_memory_queue import InMemoryMessageQueueAdapter
from castore_edu.messaging.messages import (
    AggregateExistsMessage,
    NotificationMessage,
    StateCarryingMessage,
    is_aggregate_exists_message,
    is_event_carrying_message,
    is_notification_message,
    is_state_carrying_message,
)

__all__ = [
    "AggregateExistsMessage",
    "AggregateExistsMessageBus",
    "AggregateExistsMessageChannel",
    "AggregateExistsMessageQueue",
    "DeadLetter",
    "InMemoryMessageBusAdapter",
    "InMemoryMessageQueueAdapter",
    "MessageChannel",
    "MessageChannelAdapter",
    "NotificationMessage",
    "NotificationMessageBus",
    "NotificationMessageChannel",
    "NotificationMessageQueue",
    "StateCarryingMessage",
    "StateCarryingMessageBus",
    "StateCarryingMessageChannel",
    "StateCarryingMessageQueue",
    "TaskContext",
    "is_aggregate_exists_message",
    "is_event_carrying_message",
    "is_notification_message",
    "is_state_carrying_message",
]
