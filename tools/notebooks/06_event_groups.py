# %% [markdown]
# # 06 · Event groups: one change, several aggregates
#
# **Time:** about 25 minutes.
#
# **Learning objectives.** By the end of this notebook you will be able to:
#
# 1. push events of several aggregates — in several stores — all or nothing, with
#    `EventStore.push_event_group`;
# 2. show that a conflict anywhere in a group rolls back every event of it, in memory and on SQLite;
# 3. publish grouped events through connected stores, and count what `prev_aggregate` saves there too.
#
# When Ash catches a Pokémon, two aggregates change: the Pokémon is caught, and Ash owns one more
# Pokémon. Pushed one after the other, a failure between the two pushes would leave a caught
# Pokémon that no trainer owns. A **group** makes the two events one write.

# %% [markdown]
# ## 1. An atomic catch
#
# `store.group_event(event)` prepares an event without storing it; `EventStore.push_event_group`
# (a static method: a group is not one store's business) stores them all. The results come back
# in the order of the grouped events, and events without a timestamp share one stamp — they
# happened together.

# %%
from castore_edu import EventStore
from castore_edu.course.pokedex import (
    pokemon_appeared,
    pokemon_caught,
    pokemon_leveled_up,
    tell_the_story,
    trainer_caught_pokemon,
)
from castore_edu.course.scenes import opening_scene

pokedex = await opening_scene()
pokemons, trainers = pokedex.pokemons, pokedex.trainers

caught, recorded = await EventStore.push_event_group(
    pokemons.group_event(pokemon_caught("charmander", version=2, trainer_id="ash")),
    trainers.group_event(trainer_caught_pokemon("ash", version=3, pokemon_id="charmander")),
)
assert caught.event.aggregate_id == "charmander" and recorded.event.aggregate_id == "ash"
assert caught.event.timestamp == recorded.event.timestamp
ash = (await trainers.get_aggregate("ash")).aggregate
assert ash.pokemon_ids == ("pikachu", "charmander")
ash

# %% [markdown]
# ## 2. A conflict in the middle rolls everything back
#
# Eevee appears. A command, working from an old read of Ash (version 2), builds a group of three
# events: Eevee is caught, Ash records it — at version 3, which is already taken — and Pikachu
# levels up to celebrate. The middle event conflicts, so **none** of the three is stored.

# %%
from castore_edu import EventAlreadyExistsError
from castore_edu.course.widgets import load_histories

await pokemons.push_event(pokemon_appeared("eevee", name="Eevee", level=4))


async def every_event(pokedex):
    """Every event of every aggregate of both stores, read as the explorer of notebook 02 reads them."""
    return (await load_histories(*pokedex.stores)).histories


def catch_eevee_group(pokedex, ash_version):
    return [
        pokedex.pokemons.group_event(pokemon_caught("eevee", version=2, trainer_id="ash")),
        pokedex.trainers.group_event(trainer_caught_pokemon("ash", version=ash_version, pokemon_id="eevee")),
        pokedex.pokemons.group_event(pokemon_leveled_up("pikachu", version=5)),
    ]


async def refused_group(pokedex, ash_version):
    """Push the group, expecting a conflict; check that not one of its events was stored."""
    before = await every_event(pokedex)
    try:
        await EventStore.push_event_group(*catch_eevee_group(pokedex, ash_version))
    except EventAlreadyExistsError as error:
        assert await every_event(pokedex) == before
        return error
    raise AssertionError(f"version {ash_version} of ash should be taken")


print("group refused:", await refused_group(pokedex, ash_version=3))
assert (await pokemons.get_aggregate("eevee")).aggregate.status == "wild"

# %% [markdown]
# The first event *had* been written when the conflict was found; the in-memory adapter undid
# it (see `push_event_group` in `castore_edu/storage/in_memory.py`; Castore's in-memory adapter can leave
# traces behind here, castore_edu leaves none). With a fresh read of Ash the same group goes through:

# %%
fresh_ash = (await trainers.get_aggregate("ash")).aggregate
await EventStore.push_event_group(*catch_eevee_group(pokedex, ash_version=fresh_ash.version + 1))
assert (await trainers.get_aggregate("ash")).aggregate.pokemon_ids == ("pikachu", "charmander", "eevee")
assert (await pokemons.get_aggregate("pikachu")).aggregate.version == 5

# %% [markdown]
# ### The same on SQLite: one transaction
#
# On SQLite the whole group is one database transaction (`castore_edu/storage/sqlite.py`): the unique
# constraint refuses the middle insert, and the rollback takes the first one with it. Both
# stores must live in the same database file for that — `sqlite_pokedex` puts them there.

# %%
import tempfile
from pathlib import Path

from castore_edu.course.pokedex import sqlite_pokedex

temporary = tempfile.TemporaryDirectory()
on_disk = sqlite_pokedex(Path(temporary.name) / "pokedex.sqlite3")
await tell_the_story(on_disk)
await on_disk.pokemons.push_event(pokemon_appeared("eevee", name="Eevee", level=4))

print(
    "SQLite refused the group too:", await refused_group(on_disk, ash_version=2)
)  # Ash is at version 2 here

# %% [markdown]
# A group is one write to one storage. Mixing adapters that cannot share a transaction —
# in memory and SQLite, here — is refused before anything is written. (The second cell below is
# *expected* to fail; the cell after it checks the error.)

# %%
before = await every_event(on_disk)
mixed = [
    on_disk.pokemons.group_event(pokemon_caught("eevee", version=2, trainer_id="ash")),
    trainers.group_event(trainer_caught_pokemon("ash", version=5, pokemon_id="eevee")),
]

# %% tags=["raises-exception"]
await EventStore.push_event_group(*mixed)

# %%
import sys

error = sys.last_value
assert isinstance(error, ValueError)
assert "event #1 is not stored in the same SQLite database" in str(error)  # it names the file too
assert await every_event(on_disk) == before

on_disk.close()
temporary.cleanup()
assert not Path(temporary.name).exists()

# %% [markdown]
# ## 3. Groups through connected stores
#
# Grouped events made by a `ConnectedEventStore` are published once the whole group is stored,
# each on its own store's channel (notebook 04, claim 4). Here both stores publish to one
# state-carrying bus, and their adapters count reads (`SimulatedLatencyAdapter` with no latency).
#
# Without `prev_aggregate`, each state-carrying message needs its aggregate read back: one read
# per store. With it, none.

# %%
from castore_edu import ConnectedEventStore, InMemoryMessageBusAdapter, StateCarryingMessageBus
from castore_edu.testing.latency import CallCounts, SimulatedLatencyAdapter

pokedex = await opening_scene()
pokemons, trainers = pokedex.pokemons, pokedex.trainers
for store in pokedex.stores:
    store.event_storage_adapter = SimulatedLatencyAdapter(store.event_storage_adapter, latency_ms=0)

bus = StateCarryingMessageBus(message_bus_id="POKEDEX_STATE", source_event_stores=[pokemons, trainers])
bus_adapter = InMemoryMessageBusAdapter.attach_to(bus)
received = []


async def read_model(message, context):
    received.append(message)


bus_adapter.on({}, read_model)
connected_pokemons, connected_trainers = (
    ConnectedEventStore(pokemons, bus),
    ConnectedEventStore(trainers, bus),
)


def reset_all_counts():
    for store in pokedex.stores:
        store.event_storage_adapter.reset_counts()


def all_counts():
    return {store.event_store_id: store.event_storage_adapter.counts for store in pokedex.stores}


reset_all_counts()
await EventStore.push_event_group(
    connected_pokemons.group_event(pokemon_caught("charmander", version=2, trainer_id="ash")),
    connected_trainers.group_event(trainer_caught_pokemon("ash", version=3, pokemon_id="charmander")),
)
await bus_adapter.wait_idle()
without_prev = all_counts()

for store_id, counts in without_prev.items():
    print(f"{store_id:8}", counts)
assert without_prev == {
    "POKEMONS": CallCounts(reads=1, events_read=2, writes=1, events_written=2),  # the group is one write
    "TRAINERS": CallCounts(reads=1, events_read=3),
}
assert sorted((m.event_store_id, m.aggregate.version) for m in received) == [("POKEMONS", 2), ("TRAINERS", 3)]

# %% [markdown]
# (The group's single write went through the first grouped event's adapter, so it is counted
# once, on `POKEMONS`.) Now a wild Bulbasaur appears, and Ash catches it too — this time with
# `prev_aggregate`: the aggregates a catch command read to decide.

# %%
await pokemons.push_event(pokemon_appeared("bulbasaur", name="Bulbasaur", level=5))  # plain store: no message
bulbasaur = (await pokemons.get_aggregate("bulbasaur")).aggregate
ash = (await trainers.get_aggregate("ash")).aggregate
received.clear()
reset_all_counts()

bulbasaur_result, ash_result = await EventStore.push_event_group(
    connected_pokemons.group_event(
        pokemon_caught("bulbasaur", version=2, trainer_id="ash"), prev_aggregate=bulbasaur
    ),
    connected_trainers.group_event(
        trainer_caught_pokemon("ash", version=4, pokemon_id="bulbasaur"), prev_aggregate=ash
    ),
)
await bus_adapter.wait_idle()
with_prev = all_counts()

for store_id, counts in with_prev.items():
    print(f"{store_id:8}", counts)
assert with_prev == {"POKEMONS": CallCounts(writes=1, events_written=2), "TRAINERS": CallCounts()}
messages = {m.event_store_id: m.aggregate for m in received}
assert messages == {"POKEMONS": bulbasaur_result.next_aggregate, "TRAINERS": ash_result.next_aggregate}
assert (messages["POKEMONS"].status, messages["POKEMONS"].trainer_id) == ("caught", "ash")
assert messages["TRAINERS"].pokemon_ids == ("pikachu", "charmander", "bulbasaur")

# %% [markdown]
# Finally, a group that fails publishes nothing: messages go out only after the whole group is
# stored.

# %%
received.clear()
try:
    await EventStore.push_event_group(
        connected_pokemons.group_event(pokemon_leveled_up("charmander", version=3)),
        connected_trainers.group_event(trainer_caught_pokemon("ash", version=4, pokemon_id="mew")),  # taken
    )
except EventAlreadyExistsError:
    pass
else:
    raise AssertionError("version 4 of ash is taken")
await bus_adapter.wait_idle()
assert received == []
assert (await pokemons.get_aggregate("charmander")).aggregate.version == 2  # its level-up rolled back

# %%
from castore_edu.course.scenes import castore_tasks

assert castore_tasks() == []  # nothing left running (notebook 03, "Leaving nothing behind")

# %% [markdown]
# ## Recap
#
# - `EventStore.push_event_group(*grouped_events)` stores events of several aggregates and
#   stores as one write: all or nothing. Results come back in input order, with one shared stamp.
# - A conflict anywhere rolls back every event of the group — in memory by undoing, on SQLite
#   by one transaction. Adapters that cannot share a transaction cannot share a group.
# - Connected stores publish grouped events after the whole group is stored, each on its own
#   channel; `group_event(..., prev_aggregate=...)` spares a state-carrying channel its reads.
# - Use groups sparingly: an aggregate is a consistency boundary, and a group that spans many
#   of them is a sign that the boundaries may be drawn in the wrong place.
#
# *When this notebook was last built it ran in {{build_time}} in a fresh kernel.*
#
# **Further reading**
#
# - Castore, joining data (event groups): <https://castore-dev.github.io/castore/docs/event-sourcing/joining-data/>
# - Castore, connected event store (groups and `prevAggregate`):
#   <https://castore-dev.github.io/castore/docs/reacting-to-events/connected-event-store/>
# - Martin Fowler, *DDD Aggregate*: <https://martinfowler.com/bliki/DDD_Aggregate.html>
# - In this package: `castore_edu/core/event_store.py` (`push_event_group`), `castore_edu/storage/in_memory.py`,
#   `castore_edu/storage/sqlite.py`.
#
# Now do exercises 5–6 in `exercises/03_groups_and_replay.ipynb` (a catch pushed as a group, and
# a read model built by replay, notebook 03 section 6), then go on to **07 · Failure modes** —
# what the connected event store cannot promise.
