"""InMemoryMessageBusAdapter: Castore's in-memory bus behaviour, and our deviations (docs/api.md §8)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import re

import anyio
import pytest

from castore_edu.core.events import EventDetail, EventType
from castore_edu.messaging.channels import NotificationMessageBus
from castore_edu.messaging.delivery import DeadLetter, TaskContext, round_half_up
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter
from castore_edu.messaging.messages import AggregateExistsMessage, NotificationMessage
from tests.fixtures_pokemon import (
    DEFAULT_CONTEXT,
    Recorder,
    appeared_message,
    blueprint_stores,
    caught_message,
    pikachu_appeared,
    pokemons_store,
    publish_all,
    ratios,
)

pytestmark = pytest.mark.anyio
WAIT = 30  # seconds: the longest any wait of this file may take before the test fails

game_started_message = NotificationMessage(
    "TRAINERS", EventDetail(aggregate_id="ash", version=1, type="GAME_STARTED", timestamp="2020")
)


# -- filters and fan-out ------------------------------------------------------------------------


async def test_publishing_without_handlers_does_nothing() -> None:
    await publish_all(InMemoryMessageBusAdapter(), appeared_message)


async def test_store_and_type_pattern_selects_that_event_type() -> None:
    adapter, h1 = InMemoryMessageBusAdapter(), Recorder()
    adapter.on({"event_store_id": "POKEMONS", "event_type": "APPEARED"}, h1)
    await publish_all(adapter, appeared_message, caught_message)
    assert h1.deliveries == [(appeared_message, DEFAULT_CONTEXT)]


async def test_a_handler_with_several_patterns_runs_once_per_message() -> None:
    adapter, h1 = InMemoryMessageBusAdapter(), Recorder()
    adapter.on({"event_store_id": "POKEMONS", "event_type": "APPEARED"}, h1)
    adapter.on({"event_store_id": "POKEMONS", "event_type": "CAUGHT_BY_TRAINER"}, h1)
    await publish_all(adapter, caught_message)
    assert h1.messages == [caught_message]
    adapter.on({"event_store_id": "POKEMONS"}, h1)
    await publish_all(adapter, appeared_message)  # matches two of its patterns
    assert h1.messages == [caught_message, appeared_message]


async def test_bound_methods_are_the_same_handler() -> None:
    class Projection:
        def __init__(self) -> None:
            self.seen: list[object] = []

        async def handle(self, message: object, context: TaskContext) -> None:
            self.seen.append(message)

    projection, adapter = Projection(), InMemoryMessageBusAdapter()
    adapter.on({"event_type": "APPEARED"}, projection.handle)
    adapter.on({"event_store_id": "POKEMONS"}, projection.handle)  # a new bound-method object, equal
    await publish_all(adapter, appeared_message)
    assert projection.seen == [appeared_message]


async def test_replayed_messages_reach_only_handlers_that_ask_for_them() -> None:
    adapter, live_only, h1, h2 = InMemoryMessageBusAdapter(), Recorder(), Recorder(), Recorder()
    adapter.on({"event_store_id": "POKEMONS"}, live_only)
    adapter.on({"event_store_id": "POKEMONS", "on_replay": True}, h1)
    adapter.on({"event_store_id": "POKEMONS", "event_type": "CAUGHT_BY_TRAINER", "on_replay": True}, h2)
    await publish_all(adapter, caught_message, replay=True)
    replay_context = TaskContext(attempt=1, retry_attempts_left=2, replay=True)
    assert live_only.calls == []
    assert h1.deliveries == [(caught_message, replay_context)]
    assert h2.deliveries == [(caught_message, replay_context)]
    await publish_all(adapter, caught_message)  # on_replay=True also receives real-time messages
    assert [c.context.replay for c in h1.calls] == [True, False]
    assert [c.context.replay for c in live_only.calls] == [False]


async def test_empty_pattern_matches_every_real_time_message() -> None:
    adapter, h1, h2 = InMemoryMessageBusAdapter(), Recorder(), Recorder()
    adapter.on({"event_store_id": "POKEMONS", "event_type": "APPEARED"}, h1)
    adapter.on({}, h2)
    await publish_all(adapter, appeared_message, game_started_message)
    assert h1.deliveries == [(appeared_message, DEFAULT_CONTEXT)]
    assert h2.messages == [appeared_message, game_started_message]


async def test_handler_for_other_patterns_is_not_called() -> None:
    adapter, h3 = InMemoryMessageBusAdapter(), Recorder()
    adapter.on({"event_store_id": "POKEMONS", "event_type": "CAUGHT_BY_TRAINER"}, h3)
    adapter.on({"event_store_id": "BATTLES"}, h3)
    await publish_all(adapter, appeared_message)
    assert h3.calls == []


async def test_publish_messages_publishes_each_message() -> None:
    adapter, h1, h2 = InMemoryMessageBusAdapter(), Recorder(), Recorder()
    adapter.on({"event_type": "APPEARED"}, h1)
    adapter.on({"event_type": "CAUGHT_BY_TRAINER"}, h2)

    await adapter.publish_messages([appeared_message] * 3)
    await adapter.wait_idle()
    assert h1.messages == [appeared_message] * 3
    assert h2.calls == []


async def test_event_type_alone_matches_that_type_in_any_store() -> None:
    # Deviation: Castore's bus matches everything when event_type comes without event_store_id.
    adapter, handler = InMemoryMessageBusAdapter(), Recorder()
    adapter.on({"event_type": "APPEARED"}, handler)
    trainers_appeared = NotificationMessage("TRAINERS", pikachu_appeared)
    await publish_all(adapter, appeared_message, caught_message, trainers_appeared)
    assert handler.messages == [appeared_message, trainers_appeared]


async def test_aggregate_exists_messages_never_match_an_event_type() -> None:
    adapter, by_type, by_store = InMemoryMessageBusAdapter(), Recorder(), Recorder()
    adapter.on({"event_store_id": "POKEMONS", "event_type": "APPEARED"}, by_type)
    adapter.on({"event_store_id": "POKEMONS"}, by_store)
    exists = AggregateExistsMessage("POKEMONS", "pikachu1", "2022")
    await publish_all(adapter, exists)
    assert by_type.calls == []
    assert by_store.messages == [exists]


# -- fire and forget --------------------------------------------------------------------------


async def test_every_matching_handler_has_started_when_publish_returns() -> None:
    adapter, first, second = InMemoryMessageBusAdapter(), Recorder(), Recorder()
    adapter.on({}, first)
    adapter.on({}, second)

    first.gate = second.gate = asyncio.Event()  # the handlers block until we open it
    await adapter.publish_message(appeared_message)
    started = (len(first.calls), len(second.calls))
    finished = (len(first.finished), len(second.finished))
    first.gate.set()
    await adapter.wait_idle()
    assert (started, finished) == ((1, 1), (0, 0))
    assert first.finished == second.finished == [appeared_message]


async def test_attach_to_makes_the_adapter_the_bus_adapter() -> None:
    pokemons, trainers = blueprint_stores()
    bus = NotificationMessageBus(message_bus_id="b", source_event_stores=[pokemons, trainers])
    adapter = InMemoryMessageBusAdapter.attach_to(bus, retry_attempts=1)
    assert bus.message_channel_adapter is adapter
    assert adapter.retry_attempts == 1
    handler = Recorder()
    adapter.on({}, handler)

    await bus.publish_message(appeared_message)
    await adapter.wait_idle()
    assert handler.deliveries == [
        (appeared_message, TaskContext(attempt=1, retry_attempts_left=1, replay=False))
    ]


def test_an_adapter_made_outside_a_loop_works_in_several_loops() -> None:
    adapter, handler = InMemoryMessageBusAdapter(retry_delay_ms=1), Recorder(failures=1)
    adapter.on({}, handler)
    asyncio.run(publish_all(adapter, appeared_message))
    asyncio.run(publish_all(adapter, caught_message))
    assert handler.finished == [appeared_message, caught_message]
    assert [c.context.attempt for c in handler.calls] == [1, 2, 1]


# -- retries and dead letters -----------------------------------------------------------------


async def test_only_the_failing_handler_is_retried_with_growing_delays() -> None:
    adapter = InMemoryMessageBusAdapter(retry_attempts=3, retry_delay_ms=40, retry_backoff_rate=1.5)
    failing, steady = Recorder(failures=3), Recorder()
    adapter.on({}, failing)
    adapter.on({}, steady)
    await publish_all(adapter, appeared_message)
    assert [(c.context.attempt, c.context.retry_attempts_left) for c in failing.calls] == [
        (1, 3),
        (2, 2),
        (3, 1),
        (4, 0),
    ]
    assert failing.finished == [appeared_message]
    assert steady.messages == [appeared_message]
    assert ratios(failing.gaps()) == [1, pytest.approx(1.5, rel=0.25), pytest.approx(2.25, rel=0.25)]
    assert adapter.dead_letters == []


async def test_a_handler_that_always_fails_ends_as_a_dead_letter(caplog: pytest.LogCaptureFixture) -> None:
    adapter, handler = InMemoryMessageBusAdapter(retry_delay_ms=2), Recorder(failures=-1)
    adapter.on({}, handler)
    with caplog.at_level(logging.ERROR, logger="castore_edu"):
        await publish_all(adapter, appeared_message)  # returns: wait_idle does not hang on a lost cause
    assert [(c.context.attempt, c.context.retry_attempts_left) for c in handler.calls] == [
        (1, 2),
        (2, 1),
        (3, 0),
    ]
    [dead_letter] = adapter.dead_letters
    assert dead_letter == DeadLetter(appeared_message, dead_letter.error, 3, handler)
    assert str(dead_letter.error) == "failure #3"
    [record] = [r for r in caplog.records if r.name == "castore_edu"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[1] is dead_letter.error


async def test_zero_retry_attempts_means_one_delivery() -> None:
    adapter, handler = InMemoryMessageBusAdapter(retry_attempts=0), Recorder(failures=-1)
    adapter.on({}, handler)
    await publish_all(adapter, appeared_message)
    assert handler.contexts == [TaskContext(attempt=1, retry_attempts_left=0, replay=False)]
    assert adapter.dead_letters[0].attempts == 1


async def test_a_retried_replay_stays_a_replay() -> None:
    # Deviation: Castore's bus retries a replayed message as a real-time one.
    adapter, handler = InMemoryMessageBusAdapter(retry_delay_ms=1), Recorder(failures=1)
    adapter.on({"on_replay": True}, handler)
    await publish_all(adapter, caught_message, replay=True)
    assert handler.contexts == [
        TaskContext(attempt=1, retry_attempts_left=2, replay=True),
        TaskContext(attempt=2, retry_attempts_left=1, replay=True),
    ]


async def test_publisher_never_sees_handler_errors() -> None:
    adapter = InMemoryMessageBusAdapter(retry_attempts=0)
    adapter.on({}, Recorder(failures=-1))
    await publish_all(adapter, appeared_message)  # no exception
    assert len(adapter.dead_letters) == 1


# -- re-sending dead letters -------------------------------------------------------------------


async def test_redelivered_dead_letters_go_to_the_handler_that_gave_up_alone_with_fresh_attempts() -> None:
    adapter = InMemoryMessageBusAdapter(retry_delay_ms=1)
    fixed_later, steady = Recorder(failures=3), Recorder()  # fails its three deliveries, then works
    adapter.on({}, fixed_later)
    adapter.on({}, steady)
    await publish_all(adapter, appeared_message)
    [letter] = adapter.dead_letters

    resent = await adapter.redeliver_dead_letters()
    await adapter.wait_idle()
    assert resent == [letter] and adapter.dead_letters == []
    assert fixed_later.contexts[3:] == [DEFAULT_CONTEXT]  # a new delivery: attempt 1, two retries left
    assert fixed_later.finished == [appeared_message]
    assert steady.messages == [appeared_message]  # the other listener is not run again


async def test_a_redelivered_letter_that_fails_again_is_a_dead_letter_again() -> None:
    adapter, handler = InMemoryMessageBusAdapter(retry_delay_ms=1), Recorder(failures=-1)
    adapter.on({"on_replay": True}, handler)
    await publish_all(adapter, appeared_message, replay=True)
    [first] = adapter.dead_letters
    assert first.replay is True

    assert await adapter.redeliver_dead_letters() == [first]
    await adapter.wait_idle()
    [again] = adapter.dead_letters
    assert again is not first
    assert (again.message, again.attempts, again.handler, again.replay) == (
        appeared_message,
        3,
        handler,
        True,
    )
    assert [call.context for call in handler.calls[3:]] == [
        TaskContext(attempt, 3 - attempt, replay=True) for attempt in (1, 2, 3)
    ]


async def test_redeliver_where_sends_only_the_letters_it_accepts() -> None:
    adapter, handler = InMemoryMessageBusAdapter(retry_attempts=0), Recorder(failures=2)
    adapter.on({}, handler)
    await publish_all(adapter, appeared_message, caught_message)
    appeared_letter, caught_letter = adapter.dead_letters

    resent = await adapter.redeliver_dead_letters(where=lambda letter: letter.message == caught_message)
    await adapter.wait_idle()
    assert resent == [caught_letter] and adapter.dead_letters == [appeared_letter]
    assert handler.finished == [caught_message]
    assert await adapter.redeliver_dead_letters(where=lambda letter: False) == []
    with pytest.raises(TypeError, match="where must be callable"):
        await adapter.redeliver_dead_letters(where="caught")  # type: ignore[arg-type]
    assert adapter.dead_letters == [appeared_letter]


# -- a handler that raises CancelledError, a handler that hangs ----------------------------------


async def test_a_handler_that_raises_cancelled_error_is_retried_then_a_logged_dead_letter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter, handler = (
        InMemoryMessageBusAdapter(retry_delay_ms=1),
        Recorder(failures=-1, error=asyncio.CancelledError),
    )
    adapter.on({}, handler)
    with caplog.at_level(logging.ERROR, logger="castore_edu"), anyio.fail_after(WAIT):
        await publish_all(adapter, appeared_message)
    assert [c.context.attempt for c in handler.calls] == [1, 2, 3]
    [dead_letter] = adapter.dead_letters
    assert (dead_letter.attempts, dead_letter.handler) == (3, handler)
    assert isinstance(dead_letter.error, asyncio.CancelledError)
    assert "InMemoryMessageBusAdapter gave up on" in caplog.text


async def test_a_handler_awaiting_a_cancelled_task_has_failed_and_is_retried() -> None:
    attempts: list[int] = []

    async def handler(message: object, context: TaskContext) -> None:
        attempts.append(context.attempt)
        if context.attempt == 1:
            lookup = asyncio.get_running_loop().create_task(asyncio.sleep(3600))
            lookup.cancel()  # someone else cancels the task the handler waits for
            await lookup

    adapter = InMemoryMessageBusAdapter(retry_delay_ms=1)
    adapter.on({}, handler)
    with anyio.fail_after(WAIT):
        await publish_all(adapter, appeared_message)
    assert attempts == [1, 2]
    assert adapter.dead_letters == []


async def test_cancelling_the_adapters_task_still_stops_the_handler() -> None:
    adapter, handler = InMemoryMessageBusAdapter(retry_delay_ms=1), Recorder()
    handler.gate = asyncio.Event()  # never set
    adapter.on({}, handler)
    await adapter.publish_message(appeared_message)
    [task] = adapter._tasks
    task.cancel()  # what the end of the event loop does
    with anyio.fail_after(WAIT):
        await adapter.wait_idle()
    assert task.cancelled()
    assert len(handler.calls) == 1 and adapter.dead_letters == []


async def test_wait_idle_with_a_timeout_names_the_handler_still_running() -> None:
    adapter, handler = InMemoryMessageBusAdapter(), Recorder()
    handler.gate = asyncio.Event()  # the handler hangs until we open it
    adapter.on({}, handler)
    await adapter.publish_message(appeared_message)
    with pytest.raises(TimeoutError) as raised:
        await adapter.wait_idle(timeout=0.05)
    assert str(raised.value) == (
        "InMemoryMessageBusAdapter not idle after 0.05 s (wait_idle timeout); still running: "
        "tests.fixtures_pokemon.Recorder on POKEMONS pikachu1 version 1 (APPEARED), attempt 1"
    )
    handler.gate.set()
    with anyio.fail_after(WAIT):
        await adapter.wait_idle(timeout=WAIT)
    assert handler.finished == [appeared_message]


async def test_a_handler_slower_than_handler_timeout_is_cancelled_retried_then_dead_lettered() -> None:
    adapter = InMemoryMessageBusAdapter(handler_timeout=0.05, retry_attempts=1, retry_delay_ms=1)
    hanging, steady = Recorder(), Recorder()
    hanging.gate = asyncio.Event()  # never set: every delivery hangs
    adapter.on({}, hanging)
    adapter.on({}, steady)
    with anyio.fail_after(WAIT):
        await publish_all(adapter, appeared_message)
    assert [c.context.attempt for c in hanging.calls] == [1, 2]
    assert hanging.gaps()[0] >= 0.05  # the first delivery was given its whole time
    assert steady.finished == [appeared_message]
    [dead_letter] = adapter.dead_letters
    assert (dead_letter.attempts, dead_letter.handler) == (2, hanging)
    assert isinstance(dead_letter.error, TimeoutError)
    assert (
        "Recorder on POKEMONS pikachu1 version 1 (APPEARED), attempt 2 took longer than handler_timeout=0.05 s"
        in str(dead_letter.error)
    )


async def test_a_handler_that_times_out_once_succeeds_on_its_retry() -> None:
    async def slow_the_first_time(message: object, context: TaskContext) -> None:
        attempts.append(context.attempt)
        if context.attempt == 1:
            await asyncio.sleep(3600)

    attempts: list[int] = []
    adapter = InMemoryMessageBusAdapter(handler_timeout=0.05, retry_delay_ms=1)
    adapter.on({}, slow_the_first_time)
    with anyio.fail_after(WAIT):
        await publish_all(adapter, appeared_message)
    assert attempts == [1, 2]
    assert adapter.dead_letters == []


# -- settings and bad input --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("retry_attempts", "Invalid retry_attempts, please select a positive integer."),
        ("retry_delay_ms", "Invalid retry_delay_ms, please select a positive number."),
        ("retry_backoff_rate", "Invalid retry_backoff_rate, please select a positive number."),
    ],
)
@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf"), "2", True])
def test_bad_settings_are_refused_by_name(setting: str, message: str, value: object) -> None:
    with pytest.raises(ValueError) as raised:
        InMemoryMessageBusAdapter(**{setting: value})
    assert str(raised.value) == message


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "2", True])
async def test_bad_time_limits_are_refused_by_name(value: object) -> None:
    message = "please select a positive number of seconds (or None)."
    with pytest.raises(ValueError, match=rf"^Invalid handler_timeout, {re.escape(message)}$"):
        InMemoryMessageBusAdapter(handler_timeout=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=rf"^Invalid timeout, {re.escape(message)}$"):
        await InMemoryMessageBusAdapter().wait_idle(timeout=value)  # type: ignore[arg-type]
    assert InMemoryMessageBusAdapter(handler_timeout=2).handler_timeout == 2.0
    assert InMemoryMessageBusAdapter().handler_timeout is None


def test_zero_settings_are_accepted_and_halves_round_up() -> None:
    adapter = InMemoryMessageBusAdapter(retry_attempts=0, retry_delay_ms=0, retry_backoff_rate=0)
    assert (adapter.retry_attempts, adapter.retry_delay_ms, adapter.retry_backoff_rate) == (0, 0, 0)
    adapter = InMemoryMessageBusAdapter(retry_attempts=2.5, retry_delay_ms=0.5)
    assert (adapter.retry_attempts, adapter.retry_delay_ms) == (3, 1)


def test_retry_delays_follow_the_backoff_formula() -> None:
    assert [InMemoryMessageBusAdapter().retry_delay_for(k) for k in (1, 2, 3)] == [30_000, 60_000, 120_000]
    adapter = InMemoryMessageBusAdapter(retry_delay_ms=1000, retry_backoff_rate=1.5)
    assert [adapter.retry_delay_for(k) for k in (1, 2, 3)] == [1000, 1500, 2250]
    # 1 * 2.5 = 2.5 ms: JavaScript's Math.round gives 3, Python's round() would give 2.
    assert InMemoryMessageBusAdapter(retry_delay_ms=1, retry_backoff_rate=2.5).retry_delay_for(2) == 3
    assert [round_half_up(x) for x in (0.5, 1.5, 2.5, 2.4999)] == [1, 2, 3, 2]


def test_unknown_filter_keys_are_refused() -> None:
    adapter = InMemoryMessageBusAdapter()
    with pytest.raises(ValueError, match=r"Unknown filter pattern keys \['eventType'\]"):
        adapter.on({"eventType": "APPEARED"}, Recorder())
    with pytest.raises(TypeError, match="filter pattern is a mapping"):
        adapter.on("APPEARED", Recorder())  # type: ignore[arg-type]


def test_filter_values_must_be_strings_and_on_replay_a_bool() -> None:
    adapter = InMemoryMessageBusAdapter()
    appeared = EventType("POKEMON_APPEARED")
    with pytest.raises(TypeError) as raised:
        adapter.on({"event_type": appeared}, Recorder())  # type: ignore[dict-item]
    assert str(raised.value) == (
        f"The event_type filter value must be a string, got {appeared!r}"
        ' (use its .type, e.g. {"event_type": "POKEMON_APPEARED"})'
    )
    with pytest.raises(TypeError, match=r'use its \.event_store_id, e\.g\. \{"event_store_id": "POKEMONS"\}'):
        adapter.on({"event_store_id": pokemons_store()}, Recorder())
    for bad in ({"event_store_id": 1}, {"event_type": None}, {"event_type": ["APPEARED"]}):
        with pytest.raises(TypeError, match="filter value must be a string"):
            adapter.on(bad, Recorder())
    with pytest.raises(TypeError, match="The on_replay filter value must be True or False, got 'yes'"):
        adapter.on({"on_replay": "yes"}, Recorder())
    assert adapter._listeners == []  # nothing half-registered
    adapter.on({"event_store_id": "POKEMONS", "event_type": "APPEARED", "on_replay": False}, Recorder())


def test_handlers_must_be_async() -> None:
    adapter = InMemoryMessageBusAdapter()

    def sync_handler(message: object, context: TaskContext) -> None: ...

    for not_async in (sync_handler, lambda message, context: None, Recorder, "handler"):
        with pytest.raises(TypeError, match="must be an async function"):
            adapter.on({}, not_async)  # type: ignore[arg-type]

    async def async_handler(message: object, context: TaskContext, extra: int) -> None: ...

    adapter.on({}, functools.partial(async_handler, extra=1))  # accepted, as are Recorder() objects
    adapter.on({}, Recorder())


# -- eager start ------------------------------------------------------------------------------


def test_a_waiting_handler_finishes_in_a_task_that_forwards_results_errors_and_cancellation() -> None:
    adapter, log = InMemoryMessageBusAdapter(), []

    async def handler(message: object, context: TaskContext) -> None:
        loop = asyncio.get_running_loop()
        log.append(await loop.run_in_executor(None, lambda: "a result"))
        failing = loop.create_future()
        loop.call_soon(failing.set_exception, KeyError("an error"))
        try:
            await failing
        except KeyError as error:
            log.append(error.args[0])
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            log.append("cancelled")
            raise

    async def body() -> None:
        adapter.on({}, handler)
        await adapter.publish_message(appeared_message)
        for _ in range(100):  # until the handler sleeps for good
            if len(log) == 2:
                break
            await asyncio.sleep(0.001)

    asyncio.run(body())  # asyncio.run cancels what is left when it ends
    assert log == ["a result", "an error", "cancelled"]
    assert adapter.dead_letters == []


async def test_a_handler_that_never_waits_is_over_when_publish_returns() -> None:
    finished: list[object] = []

    async def handler(message: object, context: TaskContext) -> None:
        finished.append(message)

    adapter = InMemoryMessageBusAdapter()
    adapter.on({}, handler)
    await adapter.publish_message(appeared_message)
    assert finished == [appeared_message]  # no turn of the event loop was needed


async def test_the_first_step_of_a_handler_cannot_change_the_publisher_context() -> None:
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable", default="publisher")
    seen: list[str] = []

    async def handler(message: object, context: TaskContext) -> None:
        variable.set("handler")
        await asyncio.sleep(0)
        seen.append(variable.get())

    adapter = InMemoryMessageBusAdapter()
    adapter.on({}, handler)

    await adapter.publish_message(appeared_message)
    value = variable.get()
    await adapter.wait_idle()
    assert value == "publisher"
    assert seen == ["handler"]
