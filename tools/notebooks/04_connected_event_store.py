# %% [markdown]
# # 04 · The connected event store
#
# **Time:** about 25 minutes.
#
# **Learning objectives.** By the end of this notebook you will be able to:
#
# 1. connect an event store to a message bus or queue, so that every stored event is published;
# 2. check, claim by claim, what Castore's *Connected Event Store* page promises — each claim
#    below is run **and** asserted;
# 3. explain when a state-carrying channel costs an extra read, and how `prev_aggregate` avoids it;
# 4. name the price of the convenience: storing and publishing are two separate steps.
#
# We walk through Castore's documentation page on the connected event store (linked at the end)
# in its own order, paraphrasing each claim, then testing it on castore_edu
# (`castore_edu/connected/connected_event_store.py`).

# %% [markdown]
# ## Setting the scene
#
# Our two stores, the opening story, and a bus that records every message it delivers.

# %%
from castore_edu import (
    ConnectedEventStore,
    EventStore,
    NotificationMessageBus,
)
from castore_edu.course.pokedex import pokemon_leveled_up
from castore_edu.course.scenes import listening_bus, opening_scene

pokedex = await opening_scene()
pokemons, trainers = pokedex.pokemons, pokedex.trainers
# A bus on an in-memory adapter, and the list its one listener fills with every message.
app_bus, app_inbox = listening_bus(NotificationMessageBus, "APP_BUS", [pokemons, trainers])

# %% [markdown]
# ## Claim 1 — without a data stream, the connected store is the way to publish what you push
#
# Some databases stream their changes (DynamoDB streams, change data capture); a consumer of
# that stream can publish every new event. Without one, you wrap your event store and a
# channel in a `ConnectedEventStore`. The wrapped store is the *original*; the channel must
# list it among its sources.

# %%
connected_pokemons = ConnectedEventStore(pokemons, app_bus)
print(
    f"{connected_pokemons.event_store_id} store, connected to {connected_pokemons.message_channel.message_channel_id}"
)

# %% [markdown]
# ## Claim 2 — its interface matches the event store's
#
# Everything public on an `EventStore` is on the connected store too, and reads give the same
# answers (they are the original's reads).

# %%
public_names = [name for name in dir(pokemons) if not name.startswith("_")]
missing = [name for name in public_names if not hasattr(connected_pokemons, name)]
assert missing == [], missing
assert connected_pokemons.event_store_id == "POKEMONS"
assert await connected_pokemons.get_aggregate("pikachu") == await pokemons.get_aggregate("pikachu")
print(len(public_names), "public names, all present:", ", ".join(public_names))

# %% [markdown]
# ## Claim 3 — pushing stores the event *and*, if that succeeds, publishes it
#
# On a notification channel, the message is `NotificationMessage(event_store_id, event)`.

# %%
result = await connected_pokemons.push_event(pokemon_leveled_up("pikachu", version=5))
await app_bus.message_channel_adapter.wait_idle()

(message,) = app_inbox
assert message.event == result.event  # the stored event (with its timestamp) is what went out
assert (await pokemons.get_aggregate("pikachu")).aggregate.version == 5  # ...and it is stored
message

# %% [markdown]
# "If it succeeds" matters: a push that fails publishes nothing.

# %%
from castore_edu import EventAlreadyExistsError

try:
    await connected_pokemons.push_event(pokemon_leveled_up("pikachu", version=5))
except EventAlreadyExistsError:
    pass
else:
    raise AssertionError("version 5 is taken")
await app_bus.message_channel_adapter.wait_idle()
assert len(app_inbox) == 1  # still only the first message

# %% [markdown]
# ## Claim 4 — pushing an event group publishes each event to *its own* channel
#
# Groups (notebook 06) push events of several stores at once, all or nothing. Once the whole
# group is stored, each event is published through the channel of the connected store that
# grouped it. Here Pokémon events go to the app bus and trainer events to a second bus.

# %%
from castore_edu.course.pokedex import pokemon_caught, trainer_caught_pokemon

trainer_bus, trainer_inbox = listening_bus(NotificationMessageBus, "TRAINER_BUS", [trainers])
connected_trainers = ConnectedEventStore(trainers, trainer_bus)

await EventStore.push_event_group(
    connected_pokemons.group_event(pokemon_caught("charmander", version=2, trainer_id="ash")),
    connected_trainers.group_event(trainer_caught_pokemon("ash", version=3, pokemon_id="charmander")),
)
for bus in (app_bus, trainer_bus):
    await bus.message_channel_adapter.wait_idle()

assert [m.event.type for m in app_inbox[1:]] == ["POKEMON_CAUGHT"]
assert [m.event.type for m in trainer_inbox] == ["TRAINER_CAUGHT_POKEMON"]
print(
    "app bus:",
    [m.event.type for m in app_inbox],
    "| trainer bus:",
    [m.event.type for m in trainer_inbox],
)

# %% [markdown]
# ## Claim 5 — the channel must be able to carry the store's events
#
# In TypeScript, the compiler refuses a channel whose sources do not include the store. Python
# has no such check, so the mistake shows up at run time — and, since publishing comes *after*
# storing, the event is already stored when the error arrives:

# %%
from castore_edu import MessageChannelEventStoreNotFoundError

pokemons_only_bus, pokemons_only_inbox = listening_bus(NotificationMessageBus, "POKEMONS_ONLY", [pokemons])
misconnected_trainers = ConnectedEventStore(trainers, pokemons_only_bus)
try:
    await misconnected_trainers.push_event(trainer_caught_pokemon("ash", version=4, pokemon_id="mew"))
except MessageChannelEventStoreNotFoundError as error:
    print("publish failed:", error)
else:
    raise AssertionError("publishing to a channel without the store must fail")
assert (await trainers.get_aggregate("ash")).aggregate.pokemon_ids[-1] == "mew"  # stored anyway

# %% [markdown]
# ## Claim 6 — setting `event_storage_adapter` or `on_event_pushed` on the connected store sets the original's
#
# The connected store keeps no storage of its own: its `event_storage_adapter` *is* the
# original's, in both directions.

# %%
from castore_edu import InMemoryEventStorageAdapter

original_adapter = pokemons.event_storage_adapter
assert connected_pokemons.event_storage_adapter is original_adapter

other_adapter = InMemoryEventStorageAdapter()
connected_pokemons.event_storage_adapter = other_adapter
assert pokemons.event_storage_adapter is other_adapter  # written through to the original

pokemons.event_storage_adapter = original_adapter
assert connected_pokemons.event_storage_adapter is original_adapter  # and read from it

# %% [markdown]
# `on_event_pushed` is the hook an event store awaits after each push. Setting it on the
# connected store sets the original's. Reading it back gives a function that runs the original's
# hook and *then* publishes — that is how a connected store publishes the events of a group.

# %%
log = []


async def audit(result):
    log.append(f"audit v{result.event.version}")


connected_pokemons.on_event_pushed = audit
assert pokemons.on_event_pushed is audit


async def note_publish(message, context):
    log.append(f"published v{message.event.version}")


app_bus.message_channel_adapter.on({}, note_publish)
await connected_pokemons.push_event(pokemon_leveled_up("pikachu", version=6))
await app_bus.message_channel_adapter.wait_idle()
print(log)
assert log == ["audit v6", "published v6"]  # the original's hook first, then the publish
connected_pokemons.on_event_pushed = None

# %% [markdown]
# ## Claim 7 — on a state-carrying channel, pushing re-fetches the aggregate
#
# A `StateCarryingMessage` needs the aggregate at the event's version. When the store could not
# compute it (see notebook 02: no `prev_aggregate`, not version 1), the connected store reads it
# back with `get_aggregate(aggregate_id, max_version=event.version)`.
#
# To *count* reads we put the adapter behind `SimulatedLatencyAdapter` (`castore_edu/testing/latency.py`),
# here with no latency at all: it only counts.

# %%
from castore_edu import StateCarryingMessageBus
from castore_edu.testing.latency import CallCounts, SimulatedLatencyAdapter

counting = SimulatedLatencyAdapter(original_adapter, latency_ms=0)
pokemons.event_storage_adapter = counting
state_bus, state_inbox = listening_bus(StateCarryingMessageBus, "STATE_BUS", [pokemons])
connected_state = ConnectedEventStore(pokemons, state_bus)

result = await connected_state.push_event(pokemon_leveled_up("pikachu", version=7))
await state_bus.message_channel_adapter.wait_idle()

assert counting.counts == CallCounts(reads=1, events_read=7, writes=1, events_written=1)
(state_message,) = state_inbox
assert state_message.aggregate == (await pokemons.get_aggregate("pikachu")).aggregate
assert result.next_aggregate is None  # the re-fetched aggregate is published, not returned
state_message.aggregate

# %% [markdown]
# ## Claim 8 — passing the previous aggregate removes the re-fetch
#
# With `prev_aggregate`, the store computes the next aggregate with one reducer call and the
# connected store publishes it: no read at all. (Notebook 05 measures what that saves as an
# aggregate grows, and what happens if the previous aggregate is wrong.)

# %%
prev = state_message.aggregate
counting.reset_counts()
result = await connected_state.push_event(pokemon_leveled_up("pikachu", version=8), prev_aggregate=prev)
await state_bus.message_channel_adapter.wait_idle()

assert counting.counts == CallCounts(reads=0, writes=1, events_written=1)
assert state_inbox[-1].aggregate == result.next_aggregate
assert result.next_aggregate.level == prev.level + 1
result.next_aggregate

# %% [markdown]
# ## Claim 9 — it works for event groups too
#
# `group_event(event, prev_aggregate=...)` carries the previous aggregate into the group.

# %%
counting.reset_counts()
await EventStore.push_event_group(connected_state.group_event(pokemon_leveled_up("pikachu", version=9)))
await state_bus.message_channel_adapter.wait_idle()
without_prev = counting.reset_counts()

prev = state_inbox[-1].aggregate
await EventStore.push_event_group(
    connected_state.group_event(pokemon_leveled_up("pikachu", version=10), prev_aggregate=prev)
)
await state_bus.message_channel_adapter.wait_idle()
with_prev = counting.reset_counts()

print("without prev_aggregate:", without_prev)
print("with prev_aggregate:   ", with_prev)
assert without_prev == CallCounts(reads=1, events_read=9, writes=1, events_written=1)
assert with_prev == CallCounts(reads=0, writes=1, events_written=1)
assert [m.aggregate.version for m in state_inbox] == [7, 8, 9, 10]
assert state_inbox[-1].aggregate == (await pokemons.get_aggregate("pikachu")).aggregate

# %% [markdown]
# The first group (no `prev_aggregate`) read the 9 events back; the second read nothing.
#
# ## Claim 10 — simple and cheap, but storing and publishing are separate steps
#
# Compared with a database stream, a connected store needs no extra infrastructure and
# publishes as soon as the push returns. The price: nothing ties the two steps together.
# If publishing fails, the event is stored, `push_event` raises, and a naive retry of the push
# now hits `EventAlreadyExistsError` — the message is never sent. Watch it happen on a bus
# whose adapter was never set:

# %%
from castore_edu import UndefinedMessageChannelAdapterError

pokemons.event_storage_adapter = original_adapter
unplugged_bus = NotificationMessageBus(message_bus_id="UNPLUGGED", source_event_stores=[pokemons])
fragile = ConnectedEventStore(pokemons, unplugged_bus)
event = pokemon_leveled_up("pikachu", version=11)

try:
    await fragile.push_event(event)
except UndefinedMessageChannelAdapterError as error:
    print("1st try:", error)
else:
    raise AssertionError("a bus without adapter cannot publish")
try:
    await fragile.push_event(event)  # "it failed, let's push again"
except EventAlreadyExistsError as error:
    print("2nd try:", error)
else:
    raise AssertionError("the event was stored by the first try")

assert (await pokemons.get_events("pikachu", reverse=True, limit=1))[
    0
].version == 11  # stored, never published

# %% [markdown]
# Plan for it: publish from a change stream or an outbox when every message must go out, make
# consumers idempotent, or replay missed events with the `pour_*` functions (notebook 03).
#
# ## Reference — `event_store` and `message_channel`
#
# The constructor takes the original store and the channel; both are available as properties.

# %%
assert connected_pokemons.event_store is pokemons
assert connected_pokemons.message_channel is app_bus
(connected_pokemons.event_store, connected_pokemons.message_channel.message_channel_id)

# %% [markdown]
# ## Two differences from Castore worth knowing
#
# - castore_edu's connected store looks everything up on the original at call time; Castore
#   copies some members (the reducer, for instance) when the connected store is built, so later
#   changes to the original are not seen there.
# - On an aggregate-exists channel nothing is published (in both): such channels carry ids, not
#   events.

# %%
from dataclasses import replace

from castore_edu import AggregateExistsMessageBus

original_reducer = pokemons.reducer
pokemons.reducer = lambda pokemon, event: replace(original_reducer(pokemon, event), name="PIKACHU!")
assert connected_pokemons.build_aggregate((await pokemons.get_events("pikachu"))[:1]).name == "PIKACHU!"
pokemons.reducer = original_reducer

exists_bus, exists_inbox = listening_bus(AggregateExistsMessageBus, "EXISTS_BUS", [pokemons])
await ConnectedEventStore(pokemons, exists_bus).push_event(pokemon_leveled_up("pikachu", version=12))
await exists_bus.message_channel_adapter.wait_idle()
assert exists_inbox == []

# %%
from castore_edu.course.scenes import castore_tasks

assert castore_tasks() == []  # nothing left running (notebook 03, "Leaving nothing behind")

# %% [markdown]
# ## Recap
#
# - `ConnectedEventStore(store, channel)` behaves like `store`, and publishes every event it
#   successfully stores — single pushes and groups alike, each on its own channel.
# - Its `event_storage_adapter` and `on_event_pushed` are the original's.
# - State-carrying channels need the aggregate: one read per push, unless you pass
#   `prev_aggregate` (to `push_event` or `group_event`).
# - Storing and publishing are two steps: a failed publish leaves a stored, unpublished event.
#
# *When this notebook was last built it ran in {{build_time}} in a fresh kernel.*
#
# **Further reading**
#
# - Castore, connected event store (the page this notebook walks through):
#   <https://castore-dev.github.io/castore/docs/reacting-to-events/connected-event-store/>
# - Chris Richardson, *Transactional outbox*: <https://microservices.io/patterns/data/transactional-outbox.html>
# - In this package: `castore_edu/connected/connected_event_store.py`, `castore_edu/testing/latency.py`.
#
# Next: **05 · The `prev_aggregate` optimization**.
