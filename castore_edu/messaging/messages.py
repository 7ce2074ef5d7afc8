"""The three kinds of message a channel carries, and the guards that tell them apart.

A message always names the event store it comes from (``event_store_id``), so that a channel fed
by several stores can tell its consumers where each message started:

- ``NotificationMessage``: "this event happened" — the event alone. Consumers that need more
  fetch it themselves.
- ``StateCarryingMessage``: the event *and* the aggregate as it stood right after that event
  (``aggregate`` is the state at ``event.version``), so consumers need not read the store.
- ``AggregateExistsMessage``: "this aggregate exists" — no event at all. Used to replay the list
  of aggregates of a store (see ``dam.pour_event_store_aggregate_ids``).

The guards look at which attributes a message *has*, not at its class, as Castore's guards look at
which keys a message object has. So any object of the right shape passes, dataclass or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from castore_edu.core.events import EventDetail


@dataclass(frozen=True)
class NotificationMessage:
    """An event, and the id of the event store it was pushed to."""

    event_store_id: str
    event: EventDetail


@dataclass(frozen=True)
class StateCarryingMessage:
    """An event, plus the aggregate at the event's version."""

    event_store_id: str
    event: EventDetail
    aggregate: Any


@dataclass(frozen=True)
class AggregateExistsMessage:
    """The id of an aggregate (and when its first event happened): no event, no state."""

    event_store_id: str
    aggregate_id: str
    initial_event_timestamp: str | None = None


def is_aggregate_exists_message(message: object) -> bool:
    """True when the message names an aggregate (it has an ``aggregate_id``)."""
    return hasattr(message, "aggregate_id")


def is_event_carrying_message(message: object) -> bool:
    """True when the message carries an event (notification or state-carrying)."""
    return hasattr(message, "event")


def is_notification_message(message: object) -> bool:
    """True when the message carries an event and no aggregate."""
    return is_event_carrying_message(message) and not hasattr(message, "aggregate")


def is_state_carrying_message(message: object) -> bool:
    """True when the message carries an event and an aggregate (even an aggregate of ``None``)."""
    return is_event_carrying_message(message) and hasattr(message, "aggregate")
