"""ConnectedEventStore: an event store that publishes every event it stores.

Wrap a store and a channel; the result *is* the store for every purpose (same attributes, same
methods, looked up on the wrapped store at call time), except that a successful ``push_event`` —
or a successful ``EventStore.push_event_group`` of its grouped events — is then published:

- on a notification channel, as ``NotificationMessage(event_store_id, event)``;
- on a state-carrying channel, as ``StateCarryingMessage(event_store_id, event, aggregate)``, where
  ``aggregate`` is the ``next_aggregate`` the store computed, or else is read back from storage at
  the event's version (one more read: pass ``prev_aggregate`` to avoid it);
- on any other channel, not at all.

Storing and publishing are two separate steps, with nothing in between to make them one: if the
publish fails, ``push_event`` raises although the event *is* stored.
"""

from __future__ import annotations

from typing import Any

from castore_edu.core.arguments import got, quote, require_event_store
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail, GroupedEvent, PushEventResult
from castore_edu.messaging.channels import (
    MessageChannel,
    NotificationMessageChannel,
    StateCarryingMessageChannel,
)
from castore_edu.messaging.messages import NotificationMessage, StateCarryingMessage


async def publish_pushed_event(connected_store: ConnectedEventStore, result: PushEventResult) -> None:
    """Publish a freshly stored event on the connected store's channel."""
    channel, event = connected_store.message_channel, result.event
    if isinstance(channel, NotificationMessageChannel):
        await channel.publish_message(NotificationMessage(connected_store.event_store_id, event))
    elif isinstance(channel, StateCarryingMessageChannel):
        aggregate = result.next_aggregate
        if aggregate is None:
            fetched = await connected_store.get_aggregate(event.aggregate_id, max_version=event.version)
            aggregate = fetched.aggregate
        await channel.publish_message(StateCarryingMessage(connected_store.event_store_id, event, aggregate))


def check_message_channel(message_channel: object) -> None:
    """Refuse what is not a message channel, with a hint for the likely slips: the channel's id
    instead of the channel, or the channel's adapter instead of the channel."""
    if isinstance(message_channel, MessageChannel):
        return
    hint = ""
    if isinstance(message_channel, str):
        hint = f". Hint: pass the channel object itself, not its id {quote(message_channel)}"
    elif callable(getattr(message_channel, "publish_message", None)):
        hint = ". Hint: that looks like a channel adapter; pass the channel it is attached to"
    raise TypeError(
        f"message_channel must be a message channel (a bus or a queue), got {got(message_channel)}{hint}"
    )


def _pointer(name: str) -> property:
    """A property that reads and writes the wrapped store's attribute ``name``."""
    return property(
        lambda self: getattr(self.event_store, name),
        lambda self, value: setattr(self.event_store, name, value),
        doc=f"The wrapped store's ``{name}`` (reading and writing it).",
    )


class ConnectedEventStore:
    """``event_store``, plus: every stored event is published on ``message_channel``."""

    event_store_id = _pointer("event_store_id")
    event_types = _pointer("event_types")
    reducer = _pointer("reducer")
    simulate_side_effect = _pointer("simulate_side_effect")
    event_storage_adapter = _pointer("event_storage_adapter")
    snapshots = _pointer("snapshots")
    push_event_group = staticmethod(EventStore.push_event_group)

    def __init__(self, event_store: EventStore, message_channel: Any) -> None:
        require_event_store("event_store", event_store)
        check_message_channel(message_channel)
        self.event_store = event_store
        self.message_channel = message_channel

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found above: the wrapped store's methods (get_events, ...).
        if name == "event_store":  # not set yet (copy, pickle): do not recurse
            raise AttributeError(name)
        return getattr(self.event_store, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.event_store!r}, {type(self.message_channel).__name__} {self.message_channel.message_channel_id!r})"

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(dir(self.event_store)))

    @property
    def on_event_pushed(self) -> Any:
        """What runs after each push: the wrapped store's callback (if any), then the publish."""

        async def on_event_pushed(result: PushEventResult) -> None:
            callback = self.event_store.on_event_pushed
            if callback is not None:
                await callback(result)
            await publish_pushed_event(self, result)

        return on_event_pushed

    @on_event_pushed.setter
    def on_event_pushed(self, callback: Any) -> None:
        self.event_store.on_event_pushed = callback

    async def push_event(
        self, event: EventDetail, *, prev_aggregate: Any = None, force: bool = False
    ) -> PushEventResult:
        """Push through the wrapped store (which runs its own callback), then publish."""
        result = await self.event_store.push_event(event, prev_aggregate=prev_aggregate, force=force)
        await publish_pushed_event(self, result)
        return result

    def group_event(self, event: EventDetail, *, prev_aggregate: Any = None) -> GroupedEvent:
        """Group through the wrapped store, but point the grouped event back at this store.

        ``EventStore.push_event_group`` then awaits *this* store's ``on_event_pushed``, which publishes.
        """
        grouped_event = self.event_store.group_event(event, prev_aggregate=prev_aggregate)
        grouped_event.event_store = self
        return grouped_event
