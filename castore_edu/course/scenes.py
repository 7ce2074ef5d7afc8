"""The few lines every course notebook would otherwise write again.

- :func:`opening_scene`: a fresh in-memory Pokédex where the opening scene has been played
  (see :func:`~castore_edu.course.pokedex.tell_the_story`), the starting point of notebooks 03–08.
- :func:`listening_bus`: a bus on an in-memory adapter with one listener that keeps every
  message it receives, so a notebook can show (and assert) what was delivered.
- :func:`castore_tasks`: the asyncio tasks castore_edu started that are still running. A
  notebook ends with ``assert castore_tasks() == []``: nothing is left delivering or retrying
  in the background (notebook 03, "Leaving nothing behind").
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, TypeVar

from castore_edu.core.clock import Clock
from castore_edu.core.event_store import EventStore
from castore_edu.course.pokedex import Pokedex, in_memory_pokedex, tell_the_story
from castore_edu.messaging.channels import MessageBus
from castore_edu.messaging.delivery import TaskContext
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter

Bus = TypeVar("Bus", bound=MessageBus)


async def opening_scene(*, clock: Clock | None = None) -> Pokedex:
    """An in-memory Pokédex after the opening scene: Pikachu v4 (level 7, caught by Ash),
    Charmander v1, Ash v2."""
    pokedex = in_memory_pokedex(clock=clock)
    await tell_the_story(pokedex)
    return pokedex


def listening_bus(bus_class: type[Bus], bus_id: str, sources: Iterable[EventStore]) -> tuple[Bus, list[Any]]:
    """A bus of ``bus_class`` on a fresh in-memory adapter, and the list its one listener fills.

    The listener matches every real-time message (filter ``{}``) and appends it to the list.
    """
    bus = bus_class(message_bus_id=bus_id, source_event_stores=sources)
    inbox: list[Any] = []

    async def keep(message: Any, context: TaskContext) -> None:
        inbox.append(message)

    InMemoryMessageBusAdapter.attach_to(bus).on({}, keep)
    return bus, inbox


def castore_tasks() -> list[asyncio.Task[Any]]:
    """The running asyncio tasks whose code comes from castore_edu (deliveries, retries, relays)."""
    return [task for task in asyncio.all_tasks() if "castore_edu" in _code_file(task)]


def _code_file(task: asyncio.Task[Any]) -> str:
    code = getattr(task.get_coro(), "cr_code", None)
    return "" if code is None else str(code.co_filename)
