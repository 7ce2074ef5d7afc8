# %% [markdown]
# # Exercises 3–4 · Channels and connected stores
#
# **Time:** about 25 minutes. **Do them after** notebooks 03, 04 and 05.
#
# **Learning objectives.** By the end of these exercises you will have:
#
# 1. written a bus listener that receives exactly the messages it needs, filtered by the bus;
# 2. connected an event store to a state-carrying queue, and published every new state without
#    reading the store, thanks to `prev_aggregate`.
#
# **How the exercises work.** Replace each `raise NotImplementedError(...)` line with your code,
# run the cell, then run the **check** cell below it: `✅ Exercise N passed`, or a short *Not yet*
# box with what is not right yet and a hint. Checks never show a solution; run them as often as
# you like.

# %% [markdown]
# ## Exercise 3 · Listen on a bus, with a filter
#
# A bus carries the events of both stores, `POKEMONS` and `TRAINERS` — live ones, and now and
# then a replay of past ones.
#
# **Task.** Write `listen_for_level_ups(bus_adapter, alerts)`. It registers, on the in-memory bus
# adapter, one listener that appends `(aggregate_id, version)` to the list `alerts` for every
# **live** `POKEMON_LEVELED_UP` of the `POKEMONS` store. Let the bus do the filtering: your
# handler should be called for those messages only.
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# `bus_adapter.on(filter_pattern, handler)` registers `async def handler(message, context)`.
# Notebook 03, section 2, lists what a filter pattern may name; section 6 says when a listener
# receives replays.
# </details>
#
# **Check yourself.** The check publishes every event of the opening story (both stores) and a
# level-up of a third store (`GYM_POKEMONS`), one replayed level-up and one new level-up, then compares your alerts — and counts how often your
# handler was called.

# %%
from castore_edu import InMemoryMessageBusAdapter
from castore_edu.course.pokedex import POKEMON_LEVELED_UP, POKEMONS


def listen_for_level_ups(bus_adapter: InMemoryMessageBusAdapter, alerts: list) -> None:
    """Append (aggregate_id, version) to `alerts` for each live level-up of a Pokémon."""

    ### BEGIN SOLUTION (hint: write an async handler(message, context), then register it with a filter pattern)
    async def alert(message, context):
        alerts.append((message.event.aggregate_id, message.event.version))

    bus_adapter.on({"event_store_id": POKEMONS, "event_type": POKEMON_LEVELED_UP.type}, alert)
    ### END SOLUTION


# %%
from castore_edu.course.exercises import check_level_up_listener

await check_level_up_listener(listen_for_level_ups)

# %% [markdown]
# ## Exercise 4 · Feed a state-carrying queue without reads
#
# A leaderboard service keeps every Pokémon's level. It must process the updates one at a time,
# in order — a **queue** — and should not have to read the event store — **state-carrying**
# messages.
#
# **Task.** Write two functions:
#
# - `connect_to_level_queue(pokemons, worker)` returns `pokemons` connected to a state-carrying
#   queue whose in-memory adapter hands every message to `worker`;
# - `level_up(connected, pokemon)` pushes, through the connected store, the level-up that follows
#   `pokemon` (the Pokémon's current state) and returns the new state — **without reading the
#   store**, neither to push nor to publish.
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# Notebook 03, section 3, builds a queue and its adapter (`attach_to` takes the `worker`).
# Notebook 04, claims 7 and 8, shows when a connected store reads the aggregate back before it
# publishes, and how to spare it that read.
# </details>
#
# **Check yourself.** The check connects the store with your function, levels Pikachu up three
# times with `level_up`, counts the reads the storage received, and looks at what the worker got.

# %%
from castore_edu import (
    ConnectedEventStore,
    EventStore,
    InMemoryMessageQueueAdapter,
    StateCarryingMessageQueue,
)
from castore_edu.course.pokedex import Pokemon, pokemon_leveled_up


def connect_to_level_queue(pokemons: EventStore, worker) -> ConnectedEventStore:
    """`pokemons`, connected to a state-carrying queue whose worker is `worker`."""
    ### BEGIN SOLUTION (hint: make the queue, attach an in-memory queue adapter with the worker, connect the store)
    queue = StateCarryingMessageQueue(message_queue_id="POKEMON_LEVELS", source_event_stores=[pokemons])
    InMemoryMessageQueueAdapter.attach_to(queue, worker=worker)
    return ConnectedEventStore(pokemons, queue)
    ### END SOLUTION


async def level_up(connected: ConnectedEventStore, pokemon: Pokemon) -> Pokemon:
    """Push the level-up that follows `pokemon` (its current state); return the new state, without a read."""
    ### BEGIN SOLUTION (hint: version: pokemon.version + 1; push_event can be told the state before the event)
    event = pokemon_leveled_up(pokemon.aggregate_id, version=pokemon.version + 1)
    result = await connected.push_event(event, prev_aggregate=pokemon)
    return result.next_aggregate
    ### END SOLUTION


# %%
from castore_edu.course.exercises import check_level_queue

await check_level_queue(connect_to_level_queue, level_up)

# %% [markdown]
# ## Recap
#
# - A bus filters for its listeners: name the event store, the event type, and opt in to replays
#   only where a replay is welcome.
# - A connected store on a state-carrying channel publishes the aggregate after each event; given
#   `prev_aggregate`, it computes that aggregate instead of reading it back.
#
# **Further reading**
#
# - Castore, message buses: <https://castore-dev.github.io/castore/docs/reacting-to-events/message-buses/>
# - Castore, connected event store: <https://castore-dev.github.io/castore/docs/reacting-to-events/connected-event-store/>
#
# Next: **Exercises 5–6 · Event groups and replay**, after notebook 06.
