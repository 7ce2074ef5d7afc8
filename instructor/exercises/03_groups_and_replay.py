# %% [markdown]
# # Exercises 5–6 · Event groups and replay
#
# **Time:** about 25 minutes. **Do them after** notebook 06 (and section 6 of notebook 03).
#
# **Learning objectives.** By the end of these exercises you will have:
#
# 1. stored a change of two aggregates, in two stores, all or nothing;
# 2. built a read model from scratch by replaying an event store into a bus.
#
# **How the exercises work.** Replace each `raise NotImplementedError(...)` line with your code,
# run the cell, then run the **check** cell below it: `✅ Exercise N passed`, or a short *Not yet*
# box with what is not right yet and a hint. Checks never show a solution; run them as often as
# you like.

# %% [markdown]
# ## Exercise 5 · Push an event group
#
# When a trainer catches a Pokémon, two aggregates change: the Pokémon is caught
# (`POKEMON_CAUGHT`), and the trainer owns one more Pokémon (`TRAINER_CAUGHT_POKEMON`).
#
# **Task.** Write `catch(pokemons, trainers, pokemon_id, trainer_id)`. It stores both events, each
# at its aggregate's next version, **all or nothing**. If either event is refused — another writer
# took that version meanwhile — nothing may be stored, and the `EventAlreadyExistsError` must reach
# the caller.
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# Notebook 06, section 1: `store.group_event(event)` prepares an event without storing it;
# `EventStore.push_event_group(...)` stores a whole group, or none of it.
# </details>
#
# **Check yourself.** The check lets Ash try to catch Eevee while a rival writer stores a new event
# of Ash right after your code reads him; then Ash catches Charmander, undisturbed.

# %%
from castore_edu import EventStore
from castore_edu.course.pokedex import pokemon_caught, trainer_caught_pokemon


async def catch(pokemons: EventStore, trainers: EventStore, pokemon_id: str, trainer_id: str) -> None:
    """Store, all or nothing, that `trainer_id` caught `pokemon_id`."""
    ### BEGIN SOLUTION (hint: read both aggregates, group one event of each store, push the group)
    pokemon = (await pokemons.get_existing_aggregate(pokemon_id)).aggregate
    trainer = (await trainers.get_existing_aggregate(trainer_id)).aggregate
    caught = pokemon_caught(pokemon_id, version=pokemon.version + 1, trainer_id=trainer_id)
    recorded = trainer_caught_pokemon(trainer_id, version=trainer.version + 1, pokemon_id=pokemon_id)
    await EventStore.push_event_group(pokemons.group_event(caught), trainers.group_event(recorded))
    ### END SOLUTION


# %%
from castore_edu.course.exercises import check_catch

await check_catch(catch)

# %% [markdown]
# ## Exercise 6 · Build a read model by replaying the store
#
# A new service needs the level of every Pokémon. It joins late: the events it needs were
# published long ago. The store still has them all.
#
# **Task.** Write `rebuild_levels(pokemons, bus)`. It registers a listener on the bus's in-memory
# adapter (`bus.message_channel_adapter`) that computes each Pokémon's level from notification
# messages — `POKEMON_APPEARED` gives the starting level (`payload["level"]`), each
# `POKEMON_LEVELED_UP` adds one — then **replays** the whole store into the bus, and returns the
# levels as a dict `{pokemon_id: level}` once every message has been handled.
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# Notebook 03, section 6: the `pour_*` functions of `castore_edu.replay.dam` publish stored events again,
# as replays — and a listener only receives replays if it asks for them. One of those functions
# pours a whole store. `await adapter.wait_idle()` waits for the deliveries.
# </details>
#
# **Check yourself.** The check gives you a store of three Pokémon and a bus whose listeners run
# late, as a broker's do, then compares your levels with the aggregates, counts the store's reads
# and looks at what was published.

# %%
from castore_edu import EventStore, NotificationMessageBus, pour_event_store_events
from castore_edu.course.pokedex import POKEMON_APPEARED, POKEMON_LEVELED_UP


async def rebuild_levels(pokemons: EventStore, bus: NotificationMessageBus) -> dict[str, int]:
    """Replay `pokemons` into `bus`; return each Pokémon's level, as a listener on the bus computed it."""
    ### BEGIN SOLUTION (hint: keep a dict, register an async listener that updates it, pour, wait until idle)
    levels: dict[str, int] = {}

    async def keep_level(message, context):
        event = message.event
        if event.type == POKEMON_APPEARED.type:
            levels[event.aggregate_id] = event.payload["level"]
        elif event.type == POKEMON_LEVELED_UP.type:
            levels[event.aggregate_id] += 1

    adapter = bus.message_channel_adapter
    adapter.on({"event_store_id": pokemons.event_store_id, "on_replay": True}, keep_level)
    await pour_event_store_events(event_store=pokemons, message_channel=bus)
    await adapter.wait_idle()
    return levels
    ### END SOLUTION


# %%
from castore_edu.course.exercises import check_rebuild_levels

await check_rebuild_levels(rebuild_levels)

# %% [markdown]
# ## Recap
#
# - A change of several aggregates is one group: `push_event_group` stores all of it or none, and
#   the conflict still reaches the caller, who can retry on fresh state.
# - The store keeps every event: a read model that joins late, or must be rebuilt, replays them
#   with the `pour_*` functions, and listens to replays on purpose.
#
# **Further reading**
#
# - Castore, joining data (event groups): <https://castore-dev.github.io/castore/docs/event-sourcing/joining-data/>
# - Castore, messages (and the `replay` flag): <https://castore-dev.github.io/castore/docs/reacting-to-events/messages/>
# - In this package: `castore_edu/replay/dam.py`, the pour functions.
#
# Next: **Exercises 7–8 · Reliable delivery**, after notebooks 07 and 08.
