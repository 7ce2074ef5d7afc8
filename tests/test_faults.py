"""Fault injection: schedules, the faulty channel adapter and the faulty storage adapter."""

from __future__ import annotations

import inspect
import random

import pytest

from castore_edu.connected.connected_event_store import ConnectedEventStore
from castore_edu.core.errors import EventAlreadyExistsError
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail
from castore_edu.messaging.channels import NotificationMessageBus
from castore_edu.messaging.messages import NotificationMessage
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from castore_edu.storage.sqlite import SQLiteEventStorageAdapter
from castore_edu.testing.faults import (
    Fault,
    FaultSchedule,
    FaultyChannelAdapter,
    FaultyStorageAdapter,
    InjectedFault,
    SimulatedCrash,
    unwrap_storage,
)
from tests.fixtures_pokemon import RecordingChannelAdapter, appeared, caught, leveled_up, pokemons_store

pytestmark = pytest.mark.anyio


def message(version: int) -> NotificationMessage:
    event = (appeared, caught, leveled_up)[version - 1]
    return NotificationMessage("POKEMONS", event)


def recorded(adapter: RecordingChannelAdapter) -> list[int]:
    return [message.event.version for message, _replay in adapter.published]


# -- schedules -------------------------------------------------------------------------------


def test_on_calls_fails_exactly_the_named_calls() -> None:
    schedule = FaultSchedule.on_calls(2, 5)
    assert schedule.decisions(6) == [None, Fault.FAIL, None, None, Fault.FAIL, None]
    assert FaultSchedule.on_calls(1, fault=Fault.CRASH)(1) is Fault.CRASH


def test_scripted_schedule_maps_calls_to_faults_and_rejects_nonsense() -> None:
    schedule = FaultSchedule.scripted({1: Fault.DUPLICATE, 3: Fault.REORDER})
    assert schedule.decisions(3) == [Fault.DUPLICATE, None, Fault.REORDER]
    with pytest.raises(ValueError):
        FaultSchedule.scripted({0: Fault.FAIL})
    with pytest.raises(ValueError):
        FaultSchedule.scripted({1: "fail"})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        schedule(0)


def test_seeded_schedule_is_reproducible_and_independent_of_the_order_of_questions() -> None:
    forward = FaultSchedule.seeded(42, fail=0.2, duplicate=0.1)
    backward = FaultSchedule.seeded(42, fail=0.2, duplicate=0.1)
    expected = forward.decisions(200)
    assert [backward(call) for call in range(200, 0, -1)][::-1] == expected
    assert FaultSchedule.seeded(random.Random(42), fail=0.2, duplicate=0.1).decisions(200) == expected
    assert FaultSchedule.seeded(43, fail=0.2, duplicate=0.1).decisions(200) != expected


def test_seeded_schedule_meets_its_rates() -> None:
    decisions = FaultSchedule.seeded(1, fail=0.25, crash=0.05).decisions(20_000)
    assert decisions.count(Fault.FAIL) / 20_000 == pytest.approx(0.25, abs=0.015)
    assert decisions.count(Fault.CRASH) / 20_000 == pytest.approx(0.05, abs=0.006)
    assert set(decisions) == {None, Fault.FAIL, Fault.CRASH}
    assert FaultSchedule.seeded(1).decisions(50) == [None] * 50
    assert FaultSchedule.seeded(1, fail=1.0).decisions(50) == [Fault.FAIL] * 50


@pytest.mark.parametrize(
    "rates", [{"fail": -0.1}, {"fail": 1.5}, {"fail": 0.6, "crash": 0.5}, {"duplicate": True}]
)
def test_seeded_schedule_rejects_impossible_rates(rates: dict) -> None:
    with pytest.raises(ValueError):
        FaultSchedule.seeded(0, **rates)


def test_faults_are_not_caught_by_except_exception() -> None:
    assert issubclass(InjectedFault, Exception)
    assert issubclass(SimulatedCrash, BaseException) and not issubclass(SimulatedCrash, Exception)
    error = InjectedFault("publish", 3, Fault.FAIL)
    assert (error.operation, error.call, error.fault) == ("publish", 3, Fault.FAIL)
    assert str(error) == "injected fault: publish call #3 (fail)"


# -- channel faults --------------------------------------------------------------------------


async def test_fail_and_crash_deliver_nothing() -> None:
    inner = RecordingChannelAdapter()
    faulty = FaultyChannelAdapter(inner, FaultSchedule.scripted({2: Fault.FAIL, 3: Fault.CRASH}))
    await faulty.publish_message(message(1))
    with pytest.raises(InjectedFault) as failed:
        await faulty.publish_message(message(2))
    assert failed.value.call == 2
    with pytest.raises(SimulatedCrash):
        await faulty.publish_message(message(3))
    assert recorded(inner) == [1]
    assert faulty.calls == 3 and faulty.deliveries == 1
    assert [(record.call, record.fault) for record in faulty.faults()] == [
        (2, Fault.FAIL),
        (3, Fault.CRASH),
    ]
    assert [(record.operation, record.subject) for record in faulty.history] == [
        ("publish", message(version)) for version in (1, 2, 3)
    ]


async def test_fail_after_and_crash_after_deliver_then_raise() -> None:
    inner = RecordingChannelAdapter()
    faulty = FaultyChannelAdapter(inner, FaultSchedule.scripted({1: Fault.FAIL_AFTER, 2: Fault.CRASH_AFTER}))
    with pytest.raises(InjectedFault):
        await faulty.publish_message(message(1))
    with pytest.raises(SimulatedCrash):
        await faulty.publish_message(message(2))
    assert recorded(inner) == [1, 2]


async def test_duplicate_delivers_twice_and_reorder_swaps_with_the_next_message() -> None:
    inner = RecordingChannelAdapter()
    faulty = FaultyChannelAdapter(
        inner, FaultSchedule.scripted({1: Fault.DUPLICATE, 2: Fault.REORDER, 4: Fault.REORDER})
    )
    for version in (1, 2, 3):
        await faulty.publish_message(message(version))
    assert recorded(inner) == [1, 1, 3, 2]
    await faulty.publish_message(message(1), replay=True)
    assert recorded(inner) == [1, 1, 3, 2] and len(faulty.held) == 1
    await faulty.release_held()
    assert inner.published[-1] == (message(1), True)  # the replay flag travels with it
    assert faulty.deliveries == 5


async def test_publish_messages_makes_one_call_per_message() -> None:
    inner = RecordingChannelAdapter()
    faulty = FaultyChannelAdapter(inner, FaultSchedule.on_calls(2))
    with pytest.raises(InjectedFault):
        await faulty.publish_messages([message(1), message(2), message(3)])
    assert recorded(inner) == [1] and faulty.calls == 2


async def test_latency_goes_through_the_injected_sleep() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    faulty = FaultyChannelAdapter(RecordingChannelAdapter(), latency_ms=250, sleep=fake_sleep)
    await faulty.publish_message(message(1))
    await faulty.publish_message(message(2))
    assert slept == [0.25, 0.25]
    with pytest.raises(ValueError):
        FaultyChannelAdapter(RecordingChannelAdapter(), latency_ms=-1)


def test_wrap_puts_the_faulty_adapter_on_the_channel_and_forwards_the_rest() -> None:
    store = pokemons_store()
    bus = NotificationMessageBus(message_bus_id="bus", source_event_stores=[store])
    inner = RecordingChannelAdapter()
    bus.message_channel_adapter = inner
    faulty = FaultyChannelAdapter.wrap(bus, FaultSchedule.on_calls(1))
    assert bus.message_channel_adapter is faulty and faulty.inner is inner
    assert faulty.published is inner.published  # attributes of the inner adapter


async def test_publish_fails_after_the_push_and_the_naive_retry_hits_event_already_exists() -> None:
    """The dual write: the event is stored, the caller sees an error, the message is lost."""

    store = pokemons_store()
    bus = NotificationMessageBus(message_bus_id="bus", source_event_stores=[store])
    inner = bus.message_channel_adapter = RecordingChannelAdapter()
    FaultyChannelAdapter.wrap(bus, FaultSchedule.on_calls(1))
    connected = ConnectedEventStore(store, bus)
    with pytest.raises(InjectedFault):
        await connected.push_event(appeared)
    assert await store.get_events("pikachuId") == [appeared]
    with pytest.raises(EventAlreadyExistsError):
        await connected.push_event(appeared)
    assert inner.published == []


# -- storage faults --------------------------------------------------------------------------


async def test_storage_faults_before_and_after_the_write() -> None:
    inner = InMemoryEventStorageAdapter()
    schedule = FaultSchedule.scripted(
        {1: Fault.FAIL, 2: Fault.FAIL_AFTER, 3: Fault.CRASH_AFTER, 4: Fault.CRASH}
    )
    store = pokemons_store()
    store.event_storage_adapter = FaultyStorageAdapter(inner, schedule)
    with pytest.raises(InjectedFault):
        await store.push_event(appeared)
    assert await inner.last_position() == 0
    with pytest.raises(InjectedFault):  # stored, but the caller cannot tell
        await store.push_event(appeared)
    assert await inner.last_position() == 1
    with pytest.raises(SimulatedCrash):
        await store.push_event(caught)
    assert await inner.last_position() == 2
    with pytest.raises(SimulatedCrash):
        await store.push_event(leveled_up)
    assert [entry.event for entry in await store.event_storage_adapter.read_log()] == [appeared, caught]
    await store.push_event(leveled_up)
    assert (await store.get_aggregate("pikachuId")).aggregate.version == 3


async def test_storage_rejects_channel_only_faults() -> None:
    adapter = FaultyStorageAdapter(
        InMemoryEventStorageAdapter(), FaultSchedule.on_calls(1, fault=Fault.DUPLICATE)
    )
    with pytest.raises(ValueError, match="not a storage fault"):
        await adapter.push_event(appeared, event_store_id="POKEMONS")
    assert await adapter.inner.last_position() == 0


async def test_the_ordered_log_is_passed_through_as_coroutines_that_no_fault_strikes() -> None:
    inner = InMemoryEventStorageAdapter([appeared])
    adapter = FaultyStorageAdapter(
        inner, FaultSchedule.seeded(0, fail=1.0), reads=FaultSchedule.seeded(0, fail=1.0)
    )
    assert inspect.iscoroutinefunction(adapter.read_log)
    assert inspect.iscoroutinefunction(adapter.last_position)
    assert await adapter.read_log() == await inner.read_log()
    assert await adapter.read_log(after_position=1) == []
    assert await adapter.last_position() == 1
    assert adapter.calls == adapter.read_calls == 0


async def test_read_faults_strike_reads_and_leave_writes_alone() -> None:
    inner = InMemoryEventStorageAdapter([appeared])
    adapter = FaultyStorageAdapter(inner, reads=FaultSchedule.scripted({1: Fault.FAIL, 2: Fault.CRASH}))
    store = pokemons_store()
    store.event_storage_adapter = adapter
    with pytest.raises(InjectedFault):
        await store.get_aggregate("pikachuId")
    with pytest.raises(SimulatedCrash):
        await store.list_aggregate_ids()
    assert (await store.get_aggregate("pikachuId")).aggregate.version == 1
    assert adapter.read_calls == 3 and adapter.calls == 0


async def test_event_groups_go_through_the_wrapper_to_the_real_adapters(tmp_path) -> None:
    with SQLiteEventStorageAdapter(tmp_path / "events.sqlite") as sqlite:
        faulty = FaultyStorageAdapter(sqlite, FaultSchedule.scripted({2: Fault.FAIL_AFTER}))
        assert unwrap_storage(FaultyStorageAdapter(faulty)) is sqlite
        pokemons = pokemons_store()
        pokemons.event_storage_adapter = faulty
        trainers = EventStore(
            event_store_id="TRAINERS",
            event_types=[],
            reducer=lambda a, e: e.version,
            event_storage_adapter=sqlite,
        )
        started = EventDetail(aggregate_id="ash", version=1, type="GAME_STARTED")
        await EventStore.push_event_group(pokemons.group_event(appeared), trainers.group_event(started))
        assert await sqlite.last_position() == 2
        with pytest.raises(InjectedFault):
            await EventStore.push_event_group(pokemons.group_event(caught))
        assert await sqlite.last_position() == 3 and faulty.calls == 2
