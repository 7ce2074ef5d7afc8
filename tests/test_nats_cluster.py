"""Beyond one node: a relay from PostgreSQL to a bus on a 3-node NATS cluster that loses a server.

One NATS server is one disk; a cluster of three (``castore_edu.testing.servers.NatsCluster``)
keeps the channel's stream on all three (``replicas=3``), led by one of them. This test runs the
whole path of an event — pushed on PostgreSQL, read from the log by a relay, published on the
cluster, read by a listener with its own connection (another process, as far as NATS can tell) —
and kills the **stream's leader** with SIGKILL in the middle of the run.

What it asserts, and why that is what the design promises:

- **every event reaches the handler** (the set of delivered events is the set pushed): the relay
  moves its checkpoint only after a publish succeeded, so a publish that failed while the cluster
  elected a new leader is published again;
- **the stream stores each event once**: a repeated publish carries the same broker message id
  (``Nats-Msg-Id``), and the stream drops the copy;
- **each event's effect happens exactly once**: *delivery* is still at least once — an ack lost
  with the dead server makes the consumer deliver that message again after ``ack_wait`` — so the
  handler is made idempotent (``reliability.idempotency``) and redeliveries are counted, not
  forbidden.

How long delivery paused is measured and printed (``pytest -s`` shows it; it is also a
``record_property`` of the test), never compared with a bound: a loaded machine may take longer
to elect, and waits are generous.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from typing import Any

import anyio
import nats
import nats.js.errors
import pytest

from castore_edu import EventDetail, EventStore, EventType, NotificationMessageBus, TaskContext
from castore_edu.core.errors import ServerUnavailableError
from castore_edu.messaging.nats_bus import NatsMessageBusAdapter
from castore_edu.messaging.nats_queue import NatsMessageQueueAdapter
from castore_edu.reliability.idempotency import MessageKey, idempotent, message_key
from castore_edu.reliability.relay import Relay
from castore_edu.storage.postgres import PostgresEventStorageAdapter
from castore_edu.testing.servers import NatsCluster
from tests.fixtures_pokemon import Recorder, appeared_message, caught_message

pytestmark = pytest.mark.anyio

AGGREGATES = 4
EVENTS = 240  # in all, pushed PUSH_RATE a second: about 5 s of steady traffic
PUSH_RATE = 50
KILL_AFTER = EVENTS // 3  # events pushed before the stream leader dies
WAIT = 45  # seconds: the longest the test waits for the last delivery


def counter_store(adapter: PostgresEventStorageAdapter) -> EventStore:
    return EventStore(
        event_store_id="COUNTERS",
        event_types=[EventType("INCREMENTED")],
        reducer=lambda total, event: (total or 0) + 1,
        event_storage_adapter=adapter,
    )


def the_events() -> list[EventDetail]:
    """``EVENTS`` increments, taking turns among ``AGGREGATES`` counters."""
    return [
        EventDetail(
            aggregate_id=f"counter-{index % AGGREGATES}",
            version=index // AGGREGATES + 1,
            type="INCREMENTED",
            payload={"n": index},
        )
        for index in range(EVENTS)
    ]


class Listener:
    """The consumer's handler: notes when each delivery arrived, then applies its effect through
    an idempotent wrapper, so a redelivered message changes nothing."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[MessageKey, float]] = []
        self.effects: Counter[MessageKey] = Counter()
        self._apply_once = idempotent(self._apply)

    async def _apply(self, message: Any, context: TaskContext) -> None:
        self.effects[message_key(message)] += 1

    async def __call__(self, message: Any, context: TaskContext) -> None:
        self.deliveries.append((message_key(message), time.monotonic()))
        await self._apply_once(message, context)

    def delivered(self) -> set[MessageKey]:
        return {key for key, _ in self.deliveries}


def longest_pause(times: list[float], kill: float) -> tuple[float, float]:
    """The longest wait for the next delivery from the kill on (the kill counting as the first
    point), and the median wait between two deliveries over the whole run."""
    ordered = sorted(times)
    gaps = [later - earlier for earlier, later in itertools.pairwise(ordered)]
    since_kill = [kill, *(at for at in ordered if at > kill)]
    pause = max(later - earlier for earlier, later in itertools.pairwise(since_kill))
    return pause, sorted(gaps)[len(gaps) // 2]


async def stream_leader(urls: list[str], stream: str) -> str:
    """The server name of ``stream``'s leader, asked of the cluster by a connection of our own."""
    client = await nats.connect(urls, connect_timeout=2)
    try:
        info = await client.jetstream().stream_info(stream)
        assert info.cluster is not None and info.cluster.leader is not None, info
        return info.cluster.leader
    finally:
        await client.close()


async def stored_messages(urls: list[str], stream: str) -> int:
    client = await nats.connect(urls, connect_timeout=2)
    try:
        return (await client.jetstream().stream_info(stream)).state.messages
    finally:
        await client.close()


async def test_every_event_crosses_a_cluster_whose_stream_leader_dies(
    postgres_conninfo: str, record_property: Any
) -> None:
    with NatsCluster(size=3) as cluster:
        storage = PostgresEventStorageAdapter(postgres_conninfo)
        store = counter_store(storage)
        bus = NotificationMessageBus(
            message_bus_id=f"cluster {uuid.uuid4().hex[:8]}", source_event_stores=[store]
        )
        publisher = NatsMessageBusAdapter.attach_to(bus, servers=cluster.urls, replicas=3)
        # The listener's own adapter and connection: another process, as far as NATS can tell.
        reading = NatsMessageBusAdapter(
            servers=cluster.urls, message_channel_id=bus.message_channel_id, replicas=3, ack_wait=2.0
        )
        listener = Listener()
        reading.on({}, listener)
        relay = Relay(storage, {store.event_store_id: bus}, poll_interval=0.05, retry_delay=0.2)
        try:
            with anyio.fail_after(WAIT):
                await reading.wait_idle()  # the replicated stream and the consumer exist
            relay.start()
            events = the_events()
            started = time.monotonic()
            killed_at, killed = 0.0, ""
            for index, event in enumerate(events):
                if index == KILL_AFTER:
                    killed = await stream_leader(cluster.urls, publisher.stream)
                    cluster.member_named(killed).kill()
                    killed_at = time.monotonic()
                await asyncio.sleep(max(0.0, started + index / PUSH_RATE - time.monotonic()))
                await store.push_event(event)
            with anyio.fail_after(WAIT):
                while len(listener.delivered()) < EVENTS:
                    await asyncio.sleep(0.05)
            new_leader = await stream_leader(cluster.urls, publisher.stream)
            stored = await stored_messages(cluster.urls, publisher.stream)
        finally:
            await relay.stop()
            await reading.close()
            await publisher.close()
            await storage.close()

    pushed = {("COUNTERS", event.aggregate_id, event.version) for event in events}
    assert listener.delivered() == pushed  # every event reached the handler...
    assert listener.effects == Counter(dict.fromkeys(pushed, 1))  # ...and took effect exactly once
    assert stored == EVENTS  # the stream dropped every repeated publish (same Nats-Msg-Id)
    assert new_leader != killed  # the survivors elected another leader
    pause, usual = longest_pause([at for _, at in listener.deliveries], killed_at)
    redelivered = len(listener.deliveries) - EVENTS
    record_property("delivery_pause_seconds", round(pause, 3))
    print(
        f"\nstream leader {killed} killed; delivery paused {pause:.2f} s (usual gap {usual * 1000:.0f} ms); "
        f"new leader {new_leader}; {redelivered} redeliveries, {relay.failures} failed relay steps"
    )


async def test_a_queue_moves_to_another_server_when_its_own_dies() -> None:
    """Given every URL, nats-py moves to a live server; the replicated queue keeps its messages."""
    with NatsCluster(size=3) as cluster:
        queue = NatsMessageQueueAdapter(
            servers=cluster.urls, message_channel_id=f"cluster {uuid.uuid4().hex[:8]}", replicas=3
        )
        worker = Recorder()
        queue.worker = worker
        try:
            with anyio.fail_after(WAIT):
                await queue.publish_message(appeared_message)
                await queue.wait_idle()
            assert queue._client is not None and queue._client.connected_url is not None
            own = queue._client.connected_url.port
            next(member for member in cluster.members if member.port == own).kill()
            with anyio.fail_after(WAIT):
                while True:  # a publish may fail while the cluster elects new leaders
                    try:
                        await queue.publish_message(caught_message)
                        break
                    except (ServerUnavailableError, nats.js.errors.APIError):
                        await asyncio.sleep(0.2)
                while caught_message not in worker.finished:  # (wait_idle would ask the leader too)
                    await asyncio.sleep(0.05)
            assert queue._client.connected_url.port != own
        finally:
            await queue.close()
    # each at least once (an ack lost with the dead server means one more delivery)
    assert appeared_message in worker.finished and caught_message in worker.finished
    assert all(message in (appeared_message, caught_message) for message in worker.finished)
