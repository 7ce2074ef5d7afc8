"""What the channel adapters share: contexts, retries, dead letters, idling.

``ChannelAdapter`` holds what every shipped adapter shares, in memory or on a broker (the NATS
adapters, ``nats_jetstream``); ``InMemoryChannelAdapter`` adds how the in-memory ones deliver.

Both adapters deliver a message by awaiting a consumer ``async def consumer(message, context)``
(a bus *handler* or a queue *worker*). A consumer that raises is retried after a delay that grows
geometrically, and given up on after ``1 + retry_attempts`` deliveries:

    delay before retry k = round-half-up(retry_delay_ms * retry_backoff_rate ** (k - 1)) ms

(k is the delivery that just failed, starting at 1: with the defaults 30 s, then 60 s.)

Delivery is fire-and-forget: the publisher is never told about a consumer's failure, just as with
a real broker. So that lost work stays visible, a message that is given up on is logged (logger
``castore_edu``, level ERROR) and kept in ``adapter.dead_letters``.

Consumers run in asyncio tasks of the loop that publishes. A bus starts each handler as an
*eager task*: its first step runs at once, inside ``publish_message``, and a handler that never
waits is over before the loop sees it (Python 3.12's ``asyncio.Task(..., eager_start=True)``; on
Python 3.11, which lacks it, ``_start_eagerly`` takes that first step by hand). The adapter
keeps a reference to each task until it ends (asyncio itself keeps only weak ones).
``await adapter.wait_idle()`` returns once none of them is running or waiting for a retry —
handy in tests and notebooks. Nothing here is tied to one event loop: an adapter made outside
any loop works inside every later ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import math
import sys
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeAlias, TypeGuard

logger = logging.getLogger("castore_edu")


@dataclass(frozen=True)
class TaskContext:
    """What a consumer is told besides the message: which delivery this is, and whether it replays."""

    attempt: int
    retry_attempts_left: int
    replay: bool


Consumer: TypeAlias = Callable[[Any, TaskContext], Awaitable[None]]


@dataclass(frozen=True)
class DeadLetter:
    """A message whose consumer still failed after the last retry."""

    message: Any
    error: BaseException
    attempts: int
    handler: Consumer


def round_half_up(value: float) -> int:
    """Round as JavaScript's ``Math.round`` does: halves go up.

    Python's ``round`` sends halves to the even neighbour (``round(2.5) == 2``), which would
    change some of Castore's delays by a millisecond.
    """
    return math.floor(value + 0.5)


def require_async_callable(consumer: object, role: str = "handler") -> Consumer:
    """Return ``consumer`` if calling it gives a coroutine, else raise ``TypeError``.

    Accepted: ``async def`` functions, bound async methods, ``functools.partial`` of those, and
    objects whose ``__call__`` is ``async def``. A plain function that *returns* a coroutine
    cannot be told apart before it is called, so it is refused: write it with ``async def``.
    """
    is_async = inspect.iscoroutinefunction(consumer) or (
        not inspect.isclass(consumer) and inspect.iscoroutinefunction(type(consumer).__call__)
    )
    if not is_async:
        raise TypeError(
            f"The {role} must be an async function (async def {role}(message, context)), got {consumer!r}"
        )
    return consumer  # type: ignore[return-value]


def _rest_of(coroutine: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, None, None]:
    """Python 3.11 only (see ``_start_eagerly``): run ``coroutine`` on from ``waiting``, where its
    first step, taken by hand, stopped. This is ``yield from coroutine`` minus that first step: the
    task (3.11 tasks still accept a generator) waits on what we yield, resumes us, and we pass that
    on to the coroutine."""
    while True:
        try:
            try:
                yield waiting
            except BaseException as error:  # e.g. a cancellation: it belongs to the coroutine
                waiting = coroutine.throw(error)
            else:
                waiting = coroutine.send(None)
        except StopIteration:
            return


def is_finite_number(value: object) -> TypeGuard[float]:
    """An int or a float, neither infinite nor NaN; not a bool (``True`` is an int in Python)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _non_negative(name: str, value: object, kind: str) -> float:
    if not is_finite_number(value) or value < 0:
        raise ValueError(f"Invalid {name}, please select a positive {kind}.")
    return value


class ChannelAdapter:
    """What every shipped channel adapter shares, in memory or on a broker: the retry settings and
    the delays they give, the contexts consumers are told, dead letters, ``attach_to``, and the
    tasks the adapter holds on to. (The NATS adapters, ``nats_jetstream``, build on it too.)"""

    def __init__(
        self, *, retry_attempts: int = 2, retry_delay_ms: float = 30_000, retry_backoff_rate: float = 2.0
    ) -> None:
        self.retry_attempts = round_half_up(_non_negative("retry_attempts", retry_attempts, "integer"))
        self.retry_delay_ms = round_half_up(_non_negative("retry_delay_ms", retry_delay_ms, "number"))
        self.retry_backoff_rate = _non_negative("retry_backoff_rate", retry_backoff_rate, "number")
        self.dead_letters: list[DeadLetter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def attach_to(cls, channel: Any, **settings: Any) -> Self:
        """Build an adapter with ``settings``, make it ``channel``'s adapter, and return it."""
        adapter = cls(**settings)
        channel.message_channel_adapter = adapter
        return adapter

    async def publish_message(self, message: Any, *, replay: bool = False) -> None:
        raise NotImplementedError

    async def publish_messages(self, messages: Sequence[Any], *, replay: bool = False) -> None:
        """Publish the messages one after the other."""
        for message in messages:
            await self.publish_message(message, replay=replay)

    def retry_delay_for(self, failed_attempt: int) -> int:
        """Milliseconds to wait after delivery number ``failed_attempt`` failed."""
        return round_half_up(self.retry_delay_ms * self.retry_backoff_rate ** (failed_attempt - 1))

    async def wait_idle(self) -> None:
        raise NotImplementedError

    def _spawn(
        self, coroutine: Coroutine[Any, Any, None], context: contextvars.Context | None = None
    ) -> asyncio.Task[None]:
        """Run ``coroutine`` in a task of the running loop, and hold on to the task until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine, context=context)
        self._hold(task)
        return task

    def _hold(self, task: asyncio.Task[None]) -> None:
        """Keep a reference to ``task`` until it ends: asyncio itself keeps only weak ones."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _task_context(self, attempt: int, replay: bool) -> TaskContext:
        """The context of delivery number ``attempt``."""
        return TaskContext(attempt, self.retry_attempts - (attempt - 1), replay)

    def _will_retry(self, consumer: Consumer, message: Any, attempt: int, error: Exception) -> bool:
        """Delivery number ``attempt`` failed with ``error``: True if another one is due.

        After the last allowed delivery the message becomes a dead letter, and is logged.
        """
        if attempt <= self.retry_attempts:
            logger.debug(
                "Delivery %d of %r failed, retrying in %d ms", attempt, message, self.retry_delay_for(attempt)
            )
            return True
        self._dead_letter(consumer, message, attempt, error)
        return False

    def _dead_letter(self, consumer: Consumer, message: Any, attempts: int, error: BaseException) -> None:
        """Give up on ``message``: keep it in ``dead_letters``, and log it."""
        self.dead_letters.append(DeadLetter(message, error, attempts, consumer))
        logger.error(
            "%s gave up on %r after %d deliveries", type(self).__name__, message, attempts, exc_info=error
        )


class SettableWorker:
    """The settable ``worker`` of a queue adapter, in memory or on a broker: checked when it is
    set, after which the adapter reacts (``_worker_changed``: start or stop feeding it)."""

    _worker: Consumer | None = None

    @property
    def worker(self) -> Consumer | None:
        """``async worker(message, context)``, or ``None``: messages then wait in the queue."""
        return self._worker

    @worker.setter
    def worker(self, worker: Consumer | None) -> None:
        self._worker = None if worker is None else require_async_callable(worker, "worker")
        self._worker_changed()

    def _worker_changed(self) -> None:
        raise NotImplementedError


class InMemoryChannelAdapter(ChannelAdapter):
    """Base class of ``InMemoryMessageBusAdapter`` and ``InMemoryMessageQueueAdapter``."""

    async def wait_idle(self) -> None:
        """Return once no delivery is running or waiting for a retry."""
        loop = asyncio.get_running_loop()
        # Tasks of a loop that has ended can never finish in this one: they are not waited for.
        while busy := [task for task in self._tasks if not task.done() and task.get_loop() is loop]:
            await asyncio.wait(busy)

    def _start_eagerly(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` now, up to its first real wait; a task runs the rest, if any.

        That is an *eager task* (Python 3.12 and later): a handler that never waits is over
        before this returns, without a trip through the event loop, and one that waits has at
        least started. Its first step runs in a copy of the caller's context variables, so it
        cannot change the caller's.
        """
        if sys.version_info >= (3, 12):
            task = asyncio.Task(coroutine, loop=asyncio.get_running_loop(), eager_start=True)
            if not task.done():
                self._hold(task)
        else:  # Python 3.11 has no eager tasks: take the first step by hand, a task takes the rest
            # (during that step ``asyncio.current_task()`` is still the publisher's, not a task of its own)
            context = contextvars.copy_context()
            try:
                first_wait = context.run(coroutine.send, None)
            except StopIteration:
                return
            self._hold(
                asyncio.get_running_loop().create_task(_rest_of(coroutine, first_wait), context=context)
            )

    async def _sleep_before_retry(self, failed_attempt: int) -> None:
        await asyncio.sleep(self.retry_delay_for(failed_attempt) / 1000)
