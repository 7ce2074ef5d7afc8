"""Snapshots: the store contract on memory and SQLite, and what an event store does with them.

The promise under test throughout: a snapshot never changes a result. ``get_aggregate`` with
snapshots returns what it returns without, at every version; it only reads less. (PostgreSQL's
store runs the same contract in tests/test_postgres.py.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from castore_edu import (
    AggregateNotFoundError,
    ConnectedEventStore,
    EventDetail,
    EventStore,
    EventType,
    EveryNEvents,
    InMemoryEventStorageAdapter,
    InMemoryMessageBusAdapter,
    InMemorySnapshotStore,
    PostgresSnapshotStore,
    Snapshot,
    SnapshotConfig,
    SQLiteEventStorageAdapter,
    SQLiteSnapshotStore,
    StateCarryingMessageBus,
)
from castore_edu.course.pokedex import (
    Pokemon,
    Trainer,
    level_ups,
    pokemon_appeared,
    pokemon_leveled_up,
    pokemon_reducer,
    pokemons_event_store,
)
from castore_edu.snapshots.codec import AggregateCodec
from castore_edu.testing.doubles import mute_event_store
from castore_edu.testing.latency import SimulatedLatencyAdapter
from castore_edu.testing.snapshot_contract import SnapshotStoreContract, counting_reducer

pytestmark = pytest.mark.anyio


class TestInMemorySnapshotStore(SnapshotStoreContract):
    def make_store(self) -> InMemorySnapshotStore:
        return InMemorySnapshotStore()


class TestSQLiteSnapshotStoreBesideTheEvents(SnapshotStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.path = tmp_path / "events.sqlite"

    def make_store(self) -> SQLiteSnapshotStore:
        return SQLiteSnapshotStore(self.opened(SQLiteEventStorageAdapter(self.path)))


class TestSQLiteSnapshotStoreInAFileOfItsOwn(SnapshotStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.path = tmp_path / "snapshots.sqlite"

    def make_store(self) -> SQLiteSnapshotStore:
        return self.opened(SQLiteSnapshotStore(self.path))


# -- a Pokédex with snapshots ---------------------------------------------------------------------


def seeded(size: int) -> SimulatedLatencyAdapter:
    """Pikachu with ``size`` events (its level is its size), behind a counting wrapper, no latency."""
    history = [
        pokemon_appeared("pikachu", name="Pikachu", level=1),
        *level_ups("pikachu", first_version=2, count=size - 1),
    ]
    return SimulatedLatencyAdapter(
        InMemoryEventStorageAdapter(history, event_store_id="POKEMONS"), latency_ms=0
    )


def with_snapshots(
    adapter: Any, store: Any = None, *, n: int = 10, reducer_version: str = "v1"
) -> EventStore:
    pokemons = pokemons_event_store(adapter)
    pokemons.snapshots = SnapshotConfig(
        InMemorySnapshotStore() if store is None else store,
        reducer_version=reducer_version,
        policy=EveryNEvents(n),
    )
    return pokemons


async def test_a_read_starts_from_the_latest_snapshot_and_reads_only_what_came_after() -> None:
    adapter = seeded(25)
    pokemons = with_snapshots(adapter)
    first = await pokemons.get_aggregate("pikachu")  # no snapshot yet: folds 25, saves one at 25
    assert (first.snapshot_version, len(first.events), first.aggregate.level) == (None, 25, 25)
    for version in range(26, 29):
        await pokemons.push_event(pokemon_leveled_up("pikachu", version=version))
    adapter.reset_counts()

    result = await pokemons.get_aggregate("pikachu")
    assert adapter.counts.reads == 1 and adapter.counts.events_read == 4  # 25 (not folded again), 26–28
    assert result.snapshot_version == 25
    assert [event.version for event in result.events] == [26, 27, 28]
    assert result.last_event is not None and result.last_event.version == 28
    assert result.aggregate == Pokemon("pikachu", 28, "Pikachu", 28)
    saved = await pokemons.snapshots.store.load_latest("POKEMONS", "pikachu", reducer_version="v1")
    assert pokemons.build_aggregate(result.events, saved.aggregate) == result.aggregate


async def test_nothing_after_the_snapshot_still_gives_the_last_event_and_an_existing_aggregate() -> None:
    adapter = seeded(20)
    pokemons = with_snapshots(adapter)
    plain = await pokemons.get_aggregate("pikachu")
    result = await pokemons.get_existing_aggregate("pikachu")
    assert (result.snapshot_version, result.events) == (20, [])
    assert (result.aggregate, result.last_event) == (plain.aggregate, plain.last_event)
    with pytest.raises(AggregateNotFoundError):
        await pokemons.get_existing_aggregate("mew")


async def test_a_read_back_in_time_uses_no_snapshot_taken_after_it() -> None:
    adapter = seeded(30)
    pokemons = with_snapshots(adapter)
    for max_version in (10, 20, 30):
        await pokemons.get_aggregate("pikachu", max_version=max_version)
    past = await pokemons.get_aggregate("pikachu", max_version=15)
    assert past.snapshot_version == 10 and past.aggregate.level == 15
    assert [event.version for event in past.events] == [11, 12, 13, 14, 15]


async def test_snapshots_are_taken_by_reads_as_the_policy_says_and_never_from_prev_aggregate() -> None:
    adapter = seeded(1)
    pokemons = with_snapshots(adapter, n=5)
    store = pokemons.snapshots.store
    aggregate = (await pokemons.get_aggregate("pikachu")).aggregate
    for version in range(2, 13):  # a command that keeps its aggregate: no reads at all
        aggregate = (
            await pokemons.push_event(
                pokemon_leveled_up("pikachu", version=version), prev_aggregate=aggregate
            )
        ).next_aggregate
    assert await store.list_snapshots("POKEMONS", "pikachu") == []
    await pokemons.get_aggregate("pikachu", max_version=4)  # 0 → 4: no multiple of 5 passed
    await pokemons.get_aggregate("pikachu", max_version=7)  # 0 → 7: passes 5, saved at 7
    await pokemons.get_aggregate("pikachu", max_version=9)  # 7 → 9: nothing passed
    await pokemons.get_aggregate("pikachu")  # 7 → 12: passes 10, saved at 12
    assert [s.version for s in await store.list_snapshots("POKEMONS", "pikachu")] == [7, 12]


@pytest.mark.parametrize(
    "from_version, to_version, due",
    [
        (0, 9, False),
        (0, 10, True),
        (0, 1234, True),
        (9, 10, True),
        (10, 19, False),
        (10, 20, True),
        (15, 25, True),
    ],
)
def test_every_n_events_is_due_when_a_read_passes_a_multiple_of_n(
    from_version: int, to_version: int, due: bool
) -> None:
    assert EveryNEvents(10).due(from_version=from_version, to_version=to_version) is due


# -- the reducer version: the guard ------------------------------------------------------------


def leveled_twice(pokemon: Pokemon | None, event: EventDetail) -> Pokemon:
    """A new reducer: a level-up is now worth two levels."""
    folded = pokemon_reducer(pokemon, event)
    if event.type == "POKEMON_LEVELED_UP" and pokemon is not None:
        return dataclasses.replace(folded, level=pokemon.level + 2)
    return folded


async def test_a_new_reducer_version_never_uses_the_old_snapshots() -> None:
    adapter, store = seeded(30), InMemorySnapshotStore()
    await with_snapshots(adapter, store).get_aggregate("pikachu")  # the v1 reducer's snapshot at 30
    v2 = with_snapshots(adapter, store, reducer_version="v2")
    v2.reducer = leveled_twice

    result = await v2.get_aggregate("pikachu")
    assert result.snapshot_version is None and result.aggregate.level == 1 + 2 * 29  # folded from scratch
    again = await v2.get_aggregate("pikachu")
    assert again.snapshot_version == 30 and again.aggregate == result.aggregate  # from v2's own snapshot
    assert [(s.version, s.reducer_version) for s in await store.list_snapshots("POKEMONS", "pikachu")] == [
        (30, "v1"),
        (30, "v2"),
    ]


async def test_without_a_new_reducer_version_the_old_snapshot_is_used_which_is_why_the_guard_exists() -> None:
    adapter, store = seeded(30), InMemorySnapshotStore()
    await with_snapshots(adapter, store).get_aggregate("pikachu")
    forgot_to_bump = with_snapshots(adapter, store)  # still "v1"
    forgot_to_bump.reducer = leveled_twice
    stale = await forgot_to_bump.get_aggregate("pikachu")
    assert stale.snapshot_version == 30 and stale.aggregate.level == 30  # the old reducer's level, not 59


class ForgetfulStore(InMemorySnapshotStore):
    """A store of one's own that ignores the reducer version and max_version when it loads."""

    async def load_latest(self, event_store_id: str, aggregate_id: str, **options: Any) -> Snapshot | None:
        snapshots = await self.list_snapshots(event_store_id, aggregate_id)
        return snapshots[-1] if snapshots else None


async def test_the_config_checks_the_guard_again_so_a_forgetful_store_cannot_break_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter, store = seeded(30), ForgetfulStore()
    await store.save("POKEMONS", Snapshot("pikachu", 30, "v0", Pokemon("pikachu", 30, "Pikachu", 999)))
    pokemons = with_snapshots(adapter, store)
    with caplog.at_level(logging.WARNING, logger="castore_edu"):
        result = await pokemons.get_aggregate("pikachu", max_version=20)
    assert result.snapshot_version is None and result.aggregate.level == 20
    assert "does not fit the read" in caplog.text


# -- failures of the cache never fail a read --------------------------------------------------------


class BrokenStore(InMemorySnapshotStore):
    def __init__(self, *, load: bool = False, save: bool = False) -> None:
        super().__init__()
        self.broken_load, self.broken_save = load, save

    async def load_latest(self, *args: Any, **options: Any) -> Snapshot | None:
        if self.broken_load:
            raise ConnectionError("snapshot database down")
        return await super().load_latest(*args, **options)

    async def save(self, event_store_id: str, snapshot: Snapshot) -> None:
        if self.broken_save:
            raise ConnectionError("snapshot database full")
        await super().save(event_store_id, snapshot)


@pytest.mark.parametrize("broken", ["load", "save"])
async def test_a_snapshot_store_that_fails_costs_a_full_fold_and_a_warning_never_a_read(
    broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    adapter, store = seeded(30), BrokenStore()
    pokemons = with_snapshots(adapter, store, n=2)
    await pokemons.get_aggregate("pikachu")  # a snapshot at 30; the next is due at 32
    setattr(store, f"broken_{broken}", True)
    await pokemons.push_event(pokemon_leveled_up("pikachu", version=31))
    with caplog.at_level(logging.WARNING, logger="castore_edu"):
        result = await pokemons.get_aggregate("pikachu", max_version=None if broken == "load" else 31)
        await pokemons.push_event(pokemon_leveled_up("pikachu", version=32))
        later = await pokemons.get_aggregate("pikachu")
    assert result.aggregate.level == 31 and later.aggregate.level == 32
    expected = (
        "no snapshot of 'pikachu' loaded"
        if broken == "load"
        else "no snapshot of 'pikachu' saved at version 32"
    )
    assert expected in caplog.text and "snapshot database" in caplog.text


async def test_a_snapshot_whose_event_is_not_stored_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    store = InMemorySnapshotStore()
    await store.save("POKEMONS", Snapshot("pikachu", 40, "v1", Pokemon("pikachu", 40, "Raichu", 99)))
    pokemons = with_snapshots(seeded(30), store)  # another storage: only 30 events here
    with caplog.at_level(logging.WARNING, logger="castore_edu"):
        result = await pokemons.get_aggregate("pikachu")
    assert result.snapshot_version is None and result.aggregate == Pokemon("pikachu", 30, "Pikachu", 30)
    assert "no event 'pikachu' at version 40" in caplog.text


# -- rewriting history discards what was folded from it -------------------------------------------


async def test_a_forced_push_discards_the_snapshots_from_its_version_on() -> None:
    adapter = seeded(30)
    pokemons = with_snapshots(adapter)
    for max_version in (10, 20, 30):
        await pokemons.get_aggregate("pikachu", max_version=max_version)
    renamed = pokemon_appeared("pikachu", name="Pikachu", level=1)
    await pokemons.push_event(dataclasses.replace(renamed, version=15, type="POKEMON_RENAMED"), force=True)
    assert [s.version for s in await pokemons.snapshots.store.list_snapshots("POKEMONS", "pikachu")] == [10]
    result = await pokemons.get_aggregate("pikachu")
    assert result.snapshot_version == 10 and result.aggregate.level == 29  # one level-up less


async def test_a_forced_group_push_through_a_connected_store_discards_its_snapshots() -> None:
    adapter = SQLiteEventStorageAdapter()
    pokemons = with_snapshots(
        adapter, SQLiteSnapshotStore(adapter, decode_aggregate=lambda data: Pokemon(**data))
    )
    await pokemons.push_event(pokemon_appeared("pikachu", name="Pikachu", level=1))
    for version in range(2, 21):
        await pokemons.push_event(pokemon_leveled_up("pikachu", version=version))
    await pokemons.get_aggregate("pikachu")  # a snapshot at 20, level 20
    bus = StateCarryingMessageBus(message_bus_id="B", source_event_stores=[pokemons])
    InMemoryMessageBusAdapter.attach_to(bus)
    connected = ConnectedEventStore(pokemons, bus)
    rewritten = dataclasses.replace(pokemon_leveled_up("pikachu", version=20), type="POKEMON_RESTED")
    await EventStore.push_event_group(connected.group_event(rewritten), force=True)
    # The publish read the aggregate back, from the new history: the snapshot at 20 is the new one.
    assert await pokemons.snapshots.store.list_snapshots("POKEMONS", "pikachu") == [
        Snapshot("pikachu", 20, "v1", Pokemon("pikachu", 20, "Pikachu", 19))
    ]
    adapter.close()


# -- connected stores ------------------------------------------------------------------------------


async def test_a_connected_store_publishes_from_the_snapshot_when_it_must_read_back() -> None:
    adapter = seeded(50)
    pokemons = with_snapshots(adapter)
    bus = StateCarryingMessageBus(message_bus_id="LEVELS", source_event_stores=[pokemons])
    received: list[Any] = []

    async def keep(message: Any, context: Any) -> None:
        received.append(message)

    InMemoryMessageBusAdapter.attach_to(bus).on({}, keep)
    connected = ConnectedEventStore(pokemons, bus)
    assert connected.snapshots is pokemons.snapshots
    await connected.get_aggregate("pikachu")  # a snapshot at 50
    adapter.reset_counts()
    await connected.push_event(pokemon_leveled_up("pikachu", version=51))  # no prev_aggregate: one read back
    await bus.message_channel_adapter.wait_idle()
    assert adapter.counts.reads == 1 and adapter.counts.events_read == 2  # from the snapshot at 50
    assert received[-1].aggregate == Pokemon("pikachu", 51, "Pikachu", 51)
    connected.snapshots = None  # writes through to the wrapped store
    assert pokemons.snapshots is None


# -- aggregates in a database: the codec ----------------------------------------------------------


async def test_a_dataclass_aggregate_needs_its_decoder_in_a_database_else_no_snapshot_is_saved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = SQLiteEventStorageAdapter()
    without_decoder = SQLiteSnapshotStore(adapter)
    pokemons = with_snapshots(seeded(20), without_decoder)
    with caplog.at_level(logging.WARNING, logger="castore_edu"):
        result = await pokemons.get_aggregate("pikachu")
    assert result.aggregate == Pokemon("pikachu", 20, "Pikachu", 20)  # the read stands
    assert await without_decoder.list_snapshots("POKEMONS", "pikachu") == []
    assert "does not read back equal" in caplog.text and "decode_aggregate" in caplog.text

    pokemons.snapshots.store = SQLiteSnapshotStore(adapter, decode_aggregate=lambda data: Pokemon(**data))
    await pokemons.get_aggregate("pikachu")
    again = await pokemons.get_aggregate("pikachu")
    assert again.snapshot_version == 20 and again.aggregate == result.aggregate
    adapter.close()


@pytest.mark.parametrize(
    "aggregate, codec, match",
    [
        (
            Trainer("ash", 2, "Ash", ("pikachu",)),
            AggregateCodec(decode_aggregate=lambda data: Trainer(**data)),
            "does not read back equal",
        ),
        ({1: "one"}, AggregateCodec(), "a key that is not a str"),
        ({"moves": {"thunder"}}, AggregateCodec(), "not JSON data"),
        ({"hp": float("nan")}, AggregateCodec(), "not JSON data"),
        (
            Pokemon("pikachu", 1, "Pikachu", 1),
            AggregateCodec(encode_aggregate=lambda aggregate: None),
            "returned None",
        ),
    ],
)
def test_the_codec_refuses_an_aggregate_that_would_not_read_back_the_same(
    aggregate: Any, codec: AggregateCodec, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        codec.dumps(aggregate)


def test_a_codec_that_says_how_reads_back_the_same() -> None:
    codec = AggregateCodec(
        decode_aggregate=lambda data: Trainer(**{**data, "pokemon_ids": tuple(data["pokemon_ids"])})
    )
    ash = Trainer("ash", 2, "Ash", ("pikachu", "psyduck"))
    assert codec.loads(codec.dumps(ash)) == ash


async def test_sqlite_snapshots_in_their_own_file_survive_a_restart_and_close_only_their_connection(
    tmp_path: Path,
) -> None:
    path = tmp_path / "snapshots.sqlite"
    with SQLiteSnapshotStore(path) as store:
        await store.save("POKEMONS", Snapshot("pikachu", 7, "v1", {"level": 7}))
        assert repr(store) == "SQLiteSnapshotStore('snapshots.sqlite')"
    with SQLiteSnapshotStore(path) as reopened:
        assert await reopened.list_snapshots("POKEMONS", "pikachu") == [
            Snapshot("pikachu", 7, "v1", {"level": 7})
        ]
    adapter = SQLiteEventStorageAdapter(tmp_path / "events.sqlite")
    SQLiteSnapshotStore(adapter).close()  # the adapter's connection is the adapter's to close
    assert await adapter.get_events("pikachu", event_store_id="POKEMONS") == []
    adapter.close()


# -- bad arguments ------------------------------------------------------------------------------------


def test_bad_arguments_are_refused_with_a_hint() -> None:
    with pytest.raises(
        TypeError, match=r"the class InMemorySnapshotStore. Hint: create one, InMemorySnapshotStore\(\)"
    ):
        SnapshotConfig(InMemorySnapshotStore, reducer_version="v1", policy=EveryNEvents(5))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="store must be a snapshot store"):
        SnapshotConfig({}, reducer_version="v1", policy=EveryNEvents(5))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Hint: policy=EveryNEvents\(100\)"):
        SnapshotConfig(InMemorySnapshotStore(), reducer_version="v1", policy=100)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reducer_version must be a str or an int"):
        SnapshotConfig(InMemorySnapshotStore(), reducer_version=1.5, policy=EveryNEvents(5))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        EveryNEvents(0)
    with pytest.raises(TypeError, match="that is a snapshot store; pass SnapshotConfig"):
        EventStore(
            event_store_id="P", event_types=[], reducer=pokemon_reducer, snapshots=InMemorySnapshotStore()
        )  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="snapshots must be a SnapshotConfig"):
        EventStore(event_store_id="P", event_types=[], reducer=pokemon_reducer, snapshots=SnapshotConfig)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="database must be an SQLiteEventStorageAdapter or a file path"):
        SQLiteSnapshotStore(3)  # type: ignore[arg-type]
    with SQLiteEventStorageAdapter() as adapter, pytest.raises(TypeError, match="use SQLiteSnapshotStore"):
        PostgresSnapshotStore(adapter)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="decode_aggregate must be callable"):
        SQLiteSnapshotStore(decode_aggregate="Pokemon")  # type: ignore[arg-type]


def test_the_config_says_what_it_holds() -> None:
    config = SnapshotConfig(InMemorySnapshotStore(), reducer_version=3, policy=EveryNEvents(50))
    assert config.reducer_version == "3"
    assert repr(config) == (
        "SnapshotConfig(InMemorySnapshotStore(aggregates=0, snapshots=0), reducer_version='3', policy=EveryNEvents(50))"
    )


# -- the property: a snapshot never changes a result -----------------------------------------------


def counted(aggregate_id: str, version: int, n: int) -> EventDetail:
    return EventDetail(aggregate_id=aggregate_id, version=version, type="COUNTED", payload={"n": n})


@given(
    payloads=st.lists(st.integers(0, 9), min_size=1, max_size=30),
    n=st.integers(1, 8),
    reads=st.lists(st.one_of(st.none(), st.integers(-1, 32)), min_size=1, max_size=12),
    on_sqlite=st.booleans(),
)
def test_with_snapshots_get_aggregate_returns_what_it_returns_without_at_every_version(
    payloads: list[int], n: int, reads: list[int | None], on_sqlite: bool
) -> None:
    async def run() -> None:
        events = [counted("pikachu", version, payload) for version, payload in enumerate(payloads, start=1)]
        adapter: Any = (
            SQLiteEventStorageAdapter() if on_sqlite else InMemoryEventStorageAdapter(event_store_id="S")
        )
        store: Any = SQLiteSnapshotStore(adapter) if on_sqlite else InMemorySnapshotStore()
        options: dict[str, Any] = dict(
            event_store_id="S", event_types=[EventType("COUNTED")], reducer=counting_reducer
        )
        plain = EventStore(**options, event_storage_adapter=adapter)
        snapshotting = EventStore(
            **options,
            event_storage_adapter=adapter,
            snapshots=SnapshotConfig(store, reducer_version="v1", policy=EveryNEvents(n)),
        )
        half = len(events) // 2
        for event in events[:half]:
            await plain.push_event(event)
        for max_version in [*reads, None]:  # some reads, then more events, then every version
            with_snapshots = await snapshotting.get_aggregate("pikachu", max_version=max_version)
            without = await plain.get_aggregate("pikachu", max_version=max_version)
            assert (with_snapshots.aggregate, with_snapshots.last_event) == (
                without.aggregate,
                without.last_event,
            )
        for event in events[half:]:
            await snapshotting.push_event(event)
        for max_version in [*range(0, len(events) + 2), None]:
            with_snapshots = await snapshotting.get_aggregate("pikachu", max_version=max_version)
            without = await plain.get_aggregate("pikachu", max_version=max_version)
            assert (with_snapshots.aggregate, with_snapshots.last_event) == (
                without.aggregate,
                without.last_event,
            )
            start = with_snapshots.snapshot_version
            assert with_snapshots.events == without.events[start or 0 :]
        if on_sqlite:
            adapter.close()

    asyncio.run(run())


async def test_muting_a_store_drops_its_snapshots_with_its_storage() -> None:
    pokemons = with_snapshots(seeded(30))
    await pokemons.get_aggregate("pikachu")  # a snapshot at 30, of the old storage
    mute_event_store(pokemons, [pokemon_appeared("pikachu", name="Pika", level=5)])
    assert pokemons.snapshots is None
    assert (await pokemons.get_aggregate("pikachu")).aggregate == Pokemon("pikachu", 1, "Pika", 5)
