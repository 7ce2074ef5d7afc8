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
``castore_edu``, level ERROR) and kept in ``adapter.dead_letters``. Once the consumer is fixed,
``await adapter.redeliver_dead_letters()`` sends those messages again (``ChannelAdapter`` explains
to whom, and what happens to a letter that fails again).

Consumers run in asyncio tasks of the loop that publishes. A bus starts each handler as an
*eager task*: its first step runs at once, inside ``publish_message``, and a handler that never
waits is over before the loop sees it (Python 3.12's ``asyncio.Task(..., eager_start=True)``; on
Python 3.11, which lacks it, ``_start_eagerly`` takes that first step by hand). The adapter
keeps a reference to each task until it ends (asyncio itself keeps only weak ones).
``await adapter.wait_idle()`` returns once none of them is running or waiting for a retry —
handy in tests and notebooks. Nothing here is tied to one event loop: an adapter made outside
any loop works inside every later ``asyncio.run``.

**Hangs.** A consumer that never returns would keep ``wait_idle()`` waiting for ever, and its
message with it. Two settings stop that from being silent: ``wait_idle(timeout=seconds)`` raises
``TimeoutError`` naming what is still running (which consumer, which message, which attempt), and
the constructor's ``handler_timeout=seconds`` (``None``, the default: no limit) cancels a delivery
that takes longer and counts it as a failed one: retried with the back-off, then a dead letter
whose error is a ``TimeoutError``.

**A consumer that raises ``asyncio.CancelledError``** (say, it awaited a task that someone else
cancelled) has failed, like one that raises anything else: it is retried, then dead-lettered and
logged. Only a cancellation of the adapter's *own* task (``close()``, the end of the event loop)
stops the adapter. ``_deliver_once`` explains how the two are told apart.
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

from castore_edu.core.arguments import require_callable
from castore_edu.messaging.messages import is_aggregate_exists_message, is_event_carrying_message

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
    """A message whose consumer still failed after the last retry (``replay``: it was a replay)."""

    message: Any
    error: BaseException
    attempts: int
    handler: Consumer
    replay: bool = False


def handler_name(handler: Consumer) -> str:
    """``module.qualified_name`` of a consumer: a function, a bound method, a ``functools.partial``
    of one, or an object with an ``async __call__`` (named after its class)."""
    target: Any = getattr(handler, "__func__", None) or getattr(handler, "func", None) or handler
    if not hasattr(target, "__qualname__"):
        target = type(target)
    return f"{target.__module__}.{target.__qualname__}"


def describe_message(message: Any) -> str:
    """A message in a few words, for error messages: ``POKEMONS pikachu1 version 1 (APPEARED)``."""
    if is_event_carrying_message(message):
        event = message.event
        return f"{message.event_store_id} {event.aggregate_id} version {event.version} ({event.type})"
    if is_aggregate_exists_message(message):
        return f"{message.event_store_id} {message.aggregate_id} (aggregate exists)"
    return repr(message)


@dataclass(eq=False)
class Delivery:
    """A message on its way to one consumer: what ``handler_timeout`` cancels, and what
    ``wait_idle(timeout=...)`` names when it is still running."""

    consumer: Consumer
    message: Any
    attempt: int = 1
    task: asyncio.Task[Any] | None = None  # the task that runs the consumer (None: not known yet)
    timed_out: bool = False  # the adapter cancelled this attempt because of handler_timeout

    def describe(self) -> str:
        return f"{handler_name(self.consumer)} on {describe_message(self.message)}, attempt {self.attempt}"


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


def seconds_or_none(name: str, value: object) -> float | None:
    """A time limit: ``None`` (no limit) or a positive, finite number of seconds."""
    if value is None:
        return None
    if not is_finite_number(value) or value <= 0:
        raise ValueError(f"Invalid {name}, please select a positive number of seconds (or None).")
    return float(value)


class ChannelAdapter:
    """What every shipped channel adapter shares, in memory or on a broker: the retry settings and
    the delays they give, the contexts consumers are told, dead letters, ``attach_to``, the
    ``handler_timeout`` of one delivery, and the tasks the adapter holds on to. (The NATS adapters,
    ``nats_jetstream``, build on it too.)"""

    def __init__(
        self,
        *,
        retry_attempts: int = 2,
        retry_delay_ms: float = 30_000,
        retry_backoff_rate: float = 2.0,
        handler_timeout: float | None = None,
    ) -> None:
        self.retry_attempts = round_half_up(_non_negative("retry_attempts", retry_attempts, "integer"))
        self.retry_delay_ms = round_half_up(_non_negative("retry_delay_ms", retry_delay_ms, "number"))
        self.retry_backoff_rate = _non_negative("retry_backoff_rate", retry_backoff_rate, "number")
        self.handler_timeout = seconds_or_none("handler_timeout", handler_timeout)
        self.dead_letters: list[DeadLetter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: list[Delivery] = []  # deliveries whose consumer is being awaited now

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

    async def redeliver_dead_letters(
        self, where: Callable[[DeadLetter], bool] | None = None
    ) -> list[DeadLetter]:
        """Send the dead letters again — every one, or those ``where(letter)`` is true for — and
        return them, oldest first.

        Each message goes again to the consumer that gave up on it, as a new delivery: attempt 1,
        every retry ahead of it, the same ``replay`` flag. On a bus that is the letter's handler
        alone (the other listeners handled the message already); on a queue, the message goes to
        the back of the queue, for its worker (the one set now). Fix the consumer first: a letter
        that fails again is given up on again, and becomes a new dead letter at the end of the list.

        A letter leaves ``dead_letters`` only once it is on its way, so nothing is ever dropped: if
        sending fails (a broker that is down), the error is raised and the letters not sent stay.
        (On NATS, bytes that were no message stay too: sending them again could not help.)
        """
        if where is not None:
            require_callable("where", where)
        chosen = [
            letter
            for letter in self.dead_letters
            if self._can_redeliver(letter) and (where is None or where(letter))
        ]
        for letter in chosen:
            await self._redeliver(letter)
            # By identity: a letter that failed again at once is a new one, equal or not.
            self.dead_letters[:] = [kept for kept in self.dead_letters if kept is not letter]
        return chosen

    def _can_redeliver(self, letter: DeadLetter) -> bool:
        """Could sending ``letter`` again ever help? (Not for bytes that are no message, on NATS.)"""
        return True

    async def _redeliver(self, letter: DeadLetter) -> None:
        """Start a new delivery of ``letter.message`` to the consumer that gave up on it."""
        raise NotImplementedError

    def retry_delay_for(self, failed_attempt: int) -> int:
        """Milliseconds to wait after delivery number ``failed_attempt`` failed."""
        return round_half_up(self.retry_delay_ms * self.retry_backoff_rate ** (failed_attempt - 1))

    async def wait_idle(self, timeout: float | None = None) -> None:
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

    async def _deliver_once(self, delivery: Delivery, context: TaskContext) -> BaseException | None:
        """Await the consumer once; return what made this delivery fail, or ``None`` if it did not.

        A failure is whatever the consumer raised, a ``CancelledError`` included, or a
        ``TimeoutError`` if it outlasted ``handler_timeout``. Only a cancellation of the adapter's
        own task (``close()``, the end of the event loop) is raised: it must stop the adapter.
        """
        delivery.timed_out = False
        timer = self._start_timer(delivery)
        self._running.append(delivery)
        error: BaseException | None = None
        try:
            await delivery.consumer(delivery.message, context)
        except (Exception, asyncio.CancelledError) as failure:
            error = failure
        finally:
            self._running.remove(delivery)
            if timer is not None:
                timer.cancel()
        # Who cancelled? A CancelledError looks the same wherever it comes from, but a task counts
        # the cancellations *requested of it* (Task.cancelling(), Python 3.11+): task.cancel() adds
        # one, and close() or the end of the loop cancel the adapter's task that way. A consumer
        # that raises CancelledError itself (or awaits something that another task cancelled)
        # leaves that count at zero. Our own handler_timeout cancel is one we take back here
        # (uncancel), as asyncio.timeout does; whatever is left was asked by someone else.
        if delivery.timed_out and delivery.task is not None:
            delivery.task.uncancel()
        if isinstance(error, asyncio.CancelledError) and self._cancelled_from_outside(delivery):
            raise error
        if delivery.timed_out:
            return TimeoutError(
                f"{delivery.describe()} took longer than handler_timeout={self.handler_timeout} s"
            )
        return error

    def _start_timer(self, delivery: Delivery) -> asyncio.TimerHandle | None:
        """With a ``handler_timeout``, cancel ``delivery`` once it is over (see ``_time_out``)."""
        if self.handler_timeout is None:
            return None
        return asyncio.get_running_loop().call_later(self.handler_timeout, self._time_out, delivery)

    @staticmethod
    def _time_out(delivery: Delivery) -> None:
        """``delivery`` ran out of time: cancel its task, and remember that the adapter did it.

        The task is looked up now, not when the timer started: a bus handler's first step may
        run before its task exists (Python 3.11, see ``_start_eagerly``); a timer, though, only
        fires from the event loop, after ``publish_message`` has recorded the task.
        """
        if delivery.task is not None and delivery.task.cancel():
            delivery.timed_out = True

    @staticmethod
    def _cancelled_from_outside(delivery: Delivery) -> bool:
        """Has someone asked the task that runs ``delivery`` to stop? (No task yet: nobody could.)"""
        return delivery.task is not None and delivery.task.cancelling() > 0

    def _idle_timeout_error(self, timeout: float, nothing_running: str) -> TimeoutError:
        """The error of a ``wait_idle`` that ran out of time: what is still running, or else why
        the adapter is not idle (``nothing_running``)."""
        running = "; ".join(delivery.describe() for delivery in self._running)
        return TimeoutError(
            f"{type(self).__name__} not idle after {timeout} s (wait_idle timeout); "
            + (f"still running: {running}" if running else nothing_running)
        )

    def _will_retry(
        self, consumer: Consumer, message: Any, attempt: int, error: BaseException, replay: bool
    ) -> bool:
        """Delivery number ``attempt`` failed with ``error``: True if another one is due.

        After the last allowed delivery the message becomes a dead letter, and is logged.
        """
        if attempt <= self.retry_attempts:
            logger.debug(
                "Delivery %d of %r failed, retrying in %d ms", attempt, message, self.retry_delay_for(attempt)
            )
            return True
        self._dead_letter(consumer, message, attempt, error, replay)
        return False

    def _dead_letter(
        self, consumer: Consumer, message: Any, attempts: int, error: BaseException, replay: bool
    ) -> None:
        """Give up on ``message``: keep it in ``dead_letters``, and log it."""
        self.dead_letters.append(DeadLetter(message, error, attempts, consumer, replay))
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

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Return once no delivery is running or waiting for a retry.

        With a ``timeout`` (seconds), raise ``TimeoutError`` if that takes longer; its message
        names the deliveries still running (a consumer that hangs, say).
        """
        limit = seconds_or_none("timeout", timeout)
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Tasks of a loop that has ended can never finish in this one: they are not waited for.
        while busy := [task for task in self._tasks if not task.done() and task.get_loop() is loop]:
            if limit is None:
                await asyncio.wait(busy)
            elif (seconds_left := started + limit - loop.time()) > 0:
                await asyncio.wait(busy, timeout=seconds_left)
            else:
                raise self._idle_timeout_error(limit, "nothing is running: retries wait for their delay")

    def _start_eagerly(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """Run ``coroutine`` now, up to its first real wait; a task runs the rest, if any.

        That is an *eager task* (Python 3.12 and later): a handler that never waits is over
        before this returns, without a trip through the event loop, and one that waits has at
        least started. Its first step runs in a copy of the caller's context variables, so it
        cannot change the caller's. Returns the task that runs the rest (``None``: nothing left).
        """
        if sys.version_info >= (3, 12):
            task = asyncio.Task(coroutine, loop=asyncio.get_running_loop(), eager_start=True)
            if task.done():
                return None
            self._hold(task)
            return task
        else:  # Python 3.11 has no eager tasks: take the first step by hand, a task takes the rest
            # (during that step ``asyncio.current_task()`` is still the publisher's, not a task of its own)
            context = contextvars.copy_context()
            try:
                first_wait = context.run(coroutine.send, None)
            except StopIteration:
                return None
            rest = asyncio.get_running_loop().create_task(_rest_of(coroutine, first_wait), context=context)
            self._hold(rest)
            return rest

    async def _sleep_before_retry(self, failed_attempt: int) -> None:
        await asyncio.sleep(self.retry_delay_for(failed_attempt) / 1000)
