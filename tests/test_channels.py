"""Message channels, as Castore's behave (docs/api.md §7)."""

from __future__ import annotations

import pytest

from castore_edu.core.errors import (
    AggregateNotFoundError,
    MessageChannelEventStoreNotFoundError,
    UndefinedMessageChannelAdapterError,
)
from castore_edu.messaging.channels import (
    AggregateExistsMessageBus,
    AggregateExistsMessageChannel,
    AggregateExistsMessageQueue,
    NotificationMessageBus,
    NotificationMessageChannel,
    NotificationMessageQueue,
    StateCarryingMessageBus,
    StateCarryingMessageChannel,
    StateCarryingMessageQueue,
)
from castore_edu.messaging.messages import AggregateExistsMessage, NotificationMessage, StateCarryingMessage
from tests.fixtures_pokemon import (
    RecordingChannelAdapter,
    appeared,
    blueprint_stores,
    caught,
    leveled_up,
    pokemons_store,
)
from tests.pokemon import pikachu_after

pytestmark = pytest.mark.anyio

pikachu_appeared_message = NotificationMessage("POKEMONS", appeared)


def test_notification_queue_attributes() -> None:
    store = pokemons_store()
    queue = NotificationMessageQueue(message_queue_id="test", source_event_stores=[store])
    assert queue.message_channel_id == "test"
    assert queue.message_channel_type == "queue"
    assert queue.message_type == "notification"
    assert queue.source_event_stores == [store]
    assert queue.message_channel_adapter is None


@pytest.mark.parametrize(
    ("channel_class", "id_key", "adapter_key", "channel_type", "message_type", "base"),
    [
        (
            NotificationMessageBus,
            "message_bus_id",
            "message_bus_adapter",
            "bus",
            "notification",
            NotificationMessageChannel,
        ),
        (
            StateCarryingMessageBus,
            "message_bus_id",
            "message_bus_adapter",
            "bus",
            "state-carrying",
            StateCarryingMessageChannel,
        ),
        # Deviation: Castore's AggregateExistsMessageBus takes queue names by mistake.
        (
            AggregateExistsMessageBus,
            "message_bus_id",
            "message_bus_adapter",
            "bus",
            "aggregate-exists",
            AggregateExistsMessageChannel,
        ),
        (
            NotificationMessageQueue,
            "message_queue_id",
            "message_queue_adapter",
            "queue",
            "notification",
            NotificationMessageChannel,
        ),
        (
            StateCarryingMessageQueue,
            "message_queue_id",
            "message_queue_adapter",
            "queue",
            "state-carrying",
            StateCarryingMessageChannel,
        ),
        (
            AggregateExistsMessageQueue,
            "message_queue_id",
            "message_queue_adapter",
            "queue",
            "aggregate-exists",
            AggregateExistsMessageChannel,
        ),
    ],
)
def test_the_six_channels(channel_class, id_key, adapter_key, channel_type, message_type, base) -> None:
    adapter = RecordingChannelAdapter()
    channel = channel_class(**{id_key: "channel", "source_event_stores": [], adapter_key: adapter})
    assert isinstance(channel, base)
    assert (channel.message_channel_id, channel.message_channel_type, channel.message_type) == (
        "channel",
        channel_type,
        message_type,
    )
    assert channel.get_message_channel_adapter() is adapter


async def test_publishing_without_adapter_raises() -> None:
    queue = NotificationMessageQueue(message_queue_id="test", source_event_stores=[pokemons_store()])
    with pytest.raises(UndefinedMessageChannelAdapterError) as raised:
        await queue.publish_message(pikachu_appeared_message)
    assert str(raised.value) == "Adapter undefined for message queue test"
    assert (raised.value.message_channel_type, raised.value.message_channel_id) == ("queue", "test")
    bus = NotificationMessageBus(message_bus_id="b", source_event_stores=[pokemons_store()])
    with pytest.raises(UndefinedMessageChannelAdapterError, match=r"^Adapter undefined for message bus b$"):
        bus.get_message_channel_adapter()


async def test_unknown_event_store_is_reported_before_the_missing_adapter() -> None:
    queue = NotificationMessageQueue(message_queue_id="test", source_event_stores=[pokemons_store()])
    with pytest.raises(MessageChannelEventStoreNotFoundError) as raised:
        await queue.publish_message(NotificationMessage("UNKNOWN", appeared))
    assert str(raised.value) == (
        "Unable to find event store UNKNOWN in message queue test. Did you provide it in the constructor?"
    )
    assert raised.value.event_store_id == "UNKNOWN"


def test_get_event_store_returns_the_first_store_with_that_id() -> None:
    first, second = pokemons_store(), pokemons_store()
    bus = NotificationMessageBus(message_bus_id="b", source_event_stores=[first, second])
    assert bus.get_event_store("POKEMONS") is first


async def test_publish_message_forwards_the_replay_flag() -> None:
    adapter = RecordingChannelAdapter()
    queue = NotificationMessageQueue(
        message_queue_id="test", source_event_stores=[pokemons_store()], message_queue_adapter=adapter
    )
    await queue.publish_message(pikachu_appeared_message)
    await queue.publish_message(pikachu_appeared_message, replay=True)
    assert adapter.published == [(pikachu_appeared_message, False), (pikachu_appeared_message, True)]


async def test_publish_messages_checks_every_store_before_publishing_anything() -> None:
    adapter = RecordingChannelAdapter()
    queue = NotificationMessageQueue(
        message_queue_id="test", source_event_stores=[pokemons_store()], message_queue_adapter=adapter
    )
    with pytest.raises(MessageChannelEventStoreNotFoundError):
        await queue.publish_messages([pikachu_appeared_message, NotificationMessage("UNKNOWN", appeared)])
    assert adapter.batches == []
    await queue.publish_messages([pikachu_appeared_message] * 2, replay=True)
    assert adapter.batches == [([pikachu_appeared_message] * 2, True)]


async def test_aggregate_exists_channel_checks_the_store_too() -> None:
    pokemons, trainers = blueprint_stores()
    adapter = RecordingChannelAdapter()
    bus = AggregateExistsMessageBus(
        message_bus_id="b", source_event_stores=[pokemons, trainers], message_bus_adapter=adapter
    )
    message = AggregateExistsMessage("TRAINERS", "ashKetchum", "2020")
    await bus.publish_message(message)
    assert adapter.published == [(message, False)]


async def test_get_aggregate_and_publish_message_adds_the_aggregate_at_the_event_version() -> None:
    adapter = RecordingChannelAdapter()
    queue = StateCarryingMessageQueue(
        message_queue_id="test",
        source_event_stores=[pokemons_store([appeared, caught, leveled_up])],
        message_queue_adapter=adapter,
    )
    await queue.get_aggregate_and_publish_message(NotificationMessage("POKEMONS", caught), replay=True)
    assert adapter.published == [
        (StateCarryingMessage("POKEMONS", caught, pikachu_after([appeared, caught])), True)
    ]


async def test_get_aggregate_and_publish_message_of_an_unknown_aggregate_publishes_nothing() -> None:
    adapter = RecordingChannelAdapter()
    queue = StateCarryingMessageQueue(
        message_queue_id="test", source_event_stores=[pokemons_store()], message_queue_adapter=adapter
    )
    with pytest.raises(
        AggregateNotFoundError, match=r"Unable to find aggregate pikachuId in event store POKEMONS\."
    ):
        await queue.get_aggregate_and_publish_message(NotificationMessage("POKEMONS", caught))
    assert adapter.published == []
