"""Commands: the place where business rules decide which events to push.

A command handler reads the current state, decides, and pushes. Between the read and the push
another writer may have pushed the same version: the push then fails with
:class:`~castore_edu.core.errors.EventAlreadyExistsError`. Because the handler decided on stale state,
the right reaction is to run the *whole* handler again on fresh state — which is what
:class:`Command` does, up to ``event_already_exists_retries`` more times.

Keep handlers free of side effects other than pushing events: a retry repeats everything.

**When many writers race for one aggregate.** Castore retries at once. If ``n`` commands read the
same version together, one push wins and ``n - 1`` retry together, read the same new version
together, and again only one wins: ``(n - 1) + (n - 2) + ... + 1 = n (n - 1) / 2`` retries, for
``n`` successes (19,900 for 200 commands). Waiting a little before a retry, a random part of a
delay that doubles on each retry ("exponential back-off with jitter"), spreads the losers out in
time, so that fewer of them read the same version. :class:`RetryBackoff` computes that wait; it
is off by default (see :class:`Command` for why).

Every constructor argument is checked at once, so that a slip (a plain ``def`` where an
``async def`` is needed, a store not wrapped in a list) is reported where it is made, not later
when the command first runs.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from castore_edu.core.errors import is_event_already_exists_error
from castore_edu.core.event_store import EventStore

Handler = Callable[..., Awaitable[Any]]
OnEventAlreadyExists = Callable[..., Awaitable[Any]]
Sleep = Callable[[float], Awaitable[Any]]


class RandomSource(Protocol):
    """Where jitter comes from: anything with ``random()``, like ``random.Random(seed)``."""

    def random(self) -> float: ...


@dataclass(frozen=True)
class RetryBackoff:
    """How long a command waits before each retry, in milliseconds.

    Before retry number ``r`` (1 for the first), the longest wait is
    ``first_delay_ms * rate ** (r - 1)``, never more than ``max_delay_ms``. The wait itself is
    that longest wait minus a random share of up to ``jitter`` of it: with ``jitter=1`` ("full
    jitter") it is anywhere between 0 and the longest wait, with ``jitter=0`` exactly the longest
    wait. The growth adapts to the number of writers, which nobody knows in advance; the jitter
    is what spreads writers that lost the same race, since they would otherwise all wait the
    same time and collide again.
    """

    first_delay_ms: float = 0.0
    rate: float = 2.0
    max_delay_ms: float = 1000.0
    jitter: float = 1.0

    @property
    def is_off(self) -> bool:
        return self.first_delay_ms == 0

    def longest_delay_ms(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` without jitter."""
        delay = self.first_delay_ms
        for _ in range(retry_number - 1):
            if delay == 0 or self.rate == 1 or delay >= self.max_delay_ms:
                break  # the delay cannot change any more (and rate ** r could overflow a float)
            delay *= self.rate
        return min(delay, self.max_delay_ms)

    def delay_ms(self, retry_number: int, random_source: RandomSource) -> float:
        """The wait before retry ``retry_number``: the longest wait, less its random share."""
        longest = self.longest_delay_ms(retry_number)
        if longest == 0 or self.jitter == 0:
            return longest  # nothing drawn: a seeded source stays where it was
        return longest * (1 - self.jitter * random_source.random())


class Command:
    """A named handler that retries itself on version conflicts.

    ``command_id``, ``required_event_stores``, ``handler``, ``event_already_exists_retries`` and
    ``on_event_already_exists`` are Castore's. The keyword arguments after them go beyond Castore:
    the back-off between retries (see :class:`RetryBackoff`).

    - ``retry_delay_ms``: the longest wait before the first retry. **0, the default, retries at
      once, as Castore does.** The default stays Castore's because the right delay depends on the
      storage (a round trip in memory is microseconds, to a remote database milliseconds), and
      because with the default 2 retries a crowd of writers gives up after three attempts instead
      of retrying quadratically. Raising ``event_already_exists_retries`` for a busy aggregate is
      the moment to choose a delay too: about one round trip of your storage is a good start.
    - ``retry_backoff_rate``: how much longer each retry may wait than the one before (≥ 1).
    - ``max_retry_delay_ms``: the longest any retry waits.
    - ``retry_jitter``: the share of each wait drawn at random, from 0 to 1 (1: anywhere between
      0 and the longest wait).
    - ``jitter_random``: where the jitter comes from (``random.Random(seed)`` for reproducible
      runs); a fresh ``random.Random()`` by default.
    - ``sleep``: how to wait, given seconds (``asyncio.sleep`` by default; a test or a simulation
      may pass its own).

    The back-off is fixed when the command is made; ``event_already_exists_retries`` and
    ``on_event_already_exists`` are read each time the handler runs.
    """

    def __init__(
        self,
        *,
        command_id: str,
        required_event_stores: Sequence[EventStore],
        handler: Handler,
        event_already_exists_retries: int = 2,
        on_event_already_exists: OnEventAlreadyExists | None = None,
        retry_delay_ms: float = 0.0,
        retry_backoff_rate: float = 2.0,
        max_retry_delay_ms: float = 1000.0,
        retry_jitter: float = 1.0,
        jitter_random: RandomSource | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        check_command_id(command_id)
        check_event_stores(required_event_stores)
        check_async_callable("handler", handler)
        check_retries(event_already_exists_retries)
        if on_event_already_exists is not None:
            check_async_callable("on_event_already_exists", on_event_already_exists)
        backoff = make_backoff(retry_delay_ms, retry_backoff_rate, max_retry_delay_ms, retry_jitter)
        if jitter_random is not None:
            check_random_source(jitter_random)
        check_async_callable("sleep", sleep)

        self.command_id = command_id
        self.required_event_stores = list(required_event_stores)
        self.event_already_exists_retries = event_already_exists_retries
        self.on_event_already_exists = on_event_already_exists
        self._run = handler
        self._backoff = backoff
        self._jitter_random = random.Random() if jitter_random is None else jitter_random
        self._sleep = sleep

    async def handler(self, input: Any, event_stores: Sequence[EventStore], *context: Any) -> Any:
        """Run the user's handler; on a version conflict, tell ``on_event_already_exists``, wait
        as the back-off says (not at all by default) and run it again, until the retries are
        spent (then the conflict is raised)."""
        retries_left = self.event_already_exists_retries
        attempt_number = 1
        while True:
            try:
                return await self._run(input, event_stores, *context)
            except Exception as error:
                if not is_event_already_exists_error(error):
                    raise
                if self.on_event_already_exists is not None:
                    await self.on_event_already_exists(
                        error, attempt_number=attempt_number, retries_left=retries_left
                    )
                if retries_left == 0:
                    raise
                await self._wait_before_retry(retry_number=attempt_number)
                retries_left -= 1
                attempt_number += 1

    async def _wait_before_retry(self, *, retry_number: int) -> None:
        if self._backoff.is_off:
            return  # Castore's behaviour: not even a turn of the event loop
        await self._sleep(self._backoff.delay_ms(retry_number, self._jitter_random) / 1000)


# -- checks at the door ---------------------------------------------------------------------


def check_command_id(command_id: object) -> None:
    if not isinstance(command_id, str):
        raise TypeError(f"command_id must be a str, got {describe(command_id)}")
    if not command_id:
        raise ValueError("command_id must not be empty: it names the command in logs and errors")


def looks_like_an_event_store(candidate: object) -> bool:
    """An ``EventStore``, or an object that stands for one (a ``ConnectedEventStore`` wraps a
    store without subclassing it): it has an ``event_store_id`` and ``get_aggregate`` and
    ``push_event`` methods."""
    if isinstance(candidate, EventStore):
        return True
    return (
        hasattr(candidate, "event_store_id")
        and callable(getattr(candidate, "get_aggregate", None))
        and callable(getattr(candidate, "push_event", None))
    )


def check_event_stores(stores: object) -> None:
    if looks_like_an_event_store(stores):
        raise TypeError(
            "required_event_stores must be a sequence of event stores, got a single event store: "
            "put it in a list, required_event_stores=[store]"
        )
    if not isinstance(stores, Sequence) or isinstance(stores, str):
        raise TypeError(f"required_event_stores must be a list of event stores, got {describe(stores)}")
    for index, store in enumerate(stores):
        if not looks_like_an_event_store(store):
            raise TypeError(
                f"required_event_stores[{index}] must be an EventStore (or a store wrapping one, "
                f"like a ConnectedEventStore), got {describe(store)}"
            )


def is_async_callable(candidate: object) -> bool:
    """True for an ``async def`` function or method, a ``functools.partial`` of one, and an object
    whose ``__call__`` is ``async def``."""
    if inspect.iscoroutinefunction(candidate):
        return True
    if inspect.isclass(candidate):
        return False  # calling a class makes an instance, never a coroutine
    # Python looks ``__call__`` up on the type, so that is where an async one must be.
    return callable(candidate) and inspect.iscoroutinefunction(type(candidate).__call__)


def check_async_callable(name: str, candidate: object) -> None:
    if is_async_callable(candidate):
        return
    if callable(candidate) and not inspect.isclass(candidate):
        raise TypeError(
            f"{name} must be an async function, but {describe(candidate)} is not async: "
            "did you forget 'async' in 'async def'? The command awaits what it returns"
        )
    raise TypeError(f"{name} must be an async function (async def), got {describe(candidate)}")


def check_retries(retries: object) -> None:
    if not isinstance(retries, int) or isinstance(retries, bool):
        raise TypeError(f"event_already_exists_retries must be an int >= 0, got {describe(retries)}")
    if retries < 0:
        raise ValueError(f"event_already_exists_retries must be an int >= 0, got {retries!r}")


def check_number(name: str, value: object, *, at_least: float, at_most: float = math.inf) -> float:
    """``value`` if it is a finite real number (not a bool) within the bounds, else an error."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {describe(value)}")
    if not (math.isfinite(value) and at_least <= value <= at_most):
        bounds = f">= {at_least:g}" if at_most == math.inf else f"between {at_least:g} and {at_most:g}"
        raise ValueError(f"{name} must be a finite number {bounds}, got {value!r}")
    return value


def make_backoff(delay_ms: object, rate: object, max_delay_ms: object, jitter: object) -> RetryBackoff:
    backoff = RetryBackoff(
        first_delay_ms=check_number("retry_delay_ms", delay_ms, at_least=0),
        rate=check_number("retry_backoff_rate", rate, at_least=1),
        max_delay_ms=check_number("max_retry_delay_ms", max_delay_ms, at_least=0),
        jitter=check_number("retry_jitter", jitter, at_least=0, at_most=1),
    )
    if backoff.max_delay_ms < backoff.first_delay_ms:
        raise ValueError(
            f"max_retry_delay_ms ({backoff.max_delay_ms:g}) must not be less than "
            f"retry_delay_ms ({backoff.first_delay_ms:g})"
        )
    return backoff


def check_random_source(source: object) -> None:
    if not callable(getattr(source, "random", None)):
        raise TypeError(
            "jitter_random must have a random() method returning a float in [0, 1), "
            f"like random.Random(seed); got {describe(source)}"
        )


def describe(value: object) -> str:
    """``value`` as an error message shows it: a class or function by its name, a plain value by
    its repr, anything else by its type."""
    if inspect.isclass(value):
        return f"the class {value.__qualname__}"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"the function {value.__qualname__}"
    if isinstance(value, bool):
        return f"{value!r} (a bool)"
    if value is None or isinstance(value, (int, float, str)):
        return repr(value)
    return f"a {type(value).__name__}"
