# %% [markdown]
# # 01 · Events, event types, aggregates and reducers
#
# **Time:** about 15 minutes.
#
# **Learning objectives.** By the end of this notebook you will be able to:
#
# 1. describe an event as an immutable fact with an aggregate id and a version, and say what
#    keeps a stored event from changing;
# 2. declare event types, and say why some names are reserved;
# 3. write a reducer — a pure function `(aggregate, event) -> aggregate` — and fold events with it by hand;
# 4. use `EventStore.build_aggregate`, and fold in steps (the idea behind `prev_aggregate`, notebook 05).
#
# Event sourcing stores *what happened*, never the current state. The state is always computed
# again from the facts. This notebook builds that computation by hand before letting the event
# store do it.

# %% [markdown]
# ## 1. An event is a fact
#
# An `EventDetail` says that something happened to one **aggregate** (one Pokémon, one
# trainer) at one **version**: version 1 is the aggregate's first event, version 2 the second,
# and so on. `(aggregate_id, version)` identifies the event; the storage will refuse a second
# event at a version that is taken (notebook 02 shows why that single rule is enough to keep
# concurrent writers honest).
#
# `type` says what happened, `payload` carries the details, `metadata` anything about the
# event rather than about the domain (who did it, a correlation id…). `timestamp=None` asks the
# storage adapter to stamp it when it is stored.

# %%
from castore_edu import EventDetail

appeared = EventDetail(
    aggregate_id="pikachu",
    version=1,
    type="POKEMON_APPEARED",
    timestamp="2024-01-01T00:00:00.000Z",
    payload={"name": "Pikachu", "level": 5},
)
appeared

# %% [markdown]
# Facts do not change: `EventDetail` is a frozen dataclass, so its fields cannot be assigned
# again. Trying to rewrite history that way raises an error. (The cell below is *expected* to
# fail; the cell after it checks the error.)

# %% tags=["raises-exception"]
appeared.payload = {"name": "Raichu", "level": 50}

# %%
import dataclasses
import sys

assert isinstance(sys.last_value, dataclasses.FrozenInstanceError)
assert appeared.payload == {"name": "Pikachu", "level": 5}

# %% [markdown]
# *Frozen* stops assigning a field, not changing what the field holds: `payload` is an ordinary
# dict, and `appeared.payload["level"] = 99` would change it in place. History is still safe,
# because a store never keeps your objects: every storage adapter of this course keeps each
# payload as JSON text — the in-memory one too (`castore_edu/storage/in_memory.py`) — and builds a
# fresh dict on every read. Below, a store takes Mew's first event; then we change our payload,
# and the copy a read hands us.

# %%
from castore_edu.course.pokedex import in_memory_pokedex, pokemon_appeared

store = in_memory_pokedex().pokemons  # notebook 02 introduces the event store
mew = pokemon_appeared("mew", name="Mew", level=30)
await store.push_event(mew)

mew.payload["level"] = 99  # allowed: the dict inside a frozen dataclass is still a dict
(stored,) = await store.get_events("mew")
print("ours:", mew.payload, "| stored:", stored.payload)
assert stored.payload == {"name": "Mew", "level": 30}

stored.payload["level"] = 1  # the dict a read returns is a fresh copy, too
assert (await store.get_events("mew"))[0].payload == {"name": "Mew", "level": 30}

# %% [markdown]
# ## 2. Event types
#
# An `EventType` names one kind of event. The course's types live in `castore_edu/course/pokedex.py`.
# An event store lists its types, but — as in Castore — does not refuse an event of a type it
# did not declare: the list documents the store, it does not police it.
#
# Two names are reserved, because Castore's message tooling uses them for messages that are not
# events of your domain (`__REPLAYED__`, `__AGGREGATE_EXISTS__`).

# %%
from castore_edu import EventType
from castore_edu.course.pokedex import POKEMON_EVENT_TYPES, TRAINER_EVENT_TYPES

print([event_type.type for event_type in POKEMON_EVENT_TYPES])
print([event_type.type for event_type in TRAINER_EVENT_TYPES])

try:
    EventType("__AGGREGATE_EXISTS__")
except ValueError as error:
    print("refused:", error)
else:
    raise AssertionError("a reserved type must be refused")

# %% [markdown]
# ## 3. Aggregates and reducers
#
# An **aggregate** is the state of one thing, computed from its events. Here it is a frozen
# dataclass, `Pokemon`, with the `version` of the last event folded into it.
#
# A **reducer** computes the next state from the previous state and one event. It must be
# *pure*: no reading of clocks or databases, no changing of its inputs. Purity is what makes
# the state reproducible: the same events always give the same aggregate, today or in five years,
# on your laptop or on a server.
#
# Here is the course's reducer (read it in `castore_edu/course/pokedex.py`):

# %%
import inspect

from castore_edu.course.pokedex import Pokemon, pokemon_reducer

print(inspect.getsource(pokemon_reducer))

# %% [markdown]
# ## 4. Folding by hand
#
# Pikachu's story so far: it appears, Ash catches it, it levels up twice.

# %%
from castore_edu.course.pokedex import pokemon_caught, pokemon_leveled_up

events = [
    appeared,
    pokemon_caught("pikachu", version=2, trainer_id="ash", timestamp="2024-01-01T00:00:01.000Z"),
    pokemon_leveled_up("pikachu", version=3, timestamp="2024-01-01T00:00:02.000Z"),
    pokemon_leveled_up("pikachu", version=4, timestamp="2024-01-01T00:00:03.000Z"),
]

pikachu = None  # before its first event, an aggregate does not exist
history = []
for event in events:
    pikachu = pokemon_reducer(pikachu, event)
    history.append(pikachu)

for state in history:
    print(state)

# %%
assert pikachu == Pokemon(
    aggregate_id="pikachu", version=4, name="Pikachu", level=7, status="caught", trainer_id="ash"
)
# The reducer never changed an old state: each step made a new object.
assert history[0].level == 5 and history[0].status == "wild"
assert [state.version for state in history] == [1, 2, 3, 4]

# %% [markdown]
# That loop is a *left fold*, which Python spells `functools.reduce`:

# %%
from functools import reduce

assert reduce(pokemon_reducer, events, None) == pikachu

# %% [markdown]
# Keeping every intermediate state gave us **time travel** for free: `history[1]` is Pikachu
# right after version 2. Folding only the first *n* events gives the state at version *n*.
# The event store offers exactly that with `get_aggregate(..., max_version=n)` (notebook 02).

# %%
assert reduce(pokemon_reducer, events[:2], None) == history[1]
history[1]

# %% [markdown]
# Order matters: a Pokémon cannot be caught before it appeared. The reducer says so loudly
# instead of inventing a state.

# %%
from castore_edu.course.pokedex import UnexpectedEventError

try:
    pokemon_reducer(None, events[1])
except UnexpectedEventError as error:
    print("refused:", error)
else:
    raise AssertionError("an event before the first one must be refused")

# %% [markdown]
# ## 5. `build_aggregate` and folding in steps
#
# An `EventStore` knows its reducer, and `build_aggregate(events)` is the fold above. It also
# takes a starting aggregate: `build_aggregate(later_events, aggregate=state)` continues a fold
# from `state`. Folding in two steps gives the same result as folding everything at once.
#
# Keep that in mind: it is why a store that already *has* the previous aggregate never needs to
# read the whole history again (the `prev_aggregate` option of notebooks 04–06).

# %%
from castore_edu.course.pokedex import pokemons_event_store

pokemons = pokemons_event_store()  # no storage needed to fold
assert pokemons.build_aggregate(events) == pikachu

halfway = pokemons.build_aggregate(events[:2])
assert pokemons.build_aggregate(events[2:], aggregate=halfway) == pikachu
assert pokemons.reducer(history[2], events[3]) == pikachu  # one more event, one reducer call
print(f"{pokemons!r} folds {len(events)} events into {pikachu}")

# %% [markdown]
# ## Recap
#
# - An event is an immutable fact about one aggregate, identified by `(aggregate_id, version)`.
# - A frozen dataclass refuses new field values, not changes inside a dict; stored events stay
#   unchanged because the store keeps its own copy of every payload (JSON text).
# - Event types document a store; two names are reserved.
# - A reducer is a pure function `(aggregate | None, event) -> aggregate`; folding it over the
#   events computes the state, and folding a prefix computes a past state.
# - `build_aggregate(events, aggregate=...)` folds, and can continue a fold from a known state.
#
# *When this notebook was last built it ran in {{build_time}} in a fresh kernel.*
#
# **Further reading**
#
# - Castore, events: <https://castore-dev.github.io/castore/docs/event-sourcing/events/>
# - Castore, aggregates and reducers: <https://castore-dev.github.io/castore/docs/event-sourcing/aggregates-reducers/>
# - Martin Fowler, *Event Sourcing*: <https://martinfowler.com/eaaDev/EventSourcing.html>
# - In this package: `castore_edu/core/events.py` (events), `castore_edu/course/pokedex.py` (the domain).
#
# Next: **02 · The event store**.
