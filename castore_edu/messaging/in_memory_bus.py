"""An in-memory message bus adapter: fan each message out to every listener that wants it.

Listeners register with ``adapter.on(filter_pattern, handler)``. A filter pattern is a mapping
with optional keys:

- ``event_store_id``: only messages from that store;
- ``event_type``: only messages carrying an event of that type (from any store, unless
  ``event_store_id`` is given too). Aggregate-exists messages carry no event, so never match it;
- ``on_replay``: ``True`` to *also* receive replayed messages (``publish_message(..., replay=True)``).
  Without it, a handler sees real-time messages only.

The values are strings (and ``on_replay`` a bool): anything else raises ``TypeError``. Comparing
a message's ``"POKEMON_APPEARED"`` with the ``EventType`` object itself would silently match
nothing, so ``{"event_type": PokemonAppeared}`` is refused with a hint: give its ``.type``.

``{}`` matches every real-time message. A handler registered with several patterns still runs once
per message. (Castore differs on one point: there, ``event_type`` without ``event_store_id``
matches everything.)

Publishing does not wait for the handlers — a bus does not know who listens, let alone how long
they take. ``publish_message`` starts each matching handler as an *eager task*: the handler runs
at once, up to its first real wait (a handler that never waits is over by then), and the task
runs the rest. So every handler has been *started* when ``publish_message`` returns, as in
Castore, where listeners are called synchronously. (A plain ``asyncio.create_task`` would start
them only at the event loop's next turn, after ``publish_message`` has returned.) A failing handler
is retried on its own; the other handlers of the message are not run again (nor are they when
``redeliver_dead_letters`` sends a dead letter back to its handler). See ``delivery`` for
eager tasks on Python 3.11, retries, dead letters, ``handler_timeout`` and ``wait_idle(timeout=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from castore_edu.messaging.delivery import (
    Consumer,
    DeadLetter,
    Delivery,
    InMemoryChannelAdapter,
    require_async_callable,
)

FILTER_KEYS = frozenset({"event_store_id", "event_type", "on_replay"})


def check_filter_pattern(filter_pattern: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``filter_pattern``; ``ValueError`` if it has keys a bus does not know,
    ``TypeError`` if a value has the wrong type (see ``check_filter_value``)."""
    if not isinstance(filter_pattern, Mapping):
        raise TypeError(
            f"A filter pattern is a mapping such as {{'event_store_id': 'POKEMONS'}}, got {filter_pattern!r}"
        )
    unknown = sorted(set(filter_pattern) - FILTER_KEYS)
    if unknown:
        raise ValueError(f"Unknown filter pattern keys {unknown}; allowed: {sorted(FILTER_KEYS)}")
    for key, value in filter_pattern.items():
        check_filter_value(key, value)
    return dict(filter_pattern)


def check_filter_value(key: str, value: object) -> None:
    """Refuse, with ``TypeError``, a value that could never match: filters compare strings.

    The likely slip is the object instead of its name, ``{"event_type": PokemonAppeared}`` (an
    ``EventType``) or ``{"event_store_id": pokemons_store}``: the message then says which
    attribute to give.
    """
    if key == "on_replay":
        if not isinstance(value, bool):
            raise TypeError(f"The on_replay filter value must be True or False, got {value!r}")
        return
    if isinstance(value, str):
        return
    name_attribute = "type" if key == "event_type" else "event_store_id"
    name = getattr(value, name_attribute, None)
    hint = f' (use its .{name_attribute}, e.g. {{"{key}": "{name}"}})' if isinstance(name, str) else ""
    raise TypeError(f"The {key} filter value must be a string, got {value!r}{hint}")


def matches(filter_pattern: Mapping[str, Any], message: Any, *, replay: bool) -> bool:
    """Does ``message`` (published with ``replay``) pass ``filter_pattern``? (``None``: key absent.)"""
    if replay and not filter_pattern.get("on_replay"):
        return False
    event_store_id = filter_pattern.get("event_store_id")
    if event_store_id is not None and event_store_id != message.event_store_id:
        return False
    event_type = filter_pattern.get("event_type")
    if event_type is not None:
        event = getattr(message, "event", None)
        return event is not None and event.type == event_type
    return True


@dataclass
class Listener:
    """A handler and the patterns it was registered with (a bus adapter keeps a list of them)."""

    handler: Consumer
    filter_patterns: list[dict[str, Any]] = field(default_factory=list)

    def wants(self, message: Any, replay: bool) -> bool:
        return any(matches(pattern, message, replay=replay) for pattern in self.filter_patterns)


def add_listener(listeners: list[Listener], filter_pattern: Mapping[str, Any], handler: Consumer) -> bool:
    """Register ``handler`` for ``filter_pattern`` in ``listeners``; True if that made a new listener.

    Handlers are compared with ``==`` (not ``is``), so registering ``obj.method`` twice adds a
    second pattern to the same listener rather than a second listener.
    """
    pattern = check_filter_pattern(filter_pattern)
    require_async_callable(handler, "handler")
    for listener in listeners:
        if listener.handler == handler:
            listener.filter_patterns.append(pattern)
            return False
    listeners.append(Listener(handler, [pattern]))
    return True


class InMemoryMessageBusAdapter(InMemoryChannelAdapter):
    """Runs every handler whose filter pattern matches a published message.

    ``handler_timeout`` (seconds, ``None``: no limit) cancels a handler that runs longer and
    counts that as a failed delivery; see ``delivery`` for it and for the retry settings.
    """

    def __init__(
        self,
        *,
        retry_attempts: int = 2,
        retry_delay_ms: float = 30_000,
        retry_backoff_rate: float = 2.0,
        handler_timeout: float | None = None,
    ) -> None:
        super().__init__(
            retry_attempts=retry_attempts,
            retry_delay_ms=retry_delay_ms,
            retry_backoff_rate=retry_backoff_rate,
            handler_timeout=handler_timeout,
        )
        self._listeners: list[Listener] = []

    def on(self, filter_pattern: Mapping[str, Any], handler: Consumer) -> None:
        """Call ``await handler(message, context)`` for each published message that matches
        (a handler registered again gets one more pattern: see ``add_listener``)."""
        add_listener(self._listeners, filter_pattern, handler)

    async def publish_message(self, message: Any, *, replay: bool = False) -> None:
        """Start every matching handler, in registration order, without waiting for them."""
        for listener in list(self._listeners):
            if listener.wants(message, replay):
                delivery = Delivery(listener.handler, message)
                delivery.task = self._start_eagerly(self._run_handler(delivery, replay))

    async def _redeliver(self, letter: DeadLetter) -> None:
        """Start the letter's handler again, alone, as ``publish_message`` starts each handler."""
        delivery = Delivery(letter.handler, letter.message)
        delivery.task = self._start_eagerly(self._run_handler(delivery, letter.replay))

    async def _run_handler(self, delivery: Delivery, replay: bool) -> None:
        while True:
            error = await self._deliver_once(delivery, self._task_context(delivery.attempt, replay))
            if error is None or not self._will_retry(
                delivery.consumer, delivery.message, delivery.attempt, error, replay
            ):
                return
            await self._sleep_before_retry(delivery.attempt)
            delivery.attempt += 1
