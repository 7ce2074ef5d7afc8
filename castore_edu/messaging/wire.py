"""Messages on the wire: the three message kinds as JSON, and back.

In memory, a consumer receives the very object that was published. A broker carries bytes, so an
adapter for one has to say how a message becomes bytes and how the bytes become a message again.
JSON is the obvious choice: every language reads it, a person can read it in the broker's tools,
and it cannot run code on the receiving side (``pickle`` could).

A message becomes one JSON object with a ``kind``::

    {"kind": "notification", "event_store_id": "POKEMONS", "event": {...}}
    {"kind": "state-carrying", "event_store_id": "POKEMONS", "event": {...}, "aggregate": ...}
    {"kind": "aggregate-exists", "event_store_id": "POKEMONS", "aggregate_id": "pikachu1",
     "initial_event_timestamp": "2022-01-01T00:00:00.000Z"}

where an event is its fields (``aggregate_id``, ``version``, ``type``, ``timestamp``,
``payload``, ``metadata``, and ``schema_version`` when it is not 1). Payloads, metadata and
aggregates must therefore be JSON data (dicts, lists, strings, numbers, booleans, ``None``); a
tuple arrives as a list.

``schema_version`` is left out while it is 1, so an event whose type never evolved is the same
bytes as before schema versions existed, and a consumer of that earlier release still reads it.
A message without it reads as version 1. (Events on the wire are in their current shape: the
relay and the replay functions upcast what they read before they publish it.)

**Aggregates.** A reducer often builds a dataclass, and JSON has no dataclasses. The sender turns
one into a dict (``dataclasses.asdict``); the receiver gets that dict back, unless it says how to
rebuild the aggregate: ``decode_aggregate``, a function from the JSON data to the aggregate, for
example ``lambda data: PokemonAggregate(**data)``. The type is named by the receiver's code, never
by the message: a message that could name a class to build would let any sender build any class.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from castore_edu.core.events import EventDetail
from castore_edu.messaging.messages import (
    AggregateExistsMessage,
    NotificationMessage,
    StateCarryingMessage,
    is_aggregate_exists_message,
    is_state_carrying_message,
)

AggregateDecoder = Callable[[Any], Any]


def encode_message(message: Any) -> bytes:
    """``message`` as UTF-8 JSON; ``TypeError`` if something in it is not JSON data."""
    if is_aggregate_exists_message(message):
        data: dict[str, Any] = {
            "kind": "aggregate-exists",
            "event_store_id": message.event_store_id,
            "aggregate_id": message.aggregate_id,
            "initial_event_timestamp": message.initial_event_timestamp,
        }
    else:
        data = {"kind": "notification", "event_store_id": message.event_store_id}
        data["event"] = _event_data(message.event)
        if is_state_carrying_message(message):
            data["kind"] = "state-carrying"
            data["aggregate"] = _aggregate_data(message.aggregate)
    try:
        return json.dumps(data, ensure_ascii=False).encode()
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{message!r} cannot cross the wire: payloads, metadata and aggregates must be JSON data "
            f"(or, for an aggregate, a dataclass of JSON data) ({error})"
        ) from None


def decode_message(data: bytes, decode_aggregate: AggregateDecoder | None = None) -> Any:
    """The message ``encode_message`` gave ``data`` for; ``ValueError`` for bytes it never gives.

    A state-carrying message's aggregate is then passed through ``decode_aggregate`` when one is
    given (and the aggregate is not ``None``); whatever that function raises, it raises.
    """
    message = _parse(data)
    if decode_aggregate is not None and getattr(message, "aggregate", None) is not None:
        message = dataclasses.replace(message, aggregate=decode_aggregate(message.aggregate))
    return message


def _parse(data: bytes) -> Any:
    try:
        fields = json.loads(data)
        kind = fields["kind"]
        if kind == "aggregate-exists":
            return AggregateExistsMessage(
                fields["event_store_id"], fields["aggregate_id"], fields["initial_event_timestamp"]
            )
        event = EventDetail(**fields["event"])
        if kind == "notification":
            return NotificationMessage(fields["event_store_id"], event)
        if kind == "state-carrying":
            return StateCarryingMessage(fields["event_store_id"], event, fields["aggregate"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"not a castore_edu message: {data[:200]!r} ({error!r})") from None
    raise ValueError(f"not a castore_edu message: unknown kind {kind!r}")


def _event_data(event: EventDetail) -> dict[str, Any]:
    data = {
        "aggregate_id": event.aggregate_id,
        "version": event.version,
        "type": event.type,
        "timestamp": event.timestamp,
        "payload": event.payload,
        "metadata": event.metadata,
    }
    if event.schema_version != 1:
        data["schema_version"] = event.schema_version
    return data


def _aggregate_data(aggregate: Any) -> Any:
    if dataclasses.is_dataclass(aggregate) and not isinstance(aggregate, type):
        return dataclasses.asdict(aggregate)
    return aggregate
