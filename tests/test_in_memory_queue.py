"""InMemoryMessageQueueAdapter: Castore's in-memory queue behaviour, and our deviations (docs/api.md §8)."""

from __future__ import annotations

import asyncio
import logging

import anyio
import pytest

from castore_edu.core.events import EventDetail
from castore_edu.messaging.channels import NotificationMessageQueue
from castore_edu.messaging.delivery import DeadLetter, TaskContext
from castore_edu.messaging.in_memory_queue import InMemoryMessageQueueAdapter
from castore_edu.messaging.messages import NotificationMessage
from tests.fixtures_pokemon import (
    DEFAULT_CONTEXT,
    Recorder,
    appeared_message,
    blueprint_stores,
    caught_message,
    publish_all,
    ratios,
)

pytestmark = pytest.mark.anyio

REPLAY_CONTEXT = TaskContext(attempt=1, retry_attempts_left=2, replay=True)
WAIT = 30  # seconds: the longest any wait of this file may take before the test fails


async def test_worker_is_called_before_publish_returns() -> None:
    adapter, w1 = InMemoryMessageQueueAdapter(), Recorder()
    adapter.worker = w1

    await adapter.publish_message(appeared_message)
    called = len(w1.calls)
    await adapter.wait_idle()
    assert called == 1
    assert w1.deliveries == [(appeared_message, DEFAULT_CONTEXT)]
    await publish_all(adapter, appeared_message, replay=True)
    assert w1.deliveries[-1] == (appeared_message, REPLAY_CONTEXT)


async def test_publishing_does_not_wait_for_the_worker() -> None:
    adapter, worker = InMemoryMessageQueueAdapter(), Recorder()
    adapter.worker = worker

    worker.gate = asyncio.Event()
    await adapter.publish_message(appeared_message)
    seen = (len(worker.calls), len(worker.finished))
    worker.gate.set()
    await adapter.wait_idle()
    assert seen == (1, 0)
    assert worker.finished == [appeared_message]


async def test_a_new_worker_receives_the_next_messages() -> None:
    adapter, w1, w2 = InMemoryMessageQueueAdapter(), Recorder(), Recorder()
    adapter.worker = w1
    await publish_all(adapter, appeared_message)
    adapter.worker = w2
    assert adapter.worker is w2
    await publish_all(adapter, caught_message)
    assert w1.messages == [appeared_message]
    assert w2.deliveries == [(caught_message, DEFAULT_CONTEXT)]


async def test_queue_channel_publishes_through_its_adapter() -> None:
    pokemons, trainers = blueprint_stores()
    queue = NotificationMessageQueue(message_queue_id="q", source_event_stores=[pokemons, trainers])
    worker = Recorder()
    adapter = InMemoryMessageQueueAdapter(worker=worker)
    queue.message_channel_adapter = adapter

    await queue.publish_message(appeared_message)
    await queue.publish_messages([appeared_message] * 3)
    await queue.publish_messages([caught_message], replay=True)
    await adapter.wait_idle()
    assert worker.deliveries == [(appeared_message, DEFAULT_CONTEXT)] * 4 + [(caught_message, REPLAY_CONTEXT)]


async def test_attach_to_attaches_the_last_adapter() -> None:
    pokemons, _ = blueprint_stores()
    queue = NotificationMessageQueue(message_queue_id="q", source_event_stores=[pokemons])
    first = InMemoryMessageQueueAdapter.attach_to(queue)
    second = InMemoryMessageQueueAdapter.attach_to(queue)
    assert queue.message_channel_adapter is second is not first
    worker = Recorder()
    second.worker = worker

    await queue.publish_message(appeared_message)
    await second.wait_idle()
    assert worker.deliveries == [(appeared_message, DEFAULT_CONTEXT)]


async def test_messages_are_processed_one_at_a_time_in_order() -> None:
    log: list[str] = []

    async def slow_worker(message: NotificationMessage, context: TaskContext) -> None:
        log.append(f"start {message.event.version}")
        await asyncio.sleep(0.002)
        log.append(f"end {message.event.version}")

    adapter = InMemoryMessageQueueAdapter(worker=slow_worker)
    messages = [
        NotificationMessage(
            "POKEMONS", EventDetail(aggregate_id="pikachu1", version=version, type="LEVELLED_UP")
        )
        for version in (1, 2, 3)
    ]
    await publish_all(adapter, *messages)
    assert log == ["start 1", "end 1", "start 2", "end 2", "start 3", "end 3"]


# -- deviation: the queue keeps messages until a worker is set -----------------------------------


async def test_messages_wait_for_a_worker() -> None:
    # Deviation: Castore's in-memory queue drops messages published while it has no worker.
    adapter = InMemoryMessageQueueAdapter()
    await publish_all(
        adapter, appeared_message, caught_message
    )  # wait_idle returns: parked messages do not count
    worker = Recorder()

    adapter.worker = worker
    await adapter.wait_idle()
    assert worker.messages == [appeared_message, caught_message]


def test_a_worker_set_outside_any_loop_gets_the_parked_messages_at_the_next_wait_idle() -> None:
    adapter, worker = InMemoryMessageQueueAdapter(), Recorder()
    asyncio.run(publish_all(adapter, appeared_message))
    adapter.worker = worker  # no running loop here
    assert worker.calls == []
    asyncio.run(adapter.wait_idle())
    assert worker.messages == [appeared_message]


async def test_another_worker_takes_over_queued_messages_and_retries() -> None:
    # Deviation: Castore leaves queued messages and retries with the old worker.
    adapter = InMemoryMessageQueueAdapter(retry_delay_ms=5)
    old, new = Recorder(failures=1), Recorder()

    old.gate = asyncio.Event()
    adapter.worker = old
    await adapter.publish_messages([appeared_message, caught_message])  # old is busy with the first
    adapter.worker = new
    old.gate.set()  # the first message fails with the old worker...
    await adapter.wait_idle()
    assert old.messages == [appeared_message]
    # ...and its retry goes to the new worker, after the message that was queued.
    assert new.deliveries == [
        (caught_message, DEFAULT_CONTEXT),
        (appeared_message, TaskContext(attempt=2, retry_attempts_left=1, replay=False)),
    ]


def test_a_message_interrupted_by_the_end_of_the_loop_is_delivered_again() -> None:
    adapter, worker = InMemoryMessageQueueAdapter(), Recorder()

    async def interrupted() -> None:
        worker.gate = asyncio.Event()  # never set: asyncio.run cancels the worker when it ends
        adapter.worker = worker
        await adapter.publish_message(appeared_message)

    asyncio.run(interrupted())
    worker.gate = None
    asyncio.run(adapter.wait_idle())
    assert worker.messages == [appeared_message, appeared_message]  # at least once
    assert worker.finished == [appeared_message]


# -- retries and dead letters ------------------------------------------------------------------


async def test_failed_messages_are_retried_with_growing_delays() -> None:
    worker = Recorder(failures=3)
    adapter = InMemoryMessageQueueAdapter(
        worker=worker, retry_attempts=3, retry_delay_ms=40, retry_backoff_rate=1.5
    )
    await publish_all(adapter, appeared_message)
    assert [c.context.attempt for c in worker.calls] == [1, 2, 3, 4]
    assert ratios(worker.gaps()) == [1, pytest.approx(1.5, rel=0.25), pytest.approx(2.25, rel=0.25)]


async def test_a_retry_goes_to_the_back_of_the_queue_and_stays_a_replay() -> None:
    seen: list[tuple[int, TaskContext]] = []

    async def worker(message: NotificationMessage, context: TaskContext) -> None:
        seen.append((message.event.version, context))
        if message.event.version == 1 and context.attempt == 1:
            await asyncio.sleep(0.01)  # long enough for the retry delay to pass
            raise RuntimeError("first try fails")

    adapter = InMemoryMessageQueueAdapter(worker=worker, retry_delay_ms=0)
    await publish_all(adapter, appeared_message, caught_message, replay=True)
    assert seen == [(1, REPLAY_CONTEXT), (2, REPLAY_CONTEXT), (1, TaskContext(2, 1, True))]


async def test_a_worker_that_always_fails_ends_as_a_dead_letter(caplog: pytest.LogCaptureFixture) -> None:
    worker = Recorder(failures=-1)
    adapter = InMemoryMessageQueueAdapter(worker=worker, retry_delay_ms=2)
    with caplog.at_level(logging.ERROR, logger="castore_edu"):
        await publish_all(adapter, appeared_message, caught_message)
    assert [c.context.retry_attempts_left for c in worker.calls if c.message == appeared_message] == [2, 1, 0]
    assert [(d.message, d.attempts, d.handler) for d in adapter.dead_letters] == [
        (appeared_message, 3, worker),
        (caught_message, 3, worker),
    ]
    assert all(isinstance(d, DeadLetter) and isinstance(d.error, RuntimeError) for d in adapter.dead_letters)
    assert [r.levelno for r in caplog.records if r.name == "castore_edu"] == [logging.ERROR] * 2


# -- poison messages, re-sending dead letters ----------------------------------------------------


async def test_a_poison_message_costs_its_retries_and_the_messages_behind_it_get_through() -> None:
    handled: list[int] = []

    async def worker(message: NotificationMessage, context: TaskContext) -> None:
        if message.event.type == "APPEARED":  # a bug, or a payload it cannot read: fails every time
            raise ValueError("bad payload")
        handled.append(message.event.version)

    adapter = InMemoryMessageQueueAdapter(worker=worker, retry_delay_ms=1)
    await publish_all(adapter, appeared_message, caught_message)
    assert handled == [2]  # the message behind the poison one was not blocked
    [poison] = adapter.dead_letters
    assert (poison.message, poison.attempts) == (appeared_message, 3)

    assert await adapter.redeliver_dead_letters() == [poison]  # nothing was fixed...
    await adapter.wait_idle()
    [again] = adapter.dead_letters  # ...so it is a dead letter again, never dropped
    assert again is not poison and (again.message, again.attempts) == (appeared_message, 3)


async def test_redelivered_dead_letters_go_to_the_back_of_the_queue_for_the_worker_set_now() -> None:
    broken, fixed = Recorder(failures=-1), Recorder()
    adapter = InMemoryMessageQueueAdapter(worker=broken, retry_attempts=0)
    await publish_all(adapter, appeared_message, replay=True)
    [letter] = adapter.dead_letters
    assert letter.replay is True

    adapter.worker = fixed
    fixed.gate = asyncio.Event()
    await adapter.publish_message(caught_message)  # the fixed worker is busy with it...
    assert await adapter.redeliver_dead_letters() == [letter]
    assert adapter.dead_letters == []  # ...and the re-sent letter waits behind it
    fixed.gate.set()
    await adapter.wait_idle()
    assert fixed.deliveries == [
        (caught_message, TaskContext(1, 0, False)),
        (appeared_message, TaskContext(1, 0, True)),
    ]
    assert len(broken.calls) == 1


# -- a worker that raises CancelledError, a worker that hangs -------------------------------------


async def test_a_worker_that_raises_cancelled_error_is_retried_then_dead_lettered_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = Recorder(failures=3, error=asyncio.CancelledError)  # the three deliveries of the first message
    adapter = InMemoryMessageQueueAdapter(worker=worker, retry_delay_ms=1)
    with caplog.at_level(logging.ERROR, logger="castore_edu"), anyio.fail_after(WAIT):
        await publish_all(adapter, appeared_message)
        await publish_all(adapter, caught_message)
    assert [(c.message, c.context.attempt) for c in worker.calls] == [
        (appeared_message, 1),
        (appeared_message, 2),
        (appeared_message, 3),
        (caught_message, 1),
    ]
    [dead_letter] = adapter.dead_letters
    assert (dead_letter.message, dead_letter.attempts) == (appeared_message, 3)
    assert isinstance(dead_letter.error, asyncio.CancelledError)
    assert worker.finished == [caught_message]  # the worker was not stopped
    assert "InMemoryMessageQueueAdapter gave up on" in caplog.text


async def test_a_worker_slower_than_handler_timeout_is_cancelled_and_the_queue_goes_on() -> None:
    async def hangs_on_the_first(message: NotificationMessage, context: TaskContext) -> None:
        seen.append((message.event.version, context.attempt))
        if message.event.version == 1:
            await asyncio.sleep(3600)

    seen: list[tuple[int, int]] = []
    adapter = InMemoryMessageQueueAdapter(
        worker=hangs_on_the_first, handler_timeout=0.05, retry_attempts=1, retry_delay_ms=1
    )
    with anyio.fail_after(WAIT):
        await publish_all(adapter, appeared_message, caught_message)
    assert sorted(seen) == [(1, 1), (1, 2), (2, 1)]
    [dead_letter] = adapter.dead_letters
    assert (dead_letter.message, dead_letter.attempts) == (appeared_message, 2)
    assert isinstance(dead_letter.error, TimeoutError)
    assert "took longer than handler_timeout=0.05 s" in str(dead_letter.error)


async def test_wait_idle_with_a_timeout_names_the_worker_call_still_running() -> None:
    worker = Recorder()
    worker.gate = asyncio.Event()  # the worker hangs until we open it
    adapter = InMemoryMessageQueueAdapter(worker=worker)
    await adapter.publish_message(caught_message)
    with pytest.raises(
        TimeoutError, match=r"not idle after 0\.05 s \(wait_idle timeout\); still running: "
    ) as raised:
        await adapter.wait_idle(timeout=0.05)
    assert "Recorder on POKEMONS pikachu1 version 2 (CAUGHT_BY_TRAINER), attempt 1" in str(raised.value)
    worker.gate.set()
    with anyio.fail_after(WAIT):
        await adapter.wait_idle(timeout=WAIT)
    assert worker.finished == [caught_message]


def test_worker_must_be_async_and_settings_non_negative() -> None:
    def sync_worker(message: object, context: TaskContext) -> None: ...

    with pytest.raises(TypeError, match="The worker must be an async function"):
        InMemoryMessageQueueAdapter(worker=sync_worker)  # type: ignore[arg-type]
    adapter = InMemoryMessageQueueAdapter()
    with pytest.raises(TypeError):
        adapter.worker = sync_worker  # type: ignore[assignment]
    assert adapter.worker is None
    with pytest.raises(ValueError, match=r"^Invalid retry_delay_ms, please select a positive number\.$"):
        InMemoryMessageQueueAdapter(retry_delay_ms=-1)
    with pytest.raises(
        ValueError, match=r"^Invalid handler_timeout, please select a positive number of seconds"
    ):
        InMemoryMessageQueueAdapter(handler_timeout=-1)
