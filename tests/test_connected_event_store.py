"""ConnectedEventStore and publish_pushed_event: Castore's connected event store, claim by claim (docs/api.md §9)."""

from __future__ import annotations

from typing import Any

import pytest

import castore_edu.connected.connected_event_store as connected_module
from castore_edu.connected.connected_event_store import ConnectedEventStore, publish_pushed_event
from castore_edu.core.errors import UndefinedMessageChannelAdapterError
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail, EventStoreContext, PushEventResult
from castore_edu.messaging.channels import (
    AggregateExistsMessageQueue,
    NotificationMessageBus,
    NotificationMessageQueue,
    StateCarryingMessageBus,
    StateCarryingMessageQueue,
)
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter
from castore_edu.messaging.messages import NotificationMessage, StateCarryingMessage
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from tests.fixtures_pokemon import (
    FailingChannelAdapter,
    Recorder,
    RecordingChannelAdapter,
    appeared,
    caught,
    charizard_leveled_up,
    leveled_up,
    pokemon_reducer,
    pokemons_store,
    spy_pokemons_store,
)
from tests.pokemon import pikachu_after

pytestmark = pytest.mark.anyio


def build(*events: EventDetail) -> Any:
    return pikachu_after(events)


def connect(
    store: EventStore, channel_class: type = NotificationMessageQueue, adapter: Any = None
) -> ConnectedEventStore:
    """``store`` connected to a channel of ``channel_class`` with a recording adapter."""
    id_key = "message_bus_id" if channel_class.__name__.endswith("Bus") else "message_queue_id"
    channel = channel_class(**{id_key: "channel", "source_event_stores": [store]})
    channel.message_channel_adapter = adapter or RecordingChannelAdapter()
    return ConnectedEventStore(store, channel)


def published(connected: ConnectedEventStore) -> list[Any]:
    return [message for message, _replay in connected.message_channel.message_channel_adapter.published]


@pytest.fixture
def publish_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, PushEventResult]]:
    """Record every call of publish_pushed_event (which still runs)."""
    recorded: list[tuple[Any, PushEventResult]] = []
    real = connected_module.publish_pushed_event

    async def spy(connected_store: Any, result: PushEventResult) -> None:
        recorded.append((connected_store, result))
        await real(connected_store, result)

    monkeypatch.setattr(connected_module, "publish_pushed_event", spy)
    return recorded


# -- the seed page's claims -------------------------------------------------------------------


def test_it_keeps_what_it_was_given_and_has_the_event_store_interface() -> None:
    store = pokemons_store()
    connected = connect(store)
    assert connected.event_store is store
    assert connected.message_channel.message_channel_id == "channel"
    public = {name for name in dir(store) if not name.startswith("_")}
    assert public <= set(dir(connected))
    publishing = {"push_event", "group_event", "on_event_pushed"}  # its own: they also publish
    for name in public - publishing:
        assert getattr(connected, name) == getattr(store, name), name
    assert (connected.event_store_id, connected.event_types, connected.reducer) == (
        "POKEMONS",
        store.event_types,
        pokemon_reducer,
    )


async def test_it_reads_the_wrapped_store_at_call_time() -> None:
    # Deviation: Castore copies the reducer (and more) when the connected store is built.
    store = pokemons_store([appeared, caught])
    connected = connect(store)
    store.reducer = lambda aggregate, event: (aggregate or 0) + 1
    assert (await connected.get_aggregate("pikachuId")).aggregate == 2
    connected.reducer = pokemon_reducer  # writes go to the wrapped store too
    assert store.reducer is pokemon_reducer


def test_event_storage_adapter_points_to_the_wrapped_store() -> None:
    store = pokemons_store()
    connected = connect(store)
    x, y = InMemoryEventStorageAdapter(), InMemoryEventStorageAdapter()
    connected.event_storage_adapter = x
    assert connected.event_storage_adapter is x and store.event_storage_adapter is x
    store.event_storage_adapter = y
    assert connected.event_storage_adapter is y
    assert connected.get_event_storage_adapter() is y


async def test_on_event_pushed_runs_the_wrapped_callback_then_publishes() -> None:
    store = pokemons_store()
    connected = connect(store)
    assert store.on_event_pushed is None
    result = PushEventResult(event=caught)
    await connected.on_event_pushed(result)  # callable even though the wrapped store has none
    assert published(connected) == [NotificationMessage("POKEMONS", caught)]

    seen: list[PushEventResult] = []

    async def callback(pushed: PushEventResult) -> None:
        seen.append(pushed)

    connected.on_event_pushed = callback
    assert store.on_event_pushed is callback
    await connected.on_event_pushed(result)
    assert seen == [result] and len(published(connected)) == 2


async def test_push_event_stores_then_publishes_a_notification(publish_calls: list) -> None:
    store = spy_pokemons_store([appeared])
    connected = connect(store)
    result = await connected.push_event(caught)
    assert store.pushes == [(caught, None, False)]
    assert result == PushEventResult(event=caught)
    assert publish_calls == [(connected, result)]
    assert published(connected) == [NotificationMessage("POKEMONS", caught)]
    assert await store.get_events("pikachuId") == [appeared, caught]


async def test_push_event_forwards_prev_aggregate_and_force(publish_calls: list) -> None:
    store = spy_pokemons_store([appeared])
    connected = connect(store)
    result = await connected.push_event(caught, prev_aggregate=build(appeared))
    assert store.pushes == [(caught, build(appeared), False)]
    assert publish_calls == [(connected, PushEventResult(caught, build(appeared, caught)))]
    assert result.next_aggregate == build(appeared, caught)
    await connected.push_event(caught, force=True)
    assert store.pushes[-1] == (caught, None, True)


def test_grouped_events_point_to_the_connected_store() -> None:
    connected = connect(pokemons_store([appeared]))
    grouped = connected.group_event(caught, prev_aggregate=build(appeared))
    assert grouped.event_store is connected
    assert grouped.context == EventStoreContext("POKEMONS")
    assert grouped.prev_aggregate == build(appeared)


async def test_a_pushed_group_is_published_on_each_store_channel(publish_calls: list) -> None:
    charizard_v1 = EventDetail(
        aggregate_id="charizard1",
        version=1,
        type="POKEMON_APPEARED",
        timestamp="2020",
        payload={"name": "Charizard"},
    )
    charizard_v2 = EventDetail(aggregate_id="charizard1", version=2, type="POKEMON_CAUGHT", timestamp="2021")
    state_carrying = connect(spy_pokemons_store([appeared]), StateCarryingMessageBus)
    notification = connect(pokemons_store([charizard_v1, charizard_v2]), NotificationMessageQueue)
    results = await EventStore.push_event_group(
        state_carrying.group_event(caught, prev_aggregate=build(appeared)),
        notification.group_event(charizard_leveled_up),
    )
    assert sorted(publish_calls, key=lambda call: call[1].event.aggregate_id) == [
        (notification, PushEventResult(charizard_leveled_up)),
        (state_carrying, PushEventResult(caught, build(appeared, caught))),
    ]
    assert results == [
        PushEventResult(caught, build(appeared, caught)),
        PushEventResult(charizard_leveled_up),
    ]
    assert published(state_carrying) == [StateCarryingMessage("POKEMONS", caught, build(appeared, caught))]
    assert state_carrying.event_store.aggregate_reads == []  # prev_aggregate spared the re-fetch
    assert published(notification) == [NotificationMessage("POKEMONS", charizard_leveled_up)]
    assert ConnectedEventStore.push_event_group is EventStore.push_event_group


async def test_state_carrying_push_without_prev_aggregate_refetches_but_returns_the_plain_result() -> None:
    store = spy_pokemons_store([appeared])
    connected = connect(store, StateCarryingMessageQueue)
    result = await connected.push_event(caught)
    assert result == PushEventResult(event=caught)  # the fetched aggregate is not added
    assert store.aggregate_reads == [("pikachuId", 2)]
    assert published(connected) == [StateCarryingMessage("POKEMONS", caught, build(appeared, caught))]


async def test_state_carrying_push_of_a_first_event_needs_no_read() -> None:
    store = spy_pokemons_store()
    connected = connect(store, StateCarryingMessageBus)
    await connected.push_event(appeared)
    assert store.event_reads == 0
    assert published(connected) == [StateCarryingMessage("POKEMONS", appeared, build(appeared))]


async def test_the_wrapped_callback_runs_before_the_publish() -> None:
    order: list[str] = []
    store = pokemons_store()

    async def callback(result: PushEventResult) -> None:
        order.append("on_event_pushed")

    class MarkingAdapter(RecordingChannelAdapter):
        async def publish_message(self, message: Any, *, replay: bool = False) -> None:
            order.append("publish")

    store.on_event_pushed = callback
    await connect(store, adapter=MarkingAdapter()).push_event(appeared)
    assert order == ["on_event_pushed", "publish"]


async def test_a_failed_publish_raises_but_the_event_is_stored() -> None:
    store = pokemons_store([appeared])
    connected = connect(store, adapter=FailingChannelAdapter())
    with pytest.raises(ConnectionError, match="broker unreachable"):
        await connected.push_event(caught)
    assert await store.get_events("pikachuId") == [appeared, caught]  # stored, yet never published
    with pytest.raises(ConnectionError):
        await EventStore.push_event_group(connected.group_event(leveled_up))
    assert (await store.get_events("pikachuId"))[-1] == leveled_up


async def test_a_channel_without_adapter_fails_after_storing() -> None:
    store = pokemons_store()
    channel = NotificationMessageBus(message_bus_id="bus", source_event_stores=[store])
    with pytest.raises(UndefinedMessageChannelAdapterError):
        await ConnectedEventStore(store, channel).push_event(appeared)
    assert await store.get_events("pikachuId") == [appeared]


async def test_end_to_end_on_an_in_memory_bus() -> None:
    store = pokemons_store()
    bus = NotificationMessageBus(message_bus_id="bus", source_event_stores=[store])
    adapter = InMemoryMessageBusAdapter.attach_to(bus)
    handler = Recorder()
    adapter.on({"event_store_id": "POKEMONS", "event_type": "POKEMON_CAUGHT"}, handler)
    connected = ConnectedEventStore(store, bus)

    await connected.push_event(appeared)
    await connected.push_event(caught)
    await adapter.wait_idle()
    assert handler.messages == [NotificationMessage("POKEMONS", caught)]


# -- publish_pushed_event on its own --------------------------------------------------------------


async def test_publish_pushed_event_on_a_notification_channel() -> None:
    connected = connect(pokemons_store(), NotificationMessageBus)
    await publish_pushed_event(connected, PushEventResult(leveled_up))
    assert connected.message_channel.message_channel_adapter.published == [
        (NotificationMessage("POKEMONS", leveled_up), False)
    ]


async def test_publish_pushed_event_fetches_the_aggregate_at_the_event_version() -> None:
    store = spy_pokemons_store([appeared, caught, leveled_up])
    connected = connect(store, StateCarryingMessageBus)
    await publish_pushed_event(connected, PushEventResult(caught))
    assert store.aggregate_reads == [("pikachuId", 2)]
    assert published(connected) == [StateCarryingMessage("POKEMONS", caught, build(appeared, caught))]


async def test_publish_pushed_event_uses_next_aggregate_when_there_is_one() -> None:
    store = spy_pokemons_store()
    connected = connect(store, StateCarryingMessageBus)
    await publish_pushed_event(connected, PushEventResult(leveled_up, next_aggregate="next"))
    assert store.aggregate_reads == []
    assert published(connected) == [StateCarryingMessage("POKEMONS", leveled_up, "next")]


async def test_publish_pushed_event_of_an_unknown_aggregate_carries_none() -> None:
    connected = connect(pokemons_store(), StateCarryingMessageBus)
    await publish_pushed_event(connected, PushEventResult(leveled_up))
    assert published(connected) == [StateCarryingMessage("POKEMONS", leveled_up, None)]


async def test_aggregate_exists_channels_get_nothing() -> None:
    store = pokemons_store()
    connected = connect(store, AggregateExistsMessageQueue)
    await connected.push_event(appeared)
    assert published(connected) == []
    assert await store.get_events("pikachuId") == [appeared]
