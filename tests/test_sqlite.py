"""SQLiteEventStorageAdapter: the contract suite, plus what only a real database does."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from castore_edu import EventAlreadyExistsError, EventDetail, EventStore, SQLiteEventStorageAdapter
from castore_edu.core.clock import Clock, utc_now
from castore_edu.testing.storage_contract import StorageAdapterContract, event, store
from tests.racing_counter import run_racing_counters

pytestmark = pytest.mark.anyio


class TestSQLiteAdapter(StorageAdapterContract):
    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.path = tmp_path / "events.sqlite"

    def make_adapter(self, clock: Clock = utc_now) -> SQLiteEventStorageAdapter:
        return self.opened(SQLiteEventStorageAdapter(self.path, clock=clock))

    def make_sibling(self, adapter: Any) -> SQLiteEventStorageAdapter:
        return self.make_adapter(adapter.clock)  # a second connection to the same file

    def make_stranger(self, adapter: Any) -> SQLiteEventStorageAdapter:
        return self.opened(SQLiteEventStorageAdapter(self.path.with_name("other.sqlite")))


async def test_events_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pokedex.sqlite"
    with SQLiteEventStorageAdapter(path) as adapter:
        pushed = await store("POKEMONS", adapter).push_event(event(payload={"name": "Pikachu"}))
    with SQLiteEventStorageAdapter(path) as reopened:
        assert await store("POKEMONS", reopened).get_events("pikachu") == [pushed.event]
        assert await reopened.last_position() == 1


async def test_one_file_holds_several_event_stores_apart(tmp_path: Path) -> None:
    with SQLiteEventStorageAdapter(tmp_path / "db.sqlite") as adapter:
        pokemons, trainers = store("POKEMONS", adapter), store("TRAINERS", adapter)
        await pokemons.push_event(event("same-id", type="APPEARED"))
        await trainers.push_event(event("same-id", type="GAME_STARTED"))  # no conflict: another store
        assert [e.type for e in await pokemons.get_events("same-id")] == ["APPEARED"]
        assert [e.type for e in await trainers.get_events("same-id")] == ["GAME_STARTED"]
        with pytest.raises(EventAlreadyExistsError) as caught:
            await trainers.push_event(event("same-id"))
        assert caught.value.event_store_id == "TRAINERS"


def test_the_database_uses_write_ahead_logging_and_full_sync(tmp_path: Path) -> None:
    with SQLiteEventStorageAdapter(tmp_path / "db.sqlite") as adapter:
        assert adapter.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert adapter.connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


@pytest.mark.parametrize(
    "path",
    [":memory:", "", "file::memory:", "file:pokedex?mode=memory"],
)
async def test_two_private_databases_cannot_share_a_group(path: str) -> None:
    """Each of these paths opens a database of its own (``""``: a temporary one), so two adapters
    are two databases, however alike their paths, and a group across them is refused before
    anything is written."""
    with SQLiteEventStorageAdapter(path) as first, SQLiteEventStorageAdapter(path) as second:
        a, b = store("A", first), store("B", second)
        with pytest.raises(ValueError, match="same SQLite database"):
            await EventStore.push_event_group(a.group_event(event("x")), b.group_event(event("y")))
        assert (await first.last_position(), await second.last_position()) == (0, 0)
        # a private database can still hold a group of its own stores
        await EventStore.push_event_group(
            a.group_event(event("x")), store("B", first).group_event(event("y"))
        )
        assert await first.last_position() == 2


async def test_one_file_opened_through_two_spellings_of_its_path_shares_a_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with (
        SQLiteEventStorageAdapter(tmp_path / "db.sqlite") as first,
        SQLiteEventStorageAdapter("./db.sqlite") as second,
    ):
        await EventStore.push_event_group(
            store("A", first).group_event(event("x")), store("B", second).group_event(event("y"))
        )
        assert await second.last_position() == 2


@pytest.mark.parametrize(
    ("arguments", "error", "name"),
    [
        (dict(path=42), TypeError, "path"),
        (dict(path=None), TypeError, "path"),
        (dict(timeout="x"), TypeError, "timeout"),
        (dict(timeout=True), TypeError, "timeout"),
        (dict(timeout=-1), ValueError, "timeout"),
        (dict(timeout=float("nan")), ValueError, "timeout"),
        (dict(clock="2024"), TypeError, "clock"),
    ],
)
def test_bad_constructor_arguments_are_refused_by_name(
    arguments: dict[str, Any], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        SQLiteEventStorageAdapter(**arguments)


@pytest.mark.parametrize(
    ("taken", "conflicting"),
    [
        (event("ash", 2), ("TRAINERS", "ash", 2)),  # already in the database
        (None, ("POKEMONS", "pikachu", 1)),  # the group's first event, again
    ],
)
async def test_a_group_whose_third_event_conflicts_names_that_event_and_stores_nothing(
    tmp_path: Path, taken: EventDetail | None, conflicting: tuple[str, str, int]
) -> None:
    """The group goes in as one ``executemany``; the error still names the event refused."""
    with SQLiteEventStorageAdapter(tmp_path / "db.sqlite") as adapter:
        pokemons, trainers = store("POKEMONS", adapter), store("TRAINERS", adapter)
        if taken is not None:
            await trainers.push_event(taken)
        third = trainers.group_event(event("ash", 2)) if taken else pokemons.group_event(event("pikachu"))
        with pytest.raises(EventAlreadyExistsError) as caught:
            await EventStore.push_event_group(
                pokemons.group_event(event("pikachu")),
                trainers.group_event(event("ash")),
                third,
                pokemons.group_event(event("eevee")),
            )
        error = caught.value
        assert (error.event_store_id, error.aggregate_id, error.version) == conflicting
        rows = adapter.connection.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        assert rows == (0 if taken is None else 1)  # nothing of the group


async def test_close_releases_the_connection(tmp_path: Path) -> None:
    adapter = SQLiteEventStorageAdapter(tmp_path / "db.sqlite")
    adapter.close()
    with pytest.raises(Exception, match="closed"):
        await adapter.get_events("a", event_store_id="S")


async def test_two_processes_incrementing_one_aggregate_lose_nothing(tmp_path: Path) -> None:
    """Optimistic concurrency across OS processes: the unique constraint is the referee."""
    path, per_process = tmp_path / "shared.sqlite", 150
    run_racing_counters("sqlite", str(path), ["ash", "misty"], per_process)
    with SQLiteEventStorageAdapter(path) as adapter:
        events = await adapter.get_events("shared", event_store_id="COUNTERS")
        assert [e.version for e in events] == list(range(1, 2 * per_process + 1))
        assert sorted(e.payload["by"] for e in events) == ["ash"] * per_process + ["misty"] * per_process
        assert [entry.position for entry in await adapter.read_log()] == list(range(1, 2 * per_process + 1))


# The events table as the release before schema versions made it.
TABLE_WITHOUT_SCHEMA_VERSION = """
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    event_store_id TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    timestamp      TEXT    NOT NULL,
    payload        TEXT,
    metadata       TEXT,
    UNIQUE (event_store_id, aggregate_id, version)
)
"""


async def test_a_file_made_before_schema_versions_opens_and_its_events_read_as_version_1(
    tmp_path: Path,
) -> None:
    path = tmp_path / "last-year.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute(TABLE_WITHOUT_SCHEMA_VERSION)
        connection.execute(
            "INSERT INTO events (event_store_id, aggregate_id, version, type, timestamp, payload, metadata)"
            " VALUES ('S', 'pikachu', 1, 'APPEARED', '2023', '{\"name\": \"Pikachu\"}', NULL)"
        )
    connection.close()
    old = event(type="APPEARED", timestamp="2023", payload={"name": "Pikachu"})
    with SQLiteEventStorageAdapter(path) as adapter:
        assert await adapter.get_events("pikachu", event_store_id="S") == [old]
        newer = event(version=2, timestamp="2024", schema_version=2)
        await adapter.push_event(newer, event_store_id="S")
        assert [entry.event for entry in await adapter.read_log()] == [old, newer]
    with SQLiteEventStorageAdapter(path) as reopened, SQLiteEventStorageAdapter(path) as again:
        assert await reopened.get_events("pikachu", event_store_id="S") == [old, newer]
        assert await again.last_position() == 2
    with sqlite3.connect(path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(events)")]
    connection.close()
    assert columns.count("schema_version") == 1
