"""SIGKILL a process that writes to SQLite, again and again: the file must never suffer for it.

A commit that returned is on disk (``synchronous = FULL``), and a transaction the kill cut short
is as if it never began: that is what a database promises, and what this test checks, with a
real process (tests/sqlite_kill_child.py) killed at seeded moments:

- *after some commits*: the writer has reported N commits and is busy with the next one;
- *mid-group*: the writer has said that the write of a group of many events begins, and a
  seeded few milliseconds have passed.

After each kill, a new adapter opens the file and checks that ``PRAGMA integrity_check`` says
``ok``, that every event the writer reported as committed is there, that no group is there in
part (each group writes one version of GROUP_SIZE aggregates, all marked with their round), that
every aggregate has versions 1..n without holes, and that the log's positions have no gaps. Then
the writer starts again on the same file and carries on where the file says it stood.

The parent waits on the writer's output, never on the clock (the only sleep picks the moment
of a mid-group kill): every wait is a bounded read of
its next line, so a loaded machine makes the test slower, not red. A writer still running when
the test fails is killed in ``finally``.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from castore_edu import LoggedEvent, SQLiteEventStorageAdapter
from tests.killable_child import KillableChild

ROOT = Path(__file__).resolve().parents[1]
CHILD = str(ROOT / "tests" / "sqlite_kill_child.py")
GROUP_SIZE = 1000
MID_GROUP_DELAY = 0.015  # seconds: at most this long into the write of a group, the kill comes
KILLS = ["after some commits", "mid-group"] * 4  # in a seeded order
LINE_WAIT = 30.0  # seconds: far more than any write takes, even on a loaded machine
SEED = 20250614


def start_writer(path: Path, errors: IO[str]) -> KillableChild:
    """The child process writing to ``path``."""
    return KillableChild("writer", CHILD, [str(path), str(GROUP_SIZE)], errors, LINE_WAIT)


@dataclass
class Reported:
    """The rounds the writers reported as committed: their single events, and their groups."""

    singles: set[int] = field(default_factory=set)
    groups: set[int] = field(default_factory=set)

    def note(self, line: list[str]) -> bool:
        """Record ``line`` if it reports a commit; say whether it did."""
        kind, value = line[0], int(line[1])
        if kind == "single":
            self.singles.add(value)
        elif kind == "group":
            self.groups.add(value)
        return kind in ("single", "group")

    def events(self) -> int:
        return len(self.singles) + GROUP_SIZE * len(self.groups)


@dataclass(frozen=True)
class Stored:
    """What a check found in the file: how many rounds of each kind, and how many events."""

    singles: int
    groups: int
    events: int


def kill_at_a_seeded_moment(
    writer: KillableChild, moment: str, rng: random.Random, reported: Reported
) -> int | None:
    """Read the writer's lines until the moment comes, then kill it. Returns the round of the
    group it was writing when killed mid-group (else ``None``)."""
    if moment == "after some commits":
        commits = rng.randint(2, 8)
        while commits > 0:
            if reported.note(writer.next_line()):
                commits -= 1
        writer.kill()
        return None
    groups_to_let_pass = rng.randint(0, 2)
    while True:
        line = writer.next_line()
        reported.note(line)
        if line[0] == "group-start":
            if groups_to_let_pass == 0:
                # A seeded moment into the write (which takes about 10 ms here, more on a busy
                # machine): the kill lands before, during or just after the commit. Where it
                # lands changes nothing the test asserts, so this sleep cannot make it flaky.
                time.sleep(rng.uniform(0, MID_GROUP_DELAY))
                writer.kill()
                return int(line[1])
            groups_to_let_pass -= 1


async def read_the_whole_log(path: Path) -> list[LoggedEvent]:
    adapter = SQLiteEventStorageAdapter(path)
    try:
        return await adapter.read_log()
    finally:
        adapter.close()


def check_the_file(path: Path, reported: Reported) -> Stored:
    """Everything a kill must not break (see the module docstring); returns what is stored."""
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    log = asyncio.run(read_the_whole_log(path))
    assert [entry.position for entry in log] == list(range(1, len(log) + 1)), "a gap in the log"

    versions: defaultdict[str, list[int]] = defaultdict(list)
    for entry in log:
        versions[entry.event.aggregate_id].append(entry.event.version)
    for aggregate_id, found in versions.items():
        assert sorted(found) == list(range(1, len(found) + 1)), f"a hole in {aggregate_id}'s versions"

    events_per_round = Counter(
        entry.event.payload["round"] for entry in log if entry.event.aggregate_id != "single"
    )
    partial = {round_: count for round_, count in events_per_round.items() if count != GROUP_SIZE}
    assert partial == {}, f"groups stored in part (round: events): {partial}"

    singles, groups = len(versions["single"]), len(events_per_round)
    assert groups in (singles - 1, singles), (singles, groups)  # a round is a single, then a group
    assert reported.singles <= set(range(1, singles + 1)), "a reported single event is lost"
    assert reported.groups <= set(range(1, groups + 1)), "a reported group is lost"
    return Stored(singles, groups, len(log))


def test_sigkill_never_corrupts_the_file_loses_a_commit_or_leaves_half_a_group(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "events.sqlite"
    reported = Reported()
    stored = Stored(singles=0, groups=0, events=0)
    cut_groups = 0  # mid-group kills that landed before the group committed
    started = time.monotonic()
    with (tmp_path / "writer-errors.txt").open("w+") as errors:
        writer: KillableChild | None = None
        try:
            for moment in rng.sample(KILLS, len(KILLS)):
                writer = start_writer(path, errors)
                # It carries on where the file stands.
                assert writer.next_line() == ["ready", str(stored.singles), str(stored.groups)]
                group_in_flight = kill_at_a_seeded_moment(writer, moment, rng, reported)
                stored = check_the_file(path, reported)
                if group_in_flight is not None and stored.groups < group_in_flight:
                    cut_groups += 1
            writer = start_writer(path, errors)  # after the last kill, it still starts and writes
            assert writer.next_line() == ["ready", str(stored.singles), str(stored.groups)]
            while not reported.note(writer.next_line()):
                pass
        finally:
            if writer is not None:
                writer.kill()
    stored = check_the_file(path, reported)
    print(
        f"\nSQLite kill test: {len(KILLS)} kills ({cut_groups} of them cut a group of {GROUP_SIZE} short), "
        f"{reported.events()} reported events checked, {stored.events} events stored, "
        f"{time.monotonic() - started:.1f} s"
    )
