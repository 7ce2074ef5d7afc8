"""PostgresEventStorageAdapter: the contract suite, plus what only a server database does.

Every test gets an empty schema of its own (``postgres_conninfo``, tests/conftest.py) on one
server per run: a private one started for the run, or ``CASTORE_EDU_POSTGRES_URL``'s. The tests
that stop a server start their own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from castore_edu import (
    EventAlreadyExistsError,
    EventStore,
    InMemoryMessageBusAdapter,
    InvalidEventError,
    NotificationMessageBus,
    ServerUnavailableError,
)
from castore_edu.core.clock import Clock, utc_now
from castore_edu.reliability.relay import PostgresCheckpointStore, Relay
from castore_edu.snapshots.postgres import PostgresSnapshotStore
from castore_edu.storage.postgres import INSERT, PostgresEventStorageAdapter
from castore_edu.testing.servers import PostgresServer, free_port
from castore_edu.testing.snapshot_contract import SnapshotStoreContract
from castore_edu.testing.storage_contract import StorageAdapterContract, event, store
from tests.racing_counter import run_racing_counters

pytestmark = pytest.mark.anyio
ROOT = str(Path(__file__).resolve().parents[1])


class TestPostgresAdapter(StorageAdapterContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_conninfo: str) -> None:
        self.conninfo = postgres_conninfo

    def make_adapter(self, clock: Clock = utc_now) -> PostgresEventStorageAdapter:
        return self.opened(PostgresEventStorageAdapter(self.conninfo, clock=clock))

    def make_sibling(self, adapter: Any) -> PostgresEventStorageAdapter:
        return self.make_adapter(adapter.clock)  # a second connection to the same database

    def make_stranger(self, adapter: Any) -> PostgresEventStorageAdapter:
        return self.opened(PostgresEventStorageAdapter(self.conninfo + " application_name=stranger"))


class TestPostgresSnapshotStore(SnapshotStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_conninfo: str) -> None:
        self.conninfo = postgres_conninfo

    def make_store(self) -> PostgresSnapshotStore:
        return PostgresSnapshotStore(self.opened(PostgresEventStorageAdapter(self.conninfo)))


async def test_snapshot_stores_opening_a_fresh_database_at_once_create_its_table_once(
    postgres_conninfo: str,
) -> None:
    adapters = [PostgresEventStorageAdapter(postgres_conninfo) for _ in range(4)]
    stores = [PostgresSnapshotStore(adapter) for adapter in adapters]
    try:
        await asyncio.gather(*(store.list_snapshots("S", "pikachu") for store in stores))
        assert [await store.list_snapshots("S", "pikachu") for store in stores] == [[]] * 4
        assert repr(stores[0]).startswith("PostgresSnapshotStore(PostgreSQL at ")
    finally:
        for adapter in adapters:
            await adapter.close()


@pytest.mark.parametrize(
    ("arguments", "name"),
    [(dict(conninfo=b"dbname=x"), "conninfo"), (dict(conninfo=None), "conninfo"), (dict(clock=3), "clock")],
)
def test_bad_constructor_arguments_are_refused_by_name(arguments: dict[str, Any], name: str) -> None:
    with pytest.raises(TypeError, match=name):
        PostgresEventStorageAdapter(**{"conninfo": "dbname=x", **arguments})


def rows(conninfo: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as connection:
        return connection.execute(query).fetchall()


async def test_payload_keys_keep_their_order_and_the_table_says_json(postgres_conninfo: str) -> None:
    async with PostgresEventStorageAdapter(postgres_conninfo) as adapter:
        payload = {"zubat": 1, "abra": 2, "mew": {"y": 1, "x": 2}}
        await store("POKEMONS", adapter).push_event(event(payload=payload))
        [stored] = await adapter.get_events("pikachu", event_store_id="POKEMONS")
        assert list(stored.payload) == ["zubat", "abra", "mew"] and list(stored.payload["mew"]) == ["y", "x"]
    [(column_type,)] = rows(
        postgres_conninfo,
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'events' "
        "AND column_name = 'payload' AND table_schema = current_schema()",
    )
    assert column_type == "json"


async def test_a_conflicting_group_names_the_event_and_stores_nothing(postgres_conninfo: str) -> None:
    async with PostgresEventStorageAdapter(postgres_conninfo) as adapter:
        pokemons, trainers = store("POKEMONS", adapter), store("TRAINERS", adapter)
        await trainers.push_event(event("ash", 2))
        with pytest.raises(EventAlreadyExistsError) as caught:
            await EventStore.push_event_group(
                pokemons.group_event(event("pikachu")),
                trainers.group_event(event("ash")),
                trainers.group_event(event("ash", 2)),
                pokemons.group_event(event("eevee")),
            )
        error = caught.value
        assert (error.event_store_id, error.aggregate_id, error.version) == ("TRAINERS", "ash", 2)
        assert [entry.event.aggregate_id for entry in await adapter.read_log()] == ["ash"]
        await pokemons.push_event(event("pikachu"))  # the next write takes the next position
        assert [entry.position for entry in await adapter.read_log()] == [1, 2]


async def test_a_bad_event_is_refused_before_anything_is_sent() -> None:
    """No server listens at this address: the check comes first, so the error is about the event."""
    adapter = PostgresEventStorageAdapter(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(InvalidEventError, match="version"):
        await adapter.push_event(event(version=0), event_store_id="S")
    with pytest.raises(InvalidEventError, match="payload"):
        store("S", adapter).group_event(event(payload={"nan": float("nan")}))


def test_a_connection_string_that_does_not_parse_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"not a PostgreSQL connection string: 'host=127\.0\.0\.1 port'"):
        PostgresEventStorageAdapter("host=127.0.0.1 port")


async def test_no_server_at_the_address_names_it_and_says_what_to_check() -> None:
    port = free_port()
    adapter = PostgresEventStorageAdapter(f"postgresql://postgres@127.0.0.1:{port}/pokedex")
    with pytest.raises(ServerUnavailableError) as caught:
        await adapter.get_events("pikachu", event_store_id="S")
    message = str(caught.value)
    assert message.startswith(f"Cannot reach PostgreSQL at 127.0.0.1:{port}, database pokedex: ")
    assert "refused" in message and message.endswith("Is the server running, and is the address right?")
    assert caught.value.server == f"PostgreSQL at 127.0.0.1:{port}, database pokedex"


def test_the_adapter_works_in_one_event_loop_after_another(postgres_conninfo: str) -> None:
    """As a notebook does: the same adapter object, used by two ``asyncio.run`` in a row."""
    adapter = PostgresEventStorageAdapter(postgres_conninfo)
    pokemons = store("POKEMONS", adapter)
    asyncio.run(pokemons.push_event(event(version=1)))
    asyncio.run(pokemons.push_event(event(version=2)))

    async def read_and_close() -> list[int]:
        versions = [e.version for e in await pokemons.get_events("pikachu")]
        await adapter.close()
        return versions

    assert asyncio.run(read_and_close()) == [1, 2]


async def test_concurrent_tasks_take_turns_on_the_connection(postgres_conninfo: str) -> None:
    async with PostgresEventStorageAdapter(postgres_conninfo) as adapter:
        pokemons = store("POKEMONS", adapter)
        results = await asyncio.gather(
            *(pokemons.push_event(event(f"mon{index}", 1)) for index in range(20)),
            return_exceptions=True,
        )
        assert not [result for result in results if isinstance(result, BaseException)]
        assert [entry.position for entry in await adapter.read_log()] == list(range(1, 21))


# -- the log on a server: a late commit is never skipped ---------------------------------------


async def test_a_writer_that_holds_its_transaction_open_makes_the_others_wait(postgres_conninfo: str) -> None:
    """The late-commit gap, and how the adapter closes it.

    A writer (here a raw connection doing exactly what the adapter does) inserts position 1 and
    does not commit. Meanwhile other writers push: they cannot take position 1 while it is
    pending, nor 2 (the last committed position is 0), so they wait instead of committing first.
    A reader in that moment sees an empty log, not a log with a hole at 1. Once the first
    commits, the rest write again after it, in order, and the reader that kept a checkpoint has
    seen every event.
    """
    async with (
        PostgresEventStorageAdapter(postgres_conninfo) as writer,
        PostgresEventStorageAdapter(postgres_conninfo) as reader,
    ):
        pokemons = store("POKEMONS", writer)
        await reader.last_position()  # creates the tables
        slow = await psycopg.AsyncConnection.connect(postgres_conninfo)
        try:
            await slow.execute(
                INSERT, ("POKEMONS", "slowpoke", 1, "APPEARED", "2024-01-01T00:00:00.000Z", None, None, 1)
            )
            pushes = [asyncio.ensure_future(pokemons.push_event(event(f"fast{index}"))) for index in range(3)]
            await asyncio.sleep(0.3)  # long enough for the pushes to commit, if they could
            assert not any(push.done() for push in pushes)
            seen = await reader.read_log()
            assert seen == []
            await slow.commit()
        finally:
            await slow.close()
        await asyncio.gather(*pushes)
        followed = seen + await reader.read_log(after_position=0)
        assert [(entry.position, entry.event.aggregate_id) for entry in followed][:1] == [(1, "slowpoke")]
        assert [entry.position for entry in followed] == [1, 2, 3, 4]


async def test_an_adapter_connects_while_another_writer_has_a_transaction_open(
    postgres_conninfo: str,
) -> None:
    """Opening a database must not wait for its writers: making the tables if they are missing
    takes no lock on tables that exist (notebook 09 opens a reader while a write is pending)."""
    async with PostgresEventStorageAdapter(postgres_conninfo) as first:
        await first.last_position()  # creates the tables
        slow = await psycopg.AsyncConnection.connect(postgres_conninfo)
        try:
            await slow.execute(
                INSERT, ("POKEMONS", "slowpoke", 1, "APPEARED", "2024-01-01T00:00:00.000Z", None, None, 1)
            )
            async with PostgresEventStorageAdapter(postgres_conninfo) as late:
                assert await asyncio.wait_for(late.last_position(), timeout=10) == 0
        finally:
            await slow.close()


async def test_writers_on_their_own_connections_take_turns_on_the_next_position(
    postgres_conninfo: str,
) -> None:
    """Four adapters (four connections, as four processes) push at once, single events and
    groups, each to aggregates of its own. They keep asking for the same next position; the
    losers write again after the winner, so every push succeeds and the log has no gap."""
    adapters = [PostgresEventStorageAdapter(postgres_conninfo) for _ in range(4)]
    try:
        await asyncio.gather(*(adapter.last_position() for adapter in adapters))  # all connected

        async def write(writer: int, adapter: PostgresEventStorageAdapter) -> None:
            pokemons = store("POKEMONS", adapter)
            for round_ in range(10):
                await pokemons.push_event(event(f"w{writer}-{round_}"))
                await EventStore.push_event_group(
                    pokemons.group_event(event(f"w{writer}-{round_}-a")),
                    pokemons.group_event(event(f"w{writer}-{round_}-b")),
                )

        await asyncio.gather(*(write(writer, adapter) for writer, adapter in enumerate(adapters)))
        log = await adapters[0].read_log()
        assert [entry.position for entry in log] == list(range(1, 4 * 10 * 3 + 1))
        for writer in range(4):
            mine = [
                entry.event.aggregate_id
                for entry in log
                if entry.event.aggregate_id.startswith(f"w{writer}-")
            ]
            assert mine == [f"w{writer}-{r}{suffix}" for r in range(10) for suffix in ("", "-a", "-b")]
    finally:
        await asyncio.gather(*(adapter.close() for adapter in adapters))


async def test_a_forced_write_waits_for_a_writer_at_work_and_then_overwrites(postgres_conninfo: str) -> None:
    async with PostgresEventStorageAdapter(postgres_conninfo) as adapter:
        pokemons = store("POKEMONS", adapter)
        await pokemons.push_event(event("pikachu", 1, type="APPEARED"))
        slow = await psycopg.AsyncConnection.connect(postgres_conninfo)
        try:
            await slow.execute(
                INSERT, ("POKEMONS", "slowpoke", 1, "APPEARED", "2024-01-01T00:00:00.000Z", None, None, 1)
            )
            forced = asyncio.ensure_future(
                pokemons.push_event(event("pikachu", 1, type="LEVELLED_UP"), force=True)
            )
            await asyncio.sleep(0.3)
            assert not forced.done()  # the table's lock waits for the open transaction
            await slow.commit()
        finally:
            await slow.close()
        await forced
        log = await adapter.read_log()
        assert [(e.position, e.event.aggregate_id, e.event.type) for e in log] == [
            (1, "pikachu", "LEVELLED_UP"),
            (2, "slowpoke", "APPEARED"),
        ]


async def test_commits_wake_a_relay_that_would_otherwise_sleep_a_minute(postgres_conninfo: str) -> None:
    async with (
        PostgresEventStorageAdapter(postgres_conninfo) as adapter,
        PostgresEventStorageAdapter(postgres_conninfo) as other_writer,
    ):
        pokemons = store("POKEMONS", adapter)
        bus = NotificationMessageBus(message_bus_id="bus", source_event_stores=[pokemons])
        received: list[str] = []

        async def handler(message: Any, context: Any) -> None:
            received.append(message.event.aggregate_id)

        InMemoryMessageBusAdapter.attach_to(bus).on({}, handler)
        relay = Relay(adapter, {"POKEMONS": bus}, poll_interval=60.0)
        relay.start()
        commits = adapter.commits()

        async def nudge_on_commit() -> None:
            async for _ in commits:
                relay.nudge()

        listener = asyncio.ensure_future(nudge_on_commit())
        try:
            await asyncio.sleep(0.2)  # the relay has read the empty log and sleeps; LISTEN is on
            await store("POKEMONS", other_writer).push_event(event("mew"))
            with anyio.fail_after(30):  # without the wake-up, 60 s
                while received != ["mew"]:
                    await asyncio.sleep(0.01)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await relay.stop()
            await commits.aclose()


# -- across processes --------------------------------------------------------------------------


async def test_processes_racing_on_one_aggregate_lose_nothing(postgres_conninfo: str) -> None:
    """Three processes open a fresh database at once (each creates the tables if missing) and
    increment one counter: the unique constraint referees, the retries do the rest."""
    names, per_process = ["ash", "misty", "brock"], 40
    run_racing_counters("postgres", postgres_conninfo, names, per_process)
    async with PostgresEventStorageAdapter(postgres_conninfo) as adapter:
        events = await adapter.get_events("shared", event_store_id="COUNTERS")
        assert [e.version for e in events] == list(range(1, 3 * per_process + 1))
        assert sorted(e.payload["by"] for e in events) == sorted(names * per_process)
        assert [entry.position for entry in await adapter.read_log()] == list(range(1, 3 * per_process + 1))


# -- a server that goes away and comes back ----------------------------------------------------


async def test_the_adapter_works_again_once_its_server_is_back() -> None:
    with PostgresServer() as server:
        async with PostgresEventStorageAdapter(server.url) as adapter:
            pokemons = store("POKEMONS", adapter)
            await pokemons.push_event(event(version=1))
            commits = adapter.commits()
            listening = asyncio.ensure_future(anext(commits))
            await asyncio.sleep(0.2)  # LISTEN is on
            server.kill()
            with pytest.raises(ServerUnavailableError, match=f"PostgreSQL at 127.0.0.1:{server.port}"):
                await listening  # a listener learns that its server is gone too
            with pytest.raises(ServerUnavailableError, match=f"PostgreSQL at 127.0.0.1:{server.port}"):
                await pokemons.push_event(event(version=2))
            with pytest.raises(ServerUnavailableError):
                await pokemons.get_events("pikachu")
            server.start()
            await pokemons.push_event(event(version=2))
            assert [e.version for e in await pokemons.get_events("pikachu")] == [1, 2]


def test_the_front_door_loads_the_adapter_on_demand() -> None:
    import castore_edu

    assert castore_edu.PostgresEventStorageAdapter is PostgresEventStorageAdapter
    assert "PostgresEventStorageAdapter" not in castore_edu.__all__  # import * needs no driver
    with pytest.raises(AttributeError, match="module 'castore_edu' has no attribute 'Nope'"):
        castore_edu.Nope  # noqa: B018


def test_an_adapter_used_in_a_finished_loop_is_closed_from_a_new_one(postgres_conninfo: str) -> None:
    adapter = PostgresEventStorageAdapter(postgres_conninfo)
    assert repr(adapter).startswith("PostgresEventStorageAdapter(PostgreSQL at ")
    asyncio.run(adapter.last_position())
    asyncio.run(adapter.close())  # the old loop is gone: the socket is closed without it
    asyncio.run(adapter.close())  # closing twice is harmless


async def test_commits_names_a_server_it_cannot_reach() -> None:
    adapter = PostgresEventStorageAdapter(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(ServerUnavailableError, match=r"Cannot reach PostgreSQL at 127\.0\.0\.1"):
        async for _ in adapter.commits():
            pass


async def test_a_relay_keeps_its_checkpoint_in_the_database_and_a_new_process_continues(
    postgres_conninfo: str,
) -> None:
    """The relay's checkpoint lives in ``relay_checkpoints`` beside the events: a relay on a new
    adapter (as in a new process, on any machine) starts where the old one stopped."""
    published: list[int] = []

    async def handler(message: Any, context: Any) -> None:
        published.append(message.event.version)

    def relay_on(adapter: PostgresEventStorageAdapter) -> Relay:
        bus = NotificationMessageBus(message_bus_id="bus", source_event_stores=[store("POKEMONS", adapter)])
        InMemoryMessageBusAdapter.attach_to(bus).on({}, handler)
        return Relay(adapter, {"POKEMONS": bus}, batch_size=2)

    async with PostgresEventStorageAdapter(postgres_conninfo) as adapter:
        for version in (1, 2, 3):
            await store("POKEMONS", adapter).push_event(event(version=version))
        relay = relay_on(adapter)
        assert isinstance(relay.checkpoints, PostgresCheckpointStore)
        assert await relay.step() == 2 and await relay.checkpoint() == 2
    assert rows(postgres_conninfo, "SELECT relay_name, position FROM relay_checkpoints") == [("relay", 2)]
    async with PostgresEventStorageAdapter(postgres_conninfo) as adapter:
        await store("POKEMONS", adapter).push_event(event(version=4))
        relay = relay_on(adapter)
        assert (await relay.checkpoint(), await relay.lag()) == (2, 2)
        assert await relay.catch_up() == 2
    assert published == [1, 2, 3, 4]  # each once, in order


# The events table as the release before schema versions made it.
TABLE_WITHOUT_SCHEMA_VERSION = """
CREATE TABLE events (
    position       BIGINT  PRIMARY KEY,
    event_store_id TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    timestamp      TEXT    NOT NULL,
    payload        JSON,
    metadata       JSON,
    UNIQUE (event_store_id, aggregate_id, version)
)
"""


async def test_a_table_made_before_schema_versions_opens_and_its_events_read_as_version_1(
    postgres_conninfo: str,
) -> None:
    with psycopg.connect(postgres_conninfo, autocommit=True) as connection:
        connection.execute(TABLE_WITHOUT_SCHEMA_VERSION)
        connection.execute(
            "INSERT INTO events VALUES (1, 'S', 'pikachu', 1, 'APPEARED', '2023', '{\"name\": \"Pikachu\"}', NULL)"
        )
    old = event(type="APPEARED", timestamp="2023", payload={"name": "Pikachu"})
    async with PostgresEventStorageAdapter(postgres_conninfo) as adapter:
        assert await adapter.get_events("pikachu", event_store_id="S") == [old]
        newer = event(version=2, timestamp="2024", schema_version=2)
        await adapter.push_event(newer, event_store_id="S")
        assert [entry.event for entry in await adapter.read_log()] == [old, newer]
    async with PostgresEventStorageAdapter(postgres_conninfo) as reopened:
        assert await reopened.get_events("pikachu", event_store_id="S") == [old, newer]
    [(count,)] = rows(
        postgres_conninfo,
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'events' "
        "AND column_name = 'schema_version' AND table_schema = current_schema()",
    )
    assert count == 1
