"""Exercise 11's self-check: a projection step that keeps a read model and its checkpoint in one
transaction (notebook 11).

The learner writes ``project_step(connection, storage, name)``: read the checkpoint, read the log
after it, apply every entry to the ``levels`` table and save the new checkpoint — all in one
SQLite transaction of ``connection``. The helpers below do the SQL of each piece, so that the
exercise is about the one thing that matters: where the transaction begins and ends.

The check provokes what a transaction is for, on a real SQLite file:

- the "process" dies (:class:`~castore_edu.testing.faults.SimulatedCrash`) in the middle of
  applying the log, then, in a second run, while saving the checkpoint; after each crash the
  connection is closed, as the death of a process would, and a connection of the check's own
  reads the file: the levels must be exactly the fold of the events up to the checkpoint;
- the database fails with an ordinary error in the middle of a step, on the same connection:
  the error must get out, and the connection must be usable again (rolled back, not left in an
  open transaction);
- the log has gaps (positions 2, 4, 6...), as a server database's can (exercise 9), so a
  checkpoint that counts entries instead of naming a position shows; the log also holds
  ``TRAINERS`` entries, which ``apply_level`` passes over.

The read model *adds* each event's contribution (the starting level, then one per level-up), as
the course's LevelBoard does: an event applied twice shows as a level too many.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, Self

from castore_edu.core.events import LoggedEvent
from castore_edu.course.exercises.feedback import Exercise, attempt, expect, not_yet, passed
from castore_edu.course.pokedex import (
    POKEMON_APPEARED,
    POKEMON_LEVELED_UP,
    POKEMONS,
    pokemon_appeared,
    pokemon_leveled_up,
    sqlite_pokedex,
    tell_the_story,
    trainer_created,
)
from castore_edu.course.read_models import level_gain
from castore_edu.testing.faults import SimulatedCrash
from castore_edu.testing.gaps import LogWithGaps

PROJECTION_STEP = Exercise(11, "Keep a read model and its checkpoint in one transaction")
PROJECTION_NAME = "pokemon-levels"

# -- the helpers the learner uses --------------------------------------------------------------


def create_tables(connection: sqlite3.Connection) -> None:
    """The read model's table, ``levels``, and the checkpoints' table, ``projection_checkpoints``."""
    connection.execute(
        "CREATE TABLE IF NOT EXISTS levels (pokemon_id TEXT PRIMARY KEY, level INTEGER NOT NULL)"
    )
    connection.execute(
        "CREATE TABLE IF NOT EXISTS projection_checkpoints (projection_name TEXT PRIMARY KEY, position INTEGER NOT NULL)"
    )


def load_checkpoint(connection: sqlite3.Connection, name: str) -> int:
    """The position saved under ``name`` (0 if none was saved)."""
    row = connection.execute(
        "SELECT position FROM projection_checkpoints WHERE projection_name = ?", (name,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def save_checkpoint(connection: sqlite3.Connection, name: str, position: int) -> None:
    """Save ``position`` under ``name`` (in whatever transaction ``connection`` is in)."""
    connection.execute(
        "INSERT INTO projection_checkpoints (projection_name, position) VALUES (?, ?)"
        " ON CONFLICT (projection_name) DO UPDATE SET position = excluded.position",
        (name, position),
    )


def apply_level(connection: sqlite3.Connection, entry: LoggedEvent) -> None:
    """Add one log entry's contribution to ``levels``: a ``POKEMONS`` appearance adds its starting
    level, a level-up adds one; any other entry changes nothing. Applied twice, it adds twice."""
    event = entry.event
    if entry.event_store_id != POKEMONS or (gain := level_gain(event)) is None:
        return
    connection.execute(
        "INSERT INTO levels (pokemon_id, level) VALUES (?, ?)"
        " ON CONFLICT (pokemon_id) DO UPDATE SET level = level + excluded.level",
        (event.aggregate_id, gain),
    )


def read_levels(connection: sqlite3.Connection) -> dict[str, int]:
    """The ``levels`` table as a dict."""
    return dict(connection.execute("SELECT pokemon_id, level FROM levels ORDER BY pokemon_id").fetchall())


# -- what the check plays the learner's code against ------------------------------------------


class _FaultyCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        self.connection.meet_fault(sql)  # type: ignore[attr-defined]
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Self:
        self.connection.meet_fault(sql)  # type: ignore[attr-defined]
        return super().executemany(sql, parameters)


class _FaultyConnection(sqlite3.Connection):
    """A connection whose ``n``-th write to a table raises a fault: the death of the process
    (``SimulatedCrash``) or a database error. ``fault`` is ``(table, n, error)`` or ``None``."""

    fault: tuple[str, int, BaseException] | None = None
    met = False

    def meet_fault(self, sql: str) -> None:
        if self.fault is None:
            return
        table, remaining, error = self.fault
        words = sql.split()
        if words and words[0].upper() in ("INSERT", "UPDATE", "REPLACE", "DELETE") and table in sql:
            if remaining == 1:
                self.fault, self.met = None, True
                raise error
            self.fault = (table, remaining - 1, error)

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        self.meet_fault(sql)
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        self.meet_fault(sql)
        return super().executemany(sql, parameters)

    def cursor(self, factory: Any = _FaultyCursor) -> Any:
        return super().cursor(factory)


def _fold(entries: list[LoggedEvent], up_to: int) -> dict[str, int]:
    """What ``levels`` holds when every entry up to position ``up_to`` was applied once."""
    levels: dict[str, int] = {}
    for entry in entries:
        if entry.position <= up_to and entry.event_store_id == POKEMONS:
            if entry.event.type == POKEMON_APPEARED.type:
                levels[entry.event.aggregate_id] = (
                    levels.get(entry.event.aggregate_id, 0) + entry.event.payload["level"]
                )
            elif entry.event.type == POKEMON_LEVELED_UP.type:
                levels[entry.event.aggregate_id] = levels.get(entry.event.aggregate_id, 0) + 1
    return dict(sorted(levels.items()))


def _in_the_file(path: Path) -> tuple[dict[str, int], int, list[str]]:
    """The levels, the checkpoint under the projection's name, and every name a checkpoint is
    saved under, read on a connection of the check's own."""
    with closing(sqlite3.connect(path)) as connection:
        names = [name for (name,) in connection.execute("SELECT projection_name FROM projection_checkpoints")]
        return read_levels(connection), load_checkpoint(connection, PROJECTION_NAME), names


def short(value: Any, limit: int = 110) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def check_projection_step(project_step: Callable[[Any, Any, str], Any]) -> None:
    """Run the learner's step on a real SQLite file: crashes in the apply and in the checkpoint's
    save, a database error, a log with gaps and entries of another store."""
    ex = PROJECTION_STEP
    with tempfile.TemporaryDirectory(prefix="castore-exercise-11-") as directory:
        path = Path(directory) / "pokedex.sqlite"
        pokedex = sqlite_pokedex(str(path))
        connections: list[sqlite3.Connection] = []
        try:
            await _check(ex, project_step, pokedex, path, connections)
        finally:
            for connection in connections:
                connection.close()  # a wrong answer may leave one in an open transaction
            pokedex.close()


async def _check(
    ex: Exercise,
    project_step: Callable[[Any, Any, str], Any],
    pokedex: Any,
    path: Path,
    connections: list[sqlite3.Connection],
) -> None:
    await tell_the_story(pokedex)
    storage = LogWithGaps(pokedex.pokemons.event_storage_adapter)

    def connect() -> _FaultyConnection:
        connection = sqlite3.connect(path, isolation_level=None, factory=_FaultyConnection)
        connections.append(connection)
        create_tables(connection)
        return connection

    async def run(connection: _FaultyConnection, *, allow: tuple[type[BaseException], ...] = ()) -> Any:
        return await attempt(
            ex,
            f"project_step(connection, storage, {PROJECTION_NAME!r})",
            lambda: project_step(connection, storage, PROJECTION_NAME),
            allow=allow,  # type: ignore[arg-type]  # SimulatedCrash is the check's own fault
        )

    def expect_its_own_name() -> None:
        _, checkpoint, names = _in_the_file(path)
        expect(
            not (checkpoint == 0 and names),
            ex,
            f"your step saved its checkpoint under {short(names)}, not under the name it was given ({PROJECTION_NAME!r}).",
            hint="load and save the checkpoint under `name`: each projection has its own.",
        )

    async def expect_the_fold(after: str) -> None:
        expect_its_own_name()
        entries = await storage.read_log()
        levels, checkpoint, _ = _in_the_file(path)
        expected = _fold(entries, checkpoint)
        if levels == expected:
            return
        more = any(level > expected.get(pokemon, 0) for pokemon, level in levels.items())
        if not more:
            hint = (
                "the checkpoint was committed before the level changes it covers, and the crash lost them: "
                "save the checkpoint in the same transaction as the changes, after applying them."
            )
        elif checkpoint == entries[-1].position:
            hint = (
                "events the checkpoint had already passed were applied again: read the log after the saved "
                "checkpoint, await storage.read_log(after_position=load_checkpoint(connection, name))."
            )
        else:
            hint = (
                "level changes were committed without the checkpoint that covers them, so the next run applies "
                "them again: apply and save the checkpoint in ONE transaction — "
                'connection.execute("BEGIN IMMEDIATE") before reading the checkpoint, "COMMIT" after saving it.'
            )
        not_yet(
            ex,
            f"{after}, the read model is not the fold of the events up to the checkpoint ({checkpoint}).",
            expected=f"levels {short(expected)}",
            got=f"levels {short(levels)}",
            hint=hint,
        )

    async def expect_caught_up(after: str) -> None:
        expect_its_own_name()
        checkpoint, last = _in_the_file(path)[1], await storage.last_position()
        expect(
            checkpoint == last,
            ex,
            f"{after}, the checkpoint is {checkpoint}.",
            expected=f"{last}: the position of the last entry read (the log's positions have gaps: 2, 4, 6...)",
            hint="save the position of the last entry read, entries[-1].position: not a count of entries."
            if checkpoint
            else "save the checkpoint with save_checkpoint(connection, name, position) once the entries are applied.",
        )

    # Process 1 dies while applying the log: at its 3rd change of the levels.
    connection = connect()
    connection.fault = ("levels", 3, SimulatedCrash("while applying the log"))
    await run(connection, allow=(SimulatedCrash,))
    expect(
        connection.met,
        ex,
        "your step did not apply the log's events to the levels table.",
        hint="call apply_level(connection, entry) for every entry read after the checkpoint.",
    )
    connection.close()  # the process is gone: whatever it had not committed is rolled back
    await expect_the_fold("after a crash in the middle of applying the log")

    # Process 2 dies while saving the checkpoint, after applying everything.
    connection = connect()
    connection.fault = ("projection_checkpoints", 1, SimulatedCrash("while saving the checkpoint"))
    await run(connection, allow=(SimulatedCrash,))
    connection.close()
    expect(
        connection.met,
        ex,
        "your step never saved its checkpoint.",
        hint="save_checkpoint(connection, name, position) once the entries are applied, in the same transaction.",
    )
    await expect_the_fold("after a crash while saving the checkpoint")

    # Process 3 runs to the end.
    connection = connect()
    await run(connection)
    await expect_caught_up("after a run over the whole log")
    await expect_the_fold("after a run without a crash")

    # More events, among them a trainer's: the next run applies the new ones only.
    await pokedex.trainers.push_event(trainer_created("misty", name="Misty"))
    await pokedex.pokemons.push_event(pokemon_leveled_up("pikachu", version=5))
    await pokedex.pokemons.push_event(pokemon_leveled_up("charmander", version=2))
    await pokedex.pokemons.push_event(pokemon_appeared("eevee", name="Eevee", level=3))
    await run(connection)
    await expect_the_fold("after a second run with four new entries")
    await expect_caught_up("after a second run with four new entries")

    # The database fails in the middle of a step, on a connection that lives on.
    await pokedex.pokemons.push_event(pokemon_leveled_up("pikachu", version=6))
    await pokedex.pokemons.push_event(pokemon_leveled_up("eevee", version=2))
    before = _in_the_file(path)
    connection.fault = ("levels", 2, sqlite3.OperationalError("disk I/O error"))
    outcome = await run(connection, allow=(sqlite3.OperationalError,))
    expect(
        isinstance(outcome, sqlite3.OperationalError),
        ex,
        "the database failed in the middle of your step (disk I/O error), but project_step returned normally.",
        hint="let the error out (raise it again after rolling back): whoever runs the projection decides when to retry.",
    )
    expect(
        not connection.in_transaction,
        ex,
        "after the database error, your step left its transaction open: the connection cannot begin another one.",
        hint='roll back when anything fails — try: ... except BaseException: connection.execute("ROLLBACK"); raise',
    )
    expect(
        _in_the_file(path) == before,
        ex,
        "after the database error, the read model or the checkpoint changed.",
        expected=short(before[:2]),
        got=short(_in_the_file(path)[:2]),
        hint="the whole step is one transaction: rolled back, it leaves nothing behind.",
    )
    await run(connection)  # the same step again: now it goes through
    await expect_the_fold("after the step that failed ran again")
    await expect_caught_up("after the step that failed ran again")
    connection.close()
    passed(ex, "a crash or an error anywhere in a step leaves the read model and its checkpoint in step.")
