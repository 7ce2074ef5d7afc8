"""Shared fixtures of the messaging tests: Pokémon stores, Castore's blueprint stores, recording fakes.

Plain module (not a conftest): tests import what they need from it. The core Pokémon fixture
itself lives in ``tests.pokemon``; this module adds short names, a spying store and the fakes.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail, EventType
from castore_edu.messaging.channels import NotificationMessageBus
from castore_edu.messaging.delivery import TaskContext
from castore_edu.messaging.messages import NotificationMessage
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from tests.pokemon import (
    CHARIZARD_LEVELED_UP,
    PIKACHU_EVENTS,
    POKEMON_EVENT_TYPES,
    POKEMONS,
    pokemons_event_store,
    pokemons_reducer,
)

# -- Castore's core Pokémon fixture (from tests.pokemon), under short names ---------------------

appeared, caught, leveled_up = PIKACHU_EVENTS
charizard_leveled_up = CHARIZARD_LEVELED_UP
pokemon_reducer = pokemons_reducer


class SpyEventStore(EventStore):
    """A real EventStore that also records the calls it gets (a fake, not a mock)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pushes: list[tuple[EventDetail, Any, bool]] = []
        self.aggregate_reads: list[tuple[str, int | None]] = []
        self.event_reads = 0

    async def push_event(self, event: EventDetail, *, prev_aggregate: Any = None, force: bool = False) -> Any:
        self.pushes.append((event, prev_aggregate, force))
        return await super().push_event(event, prev_aggregate=prev_aggregate, force=force)

    async def get_aggregate(self, aggregate_id: str, *, max_version: int | None = None) -> Any:
        self.aggregate_reads.append((aggregate_id, max_version))
        return await super().get_aggregate(aggregate_id, max_version=max_version)

    async def get_events(self, aggregate_id: str, **options: Any) -> list[EventDetail]:
        self.event_reads += 1
        return await super().get_events(aggregate_id, **options)


def pokemons_store(initial_events: tuple[EventDetail, ...] | list[EventDetail] = ()) -> EventStore:
    """The core fixture's POKEMONS store, on in-memory storage seeded with ``initial_events``."""
    return pokemons_event_store(InMemoryEventStorageAdapter(initial_events))


def spy_pokemons_store(initial_events: tuple[EventDetail, ...] | list[EventDetail] = ()) -> SpyEventStore:
    """``pokemons_store`` that records its pushes and reads."""
    return SpyEventStore(
        event_store_id=POKEMONS,
        event_types=POKEMON_EVENT_TYPES,
        reducer=pokemons_reducer,
        event_storage_adapter=InMemoryEventStorageAdapter(initial_events),
    )


# -- Castore's blueprint fixture (two stores) ------------------------------------------------


def version_reducer(aggregate: dict[str, Any] | None, event: EventDetail) -> dict[str, Any]:
    """The blueprint tests look at messages, not states: this reducer only tracks the version."""
    return {"aggregate_id": event.aggregate_id, "version": event.version}


def blueprint_stores() -> tuple[EventStore, EventStore]:
    """POKEMONS (APPEARED, CAUGHT_BY_TRAINER, LEVELLED_UP) and TRAINERS (GAME_STARTED, POKEMON_CAUGHT)."""
    pokemons = EventStore(
        event_store_id="POKEMONS",
        event_types=[EventType("APPEARED"), EventType("CAUGHT_BY_TRAINER"), EventType("LEVELLED_UP")],
        reducer=version_reducer,
        event_storage_adapter=InMemoryEventStorageAdapter(),
    )
    trainers = EventStore(
        event_store_id="TRAINERS",
        event_types=[EventType("GAME_STARTED"), EventType("POKEMON_CAUGHT")],
        reducer=version_reducer,
        event_storage_adapter=InMemoryEventStorageAdapter(),
    )
    return pokemons, trainers


pikachu_appeared = EventDetail(
    aggregate_id="pikachu1",
    version=1,
    type="APPEARED",
    timestamp="2022-01-01T00:00:00.000Z",
    payload={"name": "Pikachu", "level": 42},
)
pikachu_caught = EventDetail(
    aggregate_id="pikachu1",
    version=2,
    type="CAUGHT_BY_TRAINER",
    timestamp="2022-01-02T00:00:00.000Z",
)

DEFAULT_CONTEXT = TaskContext(attempt=1, retry_attempts_left=2, replay=False)
appeared_message = NotificationMessage("POKEMONS", pikachu_appeared)
caught_message = NotificationMessage("POKEMONS", pikachu_caught)


async def publish_all(adapter: Any, *messages: Any, replay: bool = False) -> None:
    """Publish ``messages`` on an in-memory bus or queue adapter, then wait until it is idle."""
    for message in messages:
        await adapter.publish_message(message, replay=replay)
    await adapter.wait_idle()


# -- recording fakes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    message: Any
    context: TaskContext
    at: float  # loop time when the consumer was called


class Recorder:
    """An async consumer (bus handler or queue worker) that records its calls.

    It fails its first ``failures`` calls (``failures=-1``: always) by raising ``error`` (a
    ``RuntimeError`` unless told), and awaits ``gate`` (an ``asyncio.Event`` made inside the loop)
    before returning when one is given.
    """

    def __init__(self, failures: int = 0, error: type[BaseException] = RuntimeError) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[Call] = []
        self.finished: list[Any] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, message: Any, context: TaskContext) -> None:
        self.calls.append(Call(message, context, asyncio.get_running_loop().time()))
        if self.gate is not None:
            await self.gate.wait()
        if self.failures < 0 or len(self.calls) <= self.failures:
            raise self.error(f"failure #{len(self.calls)}")
        self.finished.append(message)

    @property
    def messages(self) -> list[Any]:
        return [call.message for call in self.calls]

    @property
    def contexts(self) -> list[TaskContext]:
        return [call.context for call in self.calls]

    @property
    def deliveries(self) -> list[tuple[Any, TaskContext]]:
        """``(message, context)`` of each call."""
        return [(call.message, call.context) for call in self.calls]

    def gaps(self) -> list[float]:
        """Seconds between consecutive calls."""
        return [later.at - earlier.at for earlier, later in itertools.pairwise(self.calls)]


class RecordingChannelAdapter:
    """A message channel adapter that only records what it is given."""

    def __init__(self) -> None:
        self.published: list[tuple[Any, bool]] = []
        self.batches: list[tuple[list[Any], bool]] = []

    async def publish_message(self, message: Any, *, replay: bool = False) -> None:
        self.published.append((message, replay))

    async def publish_messages(self, messages: Any, *, replay: bool = False) -> None:
        self.batches.append((list(messages), replay))


def recording_bus(
    store: EventStore, channel_class: type = NotificationMessageBus
) -> tuple[Any, RecordingChannelAdapter]:
    """A bus of ``channel_class`` fed by ``store``, and the adapter that records what it publishes."""
    channel = channel_class(message_bus_id="bus", source_event_stores=[store])
    adapter = channel.message_channel_adapter = RecordingChannelAdapter()
    return channel, adapter


class FailingChannelAdapter(RecordingChannelAdapter):
    """A channel adapter whose broker is down."""

    async def publish_message(self, message: Any, *, replay: bool = False) -> None:
        raise ConnectionError("broker unreachable")


def ratios(gaps: list[float]) -> list[float]:
    """Each gap divided by the first one."""
    return [gap / gaps[0] for gap in gaps]
