"""Command: Castore's retry on version conflicts (docs/api.md §10).

The fixture is Castore's counter command: a ``Counters`` store and a handler that reads a
counter and pushes the next version. Conflicts come either from a fake adapter that refuses
the first pushes on purpose, or from a real race between two commands.
"""

from __future__ import annotations

import asyncio
import functools
import random
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock

import pytest

from castore_edu import (
    Command,
    ConnectedEventStore,
    EventAlreadyExistsError,
    EventDetail,
    EventStore,
    EventType,
    InMemoryEventStorageAdapter,
    NotificationMessageBus,
    is_event_already_exists_error,
)
from castore_edu.core.command import RetryBackoff
from castore_edu.testing.contention import race_for_one_aggregate

pytestmark = pytest.mark.anyio

COUNTER_ID = "counter1"


@dataclass(frozen=True)
class Counter:
    aggregate_id: str
    version: int
    count: int


def counters_reducer(counter: Counter | None, event: EventDetail) -> Counter:
    count = 0 if counter is None else counter.count
    return Counter(event.aggregate_id, event.version, count + (event.type == "COUNTER_INCREMENTED"))


class ConflictingAdapter(InMemoryEventStorageAdapter):
    """A fake adapter whose first ``conflicts`` pushes fail with a version conflict
    (``conflicts=-1``: every push). It counts the pushes and keeps the errors it raised."""

    def __init__(self, conflicts: int) -> None:
        super().__init__()
        self.conflicts = conflicts
        self.pushes = 0
        self.raised: list[EventAlreadyExistsError] = []

    async def push_event(
        self, event: EventDetail, *, event_store_id: str = "", force: bool = False
    ) -> EventDetail:
        self.pushes += 1
        # Not a conflict, so a command that forgot to stop retrying fails instead of hanging.
        assert self.pushes <= 10, "too many pushes: the command should have stopped retrying"
        if self.conflicts < 0 or self.pushes <= self.conflicts:
            self.raised.append(
                EventAlreadyExistsError(
                    event_store_id=event_store_id,
                    aggregate_id=event.aggregate_id,
                    version=event.version,
                )
            )
            raise self.raised[-1]
        return await super().push_event(event, event_store_id=event_store_id, force=force)


def counters_store(adapter: InMemoryEventStorageAdapter | None = None) -> EventStore:
    return EventStore(
        event_store_id="Counters",
        event_types=[EventType("COUNTER_CREATED"), EventType("COUNTER_INCREMENTED")],
        reducer=counters_reducer,
        event_storage_adapter=adapter if adapter is not None else InMemoryEventStorageAdapter(),
    )


async def increment(counter_id: str, event_stores: list[EventStore], *context: Any) -> Counter:
    """Read the counter, then push the next version (yielding in between, as real I/O would)."""
    [counters] = event_stores
    counter = (await counters.get_aggregate(counter_id)).aggregate
    await asyncio.sleep(0)
    version = 1 if counter is None else counter.version + 1
    result = await counters.push_event(
        EventDetail(aggregate_id=counter_id, version=version, type="COUNTER_INCREMENTED"),
        prev_aggregate=counter,
    )
    return result.next_aggregate


class CallbackRecorder:
    """An ``on_event_already_exists`` that records how it was called, after yielding once
    (so a callback that is called but not awaited records nothing)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Exception, int, int]] = []

    async def __call__(self, error: Exception, *, attempt_number: int, retries_left: int) -> None:
        await asyncio.sleep(0)
        self.calls.append((error, attempt_number, retries_left))


def increment_command(
    adapter: InMemoryEventStorageAdapter | None = None, **options: Any
) -> tuple[Command, CallbackRecorder]:
    """The counter command on a fresh ``Counters`` store, with a recording callback."""
    callback = CallbackRecorder()
    command = Command(
        command_id="INCREMENT_COUNTER",
        required_event_stores=[counters_store(adapter)],
        handler=increment,
        on_event_already_exists=callback,
        **options,
    )
    return command, callback


async def run_increment(command: Command) -> Counter:
    return await command.handler(COUNTER_ID, command.required_event_stores)


# -- shape and defaults ---------------------------------------------------------------------


def test_command_attributes() -> None:
    command, callback = increment_command()
    assert {name for name in vars(command) if not name.startswith("_")} == {
        "command_id",
        "required_event_stores",
        "event_already_exists_retries",
        "on_event_already_exists",
    }
    assert callable(command.handler)
    assert command.command_id == "INCREMENT_COUNTER"
    assert [s.event_store_id for s in command.required_event_stores] == ["Counters"]
    assert command.on_event_already_exists is callback


async def test_retries_default_to_two_and_callback_to_none() -> None:
    adapter = ConflictingAdapter(conflicts=-1)
    command = Command(
        command_id="INCREMENT_COUNTER", required_event_stores=[counters_store(adapter)], handler=increment
    )
    assert command.event_already_exists_retries == 2
    assert command.on_event_already_exists is None
    with pytest.raises(EventAlreadyExistsError):
        await run_increment(command)
    assert adapter.pushes == 3


@pytest.mark.parametrize("retries", [-1, -5])
def test_negative_retries_are_refused(retries: int) -> None:
    with pytest.raises(ValueError):
        Command(
            command_id="C", required_event_stores=[], handler=increment, event_already_exists_retries=retries
        )


# -- checks at the door ---------------------------------------------------------------------


def plain_increment(counter_id: str, event_stores: list[EventStore]) -> None:
    """The learner's slip: a handler written with ``def`` instead of ``async def``."""


# (argument, bad value, error type, words the message must contain)
BAD_ARGUMENTS: list[tuple[str, Any, type[Exception], list[str]]] = [
    ("command_id", None, TypeError, ["command_id", "str", "None"]),
    ("command_id", 42, TypeError, ["command_id", "str", "42"]),
    ("command_id", "", ValueError, ["command_id", "empty"]),
    ("required_event_stores", None, TypeError, ["required_event_stores", "None"]),
    ("required_event_stores", "Counters", TypeError, ["required_event_stores", "list"]),
    ("required_event_stores", counters_store(), TypeError, ["required_event_stores", "single", "[store]"]),
    (
        "required_event_stores",
        [counters_store(), "Counters"],
        TypeError,
        ["required_event_stores[1]", "'Counters'"],
    ),
    ("handler", None, TypeError, ["handler", "async", "None"]),
    ("handler", "increment", TypeError, ["handler", "async", "'increment'"]),
    ("handler", plain_increment, TypeError, ["handler", "function plain_increment", "forget 'async'"]),
    ("handler", lambda counter_id, stores: None, TypeError, ["handler", "forget 'async'"]),
    ("handler", Counter, TypeError, ["handler", "async", "class Counter"]),
    ("event_already_exists_retries", -1, ValueError, ["event_already_exists_retries", ">= 0", "-1"]),
    (
        "event_already_exists_retries",
        True,
        TypeError,
        ["event_already_exists_retries", "int", "True (a bool)"],
    ),
    ("event_already_exists_retries", 2.0, TypeError, ["event_already_exists_retries", "int", "2.0"]),
    ("event_already_exists_retries", "3", TypeError, ["event_already_exists_retries", "int", "'3'"]),
    ("on_event_already_exists", print, TypeError, ["on_event_already_exists", "forget 'async'"]),
    ("on_event_already_exists", "log", TypeError, ["on_event_already_exists", "async", "'log'"]),
    ("retry_delay_ms", -1, ValueError, ["retry_delay_ms", ">= 0", "-1"]),
    ("retry_delay_ms", "10", TypeError, ["retry_delay_ms", "number", "'10'"]),
    ("retry_delay_ms", float("nan"), ValueError, ["retry_delay_ms", "finite"]),
    ("retry_delay_ms", 2_000, ValueError, ["max_retry_delay_ms (1000)", "retry_delay_ms (2000)"]),
    ("retry_backoff_rate", 0.5, ValueError, ["retry_backoff_rate", ">= 1", "0.5"]),
    ("retry_backoff_rate", True, TypeError, ["retry_backoff_rate", "number", "True"]),
    ("max_retry_delay_ms", float("inf"), ValueError, ["max_retry_delay_ms", "finite", "inf"]),
    ("retry_jitter", 1.5, ValueError, ["retry_jitter", "between 0 and 1", "1.5"]),
    ("retry_jitter", -0.1, ValueError, ["retry_jitter", "between 0 and 1"]),
    ("jitter_random", 7, TypeError, ["jitter_random", "random()", "random.Random(seed)", "7"]),
    ("sleep", lambda seconds: None, TypeError, ["sleep", "forget 'async'"]),
]


@pytest.mark.parametrize(
    ("argument", "value", "error_type", "words"),
    BAD_ARGUMENTS,
    ids=[
        f"{argument}={getattr(value, '__qualname__', repr(value))}"[:50]
        for argument, value, *_ in BAD_ARGUMENTS
    ],
)
def test_a_bad_argument_is_refused_at_once_and_named(
    argument: str, value: Any, error_type: type[Exception], words: list[str]
) -> None:
    arguments: dict[str, Any] = {
        "command_id": "INCREMENT_COUNTER",
        "required_event_stores": [counters_store()],
        "handler": increment,
        argument: value,
    }
    with pytest.raises(error_type) as raised:
        Command(**arguments)
    message = str(raised.value)
    assert [word for word in words if word not in message] == [], message


class AsyncCallable:
    async def __call__(self, *args: Any, **keywords: Any) -> None:
        pass

    async def method(self, *args: Any, **keywords: Any) -> None:
        pass


@pytest.mark.parametrize(
    "callback",
    [
        increment,
        functools.partial(increment),
        AsyncCallable(),
        AsyncCallable().method,
        AsyncMock(),
    ],
    ids=["async def", "partial", "object with async __call__", "async method", "AsyncMock"],
)
def test_every_kind_of_async_callable_is_accepted(callback: Any) -> None:
    command = Command(
        command_id="C",
        required_event_stores=[],
        handler=callback,
        on_event_already_exists=callback,
        sleep=callback,
    )
    assert command.on_event_already_exists is callback


def test_stores_may_be_any_sequence_and_connected() -> None:
    store = counters_store()
    connected = ConnectedEventStore(
        store, NotificationMessageBus(message_bus_id="BUS", source_event_stores=[store])
    )
    command = Command(command_id="C", required_event_stores=(store, connected), handler=increment)
    assert command.required_event_stores == [store, connected]


# -- retrying on conflicts ------------------------------------------------------------------


async def test_retries_until_the_push_succeeds() -> None:
    adapter = ConflictingAdapter(conflicts=2)
    command, callback = increment_command(adapter, event_already_exists_retries=2)
    counter = await run_increment(command)
    assert adapter.pushes == 3
    assert callback.calls == [(adapter.raised[0], 1, 2), (adapter.raised[1], 2, 1)]
    assert counter == Counter(COUNTER_ID, 1, 1)


async def test_raises_the_conflict_once_the_retries_are_spent() -> None:
    adapter = ConflictingAdapter(conflicts=-1)
    command, callback = increment_command(adapter, event_already_exists_retries=2)
    with pytest.raises(EventAlreadyExistsError) as raised:
        await run_increment(command)
    assert adapter.pushes == 3
    assert raised.value is adapter.raised[-1]
    # The callback also runs on the final conflict, with nothing left to retry.
    assert callback.calls == [(adapter.raised[0], 1, 2), (adapter.raised[1], 2, 1), (adapter.raised[2], 3, 0)]


async def test_zero_retries_means_a_single_attempt() -> None:
    adapter = ConflictingAdapter(conflicts=-1)
    command, callback = increment_command(adapter, event_already_exists_retries=0)
    with pytest.raises(EventAlreadyExistsError):
        await run_increment(command)
    assert adapter.pushes == 1
    assert callback.calls == [(adapter.raised[0], 1, 0)]


async def test_retries_are_read_when_the_handler_runs() -> None:
    adapter = ConflictingAdapter(conflicts=-1)
    command, callback = increment_command(adapter)
    command.event_already_exists_retries = 4
    with pytest.raises(EventAlreadyExistsError):
        await run_increment(command)
    assert adapter.pushes == 5
    assert [(attempt, left) for _, attempt, left in callback.calls] == [
        (1, 4),
        (2, 3),
        (3, 2),
        (4, 1),
        (5, 0),
    ]


async def test_a_real_race_between_two_commands_is_resolved_by_a_retry() -> None:
    command, callback = increment_command()
    stores = command.required_event_stores
    [store] = stores

    counters = list(
        await asyncio.gather(command.handler(COUNTER_ID, stores), command.handler(COUNTER_ID, stores))
    )
    assert sorted(counter.version for counter in counters) == [1, 2]
    assert (await store.get_aggregate(COUNTER_ID)).aggregate == Counter(COUNTER_ID, 2, 2)
    [(error, attempt_number, retries_left)] = callback.calls
    assert (attempt_number, retries_left) == (1, 2)
    assert isinstance(error, EventAlreadyExistsError)
    assert (error.event_store_id, error.aggregate_id, error.version) == ("Counters", COUNTER_ID, 1)
    assert str(error) == "Event already exists for Counters aggregate counter1 and version 1"


async def test_other_errors_are_raised_at_once_without_callback() -> None:
    failure = KeyError("no such trainer")
    attempts: list[str] = []

    async def handler(input: str, event_stores: list[EventStore]) -> None:
        attempts.append(input)
        raise failure

    callback = CallbackRecorder()
    command = Command(
        command_id="C", required_event_stores=[], handler=handler, on_event_already_exists=callback
    )
    with pytest.raises(KeyError) as raised:
        await command.handler("ash", [])
    assert raised.value is failure
    assert attempts == ["ash"]
    assert callback.calls == []


async def test_a_duck_typed_conflict_is_retried_too() -> None:
    class PostgresConflict(Exception):
        code = "EventAlreadyExistsError"

    attempts: list[int] = []

    async def handler(input: Any, event_stores: list[EventStore]) -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 2:
            raise PostgresConflict("duplicate key value violates unique constraint")
        return "done"

    callback = CallbackRecorder()
    command = Command(
        command_id="C", required_event_stores=[], handler=handler, on_event_already_exists=callback
    )
    assert await command.handler(None, []) == "done"
    assert attempts == [1, 2]
    assert [(type(error), attempt, left) for error, attempt, left in callback.calls] == [
        (PostgresConflict, 1, 2)
    ]


async def test_every_attempt_gets_the_input_the_stores_and_the_context() -> None:
    store = counters_store(ConflictingAdapter(conflicts=1))
    seen: list[tuple[Any, ...]] = []

    async def handler(input: str, event_stores: list[EventStore], *context: Any) -> Counter:
        seen.append((input, event_stores, *context))
        return await increment(input, event_stores)

    command = Command(command_id="C", required_event_stores=[store], handler=handler)
    stores = [store]
    await command.handler(COUNTER_ID, stores, "uuid-generator", {"now": "2024"})
    assert seen == [(COUNTER_ID, stores, "uuid-generator", {"now": "2024"})] * 2
    assert seen[1][1] is stores


# -- back-off between retries --------------------------------------------------------------


class SleepRecorder:
    """An injected ``sleep`` that records how long it was asked to wait, and does not wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class NoRandomness:
    """A ``jitter_random`` that fails the test if the command draws from it."""

    def random(self) -> float:
        raise AssertionError("nothing should be drawn")


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_the_longest_delay_grows_by_the_rate_up_to_the_cap() -> None:
    backoff = RetryBackoff(first_delay_ms=10, rate=2, max_delay_ms=100)
    assert [backoff.longest_delay_ms(retry) for retry in range(1, 7)] == [10, 20, 40, 80, 100, 100]
    assert backoff.longest_delay_ms(10_000) == 100  # no overflow, however many retries
    assert RetryBackoff(first_delay_ms=3, rate=1.5, max_delay_ms=100).longest_delay_ms(3) == 6.75
    assert RetryBackoff(first_delay_ms=5, rate=1).longest_delay_ms(50) == 5
    assert RetryBackoff().longest_delay_ms(10_000) == 0  # off by default


@pytest.mark.parametrize("jitter", [0.0, 0.25, 1.0])
def test_jitter_stays_within_its_bounds(jitter: float) -> None:
    backoff = RetryBackoff(first_delay_ms=10, rate=2, max_delay_ms=100, jitter=jitter)
    seeded = random.Random(2024)
    for retry in range(1, 8):
        longest = backoff.longest_delay_ms(retry)
        shortest = longest * (1 - jitter)
        draws = [backoff.delay_ms(retry, seeded) for _ in range(200)]
        assert all(shortest <= delay <= longest for delay in draws), (retry, min(draws), max(draws))
        # the edges of random()'s range [0, 1) give the edges of the wait
        assert backoff.delay_ms(retry, FixedRandom(0.0)) == longest
        assert backoff.delay_ms(retry, FixedRandom(0.999_999)) == pytest.approx(shortest, abs=1e-3)
        if jitter > 0:
            assert len(set(draws)) > 100  # really drawn at random


def test_the_same_seed_gives_the_same_waits() -> None:
    backoff = RetryBackoff(first_delay_ms=10)
    first, second = random.Random(7), random.Random(7)
    assert [backoff.delay_ms(3, first) for _ in range(5)] == [backoff.delay_ms(3, second) for _ in range(5)]


async def test_no_wait_and_no_draw_when_the_back_off_is_off() -> None:
    sleep = SleepRecorder()
    adapter = ConflictingAdapter(conflicts=2)
    command, _ = increment_command(adapter, sleep=sleep, jitter_random=NoRandomness())
    await run_increment(command)
    assert adapter.pushes == 3
    assert sleep.waits == []


async def test_the_command_waits_before_each_retry_as_the_back_off_says() -> None:
    sleep = SleepRecorder()
    adapter = ConflictingAdapter(conflicts=3)
    command, callback = increment_command(
        adapter, event_already_exists_retries=3, retry_delay_ms=10, retry_jitter=0, sleep=sleep
    )
    await run_increment(command)
    assert adapter.pushes == 4
    assert sleep.waits == [0.010, 0.020, 0.040]  # seconds, as asyncio.sleep takes them
    assert len(callback.calls) == 3


async def test_no_wait_after_the_last_attempt() -> None:
    sleep = SleepRecorder()
    adapter = ConflictingAdapter(conflicts=-1)
    command, _ = increment_command(adapter, retry_delay_ms=10, jitter_random=FixedRandom(0.5), sleep=sleep)
    with pytest.raises(EventAlreadyExistsError):
        await run_increment(command)
    assert adapter.pushes == 3
    assert sleep.waits == [
        0.005,
        0.010,
    ]  # two retries, half of 10 then of 20 ms; none after the third attempt


async def test_a_crowd_retries_quadratically_without_back_off_and_far_less_with_it() -> None:
    """200 commands on one aggregate, each with enough retries to succeed. Counts, not times:
    the simulated sleep (one event-loop turn per millisecond) makes them the same on any machine."""
    at_once = await race_for_one_aggregate(200)
    assert (at_once.successes, at_once.retries) == (200, 200 * 199 // 2)  # 19,900

    backed_off = await race_for_one_aggregate(200, retry_delay_ms=1, seed=1)
    assert backed_off.successes == 200
    assert backed_off.retries < at_once.retries / 8
    again = await race_for_one_aggregate(200, retry_delay_ms=1, seed=1)
    assert again.retries == backed_off.retries


# -- is_event_already_exists_error ----------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (EventAlreadyExistsError(event_store_id="S", aggregate_id="a", version=1), True),
        (SimpleNamespace(code="EventAlreadyExistsError"), True),
        (None, False),
        ("EventAlreadyExistsError", False),
        (SimpleNamespace(code="AggregateNotFoundError"), False),
        (ValueError("EventAlreadyExistsError"), False),
    ],
)
def test_is_event_already_exists_error_is_duck_typed(candidate: Any, expected: bool) -> None:
    assert is_event_already_exists_error(candidate) is expected


# -- event loops ----------------------------------------------------------------------------


def test_a_command_made_outside_a_loop_works_in_later_loops() -> None:
    command, _ = increment_command()
    asyncio.run(run_increment(command))
    assert asyncio.run(run_increment(command)) == Counter(COUNTER_ID, 2, 2)
