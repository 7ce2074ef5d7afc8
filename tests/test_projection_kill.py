"""SIGKILL an SQLite projection again and again: no event may ever be applied twice, or missed.

A real process (tests/projection_kill_child.py) projects a filled log, one transaction per batch
(the read model's rows and the checkpoint together), and is killed with ``SIGKILL`` at seeded
moments of three kinds:

- *held mid-batch*: the child stops inside a batch's open transaction, at a seeded position,
  and is killed there: always before the commit, so the batch's rows must all be gone;
- *after some commits*: the child has reported a seeded number of commits and is busy with the
  next batch;
- *at a random moment*: a seeded few milliseconds after a commit, wherever that lands (in the
  apply, in the commit, between two batches).

After each kill, a connection of the test's own opens the file and checks that the read model
is exactly the fold of the events up to the checkpoint: one ``kill_seen`` row per followed
position, none above it, and the totals of those events and no others; that every commit the
child reported is kept; and that the checkpoint never moved back. Then a new child carries on
from the checkpoint. The last one runs to the end of the log.

The parent waits on the child's lines, never on the clock (the one sleep picks the moment of a
random kill); a child still running when the test fails is killed in ``finally``.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import IO

from castore_edu import EventDetail, EventStore, LoggedEvent, SQLiteEventStorageAdapter
from tests.killable_child import KillableChild

ROOT = Path(__file__).resolve().parents[1]
CHILD = str(ROOT / "tests" / "projection_kill_child.py")
COUNTERS, OTHER = "COUNTERS", "OTHER"
LOG_SIZE = 1_500  # entries; every fifth one is of a store the projection does not follow
BATCH_SIZE = 30
KILLS = ["held mid-batch", "after some commits", "at a random moment"] * 2  # in a seeded order
RANDOM_DELAY = 0.010  # seconds: at most this long after a commit, a random kill comes
LINE_WAIT = 30.0  # seconds: far more than any batch takes, even on a loaded machine
SEED = 20261105


def start_projection(path: Path, hold_at: int, errors: IO[str]) -> KillableChild:
    """The projection process (``hold_at``: the position where it stops mid-batch, 0 for none)."""
    return KillableChild("projection", CHILD, [str(path), str(BATCH_SIZE), str(hold_at)], errors, LINE_WAIT)


def fill_the_log(path: Path) -> list[LoggedEvent]:
    """``LOG_SIZE`` entries in a few transactions: counters that count by 1 to 7, and others."""

    async def fill() -> list[LoggedEvent]:
        with SQLiteEventStorageAdapter(path) as adapter:
            stores = {
                store_id: EventStore(
                    event_store_id=store_id,
                    event_types=[],
                    reducer=lambda a, e: e,
                    event_storage_adapter=adapter,
                )
                for store_id in (COUNTERS, OTHER)
            }
            versions: Counter[str] = Counter()
            grouped = []
            for index in range(1, LOG_SIZE + 1):
                store_id = OTHER if index % 5 == 0 else COUNTERS
                aggregate_id = f"{store_id.lower()}-{index % 17}"
                versions[aggregate_id] += 1
                event = EventDetail(
                    aggregate_id=aggregate_id,
                    version=versions[aggregate_id],
                    type="COUNTED",
                    payload={"by": index % 7 + 1},
                )
                grouped.append(stores[store_id].group_event(event))
            for start in range(0, LOG_SIZE, 500):
                await EventStore.push_event_group(*grouped[start : start + 500])
            return await adapter.read_log()

    return asyncio.run(fill())


def check_the_read_model(path: Path, log: list[LoggedEvent], reported: int, previous: int) -> int:
    """The read model is the fold of the followed events up to the checkpoint; returns the checkpoint."""
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        (checkpoint,) = connection.execute(
            "SELECT position FROM projection_checkpoints WHERE projection_name = 'kill_totals'"
        ).fetchone()
        seen = [
            position for (position,) in connection.execute("SELECT position FROM kill_seen ORDER BY position")
        ]
        totals = dict(connection.execute("SELECT counter, total FROM kill_totals").fetchall())
    covered = [entry for entry in log if entry.position <= checkpoint and entry.event_store_id == COUNTERS]
    assert seen == [entry.position for entry in covered], "an event applied twice, or missed"
    expected: Counter[str] = Counter()
    for entry in covered:
        expected[entry.event.aggregate_id] += entry.event.payload["by"]
    assert totals == dict(expected)
    assert checkpoint >= reported, "a commit the projection reported is lost"
    assert checkpoint >= previous, "the checkpoint moved back"
    return int(checkpoint)


def kill_at_a_seeded_moment(child: KillableChild, moment: str, rng: random.Random, hold_at: int) -> int:
    """Read the child's lines until the moment comes, then kill it; returns the last checkpoint
    it reported as committed (0 if none)."""
    reported = 0
    if moment == "held mid-batch":
        while (line := child.next_line())[0] != "holding":
            reported = int(line[1])
        assert line == ["holding", str(hold_at)]
    elif moment == "after some commits":
        for _ in range(rng.randint(1, 4)):
            reported = int(child.next_line()[1])
    else:
        reported = int(child.next_line()[1])
        time.sleep(rng.uniform(0, RANDOM_DELAY))  # where it lands changes nothing asserted
    child.kill()
    return reported


def test_sigkill_never_applies_an_event_twice_nor_misses_one(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "events.sqlite"
    log = fill_the_log(path)
    followed = [entry.position for entry in log if entry.event_store_id == COUNTERS]
    checkpoint = 0
    half_batches = 0  # kills that threw away a batch's rows with its uncommitted transaction
    started = time.monotonic()
    with (tmp_path / "child-errors.txt").open("w+") as errors:
        child: KillableChild | None = None
        try:
            for moment in rng.sample(KILLS, len(KILLS)):
                # held: at a followed position one or two batches ahead, so that a batch commits first
                ahead = [p for p in followed if checkpoint + BATCH_SIZE < p <= checkpoint + 3 * BATCH_SIZE]
                hold_at = rng.choice(ahead) if moment == "held mid-batch" else 0
                child = start_projection(path, hold_at, errors)
                assert child.next_line() == ["ready", str(checkpoint)]  # it carries on where the file stands
                reported = kill_at_a_seeded_moment(child, moment, rng, hold_at)
                before = checkpoint
                checkpoint = check_the_read_model(path, log, reported, checkpoint)
                if moment == "held mid-batch":
                    assert before < checkpoint < hold_at  # the held batch left nothing behind
                    half_batches += 1
            child = start_projection(path, 0, errors)  # the last one runs to the end of the log
            assert child.next_line() == ["ready", str(checkpoint)]
            while child.next_line() != ["done"]:
                pass
            child.process.wait(timeout=LINE_WAIT)
        finally:
            if child is not None:
                child.kill()
    assert check_the_read_model(path, log, reported=LOG_SIZE, previous=checkpoint) == LOG_SIZE
    print(
        f"\nprojection kill test: {len(KILLS)} kills ({half_batches} inside an open batch), {len(followed)} "
        f"events applied exactly once, {time.monotonic() - started:.1f} s"
    )
