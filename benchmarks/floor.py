"""``python -m benchmarks.floor`` — the least a group push and a relay can cost, from their parts.

Some work is not optional. An event store that follows the public API builds, for every event of
a group of 100, the caller's ``EventDetail``, checks and JSON-encodes it, wraps it in a
``GroupedEvent``, stamps a copy (events are frozen) and returns a ``PushEventResult``. A relay
builds an ``EventDetail`` and a ``LoggedEvent`` for each row it reads, a message for each
publish, a ``TaskContext`` for the handler, starts the handler, and commits its checkpoint once a
page. This command times each of those parts alone (``timeit``, best of several repeats) and
adds them to what raw ``sqlite3`` needs for the same rows: the result is the fastest either could
ever be, with every other line of castore_edu costing nothing.

Dividing raw sqlite3's time by that floor gives the best ratio any plain-code implementation
could reach against raw sqlite3 on this machine: ``docs/benchmarks.md`` compares it with the
targets. Prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable

from benchmarks.core import raw_inserts
from benchmarks.peers import BATCH, raw_log_read
from castore_edu.core.events import EventDetail, GroupedEvent, LoggedEvent, PushEventResult, validate_event
from castore_edu.messaging.delivery import TaskContext
from castore_edu.messaging.messages import NotificationMessage
from castore_edu.storage.protocol import with_timestamp

EVENT = EventDetail(aggregate_id="counter", version=1, type="INCREMENTED", payload={"by": 1})


def microseconds(call: Callable[[], object], calls: int) -> float:
    """Best of five repeats of ``calls`` calls, in µs per call: the machine at its calmest."""
    return min(timeit.repeat(call, number=calls, repeat=5)) / calls * 1e6


async def _noop_handler(message: object, context: TaskContext) -> None:
    pass


def handler_start(calls: int) -> float:
    """Start a handler that never waits, as the bus does: an eager task (Python ≥ 3.12) or,
    on 3.11, driving its coroutine by hand."""

    async def measure() -> float:
        loop = asyncio.get_running_loop()
        if sys.version_info >= (3, 12):
            return microseconds(
                lambda: asyncio.Task(_noop_handler(None, None), loop=loop, eager_start=True), calls
            )  # type: ignore[arg-type, call-arg]

        def drive() -> None:
            with contextlib.suppress(StopIteration):  # the coroutine ended at once
                _noop_handler(None, None).send(None)  # type: ignore[arg-type]

        return microseconds(drive, calls)

    return asyncio.run(measure())


def group_parts(calls: int) -> dict[str, float]:
    return {
        "EventDetail built by the caller": microseconds(
            lambda: EventDetail(aggregate_id="counter", version=1, type="INCREMENTED", payload={"by": 1}),
            calls,
        ),
        "validate_event (checks + JSON)": microseconds(lambda: validate_event(EVENT), calls),
        "GroupedEvent": microseconds(lambda: GroupedEvent(event=EVENT, event_storage_adapter=None), calls),  # type: ignore[arg-type]
        "stamped copy (with_timestamp)": microseconds(
            lambda: with_timestamp(EVENT, "2024-01-01T00:00:00.000Z"), calls
        ),
        "PushEventResult": microseconds(lambda: PushEventResult(event=EVENT, next_aggregate=1), calls),
    }


def relay_parts(calls: int) -> dict[str, float]:
    return {
        "EventDetail built from a row": microseconds(
            lambda: EventDetail(aggregate_id="counter", version=1, type="INCREMENTED", payload={"by": 1}),
            calls,
        ),
        "LoggedEvent": microseconds(lambda: LoggedEvent(1, "COUNTERS", EVENT), calls),
        "NotificationMessage": microseconds(lambda: NotificationMessage("COUNTERS", EVENT), calls),
        "TaskContext": microseconds(
            lambda: TaskContext(attempt=1, retry_attempts_left=2, replay=False), calls
        ),
        "start the handler": handler_start(calls),
    }


def raw_microseconds(directory: str, rounds: int, count: int) -> dict[str, float]:
    """Raw sqlite3, µs per event (medians of ``rounds``): a group of 100 in one transaction;
    reading and decoding a log of ``count`` events; the same, committing the position after
    each page."""
    group, read, saving = [], [], []
    for round_number in range(rounds):
        path = os.path.join(directory, f"{round_number}-group.sqlite")
        group.append(raw_inserts(path, 15 * BATCH, BATCH) / (15 * BATCH) * 1e6)
        path = os.path.join(directory, f"{round_number}-log.sqlite")
        raw_inserts(path, count, 1_000)
        read.append(raw_log_read(path, count) / count * 1e6)
        saving.append(raw_log_read(path, count, save_position=True) / count * 1e6)
    return {
        "group": statistics.median(group),
        "read": statistics.median(read),
        "saving": statistics.median(saving),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Print each floor; return the best possible ratio to raw sqlite3, by workload."""
    parser = argparse.ArgumentParser(description="The least a group push and a relay can cost.")
    parser.add_argument("--quick", action="store_true", help="few calls, one round: a smoke test")
    quick = parser.parse_args(argv).quick
    calls, rounds, count = (1_000, 1, 1_000) if quick else (100_000, 5, 100_000)
    print(
        f"Python {sys.version.split()[0]}: µs per event, best of 5 (parts), median of {rounds} (raw sqlite3)"
    )
    with tempfile.TemporaryDirectory(prefix="castore-floor-") as directory:
        raw = raw_microseconds(directory, rounds, count)
    relay = relay_parts(calls)
    relay["checkpoint commit, per event"] = max(0.0, raw["saving"] - raw["read"])
    best = {}
    for workload, parts, raw_side, target in (
        (f"push_event_group of {BATCH}, SQLite", group_parts(calls), raw["group"], 0.6),
        ("Relay.catch_up from SQLite", relay, raw["read"], 0.4),
    ):
        print(f"\n{workload}")
        for name, value in parts.items():
            print(f"  {name:34} {value:5.2f}")
        print(f"  {'raw sqlite3 for the same rows':34} {raw_side:5.2f}")
        floor = raw_side + sum(parts.values())
        best[workload] = raw_side / floor
        print(
            f"  floor: {floor:.2f} µs; best possible ratio to raw sqlite3 {best[workload]:.2f} (target {target})"
        )
    return best


if __name__ == "__main__":
    main(sys.argv[1:])
