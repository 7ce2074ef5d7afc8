"""The writer that tests/test_sqlite_kill.py kills with SIGKILL, again and again.

``python tests/sqlite_kill_child.py PATH GROUP_SIZE`` writes to the SQLite file PATH, forever
(until killed), rounds of two commits:

1. one event, version ``r`` of the aggregate ``single``;
2. a group of GROUP_SIZE events, version ``r`` of each aggregate ``group-0`` .. ``group-{K-1}``,
   every one with ``{"round": r}`` in its payload: a group that went in partly would show as a
   round with fewer than GROUP_SIZE events.

It starts where the file stands (after a kill, the parent starts it again on the same file):
``r`` is the next version of whichever of the two is behind. It reports on stdout, one line each,
flushed at once (the parent waits on these lines, never on the clock)::

    ready SINGLES GROUPS     what it found in the file: the rounds of each already stored
    single R                 the event of round R is committed
    group-start R            the group of round R is ready, its write begins
    group R                  the group of round R is committed
"""

from __future__ import annotations

import asyncio
import sys

from castore_edu import EventDetail, EventStore, SQLiteEventStorageAdapter

EVENT_STORE_ID = "DURABILITY"
SINGLE = "single"
# Some bytes per event, so that writing a group takes a while: long enough for a kill to land
# in the middle of it.
PADDING = "x" * 200


def group_member(index: int) -> str:
    return f"group-{index}"


async def write_forever(path: str, group_size: int) -> None:
    store = EventStore(
        event_store_id=EVENT_STORE_ID,
        event_types=[],
        reducer=lambda aggregate, event: event.version,
        event_storage_adapter=SQLiteEventStorageAdapter(path),
    )
    singles = len(await store.get_events(SINGLE))
    groups = len(await store.get_events(group_member(0)))
    print(f"ready {singles} {groups}", flush=True)
    while True:
        if groups < singles:
            groups += 1
            group = [
                store.group_event(
                    EventDetail(
                        aggregate_id=group_member(index),
                        version=groups,
                        type="COUNTED",
                        payload={"round": groups, "padding": PADDING},
                    )
                )
                for index in range(group_size)
            ]
            print(f"group-start {groups}", flush=True)  # what follows is the write itself
            await EventStore.push_event_group(*group)
            print(f"group {groups}", flush=True)
        else:
            singles += 1
            await store.push_event(
                EventDetail(aggregate_id=SINGLE, version=singles, type="COUNTED", payload={"round": singles})
            )
            print(f"single {singles}", flush=True)


if __name__ == "__main__":
    asyncio.run(write_forever(sys.argv[1], int(sys.argv[2])))
