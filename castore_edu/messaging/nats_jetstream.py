"""What the NATS JetStream bus and queue adapters share: streams, durable consumers, acks, retries.

The in-memory adapters keep messages in the publishing process: when it dies, they are gone, and
nobody in another process ever sees them. A broker keeps them outside every process. NATS does it
with **JetStream**: a *stream* stores every message published on its subjects, on disk, and a
*consumer* is the server's bookmark of one reader in that stream (what it has been given, what it
has acknowledged). A **durable** consumer has a name and outlives the processes that read it: a
reader that starts again under the same name goes on where the last one stopped, and messages
published while no reader ran are waiting for it.

**Names.** Each channel has a stream of its own, named from its kind and id, and its messages
travel on subjects below it::

    stream   castore-bus-pokemon-events          (castore-queue-... for a queue)
    subject  castore.bus.pokemon-events.live.POKEMONS.POKEMON_APPEARED
             castore.bus.pokemon-events.replay.POKEMONS.POKEMON_APPEARED   (publish(..., replay=True))
             castore.bus.pokemon-events.live.POKEMONS                      (an aggregate-exists message)

A NATS name allows fewer characters than a channel id or an event type may hold (no ``.``,
spaces, ``*``, ``>``), so every part goes through :func:`token`: other characters become ``_``
and a short hash of the original keeps two ids that differ only there apart.

**Acknowledging.** A reader asks its consumer for one message at a time, calls the handler, and
only then *acks* it. If the handler raises, the reader answers with a *NAK with a delay*: the
server keeps the message and hands it out again once the delay is over, the same
``round-half-up(retry_delay_ms * retry_backoff_rate ** (attempt - 1))`` ms as in memory. The
server counts the deliveries of each message, and that count is ``TaskContext.attempt``. After the
last retry the message is a dead letter (``adapter.dead_letters``, logged at ERROR on
``castore_edu``) and the reader *terminates* it: the server will not hand it out again.
``redeliver_dead_letters()`` stores it in the stream again, as a new message (its count starts
again at 1) that names the durable consumer it is for (header ``Castore-Resent-To``): on a bus,
the other listeners' readers acknowledge it unread.

**A reader that dies** (killed, crashed, its machine gone) never answers. The server waits
``ack_wait`` seconds, then delivers the message again, to whichever reader of that consumer asks
next. Must a handler then finish within ``ack_wait``? No: while a handler runs, the reader tells
the server every ``ack_wait / 3`` seconds that it is still working on the message
(``in_progress``). Only a silent reader loses its messages, and only after ``ack_wait`` (5 s by
default; a setting of both adapters). A message whose deliveries have run out that way, with no
answer, becomes a dead letter too (``UnansweredDeliveriesError``).

**A handler that hangs** is the other side of that coin: its reader is alive and keeps telling
the server it is working, so ``ack_wait`` never ends the wait, and the message is held for ever.
``handler_timeout`` (seconds; ``None``, the default: no limit) is the limit on the handler itself,
as in memory: the reader cancels a handler that takes longer and NAKs the message with the
back-off delay, like any failure (after the last retry: a dead letter whose error is a
``TimeoutError``). So ``ack_wait`` is how long the server waits for a *silent reader* (a dead
process), ``handler_timeout`` how long the reader waits for its *handler*; neither needs to be
larger than the other. A handler that raises ``CancelledError`` itself is a failure as well; only
``close()`` or the end of the event loop cancel the reader (see ``delivery``).

**Duplicates.** A live event-carrying message is published with the broker message id
``{event_store_id}#{aggregate_id}#{version}`` (header ``Nats-Msg-Id``): inside the stream's
duplicate window (two minutes), the server stores a message with an id it has already seen only
once, so a relay that publishes the same event again after a crash reaches no consumer twice.
Replayed messages carry no id: a replay is *meant* to deliver again. Aggregate-exists messages
carry none either: they have no version to tell one announcement from the next, and are mostly
sent by replays.

**Connections and loops.** An adapter connects on first use, inside the running event loop, and
again when it is used from a new loop (every ``asyncio.run`` has its own; the old loop's
connection is hung up without that loop, see :func:`_hang_up`). A first connection that fails raises
``ServerUnavailableError`` within a couple of seconds instead of retrying for ever; once
connected, nats-py rides out a short outage by itself, and the adapter's readers keep trying
after a longer one. ``await adapter.close()`` stops the readers and closes the connection; a
message a reader was in the middle of is delivered again after ``ack_wait``.

**A cluster.** One server is one disk: if it dies, so does every stream it keeps. A NATS cluster
(three servers, ``castore_edu.testing.servers.NatsCluster``) can keep a stream on several of
them: with ``replicas=3`` the adapter creates the channel's stream with three copies, and its
consumers with as many. One copy leads and the others follow (Raft): a message is stored, and
``publish_message`` returns, once a majority has it, so any one server may die without losing
it; the survivors then elect a new leader, and publishing and reading pause until they have
one (a few seconds). Give the adapter every server's URL (``servers=cluster.urls``): nats-py
moves to another one when the server it was connected to dies. During the pause, a publish
may fail (a relay publishes it again: the broker id drops the second copy) and an ack may be
lost (the message is delivered again after ``ack_wait``: handlers must be idempotent, as
always). ``replicas`` must not exceed the cluster's size; a lone server accepts only 1.

**Idle.** ``await adapter.wait_idle()`` asks the server, for each consumer this process reads,
how far it has acknowledged without a gap (its *ack floor*), and returns once that floor has
reached the last message this adapter published: everything it published has been handled or
dead-lettered (or, on a queue, by a worker of another process: the consumer is theirs too).
``wait_idle(timeout=seconds)`` raises ``TimeoutError`` if that takes longer, naming the handlers
of this process still running, and which message and attempt each is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StreamConfig
from nats.js.client import JetStreamContext

from castore_edu.core.errors import ServerUnavailableError
from castore_edu.messaging.delivery import (
    ChannelAdapter,
    Consumer,
    DeadLetter,
    Delivery,
    is_finite_number,
    seconds_or_none,
)
from castore_edu.messaging.messages import is_aggregate_exists_message
from castore_edu.messaging.wire import AggregateDecoder, decode_message, encode_message

logger = logging.getLogger("castore_edu")

DEFAULT_SERVERS = "nats://127.0.0.1:4222"
DUPLICATE_WINDOW_SECONDS = 120.0
MAX_REPLICAS = 5  # the most copies of a stream a NATS cluster keeps
# A first connection tries each server this many times more, this many seconds apart, then gives up.
CONNECT_RETRIES = 3
CONNECT_RETRY_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 2
# How long one request for a message waits on the server before the reader asks again (cheap:
# one small request a second per idle reader).
FETCH_SECONDS = 1.0
IDLE_POLL_SECONDS = 0.02
RESENT_TO_HEADER = "Castore-Resent-To"  # a re-sent dead letter: the durable consumer it is for


class UnansweredDeliveriesError(RuntimeError):
    """The error of a dead letter whose deliveries ran out without an answer: its reader died
    (or was stopped) in the middle of the handler each time."""


@functools.lru_cache(maxsize=4096)  # every publish names its channel, store and type again
def token(text: str) -> str:
    """``text`` as one NATS name (a stream, a consumer, a subject token): kept as it is when it
    holds only letters, digits, ``_`` and ``-``; otherwise those others become ``_`` and a short
    hash of ``text`` follows, so that ``"a.b"`` and ``"a b"`` stay two names."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", text):
        return text
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", text)
    return f"{readable}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def describe_servers(servers: str | Sequence[str]) -> str:
    """``NATS at 127.0.0.1:4222``: where ``servers`` point, without user names or passwords."""
    urls = [servers] if isinstance(servers, str) else list(servers)
    places = []
    for url in urls:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        places.append(f"{parts.hostname or 'localhost'}:{parts.port or 4222}")
    return "NATS at " + ", ".join(places)


def message_id(message: Any, *, replay: bool) -> str | None:
    """The broker message id of a live event-carrying message; ``None`` for the others."""
    if replay or is_aggregate_exists_message(message):
        return None
    event = message.event
    return f"{message.event_store_id}#{event.aggregate_id}#{event.version}"


class JetStreamChannelAdapter(ChannelAdapter):
    """Base class of ``NatsMessageBusAdapter`` and ``NatsMessageQueueAdapter``.

    A subclass says which kind of channel it serves (``channel_kind``), how its stream keeps
    messages (``retention``), which durable consumers this process reads (``_durables``), who
    handles a message read through one of them (``_handler``) and whether it wants it (``_wants``).

    The settings, shared by both adapters:

    - ``servers``: the NATS URL, or a list of them (``"nats://127.0.0.1:4222"``);
    - ``message_channel_id``: the channel, which names the stream (``attach_to`` fills it in);
    - ``ack_wait``: seconds the server waits for an answer before it delivers a message again;
    - ``replicas``: on how many servers of a cluster the stream is kept (1 to 5; see below);
    - ``decode_aggregate``: rebuilds a state-carrying message's aggregate from its JSON (``wire``);
    - ``retry_attempts``, ``retry_delay_ms``, ``retry_backoff_rate``: as in memory (``delivery``);
    - ``handler_timeout``: seconds a handler may take before it is cancelled and its message NAKed
      for a retry (``None``: no limit; not to be confused with ``ack_wait``, see above).
    """

    channel_kind: ClassVar[str]
    retention: ClassVar[RetentionPolicy]

    def __init__(
        self,
        *,
        servers: str | Sequence[str] = DEFAULT_SERVERS,
        message_channel_id: str | None = None,
        ack_wait: float = 5.0,
        replicas: int = 1,
        decode_aggregate: AggregateDecoder | None = None,
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
        if not is_finite_number(ack_wait) or ack_wait <= 0:
            raise ValueError("Invalid ack_wait, please select a positive number of seconds.")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= MAX_REPLICAS:
            raise ValueError(f"Invalid replicas, please select an int from 1 to {MAX_REPLICAS}.")
        self.servers = servers
        self.server = describe_servers(servers)
        self.message_channel_id = message_channel_id
        self.ack_wait = float(ack_wait)
        self.replicas = replicas
        self.decode_aggregate = decode_aggregate
        self._client: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting = asyncio.Lock()
        self._starting = asyncio.Lock()  # one _start_readers at a time, so no consumer gets two readers
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._delivering: set[str] = set()  # durables whose reader is handing out a message
        self._last_error: BaseException | None = None
        self._published_up_to = 0  # the stream sequence of the last message published through us

    @classmethod
    def attach_to(cls, channel: Any, **settings: Any) -> Self:
        """Build an adapter for ``channel`` (its stream is named from the channel's id) and attach it."""
        settings.setdefault("message_channel_id", channel.message_channel_id)
        return super().attach_to(channel, **settings)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message_channel_id!r}, {self.server})"

    # -- names -----------------------------------------------------------------------------

    @property
    def stream(self) -> str:
        """The name of the channel's stream, e.g. ``castore-bus-pokemon-events``."""
        return f"castore-{self.channel_kind}-{self._channel_token()}"

    def subject(self, message: Any, *, replay: bool) -> str:
        """The subject ``message`` travels on (see the module docstring)."""
        parts = ["castore", self.channel_kind, self._channel_token(), "replay" if replay else "live"]
        parts.append(token(message.event_store_id))
        if not is_aggregate_exists_message(message):
            parts.append(token(message.event.type))
        return ".".join(parts)

    def _channel_token(self) -> str:
        if self.message_channel_id is None:
            raise ValueError(
                f"{type(self).__name__} does not know its channel: use "
                f"{type(self).__name__}.attach_to(channel), or give message_channel_id=..."
            )
        return token(self.message_channel_id)

    # -- what a subclass says ----------------------------------------------------------------

    def _durables(self) -> list[str]:
        """The names of the durable consumers this process reads now."""
        raise NotImplementedError

    def _handler(self, durable: str) -> Consumer | None:
        """Who handles the messages read through ``durable`` (``None``: nobody, right now)."""
        raise NotImplementedError

    def _wants(self, durable: str, message: Any, replay: bool) -> bool:
        """Should ``durable``'s handler see ``message``? A message it does not want is acked unread."""
        return True

    def _durable_of(self, handler: Consumer) -> str:
        """The durable consumer through which ``handler`` reads (a dead letter's is re-sent there)."""
        raise NotImplementedError

    # -- connecting --------------------------------------------------------------------------

    async def _jetstream(self) -> JetStreamContext:
        """JetStream on this loop's connection (connected first if needed), the stream made."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # The connection and the lock belong to the loop they were made in, which may be gone.
            _hang_up(self._client)
            self._client, self._readers, self._delivering = None, {}, set()
            self._loop, self._connecting, self._starting = loop, asyncio.Lock(), asyncio.Lock()
        async with self._connecting:
            if self._client is None or self._client.is_closed:
                self._client = await self._connect()
                with self._server_errors():
                    await self._client.jetstream().add_stream(
                        StreamConfig(
                            name=self.stream,
                            subjects=[f"castore.{self.channel_kind}.{self._channel_token()}.>"],
                            retention=self.retention,
                            duplicate_window=DUPLICATE_WINDOW_SECONDS,
                            num_replicas=self.replicas,  # its consumers get as many
                        )
                    )
            return self._client.jetstream()

    async def _connect(self) -> Client:
        self._last_error = None
        try:
            return await nats.connect(
                self.servers if isinstance(self.servers, str) else list(self.servers),
                name="castore_edu",
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                reconnect_time_wait=CONNECT_RETRY_SECONDS,
                max_reconnect_attempts=CONNECT_RETRIES,
                error_cb=self._note_error,
            )
        except (nats.errors.Error, OSError) as error:
            reason = self._last_error or error  # "no servers available" says less than the last attempt
            raise ServerUnavailableError(server=self.server, reason=str(reason) or repr(reason)) from error

    async def _note_error(self, error: Exception) -> None:
        """nats-py reports connection trouble here (its default logs it at ERROR, for every try)."""
        self._last_error = error
        logger.debug("%s: %r", self.server, error)

    @contextlib.contextmanager
    def _server_errors(self) -> Iterator[None]:
        """Turn a lost or missing server into ``ServerUnavailableError`` (the server's own answers,
        JetStream API errors, stay as they are: they say what was wrong with the request)."""
        try:
            yield
        except nats.js.errors.APIError:
            raise
        except (nats.errors.Error, OSError) as error:
            raise ServerUnavailableError(server=self.server, reason=str(error) or repr(error)) from error

    async def close(self) -> None:
        """Stop this process's readers and close the connection. Registered handlers and the
        worker stay: the next call on the adapter connects and starts reading again."""
        readers, self._readers = self._live_readers(), {}
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        client, self._client = self._client, None
        if self._loop is not asyncio.get_running_loop():
            _hang_up(client)  # a connection of another (perhaps finished) loop
        elif client is not None and not client.is_closed:
            await client.close()

    # -- publishing --------------------------------------------------------------------------

    async def publish_message(self, message: Any, *, replay: bool = False) -> None:
        """Store ``message`` in the channel's stream; return once the server has it (not once it
        has been handled: that is ``wait_idle``)."""
        identity = message_id(message, replay=replay)
        await self._publish(message, replay, None if identity is None else {"Nats-Msg-Id": identity})

    async def _publish(self, message: Any, replay: bool, headers: dict[str, str] | None) -> None:
        data = encode_message(message)
        subject = self.subject(message, replay=replay)
        js = await self._start_readers()  # connected, the stream made, this process's readers running
        with self._server_errors():
            # No stream= guard header: only this channel's stream takes its subjects, because
            # JetStream refuses to make a stream whose subjects overlap another's.
            ack = await js.publish(subject, data, headers=headers)
        self._published_up_to = max(self._published_up_to, ack.seq)

    def _can_redeliver(self, letter: DeadLetter) -> bool:
        return not isinstance(letter.message, bytes)  # bytes that are no message: never better later

    async def _redeliver(self, letter: DeadLetter) -> None:
        """Store the letter's message in the stream again, addressed to the durable consumer that
        gave up on it (header ``Castore-Resent-To``): a new stream message, so its delivery count
        starts again at 1. It carries no broker id, or the server would drop it as a duplicate."""
        resent_to = {RESENT_TO_HEADER: self._durable_of(letter.handler)}
        await self._publish(letter.message, letter.replay, resent_to)

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Return once every message published through this adapter so far has been handled or
        dead-lettered by the consumers this process reads.

        With a ``timeout`` (seconds), raise ``TimeoutError`` if that takes longer; its message
        names the handlers of this process still running.
        """
        limit = seconds_or_none("timeout", timeout)
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            js = await self._start_readers()
            behind = False
            for durable in self._durables():
                with self._server_errors():
                    info = await js.consumer_info(self.stream, durable)
                floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
                behind = behind or floor < self._published_up_to
            if not behind:
                return
            if limit is not None and loop.time() - started >= limit:
                raise self._idle_timeout_error(
                    limit,
                    "no handler of this process is running: messages wait for a retry delay, "
                    "or for a consumer in another process",
                )
            await asyncio.sleep(IDLE_POLL_SECONDS)

    # -- reading -----------------------------------------------------------------------------

    def _start_soon(self) -> None:
        """From synchronous code (``on``, the worker setter): start reading now if a loop runs;
        otherwise the next ``publish_message`` or ``wait_idle`` does."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._spawn(self._start_readers_or_warn())

    async def _start_readers_or_warn(self) -> None:
        """A background start has nobody to raise to: it warns, and the next call tries again."""
        try:
            await self._start_readers()
        except Exception as error:
            logger.warning("%s could not start reading: %s", type(self).__name__, error)

    async def _start_readers(self) -> JetStreamContext:
        """Make sure each durable consumer exists and has a reader task in this loop."""
        js = await self._jetstream()
        async with self._starting:
            for durable in self._durables():
                reader = self._readers.get(durable)
                if reader is None or reader.done():
                    with self._server_errors():
                        await js.add_consumer(self.stream, self._consumer_config(durable))
                    self._readers[durable] = self._spawn(self._read(durable))
        return js

    def _consumer_config(self, durable: str) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            deliver_policy=DeliverPolicy.ALL,  # a new consumer starts at the stream's first message
            max_deliver=-1,  # the adapter decides when to give up, not the server
        )

    def _stop_reader_when_idle(self, durable: str) -> None:
        """Cancel ``durable``'s reader if it is waiting for a message; one that is delivering one
        stops by itself once that is done (``_read`` checks ``_durables`` before asking again)."""
        reader = self._readers.get(durable)
        if reader is not None and durable not in self._delivering:
            del self._readers[durable]
            reader.cancel()

    def _live_readers(self) -> list[asyncio.Task[None]]:
        loop = asyncio.get_running_loop()
        return [task for task in self._readers.values() if not task.done() and task.get_loop() is loop]

    async def _read(self, durable: str) -> None:
        """Ask ``durable`` for one message at a time, for as long as this process reads it."""
        subscription: JetStreamContext.PullSubscription | None = None
        failures = 0  # in a row: the first is a warning, the next ones (every half second) debug
        try:
            while durable in self._durables():
                try:
                    if subscription is None:
                        js = await self._jetstream()
                        subscription = await js.pull_subscribe_bind(durable=durable, stream=self.stream)
                    messages = await subscription.fetch(1, timeout=FETCH_SECONDS)
                except nats.errors.TimeoutError:
                    continue  # nothing new: ask again
                except (nats.errors.Error, OSError, ServerUnavailableError) as error:
                    failures += 1
                    level = logging.WARNING if failures == 1 else logging.DEBUG
                    logger.log(level, "%s: reading %s failed (%s); trying again", self.server, durable, error)
                    subscription = None
                    await asyncio.sleep(CONNECT_RETRY_SECONDS)
                    continue
                failures = 0
                self._delivering.add(durable)
                try:
                    for msg in messages:
                        await self._deliver(durable, msg)
                finally:
                    self._delivering.discard(durable)
        finally:
            if subscription is not None:
                # The server forgets our pending request for a message, instead of sending one that
                # nobody reads (it would come back only after ack_wait, as a second delivery).
                with contextlib.suppress(nats.errors.Error, OSError, RuntimeError):
                    await asyncio.shield(subscription.unsubscribe())

    async def _deliver(self, durable: str, msg: Msg) -> None:
        """Hand one message to its consumer; answer the server (ack, NAK with delay, or terminate)."""
        attempt = msg.metadata.num_delivered
        replay = msg.subject.split(".")[3:4] == ["replay"]
        resent_to = (msg.headers or {}).get(RESENT_TO_HEADER)
        if resent_to is not None and resent_to != durable:  # a dead letter of another listener
            await msg.ack()
            return
        consumer = self._handler(durable)
        if consumer is None:  # the worker was unset while this message was on its way
            await msg.nak()
            return
        try:
            message = decode_message(msg.data, self.decode_aggregate)
        except Exception as error:  # not ours, or an aggregate the decoder refuses: never better later
            self._dead_letter(consumer, msg.data, attempt, error, replay)
            await msg.term()
            return
        if not self._wants(durable, message, replay):
            await msg.ack()
            return
        if attempt > 1 + self.retry_attempts:
            unanswered = UnansweredDeliveriesError(
                f"delivered {attempt - 1} times without an answer: its reader died mid-handler"
            )
            self._dead_letter(consumer, message, attempt - 1, unanswered, replay)
            await msg.term()
            return
        delivery = Delivery(consumer, message, attempt, asyncio.current_task())
        async with self._working_on(msg):
            failure = await self._deliver_once(delivery, self._task_context(attempt, replay))
        if failure is None:
            await msg.ack()
        elif self._will_retry(consumer, message, attempt, failure, replay):
            # A timed-out handler too: NAKed now, with the back-off, rather than left to ack_wait.
            await msg.nak(delay=self.retry_delay_for(attempt) / 1000)
        else:
            await msg.term()

    @contextlib.asynccontextmanager
    async def _working_on(self, msg: Msg) -> AsyncIterator[None]:
        """While the handler runs, tell the server every ``ack_wait / 3`` s that we are on it."""

        async def keep_alive() -> None:
            with contextlib.suppress(nats.errors.Error, OSError):
                while True:
                    await asyncio.sleep(self.ack_wait / 3)
                    await msg.in_progress()

        ticker = asyncio.get_running_loop().create_task(keep_alive())
        try:
            yield
        finally:
            ticker.cancel()


def _hang_up(client: Client | None) -> None:
    """Close a connection of an event loop that may have ended, without that loop.

    Closing a nats-py client properly is a coroutine of its own loop; once that loop is gone, the
    socket would stay open until garbage collection, and the server would go on sending messages
    to that connection's pending requests (each back only after ``ack_wait``, as a redelivery).
    Shutting the socket down tells the server at once. nats-py has no public call for it, hence
    the guarded look at its transport.
    """
    if client is None or client.is_closed:
        return
    writer = getattr(getattr(client, "_transport", None), "_io_writer", None)
    sock = writer.get_extra_info("socket") if writer is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
