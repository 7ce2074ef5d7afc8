"""Projection runners: the contract on SQLite and on PostgreSQL, and what each refuses.

The contract (``castore_edu/testing/projection_contract.py``) runs on both databases; the
PostgreSQL class takes a schema of its own per test (``postgres_conninfo``, tests/conftest.py).
What a real ``SIGKILL`` does to a running SQLite projection is ``tests/test_projection_kill.py``'s.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from castore_edu import (
    EventStore,
    InMemoryEventStorageAdapter,
    Projection,
    ProjectionRunner,
    SQLiteEventStorageAdapter,
    SQLiteProjectionRunner,
)
from castore_edu.core.events import EventDetail, LoggedEvent
from castore_edu.course.pokedex import (
    POKEMONS,
    TRAINERS,
    pokemon_appeared,
    pokemons_event_store,
    trainers_event_store,
)
from castore_edu.testing.projection_contract import GYM_POKEMONS, ProjectionRunnerContract, a_store

pytestmark = pytest.mark.anyio

SEEN_TABLE = "CREATE TABLE IF NOT EXISTS {table} (position INTEGER, event_store_id TEXT, aggregate_id TEXT, version INTEGER)"
INSERT_SEEN = "INSERT INTO {table} VALUES (%s, %s, %s, %s)"


def seen_row(entry: LoggedEvent) -> tuple[Any, ...]:
    return (entry.position, entry.event_store_id, entry.event.aggregate_id, entry.event.version)


def three_stores(adapter: Any) -> tuple[EventStore, EventStore, EventStore]:
    return pokemons_event_store(adapter), trainers_event_store(adapter), a_store(GYM_POKEMONS, adapter)


class TestSQLiteProjectionRunner(ProjectionRunnerContract):
    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.path = tmp_path / "events.sqlite"

    def make_adapter(self) -> SQLiteEventStorageAdapter:
        return self.opened(SQLiteEventStorageAdapter(self.path))

    def seen_projection(self, name: str, stores: list[EventStore]) -> Projection:
        table = f"{name}_seen"

        def apply(connection: sqlite3.Connection, entry: LoggedEvent) -> None:
            connection.execute(INSERT_SEEN.format(table=table).replace("%s", "?"), seen_row(entry))
            self.applying(entry)

        return Projection(
            name,
            event_stores=stores,
            apply=apply,
            create=lambda connection: connection.execute(SEEN_TABLE.format(table=table)),
            drop=lambda connection: connection.execute(f"DROP TABLE {table}"),
        )

    def make_runner(self, projection: Projection, *, batch_size: int = 100) -> ProjectionRunner:
        return self.opened(SQLiteProjectionRunner(projection, batch_size=batch_size))

    async def rows(self, statement: str) -> list[tuple[Any, ...]] | None:
        with closing(sqlite3.connect(self.path)) as connection:
            try:
                return connection.execute(statement).fetchall()
            except sqlite3.OperationalError as error:
                if "no such table" in str(error):
                    return None
                raise


class TestPostgresProjectionRunner(ProjectionRunnerContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_conninfo: str) -> None:
        self.conninfo = postgres_conninfo

    def make_adapter(self) -> Any:
        from castore_edu.storage.postgres import PostgresEventStorageAdapter

        return self.opened(PostgresEventStorageAdapter(self.conninfo))

    def seen_projection(self, name: str, stores: list[EventStore]) -> Projection:
        table = f"{name}_seen"

        async def apply(connection: Any, entry: LoggedEvent) -> None:
            await connection.execute(INSERT_SEEN.format(table=table), seen_row(entry))
            self.applying(entry)

        async def create(connection: Any) -> None:
            await connection.execute(SEEN_TABLE.format(table=table))

        async def drop(connection: Any) -> None:
            await connection.execute(f"DROP TABLE {table}")

        return Projection(name, event_stores=stores, apply=apply, create=create, drop=drop)

    def make_runner(self, projection: Projection, *, batch_size: int = 100) -> ProjectionRunner:
        from castore_edu import PostgresProjectionRunner  # type: ignore[attr-defined]  # lazy, by name

        return self.opened(PostgresProjectionRunner(projection, batch_size=batch_size))

    async def rows(self, statement: str) -> list[tuple[Any, ...]] | None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as connection:
            try:
                cursor = await connection.execute(statement)
            except psycopg.errors.UndefinedTable:
                return None
            return await cursor.fetchall()


# --- what a projection and the runners refuse -------------------------------------------------


def ignore(connection: Any, entry: LoggedEvent) -> None:
    """An apply that changes nothing."""


@pytest.fixture
def sqlite_stores(tmp_path: Path) -> Any:
    with SQLiteEventStorageAdapter(tmp_path / "events.sqlite") as adapter:
        yield three_stores(adapter)


@pytest.mark.parametrize(
    ("arguments", "error", "says"),
    [
        ({"name": ""}, ValueError, "name must be a non-empty str"),
        ({"name": 7}, TypeError, "name must be a non-empty str"),
        ({"event_stores": "POKEMONS"}, TypeError, "event_stores must be a list of event stores"),
        ({"event_stores": []}, ValueError, "at least one event store"),
        ({"apply": None}, TypeError, "apply must be callable"),
        ({"create": "CREATE TABLE"}, TypeError, "create must be callable"),
        ({"drop": 1}, TypeError, "drop must be callable"),
    ],
)
def test_a_projection_refuses_wrong_arguments_by_name(
    sqlite_stores: Any, arguments: dict[str, Any], error: type[Exception], says: str
) -> None:
    pokemons, _, _ = sqlite_stores
    given = {"name": "board", "event_stores": [pokemons], "apply": ignore, **arguments}
    name = given.pop("name")
    with pytest.raises(error, match=says):
        Projection(name, **given)


def test_a_projection_refuses_two_stores_of_one_id(sqlite_stores: Any) -> None:
    pokemons, _, _ = sqlite_stores
    twin = pokemons_event_store(pokemons.event_storage_adapter)
    with pytest.raises(ValueError, match=r"different ids, got \['POKEMONS'\] more than once"):
        Projection("board", event_stores=[pokemons, twin], apply=ignore)


def test_an_entry_comes_to_apply_as_its_store_reads_it(sqlite_stores: Any) -> None:
    pokemons, trainers, _ = sqlite_stores
    event = EventDetail(aggregate_id="pikachu", version=1, type="POKEMON_APPEARED", payload={"level": 5})
    projection = Projection("board", event_stores=[pokemons, trainers], apply=ignore)
    entry = LoggedEvent(1, POKEMONS, event)
    assert projection.in_current_shape(entry) == [entry]  # a current event: the entry itself
    assert projection.in_current_shape(entry)[0] is entry
    assert projection.follows(TRAINERS) and not projection.follows(GYM_POKEMONS)
    assert repr(projection) == "Projection('board', event_stores=['POKEMONS', 'TRAINERS'])"


def test_a_runner_refuses_what_is_not_a_projection_and_a_batch_size_below_one(sqlite_stores: Any) -> None:
    pokemons, _, _ = sqlite_stores
    with pytest.raises(TypeError, match="projection must be a Projection"):
        SQLiteProjectionRunner("board")  # type: ignore[arg-type]
    projection = Projection("board", event_stores=[pokemons], apply=ignore)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        SQLiteProjectionRunner(projection, batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int >= 1"):
        SQLiteProjectionRunner(projection, batch_size=True)


def test_the_sqlite_runner_refuses_stores_of_two_files_of_memory_or_of_a_private_database(
    tmp_path: Path, sqlite_stores: Any
) -> None:
    pokemons, _, _ = sqlite_stores
    with SQLiteEventStorageAdapter(tmp_path / "other.sqlite") as other:
        projection = Projection("board", event_stores=[pokemons, trainers_event_store(other)], apply=ignore)
        with pytest.raises(ValueError, match="must share one database"):
            SQLiteProjectionRunner(projection)
    in_memory = Projection(
        "board", event_stores=[pokemons_event_store(InMemoryEventStorageAdapter())], apply=ignore
    )
    with pytest.raises(TypeError, match=r"follows events stored in SQLite.*PostgresProjectionRunner"):
        SQLiteProjectionRunner(in_memory)
    with SQLiteEventStorageAdapter(":memory:") as private:
        projection = Projection("board", event_stores=[pokemons_event_store(private)], apply=ignore)
        with pytest.raises(ValueError, match="private database"):
            SQLiteProjectionRunner(projection)


async def test_the_sqlite_runner_refuses_async_hooks(sqlite_stores: Any) -> None:
    pokemons, _, _ = sqlite_stores

    async def apply(connection: Any, entry: LoggedEvent) -> None: ...

    with pytest.raises(TypeError, match="apply must be a plain function"):
        SQLiteProjectionRunner(Projection("board", event_stores=[pokemons], apply=apply))
    in_disguise = Projection(
        "board",
        event_stores=[pokemons],
        apply=ignore,
        create=lambda connection: apply(connection, None),  # type: ignore[arg-type]
    )
    with (
        SQLiteProjectionRunner(in_disguise) as runner,
        pytest.raises(TypeError, match="must be plain functions"),
    ):
        await runner.step()


async def test_the_postgres_runner_refuses_stores_kept_elsewhere(sqlite_stores: Any) -> None:
    from castore_edu import PostgresProjectionRunner  # type: ignore[attr-defined]

    pokemons, _, _ = sqlite_stores
    with pytest.raises(TypeError, match=r"follows events stored in PostgreSQL.*SQLiteProjectionRunner"):
        PostgresProjectionRunner(Projection("board", event_stores=[pokemons], apply=ignore))


async def test_a_reader_sees_the_read_model_through_the_runner_and_its_repr_names_it(
    sqlite_stores: Any,
) -> None:
    pokemons, _, _ = sqlite_stores
    await pokemons.push_event(pokemon_appeared("pikachu", name="Pikachu", level=5))
    projection = Projection(
        "count",
        event_stores=[pokemons],
        apply=lambda connection, entry: connection.execute("UPDATE counted SET n = n + 1"),
        create=lambda connection: (
            connection.execute("CREATE TABLE IF NOT EXISTS counted (n INTEGER)"),
            connection.execute("INSERT INTO counted SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM counted)"),
        ),
    )
    with SQLiteProjectionRunner(projection, batch_size=10) as runner:
        assert repr(runner) == "SQLiteProjectionRunner('count', batch_size=10)"
        assert await runner.run_until_caught_up() == 1
        assert await runner.fetch("SELECT n FROM counted") == [(1,)]
        assert await runner.fetch(
            "SELECT position FROM projection_checkpoints WHERE projection_name = %s", ("count",)
        ) == [(1,)]


async def test_on_postgres_a_failing_statement_of_a_pipelined_batch_rolls_the_whole_batch_back(
    postgres_conninfo: str,
) -> None:
    """PostgreSQL sends a batch's statements in pipeline mode: an error comes back late, yet the
    batch is still all or nothing, and the runner goes on afterwards."""
    from castore_edu import PostgresProjectionRunner  # type: ignore[attr-defined]
    from castore_edu.storage.postgres import PostgresEventStorageAdapter

    async with PostgresEventStorageAdapter(postgres_conninfo) as adapter:
        pokemons = pokemons_event_store(adapter)
        for name, level in (("pikachu", 5), ("charmander", -1), ("eevee", 3)):
            await pokemons.push_event(pokemon_appeared(name, name=name.capitalize(), level=level))

        async def create(connection: Any) -> None:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS levels (pokemon_id TEXT, level INTEGER CHECK (level >= 0))"
            )

        async def apply(connection: Any, entry: LoggedEvent) -> None:
            level = max(entry.event.payload["level"], 0) if fixed else entry.event.payload["level"]
            await connection.execute("INSERT INTO levels VALUES (%s, %s)", (entry.event.aggregate_id, level))

        fixed = False
        projection = Projection("levels", event_stores=[pokemons], apply=apply, create=create)
        async with PostgresProjectionRunner(projection) as runner:
            import psycopg

            with pytest.raises(psycopg.errors.CheckViolation):
                await runner.step()  # charmander's level breaks the CHECK, after pikachu's row
            assert (
                await runner.fetch("SELECT pokemon_id FROM levels") == [] and await runner.checkpoint() == 0
            )
            fixed = True
            assert await runner.step() == 3
            assert await runner.fetch("SELECT pokemon_id, level FROM levels ORDER BY pokemon_id") == [
                ("charmander", 0),
                ("eevee", 3),
                ("pikachu", 5),
            ]


class _StorageWithoutLog:
    """The five calls of a storage adapter, and no ordered log."""

    async def get_events(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    async def push_event(self, *args: Any, **kwargs: Any) -> Any: ...

    async def push_event_group(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def group_event(self, event: Any) -> Any: ...

    async def list_aggregate_ids(self, **kwargs: Any) -> Any: ...


def test_a_runner_refuses_storage_without_an_ordered_log() -> None:
    projection = Projection("board", event_stores=[pokemons_event_store(_StorageWithoutLog())], apply=ignore)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"event_stores: .* keeps no ordered log"):
        SQLiteProjectionRunner(projection)


def test_stores_of_two_postgres_databases_are_refused_and_of_one_accepted() -> None:
    from castore_edu import PostgresProjectionRunner  # type: ignore[attr-defined]
    from castore_edu.storage.postgres import PostgresEventStorageAdapter

    here, there = "postgresql://127.0.0.1:1/here", "postgresql://127.0.0.1:1/there"  # never connected
    two = [
        pokemons_event_store(PostgresEventStorageAdapter(here)),
        trainers_event_store(PostgresEventStorageAdapter(there)),
    ]
    with pytest.raises(ValueError, match="must share one database"):
        PostgresProjectionRunner(Projection("board", event_stores=two, apply=ignore))
    one = [
        pokemons_event_store(PostgresEventStorageAdapter(here)),
        trainers_event_store(PostgresEventStorageAdapter(here)),
    ]
    assert PostgresProjectionRunner(Projection("board", event_stores=one, apply=ignore)).conninfo == here


async def test_a_projection_without_hooks_switches_when_caught_up_and_drops(sqlite_stores: Any) -> None:
    pokemons, _, _ = sqlite_stores
    await pokemons.push_event(pokemon_appeared("pikachu", name="Pikachu", level=5))
    with SQLiteProjectionRunner(Projection("bare", event_stores=[pokemons], apply=ignore)) as runner:
        assert await runner.run_until_caught_up() == 1
        assert await runner.switch("board") is None  # nothing new to read: it switches at once
        assert await runner.serving("board") == "bare"
        with SQLiteProjectionRunner(Projection("other", event_stores=[pokemons], apply=ignore)) as other:
            assert await other.switch("board") == "bare"
            await runner.drop()  # no tables of its own: only its checkpoint goes
            assert await other.fetch("SELECT projection_name FROM projection_checkpoints") == [("other",)]


async def test_an_apply_that_ends_the_transaction_itself_still_gets_its_error_out(sqlite_stores: Any) -> None:
    pokemons, _, _ = sqlite_stores
    await pokemons.push_event(pokemon_appeared("pikachu", name="Pikachu", level=5))

    def meddling(connection: sqlite3.Connection, entry: LoggedEvent) -> None:
        connection.execute("ROLLBACK")  # not its job: the runner's transaction is gone
        raise ValueError("and then it failed")

    with SQLiteProjectionRunner(Projection("board", event_stores=[pokemons], apply=meddling)) as runner:
        with pytest.raises(ValueError, match="and then it failed"):  # not "no transaction is active"
            await runner.step()
        assert await runner.checkpoint() == 0


async def test_a_postgres_runner_says_when_its_server_is_out_of_reach() -> None:
    from castore_edu import PostgresProjectionRunner, ServerUnavailableError  # type: ignore[attr-defined]
    from castore_edu.storage.postgres import PostgresEventStorageAdapter
    from castore_edu.testing.servers import free_port

    port = free_port()
    adapter = PostgresEventStorageAdapter(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    runner = PostgresProjectionRunner(
        Projection("board", event_stores=[pokemons_event_store(adapter)], apply=ignore)
    )
    with pytest.raises(ServerUnavailableError, match=f"PostgreSQL at 127.0.0.1:{port}"):
        await runner.checkpoint()
    await runner.close()  # nothing to close: harmless


def test_a_postgres_runner_works_across_event_loops_and_after_its_server_came_back() -> None:
    """A runner used from a later ``asyncio.run`` connects again (a connection belongs to its loop);
    a server that went away gives ``ServerUnavailableError``, then the runner connects again."""
    import asyncio

    from castore_edu import PostgresProjectionRunner, ServerUnavailableError  # type: ignore[attr-defined]
    from castore_edu.storage.postgres import PostgresEventStorageAdapter
    from castore_edu.testing.servers import PostgresServer

    with PostgresServer() as server:
        adapter = PostgresEventStorageAdapter(server.url)
        pokemons = pokemons_event_store(adapter)

        async def create(connection: Any) -> None:
            await connection.execute("CREATE TABLE IF NOT EXISTS seen (position BIGINT)")

        async def apply(connection: Any, entry: LoggedEvent) -> None:
            await connection.execute("INSERT INTO seen VALUES (%s)", (entry.position,))

        runner = PostgresProjectionRunner(
            Projection(
                "seen", event_stores=[pokemons], apply=apply, create=create, drop=lambda connection: None
            )
        )

        async def first_loop() -> int:
            await pokemons.push_event(pokemon_appeared("pikachu", name="Pikachu", level=5))
            return await runner.run_until_caught_up()

        async def second_loop() -> list[Any]:
            await pokemons.push_event(pokemon_appeared("eevee", name="Eevee", level=3))
            await runner.run_until_caught_up()
            return await runner.fetch("SELECT position FROM seen ORDER BY position")

        assert asyncio.run(first_loop()) == 1
        assert asyncio.run(second_loop()) == [(1,), (2,)]  # a new loop, a new connection

        async def after_restarts() -> list[Any]:
            await runner.checkpoint()  # connected from this loop
            server.kill()
            with pytest.raises(ServerUnavailableError):
                await runner.drop()  # its transaction cannot begin: nothing is dropped
            server.start()
            await runner.checkpoint()  # connected again
            server.kill()
            with pytest.raises(ServerUnavailableError):
                await runner.fetch("SELECT 1")
            server.start()
            await pokemons.push_event(pokemon_appeared("mew", name="Mew", level=50))
            await runner.run_until_caught_up()
            return await runner.fetch("SELECT position FROM seen ORDER BY position")

        assert asyncio.run(after_restarts()) == [(1,), (2,), (3,)]
        asyncio.run(runner.close())  # from another loop than its connection's: closed without it

        async def dropped() -> None:
            await runner.drop()  # its drop hook is a plain function here: called all the same
            await runner.close()
            await adapter.close()

        asyncio.run(dropped())
