"""The snapshot store contract: one suite, run against every snapshot store.

``tests/test_snapshots.py`` subclasses :class:`SnapshotStoreContract` for the in-memory and SQLite
stores, ``tests/test_postgres.py`` for PostgreSQL; each says only how to make an empty store.
Aggregates here are dicts of JSON data, which every store keeps as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from castore_edu.core.event_store import EventStore
from castore_edu.core.events import MAX_VERSION, EventDetail, EventType
from castore_edu.snapshots.config import SnapshotConfig
from castore_edu.snapshots.policy import EveryNEvents
from castore_edu.snapshots.protocol import Snapshot, SnapshotStore
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from castore_edu.storage.protocol import close_adapter


def snapshot(
    version: int = 1, reducer_version: str = "v1", aggregate_id: str = "pikachu", **aggregate: Any
) -> Snapshot:
    """A snapshot whose aggregate says which version it is (and anything else given)."""
    return Snapshot(aggregate_id, version, reducer_version, {"version": version, **aggregate})


def counting_reducer(aggregate: Any, event: EventDetail) -> dict[str, Any]:
    """A reducer whose aggregate depends on every event it folded, in order: a fold that skips
    an event, folds one twice or starts from a wrong snapshot gives another aggregate."""
    total = 0 if aggregate is None else aggregate["total"]
    return {
        "version": event.version,
        "total": total * 3 + event.payload["n"],
        "count": (aggregate or {"count": 0})["count"] + 1,
    }


class SnapshotStoreContract:
    """Subclasses implement ``make_store``: a new, empty snapshot store (one holding a connection is
    handed to :meth:`opened`, and closed when the test ends)."""

    @pytest.fixture(autouse=True)
    async def _close_opened_stores(self) -> AsyncIterator[None]:
        self._opened: list[Any] = []
        yield
        for store in self._opened:
            await close_adapter(store)

    def opened(self, store: Any) -> Any:
        self._opened.append(store)
        return store

    def make_store(self) -> SnapshotStore:
        raise NotImplementedError

    # -- reading what was saved --------------------------------------------------------------

    async def test_it_is_a_snapshot_store_and_starts_empty(self) -> None:
        store = self.make_store()
        assert isinstance(store, SnapshotStore)
        assert await store.load_latest("S", "pikachu", reducer_version="v1") is None
        assert await store.list_snapshots("S", "pikachu") == []

    async def test_a_saved_snapshot_loads_back_equal(self) -> None:
        store = self.make_store()
        saved = snapshot(
            3, name="Pikachu", moves=["thunder", "quick attack"], stats={"hp": 35.5, "wild": True}
        )
        await store.save("S", saved)
        assert await store.load_latest("S", "pikachu", reducer_version="v1") == saved
        assert await store.list_snapshots("S", "pikachu") == [saved]

    async def test_the_latest_version_wins_whatever_the_order_of_the_saves(self) -> None:
        store = self.make_store()
        for version in (20, 5, 10):
            await store.save("S", snapshot(version))
        latest = await store.load_latest("S", "pikachu", reducer_version="v1")
        assert latest is not None and latest.version == 20

    async def test_max_version_gives_the_latest_snapshot_at_or_before_it(self) -> None:
        store = self.make_store()
        for version in (5, 10, 20):
            await store.save("S", snapshot(version))

        async def latest(max_version: int | None) -> int | None:
            found = await store.load_latest("S", "pikachu", reducer_version="v1", max_version=max_version)
            return None if found is None else found.version

        assert [await latest(bound) for bound in (None, 25, 20, 19, 10, 9, 5, 4, 0, -3)] == [
            20, 20, 20, 10, 10, 5, 5, None, None, None,
        ]  # fmt: skip
        assert await latest(MAX_VERSION) == 20

    async def test_a_snapshot_of_another_reducer_version_is_never_returned_even_a_newer_one(self) -> None:
        store = self.make_store()
        await store.save("S", snapshot(5, "v1"))
        await store.save("S", snapshot(50, "v2"))
        v1 = await store.load_latest("S", "pikachu", reducer_version="v1")
        v2 = await store.load_latest("S", "pikachu", reducer_version="v2")
        assert (v1, v2) == (snapshot(5, "v1"), snapshot(50, "v2"))
        assert await store.load_latest("S", "pikachu", reducer_version="v3") is None
        assert await store.load_latest("S", "pikachu", reducer_version="v2", max_version=49) is None

    async def test_a_reducer_version_may_be_an_int_kept_as_text(self) -> None:
        store = self.make_store()
        await store.save("S", snapshot(4, "2"))
        found = await store.load_latest("S", "pikachu", reducer_version=2)  # type: ignore[arg-type]
        assert found == snapshot(4, "2")
        assert await store.load_latest("S", "pikachu", reducer_version="02") is None

    async def test_event_stores_and_aggregates_are_kept_apart(self) -> None:
        store = self.make_store()
        await store.save("POKEMONS", snapshot(3, aggregate_id="pikachu", store="POKEMONS"))
        await store.save("GYM_POKEMONS", snapshot(7, aggregate_id="pikachu", store="GYM_POKEMONS"))
        await store.save("POKEMONS", snapshot(9, aggregate_id="eevee"))
        pokemons = await store.load_latest("POKEMONS", "pikachu", reducer_version="v1")
        gyms = await store.load_latest("GYM_POKEMONS", "pikachu", reducer_version="v1")
        assert pokemons is not None and pokemons.aggregate == {"version": 3, "store": "POKEMONS"}
        assert gyms is not None and gyms.aggregate == {"version": 7, "store": "GYM_POKEMONS"}
        assert await store.load_latest("TRAINERS", "pikachu", reducer_version="v1") is None
        assert [s.version for s in await store.list_snapshots("POKEMONS", "eevee")] == [9]

    async def test_saving_the_same_key_again_replaces_the_snapshot(self) -> None:
        store = self.make_store()
        await store.save("S", snapshot(3, level=1))
        await store.save("S", snapshot(3, level=2))
        assert await store.list_snapshots("S", "pikachu") == [snapshot(3, level=2)]

    async def test_what_a_caller_changes_in_place_never_reaches_a_stored_snapshot(self) -> None:
        store = self.make_store()
        saved = snapshot(3, moves=["thunder"])
        await store.save("S", saved)
        saved.aggregate["moves"].append("surf")  # the caller's aggregate, changed after the save
        loaded = await store.load_latest("S", "pikachu", reducer_version="v1")
        assert loaded is not None and loaded.aggregate == {"version": 3, "moves": ["thunder"]}
        loaded.aggregate["moves"].clear()  # what a reducer that works in place would do
        again = await store.load_latest("S", "pikachu", reducer_version="v1")
        assert again is not None and again.aggregate == {"version": 3, "moves": ["thunder"]}

    async def test_list_snapshots_orders_them_by_version_then_reducer_version(self) -> None:
        store = self.make_store()
        for version, reducer_version in ((10, "v2"), (5, "v1"), (10, "V1"), (10, "v1")):
            await store.save("S", snapshot(version, reducer_version))
        listed = [(s.version, s.reducer_version) for s in await store.list_snapshots("S", "pikachu")]
        assert listed == [(5, "v1"), (10, "V1"), (10, "v1"), (10, "v2")]

    # -- forgetting ------------------------------------------------------------------------------

    async def test_discard_forgets_every_reducer_version_from_a_version_on(self) -> None:
        store = self.make_store()
        for version, reducer_version in ((5, "v1"), (10, "v1"), (10, "v2"), (15, "v2")):
            await store.save("S", snapshot(version, reducer_version))
        await store.save("S", snapshot(12, aggregate_id="eevee"))
        assert await store.discard("S", "pikachu", from_version=10) == 3
        assert await store.list_snapshots("S", "pikachu") == [snapshot(5, "v1")]
        assert await store.list_snapshots("S", "eevee") == [snapshot(12, aggregate_id="eevee")]
        assert await store.discard("S", "pikachu") == 1  # from version 1: all of them
        assert await store.discard("S", "pikachu") == 0
        assert await store.load_latest("S", "pikachu", reducer_version="v1") is None

    # -- refusing what no store could key --------------------------------------------------------

    @pytest.mark.parametrize(
        "bad, error, match",
        [
            (Snapshot("pikachu", 0, "v1", {}), ValueError, "snapshot.version must lie within"),
            (Snapshot("pikachu", True, "v1", {}), TypeError, "snapshot.version must be an int"),
            (Snapshot("", 1, "v1", {}), ValueError, "snapshot.aggregate_id"),
            (Snapshot("pikachu", 1, "", {}), TypeError, "snapshot.reducer_version"),
            (Snapshot("pikachu", 1, 2, {}), TypeError, "snapshot.reducer_version"),  # type: ignore[arg-type]
            (Snapshot("pikachu", 1, "v1", None), ValueError, "no aggregate"),
            ({"aggregate_id": "pikachu", "version": 1}, TypeError, "snapshot must be a Snapshot"),
        ],
    )
    async def test_a_snapshot_no_store_could_key_is_refused(self, bad: Any, error: type, match: str) -> None:
        store = self.make_store()
        with pytest.raises(error, match=match):
            await store.save("S", bad)
        assert await store.list_snapshots("S", "pikachu") == []

    @pytest.mark.parametrize(
        "arguments, error, match",
        [
            (dict(event_store_id=None), TypeError, "event_store_id must be a str"),
            (dict(aggregate_id=""), ValueError, "aggregate_id"),
            (dict(reducer_version=True), TypeError, "reducer_version must be a str or an int"),
            (dict(reducer_version=""), ValueError, "reducer_version"),
            (dict(max_version="3"), TypeError, "max_version must be an int or None"),
            (dict(max_version=MAX_VERSION + 1), ValueError, "max_version must lie within"),
        ],
    )
    async def test_a_read_no_store_could_answer_is_refused(
        self, arguments: dict[str, Any], error: type, match: str
    ) -> None:
        call = {"event_store_id": "S", "aggregate_id": "pikachu", "reducer_version": "v1", **arguments}
        with pytest.raises(error, match=match):
            await self.make_store().load_latest(call.pop("event_store_id"), call.pop("aggregate_id"), **call)

    async def test_a_discard_from_no_version_is_refused(self) -> None:
        with pytest.raises(ValueError, match="from_version must lie within"):
            await self.make_store().discard("S", "pikachu", from_version=0)

    # -- through an event store --------------------------------------------------------------

    async def test_an_event_store_reads_the_same_aggregates_with_this_store_as_without(self) -> None:
        events = [
            EventDetail(aggregate_id="pikachu", version=version, type="COUNTED", payload={"n": version % 7})
            for version in range(1, 41)
        ]
        adapter = InMemoryEventStorageAdapter(events, event_store_id="S")

        def counting_store(**options: Any) -> EventStore:
            return EventStore(
                event_store_id="S",
                event_types=[EventType("COUNTED")],
                reducer=counting_reducer,
                event_storage_adapter=adapter,
                **options,
            )

        plain = counting_store()
        store = self.make_store()
        snapshotting = counting_store(
            snapshots=SnapshotConfig(store, reducer_version="v1", policy=EveryNEvents(8))
        )
        for max_version in [*range(0, 42), None]:  # the reads take snapshots as they go
            with_snapshots = await snapshotting.get_aggregate("pikachu", max_version=max_version)
            without = await plain.get_aggregate("pikachu", max_version=max_version)
            assert (with_snapshots.aggregate, with_snapshots.last_event) == (
                without.aggregate,
                without.last_event,
            )
        assert [s.version for s in await store.list_snapshots("S", "pikachu")] == [8, 16, 24, 32, 40]
        latest = await snapshotting.get_aggregate("pikachu")
        assert (latest.snapshot_version, latest.events) == (40, [])
