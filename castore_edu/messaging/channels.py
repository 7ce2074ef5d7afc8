"""Message channels: where an application publishes the messages that other parts react to.

A channel does not move messages itself. It checks that each message comes from one of its
*source event stores*, then hands it to its *adapter* — the piece that talks to a real broker (or,
here, to the in-memory adapters of ``in_memory_bus`` and ``in_memory_queue``). Swapping the
adapter changes the transport without touching the code that publishes.

Two axes give the six concrete classes:

- what the channel carries (``message_type``): notifications, state-carrying messages or
  aggregate-exists messages — the base classes ``NotificationMessageChannel``,
  ``StateCarryingMessageChannel`` and ``AggregateExistsMessageChannel``;
- how it delivers (``message_channel_type``): a **bus** fans each message out to every listener
  whose filter matches, a **queue** keeps messages until one worker has processed each of them —
  the mixins ``MessageBus`` and ``MessageQueue``, which only translate the constructor's names
  (``message_bus_id`` / ``message_queue_id``) into the common ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from castore_edu.core.arguments import got, require_bool, require_event_stores, require_str
from castore_edu.core.errors import (
    MessageChannelEventStoreNotFoundError,
    UndefinedMessageChannelAdapterError,
)
from castore_edu.messaging.messages import (
    NotificationMessage,
    StateCarryingMessage,
    is_notification_message,
)

if TYPE_CHECKING:
    from castore_edu.core.event_store import EventStore


class MessageChannelAdapter(Protocol):
    """What a channel needs from its adapter: a way to publish one message, or several."""

    async def publish_message(self, message: Any, *, replay: bool = False) -> None: ...

    async def publish_messages(self, messages: Sequence[Any], *, replay: bool = False) -> None: ...


def check_channel_adapter(name: str, adapter: object) -> None:
    """Refuse what cannot be a channel adapter (``None`` is fine: it can be set later).

    The adapter's class instead of an adapter (the parentheses forgotten) is the likely slip.
    """
    if adapter is None:
        return
    if isinstance(adapter, type):
        raise TypeError(
            f"{name} must be a message channel adapter, got the class {adapter.__name__}. "
            f"Hint: create one, {adapter.__name__}()"
        )
    missing = [
        call for call in ("publish_message", "publish_messages") if not callable(getattr(adapter, call, None))
    ]
    if missing:
        raise TypeError(
            f"{name} must be a message channel adapter, got {got(adapter)}, which lacks {', '.join(missing)}"
        )


def check_message(name: str, message: object) -> None:
    """Refuse what is not a message: every message names the event store it comes from."""
    if not isinstance(getattr(message, "event_store_id", None), str):
        raise TypeError(
            f"{name} must be a message (NotificationMessage, StateCarryingMessage or "
            f"AggregateExistsMessage), got {got(message)}"
        )


class MessageChannel:
    """The mechanics shared by every channel: source stores, adapter, publishing."""

    message_type: ClassVar[str]

    def __init__(
        self,
        *,
        message_channel_type: str,
        message_channel_id: str,
        source_event_stores: Iterable[EventStore],
        message_channel_adapter: MessageChannelAdapter | None = None,
    ) -> None:
        require_str("message_channel_type", message_channel_type)
        require_str("message_channel_id", message_channel_id)
        self.source_event_stores = require_event_stores("source_event_stores", source_event_stores)
        check_channel_adapter("message_channel_adapter", message_channel_adapter)
        self.message_channel_type = message_channel_type
        self.message_channel_id = message_channel_id
        self.message_channel_adapter = message_channel_adapter

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message_channel_id!r})"

    def get_event_store(self, event_store_id: str) -> EventStore:
        """The source store with this id (the first one, if two share it)."""
        for event_store in self.source_event_stores:
            if event_store.event_store_id == event_store_id:
                return event_store
        raise MessageChannelEventStoreNotFoundError(
            event_store_id=event_store_id,
            message_channel_type=self.message_channel_type,
            message_channel_id=self.message_channel_id,
        )

    def get_message_channel_adapter(self) -> MessageChannelAdapter:
        """The adapter, or ``UndefinedMessageChannelAdapterError`` when none is set."""
        if self.message_channel_adapter is None:
            raise UndefinedMessageChannelAdapterError(
                message_channel_type=self.message_channel_type,
                message_channel_id=self.message_channel_id,
            )
        return self.message_channel_adapter

    async def publish_message(self, message: Any, *, replay: bool = False) -> None:
        """Publish one message. ``replay=True`` marks it as a replay of past events.

        The source store is checked before the adapter, so an unknown store id is reported
        even on a channel that has no adapter yet.
        """
        check_message("message", message)
        require_bool("replay", replay)
        self.get_event_store(message.event_store_id)
        await self.get_message_channel_adapter().publish_message(message, replay=replay)

    async def publish_messages(self, messages: Iterable[Any], *, replay: bool = False) -> None:
        """Publish several messages; nothing is published if one comes from an unknown store."""
        if isinstance(messages, str) or not hasattr(messages, "__iter__"):
            raise TypeError(f"messages must be a list of messages, got {got(messages)}")
        messages = list(messages)
        for index, message in enumerate(messages):
            check_message(f"messages[{index}]", message)
        require_bool("replay", replay)
        for message in messages:
            self.get_event_store(message.event_store_id)
        await self.get_message_channel_adapter().publish_messages(messages, replay=replay)


class NotificationMessageChannel(MessageChannel):
    """A channel of ``NotificationMessage``s."""

    message_type = "notification"


class StateCarryingMessageChannel(MessageChannel):
    """A channel of ``StateCarryingMessage``s."""

    message_type = "state-carrying"

    async def get_aggregate_and_publish_message(
        self, message: NotificationMessage, *, replay: bool = False
    ) -> None:
        """Turn a notification into a state-carrying message and publish it.

        The aggregate is read from the source store at the event's version; an aggregate that
        does not exist raises ``AggregateNotFoundError`` and nothing is published.
        """
        if not is_notification_message(message):
            raise TypeError(f"message must be a NotificationMessage, got {got(message)}")
        check_message("message", message)
        require_bool("replay", replay)
        event = message.event
        event_store = self.get_event_store(message.event_store_id)
        result = await event_store.get_existing_aggregate(event.aggregate_id, max_version=event.version)
        await self.publish_message(
            StateCarryingMessage(message.event_store_id, event, result.aggregate), replay=replay
        )


class AggregateExistsMessageChannel(MessageChannel):
    """A channel of ``AggregateExistsMessage``s."""

    message_type = "aggregate-exists"


class MessageBus(MessageChannel):
    """Mixin for buses: ``message_bus_id`` and ``message_bus_adapter`` in the constructor."""

    def __init__(
        self,
        *,
        message_bus_id: str,
        source_event_stores: Iterable[EventStore],
        message_bus_adapter: MessageChannelAdapter | None = None,
    ) -> None:
        # Checked here too, so that the messages name the arguments a bus is given.
        require_str("message_bus_id", message_bus_id)
        source_event_stores = require_event_stores("source_event_stores", source_event_stores)
        check_channel_adapter("message_bus_adapter", message_bus_adapter)
        super().__init__(
            message_channel_type="bus",
            message_channel_id=message_bus_id,
            source_event_stores=source_event_stores,
            message_channel_adapter=message_bus_adapter,
        )


class MessageQueue(MessageChannel):
    """Mixin for queues: ``message_queue_id`` and ``message_queue_adapter`` in the constructor."""

    def __init__(
        self,
        *,
        message_queue_id: str,
        source_event_stores: Iterable[EventStore],
        message_queue_adapter: MessageChannelAdapter | None = None,
    ) -> None:
        # Checked here too, so that the messages name the arguments a queue is given.
        require_str("message_queue_id", message_queue_id)
        source_event_stores = require_event_stores("source_event_stores", source_event_stores)
        check_channel_adapter("message_queue_adapter", message_queue_adapter)
        super().__init__(
            message_channel_type="queue",
            message_channel_id=message_queue_id,
            source_event_stores=source_event_stores,
            message_channel_adapter=message_queue_adapter,
        )


class NotificationMessageBus(MessageBus, NotificationMessageChannel):
    """Fans notifications out to every matching listener."""


class StateCarryingMessageBus(MessageBus, StateCarryingMessageChannel):
    """Fans state-carrying messages out to every matching listener."""


class AggregateExistsMessageBus(MessageBus, AggregateExistsMessageChannel):
    """Fans aggregate-exists messages out (Castore's takes queue names here, by mistake)."""


class NotificationMessageQueue(MessageQueue, NotificationMessageChannel):
    """Keeps notifications until its worker has processed each one."""


class StateCarryingMessageQueue(MessageQueue, StateCarryingMessageChannel):
    """Keeps state-carrying messages until its worker has processed each one."""


class AggregateExistsMessageQueue(MessageQueue, AggregateExistsMessageChannel):
    """Keeps aggregate-exists messages until its worker has processed each one."""
