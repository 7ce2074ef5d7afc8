"""An in-memory message queue adapter: one worker processes every message, one at a time, in order.

``publish_message`` puts the message at the back of the queue and returns without waiting for the
worker (it yields to the event loop once, so an idle worker has already been called when it
returns). The worker takes messages from the front, one at a time. A message whose worker call
fails goes back to the *back* of the queue once its retry delay has passed (see ``delivery``).

Deviations from Castore's in-memory queue, both because a queue should keep what it is given:

- Messages published while no worker is set wait in the queue, and are delivered once a worker is
  set (Castore drops them).
- There is one queue, whatever the worker: setting another worker hands it every message still
  queued or waiting for a retry (Castore leaves those with the old worker). A message the old
  worker is busy with stays with it until that call ends.

Delivery starts inside a running event loop. Setting the worker outside one (at the top of a
script, say) is fine: delivery then starts at the next ``publish_message`` or ``wait_idle``. If the
loop ends while the worker is busy (``asyncio.run`` cancels what is left), the message goes back to
the front of the queue and is delivered again in the next loop: delivery is at least once. A
worker that raises ``CancelledError`` itself has failed, like any other error; and with
``handler_timeout`` (seconds) a worker call that takes longer is cancelled and counts as failed too
(see ``delivery``). Either way the worker goes on with the next message: a *poison message*, one
that fails whatever the worker does, costs its retries and ends as a dead letter, and the
messages behind it still get through.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from castore_edu.messaging.delivery import (
    Consumer,
    DeadLetter,
    Delivery,
    InMemoryChannelAdapter,
    SettableWorker,
)


@dataclass(frozen=True)
class _Queued:
    """A message in the queue, and the delivery it is waiting for."""

    message: Any
    attempt: int
    replay: bool


class InMemoryMessageQueueAdapter(SettableWorker, InMemoryChannelAdapter):
    """Feeds published messages to ``worker``, one at a time, in order."""

    def __init__(
        self,
        *,
        worker: Consumer | None = None,
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
        self._queued: deque[_Queued] = deque()
        self._consumer: asyncio.Task[None] | None = None
        self.worker = worker

    def _worker_changed(self) -> None:
        self._start_consuming()

    async def publish_message(self, message: Any, *, replay: bool = False) -> None:
        """Queue the message; return without waiting for the worker."""
        self._queued.append(_Queued(message, 1, replay))
        self._start_consuming()
        await asyncio.sleep(0)  # lets an idle worker start on the message

    async def _redeliver(self, letter: DeadLetter) -> None:
        """Queue the letter's message again, at the back, for whichever worker is set."""
        await self.publish_message(letter.message, replay=letter.replay)

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Return once the worker has nothing left to do now or after a retry delay.

        Messages waiting for a worker that is not set do not count. With a ``timeout``
        (seconds), raise ``TimeoutError`` naming the worker call still running if it takes longer.
        """
        self._start_consuming()
        await super().wait_idle(timeout)

    def _start_consuming(self) -> None:
        """Start the task that feeds the worker, unless it runs already or has nothing to do."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the next publish_message or wait_idle starts it
        consumer = self._consumer
        if consumer is not None and not consumer.done() and consumer.get_loop() is loop:
            return
        if self._worker is not None and self._queued:
            self._consumer = self._spawn(self._consume())

    async def _consume(self) -> None:
        while self._worker is not None and self._queued:
            queued, worker = self._queued.popleft(), self._worker
            delivery = Delivery(worker, queued.message, queued.attempt, asyncio.current_task())
            try:
                error = await self._deliver_once(delivery, self._task_context(queued.attempt, queued.replay))
            except asyncio.CancelledError:
                self._queued.appendleft(queued)  # the loop is closing: keep the message for the next one
                raise
            if error is not None and self._will_retry(
                worker, queued.message, queued.attempt, error, queued.replay
            ):
                self._spawn(self._retry_later(queued))

    async def _retry_later(self, queued: _Queued) -> None:
        try:
            await self._sleep_before_retry(queued.attempt)
        finally:  # also when the loop closes during the delay: the message is not lost
            self._queued.append(replace(queued, attempt=queued.attempt + 1))
        self._start_consuming()
