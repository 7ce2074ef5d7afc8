"""Upcasting: reading old events in the shape today's code expects, without ever rewriting them.

A stored event is history: it is never updated, not even when the code that reads it changes.
Yet code does change. A payload field is renamed (``trainer`` becomes ``trainer_id``), one event
turns out to hold two facts and the model now has a type for each. The events written last year
still have last year's shape, and they will have it for ever.

So each event carries the *schema version* of its shape (``EventDetail.schema_version``), and an
event type declares its current version and one *upcaster* per older version
(``EventType(..., schema_version=3, upcasters={1: v1_to_v2, 2: v2_to_v3})``). Reading runs the
chain: an event stored in version 1 goes through ``v1_to_v2``, then ``v2_to_v3``, and what the
reader gets is the current shape. The reducer, the relay, the replay functions and every consumer
only ever see one shape: today's. The stored row is untouched, so a reader that already saw it
(a relay, a consumer, an auditor) saw what is still there.

What an upcaster may do, checked at every step (an :class:`~castore_edu.core.errors.UpcastError`
names the type, the versions and the fix):

- return the event in the next version of its type: ``replace(event, payload=..., schema_version=n + 1)``;
- or, for a *split*, several events, each of another type than the others: the old event held
  several facts, today's model has a type for each. A part of another type is then brought to
  *its* type's current version by that type's own chain, so an upcaster, once written, never
  needs to change when another type evolves later.

It may never change which event it is or when it happened (``aggregate_id``, ``version``,
``timestamp``): the parts of a split share those of the stored event. A version numbers what is
*stored*, and the next push takes the next one, so a part cannot have a version of its own.
Hence the price of a split: ``(event_store_id, aggregate_id, version)`` names the stored event,
and the parts are told apart by their type (a consumer that remembers keys must add the type).

What an upcaster must not do: business logic. It changes the *shape* of a fact, never the fact:
it does not recompute a level with today's rules, read other aggregates, or look at the clock.
Deciding belongs in commands, which write new events.

Castore's ``EventType`` can carry a ``parseEventDetail`` hook, but its event store never calls
it; here the event store calls the chain on every read (``EventStore.upcast``), and the relay
calls it on every event it publishes from the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from castore_edu.core.errors import InvalidEventError, UpcastError
from castore_edu.core.events import EventDetail, EventType, function_name

EventTypes = Mapping[str, EventType]


def event_types_by_name(event_types: Iterable[EventType]) -> dict[str, EventType]:
    """The declarations by type name; two different declarations of one name are refused (which
    one would say how to read its events?)."""
    by_name: dict[str, EventType] = {}
    for event_type in event_types:
        known = by_name.setdefault(event_type.type, event_type)
        if known != event_type:
            raise ValueError(
                f"event_types declares {event_type.type!r} twice, at schema versions "
                f"{known.schema_version} and {event_type.schema_version}: declare each type once, "
                "in its current schema version"
            )
    return by_name


def evolves(event_types: EventTypes) -> bool:
    """True when some declared type has a schema version above 1 (and so upcasters)."""
    return any(event_type.schema_version > 1 for event_type in event_types.values())


def in_current_schema(event: EventDetail, event_types: EventTypes, *, event_store_id: str) -> EventDetail:
    """``event`` as a store writes it: in its type's current schema version.

    The default ``schema_version=1`` means "not said": an event of a type at version 3 is
    written as version 3, so code that builds new events in today's shape needs to say nothing.
    An explicit version that is not the current one is refused: new events are written in the
    current shape only, and an older shape would be read back through upcasters written for
    stored history, not for new writes. A type the store does not declare is written as given.
    """
    declared = event_types.get(event.type)
    if declared is None or event.schema_version == declared.schema_version:
        return event
    if event.schema_version == 1:
        return replace(event, schema_version=declared.schema_version)
    current = declared.schema_version
    raise InvalidEventError(
        f"{event.type} is at schema version {current} in event store {event_store_id}, but this "
        f"event says schema_version={event.schema_version!r}: new events are written in the current "
        f"shape. Hint: build it in version {current} (or leave schema_version out); to store an old "
        "event, bring it to the current shape first with store.upcast(event)",
        field="schema_version",
    )


def upcast_events(
    events: list[EventDetail], event_types: EventTypes, *, reverse: bool = False
) -> list[EventDetail]:
    """Every event of ``events`` in its current shape, in the same order; a split event's parts
    come in the upcaster's order, or reversed too with ``reverse`` (newest first).

    When no type has evolved and every event is in version 1 (the whole course before notebook
    13), ``events`` itself is returned: reading pays nothing for upcasting it does not need.
    """
    if not evolves(event_types) and all(event.schema_version == 1 for event in events):
        return events
    upcast: list[EventDetail] = []
    for event in events:
        parts = upcast_event(event, event_types)
        upcast.extend(reversed(parts) if reverse else parts)
    return upcast


def upcast_event(
    event: EventDetail, event_types: EventTypes, *, _ancestors: frozenset[tuple[str, int]] = frozenset()
) -> list[EventDetail]:
    """The current-shape event(s) for one stored event: itself when it is current (or of a type
    the store does not declare), else what its type's chain of upcasters makes of it."""
    declared = event_types.get(event.type)
    if declared is None or event.schema_version == declared.schema_version:
        return [event]
    if event.schema_version < 1:
        raise _error(event, "schema versions start at 1: this row was not written by an event store")
    if event.schema_version > declared.schema_version:
        raise _unknown_version(event, declared)
    upcaster = declared.upcasters[event.schema_version]
    step = f"{event.type} upcaster {event.schema_version} → {event.schema_version + 1} ({function_name(upcaster)})"
    try:
        result = upcaster(event)
    except Exception as error:
        error.add_note(f"while upcasting {_which(event)} with the {step}")
        raise
    ancestors = _ancestors | {(event.type, event.schema_version)}
    current: list[EventDetail] = []
    for part in check_upcast(result, event, step):
        if (part.type, part.schema_version) in ancestors:
            raise _error(
                event,
                f"the {step} returned {part.type} in schema version {part.schema_version}, which "
                "upcasts back into it: the upcasters loop. Hint: an upcaster moves an event forward, "
                "to the next version of its type or to the current version of another type",
            )
        current.extend(upcast_event(part, event_types, _ancestors=ancestors))
    return current


def check_upcast(result: object, event: EventDetail, step: str) -> list[EventDetail]:
    """The events an upcaster returned for ``event``, checked: one event or a non-empty list of
    events of different types, all the same stored event (aggregate, version, timestamp), and those
    of the event's own type in the next schema version."""
    parts = [result] if isinstance(result, EventDetail) else result
    if (
        not isinstance(parts, list | tuple)
        or not parts
        or not all(isinstance(part, EventDetail) for part in parts)
    ):
        raise _error(
            event,
            f"the {step} returned {_short(result)}: it must return the event in schema version "
            f"{event.schema_version + 1} (an EventDetail), or a list of events for a split. Hint: return "
            f"dataclasses.replace(event, payload=..., schema_version={event.schema_version + 1})",
        )
    types = [part.type for part in parts]
    if len(set(types)) < len(types):
        raise _error(
            event,
            f"the {step} returned several events of one type ({types}): the parts of a split share "
            "the stored event's aggregate, version and timestamp, and are told apart by their type",
        )
    for part in parts:
        moved = [
            name
            for name in ("aggregate_id", "version", "timestamp")
            if getattr(part, name) != getattr(event, name)
        ]
        if moved:
            raise _error(
                event,
                f"the {step} changed {' and '.join(moved)} of the event: an upcaster changes the "
                "shape of an event, never which event it is or when it happened. Hint: build the "
                "result with dataclasses.replace(event, ...), which keeps them",
            )
        if part.type == event.type and part.schema_version != event.schema_version + 1:
            raise _error(
                event,
                f"the {step} returned {part.type} in schema version {part.schema_version}, not "
                f"{event.schema_version + 1}. Hint: say which shape it now has, "
                f"dataclasses.replace(event, ..., schema_version={event.schema_version + 1})",
            )
    return list(parts)


def _which(event: EventDetail) -> str:
    return (
        f"{event.type} event {event.aggregate_id!r} v{event.version} (schema version {event.schema_version})"
    )


def _error(event: EventDetail, problem: str) -> UpcastError:
    return UpcastError(
        f"Cannot read {_which(event)}: {problem}",
        event_type=event.type,
        aggregate_id=event.aggregate_id,
        version=event.version,
        schema_version=event.schema_version,
    )


def _unknown_version(event: EventDetail, declared: EventType) -> UpcastError:
    return _error(
        event,
        f"this code knows {event.type} up to schema version {declared.schema_version}, and no "
        f"schema version {event.schema_version}. Hint: a newer release wrote it: read it with the "
        f"release that declares EventType({event.type!r}, schema_version={event.schema_version}, "
        "upcasters=...), or declare that version here, with its upcaster",
    )


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
