"""NatsMessageBusAdapter and NatsMessageQueueAdapter on a real NATS JetStream server (docs/api.md §15).

One server per run (``nats_server_url``, tests/conftest.py); every test names its channels afresh,
so no test sees another's streams or consumers. The adapters of one test stand for processes: two
adapters on one channel share its stream and, when they register the same handlers, its durable
consumers, exactly as two runs of one program would. One test runs a worker in a real subprocess
and kills it with SIGKILL mid-handler.

Waits are generous (``anyio.fail_after``) and timing is only ever checked from below: a loaded
machine may be slow, never early.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import nats
import nats.errors
import nats.js.errors
import pytest

from castore_edu import (
    AggregateExistsMessage,
    ConnectedEventStore,
    EventDetail,
    EventType,
    InMemoryMessageBusAdapter,
    NotificationMessage,
    NotificationMessageBus,
    NotificationMessageQueue,
    ServerUnavailableError,
    StateCarryingMessage,
    StateCarryingMessageBus,
    TaskContext,
)
from castore_edu.messaging.nats_bus import NatsMessageBusAdapter, handler_name
from castore_edu.messaging.nats_jetstream import (
    JetStreamChannelAdapter,
    UnansweredDeliveriesError,
    describe_servers,
    message_id,
    token,
)
from castore_edu.messaging.nats_queue import NatsMessageQueueAdapter
from castore_edu.messaging.wire import decode_message, encode_message
from castore_edu.testing.servers import NatsServer, free_port
from tests.fixtures_pokemon import DEFAULT_CONTEXT, Recorder, appeared_message, caught_message, pokemons_store
from tests.pokemon import PIKACHU_APPEARED, PokemonAggregate, pokemons_reducer

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]
WAIT = 30  # seconds: the longest any wait of this file may take before the test fails

game_started = NotificationMessage(
    "TRAINERS", EventDetail(aggregate_id="ash", version=1, type="GAME_STARTED", timestamp="2020")
)
pikachu_exists = AggregateExistsMessage("POKEMONS", "pikachu1", "2022-01-01T00:00:00.000Z")
pikachu_state = StateCarryingMessage("POKEMONS", PIKACHU_APPEARED, pokemons_reducer(None, PIKACHU_APPEARED))


def replay_context(attempt: int = 1, left: int = 2) -> TaskContext:
    return TaskContext(attempt=attempt, retry_attempts_left=left, replay=True)


@pytest.fixture
def channel_id() -> str:
    """A channel id no other test (nor an earlier run on a shared server) has used."""
    return f"test channel {uuid.uuid4().hex[:10]}"


@pytest.fixture
async def opened(nats_server_url: str, channel_id: str) -> AsyncIterator[Callable[..., Any]]:
    """``opened(NatsMessageBusAdapter, **settings)``: an adapter on this test's channel and server,
    closed when the test ends."""
    adapters: list[JetStreamChannelAdapter] = []

    def make(cls: type[JetStreamChannelAdapter], **settings: Any) -> Any:
        settings.setdefault("servers", nats_server_url)
        settings.setdefault("message_channel_id", channel_id)
        adapter = cls(**settings)
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        await adapter.close()


async def eventually(condition: Callable[[], bool], seconds: float = WAIT) -> None:
    """Wait until ``condition()`` holds (or fail after ``seconds``)."""
    with anyio.fail_after(seconds):
        while not condition():
            await asyncio.sleep(0.02)


async def consumers_ready(adapter: JetStreamChannelAdapter) -> None:
    """The adapter's consumers exist on the server and its readers run."""
    with anyio.fail_after(WAIT):
        await adapter.wait_idle()


# -- messages on the wire ---------------------------------------------------------------------


async def test_the_three_kinds_of_message_come_back_equal(opened: Any) -> None:
    adapter, everything = opened(NatsMessageBusAdapter), Recorder()
    adapter.on({"on_replay": True}, everything)
    unicode_event = EventDetail(
        aggregate_id="flabébé", version=7, type="ÉVOLUÉ", timestamp="2024", payload={"a": [1, {"b": None}]}
    )
    sent = [
        appeared_message,
        NotificationMessage("POKEMONS", unicode_event),
        StateCarryingMessage("POKEMONS", caught_message.event, {"status": "caught", "level": 42}),
        pikachu_exists,
        AggregateExistsMessage("POKEMONS", "mew"),
    ]
    for message in sent:
        await adapter.publish_message(message)
    with anyio.fail_after(WAIT):
        await adapter.wait_idle()
    assert everything.deliveries == [(message, DEFAULT_CONTEXT) for message in sent]


async def test_a_dataclass_aggregate_is_rebuilt_by_the_receivers_decoder(opened: Any) -> None:
    # Two programs read the channel: handlers of different names, so consumers of their own.
    async def keep_data(message: Any, context: TaskContext) -> None:
        as_data.append(message)

    async def keep_dataclass(message: Any, context: TaskContext) -> None:
        as_dataclass.append(message)

    as_data: list[Any] = []
    as_dataclass: list[Any] = []
    opened(NatsMessageBusAdapter).on({}, keep_data)
    opened(NatsMessageBusAdapter, decode_aggregate=lambda data: PokemonAggregate(**data)).on(
        {}, keep_dataclass
    )

    await opened(NatsMessageBusAdapter).publish_message(pikachu_state)
    await eventually(lambda: bool(as_data and as_dataclass))
    assert as_dataclass == [pikachu_state]
    assert isinstance(as_dataclass[0].aggregate, PokemonAggregate)
    as_dict = dataclasses.asdict(pikachu_state.aggregate)
    assert as_data == [dataclasses.replace(pikachu_state, aggregate=as_dict)]


def test_the_wire_refuses_what_json_cannot_carry_and_bytes_it_never_wrote() -> None:
    with pytest.raises(TypeError, match="cannot cross the wire"):
        encode_message(
            NotificationMessage("POKEMONS", EventDetail(aggregate_id="p", version=1, type="T", payload={1j}))
        )
    telegram = b'{"kind": "telegram", "event_store_id": "P", "event": {"aggregate_id": "p", "version": 1, "type": "T"}}'
    for garbage in [b"not json", telegram, b'{"kind": "notification"}', b"[]"]:
        with pytest.raises(ValueError, match="not a castore_edu message"):
            decode_message(garbage)
    state = StateCarryingMessage("POKEMONS", PIKACHU_APPEARED, None)
    assert decode_message(encode_message(state), lambda data: 1 / 0) == state  # None is not decoded


# -- names --------------------------------------------------------------------------------------


def test_names_keep_nats_characters_and_stay_apart() -> None:
    assert token("POKEMONS") == "POKEMONS"
    assert token("pokemon-events_2") == "pokemon-events_2"
    dotted, spaced = token("a.b"), token("a b")
    assert dotted.startswith("a_b_") and spaced.startswith("a_b_") and dotted != spaced
    assert token("") != "" and "." not in token("x.>*")
    adapter = NatsMessageBusAdapter(message_channel_id="pokemon events")
    assert adapter.stream == f"castore-bus-{token('pokemon events')}"
    assert adapter.subject(appeared_message, replay=True) == (
        f"castore.bus.{token('pokemon events')}.replay.POKEMONS.APPEARED"
    )
    assert (
        adapter.subject(pikachu_exists, replay=False)
        == f"castore.bus.{token('pokemon events')}.live.POKEMONS"
    )
    queue = NatsMessageQueueAdapter(message_channel_id="jobs")
    assert queue.stream == "castore-queue-jobs"
    assert repr(queue) == "NatsMessageQueueAdapter('jobs', NATS at 127.0.0.1:4222)"


def test_the_server_is_described_without_secrets() -> None:
    assert describe_servers("nats://127.0.0.1:4222") == "NATS at 127.0.0.1:4222"
    assert describe_servers(["nats://me:secret@10.0.0.1", "127.0.0.2:4333"]) == (
        "NATS at 10.0.0.1:4222, 127.0.0.2:4333"
    )


def test_handlers_are_named_by_what_they_are() -> None:
    class Projection:
        async def handle(self, message: Any, context: TaskContext) -> None: ...

    async def react(message: Any, context: TaskContext) -> None: ...

    import functools

    assert handler_name(Projection().handle).endswith("Projection.handle")
    assert handler_name(functools.partial(react)).endswith("<locals>.react")
    assert handler_name(Recorder()) == "tests.fixtures_pokemon.Recorder"


def test_only_live_event_carrying_messages_have_a_broker_id() -> None:
    assert message_id(appeared_message, replay=False) == "POKEMONS#pikachu1#1"
    assert message_id(appeared_message, replay=True) is None
    assert message_id(pikachu_exists, replay=False) is None


# -- filters: the in-memory bus's, message for message ---------------------------------------------

PATTERNS = [
    {},
    {"event_store_id": "POKEMONS"},
    {"event_type": "CAUGHT_BY_TRAINER"},
    {"event_store_id": "TRAINERS", "event_type": "GAME_STARTED"},
    {"event_store_id": "POKEMONS", "on_replay": True},
    {"event_type": "APPEARED", "on_replay": True},
]


async def test_filters_select_exactly_what_the_in_memory_bus_selects(opened: Any) -> None:
    nats_bus, in_memory = opened(NatsMessageBusAdapter), InMemoryMessageBusAdapter()
    on_nats = [Recorder() for _ in PATTERNS]
    in_mem = [Recorder() for _ in PATTERNS]
    for pattern, nats_handler, memory_handler in zip(PATTERNS, on_nats, in_mem, strict=True):
        nats_bus.on(pattern, nats_handler)
        in_memory.on(pattern, memory_handler)
    several = Recorder()  # one handler, two overlapping patterns: still once per message
    nats_bus.on({"event_store_id": "POKEMONS"}, several)
    nats_bus.on({"event_type": "APPEARED"}, several)

    for adapter in (nats_bus, in_memory):
        for replay in (False, True):
            for message in (appeared_message, caught_message, game_started, pikachu_exists):
                await adapter.publish_message(message, replay=replay)
        with anyio.fail_after(WAIT):
            await adapter.wait_idle()
    for nats_handler, memory_handler in zip(on_nats, in_mem, strict=True):
        assert nats_handler.deliveries == memory_handler.deliveries
    assert [len(handler.calls) for handler in on_nats] == [4, 3, 1, 1, 6, 2]
    assert several.messages == [appeared_message, caught_message, pikachu_exists]


def test_bad_filters_handlers_settings_and_workers_are_refused_as_in_memory() -> None:
    adapter = NatsMessageBusAdapter(message_channel_id="c")

    def not_async(message: Any, context: TaskContext) -> None: ...

    with pytest.raises(ValueError, match="Unknown filter pattern keys"):
        adapter.on({"eventStoreId": "POKEMONS"}, Recorder())
    with pytest.raises(TypeError, match="filter pattern is a mapping"):
        adapter.on("POKEMONS", Recorder())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="handler must be an async function"):
        adapter.on({}, not_async)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r'use its \.type, e\.g\. \{"event_type": "APPEARED"\}'):
        adapter.on({"event_type": EventType("APPEARED")}, Recorder())  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="The on_replay filter value must be True or False"):
        adapter.on({"on_replay": 1}, Recorder())
    for bad_limit in (0, -1, "5"):
        with pytest.raises(ValueError, match="Invalid handler_timeout"):
            NatsMessageQueueAdapter(handler_timeout=bad_limit)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="worker must be an async function"):
        NatsMessageQueueAdapter(worker=not_async)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry_attempts"):
        NatsMessageQueueAdapter(retry_attempts=-1)
    for bad in (0, -1, True, "5"):
        with pytest.raises(ValueError, match="ack_wait"):
            NatsMessageBusAdapter(ack_wait=bad)  # type: ignore[arg-type]
    for bad in (0, 6, True, 3.0):
        with pytest.raises(ValueError, match="Invalid replicas, please select an int from 1 to 5"):
            NatsMessageQueueAdapter(replicas=bad)  # type: ignore[arg-type]


async def test_an_adapter_must_know_its_channel_and_attach_to_tells_it(nats_server_url: str) -> None:
    with pytest.raises(ValueError, match=r"attach_to\(channel\), or give message_channel_id"):
        await NatsMessageBusAdapter(servers=nats_server_url).publish_message(appeared_message)
    bus = NotificationMessageBus(message_bus_id="pokemon events", source_event_stores=[pokemons_store()])
    adapter = NatsMessageBusAdapter.attach_to(bus, servers=nats_server_url)
    assert bus.message_channel_adapter is adapter and adapter.message_channel_id == "pokemon events"


# -- durability: messages wait for their consumers --------------------------------------------------


async def test_a_listener_that_was_closed_gets_what_was_published_meanwhile(opened: Any) -> None:
    first_run = Recorder()
    listener = opened(NatsMessageBusAdapter)
    listener.on({}, first_run)
    await consumers_ready(listener)
    await listener.close()  # the consumer process stops; its durable consumer stays on the server

    publisher = opened(NatsMessageBusAdapter)
    await publisher.publish_messages([appeared_message, caught_message])

    second_run = Recorder()
    restarted = opened(NatsMessageBusAdapter)  # the same program again: the same handler, first
    restarted.on({}, second_run)
    await eventually(lambda: len(second_run.calls) == 2)
    assert second_run.deliveries == [(appeared_message, DEFAULT_CONTEXT), (caught_message, DEFAULT_CONTEXT)]
    assert first_run.calls == []


async def test_a_new_listener_starts_at_the_first_message_the_channel_keeps(opened: Any) -> None:
    publisher = opened(NatsMessageBusAdapter)
    await publisher.publish_message(appeared_message)  # nobody listens yet
    late = Recorder()
    opened(NatsMessageBusAdapter).on({}, late)
    await eventually(lambda: bool(late.calls))
    assert late.deliveries == [(appeared_message, DEFAULT_CONTEXT)]


async def test_a_queue_keeps_its_messages_until_a_worker_is_set(opened: Any) -> None:
    queue = opened(NatsMessageQueueAdapter)
    await queue.publish_messages([appeared_message, caught_message])
    with anyio.fail_after(WAIT):
        await queue.wait_idle()  # no worker here: nothing to wait for
    worker = Recorder()
    queue.worker = worker
    assert queue.worker is worker
    with anyio.fail_after(WAIT):
        await queue.wait_idle()
    assert worker.deliveries == [(appeared_message, DEFAULT_CONTEXT), (caught_message, DEFAULT_CONTEXT)]


async def test_a_message_that_arrives_as_the_worker_is_unset_goes_back_at_once(
    opened: Any, nats_server_url: str
) -> None:
    # The race itself cannot be timed from outside, so the reader's step is taken by hand on a
    # message fetched from the queue's own consumer.
    queue, worker = opened(NatsMessageQueueAdapter, worker=Recorder()), Recorder()
    await consumers_ready(queue)
    queue.worker = None
    await asyncio.sleep(0.2)  # the reader withdraws its request
    await queue.publish_message(appeared_message)
    client = await nats.connect(nats_server_url)
    try:
        subscription = await client.jetstream().pull_subscribe_bind(durable="worker", stream=queue.stream)
        [msg] = await subscription.fetch(1, timeout=WAIT)
        await queue._deliver("worker", msg)  # no worker: a NAK, not an ack
        await subscription.unsubscribe()
    finally:
        await client.close()
    queue.worker = worker
    with anyio.fail_after(WAIT):
        await queue.wait_idle()
    assert worker.contexts == [TaskContext(attempt=2, retry_attempts_left=1, replay=False)]


async def test_unsetting_the_worker_stops_reading_and_the_next_worker_takes_the_rest(opened: Any) -> None:
    queue, first, second = opened(NatsMessageQueueAdapter), Recorder(), Recorder()
    queue.worker = first
    await queue.publish_message(appeared_message)
    with anyio.fail_after(WAIT):
        await queue.wait_idle()
    queue.worker = None
    await asyncio.sleep(0.2)  # the reader withdraws its request for a message
    await queue.publish_message(caught_message)
    await asyncio.sleep(0.3)
    assert first.messages == [appeared_message]
    queue.worker = second
    with anyio.fail_after(WAIT):
        await queue.wait_idle()
    # (its attempt is 1 unless the message raced the withdrawal: then it was handed out once unread)
    assert second.messages == [caught_message]


async def test_workers_in_two_processes_share_the_queue_each_message_once(opened: Any) -> None:
    one, two = Recorder(), Recorder()
    opened(NatsMessageQueueAdapter, worker=one)
    publisher = opened(NatsMessageQueueAdapter, worker=two)
    messages = [
        NotificationMessage(
            "POKEMONS", EventDetail(aggregate_id="pikachu1", version=version, type="LEVELLED_UP")
        )
        for version in range(1, 9)
    ]
    await publisher.publish_messages(messages)
    await eventually(lambda: len(one.calls) + len(two.calls) == len(messages))
    await asyncio.sleep(0.2)  # nothing more comes
    handled = one.messages + two.messages
    assert sorted(handled, key=lambda message: message.event.version) == messages


async def test_a_queue_worker_takes_one_message_at_a_time_in_order(opened: Any) -> None:
    log: list[str] = []

    async def slow_worker(message: NotificationMessage, context: TaskContext) -> None:
        log.append(f"start {message.event.version}")
        await asyncio.sleep(0.01)
        log.append(f"end {message.event.version}")

    queue = opened(NatsMessageQueueAdapter, worker=slow_worker)
    for version in (1, 2, 3):
        await queue.publish_message(
            NotificationMessage("POKEMONS", EventDetail(aggregate_id="p", version=version, type="T"))
        )
    with anyio.fail_after(WAIT):
        await queue.wait_idle()
    assert log == ["start 1", "end 1", "start 2", "end 2", "start 3", "end 3"]


# -- acknowledgements: only after the handler returns ----------------------------------------------

WORKER_SCRIPT = """
import asyncio, sys
from castore_edu.messaging.nats_queue import NatsMessageQueueAdapter

async def stuck(message, context):
    print("handling", context.attempt, flush=True)
    await asyncio.sleep(3600)  # killed long before it returns: no ack

async def main():
    NatsMessageQueueAdapter(servers=sys.argv[1], message_channel_id=sys.argv[2], worker=stuck, ack_wait=1.5)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_message_whose_worker_process_is_killed_mid_handler_is_delivered_again(
    opened: Any, nats_server_url: str, channel_id: str
) -> None:
    publisher = opened(NatsMessageQueueAdapter, ack_wait=1.5)
    await publisher.publish_message(appeared_message)
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, nats_server_url, channel_id],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), WAIT)
        assert line.split() == ["handling", "1"]
    finally:
        process.kill()  # SIGKILL: no cleanup, no answer to the server
        process.wait()
        if process.stdout is not None:
            process.stdout.close()

    worker = Recorder()
    publisher.worker = worker  # another process's worker, on the same shared consumer
    with anyio.fail_after(WAIT):
        await publisher.wait_idle()
    assert worker.deliveries == [
        (appeared_message, TaskContext(attempt=2, retry_attempts_left=1, replay=False))
    ]


async def test_a_listener_closed_mid_handler_leaves_the_message_unacknowledged(opened: Any) -> None:
    blocked = Recorder()
    listener = opened(NatsMessageBusAdapter, ack_wait=1)
    blocked.gate = asyncio.Event()  # never set: the handler never returns
    listener.on({}, blocked)
    await listener.publish_message(appeared_message)
    await eventually(lambda: bool(blocked.calls))
    await listener.close()

    again = Recorder()
    opened(NatsMessageBusAdapter, ack_wait=1).on({}, again)
    await eventually(lambda: bool(again.calls))
    assert again.contexts == [TaskContext(attempt=2, retry_attempts_left=1, replay=False)]


async def test_a_handler_slower_than_ack_wait_is_not_delivered_twice(opened: Any) -> None:
    async def slow(message: Any, context: TaskContext) -> None:
        calls.append(context)
        await asyncio.sleep(2.5)  # well past ack_wait: the reader keeps telling the server

    calls: list[TaskContext] = []
    adapter = opened(NatsMessageBusAdapter, ack_wait=1)
    adapter.on({}, slow)
    await adapter.publish_message(appeared_message)
    with anyio.fail_after(WAIT):
        await adapter.wait_idle()
    assert calls == [DEFAULT_CONTEXT]


async def test_deliveries_that_ran_out_unanswered_become_a_dead_letter(opened: Any) -> None:
    blocked = Recorder()
    blocked.gate = asyncio.Event()
    listener = opened(NatsMessageBusAdapter, ack_wait=1, retry_attempts=0)
    listener.on({}, blocked)
    await listener.publish_message(appeared_message)
    await eventually(lambda: bool(blocked.calls))
    await listener.close()

    never = Recorder()
    restarted = opened(NatsMessageBusAdapter, ack_wait=1, retry_attempts=0)
    restarted.on({}, never)
    await eventually(lambda: bool(restarted.dead_letters))
    [letter] = restarted.dead_letters
    assert (letter.message, letter.attempts, letter.handler) == (appeared_message, 1, never)
    assert isinstance(letter.error, UnansweredDeliveriesError)
    assert never.calls == []


# -- retries and dead letters ----------------------------------------------------------------------


async def test_a_failing_handler_is_retried_with_the_back_off_formula(opened: Any) -> None:
    adapter = opened(NatsMessageBusAdapter, retry_delay_ms=100, retry_backoff_rate=3)
    flaky, steady = Recorder(failures=2), Recorder()
    adapter.on({}, flaky)
    adapter.on({}, steady)
    await adapter.publish_message(appeared_message)
    with anyio.fail_after(WAIT):
        await adapter.wait_idle()
    assert flaky.contexts == [
        DEFAULT_CONTEXT,
        TaskContext(attempt=2, retry_attempts_left=1, replay=False),
        TaskContext(attempt=3, retry_attempts_left=0, replay=False),
    ]
    assert flaky.finished == [appeared_message]
    assert steady.contexts == [DEFAULT_CONTEXT]  # the other handler is not run again
    assert adapter.retry_delay_for(1) == 100 and adapter.retry_delay_for(2) == 300
    first_gap, second_gap = flaky.gaps()
    assert first_gap >= 0.09 and second_gap >= 0.27  # never early (a loaded machine may be late)
    assert adapter.dead_letters == []


async def test_a_replayed_message_keeps_replay_true_through_its_retries(opened: Any) -> None:
    adapter, flaky = opened(NatsMessageBusAdapter, retry_delay_ms=10), Recorder(failures=1)
    adapter.on({"on_replay": True}, flaky)
    await adapter.publish_message(appeared_message, replay=True)
    with anyio.fail_after(WAIT):
        await adapter.wait_idle()
    assert flaky.contexts == [replay_context(), replay_context(2, 1)]


async def test_a_message_that_always_fails_becomes_a_logged_dead_letter(
    opened: Any, caplog: pytest.LogCaptureFixture
) -> None:
    queue, worker = opened(NatsMessageQueueAdapter, retry_delay_ms=10), Recorder(failures=-1)
    queue.worker = worker
    with caplog.at_level(logging.ERROR, logger="castore_edu"):
        await queue.publish_message(caught_message)
        with anyio.fail_after(WAIT):
            await queue.wait_idle()
    [letter] = queue.dead_letters
    assert (letter.message, letter.attempts, letter.handler) == (caught_message, 3, worker)
    assert str(letter.error) == "failure #3"
    assert [call.context.attempt for call in worker.calls] == [1, 2, 3]
    assert "NatsMessageQueueAdapter gave up on" in caplog.text
    await asyncio.sleep(0.3)
    assert len(worker.calls) == 3  # terminated: the server does not hand it out again


def consume(adapter: JetStreamChannelAdapter, consumer: Recorder) -> None:
    """Make ``consumer`` the bus's handler of every live message, or the queue's worker."""
    if isinstance(adapter, NatsMessageBusAdapter):
        adapter.on({}, consumer)
    else:
        assert isinstance(adapter, NatsMessageQueueAdapter)
        adapter.worker = consumer


@pytest.mark.parametrize("kind", [NatsMessageBusAdapter, NatsMessageQueueAdapter])
async def test_a_consumer_that_raises_cancelled_error_is_retried_then_a_logged_dead_letter(
    opened: Any, kind: type[JetStreamChannelAdapter], caplog: pytest.LogCaptureFixture
) -> None:
    adapter, consumer = opened(kind, retry_delay_ms=10), Recorder(failures=-1, error=asyncio.CancelledError)
    consume(adapter, consumer)
    with caplog.at_level(logging.ERROR, logger="castore_edu"):
        await adapter.publish_message(appeared_message)
        with anyio.fail_after(WAIT):
            await adapter.wait_idle()
    assert [call.context.attempt for call in consumer.calls] == [1, 2, 3]
    [letter] = adapter.dead_letters
    assert (letter.message, letter.attempts, letter.handler) == (appeared_message, 3, consumer)
    assert isinstance(letter.error, asyncio.CancelledError)
    assert f"{kind.__name__} gave up on" in caplog.text


@pytest.mark.parametrize("kind", [NatsMessageBusAdapter, NatsMessageQueueAdapter])
async def test_a_redelivered_dead_letter_is_a_new_message_for_the_consumer_that_gave_up(
    opened: Any, kind: type[JetStreamChannelAdapter]
) -> None:
    adapter, fixed_later = opened(kind, retry_delay_ms=10), Recorder(failures=3)  # works from call 4
    consume(adapter, fixed_later)
    steady = Recorder()
    if isinstance(adapter, NatsMessageBusAdapter):
        adapter.on({}, steady)
    await adapter.publish_message(appeared_message)  # a live message: it has a broker id
    with anyio.fail_after(WAIT):
        await adapter.wait_idle()
    [letter] = adapter.dead_letters

    assert await adapter.redeliver_dead_letters() == [letter]
    assert adapter.dead_letters == []
    with anyio.fail_after(WAIT):
        await adapter.wait_idle()
    # Within the duplicate window, yet delivered: the copy carries no broker id. Its count is new.
    assert fixed_later.contexts[3:] == [DEFAULT_CONTEXT]
    assert fixed_later.finished == [appeared_message]
    if isinstance(adapter, NatsMessageBusAdapter):
        assert steady.messages == [appeared_message]  # the other listener acked the copy unread


async def test_a_redelivered_letter_that_fails_again_is_a_dead_letter_again(opened: Any) -> None:
    bus, broken, steady = opened(NatsMessageBusAdapter, retry_attempts=0), Recorder(failures=-1), Recorder()
    bus.on({"on_replay": True}, broken)
    bus.on({"on_replay": True}, steady)
    await bus.publish_message(appeared_message, replay=True)
    with anyio.fail_after(WAIT):
        await bus.wait_idle()
    [first] = bus.dead_letters
    assert first.replay is True

    assert await bus.redeliver_dead_letters() == [first]
    with anyio.fail_after(WAIT):
        await bus.wait_idle()
    [again] = bus.dead_letters
    assert again is not first
    assert (again.message, again.attempts, again.handler, again.replay) == (appeared_message, 1, broken, True)
    assert broken.contexts == [replay_context(left=0)] * 2
    assert steady.contexts == [replay_context(left=0)]  # addressed to the broken listener only


async def test_a_handler_slower_than_handler_timeout_is_naked_for_its_retry_not_left_to_ack_wait(
    opened: Any,
) -> None:
    async def hangs_the_first_time(message: Any, context: TaskContext) -> None:
        calls.append(context)
        if context.attempt == 1:
            await asyncio.sleep(3600)

    calls: list[TaskContext] = []
    adapter = opened(NatsMessageBusAdapter, ack_wait=60, handler_timeout=0.2, retry_delay_ms=10)
    adapter.on({}, hangs_the_first_time)
    await adapter.publish_message(appeared_message)
    with anyio.fail_after(WAIT):  # half of ack_wait: only a NAK can bring the message back this soon
        await adapter.wait_idle()
    assert calls == [DEFAULT_CONTEXT, TaskContext(attempt=2, retry_attempts_left=1, replay=False)]
    assert adapter.dead_letters == []


async def test_a_worker_that_always_outlasts_handler_timeout_becomes_a_timeout_dead_letter(
    opened: Any,
) -> None:
    worker = Recorder()
    worker.gate = asyncio.Event()  # never set: every delivery hangs
    queue = opened(NatsMessageQueueAdapter, handler_timeout=0.2, retry_attempts=1, retry_delay_ms=10)
    queue.worker = worker
    await queue.publish_message(caught_message)
    with anyio.fail_after(WAIT):
        await queue.wait_idle()
    [letter] = queue.dead_letters
    assert (letter.message, letter.attempts, letter.handler) == (caught_message, 2, worker)
    assert isinstance(letter.error, TimeoutError)
    assert "took longer than handler_timeout=0.2 s" in str(letter.error)
    assert worker.gaps()[0] >= 0.2  # the first delivery was given its whole time


async def test_wait_idle_with_a_timeout_names_the_handler_still_running(opened: Any) -> None:
    adapter, handler = opened(NatsMessageBusAdapter), Recorder()
    handler.gate = asyncio.Event()  # the handler hangs until we open it
    adapter.on({}, handler)
    await adapter.publish_message(appeared_message)
    await eventually(lambda: bool(handler.calls))
    with pytest.raises(TimeoutError) as raised:
        await adapter.wait_idle(timeout=0.2)
    assert str(raised.value) == (
        "NatsMessageBusAdapter not idle after 0.2 s (wait_idle timeout); still running: "
        "tests.fixtures_pokemon.Recorder on POKEMONS pikachu1 version 1 (APPEARED), attempt 1"
    )
    handler.gate.set()
    with anyio.fail_after(WAIT):
        await adapter.wait_idle(timeout=WAIT)
    assert handler.finished == [appeared_message]


async def test_bytes_that_are_no_message_become_a_dead_letter_at_once(
    opened: Any, nats_server_url: str
) -> None:
    adapter, handler = opened(NatsMessageBusAdapter), Recorder()
    adapter.on({}, handler)
    await consumers_ready(adapter)
    client = await nats.connect(nats_server_url)
    try:
        live_subject = adapter.subject(appeared_message, replay=False)
        await client.jetstream().publish(live_subject, b"a telegram", stream=adapter.stream)
    finally:
        await client.close()
    await eventually(lambda: bool(adapter.dead_letters))
    [letter] = adapter.dead_letters
    assert (letter.message, letter.attempts, letter.handler) == (b"a telegram", 1, handler)
    assert isinstance(letter.error, ValueError)
    assert handler.calls == []
    assert await adapter.redeliver_dead_letters() == []  # sending it again could not help:
    assert adapter.dead_letters == [letter]  # it stays


# -- duplicates ----------------------------------------------------------------------------------


async def test_a_live_message_published_twice_reaches_its_consumers_once(opened: Any) -> None:
    bus, handler = opened(NatsMessageBusAdapter), Recorder()
    bus.on({}, handler)
    relay_again = opened(NatsMessageBusAdapter)  # e.g. a relay that crashed and publishes again
    await bus.publish_message(appeared_message)
    await relay_again.publish_message(appeared_message)
    await bus.publish_message(caught_message)  # another version: another id
    with anyio.fail_after(WAIT):
        await bus.wait_idle()
    assert handler.messages == [appeared_message, caught_message]


async def test_no_other_stream_can_take_the_channels_subjects(opened: Any, nats_server_url: str) -> None:
    """Why a publish needs no ``stream=`` guard: once the channel's stream exists, JetStream
    refuses any other stream whose subjects overlap it, so a message on the channel's subjects can
    only land in the channel's stream."""
    bus = opened(NatsMessageBusAdapter)
    await bus.publish_message(appeared_message)  # the stream exists now
    client = await nats.connect(nats_server_url)
    try:
        with pytest.raises(nats.js.errors.BadRequestError, match="overlap"):
            await client.jetstream().add_stream(
                name="squatter", subjects=[bus.subject(caught_message, replay=False)]
            )
    finally:
        await client.close()


async def test_replayed_messages_are_never_dropped_as_duplicates(opened: Any) -> None:
    bus, handler = opened(NatsMessageBusAdapter), Recorder()
    bus.on({"on_replay": True}, handler)
    await bus.publish_message(appeared_message)
    await bus.publish_messages([appeared_message, appeared_message], replay=True)
    for _ in range(2):
        await bus.publish_message(pikachu_exists)  # no id: every announcement is delivered
    with anyio.fail_after(WAIT):
        await bus.wait_idle()
    assert handler.deliveries == [
        (appeared_message, DEFAULT_CONTEXT),
        (appeared_message, replay_context()),
        (appeared_message, replay_context()),
        (pikachu_exists, DEFAULT_CONTEXT),
        (pikachu_exists, DEFAULT_CONTEXT),
    ]


# -- wait_idle, channels, loops, servers ----------------------------------------------------------


async def test_wait_idle_returns_only_once_every_published_message_is_handled(opened: Any) -> None:
    async def slow(message: Any, context: TaskContext) -> None:
        await asyncio.sleep(0.2)
        done.append(message)

    done: list[Any] = []
    bus = opened(NatsMessageBusAdapter)
    with anyio.fail_after(WAIT):
        await bus.wait_idle()  # no listener, nothing published: at once
    bus.on({}, slow)
    await bus.publish_messages([appeared_message, caught_message])
    with anyio.fail_after(WAIT):
        await bus.wait_idle()
    assert done == [appeared_message, caught_message]


async def test_a_connected_event_store_publishes_through_a_nats_bus(
    nats_server_url: str, channel_id: str
) -> None:
    store = pokemons_store()
    bus = StateCarryingMessageBus(message_bus_id=channel_id, source_event_stores=[store])
    adapter = NatsMessageBusAdapter.attach_to(
        bus, servers=nats_server_url, decode_aggregate=lambda data: PokemonAggregate(**data)
    )
    handler = Recorder()
    adapter.on({"event_store_id": "POKEMONS"}, handler)
    try:
        await ConnectedEventStore(store, bus).push_event(PIKACHU_APPEARED)
        with anyio.fail_after(WAIT):
            await adapter.wait_idle()
    finally:
        await adapter.close()
    [message] = handler.messages
    assert message.aggregate == pokemons_reducer(None, PIKACHU_APPEARED)


def test_one_adapter_serves_two_consecutive_event_loops(nats_server_url: str, channel_id: str) -> None:
    queue = NatsMessageQueueAdapter(servers=nats_server_url, message_channel_id=channel_id)
    worker = Recorder()
    queue.worker = worker  # outside any loop: reading starts at the next call

    async def publish_and_wait(message: Any) -> None:
        await queue.publish_message(message)
        await asyncio.wait_for(queue.wait_idle(), WAIT)

    asyncio.run(publish_and_wait(appeared_message))  # this loop ends without close()
    asyncio.run(publish_and_wait(caught_message))
    asyncio.run(queue.close())
    # each delivered once: the first loop's connection was hung up, not left holding a request
    assert worker.deliveries == [(appeared_message, DEFAULT_CONTEXT), (caught_message, DEFAULT_CONTEXT)]


async def test_a_server_that_is_not_there_is_reported_promptly(channel_id: str) -> None:
    port = free_port()
    for adapter in (
        NatsMessageBusAdapter(servers=f"nats://127.0.0.1:{port}", message_channel_id=channel_id),
        NatsMessageQueueAdapter(servers=[f"127.0.0.1:{port}"], message_channel_id=channel_id),
    ):
        with anyio.fail_after(15), pytest.raises(ServerUnavailableError) as raised:
            await adapter.publish_message(appeared_message)
        assert raised.value.server == f"NATS at 127.0.0.1:{port}"
        assert f"Cannot reach NATS at 127.0.0.1:{port}" in str(raised.value)
        await adapter.close()
    with anyio.fail_after(15), pytest.raises(ServerUnavailableError):
        await adapter.wait_idle()


async def test_a_lone_server_refuses_a_replicated_stream_in_its_own_words(opened: Any) -> None:
    """``replicas`` above 1 needs a cluster (tests/test_nats_cluster.py); one server says so."""
    bus = opened(NatsMessageBusAdapter, replicas=3)
    with pytest.raises(nats.js.errors.ServerError, match="replicas > 1 not supported in non-clustered mode"):
        await bus.publish_message(appeared_message)


async def test_the_servers_answers_stay_as_they_are_a_lost_server_is_unavailable(
    opened: Any, nats_server_url: str, channel_id: str
) -> None:
    bus = opened(NatsMessageBusAdapter)
    client = await nats.connect(nats_server_url)
    try:  # someone else's stream already takes the channel's subjects
        await client.jetstream().add_stream(
            name=f"squatter-{uuid.uuid4().hex}", subjects=[f"castore.bus.{token(channel_id)}.>"]
        )
        with pytest.raises(nats.js.errors.BadRequestError):
            await bus.publish_message(appeared_message)
    finally:
        await client.close()
    with (
        pytest.raises(ServerUnavailableError, match=r"Cannot reach NATS at .*: nats: timeout"),
        bus._server_errors(),
    ):
        raise nats.errors.TimeoutError


async def test_a_listener_registered_while_the_server_is_down_warns_and_starts_later(
    channel_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    with NatsServer() as server:
        server.stop()
        adapter = NatsMessageBusAdapter(servers=server.url, message_channel_id=channel_id)
        with caplog.at_level(logging.WARNING, logger="castore_edu"):
            adapter.on({}, Recorder())
            await eventually(lambda: "could not start reading" in caplog.text)
        server.start()
        handler = Recorder()
        adapter.on({"on_replay": True}, handler)
        await adapter.publish_message(appeared_message)
        with anyio.fail_after(WAIT):
            await adapter.wait_idle()
        assert handler.messages == [appeared_message]
        await adapter.close()


async def test_readers_carry_on_after_the_server_restarts(channel_id: str) -> None:
    with NatsServer() as server:
        queue, worker = NatsMessageQueueAdapter(servers=server.url, message_channel_id=channel_id), Recorder()
        queue.worker = worker
        await queue.publish_message(appeared_message)
        with anyio.fail_after(WAIT):
            await queue.wait_idle()
        server.stop()
        await asyncio.sleep(3)  # longer than nats-py's own reconnection attempts
        server.start()
        with anyio.fail_after(WAIT):
            await queue.publish_message(caught_message)
            await queue.wait_idle()
        assert worker.messages == [appeared_message, caught_message]
        await queue.close()


async def test_queue_channels_carry_messages_through_the_adapter(
    nats_server_url: str, channel_id: str
) -> None:
    queue = NotificationMessageQueue(message_queue_id=channel_id, source_event_stores=[pokemons_store()])
    worker = Recorder()
    adapter = NatsMessageQueueAdapter.attach_to(queue, servers=nats_server_url, worker=worker)
    try:
        await queue.publish_message(appeared_message)
        with anyio.fail_after(WAIT):
            await adapter.wait_idle()
    finally:
        await adapter.close()
    assert worker.deliveries == [(appeared_message, DEFAULT_CONTEXT)]
