"""The relay as a process of its own: ``castore-relay`` (or ``python -m castore_edu.reliability.relay_command``).

In notebook 08 the relay ran as a task beside the application. In production it is a small
service of its own: it follows the storage's ordered log and publishes on a broker, so the
application only writes to its database and never talks to the broker at all. Any number of
application processes, on any machines, can write; one relay publishes. ::

    castore-relay --storage postgresql://me@127.0.0.1:5432/pokedex \\
                  --nats nats://127.0.0.1:4222 \\
                  --route POKEMONS=bus:POKEMON_EVENTS --route TRAINERS=queue:TRAINER_JOBS

- ``--storage``: a PostgreSQL connection string (``postgresql://...``, or ``key=value`` words)
  or the path of an SQLite file. The relay's checkpoint lives in that database (table
  ``relay_checkpoints``, under ``--name``), so a relay started again, here or on another machine,
  continues where the last one stopped.
- ``--route STORE=bus:ID`` or ``STORE=queue:ID``: publish the events of event store ``STORE`` as
  notification messages on the NATS bus or queue ``ID`` (repeat for each store). A state-carrying
  channel needs the store's reducer, which a command line cannot carry: use :class:`Relay` in a
  script of your own for that.
- On PostgreSQL the relay is woken by ``NOTIFY`` after every committed write
  (:meth:`PostgresEventStorageAdapter.commits`); it also polls every ``--poll-interval`` seconds,
  which is all it does on SQLite.

``SIGTERM`` or Ctrl-C stops it cleanly. A ``kill -9`` loses nothing either: what it published
after its last checkpoint is published again by the next relay, and the broker drops those
duplicates (their message ids repeat; see ``messaging/nats_jetstream.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack, suppress
from typing import Any

from castore_edu.core.event_store import EventStore
from castore_edu.messaging.channels import MessageChannel, NotificationMessageBus, NotificationMessageQueue
from castore_edu.reliability.relay import Relay
from castore_edu.storage.protocol import close_adapter
from castore_edu.storage.sqlite import SQLiteEventStorageAdapter

logger = logging.getLogger("castore_edu")


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="castore-relay",
        description="Follow a storage's ordered log and publish its events on NATS JetStream.",
    )
    parser.add_argument(
        "--storage", required=True, help="a PostgreSQL connection string, or an SQLite file path"
    )
    parser.add_argument(
        "--nats", default="nats://127.0.0.1:4222", help="the NATS server (default: %(default)s)"
    )
    parser.add_argument(
        "--route",
        action="append",
        required=True,
        metavar="STORE=bus:ID",
        help="publish the events of event store STORE on the bus (or queue:ID) ID; repeatable",
    )
    parser.add_argument("--name", default="relay", help="the relay's name, which keys its checkpoint")
    parser.add_argument("--batch-size", type=int, default=100, help="log entries per step")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between polls")
    return parser.parse_args(argv)


def parse_route(route: str) -> tuple[str, str, str]:
    """``"POKEMONS=bus:NEWS"`` → ``("POKEMONS", "bus", "NEWS")``, or a ``ValueError`` that shows the form."""
    store_id, _, target = route.partition("=")
    kind, _, channel_id = target.partition(":")
    if not store_id or kind not in ("bus", "queue") or not channel_id:
        raise ValueError(f"a route reads STORE=bus:ID or STORE=queue:ID, got {route!r}")
    return store_id, kind, channel_id


def is_postgres(storage: str) -> bool:
    return storage.startswith(("postgresql://", "postgres://")) or "=" in storage


def open_storage(storage: str) -> Any:
    """The storage adapter for ``--storage``. PostgreSQL's is imported only when asked for."""
    if is_postgres(storage):
        from castore_edu.storage.postgres import PostgresEventStorageAdapter

        return PostgresEventStorageAdapter(storage)
    return SQLiteEventStorageAdapter(storage)


def channel_for(kind: str, channel_id: str, store: EventStore, nats_url: str) -> MessageChannel:
    """A notification bus or queue carrying ``store``'s events, on its NATS adapter."""
    from castore_edu.messaging.nats_bus import NatsMessageBusAdapter
    from castore_edu.messaging.nats_queue import NatsMessageQueueAdapter

    channel: MessageChannel
    if kind == "bus":
        channel = NotificationMessageBus(message_bus_id=channel_id, source_event_stores=[store])
        NatsMessageBusAdapter.attach_to(channel, servers=nats_url)
    else:
        channel = NotificationMessageQueue(message_queue_id=channel_id, source_event_stores=[store])
        NatsMessageQueueAdapter.attach_to(channel, servers=nats_url)
    return channel


async def run(options: argparse.Namespace, stop: asyncio.Event) -> Relay:
    """Relay until ``stop`` is set; return the relay (to say what it did)."""
    routes = [parse_route(route) for route in options.route]
    async with AsyncExitStack() as resources:
        storage = open_storage(options.storage)
        resources.push_async_callback(close_adapter, storage)
        channels: dict[str, MessageChannel] = {}
        for store_id, kind, channel_id in routes:
            # The relay only needs the store's id; a notification carries no aggregate.
            store = EventStore(
                event_store_id=store_id, event_types=[], reducer=lambda aggregate, event: aggregate
            )
            channels[store_id] = channel_for(kind, channel_id, store, options.nats)
            resources.push_async_callback(close_adapter, channels[store_id].get_message_channel_adapter())
        relay = Relay(
            storage,
            channels,
            name=options.name,
            batch_size=options.batch_size,
            poll_interval=options.poll_interval,
        )
        relay.start()
        resources.push_async_callback(relay.stop)
        if hasattr(storage, "commits"):
            waking = asyncio.ensure_future(_nudge_on_commits(storage, relay))
            resources.push_async_callback(_cancel, waking)
        logger.info("relay %s: following %s, routes %s", options.name, storage, sorted(channels))
        await stop.wait()
    return relay


async def _nudge_on_commits(storage: Any, relay: Relay) -> None:
    """Nudge the relay after each committed write; listen again if the connection drops (the
    relay's own polling covers the gap)."""
    while True:
        try:
            async for _ in storage.commits():
                relay.nudge()
        except ConnectionError as error:
            logger.info("relay %s: not woken by commits for now (%s)", relay.name, error)
            await asyncio.sleep(relay.poll_interval)


async def _cancel(task: asyncio.Future[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def main_async(argv: Sequence[str] | None = None, stop: asyncio.Event | None = None) -> int:
    """Relay until SIGTERM or Ctrl-C (or until ``stop`` is set, when given)."""
    options = parse_arguments(argv)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    stopping_signals = [signal.SIGTERM, signal.SIGINT]
    for signal_number in stopping_signals:
        with suppress(NotImplementedError):  # Windows: Ctrl-C still raises KeyboardInterrupt
            loop.add_signal_handler(signal_number, stop.set)
    try:
        relay = await run(options, stop)
    finally:
        for signal_number in stopping_signals:
            with suppress(NotImplementedError):
                loop.remove_signal_handler(signal_number)
    print(f"relay {relay.name}: published {relay.published} messages; checkpoint saved", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``castore-relay`` command."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return asyncio.run(main_async(argv))
    except ValueError as error:
        print(f"castore-relay: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover - python -m runs it in a process of its own
    sys.exit(main())
