# %% [markdown]
# # 03 · Messages and channels
#
# **Time:** about 30 minutes.
#
# **Learning objectives.** By the end of this notebook you will be able to:
#
# 1. tell the three kinds of message apart, and relate two of them to Martin Fowler's
#    *event notification* and *event-carried state transfer*;
# 2. choose between a message **bus** (fan out to every interested listener) and a message
#    **queue** (each message to one worker), and say what order a queue does and does not keep;
# 3. filter what a bus listener receives;
# 4. predict what retries do when a consumer fails, and where a message goes when they run out;
# 5. replay past events into a channel, so that a new consumer catches up, or learns which
#    aggregates exist.
#
# The event store is the source of truth. Messages are how the rest of a system — read models,
# e-mails, analytics — learns that something happened, without reading the store all the time.

# %% [markdown]
# ## 1. Three kinds of message
#
# Every message names the event store it comes from (`castore_edu/messaging/messages.py`):
#
# | message | carries | Fowler's name |
# |---|---|---|
# | `NotificationMessage` | the event | event notification: "this happened"; a consumer that needs more asks for it |
# | `StateCarryingMessage` | the event and the aggregate right after it | event-carried state transfer: the consumer needs no read |
# | `AggregateExistsMessage` | only an aggregate id | (used to replay the list of a store's aggregates: section 6) |
#
# Notifications are small and never stale, but a consumer that needs the state must come back to
# the store — and then it depends on the store being up. State-carrying messages are bigger and
# let consumers keep their own copy of the state, which is only as right as the state that was
# put in the message (notebook 05 shows how that can go wrong).

# %%
from castore_edu import (
    AggregateExistsMessage,
    NotificationMessage,
    StateCarryingMessage,
    is_aggregate_exists_message,
    is_event_carrying_message,
    is_notification_message,
    is_state_carrying_message,
)
from castore_edu.course.scenes import opening_scene

pokedex = await opening_scene()
pokemons, trainers = pokedex.pokemons, pokedex.trainers
pikachu = await pokemons.get_aggregate("pikachu")

notification = NotificationMessage("POKEMONS", pikachu.last_event)
state_carrying = StateCarryingMessage("POKEMONS", pikachu.last_event, pikachu.aggregate)
exists = AggregateExistsMessage("POKEMONS", "pikachu", pikachu.events[0].timestamp)

guards = [
    is_notification_message,
    is_state_carrying_message,
    is_event_carrying_message,
    is_aggregate_exists_message,
]
for message in (notification, state_carrying, exists):
    print(f"{type(message).__name__:24}", {guard.__name__: guard(message) for guard in guards})

assert is_notification_message(notification) and not is_state_carrying_message(notification)
assert is_state_carrying_message(state_carrying) and is_event_carrying_message(state_carrying)
assert is_aggregate_exists_message(exists) and not is_event_carrying_message(exists)

# %% [markdown]
# ## 2. A bus fans out
#
# A **channel** checks that a message comes from one of its *source event stores*, then hands
# it to its **adapter**, which does the delivering (`castore_edu/messaging/channels.py`). Here the adapter is
# in memory (`castore_edu/messaging/in_memory_bus.py`); a real one would talk to a broker, and the
# publishing code would not change.
#
# A bus delivers each message to **every** listener whose filter matches. Listeners register
# with a filter pattern: `event_store_id`, `event_type`, or both; `{}` matches everything.
# `publish_message` does not wait for the listeners (a bus does not know who listens, let alone
# how long they take): `await adapter.wait_idle()` waits until every delivery is over.

# %%
from castore_edu import InMemoryMessageBusAdapter, NotificationMessageBus

bus = NotificationMessageBus(message_bus_id="POKEDEX_BUS", source_event_stores=[pokemons, trainers])
bus_adapter = InMemoryMessageBusAdapter.attach_to(bus)

received = {"everything": [], "pokemons": [], "level-ups": []}


async def everything(message, context):
    received["everything"].append((message.event_store_id, message.event.type))


async def pokemon_page(message, context):
    received["pokemons"].append(message.event.type)


async def level_up_alert(message, context):
    received["level-ups"].append(message.event.version)


bus_adapter.on({}, everything)
bus_adapter.on({"event_store_id": "POKEMONS"}, pokemon_page)
bus_adapter.on({"event_store_id": "POKEMONS", "event_type": "POKEMON_LEVELED_UP"}, level_up_alert)

for event in pikachu.events:
    await bus.publish_message(NotificationMessage("POKEMONS", event))
ash = await trainers.get_aggregate("ash")
await bus.publish_message(NotificationMessage("TRAINERS", ash.events[0]))
await bus_adapter.wait_idle()

received

# %%
assert received["pokemons"] == [
    "POKEMON_APPEARED",
    "POKEMON_CAUGHT",
    "POKEMON_LEVELED_UP",
    "POKEMON_LEVELED_UP",
]
assert received["level-ups"] == [3, 4]
assert received["everything"][-1] == ("TRAINERS", "TRAINER_CREATED") and len(received["everything"]) == 5

# %% [markdown]
# A channel only carries messages of its source stores. A message from elsewhere is refused
# before any adapter sees it:

# %%
from castore_edu import MessageChannelEventStoreNotFoundError

try:
    await bus.publish_message(NotificationMessage("GYMS", pikachu.last_event))
except MessageChannelEventStoreNotFoundError as error:
    print("refused:", error)
else:
    raise AssertionError("a message from an unknown store must be refused")

# %% [markdown]
# ## 3. A queue takes turns
#
# A **queue** hands each message to one **worker**. This course's in-memory queue
# (`castore_edu/messaging/in_memory_queue.py`) has a single worker that takes one message at a time,
# in the order they were published. A bus starts a delivery for every message at once. To see
# the difference, the consumer below writes down when it starts and ends each message, and
# awaits in between (as real work would).

# %%
import asyncio

from castore_edu import InMemoryMessageQueueAdapter, NotificationMessageQueue


def timeline_consumer(timeline):
    async def consume(message, context):
        timeline.append(f"start v{message.event.version}")
        await asyncio.sleep(0)
        timeline.append(f"end v{message.event.version}")

    return consume


queue_timeline, bus_timeline = [], []
queue = NotificationMessageQueue(message_queue_id="POKEDEX_QUEUE", source_event_stores=[pokemons])
queue_adapter = InMemoryMessageQueueAdapter.attach_to(queue, worker=timeline_consumer(queue_timeline))
timing_bus = NotificationMessageBus(message_bus_id="TIMING_BUS", source_event_stores=[pokemons])
timing_bus_adapter = InMemoryMessageBusAdapter.attach_to(timing_bus)
timing_bus_adapter.on({}, timeline_consumer(bus_timeline))

for channel in (queue, timing_bus):
    await channel.publish_messages([NotificationMessage("POKEMONS", event) for event in pikachu.events[:2]])
await queue_adapter.wait_idle()
await timing_bus_adapter.wait_idle()

print("queue:", queue_timeline)
print("bus:  ", bus_timeline)
assert queue_timeline == ["start v1", "end v1", "start v2", "end v2"]  # one at a time
assert bus_timeline == ["start v1", "start v2", "end v1", "end v2"]  # both at once

# %% [markdown]
# That order is the in-memory adapter's, not a promise of queues in general. Even here, a
# message whose worker fails goes to the *back* of the queue to wait for its retry (retries are
# section 5), so later messages overtake it. Amazon SQS, behind Castore's queue adapter, has two
# kinds: a *standard* queue delivers at least once and in no guaranteed order, and several
# workers (competing consumers) take messages in parallel; a *FIFO* queue keeps order only within
# a *message group* (one per aggregate, say), and hands out a group's next message only once the
# one before it is done.
#
# So use a queue when each message must be handled by exactly one worker — a projection that
# updates one row per message, work that must not flood its consumer — and use a bus to let any
# number of independent consumers react. When order matters, check what your queue keeps (a FIFO
# queue, grouped by aggregate), or make the consumer cope with disorder (notebooks 07 and 08).

# %% [markdown]
# ## 4. State-carrying channels
#
# A state-carrying channel expects the aggregate in each message. If you only have an event,
# `get_aggregate_and_publish_message` reads the aggregate *at that event's version* from the
# source store and publishes the complete message — one read on the way in, so that no consumer
# has to read.

# %%
from castore_edu import StateCarryingMessageBus

state_bus = StateCarryingMessageBus(message_bus_id="STATE_BUS", source_event_stores=[pokemons])
state_adapter = InMemoryMessageBusAdapter.attach_to(state_bus)
levels_seen = []


async def level_board(message, context):
    levels_seen.append((message.event.version, message.aggregate.level))


state_adapter.on({"event_store_id": "POKEMONS"}, level_board)
for event in pikachu.events:
    await state_bus.get_aggregate_and_publish_message(NotificationMessage("POKEMONS", event))
await state_adapter.wait_idle()

print("(version, level) as consumers saw them:", levels_seen)
for version, level in levels_seen:
    assert (await pokemons.get_aggregate("pikachu", max_version=version)).aggregate.level == level
assert levels_seen == [(1, 5), (2, 5), (3, 6), (4, 7)]

# %% [markdown]
# ## 5. Retries and dead letters
#
# Delivery is fire-and-forget: a consumer's failure never reaches the publisher (it has moved
# on), just as with a real broker. So the adapter retries on its own: after a failure it waits
# `retry_delay_ms × retry_backoff_rate ** (attempt − 1)` milliseconds and delivers again, up to
# `retry_attempts` more times (`castore_edu/messaging/delivery.py`). The defaults wait 30 s then 60 s;
# we use 5 ms and 10 ms so the notebook stays quick. Each delivery comes with a `TaskContext`
# saying which attempt it is.

# %%
flaky_contexts = []


async def flaky_handler(message, context):
    flaky_contexts.append(context)
    if context.attempt < 3:
        raise ConnectionError("the read model database is restarting")


retry_bus = NotificationMessageBus(message_bus_id="RETRY_BUS", source_event_stores=[pokemons])
retry_adapter = InMemoryMessageBusAdapter.attach_to(
    retry_bus, retry_attempts=2, retry_delay_ms=5, retry_backoff_rate=2
)
retry_adapter.on({}, flaky_handler)

await retry_bus.publish_message(notification)
await retry_adapter.wait_idle()

print([(context.attempt, context.retry_attempts_left) for context in flaky_contexts])
assert [(context.attempt, context.retry_attempts_left) for context in flaky_contexts] == [
    (1, 2),
    (2, 1),
    (3, 0),
]
assert [retry_adapter.retry_delay_for(attempt) for attempt in (1, 2)] == [5, 10]
assert retry_adapter.dead_letters == []  # the third delivery worked

# %% [markdown]
# When the last retry fails too, the message becomes a **dead letter**: Castore only logs it;
# castore_edu logs it (logger `castore_edu`, level ERROR) *and* keeps it in
# `adapter.dead_letters`, so lost work stays visible. Here we catch the log in a list instead of
# printing it.

# %%
import logging


class KeepRecords(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


kept = KeepRecords()
castore_logger = logging.getLogger("castore_edu")
castore_logger.addHandler(kept)
castore_logger.propagate = False


async def broken_handler(message, context):
    raise ValueError("this handler has a bug")


broken_bus = NotificationMessageBus(message_bus_id="BROKEN_BUS", source_event_stores=[pokemons])
broken_adapter = InMemoryMessageBusAdapter.attach_to(broken_bus, retry_attempts=1, retry_delay_ms=5)
broken_adapter.on({}, broken_handler)
await broken_bus.publish_message(notification)
await broken_adapter.wait_idle()

castore_logger.removeHandler(kept)
castore_logger.propagate = True

(dead,) = broken_adapter.dead_letters
print(f"dead letter: v{dead.message.event.version} after {dead.attempts} deliveries: {dead.error!r}")
assert dead.attempts == 2 and isinstance(dead.error, ValueError) and dead.message == notification
assert [record.levelname for record in kept.records] == ["ERROR"]

# %% [markdown]
# ## 6. Replay
#
# A consumer that joins late — a new read model, or a fixed one that must rebuild — needs the
# messages it missed. The `pour_*` functions (`castore_edu/replay/dam.py`, after Castore's lib-dam) read
# events back from a store and publish them again with `replay=True`. A bus listener receives
# replayed messages only if its filter says `on_replay=True`, so live-only consumers (say,
# e-mails) are not triggered twice.

# %%
from castore_edu import pour_aggregate_events

replay_bus = NotificationMessageBus(message_bus_id="REPLAY_BUS", source_event_stores=[pokemons])
replay_adapter = InMemoryMessageBusAdapter.attach_to(replay_bus)
rebuilt, emails = [], []


async def rebuild_read_model(message, context):
    rebuilt.append((message.event.version, context.replay))


async def send_email(message, context):
    emails.append(message.event.version)


replay_adapter.on({"event_store_id": "POKEMONS", "on_replay": True}, rebuild_read_model)
replay_adapter.on({"event_store_id": "POKEMONS"}, send_email)

poured = await pour_aggregate_events(event_store=pokemons, message_channel=replay_bus, aggregate_id="pikachu")
await replay_adapter.wait_idle()

print(poured.poured_event_count, "events poured; read model saw", rebuilt, "; e-mails sent:", emails)
assert poured.poured_event_count == 4 and poured.last_poured_event == pikachu.last_event
assert rebuilt == [(1, True), (2, True), (3, True), (4, True)]
assert emails == []  # live-only listeners ignore replays

# %% [markdown]
# A consumer that needs every aggregate, not every event — say, a cache of each Pokémon's
# current state — starts from the list of what exists. `pour_event_store_aggregate_ids` pours
# one `AggregateExistsMessage` per aggregate of a store; the worker reads each aggregate itself.

# %%
from castore_edu import AggregateExistsMessageQueue, pour_event_store_aggregate_ids

cache = {}


async def cache_pokemon(message, context):
    cache[message.aggregate_id] = (await pokemons.get_aggregate(message.aggregate_id)).aggregate


ids_queue = AggregateExistsMessageQueue(message_queue_id="POKEMON_IDS", source_event_stores=[pokemons])
ids_adapter = InMemoryMessageQueueAdapter.attach_to(ids_queue, worker=cache_pokemon)
poured_ids = await pour_event_store_aggregate_ids(event_store=pokemons, message_channel=ids_queue)
await ids_adapter.wait_idle()

print(poured_ids.poured_aggregate_id_count, "ids poured; cached:", {i: p.level for i, p in cache.items()})
listed = [entry.aggregate_id for entry in (await pokemons.list_aggregate_ids()).aggregate_ids]
assert list(cache) == listed == ["pikachu", "charmander"] and poured_ids.poured_aggregate_id_count == 2
for pokemon_id in listed:
    assert cache[pokemon_id] == (await pokemons.get_aggregate(pokemon_id)).aggregate

# %% [markdown]
# ## Leaving nothing behind
#
# Delivery runs in asyncio tasks that outlive `publish_message`. A notebook (or a test) that
# stops without waiting for them may cut a delivery short or leave a retry sleeping. We awaited
# `wait_idle()` after each publish, so no task started by castore_edu is still running:


# %%
from castore_edu.course.scenes import castore_tasks  # asyncio.all_tasks() whose code is castore_edu's

assert castore_tasks() == []

# %% [markdown]
# ## Recap
#
# - Notifications carry the event; state-carrying messages also carry the aggregate (Fowler's
#   event notification vs event-carried state transfer); aggregate-exists messages carry an id.
# - A channel checks the source store and delegates delivery to its adapter.
# - A bus fans out to every matching listener, concurrently; a queue gives each message to one
#   worker. The in-memory queue has one worker, in order; SQS standard queues keep no order, FIFO
#   queues keep it per message group.
# - Consumers fail silently for the publisher: the adapter retries with back-off, then keeps a
#   dead letter (and logs it).
# - `pour_*` replays stored events with `replay=True`; listeners opt in with `on_replay`.
#   `pour_event_store_aggregate_ids` gives a new consumer the list of a store's aggregates.
#
# *When this notebook was last built it ran in {{build_time}} in a fresh kernel.*
#
# **Further reading**
#
# - Martin Fowler, *What do you mean by "Event-Driven"?*: <https://martinfowler.com/articles/201701-event-driven.html>
# - Castore, messages: <https://castore-dev.github.io/castore/docs/reacting-to-events/messages/>
# - Castore, message queues: <https://castore-dev.github.io/castore/docs/reacting-to-events/message-queues/>
# - Castore, message buses: <https://castore-dev.github.io/castore/docs/reacting-to-events/message-buses/>
# - Amazon SQS, standard and FIFO queues:
#   <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-queue-types.html>
# - In this package: `castore_edu/messaging/messages.py`, `castore_edu/messaging/channels.py`, `castore_edu/messaging/in_memory_bus.py`,
#   `castore_edu/messaging/in_memory_queue.py`, `castore_edu/messaging/delivery.py`, `castore_edu/replay/dam.py`.
#
# Next: **04 · The connected event store**.
