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
    """An aggregate with the events it was folded from. Unknown aggregate: all empty.

    ``snapshot_version`` says where the fold started: ``None`` from nothing, so ``events`` is the
    whole history (up to ``max_version``); a version when it started from the snapshot taken at
    that version (see ``castore_edu.snapshots``), and then ``events`` holds only the events after
    it. Either way ``last_event`` is the aggregate's last event (up to ``max_version``).
    """

    aggregate: Any
    events: list[EventDetail]
    last_event: EventDetail | None
    snapshot_version: int | None = None


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


# The highest version every shipped adapter can store: PostgreSQL's ``version`` column is an
# INTEGER, 32 bits (SQLite's integers go to 2**63 - 1, memory has no limit). Two billion events
# for one aggregate is far beyond any real stream.
MAX_VERSION = 2**31 - 1

# How deep containers (dicts, lists) may nest in a payload or metadata. Reading JSON back
# (``json.loads``, in sqlite3's and psycopg's hands) recurses once per level, and so does any
# code that walks the data afterwards; Python stops at its recursion limit, 1000 frames by
# default, counted from wherever the read happens. 100 levels is far more than any real event
# needs and leaves the caller's own stack 900 frames of room.
MAX_JSON_DEPTH = 100


def validate_event(event: object) -> tuple[str | None, str | None]:
    """Raise :class:`InvalidEventError` unless ``event`` is an event every adapter can store.

    The checks run before anything is written, so bad input never leaves half a write behind.
    One rule for every adapter: what the strictest of them (PostgreSQL) cannot store, none
    accepts, so code that works in memory also works on a server database.
    Returns the JSON text of the payload and the metadata, which adapters store.
    """
    if not isinstance(event, EventDetail):
        raise InvalidEventError(f"expected an EventDetail, got {type(event).__name__}", field="event")
    check_text(event.aggregate_id, "aggregate_id")
    version = event.version
    # bool is a subclass of int in Python; True as a version is a bug, not version 1.
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidEventError(f"version must be an int >= 1, got {version!r}", field="version")
    if version > MAX_VERSION:
        raise InvalidEventError(
            f"version must be <= MAX_VERSION ({MAX_VERSION}), got {version}", field="version"
        )
    check_text(event.type, "type")
    if event.timestamp is not None:
        if not isinstance(event.timestamp, str):
            raise InvalidEventError(
                f"timestamp must be None or a str, got {event.timestamp!r}", field="timestamp"
            )
        check_text(event.timestamp, "timestamp", may_be_empty=True)
    return encode_json(event.payload, "payload"), encode_json(event.metadata, "metadata")


def check_text(value: object, field_name: str, *, may_be_empty: bool = False) -> None:
    """Raise :class:`InvalidEventError` unless ``value`` is a str that a text column of every
    adapter can hold: valid Unicode (SQLite and PostgreSQL store UTF-8, and a lone surrogate
    such as ``"\\ud800"`` has no UTF-8 form) and without the NUL character (PostgreSQL's text
    cannot hold it)."""
    if not isinstance(value, str) or (not value and not may_be_empty):
        raise InvalidEventError(f"{field_name} must be a non-empty str, got {value!r}", field=field_name)
    if "\x00" in value:
        raise InvalidEventError(
            f"{field_name} must not contain the NUL character (\\x00), got {value!r}", field=field_name
        )
    if not is_valid_unicode(value):
        raise InvalidEventError(
            f"{field_name} must be valid Unicode, got {value!r} (a lone surrogate has no UTF-8 form)",
            field=field_name,
        )


def is_valid_unicode(text: str) -> bool:
    """False when ``text`` holds a lone surrogate (``"\\ud800"``): Python strings may, UTF-8 may not."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# One encoder, built once: ``json.dumps`` with options would build a new one on every call.
# ``allow_nan=False``: NaN and infinities are not JSON, and a database would refuse them.
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def encode_json(value: Any, field_name: str) -> str | None:
    """JSON text for a payload or metadata (``None`` stays ``None``), or InvalidEventError.

    ``json.dumps`` alone is not enough of a check: it turns the key ``1`` into ``"1"`` (so
    ``{1: "a", "1": "b"}`` would read back as ``{"1": "b"}``) and recurses as deep as the data
    goes. :func:`check_json_shape` refuses both first. A string with a lone surrogate encodes
    fine, but not to UTF-8, which every database stores; NUL needs no check here, as JSON text
    writes it ``\\u0000``.
    """
    if value is None:
        return None
    check_json_shape(value, field_name)
    try:
        text = _JSON.encode(value)
    except (TypeError, ValueError) as error:
        raise InvalidEventError(f"{field_name} is not JSON data: {error}", field=field_name) from None
    if not is_valid_unicode(text):
        raise InvalidEventError(
            f"{field_name} is not JSON data: a string in it holds a lone surrogate (no UTF-8 form)",
            field=field_name,
        )
    return text


def check_json_shape(value: Any, field_name: str) -> None:
    """Refuse a mapping key that is not a ``str``, and containers nested deeper than
    :data:`MAX_JSON_DEPTH`, anywhere in ``value``.

    A loop over a stack of ``(container, depth)`` rather than a recursive function: a recursive
    check would itself hit the recursion limit on the very data it must refuse. It never goes
    deeper than the limit, so a list that contains itself is refused as too deep, not looped
    over forever.
    """
    if not isinstance(value, JSON_CONTAINERS):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidEventError(
                f"{field_name} nests deeper than MAX_JSON_DEPTH ({MAX_JSON_DEPTH}) levels", field=field_name
            )
        if isinstance(container, dict):
            for key in container:
                if not isinstance(key, str):
                    raise InvalidEventError(
                        f"{field_name} has a key that is not a str: {key!r} (JSON keys are strings)",
                        field=field_name,
                    )
            children = container.values()
        else:
            children = container
        for child in children:
            if isinstance(child, JSON_CONTAINERS):
                stack.append((child, depth + 1))


# What ``json.dumps`` writes as an object (dict) or an array (list, tuple).
JSON_CONTAINERS = (dict, list, tuple)
