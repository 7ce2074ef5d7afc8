"""Idempotent consumers: the handler wrapper, the processed-key stores and the LevelBoard read model."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from castore_edu.course.pokedex import (
    in_memory_pokedex,
    level_ups,
    pokemon_appeared,
    pokemon_caught,
    pokemon_leveled_up,
)
from castore_edu.course.read_models import LevelBoard
from castore_edu.messaging.channels import NotificationMessageBus
from castore_edu.messaging.delivery import TaskContext
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter
from castore_edu.messaging.messages import NotificationMessage, StateCarryingMessage
from castore_edu.reliability.idempotency import (
    IdempotentHandler,
    InMemoryProcessedMessages,
    SQLiteProcessedMessages,
    idempotent,
    message_key,
)
from castore_edu.replay.dam import pour_event_store_events
from castore_edu.testing.faults import Fault, FaultSchedule, FaultyChannelAdapter

pytestmark = pytest.mark.anyio

APPEARED = NotificationMessage("POKEMONS", pokemon_appeared("pikachu", name="Pikachu", level=5))
LEVELED_UP = NotificationMessage("POKEMONS", pokemon_leveled_up("pikachu", version=2))


class Counting:
    """A handler that counts its calls and fails the first ``failures`` of them."""

    def __init__(self, failures: int = 0, pause: bool = False) -> None:
        self.calls: list[Any] = []
        self.failures = failures
        self.pause = pause

    async def __call__(self, message: Any, context: TaskContext | None) -> None:
        self.calls.append(message_key(message))
        if self.pause:
            await asyncio.sleep(0)
        if len(self.calls) <= self.failures:
            raise RuntimeError("handler failed")


def test_message_key_names_the_event() -> None:
    assert message_key(APPEARED) == ("POKEMONS", "pikachu", 1)
    assert message_key(StateCarryingMessage("POKEMONS", LEVELED_UP.event, aggregate=None)) == (
        "POKEMONS",
        "pikachu",
        2,
    )


async def test_duplicates_are_skipped() -> None:
    handler = Counting()
    wrapped = idempotent(handler)
    for message in (APPEARED, APPEARED, LEVELED_UP, APPEARED, LEVELED_UP):
        await wrapped(message)
    assert handler.calls == [("POKEMONS", "pikachu", 1), ("POKEMONS", "pikachu", 2)]
    assert (wrapped.handled, wrapped.skipped) == (2, 3)
    # The same aggregate id in another store is another event.
    await wrapped(NotificationMessage("TRAINERS", APPEARED.event))
    assert wrapped.handled == 3


async def test_a_failed_handler_is_not_recorded_so_its_retry_runs() -> None:
    handler = Counting(failures=1)
    wrapped = idempotent(handler)
    with pytest.raises(RuntimeError):
        await wrapped(APPEARED)
    assert message_key(APPEARED) not in wrapped.processed
    await wrapped(APPEARED)
    await wrapped(APPEARED)
    assert len(handler.calls) == 2 and (wrapped.handled, wrapped.skipped) == (1, 1)


async def test_concurrent_duplicates_wait_for_the_first_delivery() -> None:
    handler = Counting(pause=True)
    wrapped = idempotent(handler)
    await asyncio.gather(wrapped(APPEARED), wrapped(APPEARED), wrapped(APPEARED))
    assert len(handler.calls) == 1 and wrapped.skipped == 2

    failing = Counting(failures=1, pause=True)
    wrapped = idempotent(failing)
    results = await asyncio.gather(wrapped(APPEARED), wrapped(APPEARED), return_exceptions=True)
    assert isinstance(results[0], RuntimeError) and results[1] is None
    assert len(failing.calls) == 2  # the second delivery ran, since the first failed


async def test_the_wrapper_is_a_valid_bus_handler() -> None:
    pokedex = in_memory_pokedex()
    bus = NotificationMessageBus(message_bus_id="bus", source_event_stores=[pokedex.pokemons])
    adapter = InMemoryMessageBusAdapter.attach_to(bus)
    handler = Counting()
    wrapped = IdempotentHandler(handler)
    adapter.on({}, wrapped)
    FaultyChannelAdapter.wrap(bus, FaultSchedule.on_calls(1, fault=Fault.DUPLICATE))
    await bus.publish_message(APPEARED)
    await adapter.wait_idle()
    assert len(handler.calls) == 1 and wrapped.skipped == 1


async def test_sqlite_processed_keys_survive_a_new_connection(tmp_path) -> None:
    path = tmp_path / "read-model.sqlite"

    async def first(connection: sqlite3.Connection) -> None:
        wrapped = idempotent(Counting(), SQLiteProcessedMessages(connection, "levels"))
        await wrapped(APPEARED)
        assert len(wrapped.processed) == 1

    async def second(connection: sqlite3.Connection) -> tuple[int, int, int]:
        processed = SQLiteProcessedMessages(connection, "levels")
        other_consumer = SQLiteProcessedMessages(connection, "audit")
        wrapped = idempotent(Counting(), processed)
        await wrapped(APPEARED)
        await wrapped(LEVELED_UP)
        assert message_key(APPEARED) not in other_consumer and "nonsense" not in processed
        return wrapped.skipped, wrapped.handled, len(processed)

    with sqlite3.connect(path, isolation_level=None) as connection:
        await first(connection)
    connection.close()
    with sqlite3.connect(path, isolation_level=None) as connection:
        assert await second(connection) == (1, 1, 2)
        SQLiteProcessedMessages(connection, "levels").clear()
        assert len(SQLiteProcessedMessages(connection, "levels")) == 0
    connection.close()


def test_in_memory_processed_keys() -> None:
    processed = InMemoryProcessedMessages([("POKEMONS", "pikachu", 1)])
    assert ("POKEMONS", "pikachu", 1) in processed and len(processed) == 1
    processed.add(("POKEMONS", "pikachu", 2))
    processed.add(("POKEMONS", "pikachu", 2))  # a set: adding twice keeps one
    assert ("POKEMONS", "pikachu", 2) in processed and len(processed) == 2
    processed.clear()
    assert len(processed) == 0


# -- the read model --------------------------------------------------------------------------


async def test_level_board_adds_contributions_and_ignores_other_events() -> None:
    board = LevelBoard()
    caught = NotificationMessage("POKEMONS", pokemon_caught("pikachu", version=3, trainer_id="ash"))
    for message in (LEVELED_UP, APPEARED, caught, APPEARED):  # out of order, with a duplicate
        await board.handler(message)
    assert board.levels == {"pikachu": 6}
    await board.apply(APPEARED)  # the raw effect is not idempotent: that is the point
    assert board.levels == {"pikachu": 11}


async def test_level_board_stays_equal_to_the_store_under_duplicates_and_replays() -> None:
    pokedex = in_memory_pokedex()
    pokemons = pokedex.pokemons
    bus = NotificationMessageBus(message_bus_id="bus", source_event_stores=[pokemons])
    adapter = InMemoryMessageBusAdapter.attach_to(bus)
    board = LevelBoard()
    adapter.on({"on_replay": True}, board.handler)
    faulty = FaultyChannelAdapter.wrap(bus, FaultSchedule.seeded(3, duplicate=0.5, reorder=0.2))

    events = [
        pokemon_appeared("pikachu", name="Pikachu", level=5),
        pokemon_appeared("eevee", name="Eevee", level=9),
    ]
    events += [
        *level_ups("pikachu", first_version=2, count=6),
        *level_ups("eevee", first_version=2, count=3),
    ]
    for event in events:
        result = await pokemons.push_event(event)
        await bus.publish_message(NotificationMessage("POKEMONS", result.event))
    await faulty.release_held()
    await adapter.wait_idle()
    expected = {"pikachu": 11, "eevee": 12}
    assert {p: (await pokemons.get_aggregate(p)).aggregate.level for p in expected} == expected
    assert board.levels == expected
    assert board.handler.skipped > 0  # there were duplicates to skip

    # A replay of the whole history changes nothing...
    poured = await pour_event_store_events(event_store=pokemons, message_channel=bus)
    await adapter.wait_idle()
    assert poured.poured_event_count == len(events) and board.levels == expected
    # ...and rebuilds the read model from scratch once it is reset.
    board.reset()
    assert board.levels == {} and len(board.handler.processed) == 0
    await pour_event_store_events(event_store=pokemons, message_channel=bus)
    await faulty.release_held()
    await adapter.wait_idle()
    assert board.levels == expected
