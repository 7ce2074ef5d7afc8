"""A property-based state machine: every storage adapter, driven against a model in plain Python.

The contract suite (``castore_edu/testing/storage_contract.py``) checks one behaviour per test,
on data we thought of. Here, hypothesis thinks of the data: it runs random *sequences* of
operations (pushes, forced overwrites, groups, bad events, reads, listings, log reads) on a real
adapter and, side by side, on :class:`Model`, a few dicts and lists that say what the adapter
should hold. After every step the invariants compare the two. When they disagree, hypothesis
shrinks the sequence to the shortest one that still fails and prints it as a small program.

The adapters: :class:`InMemoryEventStorageAdapter` (one per event store, as it wants, so each
store has a log of its own), :class:`SQLiteEventStorageAdapter` on a temporary file (one
connection per event store, one log for both) and on ``:memory:`` (one connection for both
stores: a private database cannot be shared), and :class:`PostgresEventStorageAdapter` (one
connection per event store, in an empty schema per example, dropped after it).

The invariants, checked after every step:

- every log holds each stored event exactly once, in push order, at positions 1, 2, 3...
  (a forced overwrite keeps its position), and ``last_position`` is the last of them;
- every aggregate reads back as modelled (versions 1..n, each as last written);
- each store lists its aggregates by their first event's timestamp, ties in creation order.

The adapters' calls are coroutines and a hypothesis state machine is not: each machine owns an
event loop (an :class:`asyncio.Runner`) for its whole life and runs every call on it, so the
PostgreSQL connections stay on one loop. ``teardown`` closes every adapter, then the loop.

The clock is a stepping one (one second per stamp, from 2024-01-01T00:00:00.000Z) that remembers
what it gave, so an adapter's stamp can be checked exactly. Some events bring their own
timestamp, from a short list: aggregates often share a first timestamp, which is how the
tie rule of the listing gets tested.

**How many examples.** The settings profiles are registered in ``tests/conftest.py``:

- ``bounded`` (the default, what ``make test`` runs): 50 examples of up to 30 steps per adapter
  (PostgreSQL: half as many examples, as every call is a round trip to the server),
  derandomized, so that every run, on every machine, tries the same sequences; about 25 s for
  the whole file on a busy two-core machine;
- ``nightly`` (``HYPOTHESIS_PROFILE=nightly .venv/bin/python -m pytest
  tests/test_adapter_state_machine.py``): 500 examples of up to 50 steps (PostgreSQL: 250), on a
  fresh random seed each run. A failure prints a ``@reproduce_failure`` blob to replay it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from castore_edu import (
    AggregateIdEntry,
    AggregateIdsPage,
    EventAlreadyExistsError,
    EventDetail,
    InMemoryEventStorageAdapter,
    InvalidEventError,
    SQLiteEventStorageAdapter,
)
from castore_edu.core.clock import Clock, stepping_clock
from castore_edu.core.events import MAX_JSON_DEPTH, MAX_VERSION, EventStoreContext, GroupedEvent
from castore_edu.storage.protocol import OrderedLogStorage

T = TypeVar("T")

# -- the data the machine plays with ---------------------------------------------------------

EVENT_STORES = ("POKEMONS", "TRAINERS")
# Few ids, so that operations often meet the same aggregate; some of them awkward for SQL.
AGGREGATE_IDS = ("pikachu", "mew", "O'Brien", "ピカチュウ", "x'); DROP TABLE events; --")
EVENT_TYPES = ("APPEARED", "LEVELLED_UP", "EVOLVED")
# Timestamps an event may bring. The clock stamps 00:00:00, 00:00:01, 00:00:02...: the second and
# third of these are stamps it gives too, so a given timestamp can tie with a stamped one.
GIVEN_TIMESTAMPS = ("2023-12-31T23:59:59.000Z", "2024-01-01T00:00:02.000Z", "2024-01-01T00:00:05.000Z")
# The bounds a listing may take (inclusive): some equal to timestamps above, some between.
LISTING_BOUNDS = (None, "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:02.000Z", "2024-01-01T00:00:04.500Z")

store_ids = st.sampled_from(EVENT_STORES)
# Generated names are what every adapter can store: valid UTF-8 (no lone surrogate) and no NUL.
# The characters that are not (validate_event refuses them on every adapter) are lines of
# BAD_EVENTS; the machine found them first, when memory stored what SQLite and PostgreSQL refused.
generated_names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8)
aggregate_ids = st.sampled_from(AGGREGATE_IDS) | generated_names

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
json_values = st.one_of(
    json_scalars,
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=4), json_scalars, max_size=3),
)


@dataclass(frozen=True)
class Content:
    """Everything about an event but where it goes (its aggregate and version)."""

    type: str
    timestamp: str | None
    payload: Any
    metadata: Any
    schema_version: int = 1

    def at(self, aggregate_id: str, version: int) -> EventDetail:
        return EventDetail(
            aggregate_id=aggregate_id,
            version=version,
            type=self.type,
            timestamp=self.timestamp,
            payload=self.payload,
            metadata=self.metadata,
            schema_version=self.schema_version,
        )


contents = st.builds(
    Content,
    type=st.sampled_from(EVENT_TYPES) | generated_names,
    timestamp=st.none() | st.sampled_from(GIVEN_TIMESTAMPS),
    payload=json_values,
    metadata=st.none() | st.fixed_dictionaries({"by": st.sampled_from(["Ash", "Misty"])}),
    # Mostly 1, as for a type that never evolved; a forced overwrite may change it.
    schema_version=st.sampled_from((1, 1, 2, 3, MAX_VERSION)),
)


@dataclass(frozen=True)
class Planned:
    """A valid event of a group, or of a bad push's companions: its store, aggregate and content.
    The version is the next one, decided when the group is pushed."""

    store_id: str
    aggregate_id: str
    content: Content


planned_events = st.builds(Planned, store_id=store_ids, aggregate_id=aggregate_ids, content=contents)


@dataclass(frozen=True)
class BadEvent:
    """One way to spoil a valid event, and the field ``InvalidEventError`` must name."""

    name: str
    changes: dict[str, Any]
    field: str

    def spoil(self, event: EventDetail) -> EventDetail:
        return replace(event, **self.changes)


# What every adapter refuses today (castore_edu/core/events.py, validate_event). One line per way
# to go wrong: a new rule of validate_event is one more line here.
def nested(depth: int) -> list[object]:
    """A list inside a list ... ``depth`` containers deep."""
    data: list[object] = []
    for _ in range(depth - 1):
        data = [data]
    return data


BAD_EVENTS = (
    BadEvent("empty aggregate id", {"aggregate_id": ""}, "aggregate_id"),
    BadEvent("aggregate id not a str", {"aggregate_id": 7}, "aggregate_id"),
    BadEvent("version 0", {"version": 0}, "version"),
    BadEvent("version a bool", {"version": True}, "version"),
    BadEvent("version a float", {"version": 2.0}, "version"),
    BadEvent("type not a str", {"type": 3}, "type"),
    BadEvent("empty type", {"type": ""}, "type"),
    BadEvent("timestamp not a str", {"timestamp": 20240101}, "timestamp"),
    BadEvent("payload holds a set", {"payload": {"moves": {"thunder"}}}, "payload"),
    BadEvent("payload NaN", {"payload": {"level": float("nan")}}, "payload"),
    BadEvent("metadata infinite", {"metadata": float("inf")}, "metadata"),
    BadEvent("NUL in the aggregate id", {"aggregate_id": "pika\x00chu"}, "aggregate_id"),
    BadEvent("lone surrogate in the type", {"type": "APPEARED\ud800"}, "type"),
    BadEvent("lone surrogate in the payload", {"payload": {"name": "\udcff"}}, "payload"),
    BadEvent("payload key not a str", {"payload": {1: "a", "1": "b"}}, "payload"),
    BadEvent("payload too deep", {"payload": nested(MAX_JSON_DEPTH + 1)}, "payload"),
    BadEvent("version beyond MAX_VERSION", {"version": MAX_VERSION + 1}, "version"),
    BadEvent("schema version 0", {"schema_version": 0}, "schema_version"),
    BadEvent("schema version a str", {"schema_version": "2"}, "schema_version"),
    BadEvent("schema version beyond MAX_VERSION", {"schema_version": MAX_VERSION + 1}, "schema_version"),
)


# -- the model ---------------------------------------------------------------------------------

LogKey = tuple[str, str, int]  # (event_store_id, aggregate_id, version)


@dataclass
class Model:
    """What the adapters should hold, in plain Python.

    ``aggregates`` maps ``(event_store_id, aggregate_id)`` to its events, versions 1..n in order;
    a dict keeps the order in which keys arrived, so it also says in which order the aggregates
    were created. ``log`` lists every event once, in push order.
    """

    aggregates: dict[tuple[str, str], list[EventDetail]] = field(default_factory=dict)
    log: list[LogKey] = field(default_factory=list)

    def events_of(self, store_id: str, aggregate_id: str) -> list[EventDetail]:
        return self.aggregates.get((store_id, aggregate_id), [])

    def next_version(self, store_id: str, aggregate_id: str) -> int:
        return len(self.events_of(store_id, aggregate_id)) + 1

    def stored_keys(self) -> list[LogKey]:
        return list(self.log)

    def write(self, store_id: str, event: EventDetail) -> None:
        """What a push does with a valid event: a new version goes at the end of the aggregate
        and of the log; a taken one (only with ``force``) is replaced where it is, so its log
        position stays."""
        events = self.aggregates.setdefault((store_id, event.aggregate_id), [])
        if event.version <= len(events):
            events[event.version - 1] = event
            return
        assert event.version == len(events) + 1, "the machine only pushes the next version"
        events.append(event)
        self.log.append((store_id, event.aggregate_id, event.version))

    def read(
        self,
        store_id: str,
        aggregate_id: str,
        *,
        min_version: int | None,
        max_version: int | None,
        limit: int | None,
        reverse: bool,
    ) -> list[EventDetail]:
        """``get_events`` as the model answers it."""
        events = [
            event
            for event in self.events_of(store_id, aggregate_id)
            if (min_version is None or event.version >= min_version)
            and (max_version is None or event.version <= max_version)
        ]
        if reverse:
            events.reverse()
        return events if limit is None else events[:limit]

    def log_of(self, log_store_ids: frozenset[str]) -> list[tuple[str, EventDetail]]:
        """The log of an adapter that logs the stores ``log_store_ids``: ``(store id, event)``
        in push order, each event as last written."""
        return [
            (store_id, self.events_of(store_id, aggregate_id)[version - 1])
            for store_id, aggregate_id, version in self.log
            if store_id in log_store_ids
        ]

    def listing(
        self, store_id: str, *, reverse: bool, after: str | None, before: str | None
    ) -> list[AggregateIdEntry]:
        """``list_aggregate_ids`` over every page: by first timestamp, ties in creation order
        (``sorted`` is stable and the dict is in creation order), bounds inclusive."""
        created = [
            AggregateIdEntry(aggregate_id, events[0].timestamp or "")
            for (owner, aggregate_id), events in self.aggregates.items()
            if owner == store_id
        ]
        ordered = sorted(created, key=lambda entry: entry.initial_event_timestamp)
        if reverse:
            ordered.reverse()
        return [
            entry
            for entry in ordered
            if (after is None or entry.initial_event_timestamp >= after)
            and (before is None or entry.initial_event_timestamp <= before)
        ]


class RecordingClock:
    """A stepping clock (one second per stamp) that remembers every stamp it gave, so that a
    test can tell whether the timestamp on a stored event came from it during a given call."""

    def __init__(self) -> None:
        self._next_stamp = stepping_clock("2024-01-01T00:00:00.000Z", step_ms=1000)
        self.stamps: list[str] = []

    def __call__(self) -> str:
        stamp = self._next_stamp()
        self.stamps.append(stamp)
        return stamp


# -- the adapters under test -------------------------------------------------------------------


@dataclass
class Storage:
    """What one run of the machine drives: an adapter per event store, the logs to read (each
    with the stores it holds) and how to close it all."""

    adapters: dict[str, OrderedLogStorage]
    logs: list[tuple[OrderedLogStorage, frozenset[str]]]
    close: Callable[[], Awaitable[None]]


OpenStorage = Callable[[Clock], Awaitable[Storage]]


def one_database(adapters: dict[str, OrderedLogStorage], close: Callable[[], Awaitable[None]]) -> Storage:
    """Storage where every adapter opens one database: one log, holding every store, read
    through any of the adapters (the first)."""
    first = next(iter(adapters.values()))
    return Storage(adapters, [(first, frozenset(adapters))], close)


async def open_in_memory(clock: Clock) -> Storage:
    """One adapter per event store, as the in-memory adapter wants: each keeps its own log."""
    adapters: dict[str, OrderedLogStorage] = {
        store_id: InMemoryEventStorageAdapter(clock=clock) for store_id in EVENT_STORES
    }

    async def close() -> None:
        """Nothing to release."""

    logs = [(adapter, frozenset({store_id})) for store_id, adapter in adapters.items()]
    return Storage(adapters, logs, close)


async def open_sqlite_file(clock: Clock) -> Storage:
    """A new file in a temporary folder, one connection per event store (so that a group
    crosses connections), the folder removed on close."""
    folder = tempfile.TemporaryDirectory(prefix="castore-edu-machine-")
    path = Path(folder.name) / "events.sqlite"
    connections = [SQLiteEventStorageAdapter(path, clock=clock) for _ in EVENT_STORES]

    async def close() -> None:
        for connection in connections:
            connection.close()
        folder.cleanup()

    return one_database(dict(zip(EVENT_STORES, connections, strict=True)), close)


async def open_sqlite_memory(clock: Clock) -> Storage:
    """A private ``:memory:`` database: only its one connection sees it, so both stores use it."""
    adapter = SQLiteEventStorageAdapter(":memory:", clock=clock)

    async def close() -> None:
        adapter.close()

    return one_database(dict.fromkeys(EVENT_STORES, adapter), close)


_schema_numbers = itertools.count(1)


def postgres_opener(server_url: str) -> OpenStorage:
    """Opens PostgreSQL storage in a new, empty schema of the server at ``server_url`` (one per
    example: an example must start from an empty database), dropped on close."""
    import psycopg
    import psycopg.conninfo

    from castore_edu.storage.postgres import PostgresEventStorageAdapter

    async def open_postgres(clock: Clock) -> Storage:
        schema = f"castore_edu_machine_{os.getpid()}_{next(_schema_numbers)}"
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
        conninfo = psycopg.conninfo.make_conninfo(server_url, options=f"-c search_path={schema}")
        connections = [PostgresEventStorageAdapter(conninfo, clock=clock) for _ in EVENT_STORES]

        async def close() -> None:
            try:
                for connection in connections:
                    await connection.close()
            finally:
                with psycopg.connect(server_url, autocommit=True) as admin:
                    admin.execute(f"DROP SCHEMA {schema} CASCADE")

        return one_database(dict(zip(EVENT_STORES, connections, strict=True)), close)

    return open_postgres


# -- the machine -------------------------------------------------------------------------------


class AdapterMachine(RuleBasedStateMachine):
    """Drives the adapters ``open_storage`` opens and the model side by side.

    A rule either changes both (a push the adapter must accept, recorded in the model once the
    adapter's answer was checked) or neither (a push it must refuse: the invariants then find
    storage as the model, unchanged). Read rules compare one answer each.
    """

    def __init__(self, open_storage: OpenStorage) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.clock = RecordingClock()
        self.model = Model()
        try:
            self.storage = self.run(open_storage(self.clock))
        except BaseException:
            self.runner.close()
            raise

    def teardown(self) -> None:
        try:
            self.run(self.storage.close())
        finally:
            self.runner.close()

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        """Run one adapter call on the machine's own event loop."""
        return self.runner.run(call)

    def adapter(self, store_id: str) -> OrderedLogStorage:
        return self.storage.adapters[store_id]

    def grouped(self, store_id: str, event: EventDetail) -> GroupedEvent:
        """A grouped event made by hand (not by ``EventStore.group_event``, which would check it
        first): the adapter must do every check itself."""
        return GroupedEvent(
            event=event, event_storage_adapter=self.adapter(store_id), context=EventStoreContext(store_id)
        )

    def check_stored(self, pushed: list[EventDetail], returned: list[EventDetail], first_stamp: int) -> None:
        """Check that ``returned`` is ``pushed`` as storage must keep it: a given timestamp kept,
        and every missing one filled with one stamp, shared, that the clock gave during the push
        (``self.clock.stamps[first_stamp:]``)."""
        stamps_given = {
            stored.timestamp
            for event, stored in zip(pushed, returned, strict=True)
            if event.timestamp is None
        }
        assert len(stamps_given) <= 1, f"one push, one stamp: got {sorted(map(str, stamps_given))}"
        stamp = next(iter(stamps_given), None)
        if stamp is not None:
            assert stamp in self.clock.stamps[first_stamp:], f"{stamp} is not a stamp of this push"
        expected = [
            event if event.timestamp is not None else replace(event, timestamp=stamp) for event in pushed
        ]
        assert returned == expected

    def push(self, store_id: str, event: EventDetail, *, force: bool) -> None:
        """Push an event the adapter must accept; check its answer, then record it."""
        first_stamp = len(self.clock.stamps)
        stored = self.run(self.adapter(store_id).push_event(event, event_store_id=store_id, force=force))
        self.check_stored([event], [stored], first_stamp)
        self.model.write(store_id, stored)

    # -- pushes ----------------------------------------------------------------------------

    @rule(store_id=store_ids, aggregate_id=aggregate_ids, content=contents, force=st.booleans())
    def push_the_next_version(self, store_id: str, aggregate_id: str, content: Content, force: bool) -> None:
        """A new version is stored, with ``force`` or without (force changes nothing then)."""
        self.push(
            store_id, content.at(aggregate_id, self.model.next_version(store_id, aggregate_id)), force=force
        )

    @precondition(lambda self: bool(self.model.log))
    @rule(data=st.data(), content=contents)
    def push_a_taken_version(self, data: st.DataObject, content: Content) -> None:
        """A version already stored is refused, by name, and nothing changes."""
        store_id, aggregate_id, version = data.draw(st.sampled_from(self.model.stored_keys()), label="taken")
        with pytest.raises(EventAlreadyExistsError) as refused:
            self.run(
                self.adapter(store_id).push_event(content.at(aggregate_id, version), event_store_id=store_id)
            )
        error = refused.value
        assert (error.event_store_id, error.aggregate_id, error.version) == (store_id, aggregate_id, version)

    @precondition(lambda self: bool(self.model.log))
    @rule(data=st.data(), content=contents)
    def overwrite_a_taken_version_with_force(self, data: st.DataObject, content: Content) -> None:
        """``force`` replaces a stored event in place (the log invariant checks its position)."""
        store_id, aggregate_id, version = data.draw(st.sampled_from(self.model.stored_keys()), label="taken")
        self.push(store_id, content.at(aggregate_id, version), force=True)

    @rule(
        members=st.lists(planned_events, min_size=1, max_size=4),
        conflict_at=st.none() | st.integers(0, 3),
        force=st.booleans(),
    )
    def push_a_group(self, members: list[Planned], conflict_at: int | None, force: bool) -> None:
        """A group across stores and aggregates, all or nothing.

        Every member takes the next version of its aggregate (counting the group's earlier
        members), except the member at ``conflict_at``, if any: it takes the version its
        aggregate had last, stored already or earlier in this very group. Without ``force``
        that conflict refuses the whole group, naming that event; with ``force`` it overwrites.
        """
        versions_so_far: dict[tuple[str, str], int] = {}
        group: list[tuple[str, EventDetail]] = []
        conflict: tuple[str, str, int] | None = None
        for index, member in enumerate(members):
            key = (member.store_id, member.aggregate_id)
            last = versions_so_far.get(key, self.model.next_version(*key) - 1)
            if index == conflict_at and last > 0:
                version, conflict = last, (member.store_id, member.aggregate_id, last)
            else:
                version = versions_so_far[key] = last + 1
            group.append((member.store_id, member.content.at(member.aggregate_id, version)))

        grouped = [self.grouped(store_id, event) for store_id, event in group]
        first_adapter = grouped[0].event_storage_adapter
        if conflict is not None and not force:
            with pytest.raises(EventAlreadyExistsError) as refused:
                self.run(first_adapter.push_event_group(grouped))
            error = refused.value
            assert (error.event_store_id, error.aggregate_id, error.version) == conflict
            return
        first_stamp = len(self.clock.stamps)
        stored = self.run(first_adapter.push_event_group(grouped, force=force))
        self.check_stored([event for _, event in group], stored, first_stamp)
        for (store_id, _), event in zip(group, stored, strict=True):
            self.model.write(store_id, event)

    @rule(
        planned=planned_events,
        bad=st.sampled_from(BAD_EVENTS),
        companions=st.lists(planned_events, max_size=2),
        position=st.integers(0, 2),
        force=st.booleans(),
    )
    def push_a_bad_event(
        self, planned: Planned, bad: BadEvent, companions: list[Planned], position: int, force: bool
    ) -> None:
        """A bad event is refused, alone or anywhere in a group of valid ones, with or without
        ``force``, and nothing at all is stored (the invariants check that)."""
        next_version = self.model.next_version(planned.store_id, planned.aggregate_id)
        spoiled = bad.spoil(planned.content.at(planned.aggregate_id, next_version))
        with pytest.raises(InvalidEventError) as refused:
            if not companions:
                adapter = self.adapter(planned.store_id)
                self.run(adapter.push_event(spoiled, event_store_id=planned.store_id, force=force))
            else:
                grouped = [
                    self.grouped(
                        c.store_id,
                        c.content.at(c.aggregate_id, self.model.next_version(c.store_id, c.aggregate_id)),
                    )
                    for c in companions
                ]
                grouped.insert(position % (len(grouped) + 1), self.grouped(planned.store_id, spoiled))
                self.run(grouped[0].event_storage_adapter.push_event_group(grouped, force=force))
        assert refused.value.field == bad.field, f"{bad.name}: {refused.value}"

    # -- reads -----------------------------------------------------------------------------

    @rule(
        store_id=store_ids,
        aggregate_id=aggregate_ids,
        min_version=st.none() | st.integers(0, 5),
        max_version=st.none() | st.integers(0, 5),
        limit=st.none() | st.integers(0, 4),
        reverse=st.booleans(),
    )
    def read_some_events(
        self,
        store_id: str,
        aggregate_id: str,
        min_version: int | None,
        max_version: int | None,
        limit: int | None,
        reverse: bool,
    ) -> None:
        options = dict(min_version=min_version, max_version=max_version, limit=limit, reverse=reverse)
        read = self.run(self.adapter(store_id).get_events(aggregate_id, event_store_id=store_id, **options))
        assert read == self.model.read(store_id, aggregate_id, **options)

    @rule(
        store_id=store_ids,
        limit=st.none() | st.integers(1, 3),
        reverse=st.booleans(),
        after=st.sampled_from(LISTING_BOUNDS),
        before=st.sampled_from(LISTING_BOUNDS),
    )
    def list_every_page(
        self, store_id: str, limit: int | None, reverse: bool, after: str | None, before: str | None
    ) -> None:
        """Following the page tokens alone, to the last page, lists every aggregate once, in
        order; every page but the last is full, and only the last has no token."""
        expected = self.model.listing(store_id, reverse=reverse, after=after, before=before)
        pages = self.run(
            self.every_page(
                store_id,
                limit=limit,
                reverse=reverse,
                initial_event_after=after,
                initial_event_before=before,
                most_pages=len(expected) + 1,
            )
        )
        assert [entry for page in pages for entry in page.aggregate_ids] == expected
        if limit is not None:
            assert all(len(page.aggregate_ids) == limit for page in pages[:-1])
        assert all(page.next_page_token is not None for page in pages[:-1])

    async def every_page(self, store_id: str, *, most_pages: int, **options: Any) -> list[AggregateIdsPage]:
        """The pages of one listing: the first asked with ``options``, the next ones with the
        token alone, until a page has no token (failing after ``most_pages``)."""
        adapter = self.adapter(store_id)
        pages = [await adapter.list_aggregate_ids(event_store_id=store_id, **options)]
        while (token := pages[-1].next_page_token) is not None:
            assert len(pages) < most_pages, f"more than {most_pages} pages: the pages never end"
            pages.append(await adapter.list_aggregate_ids(event_store_id=store_id, page_token=token))
        return pages

    @rule(after_position=st.integers(0, 30), limit=st.none() | st.integers(0, 5))
    def read_the_log_after_a_position(self, after_position: int, limit: int | None) -> None:
        for log, log_store_ids in self.storage.logs:
            expected = list(enumerate(self.model.log_of(log_store_ids), start=1))[after_position:]
            if limit is not None:
                expected = expected[:limit]
            read = self.run(log.read_log(after_position=after_position, limit=limit))
            assert [(entry.position, (entry.event_store_id, entry.event)) for entry in read] == expected

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def every_log_holds_each_stored_event_once_in_push_order(self) -> None:
        for log, log_store_ids in self.storage.logs:
            entries = self.run(log.read_log())
            assert [entry.position for entry in entries] == list(range(1, len(entries) + 1))
            assert [(entry.event_store_id, entry.event) for entry in entries] == self.model.log_of(
                log_store_ids
            )
            assert self.run(log.last_position()) == len(entries)

    @invariant()
    def every_aggregate_reads_back_as_modelled(self) -> None:
        """Every aggregate the model holds, and those of the fixed list that it may not."""
        known = dict.fromkeys([*AGGREGATE_IDS, *(aggregate_id for _, aggregate_id in self.model.aggregates)])
        for store_id in EVENT_STORES:
            for aggregate_id in known:
                read = self.run(self.adapter(store_id).get_events(aggregate_id, event_store_id=store_id))
                assert read == self.model.events_of(store_id, aggregate_id), (store_id, aggregate_id)

    @invariant()
    def every_store_lists_its_aggregates_in_order(self) -> None:
        for store_id in EVENT_STORES:
            page = self.run(self.adapter(store_id).list_aggregate_ids(event_store_id=store_id))
            assert page.next_page_token is None
            assert page.aggregate_ids == self.model.listing(store_id, reverse=False, after=None, before=None)


# -- one test per adapter ----------------------------------------------------------------------


def fewer_examples(share: int) -> settings:
    """The current profile with ``1/share`` of its examples (at least one)."""
    current = settings.default
    return settings(current, max_examples=max(1, current.max_examples // share))


def test_in_memory_adapters_behave_as_the_model() -> None:
    run_state_machine_as_test(lambda: AdapterMachine(open_in_memory))


def test_sqlite_file_adapters_behave_as_the_model() -> None:
    run_state_machine_as_test(lambda: AdapterMachine(open_sqlite_file))


def test_sqlite_memory_adapter_behaves_as_the_model() -> None:
    run_state_machine_as_test(lambda: AdapterMachine(open_sqlite_memory))


def test_postgres_adapters_behave_as_the_model(postgres_server_url: str) -> None:
    """Fewer examples: every call is a round trip to the server, every example a new schema."""
    run_state_machine_as_test(
        lambda: AdapterMachine(postgres_opener(postgres_server_url)), settings=fewer_examples(share=2)
    )
