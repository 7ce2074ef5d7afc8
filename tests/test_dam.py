"""Replay functions: Castore's lib-dam behaviour, with our deterministic tie order (docs/api.md §10)."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from castore_edu.core.errors import MessageChannelEventStoreNotFoundError
from castore_edu.core.events import AggregateIdEntry, EventDetail
from castore_edu.messaging.channels import AggregateExistsMessageQueue, NotificationMessageQueue
from castore_edu.messaging.delivery import TaskContext
from castore_edu.messaging.in_memory_queue import InMemoryMessageQueueAdapter
from castore_edu.messaging.messages import AggregateExistsMessage
from castore_edu.replay import dam
from castore_edu.replay.dam import (
    PouredAggregateIds,
    PouredCollectionEvents,
    PouredEvents,
    PouredStoreEvents,
    ScanInfo,
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from castore_edu.testing.doubles import mock_event_store
from tests.fixtures_pokemon import Recorder, blueprint_stores

pytestmark = pytest.mark.anyio

REPLAYED = TaskContext(attempt=1, retry_attempts_left=2, replay=True)


def events(aggregate_id: str, *dates: str) -> list[EventDetail]:
    return [
        EventDetail(
            aggregate_id=aggregate_id, version=version, type="EVENT", timestamp=f"{date}T00:00:00.000Z"
        )
        for version, date in enumerate(dates, start=1)
    ]


pikachu = events("pikachu", "2021-01-01", "2022-01-01", "2023-07-01")
charizard = events("charizard", "2022-07-01")
arcanine = events("arcanine", "2023-01-01", "2024-01-01")
ash = events("ashKetchum", "2020-12-01", "2022-01-01")
gary = events("garyOak", "2022-12-01", "2024-01-01")


def entry(aggregate_events: list[EventDetail]) -> AggregateIdEntry:
    return AggregateIdEntry(aggregate_events[0].aggregate_id, aggregate_events[0].timestamp)


def stores() -> tuple[Any, Any]:
    pokemons, trainers = blueprint_stores()
    return (
        mock_event_store(pokemons, [*pikachu, *charizard, *arcanine]),
        mock_event_store(trainers, [*ash, *gary]),
    )


def queue_of(*event_stores: Any, channel_class: type = NotificationMessageQueue) -> tuple[Any, Recorder]:
    """A queue fed by ``event_stores`` whose in-memory worker records what it receives."""
    worker = Recorder()
    queue = channel_class(message_queue_id="replays", source_event_stores=list(event_stores))
    InMemoryMessageQueueAdapter.attach_to(queue, worker=worker)
    return queue, worker


def poured(worker: Recorder) -> list[tuple[str, EventDetail]]:
    assert all(context == REPLAYED for context in worker.contexts)
    return [(message.event_store_id, message.event) for message in worker.messages]


def record_calls(obj: Any, method_name: str) -> list[dict[str, Any]]:
    """Spy on ``obj.method_name``: the keyword arguments of each call (the method still runs)."""
    calls: list[dict[str, Any]] = []
    method = getattr(obj, method_name)

    async def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return await method(*args, **kwargs)

    setattr(obj, method_name, spy)
    return calls


def assert_evenly_spaced(worker: Recorder, rate_limit: float) -> None:
    """Deliveries are at least 1/rate_limit apart, and not much more (ratios, not absolute times)."""
    spacing = [gap * rate_limit for gap in worker.gaps()]  # measured gap / expected gap
    assert min(spacing) >= 0.9
    assert statistics.median(spacing) <= 1.5


# -- pour_aggregate_events ---------------------------------------------------------------------


async def test_pour_aggregate_events_replays_one_aggregate_in_version_order() -> None:
    pokemons, _ = stores()
    queue, worker = queue_of(pokemons)
    result = await pour_aggregate_events(event_store=pokemons, message_channel=queue, aggregate_id="pikachu")
    assert poured(worker) == [("POKEMONS", event) for event in pikachu]
    assert result == PouredEvents(3, pikachu[0], pikachu[2])


async def test_pour_aggregate_events_with_a_time_window() -> None:
    pokemons, _ = stores()
    queue, worker = queue_of(pokemons)
    filters = {"from": "2021-02-01T00:00:00.000Z", "to": "2023-06-01T00:00:00.000Z"}
    result = await pour_aggregate_events(
        event_store=pokemons, message_channel=queue, aggregate_id="pikachu", filters=filters
    )
    assert poured(worker) == [("POKEMONS", pikachu[1])]
    assert result == PouredEvents(1, pikachu[1], pikachu[1])
    bounds = {"from": pikachu[0].timestamp, "to": pikachu[1].timestamp}  # both bounds inclusive
    assert (
        await pour_aggregate_events(
            event_store=pokemons, message_channel=queue, aggregate_id="pikachu", filters=bounds
        )
    ).poured_event_count == 2


async def test_pour_aggregate_events_passes_options_to_get_events() -> None:
    pokemons, _ = stores()
    calls = record_calls(pokemons, "get_events")
    queue, worker = queue_of(pokemons)
    options = {"reverse": True, "limit": 1, "min_version": 1, "max_version": 3}
    result = await pour_aggregate_events(
        event_store=pokemons, message_channel=queue, aggregate_id="pikachu", options=options
    )
    assert calls == [options]
    assert poured(worker) == [("POKEMONS", pikachu[2])]
    assert result == PouredEvents(1, pikachu[2], pikachu[2])


async def test_pour_aggregate_events_of_an_unknown_aggregate_pours_nothing() -> None:
    pokemons, _ = stores()
    queue, worker = queue_of(pokemons)
    assert await pour_aggregate_events(
        event_store=pokemons, message_channel=queue, aggregate_id="mew"
    ) == PouredEvents(0)
    assert worker.calls == []


async def test_pour_aggregate_events_respects_the_rate_limit() -> None:
    pokemons, _ = stores()
    queue, worker = queue_of(pokemons)
    await pour_aggregate_events(
        event_store=pokemons, message_channel=queue, aggregate_id="pikachu", rate_limit=25
    )
    assert len(worker.calls) == 3
    assert_evenly_spaced(worker, 25)


# -- pour_event_store_aggregate_ids ------------------------------------------------------------


async def test_pour_event_store_aggregate_ids() -> None:
    pokemons, _ = stores()
    queue, worker = queue_of(pokemons, channel_class=AggregateExistsMessageQueue)
    result = await pour_event_store_aggregate_ids(event_store=pokemons, message_channel=queue)
    assert worker.messages == [
        AggregateExistsMessage("POKEMONS", e.aggregate_id, e.initial_event_timestamp)
        for e in (entry(pikachu), entry(charizard), entry(arcanine))
    ]
    assert all(context == REPLAYED for context in worker.contexts)
    assert result == PouredAggregateIds(3, entry(pikachu), entry(arcanine))


async def test_pour_event_store_aggregate_ids_passes_options_and_pages_through_everything() -> None:
    pokemons, _ = stores()
    calls = record_calls(pokemons, "list_aggregate_ids")
    queue, _worker = queue_of(pokemons, channel_class=AggregateExistsMessageQueue)
    options = {
        "limit": 2,
        "initial_event_after": "2021-01-01T00:00:00.001Z",
        "initial_event_before": "2022-12-01T00:00:00.000Z",
        "reverse": True,
    }
    result = await pour_event_store_aggregate_ids(
        event_store=pokemons, message_channel=queue, options=options
    )
    assert calls[0] == {**options, "page_token": None}
    assert result == PouredAggregateIds(1, entry(charizard), entry(charizard))
    # limit is a page size, not a cap: every page is poured
    assert await pour_event_store_aggregate_ids(
        event_store=pokemons, message_channel=queue, options={"limit": 1}
    ) == PouredAggregateIds(3, entry(pikachu), entry(arcanine))


# -- pour_event_store_events ----------------------------------------------------------------------


async def test_pour_event_store_events_in_timestamp_order() -> None:
    pokemons, _ = stores()
    queue, worker = queue_of(pokemons)
    result = await pour_event_store_events(event_store=pokemons, message_channel=queue)
    assert poured(worker) == [
        ("POKEMONS", e) for e in (pikachu[0], pikachu[1], charizard[0], arcanine[0], pikachu[2], arcanine[1])
    ]
    assert result == PouredStoreEvents(6, entry(pikachu), entry(arcanine))


async def test_pour_event_store_events_with_a_time_window() -> None:
    pokemons, _ = stores()
    queue, worker = queue_of(pokemons)
    filters = {"from": "2021-07-01T00:00:00.000Z", "to": "2023-02-01T00:00:00.000Z"}
    result = await pour_event_store_events(event_store=pokemons, message_channel=queue, filters=filters)
    assert poured(worker) == [("POKEMONS", e) for e in (pikachu[1], charizard[0], arcanine[0])]
    assert result == PouredStoreEvents(3, entry(pikachu), entry(arcanine))


async def test_pour_event_store_events_respects_the_rate_limit() -> None:
    pokemons, _ = stores()
    queue, worker = queue_of(pokemons)
    await pour_event_store_events(event_store=pokemons, message_channel=queue, rate_limit=25)
    assert len(worker.calls) == 6
    assert_evenly_spaced(worker, 25)


# -- pour_event_store_collection_events ---------------------------------------------------------


async def test_pour_collection_events_in_one_timestamp_order() -> None:
    pokemons, trainers = stores()
    queue, worker = queue_of(pokemons, trainers)
    result = await pour_event_store_collection_events(
        event_stores=[pokemons, trainers], message_channel=queue
    )
    # Equal timestamps (2022-01-01, 2024-01-01) keep the order of event_stores: POKEMONS first.
    # (Castore puts TRAINERS first there, by a quirk of JavaScript's sort.)
    assert poured(worker) == [
        ("TRAINERS", ash[0]),
        ("POKEMONS", pikachu[0]),
        ("POKEMONS", pikachu[1]),
        ("TRAINERS", ash[1]),
        ("POKEMONS", charizard[0]),
        ("TRAINERS", gary[0]),
        ("POKEMONS", arcanine[0]),
        ("POKEMONS", pikachu[2]),
        ("POKEMONS", arcanine[1]),
        ("TRAINERS", gary[1]),
    ]
    assert result == PouredCollectionEvents(
        10,
        {
            "POKEMONS": ScanInfo(entry(pikachu), entry(arcanine)),
            "TRAINERS": ScanInfo(entry(ash), entry(gary)),
        },
    )


async def test_ties_across_stores_follow_the_order_of_event_stores() -> None:
    pokemons, trainers = stores()
    queue, worker = queue_of(pokemons, trainers)
    await pour_event_store_collection_events(event_stores=[trainers, pokemons], message_channel=queue)
    order = [event.aggregate_id for _, event in poured(worker)]
    assert order.index("ashKetchum", 1) < order.index("pikachu", 2)  # 2022-01-01 tie: TRAINERS first now
    assert order[-2:] == ["garyOak", "arcanine"]  # 2024-01-01 tie


async def test_ties_in_one_store_follow_the_listing_then_the_versions() -> None:
    pokemons, _ = blueprint_stores()
    same_day = "2021-01-01T00:00:00.000Z"
    store = mock_event_store(
        pokemons,
        [
            EventDetail(aggregate_id="zubat", version=1, type="EVENT", timestamp=same_day),  # created first
            EventDetail(aggregate_id="abra", version=1, type="EVENT", timestamp=same_day),
            EventDetail(aggregate_id="zubat", version=2, type="EVENT", timestamp=same_day),
        ],
    )
    queue, worker = queue_of(store)
    await pour_event_store_events(event_store=store, message_channel=queue)
    assert [(e.aggregate_id, e.version) for _, e in poured(worker)] == [
        ("zubat", 1),
        ("zubat", 2),
        ("abra", 1),
    ]


async def test_pour_collection_events_with_a_time_window() -> None:
    pokemons, trainers = stores()
    queue, worker = queue_of(pokemons, trainers)
    filters = {"from": "2021-07-01T00:00:00.000Z", "to": "2022-11-01T00:00:00.000Z"}
    result = await pour_event_store_collection_events(
        event_stores=[pokemons, trainers], message_channel=queue, filters=filters
    )
    assert poured(worker) == [("POKEMONS", pikachu[1]), ("TRAINERS", ash[1]), ("POKEMONS", charizard[0])]
    assert result == PouredCollectionEvents(
        3,
        {
            "POKEMONS": ScanInfo(entry(pikachu), entry(charizard)),
            "TRAINERS": ScanInfo(entry(ash), entry(ash)),
        },
    )


async def test_pour_collection_events_respects_the_rate_limit() -> None:
    pokemons, trainers = stores()
    queue, worker = queue_of(pokemons, trainers)
    await pour_event_store_collection_events(
        event_stores=[pokemons, trainers], message_channel=queue, rate_limit=25
    )
    assert len(worker.calls) == 10
    assert_evenly_spaced(worker, 25)


async def test_a_store_listed_to_the_end_does_not_jump_ahead_of_another() -> None:
    # Castore's quirk (§11.13): once a store is fully listed it pours all its events at once, even
    # those newer than events of another store still to be listed. It takes > PAGE_SIZE aggregates.
    assert dam.PAGE_SIZE == 20
    pokemons, trainers = blueprint_stores()
    many = mock_event_store(
        pokemons,
        [
            EventDetail(
                aggregate_id=f"pokemon{day:02}",
                version=1,
                type="EVENT",
                timestamp=f"2021-01-{day:02}T00:00:00.000Z",
            )
            for day in range(1, 26)
        ],
    )
    ash_events = events("ashKetchum", "2020-06-01", "2030-01-01")
    few = mock_event_store(trainers, ash_events)
    queue, worker = queue_of(many, few)
    listings: list[tuple[dict[str, Any], int]] = []  # (arguments, messages poured before that listing)
    list_aggregate_ids = many.list_aggregate_ids

    async def spy(**kwargs: Any) -> Any:
        listings.append((kwargs, len(worker.calls)))
        return await list_aggregate_ids(**kwargs)

    many.list_aggregate_ids = spy
    result = await pour_event_store_collection_events(event_stores=[many, few], message_channel=queue)
    timestamps = [event.timestamp for _, event in poured(worker)]
    assert len(timestamps) == 27 and timestamps == sorted(timestamps)
    assert poured(worker)[-1] == ("TRAINERS", ash_events[1])  # 2030: last, not poured early
    assert [(kwargs["limit"], kwargs["page_token"] is None) for kwargs, _ in listings] == [
        (20, True),
        (20, False),
    ]
    # Pouring streams: what is older than the first page's cursor (pokemon20) went out before the
    # second page was listed: ashKetchum v1 and pokemon01..19.
    assert [poured_before for _, poured_before in listings] == [0, 20]
    assert result.scans["POKEMONS"] == ScanInfo(
        AggregateIdEntry("pokemon01", "2021-01-01T00:00:00.000Z"),
        AggregateIdEntry("pokemon25", "2021-01-25T00:00:00.000Z"),
    )


# -- bad input --------------------------------------------------------------------------------


async def test_bad_replay_arguments_are_refused() -> None:
    pokemons, _ = stores()
    queue, _ = queue_of(pokemons)
    with pytest.raises(ValueError, match=r"Unknown filter keys \['since'\]"):
        await pour_event_store_events(event_store=pokemons, message_channel=queue, filters={"since": "2022"})
    with pytest.raises(ValueError, match="page_token"):
        await pour_event_store_aggregate_ids(
            event_store=pokemons, message_channel=queue, options={"page_token": "x"}
        )
    for rate_limit in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="rate_limit must be a positive number"):
            await pour_aggregate_events(
                event_store=pokemons, message_channel=queue, aggregate_id="pikachu", rate_limit=rate_limit
            )


async def test_a_message_from_a_store_the_channel_does_not_know_is_refused() -> None:
    pokemons, trainers = stores()
    queue, worker = queue_of(pokemons)  # TRAINERS is not a source of this queue
    with pytest.raises(MessageChannelEventStoreNotFoundError):
        await pour_event_store_events(event_store=trainers, message_channel=queue)
    assert worker.calls == []
