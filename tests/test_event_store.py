"""EventStore: Castore's event store behaviour, and docs/api.md §1-§5.

Most tests plug in :class:`RecordingAdapter`, a fake that writes down every call the store
makes and then lets a real in-memory adapter answer. A test can then check both sides: what
the store asked its storage for, and what it did with the answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

import castore_edu.core.events as events_module
from castore_edu import (
    AggregateIdEntry,
    AggregateIdsPage,
    AggregateNotFoundError,
    AggregateResult,
    EventAlreadyExistsError,
    EventDetail,
    EventStore,
    EventStoreContext,
    EventType,
    GroupedEvent,
    InMemoryEventStorageAdapter,
    InvalidEventError,
    PushEventResult,
    SQLiteEventStorageAdapter,
    UndefinedEventStorageAdapterError,
)
from castore_edu.storage.protocol import EventStorageAdapter, with_timestamp
from tests.pokemon import (
    CHARIZARD_LEVELED_UP,
    PIKACHU_APPEARED,
    PIKACHU_CAUGHT,
    PIKACHU_EVENTS,
    PIKACHU_ID,
    PIKACHU_LEVELED_UP,
    POKEMON_EVENT_TYPES,
    PokemonAggregate,
    PushRecorder,
    pikachu_after,
    pokemons_event_store,
    pokemons_reducer,
)

pytestmark = pytest.mark.anyio

STAMP = "2030-01-01T00:00:00.000Z"


@dataclass
class Call:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any = field(default=None, compare=False)


class RecordingAdapter(InMemoryEventStorageAdapter):
    """A fake storage adapter: records each call, then delegates to the in-memory adapter.

    Calls are recorded with *all* keyword arguments of the adapter protocol, defaults
    included, so a test does not depend on which ones the store chose to spell out. Being a
    subclass keeps it a valid member of in-memory event groups. Seeds (``initial_events``) are
    not calls.
    """

    def __init__(self, initial_events: Sequence[EventDetail] = (), **options: Any) -> None:
        super().__init__(initial_events, **options)
        self.calls: list[Call] = []

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def _record(self, method: str, *args: Any, **kwargs: Any) -> Call:
        call = Call(method, args, kwargs)
        self.calls.append(call)
        return call

    async def get_events(
        self,
        aggregate_id: str,
        *,
        event_store_id: str,
        min_version: int | None = None,
        max_version: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[EventDetail]:
        call = self._record(
            "get_events",
            aggregate_id,
            event_store_id=event_store_id,
            min_version=min_version,
            max_version=max_version,
            limit=limit,
            reverse=reverse,
        )
        call.result = await super().get_events(aggregate_id, **call.kwargs)
        return call.result

    async def push_event(
        self, event: EventDetail, *, event_store_id: str, force: bool = False
    ) -> EventDetail:
        call = self._record("push_event", event, event_store_id=event_store_id, force=force)
        call.result = await super().push_event(event, **call.kwargs)
        return call.result

    def group_event(self, event: EventDetail) -> GroupedEvent:
        call = self._record("group_event", event)
        call.result = super().group_event(event)
        return call.result

    async def push_event_group(
        self, grouped_events: Sequence[GroupedEvent], *, force: bool = False
    ) -> list[EventDetail]:
        call = self._record("push_event_group", list(grouped_events), force=force)
        call.result = await super().push_event_group(grouped_events, force=force)
        return call.result

    async def list_aggregate_ids(
        self,
        *,
        event_store_id: str,
        limit: int | None = None,
        page_token: str | None = None,
        initial_event_after: str | None = None,
        initial_event_before: str | None = None,
        reverse: bool | None = None,
    ) -> AggregateIdsPage:
        call = self._record(
            "list_aggregate_ids",
            event_store_id=event_store_id,
            limit=limit,
            page_token=page_token,
            initial_event_after=initial_event_after,
            initial_event_before=initial_event_before,
            reverse=reverse,
        )
        call.result = await super().list_aggregate_ids(**call.kwargs)
        return call.result


def recorded_store(
    initial_events: Sequence[EventDetail] = (), **options: Any
) -> tuple[EventStore, RecordingAdapter]:
    adapter = RecordingAdapter(initial_events)
    return pokemons_event_store(adapter, **options), adapter


async def stored_events(adapter: InMemoryEventStorageAdapter) -> list[EventDetail]:
    return [logged.event for logged in await adapter.read_log()]


def grouped(
    event: EventDetail,
    adapter: InMemoryEventStorageAdapter,
    store: EventStore | None = None,
    prev_aggregate: Any = None,
) -> GroupedEvent:
    """A grouped event built by hand, without going through ``store.group_event``."""
    return GroupedEvent(event, adapter, EventStoreContext("POKEMONS"), prev_aggregate, store)


def get_events_call(**options: Any) -> Call:
    defaults = dict(event_store_id="POKEMONS", min_version=None, max_version=None, limit=None, reverse=False)
    return Call("get_events", (PIKACHU_ID,), defaults | options)


def recording_store(**options: Any) -> tuple[EventStore, list[EventDetail]]:
    """A POKEMONS store whose reducer also records every event it is given."""
    seen: list[EventDetail] = []

    def reducer(aggregate: Any, event: EventDetail) -> Any:
        seen.append(event)
        return pokemons_reducer(aggregate, event)

    return EventStore(
        event_store_id="POKEMONS", event_types=POKEMON_EVENT_TYPES, reducer=reducer, **options
    ), seen


PIKACHU = pikachu_after(PIKACHU_EVENTS)


# -- event types ----------------------------------------------------------------------------


def test_event_type_public_attributes_are_its_name_and_its_schema() -> None:
    event_type = EventType("some type")
    assert event_type.type == "some type"
    assert (event_type.schema_version, dict(event_type.upcasters)) == (1, {})
    assert {name for name in dir(event_type) if not name.startswith("_")} == {
        "type",
        "schema_version",
        "upcasters",
    }


@pytest.mark.parametrize("reserved", ["__REPLAYED__", "__AGGREGATE_EXISTS__"])
def test_reserved_event_types_are_refused(reserved: str) -> None:
    with pytest.raises(ValueError, match=f"{reserved} is a reserved event type"):
        EventType(reserved)


# -- the store's shape ----------------------------------------------------------------------


def test_store_attributes() -> None:
    store = pokemons_event_store()
    properties = {name for name, value in vars(EventStore).items() if isinstance(value, property)}
    public_state = {name for name in vars(store) if not name.startswith("_")} | properties
    assert public_state == {
        "event_store_id",
        "event_types",
        "reducer",
        "simulate_side_effect",
        "on_event_pushed",
        "event_storage_adapter",
        "snapshots",
    }
    for method in (
        "get_event_storage_adapter",
        "get_events",
        "push_event",
        "group_event",
        "list_aggregate_ids",
        "build_aggregate",
        "get_aggregate",
        "get_existing_aggregate",
        "simulate_aggregate",
        "push_event_group",
    ):
        assert callable(getattr(store, method)), method
    assert store.event_store_id == "POKEMONS"
    assert store.event_types == list(POKEMON_EVENT_TYPES)
    assert store.reducer is pokemons_reducer
    assert store.on_event_pushed is None and store.event_storage_adapter is None


async def test_on_event_pushed_and_adapter_can_be_set_after_construction() -> None:
    store = pokemons_event_store()
    store.on_event_pushed = recorder = PushRecorder()
    store.event_storage_adapter = InMemoryEventStorageAdapter()
    result = await store.push_event(PIKACHU_APPEARED)
    assert recorder.results == [result]


# -- reading --------------------------------------------------------------------------------


async def test_get_events_delegates_to_the_adapter_and_returns_its_answer() -> None:
    store, adapter = recorded_store(PIKACHU_EVENTS)
    events = await store.get_events(PIKACHU_ID)
    assert adapter.calls == [get_events_call()]
    assert events is adapter.calls[0].result
    assert events == list(PIKACHU_EVENTS)


async def test_get_events_forwards_every_option() -> None:
    store, adapter = recorded_store(PIKACHU_EVENTS)
    events = await store.get_events(PIKACHU_ID, min_version=2, max_version=3, limit=1, reverse=True)
    assert adapter.calls == [get_events_call(min_version=2, max_version=3, limit=1, reverse=True)]
    # Newest first, then the limit: the last event.
    assert events == [PIKACHU_LEVELED_UP]


@pytest.mark.parametrize(
    "read",
    [
        lambda store, limit: store.get_events(PIKACHU_ID, limit=limit),
        lambda store, limit: store.list_aggregate_ids(limit=limit),
    ],
    ids=["get_events", "list_aggregate_ids"],
)
async def test_limit_zero_is_empty_and_negative_limit_is_refused(
    read: Callable[[EventStore, int], Any],
) -> None:
    store = pokemons_event_store(InMemoryEventStorageAdapter(PIKACHU_EVENTS))
    assert await read(store, 0) in ([], AggregateIdsPage([]))
    with pytest.raises(ValueError):
        await read(store, -1)


async def test_get_aggregate_folds_the_events() -> None:
    store, adapter = recorded_store(PIKACHU_EVENTS)
    result = await store.get_aggregate(PIKACHU_ID)
    assert adapter.calls == [get_events_call()]
    assert result == AggregateResult(
        aggregate=PIKACHU, events=list(PIKACHU_EVENTS), last_event=PIKACHU_LEVELED_UP
    )
    assert PokemonAggregate(PIKACHU_ID, 3, "Pikachu", 43, "caught") == PIKACHU


async def test_get_aggregate_forwards_only_max_version() -> None:
    store, adapter = recorded_store(PIKACHU_EVENTS)
    result = await store.get_aggregate(PIKACHU_ID, max_version=2)
    assert adapter.calls == [get_events_call(max_version=2)]
    assert result.aggregate == PokemonAggregate(PIKACHU_ID, 2, "Pikachu", 42, "caught")
    assert result.last_event == PIKACHU_CAUGHT


async def test_get_aggregate_of_unknown_aggregate_is_empty() -> None:
    store, _ = recorded_store()
    assert await store.get_aggregate(PIKACHU_ID) == AggregateResult(
        aggregate=None, events=[], last_event=None
    )


async def test_get_existing_aggregate_equals_get_aggregate() -> None:
    store, adapter = recorded_store(PIKACHU_EVENTS)
    assert await store.get_existing_aggregate(PIKACHU_ID) == await store.get_aggregate(PIKACHU_ID)
    existing = await store.get_existing_aggregate(PIKACHU_ID, max_version=1)
    assert adapter.calls[-1] == get_events_call(max_version=1)
    assert existing.aggregate == pikachu_after([PIKACHU_APPEARED])


async def test_get_existing_aggregate_of_unknown_aggregate_raises() -> None:
    store, _ = recorded_store()
    with pytest.raises(AggregateNotFoundError) as raised:
        await store.get_existing_aggregate(PIKACHU_ID)
    assert str(raised.value) == "Unable to find aggregate pikachuId in event store POKEMONS."
    assert (raised.value.aggregate_id, raised.value.event_store_id) == (PIKACHU_ID, "POKEMONS")


# -- push_event -----------------------------------------------------------------------------


async def test_push_event_without_prev_aggregate_returns_no_next_aggregate() -> None:
    store, adapter = recorded_store()
    result = await store.push_event(PIKACHU_LEVELED_UP)
    assert adapter.calls == [
        Call("push_event", (PIKACHU_LEVELED_UP,), {"event_store_id": "POKEMONS", "force": False})
    ]
    assert result == PushEventResult(event=PIKACHU_LEVELED_UP)
    assert result.next_aggregate is None


async def test_push_event_of_a_first_event_returns_the_new_aggregate() -> None:
    store, _ = recorded_store()
    result = await store.push_event(PIKACHU_APPEARED)
    assert result == PushEventResult(event=PIKACHU_APPEARED, next_aggregate=pikachu_after([PIKACHU_APPEARED]))


async def test_push_event_with_prev_aggregate_returns_the_next_aggregate() -> None:
    store, _ = recorded_store([PIKACHU_APPEARED, PIKACHU_CAUGHT])
    previous = pikachu_after([PIKACHU_APPEARED, PIKACHU_CAUGHT])
    result = await store.push_event(PIKACHU_LEVELED_UP, prev_aggregate=previous)
    assert result.next_aggregate == PIKACHU


async def test_push_event_forwards_force_but_never_prev_aggregate() -> None:
    store, adapter = recorded_store([PIKACHU_APPEARED])
    renamed = EventDetail(
        aggregate_id=PIKACHU_ID,
        version=1,
        type="POKEMON_APPEARED",
        timestamp="2022",
        payload={"name": "Raichu", "level": 50},
    )
    await store.push_event(renamed, prev_aggregate=PIKACHU, force=True)
    assert adapter.calls == [Call("push_event", (renamed,), {"event_store_id": "POKEMONS", "force": True})]
    assert await stored_events(adapter) == [renamed]


async def test_push_event_conflict_raises_event_already_exists() -> None:
    store, adapter = recorded_store([PIKACHU_APPEARED])
    with pytest.raises(EventAlreadyExistsError) as raised:
        await store.push_event(PIKACHU_APPEARED)
    assert (raised.value.event_store_id, raised.value.aggregate_id, raised.value.version) == (
        "POKEMONS",
        PIKACHU_ID,
        1,
    )
    assert await stored_events(adapter) == [PIKACHU_APPEARED]


async def test_push_event_uses_the_event_the_adapter_stored() -> None:
    adapter = RecordingAdapter(clock=lambda: STAMP)
    store, seen = recording_store(event_storage_adapter=adapter)
    unstamped = EventDetail(
        aggregate_id=PIKACHU_ID, version=1, type="POKEMON_APPEARED", payload={"name": "Pikachu", "level": 42}
    )
    result = await store.push_event(unstamped)
    assert result.event.timestamp == STAMP
    assert result.event is adapter.calls[0].result
    assert seen == [result.event]


async def test_prev_aggregate_is_trusted_not_checked() -> None:
    # A stale (here: too new) prev_aggregate is folded as given: the caller's responsibility.
    store, _ = recorded_store([PIKACHU_APPEARED])
    result = await store.push_event(PIKACHU_CAUGHT, prev_aggregate=PIKACHU)
    assert result.next_aggregate == PokemonAggregate(PIKACHU_ID, 2, "Pikachu", 43, "caught")


def count_events(count: int | None, event: EventDetail) -> int:
    """A reducer whose aggregates are falsy-friendly ints: 0 after the first event."""
    return 0 if count is None else count + 1


async def test_next_aggregate_rule_tests_is_not_none_not_truthiness() -> None:
    store = EventStore(
        event_store_id="Counters",
        event_types=[],
        reducer=count_events,
        event_storage_adapter=InMemoryEventStorageAdapter(),
    )
    first = EventDetail(aggregate_id="c", version=1, type="INCREMENTED")
    second = EventDetail(aggregate_id="c", version=2, type="INCREMENTED")
    third = EventDetail(aggregate_id="c", version=3, type="INCREMENTED")

    assert (await store.push_event(first)).next_aggregate == 0  # falsy, still returned
    assert (await store.push_event(second, prev_aggregate=0)).next_aggregate == 1  # falsy prev used
    grouped_third = store.group_event(third, prev_aggregate=0)
    assert grouped_third.prev_aggregate == 0
    [result] = await EventStore.push_event_group(grouped_third)
    assert result.next_aggregate == 1


async def test_an_undeclared_event_type_can_be_pushed() -> None:
    store, adapter = recorded_store([PIKACHU_APPEARED])
    evolved = EventDetail(aggregate_id=PIKACHU_ID, version=2, type="POKEMON_EVOLVED", timestamp="2025")
    await store.push_event(evolved)
    assert await stored_events(adapter) == [PIKACHU_APPEARED, evolved]


async def test_on_event_pushed_is_awaited_with_the_result_before_push_event_returns() -> None:
    recorder = PushRecorder(delay=0.01)
    store, _ = recorded_store(on_event_pushed=recorder)
    result = await store.push_event(PIKACHU_APPEARED)
    assert len(recorder.results) == 1 and recorder.results[0] is result


async def test_on_event_pushed_failure_propagates_after_the_event_is_stored() -> None:
    failure = RuntimeError("broker down")

    async def on_event_pushed(result: PushEventResult) -> None:
        raise failure

    store, adapter = recorded_store(on_event_pushed=on_event_pushed)
    with pytest.raises(RuntimeError) as raised:
        await store.push_event(PIKACHU_APPEARED)
    assert raised.value is failure
    assert await stored_events(adapter) == [PIKACHU_APPEARED]


# -- group_event and push_event_group -------------------------------------------------------


async def test_group_event_asks_the_adapter_and_fills_in_the_store() -> None:
    store, adapter = recorded_store()
    grouped_event = store.group_event(PIKACHU_LEVELED_UP)
    assert adapter.calls == [Call("group_event", (PIKACHU_LEVELED_UP,), {})]
    assert grouped_event.event == PIKACHU_LEVELED_UP
    assert grouped_event.event_storage_adapter is adapter
    assert grouped_event.event_store is store
    assert grouped_event.context == EventStoreContext(event_store_id="POKEMONS")
    assert grouped_event.prev_aggregate is None
    assert await stored_events(adapter) == []


def test_group_event_keeps_prev_aggregate() -> None:
    store, _ = recorded_store()
    assert store.group_event(PIKACHU_LEVELED_UP, prev_aggregate=PIKACHU).prev_aggregate is PIKACHU


async def test_push_event_group_hands_the_group_to_the_adapter() -> None:
    adapter = RecordingAdapter()
    first, second = grouped(PIKACHU_APPEARED, adapter), grouped(CHARIZARD_LEVELED_UP, adapter)
    results = await EventStore.push_event_group(first, second)
    assert adapter.calls == [Call("push_event_group", ([first, second],), {"force": False})]
    # No event store on these grouped events: no next_aggregate, even for a version 1.
    assert results == [PushEventResult(event=PIKACHU_APPEARED), PushEventResult(event=CHARIZARD_LEVELED_UP)]
    assert await stored_events(adapter) == [PIKACHU_APPEARED, CHARIZARD_LEVELED_UP]


async def test_push_event_group_forwards_force() -> None:
    adapter = RecordingAdapter([PIKACHU_APPEARED])
    first, second = grouped(PIKACHU_APPEARED, adapter), grouped(CHARIZARD_LEVELED_UP, adapter)
    await EventStore.push_event_group(first, second, force=True)
    assert adapter.calls == [Call("push_event_group", ([first, second],), {"force": True})]


async def test_push_event_group_computes_next_aggregate_of_a_first_event() -> None:
    store, adapter = recorded_store()
    results = await EventStore.push_event_group(
        store.group_event(PIKACHU_APPEARED),
        grouped(CHARIZARD_LEVELED_UP, adapter),
    )
    assert results[0] == PushEventResult(PIKACHU_APPEARED, next_aggregate=pikachu_after([PIKACHU_APPEARED]))


async def test_push_event_group_computes_next_aggregate_from_prev_aggregate() -> None:
    store, adapter = recorded_store([PIKACHU_APPEARED])
    results = await EventStore.push_event_group(
        store.group_event(PIKACHU_CAUGHT, prev_aggregate=pikachu_after([PIKACHU_APPEARED])),
        grouped(CHARIZARD_LEVELED_UP, adapter),
    )
    assert results == [
        PushEventResult(PIKACHU_CAUGHT, next_aggregate=pikachu_after([PIKACHU_APPEARED, PIKACHU_CAUGHT])),
        PushEventResult(CHARIZARD_LEVELED_UP),
    ]


async def test_push_event_group_needs_at_least_one_grouped_event() -> None:
    with pytest.raises(ValueError):
        await EventStore.push_event_group()


def two_store_group(
    on_pokemon_pushed: Any, on_trainer_pushed: Any
) -> tuple[list[GroupedEvent], RecordingAdapter, RecordingAdapter]:
    """Pikachu appears (POKEMONS) and Ash catches it (TRAINERS), as one group."""
    pokemons, pokemon_adapter = recorded_store(on_event_pushed=on_pokemon_pushed)
    trainer_adapter = RecordingAdapter()
    trainers = EventStore(
        event_store_id="TRAINERS",
        event_types=[],
        reducer=lambda trainer, event: event.version,
        on_event_pushed=on_trainer_pushed,
        event_storage_adapter=trainer_adapter,
    )
    ash_caught = EventDetail(aggregate_id="ash", version=1, type="POKEMON_CAUGHT", timestamp="2022")
    group = [pokemons.group_event(PIKACHU_APPEARED), trainers.group_event(ash_caught)]
    return group, pokemon_adapter, trainer_adapter


async def test_on_event_pushed_of_every_store_runs_concurrently_after_the_group() -> None:
    finished: list[tuple[str, PushEventResult]] = []

    arrived = {"POKEMONS": asyncio.Event(), "TRAINERS": asyncio.Event()}

    def callback(mine: str, other: str) -> Callable[[PushEventResult], Any]:
        async def on_event_pushed(result: PushEventResult) -> None:
            # Each callback waits for the other one to start: run one after the other,
            # they would wait forever (here: time out).
            arrived[mine].set()
            await asyncio.wait_for(arrived[other].wait(), timeout=2)
            await asyncio.sleep(0.01)
            finished.append((mine, result))

        return on_event_pushed

    group, pokemon_adapter, trainer_adapter = two_store_group(
        callback("POKEMONS", "TRAINERS"), callback("TRAINERS", "POKEMONS")
    )
    results = await EventStore.push_event_group(*group)
    # The head's adapter did the work for the whole group.
    assert len(pokemon_adapter.calls_to("push_event_group")) == 1
    assert trainer_adapter.calls_to("push_event_group") == []
    assert len(await stored_events(trainer_adapter)) == 1
    assert len(finished) == 2  # both callbacks finished before the call returned
    results = results
    assert dict(finished) == {"POKEMONS": results[0], "TRAINERS": results[1]}
    assert results[0].next_aggregate == pikachu_after([PIKACHU_APPEARED]) and results[1].next_aggregate == 1


async def test_first_failing_on_event_pushed_raises_while_the_others_complete() -> None:
    failure = RuntimeError("pokemon callback failed")
    trainer_outcome: list[str] = []

    async def failing(result: PushEventResult) -> None:
        raise failure

    async def slow(result: PushEventResult) -> None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            trainer_outcome.append("cancelled")
            raise
        trainer_outcome.append("completed")

    group, _, trainer_adapter = two_store_group(failing, slow)

    with pytest.raises(RuntimeError) as raised:
        await EventStore.push_event_group(*group)
    assert raised.value is failure
    # asyncio.run cancels whatever is still running when body() ends: the slow callback must
    # have been awaited, not left behind.
    assert trainer_outcome == ["completed"]
    assert len(await stored_events(trainer_adapter)) == 1


async def test_the_first_callback_to_fail_in_time_is_the_one_raised() -> None:
    late, early = RuntimeError("late"), RuntimeError("early")

    async def fails_late(result: PushEventResult) -> None:
        await asyncio.sleep(0.05)
        raise late

    async def fails_early(result: PushEventResult) -> None:
        raise early

    group, _, _ = two_store_group(fails_late, fails_early)
    with pytest.raises(RuntimeError) as raised:
        await EventStore.push_event_group(*group)
    assert raised.value is early


async def test_failed_group_calls_no_on_event_pushed_and_stores_nothing() -> None:
    recorder = PushRecorder()
    store, adapter = recorded_store([PIKACHU_CAUGHT], on_event_pushed=recorder)
    with pytest.raises(EventAlreadyExistsError):
        await EventStore.push_event_group(
            store.group_event(PIKACHU_APPEARED), store.group_event(PIKACHU_CAUGHT)
        )
    assert recorder.results == []
    assert await stored_events(adapter) == [PIKACHU_CAUGHT]  # the appeared event was not kept


def encoded_values(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every value ``validate_event`` JSON-encodes from now on (payloads and metadata)."""
    encoded: list[Any] = []
    encode_json = events_module.encode_json

    def counting(value: Any, field_name: str) -> str | None:
        encoded.append(value)
        return encode_json(value, field_name)

    monkeypatch.setattr(events_module, "encode_json", counting)
    return encoded


@pytest.fixture(params=["in memory", "SQLite"])
def storage(request: pytest.FixtureRequest) -> Iterator[EventStorageAdapter]:
    if request.param == "in memory":
        yield InMemoryEventStorageAdapter()
    else:
        with SQLiteEventStorageAdapter() as adapter:
            yield adapter


async def test_each_event_is_validated_and_encoded_once_per_push(
    storage: EventStorageAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pokemons_event_store(storage)
    encoded = encoded_values(monkeypatch)
    levels = [{"level": level} for level in range(3)]
    group = [
        store.group_event(replace(PIKACHU_LEVELED_UP, version=version, payload=level))
        for version, level in enumerate(levels, start=2)  # not 1: no aggregate is folded
    ]
    assert [id(value) for value in encoded if value is not None] == [id(level) for level in levels]
    await EventStore.push_event_group(*group)  # group_event's check stands: nothing encoded again
    single = {"level": 99}
    await store.push_event(replace(PIKACHU_LEVELED_UP, version=5, payload=single))
    assert [id(value) for value in encoded if value is not None] == [id(level) for level in [*levels, single]]


def test_the_stamped_copy_keeps_every_field_of_the_event() -> None:
    """with_timestamp spells out EventDetail's fields: it must be replace(event, timestamp=...),
    also for a field added later."""
    # A value of its own in every field, whatever fields EventDetail has.
    event = EventDetail(**{each.name: [each.name] for each in dataclasses.fields(EventDetail)})
    stamped = with_timestamp(event, "2024-01-01T00:00:00.000Z")
    assert stamped == replace(event, timestamp="2024-01-01T00:00:00.000Z")
    assert stamped.payload is event.payload and stamped.metadata is event.metadata
    assert event.timestamp == ["timestamp"]  # the original is left alone


@pytest.mark.parametrize("make_adapter", [InMemoryEventStorageAdapter, SQLiteEventStorageAdapter])
async def test_only_events_without_a_timestamp_ask_the_clock(make_adapter: Any) -> None:
    calls: list[str] = []

    def clock() -> str:
        calls.append(STAMP)
        return STAMP

    adapter = make_adapter(clock=clock)
    await adapter.push_event(PIKACHU_APPEARED, event_store_id="POKEMONS")  # it has a timestamp
    assert calls == []
    stamped = await adapter.push_event(replace(PIKACHU_CAUGHT, timestamp=None), event_store_id="POKEMONS")
    assert (stamped.timestamp, calls) == (STAMP, [STAMP])


async def test_an_event_swapped_in_after_group_event_is_checked_and_nothing_is_stored(
    storage: EventStorageAdapter,
) -> None:
    store = pokemons_event_store(storage)
    first, second = store.group_event(PIKACHU_APPEARED), store.group_event(PIKACHU_LEVELED_UP)
    second.event = replace(PIKACHU_LEVELED_UP, payload={"level": math.nan})
    with pytest.raises(InvalidEventError) as raised:
        await EventStore.push_event_group(first, second)
    assert raised.value.field == "payload"
    assert await store.get_events(PIKACHU_ID) == []
    assert await store.list_aggregate_ids() == AggregateIdsPage([])


# -- list_aggregate_ids ---------------------------------------------------------------------


def three_pokemons() -> list[EventDetail]:
    return [
        EventDetail(
            aggregate_id=name,
            version=1,
            type="POKEMON_APPEARED",
            timestamp=year,
            payload={"name": name, "level": 1},
        )
        for name, year in (("bulbasaur", "2021"), ("charmander", "2022"), ("squirtle", "2023"))
    ]


async def test_list_aggregate_ids_forwards_options_and_returns_the_answer() -> None:
    store, adapter = recorded_store(three_pokemons())
    token = (await store.list_aggregate_ids(limit=1)).next_page_token
    assert token is not None
    options = dict(
        limit=10,
        page_token=token,
        initial_event_after="2021-01-01T00:00:00.000Z",
        initial_event_before="2022-01-01T00:00:00.000Z",
        reverse=True,
    )
    page = await store.list_aggregate_ids(**options)
    assert adapter.calls[-1] == Call("list_aggregate_ids", (), {"event_store_id": "POKEMONS", **options})
    assert page is adapter.calls[-1].result


async def test_list_aggregate_ids_next_page_needs_only_the_token() -> None:
    store, _ = recorded_store(three_pokemons())
    first = await store.list_aggregate_ids(limit=1, reverse=True)
    assert first.aggregate_ids == [AggregateIdEntry("squirtle", "2023")]
    second = await store.list_aggregate_ids(page_token=first.next_page_token)
    # The token carries limit=1 and reverse=True: the store must not override them.
    assert second.aggregate_ids == [AggregateIdEntry("charmander", "2022")]
    assert second.next_page_token is not None


# -- no storage adapter ---------------------------------------------------------------------


async def settle(outcome: Any) -> Any:
    """The outcome of a call of these tables: awaited when the call made a coroutine."""
    return await outcome if inspect.isawaitable(outcome) else outcome


# The synchronous calls raise at once, the coroutines when awaited: ``settle`` does both.
STORAGE_CALLS: dict[str, Callable[[EventStore], Any]] = {
    "get_event_storage_adapter": lambda store: store.get_event_storage_adapter(),
    "group_event": lambda store: store.group_event(PIKACHU_APPEARED),  # synchronous
    "push_event": lambda store: store.push_event(PIKACHU_APPEARED),
    "get_events": lambda store: store.get_events(PIKACHU_ID),
    "get_aggregate": lambda store: store.get_aggregate(PIKACHU_ID),
    "get_existing_aggregate": lambda store: store.get_existing_aggregate(PIKACHU_ID),
    "list_aggregate_ids": lambda store: store.list_aggregate_ids(),
}


@pytest.mark.parametrize("call", STORAGE_CALLS.values(), ids=STORAGE_CALLS.keys())
async def test_storage_calls_without_adapter_raise(call: Callable[[EventStore], Any]) -> None:
    store = pokemons_event_store()
    with pytest.raises(UndefinedEventStorageAdapterError) as raised:
        await settle(call(store))
    assert raised.value.event_store_id == "POKEMONS"
    assert str(raised.value) == "EventStorageAdapter not found for event store POKEMONS"


async def test_adapter_is_looked_up_at_call_time() -> None:
    store = pokemons_event_store()
    first = InMemoryEventStorageAdapter()
    store.event_storage_adapter = first
    for call in STORAGE_CALLS.values():
        await settle(call(store))  # every method works once an adapter is set
    assert await stored_events(first) == [PIKACHU_APPEARED]

    second = InMemoryEventStorageAdapter([PIKACHU_APPEARED, PIKACHU_CAUGHT])
    store.event_storage_adapter = second
    assert store.get_event_storage_adapter() is second
    assert (await store.get_aggregate(PIKACHU_ID)).aggregate == pikachu_after(
        [PIKACHU_APPEARED, PIKACHU_CAUGHT]
    )


# -- invalid events -------------------------------------------------------------------------


def bad(**fields: Any) -> EventDetail:
    return EventDetail(**({"aggregate_id": PIKACHU_ID, "version": 1, "type": "POKEMON_APPEARED"} | fields))


INVALID_EVENTS = [
    ("aggregate_id", bad(aggregate_id="")),
    ("aggregate_id", bad(aggregate_id=42)),
    ("aggregate_id", bad(aggregate_id=None)),
    ("version", bad(version=0)),
    ("version", bad(version=-1)),
    ("version", bad(version=True)),
    ("version", bad(version=1.0)),
    ("version", bad(version="1")),
    ("type", bad(type="")),
    ("type", bad(type=None)),
    ("timestamp", bad(timestamp=2022)),
    ("timestamp", bad(timestamp=datetime.datetime(2022, 1, 1))),
    ("payload", bad(payload={"level": math.nan})),
    ("payload", bad(payload={"level": math.inf})),
    ("payload", bad(payload={"moves": {"thunder"}})),
    ("payload", bad(payload=object())),
    ("metadata", bad(metadata={"at": datetime.date(2022, 1, 1)})),
    ("metadata", bad(metadata=b"bytes")),
]

PUSH_PATHS: dict[str, Callable[[EventStore, EventDetail], Any]] = {
    "push_event": lambda store, event: store.push_event(event),
    "group_event": lambda store, event: store.group_event(event),
    # A valid event first, so "nothing stored" also means "not half a group".
    "push_event_group": lambda store, event: EventStore.push_event_group(
        store.group_event(CHARIZARD_LEVELED_UP),
        grouped(event, store.get_event_storage_adapter(), store),
    ),
}


@pytest.mark.parametrize("path", PUSH_PATHS.values(), ids=PUSH_PATHS.keys())
@pytest.mark.parametrize(("field_name", "event"), INVALID_EVENTS)
async def test_invalid_events_are_refused_and_nothing_is_stored(
    path: Callable[[EventStore, EventDetail], Any], field_name: str, event: EventDetail
) -> None:
    store, adapter = recorded_store()
    with pytest.raises(InvalidEventError) as raised:
        await settle(path(store, event))
    assert isinstance(raised.value, ValueError)
    assert raised.value.field == field_name
    assert await stored_events(adapter) == []
    assert await store.list_aggregate_ids() == AggregateIdsPage([])


# -- build_aggregate and simulate_aggregate -------------------------------------------------


def test_build_aggregate_is_a_left_fold() -> None:
    store = pokemons_event_store()
    assert store.build_aggregate([]) is None
    assert store.build_aggregate([], PIKACHU) is PIKACHU
    assert store.build_aggregate(PIKACHU_EVENTS) == PIKACHU
    assert store.build_aggregate([PIKACHU_LEVELED_UP], pikachu_after([PIKACHU_APPEARED])).level == 43


# v2 happens after v3 in time.
OUT_OF_ORDER = [
    PIKACHU_APPEARED,
    EventDetail(aggregate_id=PIKACHU_ID, version=2, type="POKEMON_CAUGHT", timestamp="2024"),
    EventDetail(aggregate_id=PIKACHU_ID, version=3, type="POKEMON_LEVELED_UP", timestamp="2023"),
]


def test_simulate_aggregate_replays_in_timestamp_order_with_new_versions() -> None:
    store, seen = recording_store()
    aggregate = store.simulate_aggregate(OUT_OF_ORDER)
    assert [(event.type, event.version, event.timestamp) for event in seen] == [
        ("POKEMON_APPEARED", 1, "2022"),
        ("POKEMON_LEVELED_UP", 2, "2023"),
        ("POKEMON_CAUGHT", 3, "2024"),
    ]
    assert aggregate == PokemonAggregate(PIKACHU_ID, 3, "Pikachu", 43, "caught")
    assert OUT_OF_ORDER[2].version == 3  # renumbered copies, inputs untouched


def test_simulate_aggregate_stops_at_the_simulation_date() -> None:
    store, seen = recording_store()
    aggregate = store.simulate_aggregate(OUT_OF_ORDER, simulation_date="2023")
    assert [event.timestamp for event in seen] == ["2022", "2023"]
    assert aggregate == PokemonAggregate(PIKACHU_ID, 2, "Pikachu", 43, "wild")
    assert store.simulate_aggregate(OUT_OF_ORDER, simulation_date="2021") is None


def test_simulate_aggregate_keeps_the_later_of_two_events_with_one_version() -> None:
    store, seen = recording_store()
    raichu = EventDetail(
        aggregate_id=PIKACHU_ID,
        version=1,
        type="POKEMON_APPEARED",
        timestamp="2022",
        payload={"name": "Raichu", "level": 50},
    )
    assert store.simulate_aggregate([PIKACHU_APPEARED, raichu]) == PokemonAggregate(
        PIKACHU_ID, 1, "Raichu", 50, "wild"
    )
    assert seen == [raichu]
    assert store.simulate_aggregate([]) is None


def test_simulate_aggregate_applies_a_custom_side_effect_simulator() -> None:
    def auto_level_up(indexed: dict[Any, EventDetail], event: EventDetail) -> dict[Any, EventDetail]:
        # Catching a Pokémon schedules a level-up one year later.
        simulated = {**indexed, event.version: event}
        if event.type == "POKEMON_CAUGHT":
            simulated[event.version + 100] = EventDetail(
                aggregate_id=event.aggregate_id,
                version=0,
                type="POKEMON_LEVELED_UP",
                timestamp=str(int(event.timestamp) + 1),
            )
        return simulated

    store, seen = recording_store(simulate_side_effect=auto_level_up)
    assert store.simulate_side_effect is auto_level_up
    aggregate = store.simulate_aggregate([PIKACHU_APPEARED, PIKACHU_CAUGHT])
    assert [(event.version, event.timestamp) for event in seen] == [(1, "2022"), (2, "2023"), (3, "2024")]
    assert aggregate == PokemonAggregate(PIKACHU_ID, 3, "Pikachu", 43, "caught")
    assert store.simulate_aggregate([PIKACHU_APPEARED, PIKACHU_CAUGHT], simulation_date="2023").level == 42


# -- event loops ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_adapter", [InMemoryEventStorageAdapter, SQLiteEventStorageAdapter], ids=["in_memory", "sqlite"]
)
def test_a_store_made_outside_a_loop_works_in_later_loops(make_adapter: Callable[[], Any]) -> None:
    recorder = PushRecorder()
    store = pokemons_event_store(make_adapter(), on_event_pushed=recorder)
    asyncio.run(store.push_event(PIKACHU_APPEARED))
    asyncio.run(EventStore.push_event_group(store.group_event(PIKACHU_CAUGHT)))
    asyncio.run(store.push_event(PIKACHU_LEVELED_UP))
    assert asyncio.run(store.get_aggregate(PIKACHU_ID)).aggregate == PIKACHU
    assert recorder.versions == [1, 2, 3]


async def test_flags_that_are_not_bools_are_refused_through_the_store(storage: EventStorageAdapter) -> None:
    """The store hands ``force`` and ``reverse`` to its adapter, which refuses a flag that is not a
    bool before doing anything: ``force="no"`` must not overwrite an event."""
    store: Any = pokemons_event_store(storage)  # Any: these calls break the types on purpose
    stored = (await store.push_event(PIKACHU_APPEARED)).event
    overwrite = replace(PIKACHU_APPEARED, payload={"overwritten": True})
    with pytest.raises(TypeError, match="force must be True or False"):
        await store.push_event(overwrite, force="no")
    with pytest.raises(TypeError, match="force must be True or False"):
        await EventStore.push_event_group(store.group_event(overwrite), force="no")
    with pytest.raises(TypeError, match="reverse must be True or False"):
        await store.get_events(PIKACHU_ID, reverse="no")
    with pytest.raises(TypeError, match="reverse must be True or False"):
        await store.list_aggregate_ids(reverse="no")
    assert await store.get_events(PIKACHU_ID) == [stored]
