"""Every public constructor and function refuses a bad argument at once, and names it.

One row per bad input: what the call is, the call itself, the error it must raise (TypeError
for the wrong kind of thing, ValueError for a wrong value) and words its message must contain
(the argument's name, what was expected, and for a likely slip, the hint). A call that returns
a coroutine is awaited: an ``async`` function checks its arguments before it does anything.
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from castore_edu.connected.connected_event_store import ConnectedEventStore
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail, EventType
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
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter
from castore_edu.messaging.messages import (
    AggregateExistsMessage,
    NotificationMessage,
    StateCarryingMessage,
)
from castore_edu.reliability.idempotency import (
    IdempotentHandler,
    InMemoryProcessedMessages,
    SQLiteProcessedMessages,
    idempotent,
    message_key,
)
from castore_edu.reliability.relay import (
    InMemoryCheckpointStore,
    PostgresCheckpointStore,
    Relay,
    SQLiteCheckpointStore,
)
from castore_edu.replay.dam import (
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from castore_edu.storage.sqlite import SQLiteEventStorageAdapter
from castore_edu.testing.doubles import MockedEventStore, mock_event_store, mute_event_store
from castore_edu.testing.faults import Fault, FaultSchedule, FaultyChannelAdapter, FaultyStorageAdapter
from castore_edu.testing.latency import SimulatedLatencyAdapter
from castore_edu.testing.storage_contract import AdapterWithoutLog

pytestmark = pytest.mark.anyio

APPEARED = EventDetail(aggregate_id="pikachu", version=1, type="APPEARED")


def count_versions(aggregate: Any, event: EventDetail) -> int:
    return event.version


def pokemons() -> EventStore:
    return EventStore(
        event_store_id="POKEMONS",
        event_types=[EventType("APPEARED")],
        reducer=count_versions,
        event_storage_adapter=InMemoryEventStorageAdapter(),
    )


def store_with(**changes: Any) -> EventStore:
    """``EventStore`` with good arguments, except ``changes``."""
    arguments: dict[str, Any] = {
        "event_store_id": "POKEMONS",
        "event_types": [EventType("APPEARED")],
        "reducer": count_versions,
    }
    return EventStore(**(arguments | changes))


def bus_of(store: EventStore, channel_class: type = NotificationMessageBus) -> Any:
    bus = channel_class(message_bus_id="pokemon-news", source_event_stores=[store])
    InMemoryMessageBusAdapter.attach_to(bus)
    return bus


def relay_with(**changes: Any) -> Relay:
    """``Relay`` with good arguments, except ``changes``."""
    store = pokemons()
    arguments: dict[str, Any] = {
        "storage": store.event_storage_adapter,
        "routes": {"POKEMONS": bus_of(store)},
    }
    return Relay(**(arguments | changes))


async def handler(message: Any, context: Any = None) -> None:
    return None


def pour(function: Callable[..., Any], **changes: Any) -> Any:
    """A pour with good arguments, except ``changes``."""
    store = pokemons()
    arguments: dict[str, Any] = {"event_store": store, "message_channel": bus_of(store)}
    if function is pour_aggregate_events:
        arguments["aggregate_id"] = "pikachu"
    if function is pour_event_store_collection_events:
        arguments = {"event_stores": [store], "message_channel": arguments["message_channel"]}
    return function(**(arguments | changes))


def channel_rows() -> list[Any]:
    """Each of the nine channel classes, given the id of a store instead of the store."""
    rows = []
    for channel_class in (NotificationMessageBus, StateCarryingMessageBus, AggregateExistsMessageBus):
        rows.append(
            (
                f"{channel_class.__name__}(source_event_stores=['POKEMONS'])",
                lambda cls=channel_class: cls(message_bus_id="b", source_event_stores=["POKEMONS"]),
            )
        )
    for channel_class in (NotificationMessageQueue, StateCarryingMessageQueue, AggregateExistsMessageQueue):
        rows.append(
            (
                f"{channel_class.__name__}(source_event_stores=['POKEMONS'])",
                lambda cls=channel_class: cls(message_queue_id="q", source_event_stores=["POKEMONS"]),
            )
        )
    for channel_class in (
        NotificationMessageChannel,
        StateCarryingMessageChannel,
        AggregateExistsMessageChannel,
    ):
        rows.append(
            (
                f"{channel_class.__name__}(source_event_stores=['POKEMONS'])",
                lambda cls=channel_class: cls(
                    message_channel_type="bus", message_channel_id="c", source_event_stores=["POKEMONS"]
                ),
            )
        )
    return [
        pytest.param(
            call, TypeError, ["source_event_stores[0] must be an event store", "not its id"], id=name
        )
        for name, call in rows
    ]


def row(description: str, call: Callable[[], Any], error: type[Exception], *words: str) -> Any:
    return pytest.param(call, error, list(words), id=description)


SQLITE = SQLiteEventStorageAdapter()

BAD_CALLS = [
    # -- EventType and EventStore ------------------------------------------------------------
    row('EventType("")', lambda: EventType(""), ValueError, "type must be a non-empty str", "Hint"),
    row("EventType(5)", lambda: EventType(5), TypeError, "type must be a non-empty str", "got 5"),
    row("EventType(None)", lambda: EventType(None), TypeError, "type must be a non-empty str"),
    row('EventStore(event_store_id="")', lambda: store_with(event_store_id=""), ValueError, "event_store_id"),
    row("EventStore(event_store_id=5)", lambda: store_with(event_store_id=5), TypeError, "event_store_id"),
    row(
        "EventStore(event_types=None)",
        lambda: store_with(event_types=None),
        TypeError,
        "event_types must be a list of EventType",
        "or [] for none",
    ),
    row(
        'EventStore(event_types="APPEARED")',
        lambda: store_with(event_types="APPEARED"),
        TypeError,
        "event_types must be a list of EventType",
    ),
    row(
        'EventStore(event_types=["APPEARED"])',
        lambda: store_with(event_types=["APPEARED"]),
        TypeError,
        "event_types[0] must be an EventType",
        "EventType('APPEARED')",
    ),
    row("EventStore(reducer=None)", lambda: store_with(reducer=None), TypeError, "reducer must be callable"),
    row(
        "EventStore(simulate_side_effect=5)",
        lambda: store_with(simulate_side_effect=5),
        TypeError,
        "simulate_side_effect must be callable",
    ),
    row(
        'EventStore(on_event_pushed="publish")',
        lambda: store_with(on_event_pushed="publish"),
        TypeError,
        "on_event_pushed must be callable",
    ),
    row(
        "EventStore(event_storage_adapter=<the class>)",
        lambda: store_with(event_storage_adapter=InMemoryEventStorageAdapter),
        TypeError,
        "event_storage_adapter must be a storage adapter",
        "InMemoryEventStorageAdapter()",
    ),
    row(
        'EventStore(event_storage_adapter="memory")',
        lambda: store_with(event_storage_adapter="memory"),
        TypeError,
        "event_storage_adapter must be a storage adapter",
        "lacks get_events",
    ),
    row(
        'get_events(reverse="yes")',
        lambda: pokemons().get_events("pikachu", reverse="yes"),
        TypeError,
        "reverse must be True or False",
    ),
    row(
        "list_aggregate_ids(reverse=1)",
        lambda: pokemons().list_aggregate_ids(reverse=1),
        TypeError,
        "reverse must be True or False",
    ),
    row(
        "list_aggregate_ids(page_token=5)",
        lambda: pokemons().list_aggregate_ids(page_token=5),
        TypeError,
        "page_token must be None or the str",
    ),
    row(
        "simulate_aggregate(simulation_date=2024)",
        lambda: pokemons().simulate_aggregate([], simulation_date=2024),
        TypeError,
        "simulation_date must be a str timestamp or None",
    ),
    row(
        'push_event(force="yes")',
        lambda: pokemons().push_event(APPEARED, force="yes"),
        TypeError,
        "force must be True or False",
    ),
    row(
        "push_event_group(force=1)",
        lambda: EventStore.push_event_group(pokemons().group_event(APPEARED), force=1),
        TypeError,
        "force must be True or False",
    ),
    # -- channels ----------------------------------------------------------------------------
    *channel_rows(),
    row(
        'NotificationMessageBus(message_bus_id="")',
        lambda: NotificationMessageBus(message_bus_id="", source_event_stores=[]),
        ValueError,
        "message_bus_id must be a non-empty str",
    ),
    row(
        "NotificationMessageQueue(message_queue_id=3)",
        lambda: NotificationMessageQueue(message_queue_id=3, source_event_stores=[]),
        TypeError,
        "message_queue_id must be a non-empty str",
    ),
    row(
        "NotificationMessageChannel(message_channel_type=None)",
        lambda: NotificationMessageChannel(
            message_channel_type=None, message_channel_id="c", source_event_stores=[]
        ),
        TypeError,
        "message_channel_type must be a non-empty str",
    ),
    row(
        "NotificationMessageBus(source_event_stores=None)",
        lambda: NotificationMessageBus(message_bus_id="b", source_event_stores=None),
        TypeError,
        "source_event_stores must be a list of event stores",
    ),
    row(
        "NotificationMessageBus(source_event_stores=<a store, not a list>)",
        lambda: NotificationMessageBus(message_bus_id="b", source_event_stores=pokemons()),
        TypeError,
        "source_event_stores must be a list of event stores",
    ),
    row(
        "NotificationMessageBus(message_bus_adapter=<the class>)",
        lambda: NotificationMessageBus(
            message_bus_id="b", source_event_stores=[], message_bus_adapter=InMemoryMessageBusAdapter
        ),
        TypeError,
        "message_bus_adapter must be a message channel adapter",
        "InMemoryMessageBusAdapter()",
    ),
    row(
        'NotificationMessageQueue(message_queue_adapter="adapter")',
        lambda: NotificationMessageQueue(
            message_queue_id="q", source_event_stores=[], message_queue_adapter="adapter"
        ),
        TypeError,
        "message_queue_adapter must be a message channel adapter",
        "lacks publish_message",
    ),
    row(
        'publish_message("hello")',
        lambda: bus_of(pokemons()).publish_message("hello"),
        TypeError,
        "message must be a message",
    ),
    row(
        'publish_message(replay="no")',
        lambda: bus_of(pokemons()).publish_message(NotificationMessage("POKEMONS", APPEARED), replay="no"),
        TypeError,
        "replay must be True or False",
    ),
    row(
        "publish_messages(None)",
        lambda: bus_of(pokemons()).publish_messages(None),
        TypeError,
        "messages must be a list of messages",
    ),
    row(
        'publish_messages(["hello"])',
        lambda: bus_of(pokemons()).publish_messages(["hello"]),
        TypeError,
        "messages[0] must be a message",
    ),
    row(
        "get_aggregate_and_publish_message(<a state-carrying message>)",
        lambda: bus_of(pokemons(), StateCarryingMessageBus).get_aggregate_and_publish_message(
            StateCarryingMessage("POKEMONS", APPEARED, 1)
        ),
        TypeError,
        "message must be a NotificationMessage",
    ),
    # -- ConnectedEventStore -----------------------------------------------------------------
    row(
        "ConnectedEventStore(store, None)",
        lambda: ConnectedEventStore(pokemons(), None),
        TypeError,
        "message_channel must be a message channel",
    ),
    row(
        'ConnectedEventStore(store, "pokemon-news")',
        lambda: ConnectedEventStore(pokemons(), "pokemon-news"),
        TypeError,
        "message_channel must be a message channel",
        "not its id",
    ),
    row(
        "ConnectedEventStore(store, <a channel adapter>)",
        lambda: ConnectedEventStore(pokemons(), InMemoryMessageBusAdapter()),
        TypeError,
        "message_channel must be a message channel",
        "channel adapter",
    ),
    row(
        'ConnectedEventStore("POKEMONS", bus)',
        lambda: ConnectedEventStore("POKEMONS", bus_of(pokemons())),
        TypeError,
        "event_store must be an event store",
        "not its id 'POKEMONS'",
    ),
    row(
        "ConnectedEventStore(None, bus)",
        lambda: ConnectedEventStore(None, bus_of(pokemons())),
        TypeError,
        "event_store must be an event store",
    ),
    # -- Relay and checkpoints ---------------------------------------------------------------
    row(
        'Relay(poll_interval="1")',
        lambda: relay_with(poll_interval="1"),
        TypeError,
        "poll_interval must be a number of seconds >= 0",
        "float(text)",
    ),
    row("Relay(poll_interval=-1)", lambda: relay_with(poll_interval=-1), ValueError, "poll_interval"),
    row(
        "Relay(retry_delay=None)",
        lambda: relay_with(retry_delay=None),
        TypeError,
        "retry_delay must be a number of seconds",
    ),
    row(
        "Relay(retry_delay=inf)",
        lambda: relay_with(retry_delay=float("inf")),
        ValueError,
        "retry_delay must be a number of seconds",
    ),
    row(
        "Relay(batch_size=0)", lambda: relay_with(batch_size=0), ValueError, "batch_size must be an int >= 1"
    ),
    row(
        "Relay(batch_size=True)",
        lambda: relay_with(batch_size=True),
        TypeError,
        "batch_size must be an int >= 1",
    ),
    row(
        "Relay(batch_size=2.5)",
        lambda: relay_with(batch_size=2.5),
        TypeError,
        "batch_size must be an int >= 1",
    ),
    row(
        "Relay(cache_size=-1)",
        lambda: relay_with(cache_size=-1),
        ValueError,
        "cache_size must be an int >= 0",
    ),
    row('Relay(name="")', lambda: relay_with(name=""), ValueError, "name must be a non-empty str"),
    row("Relay(name=None)", lambda: relay_with(name=None), TypeError, "name must be a non-empty str"),
    row("Relay(routes=None)", lambda: relay_with(routes=None), TypeError, "routes must be a dict", "Hint"),
    row(
        "Relay(routes=[bus])",
        lambda: relay_with(routes=[bus_of(pokemons())]),
        TypeError,
        "routes must be a dict",
    ),
    row("Relay(routes={5: ...})", lambda: relay_with(routes={5: None}), TypeError, "routes key"),
    row(
        "Relay(checkpoints=<the class>)",
        lambda: relay_with(checkpoints=InMemoryCheckpointStore),
        TypeError,
        "checkpoints must be a checkpoint store",
        "InMemoryCheckpointStore()",
    ),
    row(
        "Relay(checkpoints={})",
        lambda: relay_with(checkpoints={}),
        TypeError,
        "checkpoints must be a checkpoint store",
    ),
    row(
        "Relay(storage=None)",
        lambda: relay_with(storage=None),
        TypeError,
        "storage: None is not a storage adapter",
    ),
    row(
        "Relay(storage=<an adapter without log>)",
        lambda: relay_with(storage=SimulatedLatencyAdapter(AdapterWithoutLog(InMemoryEventStorageAdapter()))),
        TypeError,
        "storage: ",
        "keeps no ordered log",
    ),
    row(
        "relay.catch_up(max_failures=-1)",
        lambda: relay_with().catch_up(max_failures=-1),
        ValueError,
        "max_failures must be an int >= 0",
    ),
    row(
        'relay.wait_until_published(position="3")',
        lambda: relay_with().wait_until_published("3"),
        TypeError,
        "position must be an int >= 0",
    ),
    row(
        "SQLiteCheckpointStore(<an in-memory adapter>)",
        lambda: SQLiteCheckpointStore(InMemoryEventStorageAdapter()),
        TypeError,
        "adapter must be a SQLiteEventStorageAdapter",
        "InMemoryCheckpointStore",
    ),
    row(
        'SQLiteCheckpointStore(":memory:")',
        lambda: SQLiteCheckpointStore(":memory:"),
        TypeError,
        "adapter must be a SQLiteEventStorageAdapter",
    ),
    row(
        "PostgresCheckpointStore(<an SQLite adapter>)",
        lambda: PostgresCheckpointStore(SQLITE),
        TypeError,
        "adapter must be a PostgresEventStorageAdapter",
        "SQLiteCheckpointStore",
    ),
    row(
        'checkpoints.load("")',
        lambda: InMemoryCheckpointStore().load(""),
        ValueError,
        "relay_name must be a non-empty str",
    ),
    row(
        'checkpoints.save("relay", -1)',
        lambda: InMemoryCheckpointStore().save("relay", -1),
        ValueError,
        "position must be an int >= 0",
    ),
    row(
        'SQLiteCheckpointStore.save("relay", 1.5)',
        lambda: SQLiteCheckpointStore(SQLITE).save("relay", 1.5),
        TypeError,
        "position must be an int >= 0",
    ),
    # -- idempotency -------------------------------------------------------------------------
    row('message_key("hello")', lambda: message_key("hello"), TypeError, "message must carry an event"),
    row(
        "message_key(<an aggregate-exists message>)",
        lambda: message_key(AggregateExistsMessage("POKEMONS", "pikachu")),
        TypeError,
        "carries no event",
    ),
    row(
        "InMemoryProcessedMessages(keys=None)",
        lambda: InMemoryProcessedMessages(None),
        TypeError,
        "keys must be a list of message keys",
    ),
    row(
        'InMemoryProcessedMessages([("S", "a", "1")])',
        lambda: InMemoryProcessedMessages([("S", "a", "1")]),
        TypeError,
        "a message key must be a tuple",
        "message_key(message)",
    ),
    row(
        'processed.add(("S", "a"))',
        lambda: InMemoryProcessedMessages().add(("S", "a")),
        TypeError,
        "a message key must be a tuple",
    ),
    row(
        "SQLiteProcessedMessages(<the adapter>, ...)",
        lambda: SQLiteProcessedMessages(SQLITE, "board"),
        TypeError,
        "connection must be an sqlite3.Connection",
        "adapter.connection",
    ),
    row(
        'SQLiteProcessedMessages(connection, "")',
        lambda: SQLiteProcessedMessages(sqlite3.connect(":memory:"), ""),
        ValueError,
        "consumer must be a non-empty str",
    ),
    row("idempotent(None)", lambda: idempotent(None), TypeError, "handler must be callable"),
    row(
        "IdempotentHandler(handler, processed=[])",
        lambda: IdempotentHandler(handler, []),
        TypeError,
        "processed must keep message keys",
    ),
    row(
        "idempotent(handler, <the class>)",
        lambda: idempotent(handler, InMemoryProcessedMessages),
        TypeError,
        "InMemoryProcessedMessages()",
    ),
    # -- replay ("dam") ----------------------------------------------------------------------
    row(
        'pour_aggregate_events(event_store="POKEMONS")',
        lambda: pour(pour_aggregate_events, event_store="POKEMONS"),
        TypeError,
        "event_store must be an event store",
        "not its id",
    ),
    row(
        "pour_aggregate_events(message_channel=None)",
        lambda: pour(pour_aggregate_events, message_channel=None),
        TypeError,
        "message_channel must be a message channel",
    ),
    row(
        'pour_aggregate_events(aggregate_id="")',
        lambda: pour(pour_aggregate_events, aggregate_id=""),
        ValueError,
        "aggregate_id must be a non-empty str",
    ),
    row(
        'pour_aggregate_events(rate_limit="10")',
        lambda: pour(pour_aggregate_events, rate_limit="10"),
        TypeError,
        "rate_limit must be a positive number",
    ),
    row(
        "pour_aggregate_events(rate_limit=0)",
        lambda: pour(pour_aggregate_events, rate_limit=0),
        ValueError,
        "rate_limit must be a positive number",
    ),
    row(
        'pour_aggregate_events(filters="2021")',
        lambda: pour(pour_aggregate_events, filters="2021"),
        TypeError,
        "filters must be a dict",
    ),
    row(
        'pour_aggregate_events(filters={"from": 2021})',
        lambda: pour(pour_aggregate_events, filters={"from": 2021}),
        TypeError,
        "filters['from'] must be a str timestamp",
    ),
    row(
        'pour_event_store_events(filters={"since": ...})',
        lambda: pour(pour_event_store_events, filters={"since": "2021"}),
        ValueError,
        "Unknown filter keys ['since']",
    ),
    row(
        'pour_aggregate_events(options={"page_size": 3})',
        lambda: pour(pour_aggregate_events, options={"max_version": 2, "page_size": 3}),
        ValueError,
        "Unknown options ['page_size'] for get_events",
    ),
    row(
        'pour_aggregate_events(options="reverse")',
        lambda: pour(pour_aggregate_events, options="reverse"),
        TypeError,
        "options must be a dict",
    ),
    row(
        'pour_event_store_aggregate_ids(options={"page_token": ...})',
        lambda: pour(pour_event_store_aggregate_ids, options={"page_token": "x"}),
        ValueError,
        "options cannot hold page_token",
    ),
    row(
        'pour_event_store_aggregate_ids(options={"aggregate_id": ...})',
        lambda: pour(pour_event_store_aggregate_ids, options={"aggregate_id": "x"}),
        ValueError,
        "Unknown options ['aggregate_id'] for list_aggregate_ids",
    ),
    row(
        "pour_event_store_aggregate_ids(rate_limit=-1)",
        lambda: pour(pour_event_store_aggregate_ids, rate_limit=-1),
        ValueError,
        "rate_limit must be a positive number",
    ),
    row(
        "pour_event_store_events(event_store=[store])",
        lambda: pour(pour_event_store_events, event_store=[pokemons()]),
        TypeError,
        "event_store must be an event store",
        "pour_event_store_collection_events",
    ),
    row(
        "pour_event_store_collection_events(event_stores=store)",
        lambda: pour(pour_event_store_collection_events, event_stores=pokemons()),
        TypeError,
        "event_stores must be a list of event stores",
    ),
    row(
        'pour_event_store_collection_events(event_stores=["POKEMONS"])',
        lambda: pour(pour_event_store_collection_events, event_stores=["POKEMONS"]),
        TypeError,
        "event_stores[0] must be an event store",
    ),
    row(
        "pour_event_store_collection_events(event_stores=[store, store])",
        lambda: pour(pour_event_store_collection_events, event_stores=[pokemons(), pokemons()]),
        ValueError,
        "event_stores lists the event store 'POKEMONS' twice",
    ),
    # -- test tools --------------------------------------------------------------------------
    row(
        'mock_event_store("POKEMONS")',
        lambda: mock_event_store("POKEMONS"),
        TypeError,
        "event_store must be an event store",
        "not its id",
    ),
    row(
        "mock_event_store(store, initial_events=None)",
        lambda: mock_event_store(pokemons(), None),
        TypeError,
        "initial_events must be a list of EventDetail",
    ),
    row(
        "mock_event_store(store, [<a dict>])",
        lambda: mock_event_store(pokemons(), [{"aggregate_id": "pikachu", "version": 1}]),
        TypeError,
        "initial_events[0] must be an EventDetail",
    ),
    row(
        "MockedEventStore(None)",
        lambda: MockedEventStore(None),
        TypeError,
        "event_store must be an event store",
    ),
    row(
        "mute_event_store(None)",
        lambda: mute_event_store(None),
        TypeError,
        "event_store must be an event store",
    ),
    row(
        'mute_event_store(store, "events")',
        lambda: mute_event_store(pokemons(), "events"),
        TypeError,
        "initial_events must be a list of EventDetail",
    ),
    row(
        'SimulatedLatencyAdapter(latency_ms="5")',
        lambda: SimulatedLatencyAdapter(InMemoryEventStorageAdapter(), latency_ms="5"),
        TypeError,
        "latency_ms must be a number of milliseconds >= 0",
    ),
    row(
        "SimulatedLatencyAdapter(latency_ms=-1)",
        lambda: SimulatedLatencyAdapter(InMemoryEventStorageAdapter(), latency_ms=-1),
        ValueError,
        "latency_ms must be a number of milliseconds >= 0",
    ),
    row(
        "SimulatedLatencyAdapter(None)",
        lambda: SimulatedLatencyAdapter(None),
        TypeError,
        "inner must be a storage adapter",
    ),
    row(
        "FaultyStorageAdapter(inner, {2: Fault.FAIL})",
        lambda: FaultyStorageAdapter(InMemoryEventStorageAdapter(), {2: Fault.FAIL}),
        TypeError,
        "writes must be a FaultSchedule or None",
        "FaultSchedule.scripted",
    ),
    row(
        'FaultyStorageAdapter(inner, reads="x")',
        lambda: FaultyStorageAdapter(InMemoryEventStorageAdapter(), reads="x"),
        TypeError,
        "reads must be a FaultSchedule or None",
    ),
    row(
        'FaultyChannelAdapter(inner, latency_ms="1")',
        lambda: FaultyChannelAdapter(InMemoryMessageBusAdapter(), latency_ms="1"),
        TypeError,
        "latency_ms must be a number of milliseconds",
    ),
    row("FaultSchedule(None)", lambda: FaultSchedule(None), TypeError, "decide must be callable"),
]


@pytest.mark.parametrize(("call", "error", "words"), BAD_CALLS)
async def test_a_bad_argument_is_refused_with_a_message_that_names_it(
    call: Callable[[], Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as refused:
        result = call()
        if inspect.isawaitable(result):
            await result
    message = str(refused.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert len(message) < 400, "a message is meant to be read"


def test_a_huge_argument_is_quoted_briefly() -> None:
    with pytest.raises(TypeError) as refused:
        EventType(["x" * 1_000_000])
    assert len(str(refused.value)) < 200
