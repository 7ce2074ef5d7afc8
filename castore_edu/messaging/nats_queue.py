"""A message queue adapter on NATS JetStream: one durable consumer that every worker shares.

A queue hands each message to *one* worker. On JetStream that is a stream with **work-queue
retention** (a message is deleted once acknowledged) read through **one durable consumer**, named
``worker``, shared by every process that sets a worker on this channel: the server gives each
message to one of them at a time, and gives it again if that one fails or dies (see
``nats_jetstream`` for acks, retries and ``ack_wait``).

As in memory, messages published while no worker is set wait (here: in the stream, across
restarts) and are delivered once one is; setting another worker hands it everything still
waiting, retries included. Each process reads one message at a time, in the stream's order; a
failed message comes back after its retry delay, behind the ones published meanwhile. Several
processes with a worker each work in parallel, so across processes the order is not kept.

Unsetting the worker (``adapter.worker = None``) withdraws this process's request for the next
message, or, if a message is being handled, stops reading once it is done. (A message already
on its way when the request is withdrawn goes back to the server: it counts as one delivery.)
"""

from __future__ import annotations

from typing import Any

from nats.js.api import RetentionPolicy

from castore_edu.messaging.delivery import Consumer, SettableWorker
from castore_edu.messaging.nats_jetstream import JetStreamChannelAdapter

WORKER_CONSUMER = "worker"


class NatsMessageQueueAdapter(SettableWorker, JetStreamChannelAdapter):
    """A queue on NATS JetStream: one shared durable consumer feeds ``worker``, one message at a time.

    ``NatsMessageQueueAdapter(*, worker=None, **settings)``: the settings are those of
    ``JetStreamChannelAdapter`` (``servers``, ``message_channel_id``, ``ack_wait``,
    ``replicas``, ``decode_aggregate``, the retry settings and ``handler_timeout``).
    """

    channel_kind = "queue"
    retention = RetentionPolicy.WORK_QUEUE  # a message is gone once one worker has acknowledged it

    def __init__(self, *, worker: Consumer | None = None, **settings: Any) -> None:
        super().__init__(**settings)
        self.worker = worker

    def _worker_changed(self) -> None:
        if self._worker is None:
            self._stop_reader_when_idle(WORKER_CONSUMER)
        else:
            self._start_soon()

    def _durables(self) -> list[str]:
        return [] if self._worker is None else [WORKER_CONSUMER]

    def _handler(self, durable: str) -> Consumer | None:
        return self._worker

    def _durable_of(self, handler: Consumer) -> str:
        return WORKER_CONSUMER  # one consumer, whichever worker reads it now
