"""Many commands racing for one aggregate: how many retries it takes, with and without back-off.

:func:`race_for_one_aggregate` starts ``commands`` copies of one command at once, each reading a
counter and pushing its next version, on in-memory storage, and counts the retries. Without
back-off (Castore's behaviour) they grow as ``n (n - 1) / 2``; with back-off and jitter, far less
(``castore_edu/core/command.py`` explains why).

How long a retry waits decides how many writers meet again, so with real ``asyncio.sleep`` the
counts depend on how fast the machine is at that moment. :func:`sleep_in_loop_turns` stands in
for it and makes them reproducible: it waits one turn of the event loop per simulated
millisecond, so a run with the same seed takes the same steps, on any machine, however busy.
Tests and notebook 02 use it; ``python -m benchmarks.contention`` uses both.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from castore_edu.core.command import Command, Sleep
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail, EventType
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter

COUNTER_ID = "counter"


async def sleep_in_loop_turns(seconds: float) -> None:
    """Wait one turn of the event loop per simulated millisecond (at least one turn)."""
    for _ in range(max(1, round(seconds * 1000))):
        await asyncio.sleep(0)


@dataclass(frozen=True)
class RaceResult:
    """What a race cost: ``retries`` in all, for ``successes`` commands out of ``commands``."""

    commands: int
    successes: int
    retries: int
    seconds: float


def counter_store() -> EventStore:
    """A counter on fresh in-memory storage: its aggregate is its version."""
    return EventStore(
        event_store_id="COUNTERS",
        event_types=[EventType("INCREMENTED")],
        reducer=lambda count, event: event.version,
        event_storage_adapter=InMemoryEventStorageAdapter(),
    )


async def increment(input: Any, event_stores: Sequence[EventStore]) -> int:
    """Read the counter, then push its next version, yielding in between as real I/O would."""
    [counters] = event_stores
    count = (await counters.get_aggregate(COUNTER_ID)).aggregate or 0
    await asyncio.sleep(0)  # the decision: other commands run meanwhile
    await counters.push_event(EventDetail(aggregate_id=COUNTER_ID, version=count + 1, type="INCREMENTED"))
    return count + 1


async def race_for_one_aggregate(
    commands: int,
    *,
    retry_delay_ms: float = 0.0,
    seed: int = 0,
    sleep: Sleep = sleep_in_loop_turns,
    **backoff: Any,
) -> RaceResult:
    """Run ``commands`` increments of one counter at once, with enough retries for all to succeed
    (the unluckiest can lose ``commands - 1`` times). ``retry_delay_ms`` and ``backoff`` are the
    :class:`Command`'s back-off arguments; the jitter comes from ``random.Random(seed)``."""
    store = counter_store()
    retries = 0

    async def count_retry(error: Exception, *, attempt_number: int, retries_left: int) -> None:
        nonlocal retries
        retries += 1

    command = Command(
        command_id="INCREMENT",
        required_event_stores=[store],
        handler=increment,
        event_already_exists_retries=commands,
        on_event_already_exists=count_retry,
        retry_delay_ms=retry_delay_ms,
        jitter_random=random.Random(seed),
        sleep=sleep,
        **backoff,
    )
    started = time.perf_counter()
    counts = await asyncio.gather(*(command.handler(None, [store]) for _ in range(commands)))
    seconds = time.perf_counter() - started
    return RaceResult(commands=commands, successes=len(set(counts)), retries=retries, seconds=seconds)
