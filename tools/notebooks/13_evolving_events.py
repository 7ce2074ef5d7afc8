# %% [markdown]
# # 13 · Events that evolve: reading last year's events with today's code
#
# **Time:** about 35 minutes. **Do it after** notebook 08 (the relay).
#
# **Learning objectives.** By the end of this notebook you will be able to:
#
# 1. declare that an event type changed shape — a schema version and one *upcaster* per older
#    version — and read old events in today's shape, for a renamed payload field and for one event
#    split into two;
# 2. show that the stored rows never change, and that every reader — `get_events`,
#    `get_aggregate`, a replay, the relay — sees today's shape only;
# 3. explain what never to do: `UPDATE` stored events, or put business logic in an upcaster;
# 4. test upcasters with a table of old events and the current events they must become.
#
# An event is history: once stored, it is never changed. The code that reads it changes all the
# time. This notebook opens a Pokédex written by last year's release, and reads it with today's.

# %% [markdown]
# ## 1. Last year's Pokédex
#
# Last year's release wrote a catch as `{"trainer": "ash"}`. It also let a starter Pokémon, handed
# over by Professor Oak, *appear already caught*: one `POKEMON_APPEARED` event with a
# `"caught_by"` field. Its events are in an SQLite file. Every event carries the **schema
# version** of its shape (`EventDetail.schema_version`, a column of the table): these are all in
# version 1, as that release knew no other.

# %%
import sqlite3
import tempfile
from pathlib import Path

from castore_edu import EventDetail, SQLiteEventStorageAdapter, stepping_clock
from castore_edu.course.pokedex import pokemons_event_store

temporary = tempfile.TemporaryDirectory()
database = Path(temporary.name) / "pokedex.sqlite3"
adapter = SQLiteEventStorageAdapter(database, clock=stepping_clock(start="2023-06-01T00:00:00.000Z"))
last_year = pokemons_event_store(adapter)


def event(aggregate_id, version, type, payload=None, **fields):
    return EventDetail(aggregate_id=aggregate_id, version=version, type=type, payload=payload, **fields)


for old in [
    event("pikachu", 1, "POKEMON_APPEARED", {"name": "Pikachu", "level": 5}),
    event("pikachu", 2, "POKEMON_CAUGHT", {"trainer": "ash"}),
    event("pikachu", 3, "POKEMON_LEVELED_UP"),
    event("eevee", 1, "POKEMON_APPEARED", {"name": "Eevee", "level": 5, "caught_by": "gary"}),
]:
    await last_year.push_event(old)


def stored_rows():
    """The events table itself, read with sqlite3: what is on disk, not what castore_edu shows."""
    connection = sqlite3.connect(database)
    try:
        return connection.execute(
            "SELECT position, aggregate_id, version, type, payload, schema_version FROM events ORDER BY position"
        ).fetchall()
    finally:
        connection.close()


rows_then = stored_rows()
for row in rows_then:
    print(row)
assert [row[-1] for row in rows_then] == [1, 1, 1, 1]

# %% [markdown]
# ## 2. Today's code cannot read them
#
# Today's reducer is the course's `pokemon_reducer`: a catch says `payload["trainer_id"]`, and a
# catch is always an event of its own. Reading Pikachu with it fails:

# %% tags=["raises-exception"]
today_without_upcasters = pokemons_event_store(adapter)
await today_without_upcasters.get_aggregate("pikachu")

# %%
import sys

error = sys.last_value
assert isinstance(error, KeyError) and error.args == ("trainer_id",)
eevee = (await today_without_upcasters.get_aggregate("eevee")).aggregate
assert eevee.status == "wild"  # worse: no error at all, and Gary's Eevee is wild
eevee

# %% [markdown]
# Two tempting fixes, both wrong: teach the reducer every shape an event ever had (each reader,
# for ever, then carries last year's code), or rewrite the stored rows (section 7 shows what that
# breaks). The third way: the **event type** says how an old shape becomes the current one.
#
# ## 3. A renamed field: a schema version and an upcaster
#
# `EventType("POKEMON_CAUGHT", schema_version=2, upcasters={1: caught_v1_to_v2})` says: today's
# shape is version 2, and `caught_v1_to_v2` turns a version 1 event into version 2. An upcaster
# takes an event and returns a **new** one (`dataclasses.replace` keeps `aggregate_id`, `version`
# and `timestamp`, which it must never change), keeps the fields it does not know, and says which
# version it made (`schema_version=2`). The store runs it on every read: `store.upcast(event)`.

# %%
from dataclasses import replace

from castore_edu import EventStore, EventType
from castore_edu.course.pokedex import POKEMON_LEVELED_UP, pokemon_reducer


def caught_v1_to_v2(event):
    """Version 1 said "trainer", version 2 says "trainer_id"; every other field stays as it was."""
    payload = {("trainer_id" if key == "trainer" else key): value for key, value in event.payload.items()}
    return replace(event, payload=payload, schema_version=2)


POKEMON_CAUGHT = EventType("POKEMON_CAUGHT", schema_version=2, upcasters={1: caught_v1_to_v2})
renaming = EventStore(
    event_store_id="POKEMONS",
    event_types=[POKEMON_CAUGHT],
    reducer=pokemon_reducer,
    event_storage_adapter=adapter,
)
[stored_catch] = await adapter.get_events("pikachu", event_store_id="POKEMONS", min_version=2, max_version=2)
print("stored:", stored_catch)
print("read:  ", renaming.upcast(stored_catch)[0])
pikachu = (await renaming.get_aggregate("pikachu")).aggregate
assert (pikachu.status, pikachu.trainer_id, pikachu.level) == ("caught", "ash", 6)
pikachu

# %% [markdown]
# A chain grows one link per change: `schema_version=3, upcasters={1: v1_to_v2, 2: v2_to_v3}`
# reads a version 1 event through both. A chain with a gap is refused when the type is built,
# not when an old event is read some day:

# %% tags=["raises-exception"]
EventType("POKEMON_CAUGHT", schema_version=3, upcasters={1: caught_v1_to_v2})

# %%
error = sys.last_value
assert isinstance(error, ValueError)
assert "misses the upcaster from version 2 (2 → 3)" in str(error)

# %% [markdown]
# ## 4. One event split into two
#
# Eevee's old event holds two facts: it appeared, and Gary caught it. Today each fact has a type
# of its own, so version 2 of `POKEMON_APPEARED` says only that it appeared, and its upcaster
# returns **two** events: the appearance, and a `POKEMON_CAUGHT` in today's shape.
#
# Both parts keep the stored event's `version` (1) and `timestamp`. A version numbers what is
# *stored*: the next push takes version 2, so a part cannot have a version of its own. The parts
# are told apart by their type (the store refuses two parts of one type). A part of another type
# is then brought to *that* type's current version by its own chain, so this upcaster never
# needs to change when `POKEMON_CAUGHT` evolves again.


# %%
def appeared_v1_to_v2(event):
    """Version 1 of a starter's appearance also said who received it: two facts, two events today."""
    payload = {key: value for key, value in event.payload.items() if key != "caught_by"}
    appeared = replace(event, payload=payload, schema_version=2)
    if "caught_by" not in event.payload:
        return appeared
    caught = replace(event, type="POKEMON_CAUGHT", payload={"trainer_id": event.payload["caught_by"]})
    return [appeared, replace(caught, schema_version=2)]


POKEMON_APPEARED = EventType("POKEMON_APPEARED", schema_version=2, upcasters={1: appeared_v1_to_v2})
TODAY = [POKEMON_APPEARED, POKEMON_CAUGHT, POKEMON_LEVELED_UP]
pokemons = EventStore(
    event_store_id="POKEMONS", event_types=TODAY, reducer=pokemon_reducer, event_storage_adapter=adapter
)
for current in await pokemons.get_events("eevee"):
    print(current)
eevee = (await pokemons.get_aggregate("eevee")).aggregate
assert (eevee.version, eevee.status, eevee.trainer_id) == (1, "caught", "gary")
assert len(await pokemons.get_events("eevee", limit=1)) == 2  # limit counts stored events
eevee

# %% [markdown]
# The price of a split: `(event_store_id, aggregate_id, version)`, the key an idempotent consumer
# remembers (notebook 08), now names the *stored* event, and both parts have it. A consumer that
# skips keys it has seen must add the type to its key for split events, or it drops the second
# part as a duplicate. When that matters, keep the split out of the events you relay, or model it
# as one event of today's shape that carries both facts.

# %% [markdown]
# ## 5. New events in today's shape; old rows as they were
#
# A store writes every new event in its type's current version: leave `schema_version` out and
# the store fills it in (an explicit older version is refused: new events are written in today's
# shape only). Reading changed nothing on disk:

# %%
staryu = await pokemons.push_event(event("staryu", 1, "POKEMON_APPEARED", {"name": "Staryu", "level": 8}))
levelled = await pokemons.push_event(event("eevee", 2, "POKEMON_LEVELED_UP"), prev_aggregate=eevee)
assert staryu.event.schema_version == 2  # POKEMON_APPEARED is at version 2 today
assert levelled.event.schema_version == 1 and levelled.next_aggregate.level == 6  # never evolved
rows_now = stored_rows()
for row in rows_now:
    print(row)
assert rows_now[:4] == rows_then  # the old rows, byte for byte

# %% [markdown]
# ## 6. Every reader sees today's shape
#
# `get_aggregate` folds what `get_events` returns, and the replay functions of notebook 03 read
# through `get_events` too. The relay reads the adapter's ordered log, which holds events as
# they were stored; before it publishes one, it runs it through the upcasters of the store it is
# routed from. So a relayed message, a replayed one and a read all show the same events:

# %%
from castore_edu import InMemoryMessageBusAdapter, NotificationMessageBus, Relay, pour_event_store_events
from castore_edu.course.scenes import castore_tasks, listening_bus

live, relayed = listening_bus(NotificationMessageBus, "POKEMON_NEWS", [pokemons])
relay = Relay(adapter, {"POKEMONS": live})
assert await relay.catch_up() == 6  # six stored events...
await live.message_channel_adapter.wait_idle()

history = NotificationMessageBus(message_bus_id="POKEMON_HISTORY", source_event_stores=[pokemons])
replayed = []


async def keep(message, context):
    replayed.append(message)


InMemoryMessageBusAdapter.attach_to(history).on({"on_replay": True}, keep)
await pour_event_store_events(event_store=pokemons, message_channel=history)
await history.message_channel_adapter.wait_idle()


def by_event(events):
    """Events in one order, whatever order they were published in (log, timestamps...)."""
    return sorted(events, key=lambda e: (e.aggregate_id, e.version, e.type))


read = [e for pokemon_id in ("pikachu", "eevee", "staryu") for e in await pokemons.get_events(pokemon_id)]
assert by_event(m.event for m in relayed) == by_event(m.event for m in replayed) == by_event(read)
assert len(relayed) == 7
for message in relayed:  # ...seven messages, all in today's shape
    e = message.event
    print(f"{e.aggregate_id:8} v{e.version} {e.type:18} schema {e.schema_version}  {e.payload}")

# %% [markdown]
# ## 7. What never to do
#
# ### `UPDATE` stored events
#
# "Why not migrate the table once and be done?" Here is a migration: one `UPDATE` that rewrites the
# old catches into today's shape. A read model keeps who owns each Pokémon, from the relay's
# messages; the migration has a slip — it reads the *new* field name, which old rows do not have.

# %%
owners = {
    m.event.aggregate_id: m.event.payload["trainer_id"] for m in relayed if m.event.type == "POKEMON_CAUGHT"
}
assert owners == {"pikachu": "ash", "eevee": "gary"}

connection = sqlite3.connect(database)
connection.execute(  # DON'T: history rewritten in place (and a slip: '$.trainer_id' instead of '$.trainer')
    "UPDATE events SET payload = json_object('trainer_id', json_extract(payload, '$.trainer_id')),"
    " schema_version = 2 WHERE type = 'POKEMON_CAUGHT' AND schema_version = 1"
)
connection.commit()
connection.close()

pikachu = (await pokemons.get_aggregate("pikachu")).aggregate
assert pikachu.trainer_id is None  # Ash is gone: the only copy of the fact was overwritten
assert await relay.step() == 0 and await relay.lag() == 0  # nobody is told: the row kept its place in the log
assert owners["pikachu"] == "ash"  # the read model still says Ash: two truths, and no error anywhere
print("store:", pikachu.trainer_id, "| read model:", owners["pikachu"])

# %% [markdown]
# Everything that read the event before the `UPDATE` — the relay, its consumers, a backup, an
# auditor — saw a fact that the store no longer holds, and the log cannot tell them: the row kept
# its position, so no relay publishes it again. And a slip in a migration destroys the only copy
# of the fact, while a slip in an upcaster is fixed by fixing the code: the stored event still
# says what was written. Upcasters cost a function call per old event read; an `UPDATE` costs the
# history.
#
# ### Business logic in an upcaster
#
# An upcaster changes the *shape* of a fact, never the fact. Say today's game caps levels, and the
# cap goes into the upcaster "while we are at it":

# %%
rules = {"level_cap": 100}  # today's rules, which will change


def appeared_with_a_rule(event):  # DON'T: a decision in an upcaster
    payload = {key: value for key, value in event.payload.items() if key != "caught_by"}
    payload["level"] = min(payload["level"], rules["level_cap"])
    return replace(event, payload=payload, schema_version=2)


ruled = EventStore(
    event_store_id="POKEMONS",
    event_types=[EventType("POKEMON_APPEARED", schema_version=2, upcasters={1: appeared_with_a_rule})],
    reducer=pokemon_reducer,
    event_storage_adapter=adapter,
)
before = (await ruled.get_aggregate("pikachu", max_version=1)).aggregate.level
rules["level_cap"] = 3  # the game changes its rules; nothing is written
after = (await ruled.get_aggregate("pikachu", max_version=1)).aggregate.level
staryu_level = (await ruled.get_aggregate("staryu")).aggregate.level
assert (before, after, staryu_level) == (5, 3, 8)
print(
    f"Pikachu appeared at level {before}, read yesterday; at level {after}, read today; Staryu, new: {staryu_level}"
)

# %% [markdown]
# Nothing was stored, yet Pikachu's past changed: yesterday's read and today's disagree, a replay
# rebuilds another read model, and Staryu, written in version 2, is not capped at all. An upcaster
# must be a pure function of the old event: no rules, no clock, no reads of other aggregates. A
# rule is a decision, and decisions belong in commands, which write **new** events (a
# `POKEMON_LEVEL_CAPPED`, say) that every reader then sees.

# %% [markdown]
# ## 8. Testing upcasters with old events
#
# An upcaster is a plain function, so it is tested like one: a table of old events, as they were
# stored, and the current events each must become. Keep the real old shapes in the table —
# including the odd ones (a field the upcaster does not know must survive) — and check that the
# old event itself is left alone. (In a project this is a `pytest.mark.parametrize`; see
# `tests/test_upcasting.py`.)

# %%
import copy

CASES = [  # (stored by last year's code, what today's code must read)
    (
        event("pikachu", 2, "POKEMON_CAUGHT", {"trainer": "ash"}),
        [event("pikachu", 2, "POKEMON_CAUGHT", {"trainer_id": "ash"}, schema_version=2)],
    ),
    (
        event("psyduck", 2, "POKEMON_CAUGHT", {"trainer": "misty", "ball": "lure"}),
        [event("psyduck", 2, "POKEMON_CAUGHT", {"trainer_id": "misty", "ball": "lure"}, schema_version=2)],
    ),
    (
        event("pikachu", 1, "POKEMON_APPEARED", {"name": "Pikachu", "level": 5}),
        [event("pikachu", 1, "POKEMON_APPEARED", {"name": "Pikachu", "level": 5}, schema_version=2)],
    ),
    (
        event("eevee", 1, "POKEMON_APPEARED", {"name": "Eevee", "level": 5, "caught_by": "gary"}),
        [
            event("eevee", 1, "POKEMON_APPEARED", {"name": "Eevee", "level": 5}, schema_version=2),
            event("eevee", 1, "POKEMON_CAUGHT", {"trainer_id": "gary"}, schema_version=2),
        ],
    ),
    (  # already current: returned as it is
        event("onix", 2, "POKEMON_CAUGHT", {"trainer_id": "brock"}, schema_version=2),
        [event("onix", 2, "POKEMON_CAUGHT", {"trainer_id": "brock"}, schema_version=2)],
    ),
]
for old, expected in CASES:
    untouched = copy.deepcopy(old)
    assert pokemons.upcast(old) == expected, old
    assert old == untouched, f"the upcaster changed the old event it was given: {old}"
print(f"{len(CASES)} old events read as today's events")

# %% [markdown]
# The other edge: an event in a version *newer* than the code knows (a newer release wrote it,
# and an older one reads it) is refused with an error that names the type, both versions and the
# fix, rather than read wrong:

# %% tags=["raises-exception"]
await adapter.push_event(
    event("mew", 1, "POKEMON_APPEARED", {"species": "Mew", "level": 30}, schema_version=3),
    event_store_id="POKEMONS",
)
await pokemons.get_events("mew")

# %%
from castore_edu import UpcastError

error = sys.last_value
assert isinstance(error, UpcastError)
assert (error.event_type, error.aggregate_id, error.schema_version) == ("POKEMON_APPEARED", "mew", 3)
assert "knows POKEMON_APPEARED up to schema version 2" in str(error)
adapter.close()
temporary.cleanup()
assert castore_tasks() == []  # nothing left running (notebook 03, "Leaving nothing behind")

# %% [markdown]
# ## Recap
#
# - Every event carries the schema version of its shape; an `EventType` declares its current
#   version and one upcaster per older version, and a chain with a gap is refused when it is built.
# - An upcaster returns a new event in the next version (`replace(event, ..., schema_version=n + 1)`),
#   keeps the fields it does not know, and never changes `aggregate_id`, `version` or `timestamp`.
#   A split returns several events, of different types, sharing the stored event's version.
# - The store writes new events in the current version and reads every event through the chain:
#   `get_events`, `get_aggregate`, the replay functions and the relay show today's shape only.
#   The stored rows never change.
# - Never `UPDATE` stored events: readers that saw them are never told, and a slip destroys the
#   only copy. Never put business logic in an upcaster: the past would change with today's rules.
# - Test upcasters with a table of real old events and the current events they must become.
#
# *When this notebook was last built it ran in {{build_time}} in a fresh kernel.*
#
# **Further reading**
#
# - Greg Young, *Versioning in an Event Sourced System* (upcasting, splitting events, why not to
#   rewrite): <https://leanpub.com/esversioning>
# - Axon Framework, *Event versioning* (upcasters in a chain, one event into several):
#   <https://docs.axoniq.io/axon-framework-reference/development/events/event-versioning>
# - Castore, events and event types (`parseEventDetail`, which its event store never calls):
#   <https://castore-dev.github.io/castore/docs/event-sourcing/events/>
# - In this package: `castore_edu/core/upcasting.py`, `castore_edu/core/events.py` (`EventType`),
#   `castore_edu/reliability/relay.py`, docs/api.md §18.
#
# Now do exercise 13 in `exercises/08_evolving_events.ipynb` (an upcaster of your own, checked
# against old events).
