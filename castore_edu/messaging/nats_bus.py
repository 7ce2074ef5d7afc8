"""A message bus adapter on NATS JetStream: every listener reads the channel through a consumer of its own.

The in-memory bus calls each matching handler in the publishing process. Here, publishing stores
the message in the channel's stream (see ``nats_jetstream``), and each listener, in whichever
process registered it, reads that stream through a **durable consumer of its own**: every
listener sees every message, as a bus promises, and a listener whose process was down finds,
when it starts again, what was published meanwhile.

A consumer's name must be the same each time the program starts, so it is made from the handler
and its place among the adapter's listeners: ``0-myapp_projections_on_pokemon_...``. Two
processes running the same program therefore share each listener's consumer, and each message
goes to one of them — replicas of one service split the work instead of doing it twice. A new
listener's consumer starts at the stream's first message: it receives what the channel still
keeps, which, on a bus, is everything published so far (delete the stream, or its consumers, to
start afresh).

**Filters** are those of the in-memory bus, applied by the same function
(``in_memory_bus.matches``): ``event_store_id``, ``event_type``, ``on_replay``, ``{}`` for every
live message, the same ``TypeError`` for a value that is not a string (``on_replay``: not a
bool). A listener's consumer receives the whole channel, and the reader acks the messages
its handler does not want without calling it. (The server could filter by subject instead — the
subjects say store, type and replay — but NATS refuses overlapping filters in one consumer, and
a handler's patterns may overlap; filtering in the reader keeps the rule in one place.)

Publishing returns once the server has stored the message, not once handlers have run (they may
run in another process). ``await adapter.wait_idle()`` waits for this process's listeners.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nats.js.api import RetentionPolicy

from castore_edu.messaging.delivery import Consumer, handler_name
from castore_edu.messaging.in_memory_bus import Listener, add_listener
from castore_edu.messaging.nats_jetstream import JetStreamChannelAdapter, token


class NatsMessageBusAdapter(JetStreamChannelAdapter):
    """A bus on NATS JetStream: each listener reads the channel's stream through its durable consumer.

    ``NatsMessageBusAdapter(**settings)``: the settings are those of ``JetStreamChannelAdapter``
    (``servers``, ``message_channel_id``, ``ack_wait``, ``replicas``, ``decode_aggregate``, the retry
    settings and ``handler_timeout``).
    """

    channel_kind = "bus"
    retention = RetentionPolicy.LIMITS  # messages stay when read: every listener reads them all

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._listeners: list[Listener] = []
        self._by_durable: dict[str, Listener] = {}

    def on(self, filter_pattern: Mapping[str, Any], handler: Consumer) -> None:
        """Call ``await handler(message, context)`` for each message of the channel that matches.

        As in memory, handlers are compared with ``==``: registering one again adds a pattern
        to its listener (and consumer). Inside a running event loop, reading starts at once.
        """
        if add_listener(self._listeners, filter_pattern, handler):
            durable = token(f"{len(self._listeners) - 1}-{handler_name(handler)}")
            self._by_durable[durable] = self._listeners[-1]
            self._start_soon()

    def _durables(self) -> list[str]:
        return list(self._by_durable)

    def _handler(self, durable: str) -> Consumer:
        return self._by_durable[durable].handler

    def _wants(self, durable: str, message: Any, replay: bool) -> bool:
        return self._by_durable[durable].wants(message, replay)

    def _durable_of(self, handler: Consumer) -> str:
        for durable, listener in self._by_durable.items():
            if listener.handler == handler:
                return durable
        raise ValueError(f"{handler_name(handler)} is not a listener of this adapter")
