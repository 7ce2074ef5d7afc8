# %% [markdown]
# # 07 · Failure modes: what a connected event store cannot promise
#
# **Time:** about 35 minutes.
#
# **Learning objectives.** By the end of this notebook you will be able to:
#
# 1. inject faults — a failed publish, a crash, duplicates, reordering — on a script, so that
#    every failure below happens the same way on every run;
# 2. explain why a publish that fails *after* the push loses the message, and why retrying the
#    push cannot bring it back;
# 3. tell apart what a failing *consumer* costs (retries, then a dead letter you can re-send) from
#    what a failing *publisher* costs (a message that never existed), and keep a poison message
#    from blocking the others;
# 4. recognise duplicate, out-of-order and wrong state-carrying messages, and a group whose events
#    were all stored but only partly published.
#
# Castore's page on connected event stores ends with a warning: they "strongly decouple your
# storage and messaging solutions: make sure to anticipate any issue that might arise
# (consistency, non-caught errors etc.)". This notebook makes each of those issues happen.
# Notebook 08 fixes them.

# %% [markdown]
# ## Faults on a script
#
# `castore_edu/testing/faults.py` wraps a real adapter and lets a **schedule** decide, call by call,
# whether a fault strikes: `FaultSchedule.on_calls(2, 5)` fails the 2nd and the 5th call;
# `FaultSchedule.seeded(7, fail=0.1)` fails each call with probability 0.1, drawn from a seeded
# random generator. A schedule never looks at the clock, so what fails is the same on every run.
#
# | fault | on a channel | on storage |
# |---|---|---|
# | `FAIL` | raises, nothing delivered | raises, nothing stored |
# | `FAIL_AFTER` | delivered, *then* raises (a lost acknowledgement) | stored, then raises |
# | `CRASH` / `CRASH_AFTER` | the process dies before / after delivering | … before / after writing |
# | `DUPLICATE` | delivered twice | — |
# | `REORDER` | held back, delivered after the next message | — |
#
# A crash raises `SimulatedCrash`, which is not an `Exception` (like `KeyboardInterrupt`): no
# `except Exception` can swallow it. The notebook plays the operating system and "restarts".

# %%
from castore_edu import (
    ConnectedEventStore,
    EventAlreadyExistsError,
    InMemoryMessageBusAdapter,
    NotificationMessageBus,
    StateCarryingMessageBus,
)
from castore_edu.course.pokedex import pokemon_leveled_up
from castore_edu.course.scenes import listening_bus, opening_scene
from castore_edu.testing import (
    Fault,
    FaultSchedule,
    FaultyChannelAdapter,
    FaultyStorageAdapter,
    InjectedFault,
    SimulatedCrash,
)

pokedex = await opening_scene()
pokemons, trainers = pokedex.pokemons, pokedex.trainers

schedule = FaultSchedule.seeded(7, fail=0.1, duplicate=0.05)
print("the first 20 calls:", ["." if fault is None else fault.value for fault in schedule.decisions(20)])
assert schedule.decisions(20) == FaultSchedule.seeded(7, fail=0.1, duplicate=0.05).decisions(20)

# %% [markdown]
# Two of the faults before the stories below: `FAIL_AFTER` and `CRASH`, on a bus. The first
# publish is delivered and *then* raises, so the publisher believes it failed; the second
# "kills the process" before anything is delivered.

# %%
from castore_edu import NotificationMessage

demo_bus, demo_inbox = listening_bus(NotificationMessageBus, "FAULT_DEMO", [pokemons])
FaultyChannelAdapter.wrap(demo_bus, FaultSchedule.scripted({1: Fault.FAIL_AFTER, 2: Fault.CRASH}))
outcomes = []
for event in (await pokemons.get_events("pikachu"))[:2]:
    try:
        await demo_bus.publish_message(NotificationMessage("POKEMONS", event))
    except InjectedFault as error:
        outcomes.append(f"v{event.version}: the publisher got {error}")
    except SimulatedCrash as crash:
        outcomes.append(f"v{event.version}: the process died: {crash}")
await demo_bus.message_channel_adapter.wait_idle()
print(*outcomes, sep="\n")
print("delivered:", [f"v{message.event.version}" for message in demo_inbox])
assert [message.event.version for message in demo_inbox] == [1]  # v1 arrived although its publish raised

# %% [markdown]
# ## 1. The publish fails after the push
#
# The connected store stores the event, *then* publishes it. Here the bus refuses the first
# publish (a broker that is down, a network error).

# %%
news, news_inbox = listening_bus(NotificationMessageBus, "POKEMON_NEWS", [pokemons])
broker = FaultyChannelAdapter.wrap(news, FaultSchedule.on_calls(1))
connected_pokemons = ConnectedEventStore(pokemons, news)

# %% tags=["raises-exception"]
await connected_pokemons.push_event(pokemon_leveled_up("pikachu", version=5))

# %% [markdown]
# The caller sees an error, and might conclude that nothing happened. But the event **is**
# stored; only the message is missing.

# %%
import sys

error = sys.last_value
assert isinstance(error, InjectedFault) and error.call == 1
pikachu = (await pokemons.get_aggregate("pikachu")).aggregate
assert (pikachu.version, pikachu.level) == (5, 8)  # stored: Pikachu did level up
await news.message_channel_adapter.wait_idle()
assert news_inbox == []  # ...and nobody was told
print(f"stored: Pikachu v{pikachu.version}, level {pikachu.level}; messages received: {len(news_inbox)}")

# %% [markdown]
# The natural reaction is to try again. The broker is back (the schedule fails only call 1),
# but the *push* comes first, and version 5 is taken:

# %% tags=["raises-exception"]
await connected_pokemons.push_event(pokemon_leveled_up("pikachu", version=5))

# %%
error = sys.last_value
assert isinstance(error, EventAlreadyExistsError) and error.version == 5
assert broker.calls == 1  # the retry never reached the publish
assert news_inbox == []
print("the retry:", error)

# %% [markdown]
# The message is lost for good: the only code that knew it had to be sent has raised. The
# caller could republish by hand (`publish_pushed_event`) — if it knew that the push had
# succeeded, which the error does not say.

# %% [markdown]
# ## 2. A crash between the store and the publish
#
# Worse: the process dies right after the database committed (a deployment, an out-of-memory
# kill, a power cut). `FaultyStorageAdapter` crashes right after its first write.

# %%
real_storage = pokemons.event_storage_adapter
pokemons.event_storage_adapter = FaultyStorageAdapter(
    real_storage, FaultSchedule.on_calls(1, fault=Fault.CRASH_AFTER)
)
try:
    await connected_pokemons.push_event(pokemon_leveled_up("pikachu", version=6))
except SimulatedCrash as crash:
    print("the process died:", crash)
    assert crash.where == "after push_event #1"
else:
    raise AssertionError("the push must crash")

# The "restart": new objects, same storage.
pokemons.event_storage_adapter = real_storage
assert (await pokemons.get_aggregate("pikachu")).aggregate.version == 6  # committed before the crash
await news.message_channel_adapter.wait_idle()
assert news_inbox == []

# %% [markdown]
# This time nobody even saw an error. After the restart, nothing in memory remembers that
# version 6 was never published. Only the storage knows it happened.

# %% [markdown]
# ## 3. A consumer that keeps failing: retries, then a dead letter
#
# Publishing worked, delivery worked, but the *consumer* fails — its own database is down. The
# in-memory bus retries it after `retry_delay_ms × retry_backoff_rate ** (attempt − 1)` ms (10 ms,
# then 20 ms here), and after the last retry it gives up: the message becomes a **dead letter**,
# kept in `adapter.dead_letters` and logged (logger `castore_edu`, level ERROR; a `NullHandler`
# keeps that log out of this page).

# %%
import logging

quiet = logging.NullHandler()
logging.getLogger("castore_edu").addHandler(quiet)

attempts, projected = [], []
database_up = False


async def projection_with_its_database_down(message, context):
    attempts.append((context.attempt, context.retry_attempts_left))
    if not database_up:
        raise ConnectionError("the read model database is down")
    projected.append(message.event.version)


fragile = NotificationMessageBus(message_bus_id="FRAGILE", source_event_stores=[pokemons])
fragile_adapter = InMemoryMessageBusAdapter.attach_to(
    fragile, retry_attempts=2, retry_delay_ms=10, retry_backoff_rate=2
)
fragile_adapter.on({}, projection_with_its_database_down)

await ConnectedEventStore(pokemons, fragile).push_event(pokemon_leveled_up("charmander", version=2))
await fragile_adapter.wait_idle()
logging.getLogger("castore_edu").removeHandler(quiet)

(dead,) = fragile_adapter.dead_letters
print("deliveries (attempt, retries left):", attempts)
print(
    f"dead letter: charmander v{dead.message.event.version} after {dead.attempts} deliveries: {dead.error!r}"
)
assert attempts == [(1, 2), (2, 1), (3, 0)]
assert [fragile_adapter.retry_delay_for(attempt) for attempt in (1, 2)] == [10, 20]
assert dead.attempts == 3 and dead.message.event.aggregate_id == "charmander"

# %% [markdown]
# Compare with sections 1 and 2: here the message exists and is kept, with the error and the
# number of deliveries. Nothing re-sends it by itself. Once the consumer works again,
# `await adapter.redeliver_dead_letters()` takes the letters out of the list and delivers each
# again to the consumer that gave up on it — alone: a bus's other listeners had it already — as a
# new delivery, attempt 1 (`where=` picks some letters only):

# %%
database_up = True  # the read model's database is back
resent = await fragile_adapter.redeliver_dead_letters()
await fragile_adapter.wait_idle()
print("handled after the re-send:", [f"charmander v{version}" for version in projected])
assert resent == [dead] and fragile_adapter.dead_letters == []
assert projected == [2] and attempts[-1] == (1, 2)  # a new delivery, attempt 1

# %% [markdown]
# ### A poison message
#
# Some messages fail whatever you do: a payload the consumer cannot read, say. Waiting does not
# help, so retries only delay the verdict. On a queue, a failed message waits for its retry at
# the back, and after the last one it leaves for `dead_letters`: the messages behind it still
# get through. Re-sending it without fixing anything only makes it a dead letter again — it is
# never dropped, and never blocks the queue.

# %%
from castore_edu import InMemoryMessageQueueAdapter, NotificationMessageQueue
from castore_edu.course.pokedex import pokemon_appeared

cards = []


async def print_card(message, context):
    level = message.event.payload["level"]
    if not isinstance(level, int):
        raise TypeError(f"level {level!r} is not a number")
    cards.append(message.event.payload["name"])


card_queue = NotificationMessageQueue(message_queue_id="CARDS", source_event_stores=[pokemons])
card_adapter = InMemoryMessageQueueAdapter.attach_to(card_queue, worker=print_card, retry_delay_ms=10)
logging.getLogger("castore_edu").addHandler(quiet)
arrivals = [("bulbasaur", "Bulbasaur", 1), ("missingno", "MissingNo.", "??"), ("squirtle", "Squirtle", 1)]
for pokemon_id, name, level in arrivals:
    await card_queue.publish_message(
        NotificationMessage("POKEMONS", pokemon_appeared(pokemon_id, name=name, level=level))
    )
await card_adapter.wait_idle()
(poison,) = card_adapter.dead_letters
print("cards:", cards, "| dead letter:", poison.message.event.aggregate_id, repr(poison.error))
assert cards == ["Bulbasaur", "Squirtle"] and poison.attempts == 3  # Squirtle was not blocked

assert await card_adapter.redeliver_dead_letters() == [poison]  # nothing fixed...
await card_adapter.wait_idle()
logging.getLogger("castore_edu").removeHandler(quiet)
(again,) = card_adapter.dead_letters  # ...so a dead letter again
assert again is not poison and again.message == poison.message and cards == ["Bulbasaur", "Squirtle"]

# %% [markdown]
# Fix the worker, then re-send. If the data itself is wrong, a re-send only sends the same bad
# copy: correct the store, then replay the aggregate (notebook 03, section 6). A message that was
# never published (sections 1 and 2) has no dead letter: nothing can send it again.

# %% [markdown]
# ## 4. Duplicates and deliveries out of order
#
# Brokers redeliver (a lost acknowledgement, a consumer restart) and do not always keep order.
# Two naive consumers of a state-carrying bus: one counts level-ups, one keeps the latest state
# it was sent. The bus duplicates the first message and holds the second back.

# %%
charmander_news, charmander_inbox = listening_bus(StateCarryingMessageBus, "CHARMANDER_NEWS", [pokemons])
FaultyChannelAdapter.wrap(charmander_news, FaultSchedule.scripted({1: Fault.DUPLICATE, 2: Fault.REORDER}))
connected_charmander = ConnectedEventStore(pokemons, charmander_news)
for version in (3, 4, 5):
    await connected_charmander.push_event(pokemon_leveled_up("charmander", version=version))
await charmander_news.message_channel_adapter.wait_idle()

level_ups_counted = sum(1 for message in charmander_inbox if message.event.type == "POKEMON_LEVELED_UP")
latest_state = {}
for message in charmander_inbox:
    latest_state[message.event.aggregate_id] = message.aggregate  # "the last message is the newest"

truth = (await pokemons.get_aggregate("charmander")).aggregate
print("delivered versions:", [message.event.version for message in charmander_inbox])
print(f"level-ups counted: {level_ups_counted} (pushed: 3)")
print(
    f"latest state kept: v{latest_state['charmander'].version}, level {latest_state['charmander'].level}"
    f" — the store says v{truth.version}, level {truth.level}"
)
assert [message.event.version for message in charmander_inbox] == [3, 3, 5, 4]
assert level_ups_counted == 4
assert (latest_state["charmander"].version, truth.version) == (4, 5)

# %% [markdown]
# Notebook 08 gives each its remedy: a **version gate** keeps the latest state from going back,
# whatever the order (section 3), and an **idempotent** consumer counts each event once (section 4).

# %% [markdown]
# ## 5. A stale `prev_aggregate`
#
# Passing `prev_aggregate` spares a state-carrying store a read (notebook 05). The store trusts
# it. Here we read Charmander, another writer pushes a level-up, and we push the next version
# with the aggregate we read before — a *stale read*.

# %%
read_earlier = (await pokemons.get_aggregate("charmander")).aggregate  # v5
await pokemons.push_event(pokemon_leveled_up("charmander", version=6))  # the other writer
charmander_inbox.clear()
await connected_charmander.push_event(
    pokemon_leveled_up("charmander", version=7), prev_aggregate=read_earlier
)  # a stale read: it does not know v6
await charmander_news.message_channel_adapter.wait_idle()

(sent,) = charmander_inbox
truth = (await pokemons.get_aggregate("charmander")).aggregate
print(
    f"message: v{sent.aggregate.version}, level {sent.aggregate.level} | store: v{truth.version}, level {truth.level}"
)
assert sent.aggregate.version == truth.version == 7
assert (sent.aggregate.level, truth.level) == (8, 9)  # the message misses one level-up

# %% [markdown]
# The push succeeded (version 7 was free), so no conflict warned us; the message is simply
# wrong. `castore_edu.course.pokedex.push_with_checked_prev_aggregate` refuses a `prev_aggregate` whose
# version is not `event.version − 1` (notebook 05).

# %% [markdown]
# ## 6. A failing publish inside an event group
#
# Ash catches Charmander: two events, two stores, one group (notebook 06). The group is stored
# all or nothing — but publishing happens afterwards, store by store. The trainers' bus fails.

# %%
from castore_edu import EventStore
from castore_edu.course.pokedex import pokemon_caught, trainer_caught_pokemon

pokemon_bus, pokemon_inbox = listening_bus(NotificationMessageBus, "POKEMON_BUS", [pokemons])
trainer_bus, trainer_inbox = listening_bus(NotificationMessageBus, "TRAINER_BUS", [trainers])
FaultyChannelAdapter.wrap(trainer_bus, FaultSchedule.on_calls(1))
connected_trainers = ConnectedEventStore(trainers, trainer_bus)
connected_pokemons = ConnectedEventStore(pokemons, pokemon_bus)

# %% tags=["raises-exception"]
await EventStore.push_event_group(
    connected_pokemons.group_event(pokemon_caught("charmander", version=8, trainer_id="ash")),
    connected_trainers.group_event(trainer_caught_pokemon("ash", version=3, pokemon_id="charmander")),
)

# %%
error = sys.last_value
assert isinstance(error, InjectedFault)
assert (await pokemons.get_aggregate("charmander")).aggregate.status == "caught"  # both stored...
assert (await trainers.get_aggregate("ash")).aggregate.pokemon_ids == ("pikachu", "charmander")
for bus in (pokemon_bus, trainer_bus):
    await bus.message_channel_adapter.wait_idle()
assert [message.event.type for message in pokemon_inbox] == ["POKEMON_CAUGHT"]  # ...one published
assert trainer_inbox == []
print(
    "pokemon bus:",
    [m.event.type for m in pokemon_inbox],
    "| trainer bus:",
    [m.event.type for m in trainer_inbox],
)

# %% [markdown]
# Storage kept its promise (all or nothing); messaging could not: a consumer that joins the two
# streams now sees a caught Charmander with no trainer.

# %% [markdown]
# ## What each failure costs
#
# | failure | the caller sees | stored | delivered |
# |---|---|---|---|
# | publish fails after the push | an error; the retry: `EventAlreadyExistsError` | yes | never |
# | crash between store and publish | nothing (it died) | yes | never |
# | consumer keeps failing | nothing (fire-and-forget) | yes | yes, then a dead letter (re-sendable) |
# | duplicate / reordered delivery | nothing | yes | twice / out of order |
# | stale `prev_aggregate` | success | yes | a wrong state |
# | publish fails in a group | an error | all events | some events |
#
# The first two are the *dual write* problem: storing and publishing are two writes to two
# systems, and nothing makes them one. No retry policy in the publisher can fix it, because after
# a crash there is no publisher left to retry. The next notebook moves publishing to where the
# truth is — the storage's own log — and makes consumers safe against the duplicates that
# follow.

# %%
from castore_edu.course.scenes import castore_tasks

assert castore_tasks() == []  # nothing left running (notebook 03, "Leaving nothing behind")

# %% [markdown]
# ## Recap
#
# - Fault schedules (`castore_edu/testing/faults.py`) make failures reproducible: explicit call numbers,
#   or a seeded random generator — never the clock.
# - A connected store publishes *after* storing. A failed publish or a crash in between leaves a
#   stored event whose message is lost; retrying the push only meets `EventAlreadyExistsError`.
# - Consumer failures are retried with back-off and end as dead letters, kept with their message
#   in `adapter.dead_letters`; `await adapter.redeliver_dead_letters()` re-sends them once the
#   consumer works. A poison message fails whatever you do: it ends in `dead_letters` without
#   blocking a queue, and only comes back there if re-sent before a fix.
# - Consumers must expect duplicates, reordering and — with a stale `prev_aggregate` — wrong states.
# - A group is stored atomically but published store by store: part of it can go unpublished.
#
# *When this notebook was last built it ran in {{build_time}} in a fresh kernel.*
#
# **Further reading**
#
# - Castore, connected event store (its closing warning):
#   <https://castore-dev.github.io/castore/docs/reacting-to-events/connected-event-store/>
# - Chris Richardson, *Transactional outbox* (the dual write and its fix):
#   <https://microservices.io/patterns/data/transactional-outbox.html>
# - Martin Fowler, *What do you mean by "Event-Driven"?*:
#   <https://martinfowler.com/articles/201701-event-driven.html>
# - In this package: `castore_edu/testing/faults.py`, `castore_edu/connected/connected_event_store.py`, `castore_edu/messaging/delivery.py`.
#
# Next: **08 · Remedies: a relay, idempotent consumers, replay**.
