"""Events, event types, grouped events and the result records the event store returns.

An *event* is a fact that happened to one aggregate: "Pikachu appeared", "Pikachu levelled up".
It is identified by ``(aggregate_id, version)``: version 1 is the aggregate's first event, and
every later event takes the next version. Storage refuses a second event at a version that is
already taken, and that single rule is what makes concurrent writers safe (see
:class:`~castore_edu.core.errors.EventAlreadyExistsError`).

Aggregates are never stored. They are always recomputed by folding a *reducer* over events:
``aggregate = reducer(reducer(None, e1), e2)`` and so on.

Events are never changed once stored, yet the code that reads them changes: a payload field is
renamed, one event becomes two. So every event also carries the *schema version* of its shape,
and an :class:`EventType` can declare its current schema version and the *upcasters* that turn
an event of each older version into the next one (``core/upcasting.py`` runs them on read).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from castore_edu.core.arguments import got, require_callable, require_int, require_str
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

    ``schema_version`` is the version of the payload's *shape* (not the aggregate's ``version``):
    1 unless the event's type has evolved (see :class:`EventType`). Leave it out when you write a
    new event: the event store writes it in its type's current schema version. Events stored
    before schema versions existed read back as version 1.
    """

    aggregate_id: str
    version: int
    type: str
    timestamp: str | None = None
    payload: Any = None
    metadata: Any = None
    schema_version: int = 1

    def __repr__(self) -> str:
        """The dataclass's repr, without ``schema_version`` while it is 1: an event whose type
        never evolved looks exactly as it did before schema versions existed."""
        shown = (
            f"aggregate_id={self.aggregate_id!r}, version={self.version!r}, type={self.type!r}, "
            f"timestamp={self.timestamp!r}, payload={self.payload!r}, metadata={self.metadata!r}"
        )
        if self.schema_version != 1:
            shown += f", schema_version={self.schema_version!r}"
        return f"{type(self).__name__}({shown})"


# What an upcaster returns: the event in the next schema version, or several events when the old
# event held several facts (a split). See castore_edu/core/upcasting.py.
UpcastResult = EventDetail | Sequence[EventDetail]
Upcaster = Callable[[EventDetail], UpcastResult]


@dataclass(frozen=True, slots=True)
class EventType:
    """Declares one kind of event an event store knows about. Informational: the store does
    not reject types it has not declared, exactly like Castore.

    A type whose payload changed shape declares its current ``schema_version`` and one
    *upcaster* per older version: ``upcasters[n]`` takes an event of schema version ``n`` and
    returns it in version ``n + 1`` (or several events, for a split)::

        EventType("POKEMON_CAUGHT", schema_version=3, upcasters={1: v1_to_v2, 2: v2_to_v3})

    The chain must be complete: every version from 1 to ``schema_version - 1`` has its upcaster,
    and no other key is allowed, so a gap fails here rather than when an old event is read.
    An event type is identified by its name and its current schema version: two declarations
    that differ only in their upcasters are equal (functions compare by identity, which says
    nothing about what they do).
    """

    type: str
    schema_version: int = 1
    upcasters: Mapping[int, Upcaster] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        require_str("type", self.type, hint='an event type is a name, e.g. EventType("APPEARED")')
        if self.type in RESERVED_EVENT_TYPES:
            raise ValueError(f"{self.type} is a reserved event type. Please choose another one.")
        require_int("schema_version", self.schema_version, minimum=1)
        if self.schema_version > MAX_VERSION:
            raise ValueError(
                f"schema_version must be <= MAX_VERSION ({MAX_VERSION}), got {self.schema_version}"
            )
        # A copy: the caller's dict may change later, the declaration may not.
        object.__setattr__(self, "upcasters", check_upcasters(self.type, self.schema_version, self.upcasters))

    def __repr__(self) -> str:
        """``EventType(type='X')`` as always; an evolved type also shows its chain, by function name
        (a function's own repr holds a memory address, different on every run)."""
        if self.schema_version == 1 and not self.upcasters:
            return f"EventType(type={self.type!r})"
        chain = ", ".join(
            f"{version}: {function_name(upcaster)}" for version, upcaster in self.upcasters.items()
        )
        return f"EventType(type={self.type!r}, schema_version={self.schema_version}, upcasters={{{chain}}})"


def function_name(function: object) -> str:
    """A function's name for a message or a repr (its ``__qualname__``, else its repr)."""
    return str(getattr(function, "__qualname__", None) or repr(function))


def _from_versions(versions: list[int]) -> str:
    """``upcaster from version 2 (2 → 3)``, or the plural for several versions."""
    steps = ", ".join(f"{version} → {version + 1}" for version in versions)
    if len(versions) == 1:
        return f"upcaster from version {versions[0]} ({steps})"
    return f"upcasters from versions {', '.join(map(str, versions))} ({steps})"


def check_upcasters(event_type: str, schema_version: int, upcasters: object) -> dict[int, Upcaster]:
    """``upcasters`` as a dict sorted by version, checked to be the complete chain from version 1
    to ``schema_version``: one callable for each of 1 .. schema_version - 1, nothing else."""
    declaration = f"EventType({event_type!r}, schema_version={schema_version})"
    if not isinstance(upcasters, Mapping):
        raise TypeError(
            f"upcasters must be a dict of schema versions to functions, got {got(upcasters)}. "
            "Hint: upcasters={1: v1_to_v2, 2: v2_to_v3}"
        )
    for version, upcaster in upcasters.items():
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(
                f"{declaration}: upcasters keys are the schema versions they upcast from (ints), "
                f"got {got(version)}"
            )
        require_callable(
            f"upcasters[{version}]",
            upcaster,
            hint=f"an upcaster is a function (event of version {version}) -> event of version {version + 1}",
        )
    expected = set(range(1, schema_version))
    extra = sorted(set(upcasters) - expected)
    if extra and schema_version == 1:
        raise ValueError(
            f"{declaration} declares upcasters, but schema version 1 is the first: there is no older "
            f"version to upcast from. Hint: the current version goes in schema_version, e.g. "
            f"EventType({event_type!r}, schema_version={max(extra) + 1}, upcasters=...)"
        )
    if extra:
        raise ValueError(
            f"{declaration} has {_from_versions(extra)}, outside 1 to {schema_version - 1}: "
            f"upcasters[n] turns version n into n + 1, up to the current version {schema_version}. "
            "Hint: raise schema_version, or remove those upcasters"
        )
    missing = sorted(expected - set(upcasters))
    if missing:
        chain = ", ".join(f"{version}: v{version}_to_v{version + 1}" for version in range(1, schema_version))
        raise ValueError(
            f"{declaration} misses the {_from_versions(missing)}: an event stored in "
            f"{'that version' if len(missing) == 1 else 'those versions'} could not be read. "
            f"Hint: one upcaster per older version, upcasters={{{chain}}}"
        )
    return dict(sorted(upcasters.items()))


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
    schema_version = event.schema_version
    if (
        not isinstance(schema_version, int)
        or isinstance(schema_version, bool)
        or not 1 <= schema_version <= MAX_VERSION
    ):
        raise InvalidEventError(
            f"schema_version must be an int from 1 to MAX_VERSION ({MAX_VERSION}), got {schema_version!r}",
            field="schema_version",
        )
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
