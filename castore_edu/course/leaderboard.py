"""The course's leaderboard (notebook 11): a read model in SQLite, kept by a projection.

A *season* of the Pokédex: four trainers, wild Pokémon appearing, trainers catching them (a
group of two events, one per store, as in notebook 06) and caught Pokémon levelling up, chosen
by a seeded random generator so that every run tells the same season.

Two versions of the leaderboard, each a :class:`~castore_edu.projections.projection.Projection`
with tables of its own, named after it:

- ``leaderboard_v1`` ranks trainers by the Pokémon they caught. It follows ``TRAINERS`` only.
- ``leaderboard_v2`` ranks them by the levels of their Pokémon, which ``v1`` never kept: the
  levels are in the ``POKEMONS`` events, so ``v2`` follows both stores and must be built from the
  first event — a rebuild under a new name, while ``v1`` keeps serving.

:func:`top_trainers` is the read side: it asks which version serves the read model
``leaderboard`` (the runner's ``serving_projections`` table) and reads that one.

Run as a program, it is the projection process that notebook 11 kills with ``SIGKILL``::

    python -m castore_edu.course.leaderboard PATH --batch-size 10 --hold-at 57

It runs ``leaderboard_v1`` on the SQLite file ``PATH`` until it has caught up, printing a line
per committed batch; with ``--hold-at`` it stops *inside* the transaction of the batch that holds
that log position (it waits on stdin for a line that never comes), where a kill always lands
before the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from castore_edu.core.event_store import EventStore
from castore_edu.core.events import LoggedEvent
from castore_edu.course.pokedex import (
    POKEMON_APPEARED,
    POKEMON_CAUGHT,
    POKEMON_LEVELED_UP,
    POKEMONS,
    TRAINER_CAUGHT_POKEMON,
    TRAINER_CREATED,
    Pokedex,
    pokemon_appeared,
    pokemon_caught,
    pokemon_leveled_up,
    sqlite_pokedex,
    trainer_caught_pokemon,
    trainer_created,
)
from castore_edu.projections.projection import Projection
from castore_edu.projections.sqlite import SQLiteProjectionRunner

READ_MODEL = "leaderboard"
TRAINER_NAMES = {"ash": "Ash", "misty": "Misty", "brock": "Brock", "gary": "Gary"}
SPECIES = ("Pikachu", "Bulbasaur", "Charmander", "Squirtle", "Eevee", "Psyduck", "Geodude", "Staryu", "Abra")


# -- the season ---------------------------------------------------------------------------------


@dataclass
class Season:
    """A seeded season of the Pokédex; :meth:`play` pushes its next moves.

    It remembers what it pushed (each Pokémon's version and owner), so that every move is one
    the reducers accept: only wild Pokémon are caught, only caught ones level up.
    """

    pokedex: Pokedex
    seed: int = 11
    versions: dict[str, int] = field(default_factory=dict)  # every aggregate's last version
    owners: dict[str, str | None] = field(default_factory=dict)  # Pokémon -> trainer (None: wild)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    async def start(self) -> None:
        """The trainers start their journeys."""
        for trainer_id, name in TRAINER_NAMES.items():
            await self.pokedex.trainers.push_event(trainer_created(trainer_id, name=name))
            self.versions[trainer_id] = 1

    async def play(self, moves: int) -> None:
        """``moves`` more moves: a wild Pokémon appears, a trainer catches one, one levels up."""
        for _ in range(moves):
            wild = [pokemon for pokemon, owner in self.owners.items() if owner is None]
            caught = [pokemon for pokemon, owner in self.owners.items() if owner is not None]
            move = self.rng.choice(
                ["appear"] * 3 + ["catch"] * 3 * bool(wild) + ["level up"] * 4 * bool(caught)
            )
            if move == "appear":
                await self._appear()
            elif move == "catch":
                await self._catch(self.rng.choice(wild), self.rng.choice(sorted(TRAINER_NAMES)))
            else:
                await self._level_up(self.rng.choice(caught))

    async def _appear(self) -> None:
        species = self.rng.choice(SPECIES)
        pokemon_id = f"{species.lower()}-{len(self.owners) + 1}"
        await self.pokedex.pokemons.push_event(
            pokemon_appeared(pokemon_id, name=species, level=self.rng.randint(2, 12))
        )
        self.versions[pokemon_id], self.owners[pokemon_id] = 1, None

    async def _catch(self, pokemon_id: str, trainer_id: str) -> None:
        pokemons, trainers = self.pokedex.pokemons, self.pokedex.trainers
        await EventStore.push_event_group(
            pokemons.group_event(
                pokemon_caught(pokemon_id, version=self.versions[pokemon_id] + 1, trainer_id=trainer_id)
            ),
            trainers.group_event(
                trainer_caught_pokemon(
                    trainer_id, version=self.versions[trainer_id] + 1, pokemon_id=pokemon_id
                )
            ),
        )
        self.versions[pokemon_id] += 1
        self.versions[trainer_id] += 1
        self.owners[pokemon_id] = trainer_id

    async def _level_up(self, pokemon_id: str) -> None:
        version = self.versions[pokemon_id] + 1
        await self.pokedex.pokemons.push_event(pokemon_leveled_up(pokemon_id, version=version))
        self.versions[pokemon_id] = version


# -- leaderboard v1: trainers by Pokémon caught ------------------------------------------------


def create_v1(connection: sqlite3.Connection) -> None:
    connection.execute(
        "CREATE TABLE IF NOT EXISTS leaderboard_v1 ("
        " trainer_id TEXT PRIMARY KEY, name TEXT NOT NULL, caught INTEGER NOT NULL)"
    )


def apply_v1(connection: sqlite3.Connection, entry: LoggedEvent) -> None:
    """One TRAINERS event, applied to the v1 leaderboard (inside the runner's transaction)."""
    event = entry.event
    if event.type == TRAINER_CREATED.type:
        connection.execute(
            "INSERT INTO leaderboard_v1 (trainer_id, name, caught) VALUES (?, ?, 0)",
            (event.aggregate_id, event.payload["name"]),
        )
    elif event.type == TRAINER_CAUGHT_POKEMON.type:
        connection.execute(
            "UPDATE leaderboard_v1 SET caught = caught + 1 WHERE trainer_id = ?", (event.aggregate_id,)
        )


def drop_v1(connection: sqlite3.Connection) -> None:
    connection.execute("DROP TABLE leaderboard_v1")


def leaderboard_v1(
    pokedex: Pokedex, *, apply: Callable[[sqlite3.Connection, LoggedEvent], None] = apply_v1
) -> Projection:
    """Trainers ranked by the Pokémon they caught, from the ``TRAINERS`` store."""
    return Projection(
        "leaderboard_v1", event_stores=[pokedex.trainers], apply=apply, create=create_v1, drop=drop_v1
    )


# -- leaderboard v2: trainers by the levels of their Pokémon -------------------------------------


def create_v2(connection: sqlite3.Connection) -> None:
    connection.execute(
        "CREATE TABLE IF NOT EXISTS leaderboard_v2 ("
        " trainer_id TEXT PRIMARY KEY, name TEXT NOT NULL, caught INTEGER NOT NULL, levels INTEGER NOT NULL)"
    )
    # What v2 needs to know about every Pokémon to credit its owner: its level, and who owns it.
    connection.execute(
        "CREATE TABLE IF NOT EXISTS leaderboard_v2_pokemons ("
        " pokemon_id TEXT PRIMARY KEY, level INTEGER NOT NULL, trainer_id TEXT)"
    )


def apply_v2(connection: sqlite3.Connection, entry: LoggedEvent) -> None:
    """One POKEMONS or TRAINERS event, applied to the v2 leaderboard."""
    event = entry.event
    if entry.event_store_id == POKEMONS:
        if event.type == POKEMON_APPEARED.type:
            connection.execute(
                "INSERT INTO leaderboard_v2_pokemons (pokemon_id, level) VALUES (?, ?)",
                (event.aggregate_id, event.payload["level"]),
            )
        elif event.type == POKEMON_CAUGHT.type:
            connection.execute(
                "UPDATE leaderboard_v2_pokemons SET trainer_id = ? WHERE pokemon_id = ?",
                (event.payload["trainer_id"], event.aggregate_id),
            )
            connection.execute(
                "UPDATE leaderboard_v2 SET levels = levels +"
                " (SELECT level FROM leaderboard_v2_pokemons WHERE pokemon_id = ?) WHERE trainer_id = ?",
                (event.aggregate_id, event.payload["trainer_id"]),
            )
        elif event.type == POKEMON_LEVELED_UP.type:
            connection.execute(
                "UPDATE leaderboard_v2_pokemons SET level = level + 1 WHERE pokemon_id = ?",
                (event.aggregate_id,),
            )
            connection.execute(
                "UPDATE leaderboard_v2 SET levels = levels + 1 WHERE trainer_id ="
                " (SELECT trainer_id FROM leaderboard_v2_pokemons WHERE pokemon_id = ?)",
                (event.aggregate_id,),
            )
    elif event.type == TRAINER_CREATED.type:
        connection.execute(
            "INSERT INTO leaderboard_v2 (trainer_id, name, caught, levels) VALUES (?, ?, 0, 0)",
            (event.aggregate_id, event.payload["name"]),
        )
    elif event.type == TRAINER_CAUGHT_POKEMON.type:
        connection.execute(
            "UPDATE leaderboard_v2 SET caught = caught + 1 WHERE trainer_id = ?", (event.aggregate_id,)
        )


def drop_v2(connection: sqlite3.Connection) -> None:
    connection.execute("DROP TABLE leaderboard_v2")
    connection.execute("DROP TABLE leaderboard_v2_pokemons")


def leaderboard_v2(pokedex: Pokedex) -> Projection:
    """Trainers ranked by the levels of the Pokémon they caught, from both stores."""
    return Projection(
        "leaderboard_v2",
        event_stores=[pokedex.pokemons, pokedex.trainers],
        apply=apply_v2,
        create=create_v2,
        drop=drop_v2,
    )


# -- the read side ------------------------------------------------------------------------------

# What each version answers, best first.
QUERIES = {
    "leaderboard_v1": "SELECT name, caught FROM leaderboard_v1 ORDER BY caught DESC, name",
    "leaderboard_v2": "SELECT name, caught, levels FROM leaderboard_v2 ORDER BY levels DESC, caught DESC, name",
}


def top_trainers(connection: sqlite3.Connection) -> tuple[str, list[tuple[object, ...]]]:
    """The leaderboard, read from whichever version serves it: ``(version, rows best first)``."""
    (serving,) = connection.execute(
        "SELECT projection_name FROM serving_projections WHERE read_model = ?", (READ_MODEL,)
    ).fetchone()
    return serving, connection.execute(QUERIES[serving]).fetchall()


# -- the projection process (notebook 11 kills it) ------------------------------------------------


def holding_at(position: int) -> Callable[[sqlite3.Connection, LoggedEvent], None]:
    """``apply_v1``, which stops inside the transaction once it has applied ``position``."""

    def apply(connection: sqlite3.Connection, entry: LoggedEvent) -> None:
        apply_v1(connection, entry)
        if entry.position == position:
            print(f"holding at position {position}, inside the transaction", flush=True)
            sys.stdin.readline()  # no line ever comes: the notebook kills this process here

    return apply


async def run_projection(path: str, batch_size: int, hold_at: int) -> None:
    pokedex = sqlite_pokedex(path)
    projection = leaderboard_v1(pokedex, apply=holding_at(hold_at) if hold_at else apply_v1)
    with SQLiteProjectionRunner(projection, batch_size=batch_size) as runner:
        print(f"started at checkpoint {await runner.checkpoint()}", flush=True)
        while await runner.lag() > 0:
            applied = await runner.step()
            print(f"committed {applied} events, checkpoint {await runner.checkpoint()}", flush=True)
    pokedex.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the v1 leaderboard projection on an SQLite Pokédex.")
    parser.add_argument("path", help="the SQLite file of the Pokédex")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--hold-at", type=int, default=0, help="stop inside the batch of this log position")
    options = parser.parse_args(argv)
    asyncio.run(run_projection(options.path, options.batch_size, options.hold_at))


if __name__ == "__main__":
    main()
