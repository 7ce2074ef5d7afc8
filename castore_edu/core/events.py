"""Events, event types, grouped events and the result records the event store returns.

An *event* is a fact that happened to one aggregate: "Pikachu appeared", "Pikachu levelled up".
It is identified by ``(aggregate_id, version)``: version 1 is the aggregate's first event, and
every later event takes the next version. Storage refuses a second event at a version that is
already taken, and that single rule is what makes concurrent writers safe (see
:class:`~castore_edu.core.errors.EventAlreadyExistsError`).

Aggregates are never stored. They are always recomputed by folding a *reducer* over events:
``aggregate = reducer(reducer(None, e1), e2)`` and so on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from castore_edu.core.arguments import require_str
from castore_edu.core.errors import InvalidEventError

if TYPE_CHECKING:
    from castore_edu.core.event_store import GroupingEventStore
    from castore_edu.storage.protocol import EventStorageAdapter

REPLAYED_EVENT_TYPE = "__REPLAYED__"
AGGREGATE_EXISTS_EVENT_TYPE = "__AGGREGATE_EXISTS__"
RESERVED_EVENT_TYPES = (REPLAYED_EVENT_TYPE, AGGREGATE_EXISTS_EVENT_TYPE)


@dataclass(frozen=True, kw_only=True, slots=True)
class EventDetail:
    """One stored (or to-be-stored) event.

    ``timestamp=None`` on input means "let the storage adapter stamp it"; a timestamp you give
    is kept as is (useful for tests and migrations).
    """

    aggregate_id: str
    version: int
    type: str
    timestamp: str | None = None
    payload: Any = None
    metadata: Any = None


@dataclass(frozen=True, slots=True)
class EventType:
    """Declares one kind of event an event store knows about. Informational: the store does
    not reject types it has not declared, exactly like Castore."""

    type: str

    def __post_init__(self) -> None:
        require_str("type", self.type, hint='an event type is a name, e.g. EventType("APPEARED")')
        if self.type in RESERVED_EVENT_TYPES:
            raise ValueError(f"{self.type} is a reserved event type. Please choose another one.")


@dataclass(frozen=True, slots=True)
class EventStoreContext:
    """Tells a storage adapter which event store an event belongs to."""

    event_store_id: str


@dataclass(eq=False)
class GroupedEvent:
    """An event waiting to be pushed together with others, all or nothing.

    Made by ``event_store.group_event(...)``, which fills ``context`` and ``event_store``;
    ``EventStore.push_event_group`` hands the whole group to the first event's adapter.

    ``group_event`` also validates the event, and keeps what :func:`validate_event` returned in
    ``validated``: the event it checked and the JSON text of its payload and metadata. The
    adapter that stores the group uses that text instead of checking the same event a second
    time (see :func:`~castore_edu.storage.protocol.stamp_grouped_for_storage`).
    """

    event: EventDetail
    event_storage_adapter: EventStorageAdapter
    context: EventStoreContext | None = None
    prev_aggregate: Any = None
    event_store: GroupingEventStore | None = None
    validated: tuple[EventDetail, str | None, str | None] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class PushEventResult:
    """What ``push_event`` returns: the stored (stamped) event and, when the store could
    compute it without reading, the aggregate after this event."""

    event: EventDetail
    next_aggregate: Any = None


@dataclass(frozen=True, slots=True)
class AggregateResult:
    """An aggregate with the events it was folded from. Unknown aggregate: all empty."""

    aggregate: Any
    events: list[EventDetail]
    last_event: EventDetail | None


@dataclass(frozen=True, slots=True)
class AggregateIdEntry:
    """One line of ``list_aggregate_ids``: an aggregate and when its first event happened."""

    aggregate_id: str
    initial_event_timestamp: str


@dataclass(frozen=True, slots=True)
class AggregateIdsPage:
    """A page of aggregate ids; ``next_page_token`` is set only when more remain."""

    aggregate_ids: list[AggregateIdEntry] = field(default_factory=list)
    next_page_token: str | None = None


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One entry of a storage adapter's ordered log (``read_log``).

    ``position`` is a number ≥ 1 that grows in the order a reader can see the events, so a
    follower that remembers the last position it handled can resume from there and miss nothing.
    In memory and on SQLite, which let one writer in at a time, positions also have no gaps and
    follow commit order; a server database can commit a lower position after a higher one, and
    its adapter must guard its readers against that.
    """

    position: int
    event_store_id: str
    event: EventDetail


def validate_event(event: object) -> tuple[str | None, str | None]:
    """Raise :class:`InvalidEventError` unless ``event`` is an event every adapter can store.

    The checks run before anything is written, so bad input never leaves half a write behind.
    Returns the JSON text of the payload and the metadata, which adapters store.
    """
    if not isinstance(event, EventDetail):
        raise InvalidEventError(f"expected an EventDetail, got {type(event).__name__}", field="event")
    if not isinstance(event.aggregate_id, str) or not event.aggregate_id:
        raise InvalidEventError(
            f"aggregate_id must be a non-empty str, got {event.aggregate_id!r}",
            field="aggregate_id",
        )
    version = event.version
    # bool is a subclass of int in Python; True as a version is a bug, not version 1.
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidEventError(f"version must be an int >= 1, got {version!r}", field="version")
    if not isinstance(event.type, str) or not event.type:
        raise InvalidEventError(f"type must be a non-empty str, got {event.type!r}", field="type")
    if event.timestamp is not None and not isinstance(event.timestamp, str):
        raise InvalidEventError(
            f"timestamp must be None or a str, got {event.timestamp!r}", field="timestamp"
        )
    return encode_json(event.payload, "payload"), encode_json(event.metadata, "metadata")


# One encoder, built once: ``json.dumps`` with options would build a new one on every call.
# ``allow_nan=False``: NaN and infinities are not JSON, and a database would refuse them.
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def encode_json(value: Any, field_name: str) -> str | None:
    """JSON text for a payload or metadata (``None`` stays ``None``), or InvalidEventError."""
    if value is None:
        return None
    try:
        return _JSON.encode(value)
    except (TypeError, ValueError) as error:
        raise InvalidEventError(f"{field_name} is not JSON data: {error}", field=field_name) from None
