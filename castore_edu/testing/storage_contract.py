"""The storage adapter contract: one suite, run against every adapter.

``test_in_memory.py`` and ``test_sqlite.py`` subclass :class:`StorageAdapterContract` and say only how
to make an adapter. Whatever one adapter promises, the other must keep.

Every shipped adapter keeps an ordered log, so the contract includes it: ``make_adapter`` returns
an :class:`~castore_edu.storage.protocol.OrderedLogStorage`, and both log calls are coroutines.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import pytest

from castore_edu.core import (
    AggregateIdEntry,
    EventAlreadyExistsError,
    EventDetail,
    EventStore,
    EventStoreContext,
    EventType,
    InvalidEventError,
    stepping_clock,
)
from castore_edu.core.clock import Clock, utc_now
from castore_edu.core.events import MAX_JSON_DEPTH, MAX_VERSION
from castore_edu.messaging.channels import NotificationMessageBus
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter
from castore_edu.reliability.relay import InMemoryCheckpointStore, Relay
from castore_edu.storage.protocol import (
    LOG_CALLS,
    EventStorageAdapter,
    OrderedLogStorage,
    close_adapter,
    require_ordered_log,
)


def event(aggregate_id: str = "pikachu", version: int = 1, **fields: Any) -> EventDetail:
    return EventDetail(
        aggregate_id=aggregate_id, version=version, type=fields.pop("type", "LEVELLED_UP"), **fields
    )


def by_to_levels(old: EventDetail) -> EventDetail:
    """An upcaster: version 1 of LEVELLED_UP said ``{"by": n}``, version 2 says ``{"levels": n}``."""
    return replace(old, payload={"levels": old.payload["by"]}, schema_version=2)


def nested(depth: int) -> Any:
    """A payload of ``depth`` lists, one inside the other, around a number (built with a loop:
    building it by recursion would fail where the payload must be refused)."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def containing_itself() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


def store(store_id: str, adapter: OrderedLogStorage) -> EventStore:
    return EventStore(
        event_store_id=store_id,
        event_types=[EventType("APPEARED"), EventType("LEVELLED_UP")],
        reducer=lambda aggregate, e: {"id": e.aggregate_id, "version": e.version},
        event_storage_adapter=adapter,
    )


def log_of(event_store: EventStore) -> OrderedLogStorage:
    """The adapter of ``event_store``, with its ordered log (every adapter of this suite has one)."""
    return require_ordered_log(event_store.event_storage_adapter)


class AdapterWithoutLog:
    """A custom adapter that keeps no ordered log, as the protocol allows: it forwards the five
    event store calls to ``inner``, and nothing else."""

    def __init__(self, inner: EventStorageAdapter) -> None:
        self.get_events = inner.get_events
        self.push_event = inner.push_event
        self.push_event_group = inner.push_event_group
        self.group_event = inner.group_event
        self.list_aggregate_ids = inner.list_aggregate_ids

    def __repr__(self) -> str:
        return "AdapterWithoutLog()"


YEARS = [f"{year}-01-01T00:00:00.000Z" for year in (2021, 2022, 2023, 2024)]


def reforged_body(body: bytes) -> str:
    """A page token around ``body`` with a checksum that matches, as a forger could make one:
    the checksum guards against accidents, not against someone who knows the format."""
    return base64.urlsafe_b64encode(body).decode() + "." + hashlib.sha256(body).hexdigest()[:16]


def reforged(token: str, changes: dict[str, Any]) -> str:
    """``token`` with some fields set to ``changes`` (``...`` deletes one), checksum recomputed."""
    fields = json.loads(base64.urlsafe_b64decode(token.split(".")[0]))
    for name, value in changes.items():
        if value is ...:
            del fields[name]
        else:
            fields[name] = value
    return reforged_body(json.dumps(fields).encode())


# One row per forgery: the fields a forger sets, and words the refusal must contain.
FORGED_TOKEN_CHANGES = [
    pytest.param({"limit": 0}, "limit must be None or an int >= 1", id="limit 0"),
    pytest.param({"limit": -2}, "limit must be None or an int >= 1", id="negative limit"),
    pytest.param({"limit": "2"}, "limit must be None or an int >= 1", id="limit as str"),
    pytest.param({"limit": True}, "limit must be None or an int >= 1", id="limit as bool"),
    pytest.param({"limit": 1.5}, "limit must be None or an int >= 1", id="limit as float"),
    pytest.param(
        {"initial_event_after": 2021}, "initial_event_after must be None or a str", id="bound as int"
    ),
    pytest.param(
        {"initial_event_before": []}, "initial_event_before must be None or a str", id="bound as list"
    ),
    pytest.param({"reverse": "yes"}, "reverse must be True or False", id="reverse as str"),
    pytest.param({"reverse": None}, "reverse must be True or False", id="reverse as None"),
    pytest.param({"after": None}, "its position must be", id="no position"),
    pytest.param({"after": ["2021", 1]}, "its position must be", id="short position"),
    pytest.param({"after": ["2021", "1", "agg1"]}, "its position must be", id="created as str"),
    pytest.param({"after": ["2021", -1, "agg1"]}, "its position must be", id="negative created"),
    pytest.param({"after": ["2021", 1, 7]}, "its position must be", id="aggregate id as int"),
    pytest.param({"reverse": ...}, "does not hold the fields", id="missing field"),
    pytest.param({"offset": 3}, "does not hold the fields", id="extra field"),
    pytest.param({"adapter": 1}, "its adapter and event store must be str", id="adapter as int"),
    pytest.param({"adapter": "OtherAdapter"}, "issued by a 'OtherAdapter'", id="another adapter"),
    pytest.param({"event_store_id": "T"}, "issued by event store 'T', not 'S'", id="another store"),
    pytest.param({"event_store_id": "T" * 10_000}, "issued by event store 'TTT", id="a long store id"),
]


class _HasClose(Protocol):
    def close(self) -> object: ...


_Closable = TypeVar("_Closable", bound=_HasClose)


# The log of the group test of two stores: a database keeps one log for all its stores, so the
# two stores' events share the positions; in memory, each store's adapter keeps its own log.
ONE_LOG_FOR_BOTH_STORES = [
    ("POKEMONS", 1, "pikachu", 1),
    ("POKEMONS", 3, "pikachu", 2),
    ("POKEMONS", 4, "mew", 1),
    ("TRAINERS", 2, "ash", 1),
]
ONE_LOG_PER_STORE = [
    ("POKEMONS", 1, "pikachu", 1),
    ("POKEMONS", 2, "pikachu", 2),
    ("POKEMONS", 3, "mew", 1),
    ("TRAINERS", 1, "ash", 1),
]


class StorageAdapterContract:
    """Subclasses implement ``make_adapter`` and ``make_sibling`` (an adapter that may share an
    event group with the given one: another in-memory adapter, or the same database), and say
    whether one adapter keeps ``one_log_for_all_stores`` (a database does).

    An adapter that holds a connection is handed to :meth:`opened` when it is made; the suite
    closes it when the test ends (``close()`` may be a coroutine, as on a server database).
    """

    @pytest.fixture(autouse=True)
    async def _close_opened_adapters(self) -> AsyncIterator[None]:
        self._opened: list[Any] = []
        yield
        for adapter in self._opened:
            await close_adapter(adapter)

    one_log_for_all_stores = True

    def opened(self, adapter: _Closable) -> _Closable:
        """``adapter``, to be closed when the test ends."""
        self._opened.append(adapter)
        return adapter

    def make_adapter(self, clock: Clock = utc_now) -> OrderedLogStorage:
        raise NotImplementedError

    def make_sibling(self, adapter: OrderedLogStorage) -> OrderedLogStorage:
        raise NotImplementedError

    def make_stranger(self, adapter: OrderedLogStorage) -> OrderedLogStorage:
        """An adapter that may *not* join ``adapter``'s groups."""
        raise NotImplementedError

    # -- reading and ordering --------------------------------------------------------------

    async def test_unknown_aggregate_has_no_events(self) -> None:
        assert await self.make_adapter().get_events("nobody", event_store_id="S") == []

    async def test_events_come_back_in_version_order_whatever_the_push_order(self) -> None:
        adapter = self.make_adapter(stepping_clock())

        for version in (2, 3, 1):
            await adapter.push_event(event(version=version), event_store_id="S")
        assert [e.version for e in await adapter.get_events("pikachu", event_store_id="S")] == [1, 2, 3]

    async def test_min_max_limit_reverse(self) -> None:
        adapter = self.make_adapter()
        e1 = event(version=1, timestamp=YEARS[0])
        e2 = event(version=2, timestamp=YEARS[1])

        async def read(**options: Any) -> list[EventDetail]:
            return await adapter.get_events("pikachu", event_store_id="S", **options)

        await adapter.push_event(e1, event_store_id="S")
        await adapter.push_event(e2, event_store_id="S")
        assert await read() == [e1, e2]
        assert await read(max_version=1) == [e1]
        assert await read(min_version=2) == [e2]
        assert await read(limit=1) == [e1]
        assert await read(reverse=True) == [e2, e1]
        assert await read(limit=1, reverse=True) == [e2]
        assert await read(min_version=1, max_version=2, reverse=True, limit=5) == [e2, e1]
        assert await read(limit=0) == []
        assert await read(min_version=3) == []

    async def test_negative_limit_is_refused(self) -> None:
        adapter = self.make_adapter()
        with pytest.raises(ValueError, match="limit must be >= 0"):
            await adapter.get_events("pikachu", event_store_id="S", limit=-1)
        with pytest.raises(ValueError, match="limit must be >= 0"):
            await adapter.list_aggregate_ids(event_store_id="S", limit=-1)

    async def test_payload_and_metadata_round_trip_as_json(self) -> None:
        adapter = self.make_adapter()
        payload = {
            "name": "Pikachu",
            "moves": ["thunder", "tail whip"],
            "level": 42,
            "shiny": False,
            "x": None,
        }
        metadata = {"by": "Ash", "score": 1.5}
        pushed = await adapter.push_event(
            event(payload=payload, metadata=metadata, timestamp=YEARS[0]), event_store_id="S"
        )
        [stored] = await adapter.get_events("pikachu", event_store_id="S")
        assert stored == pushed == event(payload=payload, metadata=metadata, timestamp=YEARS[0])

    async def test_mutating_a_payload_never_changes_what_is_stored(self) -> None:
        adapter = self.make_adapter()
        payload = {"moves": ["thunder"]}
        await adapter.push_event(event(payload=payload), event_store_id="S")
        payload["moves"].append("surf")
        [first_read] = await adapter.get_events("pikachu", event_store_id="S")
        first_read.payload["moves"].append("fly")
        [second_read] = await adapter.get_events("pikachu", event_store_id="S")
        assert second_read.payload == {"moves": ["thunder"]}

    # -- conflicts and force ---------------------------------------------------------------

    async def test_a_taken_version_raises_event_already_exists(self) -> None:
        adapter = self.make_adapter()
        await adapter.push_event(event(timestamp=YEARS[0]), event_store_id="eventStoreId")
        with pytest.raises(EventAlreadyExistsError) as caught:
            await adapter.push_event(event(type="OTHER"), event_store_id="eventStoreId")
        error = caught.value
        assert error.code == "EventAlreadyExistsError"
        assert (error.event_store_id, error.aggregate_id, error.version) == ("eventStoreId", "pikachu", 1)
        assert str(error) == "Event already exists for eventStoreId aggregate pikachu and version 1"
        [kept] = await adapter.get_events("pikachu", event_store_id="eventStoreId")
        assert kept.type == "LEVELLED_UP"
        assert await adapter.last_position() == 1

    async def test_force_overwrites_in_place_and_keeps_the_log_position(self) -> None:
        adapter = self.make_adapter()

        await adapter.push_event(event(version=1, timestamp=YEARS[0]), event_store_id="S")
        await adapter.push_event(event(version=2, timestamp=YEARS[1]), event_store_id="S")
        replacement = event(version=1, type="APPEARED", timestamp=YEARS[2], payload={"fixed": True})
        assert await adapter.push_event(replacement, event_store_id="S", force=True) == replacement
        assert await adapter.get_events("pikachu", event_store_id="S") == [
            replacement,
            event(version=2, timestamp=YEARS[1]),
        ]
        assert [(entry.position, entry.event) for entry in await adapter.read_log()] == [
            (1, replacement),
            (2, event(version=2, timestamp=YEARS[1])),
        ]

    # -- stamping --------------------------------------------------------------------------

    async def test_the_adapter_stamps_events_with_its_clock(self) -> None:
        adapter = self.make_adapter(stepping_clock("2022-01-01T00:00:00.000Z", step_ms=1))
        first = await adapter.push_event(event(version=1), event_store_id="S")
        second = await adapter.push_event(event(version=2), event_store_id="S")
        assert (first.timestamp, second.timestamp) == ("2022-01-01T00:00:00.000Z", "2022-01-01T00:00:00.001Z")
        assert await adapter.get_events("pikachu", event_store_id="S") == [first, second]

    async def test_a_given_timestamp_is_kept(self) -> None:
        adapter = self.make_adapter(stepping_clock())
        pushed = await adapter.push_event(event(timestamp="2020"), event_store_id="S")
        assert pushed.timestamp == "2020"

    async def test_the_default_stamp_is_utc_with_milliseconds_and_z(self) -> None:
        pushed = await self.make_adapter().push_event(event(), event_store_id="S")
        assert pushed.timestamp is not None
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", pushed.timestamp)

    # -- listing aggregates ----------------------------------------------------------------

    async def four_aggregates(self) -> OrderedLogStorage:
        adapter = self.make_adapter()
        for index, timestamp in enumerate(YEARS, start=1):
            await adapter.push_event(event(f"agg{index}", timestamp=timestamp), event_store_id="S")
            await adapter.push_event(event(f"agg{index}", version=2, timestamp="2030"), event_store_id="S")
        return adapter

    async def test_an_aggregate_is_created_by_its_first_stored_event_not_its_lowest_version(
        self,
    ) -> None:
        """Listing order is the first event's timestamp, then the order the aggregates were created
        in. An aggregate is created when its first event is *stored*, whatever its version: here
        mew's version 2 comes before abra's version 1, so mew was created first. Its initial
        timestamp is still that of its first event, version 1."""
        adapter = self.make_adapter()
        await adapter.push_event(event("mew", version=2, timestamp="2030"), event_store_id="S")
        await adapter.push_event(event("abra", timestamp=YEARS[0]), event_store_id="S")
        await adapter.push_event(event("mew", timestamp=YEARS[0]), event_store_id="S")
        page = await adapter.list_aggregate_ids(event_store_id="S")
        assert page.aggregate_ids == [AggregateIdEntry("mew", YEARS[0]), AggregateIdEntry("abra", YEARS[0])]
        reversed_page = await adapter.list_aggregate_ids(event_store_id="S", reverse=True)
        assert [entry.aggregate_id for entry in reversed_page.aggregate_ids] == ["abra", "mew"]

    async def test_list_aggregate_ids_by_initial_timestamp(self) -> None:
        adapter = self.make_adapter()
        await adapter.push_event(event("agg2", timestamp=YEARS[1]), event_store_id="S")
        await adapter.push_event(event("agg1", timestamp=YEARS[0]), event_store_id="S")
        page = await adapter.list_aggregate_ids(event_store_id="S")
        assert page.aggregate_ids == [AggregateIdEntry("agg1", YEARS[0]), AggregateIdEntry("agg2", YEARS[1])]
        assert page.next_page_token is None

    async def test_pages_follow_the_token_alone(self) -> None:
        adapter = await self.four_aggregates()
        first = await adapter.list_aggregate_ids(event_store_id="S", limit=2)
        assert [entry.aggregate_id for entry in first.aggregate_ids] == ["agg1", "agg2"]
        assert first.next_page_token is not None
        second = await adapter.list_aggregate_ids(event_store_id="S", page_token=first.next_page_token)
        assert [entry.aggregate_id for entry in second.aggregate_ids] == ["agg3", "agg4"]
        assert second.next_page_token is None

    async def test_bounds_reverse_and_limit_travel_in_the_token(self) -> None:
        adapter = await self.four_aggregates()
        first = await adapter.list_aggregate_ids(
            event_store_id="S",
            limit=1,
            initial_event_after="2021-02-01T00:00:00.000Z",
            initial_event_before="2023-02-01T00:00:00.000Z",
            reverse=True,
        )
        assert first.aggregate_ids == [AggregateIdEntry("agg3", YEARS[2])]
        second = await adapter.list_aggregate_ids(event_store_id="S", page_token=first.next_page_token)
        assert second.aggregate_ids == [AggregateIdEntry("agg2", YEARS[1])]
        assert second.next_page_token is None

    async def test_bounds_are_inclusive(self) -> None:
        adapter = await self.four_aggregates()
        page = await adapter.list_aggregate_ids(
            event_store_id="S", initial_event_after=YEARS[1], initial_event_before=YEARS[2]
        )
        assert [entry.aggregate_id for entry in page.aggregate_ids] == ["agg2", "agg3"]

    async def test_an_explicit_option_beside_a_token_wins(self) -> None:
        adapter = await self.four_aggregates()
        first = await adapter.list_aggregate_ids(event_store_id="S", limit=1)
        rest = await adapter.list_aggregate_ids(event_store_id="S", page_token=first.next_page_token, limit=3)
        assert [entry.aggregate_id for entry in rest.aggregate_ids] == ["agg2", "agg3", "agg4"]
        assert rest.next_page_token is None

    async def test_limit_zero_is_an_empty_page_without_token(self) -> None:
        page = await (await self.four_aggregates()).list_aggregate_ids(event_store_id="S", limit=0)
        assert (page.aggregate_ids, page.next_page_token) == ([], None)

    async def test_equal_initial_timestamps_keep_creation_order_in_both_directions(self) -> None:
        adapter = self.make_adapter(lambda: "2024-06-01T00:00:00.000Z")
        for name in ("zubat", "abra", "mew"):
            await adapter.push_event(event(name), event_store_id="S")

        async def names(**options: Any) -> list[str]:
            return [
                e.aggregate_id
                for e in (await adapter.list_aggregate_ids(event_store_id="S", **options)).aggregate_ids
            ]

        assert await names() == ["zubat", "abra", "mew"]
        assert await names(reverse=True) == ["mew", "abra", "zubat"]
        # paging through ties never skips or repeats an aggregate
        seen: list[str] = []
        token: str | None = None
        while True:
            page = await adapter.list_aggregate_ids(event_store_id="S", limit=1, page_token=token)
            seen += [e.aggregate_id for e in page.aggregate_ids]
            if (token := page.next_page_token) is None:
                break
        assert seen == ["zubat", "abra", "mew"]

    @pytest.mark.parametrize("token", ["not json", "", "abc.def", "e30=.0000000000000000"])
    async def test_an_unknown_page_token_is_refused(self, token: str) -> None:
        with pytest.raises(ValueError, match="Invalid page token"):
            await (await self.four_aggregates()).list_aggregate_ids(event_store_id="S", page_token=token)

    async def test_a_tampered_page_token_is_refused(self) -> None:
        adapter = await self.four_aggregates()
        token = (await adapter.list_aggregate_ids(event_store_id="S", limit=1)).next_page_token
        assert token is not None
        body, checksum = token.split(".")
        tampered = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + checksum
        with pytest.raises(ValueError, match="Invalid page token"):
            await adapter.list_aggregate_ids(event_store_id="S", page_token=tampered)

    @pytest.mark.parametrize(("changes", "words"), FORGED_TOKEN_CHANGES)
    async def test_a_forged_page_token_is_refused_with_what_is_wrong(
        self, changes: dict[str, Any], words: str
    ) -> None:
        adapter = await self.four_aggregates()
        token = (await adapter.list_aggregate_ids(event_store_id="S", limit=1)).next_page_token
        assert token is not None
        with pytest.raises(ValueError, match="Invalid page token") as refused:
            await adapter.list_aggregate_ids(event_store_id="S", page_token=reforged(token, changes))
        assert words in str(refused.value)

    async def test_a_page_token_from_another_event_store_is_refused(self) -> None:
        adapter = await self.four_aggregates()
        await adapter.push_event(event("trainer1"), event_store_id="T")
        token = (await adapter.list_aggregate_ids(event_store_id="S", limit=1)).next_page_token
        with pytest.raises(ValueError, match="issued by event store 'S', not 'T'"):
            await adapter.list_aggregate_ids(event_store_id="T", page_token=token)

    @pytest.mark.parametrize(
        ("token", "words"),
        [
            ("é.0000000000000000", "does not decode"),
            (reforged_body(b"[" * 100_000), "does not decode"),
            (reforged_body(b"[]"), "does not hold the fields"),
            (reforged_body(b"\xff"), "does not decode"),
            ("x" * 5_000_000, "does not have the shape"),
        ],
        ids=["not ascii", "deeply nested", "not an object", "not utf-8", "five megabytes"],
    )
    async def test_a_broken_page_token_is_refused_in_a_short_message(self, token: str, words: str) -> None:
        with pytest.raises(ValueError, match="Invalid page token") as refused:
            await (await self.four_aggregates()).list_aggregate_ids(event_store_id="S", page_token=token)
        assert words in str(refused.value)
        assert len(str(refused.value)) < 300  # quotes the token's start only

    @pytest.mark.parametrize(
        ("options", "words"),
        [
            ({"page_token": 5}, "page_token must be None or the str"),
            ({"page_token": b"abc.def"}, "page_token must be None or the str"),
            ({"reverse": "yes"}, "reverse must be True, False or None"),
        ],
        ids=["page_token int", "page_token bytes", "reverse str"],
    )
    async def test_listing_arguments_of_the_wrong_type_are_refused(
        self, options: dict[str, Any], words: str
    ) -> None:
        with pytest.raises(TypeError, match=re.escape(words)):
            await (await self.four_aggregates()).list_aggregate_ids(event_store_id="S", **options)

    # -- event groups ----------------------------------------------------------------------

    def two_stores(self, clock: Clock = utc_now) -> tuple[EventStore, EventStore]:
        adapter = self.make_adapter(clock)
        return store("POKEMONS", adapter), store("TRAINERS", self.make_sibling(adapter))

    async def test_a_group_stores_every_event_with_one_shared_stamp(self) -> None:
        pokemons, trainers = self.two_stores(stepping_clock())
        stored = await EventStore.push_event_group(
            pokemons.group_event(event("pikachu")),
            trainers.group_event(event("ash", type="GAME_STARTED")),
            pokemons.group_event(event("eevee", timestamp="2020")),
        )
        assert [(e.aggregate_id, e.timestamp) for e in (r.event for r in stored)] == [
            ("pikachu", "2024-01-01T00:00:00.000Z"),
            ("ash", "2024-01-01T00:00:00.000Z"),
            ("eevee", "2020"),
        ]
        assert await pokemons.get_events("pikachu") == [stored[0].event]
        assert await trainers.get_events("ash") == [stored[1].event]

    @pytest.mark.parametrize("conflict_at", [0, 1, 2])
    async def test_a_conflict_anywhere_in_a_group_stores_nothing(self, conflict_at: int) -> None:
        pokemons, trainers = self.two_stores()
        await pokemons.push_event(event("existing"))
        await trainers.push_event(event("existing"))

        async def positions() -> tuple[int, int]:
            return (await log_of(pokemons).last_position(), await log_of(trainers).last_position())

        before = await positions()
        stores = [pokemons, trainers, pokemons]
        names = ["pikachu", "ash", "eevee"]
        names[conflict_at] = "existing"  # version 1 of "existing" is taken in both stores
        with pytest.raises(EventAlreadyExistsError) as caught:
            await EventStore.push_event_group(
                *(each.group_event(event(name)) for each, name in zip(stores, names, strict=True))
            )
        assert caught.value.aggregate_id == "existing"
        for name in ("pikachu", "ash", "eevee"):
            assert await pokemons.get_events(name) == [] and await trainers.get_events(name) == []
        assert [e.aggregate_id for e in (await pokemons.list_aggregate_ids()).aggregate_ids] == ["existing"]
        assert await positions() == before

    async def test_a_conflict_inside_the_group_itself_stores_nothing(self) -> None:
        pokemons, _ = self.two_stores()
        with pytest.raises(EventAlreadyExistsError):
            await EventStore.push_event_group(
                pokemons.group_event(event("mew")), pokemons.group_event(event("mew"))
            )
        assert await pokemons.get_events("mew") == []

    @pytest.mark.parametrize("bad_at", [0, 1])
    async def test_an_invalid_event_anywhere_in_a_group_stores_nothing(self, bad_at: int) -> None:
        pokemons, trainers = self.two_stores()
        grouped = [pokemons.group_event(event("pikachu")), trainers.group_event(event("ash"))]
        adapter = grouped[bad_at].event_storage_adapter
        grouped[bad_at] = adapter.group_event(event("broken", payload={"nan": float("nan")}))
        grouped[bad_at].context = (pokemons if bad_at == 0 else trainers).group_event(event("x")).context
        with pytest.raises(InvalidEventError) as caught:
            await EventStore.push_event_group(*grouped)
        assert caught.value.field == "payload"
        assert await log_of(pokemons).last_position() == 0
        assert await log_of(trainers).last_position() == 0

    async def test_a_group_needs_events(self) -> None:
        adapter = self.make_adapter()
        with pytest.raises(ValueError, match="at least one"):
            await adapter.push_event_group([])

    async def test_a_grouped_event_without_context_is_refused(self) -> None:
        pokemons, _ = self.two_stores()
        adapter = log_of(pokemons)
        with pytest.raises(ValueError, match="#1 misses context"):
            await EventStore.push_event_group(
                pokemons.group_event(event("a")), adapter.group_event(event("b"))
            )
        assert await adapter.last_position() == 0

    async def test_a_group_mixing_adapters_that_cannot_share_a_transaction_is_refused(self) -> None:
        pokemons, _ = self.two_stores()
        stranger = store("TRAINERS", self.make_stranger(log_of(pokemons)))
        with pytest.raises(ValueError, match="#1"):
            await EventStore.push_event_group(
                pokemons.group_event(event("a")), stranger.group_event(event("b"))
            )
        assert await log_of(pokemons).last_position() == 0
        assert await log_of(stranger).last_position() == 0

    # -- the ordered log -------------------------------------------------------------------

    async def test_the_log_numbers_every_event_in_commit_order(self) -> None:
        pokemons, trainers = self.two_stores(stepping_clock())

        await pokemons.push_event(event("pikachu"))
        await trainers.push_event(event("ash"))
        with pytest.raises(EventAlreadyExistsError):
            await pokemons.push_event(event("pikachu"))  # refused: must leave no gap
        await EventStore.push_event_group(
            pokemons.group_event(event("pikachu", 2)), pokemons.group_event(event("mew"))
        )
        # a set: two connections to one SQLite file read the same log
        by_store = sorted(
            {
                (e.event_store_id, e.position, e.event.aggregate_id, e.event.version)
                for each in (pokemons, trainers)
                for e in await log_of(each).read_log()
            }
        )
        assert by_store == self.expected_log_of_two_stores()

    def expected_log_of_two_stores(self) -> list[tuple[str, int, str, int]]:
        """``(event_store_id, position, aggregate_id, version)`` of each event of the two stores."""
        return ONE_LOG_FOR_BOTH_STORES if self.one_log_for_all_stores else ONE_LOG_PER_STORE

    async def test_the_log_reads_after_a_position_with_a_limit(self) -> None:
        adapter = self.make_adapter()
        for version in range(1, 6):
            await adapter.push_event(event(version=version), event_store_id="S")
        assert await adapter.last_position() == 5
        assert [e.position for e in await adapter.read_log(after_position=2)] == [3, 4, 5]
        assert [e.event.version for e in await adapter.read_log(after_position=1, limit=2)] == [2, 3]
        assert await adapter.read_log(after_position=5) == []
        assert await adapter.read_log(limit=0) == []
        with pytest.raises(ValueError, match="after_position"):
            await adapter.read_log(after_position=-1)

    async def test_both_log_calls_are_coroutine_functions(self) -> None:
        """So that code written against the protocol awaits them on every adapter alike (a server
        database can only serve the log as a coroutine)."""
        adapter = self.make_adapter()
        assert isinstance(adapter, OrderedLogStorage)
        for name in LOG_CALLS:
            assert inspect.iscoroutinefunction(getattr(adapter, name)), f"{name} is not async def"

    async def test_a_relay_follows_the_adapter_and_refuses_it_without_its_log(self) -> None:
        """The relay's gate: it takes an adapter of this suite, and refuses, by name, the same
        adapter behind a wrapper that forwards only the five event store calls."""
        adapter = self.make_adapter()
        assert Relay(adapter, {}).storage is adapter
        missing = "it lacks async def read_log and async def last_position"
        with pytest.raises(TypeError, match=rf"AdapterWithoutLog\(\) keeps no ordered log: {missing}"):
            Relay(AdapterWithoutLog(adapter), {})

    # -- schema versions (core/upcasting.py) -----------------------------------------------

    async def test_the_schema_version_round_trips_through_reads_groups_and_the_log(self) -> None:
        adapter = self.make_adapter()
        first = event(version=1, timestamp=YEARS[0])  # the default: 1
        second = event(version=2, timestamp=YEARS[1], schema_version=3)
        assert await adapter.push_event(first, event_store_id="S") == first
        assert await adapter.push_event(second, event_store_id="S") == second
        pokemons, trainers = store("S", adapter), store("T", self.make_sibling(adapter))
        grouped = await EventStore.push_event_group(  # of types these stores do not declare
            pokemons.group_event(event(version=3, type="EVOLVED", timestamp=YEARS[2], schema_version=7)),
            trainers.group_event(event("ash", type="BADGE_WON", timestamp=YEARS[3], schema_version=2)),
        )
        third, ash = (result.event for result in grouped)
        assert (third.schema_version, ash.schema_version) == (7, 2)
        assert [e.schema_version for e in [first, second, third]] == [1, 3, 7]
        assert await adapter.get_events("pikachu", event_store_id="S") == [first, second, third]
        assert await adapter.get_events("pikachu", event_store_id="S", reverse=True, limit=1) == [third]
        assert await log_of(trainers).get_events("ash", event_store_id="T") == [ash]
        logged = [entry.event for each in (pokemons, trainers) for entry in await log_of(each).read_log()]
        assert {(e.aggregate_id, e.version, e.schema_version) for e in logged} == {
            ("pikachu", 1, 1),
            ("pikachu", 2, 3),
            ("pikachu", 3, 7),
            ("ash", 1, 2),
        }

    async def test_force_overwrites_the_schema_version_too(self) -> None:
        adapter = self.make_adapter()
        await adapter.push_event(event(timestamp=YEARS[0], schema_version=4), event_store_id="S")
        replacement = event(timestamp=YEARS[1])
        await adapter.push_event(replacement, event_store_id="S", force=True)
        assert await adapter.get_events("pikachu", event_store_id="S") == [replacement]
        assert [entry.event.schema_version for entry in await adapter.read_log()] == [1]

    async def test_old_events_are_read_and_relayed_in_the_current_shape_and_stored_unchanged(self) -> None:
        """The adapter stores what it is given and hands it back as stored; the store upcasts on
        read, and the relay on publish: every adapter alike."""
        adapter = self.make_adapter(stepping_clock())
        old = [event(version=1, payload={"by": 2}), event(version=2, payload={"by": 1})]
        stored = [await adapter.push_event(e, event_store_id="S") for e in old]  # last year's code
        levels = EventStore(
            event_store_id="S",
            event_types=[EventType("LEVELLED_UP", schema_version=2, upcasters={1: by_to_levels})],
            reducer=lambda total, e: (total or 0) + e.payload["levels"],
            event_storage_adapter=adapter,
        )
        assert [e.payload for e in await levels.get_events("pikachu")] == [{"levels": 2}, {"levels": 1}]
        assert (await levels.get_aggregate("pikachu")).aggregate == 3
        pushed = (await levels.push_event(event(version=3, payload={"levels": 4}))).event
        assert pushed.schema_version == 2  # new events are written in the current shape
        bus = NotificationMessageBus(message_bus_id="LEVELS", source_event_stores=[levels])
        received: list[Any] = []

        async def keep(message: Any, context: Any) -> None:
            received.append(message.event)

        bus_adapter = InMemoryMessageBusAdapter.attach_to(bus)
        bus_adapter.on({}, keep)
        relay = Relay(adapter, {"S": bus}, name="upcasting", checkpoints=InMemoryCheckpointStore())
        await relay.catch_up()
        await bus_adapter.wait_idle()
        assert [(e.version, e.schema_version, e.payload) for e in received] == [
            (1, 2, {"levels": 2}),
            (2, 2, {"levels": 1}),
            (3, 2, {"levels": 4}),
        ]
        assert await adapter.get_events("pikachu", event_store_id="S") == [*stored, pushed]

    # -- bad input -------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("bad", "field"),
        [
            (dict(aggregate_id=""), "aggregate_id"),
            (dict(aggregate_id=7), "aggregate_id"),
            (dict(aggregate_id=None), "aggregate_id"),
            (dict(version=0), "version"),
            (dict(version=-3), "version"),
            (dict(version=True), "version"),
            (dict(version=1.0), "version"),
            (dict(version="1"), "version"),
            (dict(type=""), "type"),
            (dict(type=3), "type"),
            (dict(timestamp=20240101), "timestamp"),
            (dict(payload={"when": object()}), "payload"),
            (dict(payload=float("inf")), "payload"),
            (dict(metadata={1, 2}), "metadata"),
            (dict(schema_version=0), "schema_version"),
            (dict(schema_version=True), "schema_version"),
            (dict(schema_version="2"), "schema_version"),
            (dict(schema_version=None), "schema_version"),
        ],
    )
    async def test_bad_events_are_refused_and_nothing_is_stored(
        self, bad: dict[str, Any], field: str
    ) -> None:
        adapter = self.make_adapter()
        fields = {"aggregate_id": "pikachu", "version": 1, "type": "APPEARED", **bad}
        with pytest.raises(InvalidEventError) as caught:
            await adapter.push_event(EventDetail(**fields), event_store_id="S")
        assert caught.value.field == field
        assert field in str(caught.value)
        assert await adapter.last_position() == 0
        assert (await adapter.list_aggregate_ids(event_store_id="S")).aggregate_ids == []

    @pytest.mark.parametrize(
        ("bad", "field"),
        [
            pytest.param(dict(payload={1: "a", "1": "b"}), "payload", id="int key beside its str twin"),
            pytest.param(dict(metadata={"a": [{"b": {None: 1}}]}), "metadata", id="deep None key"),
            pytest.param(dict(payload={(1, 2): "pair"}), "payload", id="tuple key"),
            pytest.param(dict(payload={True: "yes"}), "payload", id="bool key"),
            pytest.param(dict(payload=nested(MAX_JSON_DEPTH + 1)), "payload", id="one level too deep"),
            pytest.param(dict(metadata=nested(100_000)), "metadata", id="deeper than the stack"),
            pytest.param(dict(payload=containing_itself()), "payload", id="list containing itself"),
            pytest.param(dict(payload={"name": "\ud800"}), "payload", id="lone surrogate in a value"),
            pytest.param(dict(metadata={"\udfff": 1}), "metadata", id="lone surrogate in a key"),
            pytest.param(dict(aggregate_id="pika\ud800"), "aggregate_id", id="lone surrogate in id"),
            pytest.param(dict(aggregate_id="pika\x00chu"), "aggregate_id", id="NUL in id"),
            pytest.param(dict(type="\ud83d"), "type", id="lone surrogate in type"),
            pytest.param(dict(type="APPEARED\x00"), "type", id="NUL in type"),
            pytest.param(dict(timestamp="2024\udc80"), "timestamp", id="lone surrogate in timestamp"),
            pytest.param(dict(timestamp="\x002024"), "timestamp", id="NUL in timestamp"),
            pytest.param(dict(version=MAX_VERSION + 1), "version", id="version beyond MAX_VERSION"),
            pytest.param(dict(version=2**63), "version", id="version beyond 64 bits"),
            pytest.param(
                dict(schema_version=MAX_VERSION + 1), "schema_version", id="schema version beyond MAX_VERSION"
            ),
        ],
    )
    async def test_values_some_adapter_cannot_store_are_refused_by_every_adapter(
        self, bad: dict[str, Any], field: str
    ) -> None:
        """One rule for every adapter: what one of them cannot store (or would read back
        changed), none accepts."""
        await self.test_bad_events_are_refused_and_nothing_is_stored(bad, field)

    async def test_values_at_the_limits_round_trip(self) -> None:
        """The other side of the rule: everything up to the limits is stored and read back equal.
        A NUL inside JSON text is written ``\\u0000``, so a payload may hold one."""
        adapter = self.make_adapter()
        limits = event(
            "ピカチュウ 😀",
            version=MAX_VERSION,
            type="LEVELLED_UP ✨",
            timestamp=YEARS[0],
            payload={"deep": nested(MAX_JSON_DEPTH - 1), "nul\x00key": "a\x00b"},
            metadata=["\U0001f600", "\x00"],
            schema_version=MAX_VERSION,
        )
        assert await adapter.push_event(limits, event_store_id="S ✨") == limits
        assert await adapter.get_events(limits.aggregate_id, event_store_id="S ✨") == [limits]
        read = await adapter.get_events(
            limits.aggregate_id, event_store_id="S ✨", min_version=MAX_VERSION, max_version=MAX_VERSION
        )
        assert read == [limits]

    @pytest.mark.parametrize("event_store_id", [7, None, "S\x00", "S\ud800"])
    async def test_an_event_store_id_no_adapter_can_store_is_refused(self, event_store_id: Any) -> None:
        adapter = self.make_adapter()
        with pytest.raises(InvalidEventError) as caught:
            await adapter.push_event(event(), event_store_id=event_store_id)
        assert caught.value.field == "event_store_id"
        grouped = adapter.group_event(event())
        grouped.context = EventStoreContext(event_store_id)
        with pytest.raises(InvalidEventError) as caught:
            await adapter.push_event_group([grouped])
        assert caught.value.field == "event_store_id"
        assert await adapter.last_position() == 0

    @pytest.mark.parametrize(
        ("options", "name"),
        [
            pytest.param(dict(min_version=MAX_VERSION + 1), "min_version", id="min_version too high"),
            pytest.param(dict(max_version=2**63), "max_version", id="max_version beyond 64 bits"),
            pytest.param(dict(min_version=-(2**64)), "min_version", id="min_version far below"),
            pytest.param(dict(limit=2**63), "limit", id="limit beyond 64 bits"),
            pytest.param(dict(event_store_id="S\x00"), "event_store_id", id="NUL in event_store_id"),
            pytest.param(dict(aggregate_id="pika\x00chu"), "aggregate_id", id="NUL in aggregate_id"),
            pytest.param(dict(aggregate_id="pika\ud800"), "aggregate_id", id="lone surrogate in id"),
        ],
    )
    async def test_reads_beyond_what_can_be_stored_are_refused_by_name(
        self, options: dict[str, Any], name: str
    ) -> None:
        """Not the driver's ``OverflowError`` or encoding error: a ``ValueError`` naming the
        argument."""
        adapter = self.make_adapter()
        arguments = {"aggregate_id": "pikachu", "event_store_id": "S", **options}
        with pytest.raises(ValueError, match=name):
            await adapter.get_events(**arguments)

    async def test_flags_that_are_not_bools_are_refused_before_anything_is_done(self) -> None:
        """``force="no"`` is a true string: read as a flag, it would overwrite an event."""
        adapter: Any = self.make_adapter()  # Any: these calls break the types on purpose
        await adapter.push_event(event(timestamp=YEARS[0]), event_store_id="S")
        replacement = event(type="APPEARED")
        with pytest.raises(TypeError, match="force must be True or False"):
            await adapter.push_event(replacement, event_store_id="S", force="no")
        pokemons = store("S", adapter)
        with pytest.raises(TypeError, match="force must be True or False"):
            await adapter.push_event_group([pokemons.group_event(replacement)], force=1)
        with pytest.raises(TypeError, match="reverse must be True or False"):
            await adapter.get_events("pikachu", event_store_id="S", reverse="no")
        with pytest.raises(TypeError, match="reverse must be True, False or None"):
            await adapter.list_aggregate_ids(event_store_id="S", reverse="no")
        assert await adapter.get_events("pikachu", event_store_id="S") == [event(timestamp=YEARS[0])]
        assert await adapter.last_position() == 1
        listed = await adapter.list_aggregate_ids(event_store_id="S", reverse=None)
        assert [entry.aggregate_id for entry in listed.aggregate_ids] == ["pikachu"]

    @pytest.mark.parametrize("clock", ["2024-01-01T00:00:00.000Z", None])
    async def test_a_clock_that_cannot_be_called_is_refused_at_construction(self, clock: Any) -> None:
        with pytest.raises(TypeError, match="clock"):
            self.make_adapter(clock)

    async def test_something_that_is_not_an_event_is_refused(self) -> None:
        adapter: Any = self.make_adapter()  # Any: this call breaks the types on purpose
        with pytest.raises(InvalidEventError, match="EventDetail"):
            await adapter.push_event({"aggregate_id": "a", "version": 1, "type": "T"}, event_store_id="S")

    @pytest.mark.parametrize(
        "aggregate_id",
        [
            "O'Brien",
            'say "hi"',
            "x'); DROP TABLE events; --",
            "SELECT * FROM events",
            "ピカチュウ",
            "😀 émoji",
            "a;b\nc",
        ],
    )
    async def test_awkward_ids_round_trip(self, aggregate_id: str) -> None:
        adapter = self.make_adapter()
        pushed = await adapter.push_event(
            event(aggregate_id, payload={"name": aggregate_id}), event_store_id="S"
        )
        assert await adapter.get_events(aggregate_id, event_store_id="S") == [pushed]
        assert [
            e.aggregate_id for e in (await adapter.list_aggregate_ids(event_store_id="S")).aggregate_ids
        ] == [aggregate_id]
        assert await adapter.get_events("x", event_store_id="S") == []

    async def test_bad_reads_are_refused(self) -> None:
        adapter: Any = self.make_adapter()  # Any: these calls break the types on purpose
        with pytest.raises(ValueError, match="aggregate_id"):
            await adapter.get_events("", event_store_id="S")
        with pytest.raises(TypeError, match="min_version"):
            await adapter.get_events("a", event_store_id="S", min_version="1")
        with pytest.raises(TypeError, match="limit"):
            await adapter.get_events("a", event_store_id="S", limit=1.5)
