"""Events that evolve: schema versions, upcasters, and every reader seeing the current shape.

The domain of these tests: last year's code wrote ``POKEMON_CAUGHT`` as ``{"trainer": ...}``
(schema version 1); then it became ``{"trainer_id": ...}`` (2), then gained the ball (3). And
``POKEMON_APPEARED`` version 1 held a nickname too; version 2 splits it off into an event of its
own type, ``POKEMON_NICKNAMED``. The old events stay in the store as they were written.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from castore_edu import (
    ConnectedEventStore,
    EventDetail,
    EventStore,
    EventType,
    InMemoryEventStorageAdapter,
    InvalidEventError,
    NotificationMessage,
    Relay,
    SQLiteEventStorageAdapter,
    StateCarryingMessage,
    StateCarryingMessageBus,
    UpcastError,
    pour_aggregate_events,
    pour_event_store_events,
    stepping_clock,
)
from castore_edu.course.widgets.explorer import event_html
from castore_edu.messaging.wire import decode_message, encode_message
from castore_edu.reliability.relay import InMemoryCheckpointStore
from tests.fixtures_pokemon import RecordingChannelAdapter, recording_bus

pytestmark = pytest.mark.anyio


# -- the domain, then and now ----------------------------------------------------------------


def caught_v1_to_v2(event: EventDetail) -> EventDetail:
    """Rename ``trainer`` to ``trainer_id``, keeping every other field."""
    payload = {("trainer_id" if key == "trainer" else key): value for key, value in event.payload.items()}
    return replace(event, payload=payload, schema_version=2)


def caught_v2_to_v3(event: EventDetail) -> EventDetail:
    """Version 3 says which ball; before it, every ball was a Poké Ball."""
    return replace(event, payload={**event.payload, "ball": "poke"}, schema_version=3)


def appeared_v1_to_v2(event: EventDetail) -> EventDetail | list[EventDetail]:
    """Version 1 held the nickname too: split it off into a POKEMON_NICKNAMED event."""
    payload = dict(event.payload)
    nickname = payload.pop("nickname", None)
    appeared = replace(event, payload=payload, schema_version=2)
    if nickname is None:
        return appeared
    return [appeared, replace(event, type="POKEMON_NICKNAMED", payload={"nickname": nickname})]


POKEMON_CAUGHT = EventType(
    "POKEMON_CAUGHT", schema_version=3, upcasters={1: caught_v1_to_v2, 2: caught_v2_to_v3}
)
POKEMON_APPEARED = EventType("POKEMON_APPEARED", schema_version=2, upcasters={1: appeared_v1_to_v2})
POKEMON_NICKNAMED = EventType("POKEMON_NICKNAMED")
TODAY = [POKEMON_APPEARED, POKEMON_CAUGHT, POKEMON_NICKNAMED]


def reducer(pokemon: dict[str, Any] | None, event: EventDetail) -> dict[str, Any]:
    """Today's reducer: it knows today's shapes only."""
    if event.type == "POKEMON_APPEARED":
        return {"name": event.payload["name"], "version": event.version}
    assert pokemon is not None
    if event.type == "POKEMON_NICKNAMED":
        return {**pokemon, "nickname": event.payload["nickname"], "version": event.version}
    if event.type == "POKEMON_CAUGHT":
        caught = {"trainer_id": event.payload["trainer_id"], "ball": event.payload["ball"]}
        return {**pokemon, **caught, "version": event.version}
    return {**pokemon, "version": event.version}


def old(version: int, type_: str, payload: Any, aggregate_id: str = "pikachu", **fields: Any) -> EventDetail:
    """An event as last year's code wrote it: in schema version 1, unless said otherwise."""
    return EventDetail(
        aggregate_id=aggregate_id,
        version=version,
        type=type_,
        timestamp=fields.pop("timestamp", f"2023-0{version}-01T00:00:00.000Z"),
        payload=payload,
        **fields,
    )


PIKACHU_THEN = [
    old(1, "POKEMON_APPEARED", {"name": "Pikachu", "nickname": "Sparky"}),
    old(2, "POKEMON_CAUGHT", {"trainer": "ash"}),
]


def pokemons(adapter: Any = None, event_types: list[EventType] = TODAY) -> EventStore:
    return EventStore(
        event_store_id="POKEMONS",
        event_types=event_types,
        reducer=reducer,
        event_storage_adapter=adapter or InMemoryEventStorageAdapter(clock=stepping_clock()),
    )


async def store_with_history(adapter: Any = None) -> EventStore:
    """Today's store over Pikachu's two old events, stored by last year's code (through the adapter:
    the old store wrote them in version 1)."""
    store = pokemons(adapter)
    for event in PIKACHU_THEN:
        await store.get_event_storage_adapter().push_event(event, event_store_id="POKEMONS")
    return store


PIKACHU_NOW = [
    replace(PIKACHU_THEN[0], payload={"name": "Pikachu"}, schema_version=2),
    replace(PIKACHU_THEN[0], type="POKEMON_NICKNAMED", payload={"nickname": "Sparky"}),
    replace(PIKACHU_THEN[1], payload={"trainer_id": "ash", "ball": "poke"}, schema_version=3),
]


# -- declaring an event type that evolves ------------------------------------------------------


def test_an_event_type_declares_its_current_version_and_the_complete_chain() -> None:
    assert (POKEMON_CAUGHT.schema_version, list(POKEMON_CAUGHT.upcasters)) == (3, [1, 2])
    assert repr(POKEMON_CAUGHT) == (
        "EventType(type='POKEMON_CAUGHT', schema_version=3, upcasters={1: caught_v1_to_v2, 2: caught_v2_to_v3})"
    )
    assert repr(POKEMON_NICKNAMED) == "EventType(type='POKEMON_NICKNAMED')"
    assert EventType("X") == EventType("X", schema_version=1, upcasters={})
    # identified by name and version: the functions say nothing about what they do
    same = EventType("POKEMON_CAUGHT", schema_version=3, upcasters={1: caught_v1_to_v2, 2: caught_v1_to_v2})
    assert same == POKEMON_CAUGHT and hash(same) == hash(POKEMON_CAUGHT)
    assert EventType("POKEMON_CAUGHT", schema_version=2, upcasters={1: caught_v1_to_v2}) != POKEMON_CAUGHT


def test_the_declaration_keeps_its_own_copy_of_the_chain() -> None:
    upcasters = {1: caught_v1_to_v2}
    declared = EventType("POKEMON_CAUGHT", schema_version=2, upcasters=upcasters)
    upcasters[1] = caught_v2_to_v3
    assert declared.upcasters == {1: caught_v1_to_v2}


@pytest.mark.parametrize(
    ("arguments", "error", "words"),
    [
        (
            dict(schema_version=3, upcasters={1: caught_v1_to_v2}),
            ValueError,
            "misses the upcaster from version 2 (2 → 3)",
        ),
        (dict(schema_version=3), ValueError, "upcasters={1: v1_to_v2, 2: v2_to_v3}"),
        (dict(upcasters={1: caught_v1_to_v2}), ValueError, "schema version 1 is the first"),
        (
            dict(schema_version=2, upcasters={1: caught_v1_to_v2, 2: caught_v2_to_v3}),
            ValueError,
            "outside 1 to 1",
        ),
        (dict(schema_version=2, upcasters={0: caught_v1_to_v2, 1: caught_v1_to_v2}), ValueError, "version 0"),
        (dict(schema_version=2, upcasters={"1": caught_v1_to_v2}), TypeError, "keys are the schema versions"),
        (
            dict(schema_version=2, upcasters={1: "caught_v1_to_v2"}),
            TypeError,
            "upcasters[1] must be callable",
        ),
        (dict(schema_version=2, upcasters=[caught_v1_to_v2]), TypeError, "upcasters must be a dict"),
        (dict(schema_version=0), ValueError, "schema_version must be an int >= 1"),
        (dict(schema_version=True), TypeError, "schema_version must be an int >= 1"),
        (dict(schema_version="2"), TypeError, "schema_version must be an int >= 1"),
        (dict(schema_version=2**31), ValueError, "MAX_VERSION"),
    ],
)
def test_a_chain_with_gaps_or_wrong_parts_is_refused_when_the_type_is_built(
    arguments: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as caught:
        EventType("POKEMON_CAUGHT", **arguments)
    assert words in str(caught.value)


def test_a_store_refuses_two_different_declarations_of_one_type() -> None:
    older = EventType("POKEMON_CAUGHT", schema_version=2, upcasters={1: caught_v1_to_v2})
    with pytest.raises(ValueError, match="declares 'POKEMON_CAUGHT' twice, at schema versions 3 and 2"):
        pokemons(event_types=[POKEMON_CAUGHT, older])
    assert pokemons(event_types=[POKEMON_CAUGHT, POKEMON_CAUGHT]).event_types == [POKEMON_CAUGHT] * 2


async def test_declarations_given_after_the_store_was_made_are_checked_and_read_with() -> None:
    store = await store_with_history()
    store.event_types = [POKEMON_APPEARED]  # POKEMON_CAUGHT is no longer declared: read as stored
    assert [event.payload for event in await store.get_events("pikachu")][-1] == {"trainer": "ash"}
    store.event_types = TODAY
    assert await store.get_events("pikachu") == PIKACHU_NOW
    with pytest.raises(ValueError, match="declares 'POKEMON_CAUGHT' twice"):
        store.event_types = [POKEMON_CAUGHT, EventType("POKEMON_CAUGHT")]
    assert store.event_types == TODAY  # the refused declarations left the store as it was


def test_an_event_shows_its_schema_version_only_when_it_is_not_1() -> None:
    event = old(2, "POKEMON_CAUGHT", {"trainer": "ash"})
    assert repr(event) == (
        "EventDetail(aggregate_id='pikachu', version=2, type='POKEMON_CAUGHT', "
        "timestamp='2023-02-01T00:00:00.000Z', payload={'trainer': 'ash'}, metadata=None)"
    )
    assert repr(replace(event, schema_version=3)).endswith(", metadata=None, schema_version=3)")
    assert event != replace(event, schema_version=3)
    assert "schema_version" not in event_html(event)
    assert "<th style='text-align:left'>schema_version</th><td>3</td>" in event_html(
        replace(event, schema_version=3)
    )


# -- upcasting one event -----------------------------------------------------------------------


def test_an_old_event_goes_through_the_whole_chain_and_a_current_one_through_nothing() -> None:
    store = pokemons()
    caught = PIKACHU_THEN[1]
    assert store.upcast(caught) == [PIKACHU_NOW[2]]
    assert store.upcast(caught_v1_to_v2(caught)) == [PIKACHU_NOW[2]]
    current = PIKACHU_NOW[2]
    assert store.upcast(current)[0] is current
    assert caught.payload == {"trainer": "ash"}  # the upcasters built new payloads


def test_a_split_gives_parts_that_share_the_stored_event_and_differ_by_type() -> None:
    parts = pokemons().upcast(PIKACHU_THEN[0])
    assert parts == PIKACHU_NOW[:2]
    assert {(part.aggregate_id, part.version, part.timestamp) for part in parts} == {
        ("pikachu", 1, "2023-01-01T00:00:00.000Z")
    }
    plain = old(1, "POKEMON_APPEARED", {"name": "Eevee"}, aggregate_id="eevee")
    assert pokemons().upcast(plain) == [replace(plain, schema_version=2)]


def test_a_part_of_another_type_is_brought_to_its_own_current_version() -> None:
    """The split's upcaster, written when POKEMON_NICKNAMED was at version 1, never changes:
    when that type evolves, its own chain takes the part further."""

    def nickname_v1_to_v2(event: EventDetail) -> EventDetail:
        return replace(event, payload={"name": event.payload["nickname"]}, schema_version=2)

    nicknamed = EventType("POKEMON_NICKNAMED", schema_version=2, upcasters={1: nickname_v1_to_v2})
    store = pokemons(event_types=[POKEMON_APPEARED, POKEMON_CAUGHT, nicknamed])
    _, part = store.upcast(PIKACHU_THEN[0])
    assert (part.type, part.schema_version, part.payload) == ("POKEMON_NICKNAMED", 2, {"name": "Sparky"})


def test_an_event_of_a_type_the_store_does_not_declare_is_left_as_stored() -> None:
    unknown = old(3, "POKEMON_EVOLVED", {"into": "raichu"}, schema_version=5)
    assert pokemons().upcast(unknown) == [unknown]


def upcast_error(store: EventStore, event: EventDetail) -> UpcastError:
    with pytest.raises(UpcastError) as caught:
        store.upcast(event)
    return caught.value


def test_an_event_newer_than_the_code_says_which_release_can_read_it() -> None:
    error = upcast_error(pokemons(), old(2, "POKEMON_CAUGHT", {"trainer_id": "ash"}, schema_version=4))
    assert (error.event_type, error.aggregate_id, error.version, error.schema_version) == (
        "POKEMON_CAUGHT",
        "pikachu",
        2,
        4,
    )
    assert str(error) == (
        "Cannot read POKEMON_CAUGHT event 'pikachu' v2 (schema version 4): this code knows POKEMON_CAUGHT "
        "up to schema version 3, and no schema version 4. Hint: a newer release wrote it: read it with the "
        "release that declares EventType('POKEMON_CAUGHT', schema_version=4, upcasters=...), or declare that "
        "version here, with its upcaster"
    )
    zero = upcast_error(pokemons(), old(2, "POKEMON_CAUGHT", {"trainer": "ash"}, schema_version=0))
    assert "schema versions start at 1" in str(zero)


def store_with_upcaster(upcaster: Any, *more: EventType) -> EventStore:
    return pokemons(
        event_types=[EventType("POKEMON_CAUGHT", schema_version=2, upcasters={1: upcaster}), *more]
    )


@pytest.mark.parametrize(
    ("upcaster", "words"),
    [
        pytest.param(
            lambda e: e.payload, "returned {'trainer': 'ash'}: it must return the event", id="a payload"
        ),
        pytest.param(lambda e: None, "returned None", id="nothing"),
        pytest.param(lambda e: [], "returned []", id="an empty list"),
        pytest.param(lambda e: e, "in schema version 1, not 2", id="not bumped"),
        pytest.param(lambda e: replace(e, payload={"trainer_id": "ash"}), "not 2", id="not bumped, renamed"),
        pytest.param(lambda e: replace(e, schema_version=3), "in schema version 3, not 2", id="bumped twice"),
        pytest.param(lambda e: replace(e, version=3, schema_version=2), "changed version", id="moved"),
        pytest.param(
            lambda e: replace(e, aggregate_id="raichu", timestamp="now", schema_version=2),
            "changed aggregate_id and timestamp of the event",
            id="another event",
        ),
        pytest.param(
            lambda e: [replace(e, schema_version=2), replace(e, schema_version=2)],
            "several events of one type (['POKEMON_CAUGHT', 'POKEMON_CAUGHT'])",
            id="two parts of one type",
        ),
    ],
)
def test_an_upcaster_that_returns_the_wrong_thing_is_named_with_the_fix(upcaster: Any, words: str) -> None:
    error = upcast_error(store_with_upcaster(upcaster), PIKACHU_THEN[1])
    assert str(error).startswith(
        "Cannot read POKEMON_CAUGHT event 'pikachu' v2 (schema version 1): the POKEMON_CAUGHT upcaster 1 → 2 ("
    )
    assert words in str(error)
    assert "Hint: " in str(error) or "several events" in str(error)


def test_upcasters_that_loop_between_two_types_are_stopped() -> None:
    to_released = store_with_upcaster(
        lambda e: replace(e, type="POKEMON_RELEASED"),
        EventType(
            "POKEMON_RELEASED", schema_version=2, upcasters={1: lambda e: replace(e, type="POKEMON_CAUGHT")}
        ),
    )
    assert "the upcasters loop" in str(upcast_error(to_released, PIKACHU_THEN[1]))


def test_an_upcaster_error_propagates_as_it_is_with_a_note() -> None:
    def fails(event: EventDetail) -> EventDetail:
        raise KeyError("trainer")

    with pytest.raises(KeyError) as caught:
        store_with_upcaster(fails).upcast(PIKACHU_THEN[1])
    assert caught.value.__notes__ == [
        "while upcasting POKEMON_CAUGHT event 'pikachu' v2 (schema version 1) with the "
        "POKEMON_CAUGHT upcaster 1 → 2 (test_an_upcaster_error_propagates_as_it_is_with_a_note.<locals>.fails)"
    ]


# -- writing: always in the current shape -------------------------------------------------------


async def test_a_new_event_is_written_in_its_type_s_current_version_unless_said_otherwise() -> None:
    store = await store_with_history()
    caught = EventDetail(
        aggregate_id="eevee",
        version=2,
        type="POKEMON_CAUGHT",
        payload={"trainer_id": "misty", "ball": "great"},
    )
    stored = (await store.push_event(caught)).event
    assert stored.schema_version == 3
    explicit = replace(caught, aggregate_id="mew", schema_version=3)
    assert (await store.push_event(explicit)).event.schema_version == 3
    other = EventDetail(aggregate_id="mew", version=3, type="POKEMON_SEEN", schema_version=4)
    assert (await store.push_event(other)).event.schema_version == 4  # a type the store does not declare
    [raw] = await store.get_event_storage_adapter().get_events("eevee", event_store_id="POKEMONS")
    assert raw == stored


@pytest.mark.parametrize("schema_version", [2, 4])
async def test_an_event_in_another_version_than_the_current_one_is_refused_before_anything_is_stored(
    schema_version: int,
) -> None:
    store = pokemons()
    stale = EventDetail(
        aggregate_id="eevee",
        version=1,
        type="POKEMON_CAUGHT",
        payload={"trainer_id": "misty"},
        schema_version=schema_version,
    )
    with pytest.raises(InvalidEventError) as caught:
        await store.push_event(stale)
    assert caught.value.field == "schema_version"
    assert str(caught.value) == (
        f"POKEMON_CAUGHT is at schema version 3 in event store POKEMONS, but this event says "
        f"schema_version={schema_version}: new events are written in the current shape. Hint: build it in "
        "version 3 (or leave schema_version out); to store an old event, bring it to the current shape "
        "first with store.upcast(event)"
    )
    with pytest.raises(InvalidEventError, match="schema_version"):
        store.group_event(stale)
    assert await store.get_events("eevee") == []


async def test_a_group_writes_its_events_in_the_current_version() -> None:
    store = pokemons()
    appeared = EventDetail(
        aggregate_id="eevee", version=1, type="POKEMON_APPEARED", payload={"name": "Eevee"}
    )
    caught = EventDetail(
        aggregate_id="eevee",
        version=2,
        type="POKEMON_CAUGHT",
        payload={"trainer_id": "misty", "ball": "poke"},
    )
    results = await EventStore.push_event_group(store.group_event(appeared), store.group_event(caught))
    assert [result.event.schema_version for result in results] == [2, 3]
    assert results[0].next_aggregate == {"name": "Eevee", "version": 1}
    assert [e.schema_version for e in await store.get_events("eevee")] == [2, 3]


# -- reading: every path sees today's shape, the store keeps yesterday's --------------------------


async def test_get_events_and_get_aggregate_see_the_current_shape() -> None:
    store = await store_with_history()
    assert await store.get_events("pikachu") == PIKACHU_NOW
    result = await store.get_aggregate("pikachu")
    assert result.aggregate == {
        "name": "Pikachu",
        "nickname": "Sparky",
        "trainer_id": "ash",
        "ball": "poke",
        "version": 2,
    }
    assert result.events == PIKACHU_NOW and result.last_event == PIKACHU_NOW[-1]
    assert (await store.get_existing_aggregate("pikachu", max_version=1)).aggregate == {
        "name": "Pikachu",
        "nickname": "Sparky",
        "version": 1,
    }


async def test_limit_counts_stored_events_and_reverse_reverses_the_parts_too() -> None:
    store = await store_with_history()
    assert await store.get_events("pikachu", limit=1) == PIKACHU_NOW[:2]  # one stored event, two parts
    assert await store.get_events("pikachu", reverse=True) == PIKACHU_NOW[::-1]
    assert await store.get_events("pikachu", reverse=True, limit=1) == [PIKACHU_NOW[2]]
    assert await store.get_events("pikachu", min_version=2) == [PIKACHU_NOW[2]]


async def test_reading_never_rewrites_a_stored_row(tmp_path: Path) -> None:
    path = tmp_path / "pokedex.sqlite"

    def rows() -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as connection:
            found = connection.execute("SELECT version, type, payload, schema_version FROM events").fetchall()
        connection.close()
        return found

    with SQLiteEventStorageAdapter(path, clock=stepping_clock()) as adapter:
        store = await store_with_history(adapter)
        before = rows()
        assert before == [
            (
                1,
                "POKEMON_APPEARED",
                json.dumps({"name": "Pikachu", "nickname": "Sparky"}, separators=(",", ":")),
                1,
            ),
            (2, "POKEMON_CAUGHT", '{"trainer":"ash"}', 1),
        ]
        await store.get_aggregate("pikachu")
        await store.get_events("pikachu", reverse=True)
        await pour_event_store_events(event_store=store, message_channel=recording_bus(store)[0])
        await Relay(adapter, {"POKEMONS": recording_bus(store)[0]}).catch_up()
        assert rows() == before
        assert await adapter.get_events("pikachu", event_store_id="POKEMONS") == PIKACHU_THEN


def published_events(recorder: RecordingChannelAdapter) -> list[EventDetail]:
    return [message.event for message, _replay in recorder.published]


async def test_the_replay_functions_pour_the_current_shape() -> None:
    store = await store_with_history()
    bus, recorder = recording_bus(store)
    poured = await pour_aggregate_events(event_store=store, message_channel=bus, aggregate_id="pikachu")
    assert (poured.poured_event_count, poured.last_poured_event) == (3, PIKACHU_NOW[2])
    await pour_event_store_events(event_store=store, message_channel=bus)
    assert published_events(recorder) == PIKACHU_NOW * 2
    assert all(replay for _message, replay in recorder.published)


async def test_the_relay_publishes_the_current_shape_of_what_the_log_holds() -> None:
    store = await store_with_history()
    bus, recorder = recording_bus(store)
    relay = Relay(store.get_event_storage_adapter(), {"POKEMONS": bus}, checkpoints=InMemoryCheckpointStore())
    assert await relay.catch_up() == 2  # two log entries...
    assert published_events(recorder) == PIKACHU_NOW  # ...three messages
    assert relay.published == 3 and await relay.checkpoint() == 2
    logged = [entry.event for entry in await store.get_event_storage_adapter().read_log()]
    assert logged == PIKACHU_THEN  # the log itself holds what was stored


async def test_a_state_carrying_relay_sends_each_part_with_the_aggregate_at_the_stored_version() -> None:
    store = await store_with_history()
    bus, recorder = recording_bus(store, StateCarryingMessageBus)
    await Relay(store.get_event_storage_adapter(), {"POKEMONS": bus}).catch_up()  # folds along the log
    messages = [message for message, _replay in recorder.published]
    assert all(isinstance(message, StateCarryingMessage) for message in messages)
    after_v1 = (await store.get_aggregate("pikachu", max_version=1)).aggregate
    after_v2 = (await store.get_aggregate("pikachu", max_version=2)).aggregate
    assert [(m.event, m.aggregate) for m in messages] == [
        (PIKACHU_NOW[0], after_v1),
        (PIKACHU_NOW[1], after_v1),
        (PIKACHU_NOW[2], after_v2),
    ]


async def test_a_relay_after_a_restart_reads_the_aggregate_through_the_store_s_upcasters() -> None:
    store = await store_with_history()
    checkpoints = InMemoryCheckpointStore()
    await checkpoints.save("relay", 1)  # an earlier relay published version 1
    bus, recorder = recording_bus(store, StateCarryingMessageBus)
    await Relay(store.get_event_storage_adapter(), {"POKEMONS": bus}, checkpoints=checkpoints).catch_up()
    [(message, _replay)] = recorder.published
    assert message == StateCarryingMessage(
        "POKEMONS", PIKACHU_NOW[2], (await store.get_aggregate("pikachu")).aggregate
    )


async def test_the_connected_store_reads_and_publishes_the_current_shape() -> None:
    store = await store_with_history()
    bus, recorder = recording_bus(store, StateCarryingMessageBus)
    connected = ConnectedEventStore(store, bus)
    assert await connected.get_events("pikachu") == PIKACHU_NOW
    assert connected.upcast(PIKACHU_THEN[1]) == [PIKACHU_NOW[2]]
    released = EventDetail(
        aggregate_id="pikachu",
        version=3,
        type="POKEMON_CAUGHT",
        payload={"trainer_id": "gary", "ball": "ultra"},
    )
    result = await connected.push_event(released)  # no prev_aggregate: the aggregate is read back
    [(message, _replay)] = recorder.published
    assert message.event == result.event and result.event.schema_version == 3
    assert message.aggregate == {
        "name": "Pikachu",
        "nickname": "Sparky",
        "trainer_id": "gary",
        "ball": "ultra",
        "version": 3,
    }
    # a relay whose route names the connected store upcasts through it too
    relay_bus, relayed = recording_bus(connected)
    await Relay(store.get_event_storage_adapter(), {"POKEMONS": relay_bus}).catch_up()
    assert published_events(relayed) == [*PIKACHU_NOW, result.event]


async def test_a_relay_routed_to_a_store_of_one_s_own_without_upcast_publishes_as_stored() -> None:
    store = await store_with_history()

    class OwnStore:  # duck-typed, as require_event_store allows
        event_store_id = "POKEMONS"
        reducer = staticmethod(reducer)

    bus, recorder = recording_bus(OwnStore())
    await Relay(store.get_event_storage_adapter(), {"POKEMONS": bus}).catch_up()
    assert published_events(recorder) == PIKACHU_THEN


# -- on the wire ------------------------------------------------------------------------------------


def test_the_wire_carries_the_schema_version_and_leaves_it_out_while_it_is_1() -> None:
    current = NotificationMessage("POKEMONS", PIKACHU_NOW[2])
    data = encode_message(current)
    assert json.loads(data)["event"]["schema_version"] == 3
    assert decode_message(data) == current
    never_evolved = NotificationMessage("POKEMONS", PIKACHU_NOW[1])
    assert "schema_version" not in json.loads(encode_message(never_evolved))["event"]
    assert decode_message(encode_message(never_evolved)) == never_evolved
    fields = {field.name for field in dataclasses.fields(EventDetail)} - {"schema_version"}
    assert set(json.loads(encode_message(never_evolved))["event"]) == fields  # the earlier release's bytes


# -- with the other readers beyond Castore: snapshots and projections ---------------------------


async def test_a_snapshot_at_a_split_event_folds_its_parts_once() -> None:
    from castore_edu import EveryNEvents, InMemorySnapshotStore, SnapshotConfig

    store = await store_with_history()
    store.snapshots = SnapshotConfig(InMemorySnapshotStore(), reducer_version="today", policy=EveryNEvents(1))
    at_the_split = await store.get_aggregate("pikachu", max_version=1)  # its two parts; a snapshot at 1
    assert at_the_split.aggregate == {"name": "Pikachu", "nickname": "Sparky", "version": 1}
    read = await store.get_aggregate("pikachu")  # from the snapshot at version 1, split in two parts
    assert read.snapshot_version == 1
    assert read.events == [PIKACHU_NOW[2]]  # not the nickname part again
    assert read.aggregate == store.build_aggregate(PIKACHU_NOW)


async def test_a_projection_applies_every_part_of_a_split_at_the_entry_s_position(tmp_path: Path) -> None:
    from castore_edu import LoggedEvent, Projection, SQLiteEventStorageAdapter, SQLiteProjectionRunner

    with SQLiteEventStorageAdapter(tmp_path / "events.sqlite") as adapter:
        store = await store_with_history(adapter)
        applied: list[LoggedEvent] = []
        projection = Projection(
            "seen", event_stores=[store], apply=lambda connection, entry: applied.append(entry)
        )
        with SQLiteProjectionRunner(projection) as runner:
            assert await runner.run_until_caught_up() == 3
            assert await runner.checkpoint() == 2  # two stored events, three parts
    assert [entry.event for entry in applied] == PIKACHU_NOW
    assert [entry.position for entry in applied] == [1, 1, 2]
