# %% [markdown]
# # 11 · Read models and CQRS: projections that apply every event exactly once
#
# **Time:** about 35 minutes. **Do it after** notebook 08 (notebooks 09–10 help, but are not needed).
#
# **Learning objectives.** By the end of this notebook you will be able to:
#
# 1. say what **CQRS** separates, and why a question such as "who leads the season?" wants a
#    read model of its own instead of folding every aggregate;
# 2. keep a read model with a **projection** whose changes and checkpoint commit in one
#    transaction, so that every event is applied exactly once — and show that a failing apply
#    and a process killed with `SIGKILL` mid-batch leave no trace;
# 3. rebuild a read model from the first event under a new name while the old one keeps
#    serving, watch its lag shrink, then switch the readers and drop the old one;
# 4. choose between a transactional checkpoint and notebook 08's idempotent consumer behind a
#    bus (at least once plus deduplication).

# %% [markdown]
# ## 1. CQRS: one side writes events, the other reads tables
#
# **CQRS** — *Command Query Responsibility Segregation* — splits an application in two:
#
# | side | what it does | kept in | shaped for |
# |---|---|---|---|
# | **commands** (write) | decide and store new events, with optimistic concurrency | the event store | one aggregate at a time |
# | **queries** (read) | answer questions | **read models**: tables, indexes, documents | the question asked |
#
# An aggregate answers "what does Ash own?" by folding Ash's events. "Who leads the season?"
# would fold *every* trainer, and every Pokémon to know their levels, at each request. A read
# model keeps the answer ready, and a **projection** keeps the read model: it follows the
# storage's ordered log (notebook 08) and applies each event to the tables. The two sides meet
# only in the log, so each can change without the other: a new question is a new read model,
# built from the events already stored.
#
# The season below is played by `castore_edu/course/leaderboard.py`: four trainers, wild Pokémon
# appearing, trainers catching them (the two events of a catch pushed as one group, notebook 06)
# and levelling them up, all chosen by a seeded generator — the same season on every run, in an
# SQLite file.

# %%
import inspect
import sqlite3
import tempfile
from collections import Counter

from castore_edu import SQLiteProjectionRunner
from castore_edu.course.leaderboard import Season, apply_v1, leaderboard_v1, top_trainers
from castore_edu.course.pokedex import sqlite_pokedex

temporary = tempfile.TemporaryDirectory()
database = f"{temporary.name}/pokedex.sqlite"
pokedex = sqlite_pokedex(database)
storage = pokedex.pokemons.event_storage_adapter
season = Season(pokedex, seed=18)
await season.start()
await season.play(120)
log = await storage.read_log()
print(f"{len(log)} events in the log:", dict(Counter(entry.event.type for entry in log)))
assert len(log) == await storage.last_position() == 162

# %% [markdown]
# ## 2. A leaderboard, kept by a projection
#
# `leaderboard_v1` ranks trainers by the Pokémon they caught. It is a `Projection`
# (`castore_edu/projections/projection.py`): a name, the event stores it follows (`TRAINERS`),
# the SQL that creates its table, and an `apply(connection, entry)` that changes the table for one
# log entry:

# %%
print(inspect.getsource(apply_v1))

# %% [markdown]
# `SQLiteProjectionRunner` (`castore_edu/projections/sqlite.py`) runs it on the events' own
# file, with a connection of its own. `await runner.step()` applies one batch of the log and
# returns how many events it applied; the `POKEMONS` entries of the batch are covered (the
# checkpoint passes them) but not applied. `await runner.lag()` counts the log entries beyond the
# checkpoint. `switch("leaderboard")` catches up and makes `leaderboard_v1` the version readers
# get: `top_trainers` (the read side) asks the table `serving_projections` which one serves.

# %%
v1 = SQLiteProjectionRunner(leaderboard_v1(pokedex), batch_size=25)
print(f"before: checkpoint {await v1.checkpoint()}, lag {await v1.lag()}")
applied = await v1.step()
print(f"one step: {applied} events applied, checkpoint {await v1.checkpoint()}, lag {await v1.lag()}")
assert applied == sum(1 for entry in log[:25] if entry.event_store_id == "TRAINERS")  # only its store's
assert (await v1.checkpoint(), await v1.lag()) == (25, len(log) - 25)  # but it covered all 25
assert await v1.switch("leaderboard") is None  # it catches up first; nothing served before
version, rows = top_trainers(v1.connection)
print(version, rows)


async def caught_per_trainer(key="name"):
    """What the event store says: the length of each trainer aggregate's pokemon_ids."""
    counts = {}
    for trainer_id in ("ash", "misty", "brock", "gary"):
        trainer = (await pokedex.trainers.get_aggregate(trainer_id)).aggregate
        counts[getattr(trainer, key)] = len(trainer.pokemon_ids)
    return counts


assert dict(rows) == await caught_per_trainer() and await v1.lag() == 0

# %% [markdown]
# ## 3. Exactly once: the read model and its checkpoint in one transaction
#
# The relay of notebook 08 publishes, *then* saves its checkpoint: two writes to two systems, so
# a crash between them publishes again (at least once). Here the read model lives in the same
# database as the checkpoint, so one transaction can hold both. Each step of the runner is:
#
# ```sql
# BEGIN IMMEDIATE              -- SQLite's write lock, taken now
# SELECT position FROM projection_checkpoints WHERE projection_name = 'leaderboard_v1'
#   -- ... apply(connection, entry) for each entry of the batch ...
# UPDATE projection_checkpoints SET position = <the batch's last position> WHERE ...
# COMMIT                       -- all of it, or (ROLLBACK, a crash) none of it
# ```
#
# Either the leaderboard changes *and* the checkpoint moves, or neither: the next step applies
# the same batch again to a table that never saw it. No table of processed keys is needed.
#
# A bug shows it. Below, the same projection runs with an `apply` that fails on the third catch
# of the batch, *after* it has updated the table for two catches and for that one.

# %%
from castore_edu import Projection

await season.play(25)
catches = [
    e.position
    for e in await storage.read_log(after_position=await v1.checkpoint())
    if e.event.type == "TRAINER_CAUGHT_POKEMON"
]


def buggy_apply(connection, entry):
    apply_v1(connection, entry)
    if entry.position == catches[2]:
        raise ValueError(f"a bug in the projection, at log position {entry.position}")


buggy = SQLiteProjectionRunner(
    Projection("leaderboard_v1", event_stores=[pokedex.trainers], apply=buggy_apply), batch_size=100
)
before = (await v1.checkpoint(), top_trainers(v1.connection))

# %% tags=["raises-exception"]
await buggy.step()

# %%
import sys

assert isinstance(sys.last_value, ValueError)
after = (await v1.checkpoint(), top_trainers(v1.connection))
print("checkpoint and leaderboard unchanged:", after == before)
assert after == before  # the three catches it had applied were rolled back with the checkpoint
buggy.close()
print(f"the fixed projection applies {await v1.run_until_caught_up()} events")  # the same ones, once
assert dict(top_trainers(v1.connection)[1]) == await caught_per_trainer()

# %% [markdown]
# ## 4. Kill the projection mid-batch, and resume
#
# A real crash now. The game goes on while nobody projects, then a **second process** runs the
# same projection (`python -m castore_edu.course.leaderboard`), 25 log entries per transaction.
# It is told to hold still inside the transaction of the batch that holds a given catch — after
# it has applied that catch, before its `COMMIT` — and we kill it there with `SIGKILL`: no
# `ROLLBACK`, no clean-up. SQLite's write-ahead log drops the transaction that never committed.

# %%
import subprocess

await season.play(60)
start = await v1.checkpoint()
backlog = await storage.read_log(after_position=start)
hold_at = next(
    e.position for e in backlog if e.event.type == "TRAINER_CAUGHT_POKEMON" and e.position > start + 50
)
projection_process = subprocess.Popen(
    [
        sys.executable,
        "-m",
        "castore_edu.course.leaderboard",
        database,
        "--batch-size",
        "25",
        "--hold-at",
        str(hold_at),
    ],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    text=True,
)
while True:
    line = projection_process.stdout.readline().strip()
    print("the other process:", line)
    if line.startswith("holding"):
        break
projection_process.kill()  # SIGKILL, inside the open transaction
projection_process.wait()
projection_process.stdin.close()
projection_process.stdout.close()
print("killed with", "SIGKILL" if projection_process.returncode == -9 else projection_process.returncode)

# %% [markdown]
# The other process committed two batches and died in the third. What is in the file? The
# checkpoint says how far the leaderboard is; folding the log up to the checkpoint by hand must
# give exactly the table — not one catch more (the dead batch's), not one less:

# %%
checkpoint = await v1.checkpoint()


def fold_catches(entries):
    """The v1 leaderboard, folded in Python from log entries: catches per trainer."""
    names = {
        e.event.aggregate_id: e.event.payload["name"] for e in entries if e.event.type == "TRAINER_CREATED"
    }
    counts = dict.fromkeys(names.values(), 0)
    for entry in entries:
        if entry.event.type == "TRAINER_CAUGHT_POKEMON":
            counts[names[entry.event.aggregate_id]] += 1
    return counts


print(f"checkpoint {checkpoint}: the killed batch started after it and held position {hold_at}")
assert start + 50 == checkpoint < hold_at  # two batches of 25 committed, the third not
in_file = dict(top_trainers(v1.connection)[1])
assert in_file == fold_catches(await storage.read_log(limit=checkpoint))
print("leaderboard == the fold of the log up to the checkpoint:", in_file)
print(f"resumed here: {await v1.run_until_caught_up()} events applied, lag {await v1.lag()}")
assert (
    dict(top_trainers(v1.connection)[1])
    == fold_catches(await storage.read_log())
    == await caught_per_trainer()
)

# %% [markdown]
# `tests/test_projection_kill.py` does this over and over: a projection process killed at seeded
# moments (inside a batch, after some commits, a few milliseconds after a commit), each time
# checking that the read model is exactly the fold of the events up to the checkpoint.
#
# ## 5. A new question: rebuild under a new name while the old one serves
#
# The season's prize now goes to the trainer whose Pokémon have the most **levels**. The v1
# table never kept levels: they are in the `POKEMONS` events. So `leaderboard_v2` follows both
# stores, with tables of its own, and is built **from the first event** — a rebuild — while
# readers keep getting v1. The game goes on meanwhile: each round, a few more moves are played,
# v1 steps (it keeps up), v2 steps (it catches up, 30 entries at a time), and a reader asks for
# the leaderboard.

# %%
from castore_edu.course.leaderboard import leaderboard_v2

v2 = SQLiteProjectionRunner(leaderboard_v2(pokedex), batch_size=30)
lags = {"leaderboard_v1": [], "leaderboard_v2": []}
for round_number in range(1, 13):
    await season.play(4)
    await v1.step()
    await v2.step()
    last = await storage.last_position()
    for runner in (v1, v2):
        lags[runner.name].append(await runner.lag())
    done = last - lags["leaderboard_v2"][-1]
    bar = "█" * (20 * done // last) + "░" * (20 - 20 * done // last)
    serving, _ = top_trainers(v1.connection)
    print(
        f"round {round_number:2}: v2 {bar} {done:3}/{last} (lag {lags['leaderboard_v2'][-1]:3}) | readers get {serving}"
    )
assert serving == "leaderboard_v1" and set(lags["leaderboard_v1"]) == {0}  # v1 kept serving, up to date

# %%
import matplotlib.pyplot as plt

figure, axes = plt.subplots(figsize=(7, 3.2))
rounds = range(1, len(lags["leaderboard_v1"]) + 1)
for name, marker in (("leaderboard_v1", "o"), ("leaderboard_v2", "s")):
    axes.plot(
        rounds,
        lags[name],
        marker=marker,
        label=f"{name} ({'serving' if name.endswith('1') else 'rebuilding'})",
    )
axes.set_xlabel("round (4 moves of the game, then one step of each projection)")
axes.set_ylabel("lag (log entries)")
axes.set_title("Rebuilding leaderboard_v2 from the first event while v1 serves")
axes.legend()
figure.tight_layout()
plt.show()

# %% [markdown]
# v2's lag shrinks by about 30 entries a round (its batch) minus the few the game adds; v1, which
# steps right after the moves, stays at 0. When v2 has caught up, `switch` points the read model
# at it — in the transaction of its last batch, so readers never get a version that is behind —
# and returns the version it replaces, which can then go: `drop()` removes its tables and its
# checkpoint (refused while it still serves). The two versions answer different questions:
# Brock caught the most Pokémon, Ash's have the most levels.

# %%
print("readers get, before:", top_trainers(v1.connection))
previous = await v2.switch("leaderboard")
print("readers get, after: ", top_trainers(v2.connection))
await v1.drop()
tables = [
    name
    for (name,) in v2.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
]
print("tables:", tables)
assert previous == "leaderboard_v1" and "leaderboard_v1" not in tables


async def levels_per_trainer():
    """What the event store says: the levels of each trainer's Pokémon, from the aggregates."""
    levels = {}
    for trainer_id in ("ash", "misty", "brock", "gary"):
        trainer = (await pokedex.trainers.get_aggregate(trainer_id)).aggregate
        owned = [
            (await pokedex.pokemons.get_aggregate(pokemon_id)).aggregate for pokemon_id in trainer.pokemon_ids
        ]
        levels[trainer.name] = (len(owned), sum(pokemon.level for pokemon in owned))
    return levels


assert {
    name: (caught, total) for name, caught, total in top_trainers(v2.connection)[1]
} == await levels_per_trainer()

# %% [markdown]
# ## 6. Which one, when? A transactional checkpoint, or an idempotent consumer behind a bus
#
# Notebook 08 (section 4) kept a read model another way: a relay publishes the log on a bus,
# **at least once**, and the consumer is made idempotent — it remembers the key
# `(event_store_id, aggregate_id, version)` of every message it has applied, and skips the rest.
# Here is that consumer for the v1 leaderboard, its keys in the same SQLite file
# (`SQLiteProcessedMessages`), fed by a relay that, as after a crash before its checkpoint was
# saved, publishes everything a second time:

# %%
from castore_edu import (
    InMemoryCheckpointStore,
    NotificationMessageBus,
    Relay,
    SQLiteProcessedMessages,
    idempotent,
)
from castore_edu.course.scenes import castore_tasks, listening_bus

bus, _ = listening_bus(NotificationMessageBus, "TRAINER_NEWS", [pokedex.trainers])
consumer_database = sqlite3.connect(database, isolation_level=None)
caught_on_bus = Counter()


async def count_catch(message, context):
    if message.event.type == "TRAINER_CAUGHT_POKEMON":
        caught_on_bus[message.event.aggregate_id] += 1


consumer = idempotent(count_catch, SQLiteProcessedMessages(consumer_database, "bus-leaderboard"))
bus.message_channel_adapter.on({}, consumer)
relay_checkpoints = InMemoryCheckpointStore()
relay = Relay(storage, {"TRAINERS": bus}, name="trainer-news", checkpoints=relay_checkpoints)
await relay.catch_up()
await relay_checkpoints.save("trainer-news", 0)  # the crash: its checkpoint was never saved
await relay.catch_up()
await bus.message_channel_adapter.wait_idle()
(keys,) = consumer_database.execute("SELECT COUNT(*) FROM processed_messages").fetchone()
(checkpoint_rows,) = v2.connection.execute("SELECT COUNT(*) FROM projection_checkpoints").fetchone()
print(f"bus consumer: {consumer.handled} applied, {consumer.skipped} duplicates skipped, {keys} keys kept")
print(
    f"projection:   one checkpoint row per projection ({checkpoint_rows} here), whatever the number of events"
)
trainer_events = sum(1 for entry in await storage.read_log() if entry.event_store_id == "TRAINERS")
assert consumer.handled == consumer.skipped == keys == trainer_events
assert dict(caught_on_bus) == await caught_per_trainer(key="aggregate_id")

# %% [markdown]
# Both count every catch once. They pay for it differently:
#
# | | transactional checkpoint (this notebook) | at least once + dedup (notebook 08, §4) |
# |---|---|---|
# | where the read model lives | in the **events' own database** (the transaction must hold both) | anywhere: another database, a search index, another service |
# | what it remembers | one position per projection | one key per event applied (or a version per aggregate, for latest-state models) |
# | how it learns of new events | it reads the log itself, in order | a bus or queue delivers them (a relay or the connected store publishes) |
# | duplicates | none: a batch commits with its checkpoint, or not at all | delivered, then skipped; the key must commit with the effect (same transaction), or a crash between them applies it twice |
# | order | log order, always | per aggregate, if the channel keeps it; replays and retries interleave |
# | fan-out | every reader of the database | many consumers, processes and teams, each at its own pace |
# | rebuild | a new name from position 0, then switch | clear the model *and* its keys, then replay (notebook 08, §5) |
#
# Use a **projection with a transactional checkpoint** when the read model can live beside the
# events (the same SQLite file, the same PostgreSQL database): it is simpler and exactly once by
# construction. Use **a bus and an idempotent consumer** when the read model lives elsewhere,
# or many independent consumers must react — and then keep the key in the consumer's own
# transaction, as exercise 10 does.
#
# What it costs (`python -m benchmarks.projections`; `docs/benchmarks.md` has the table): both
# pay one durable commit per batch. On SQLite a projection applying one upsert per event keeps
# pace with a relay publishing to an in-memory bus — about 3,500 events/s one event per batch,
# 25,000 in batches of 10, 50,000 in batches of 100 or more, on the loaded development machine.
# On PostgreSQL every statement crosses the wire: even sent in one go (psycopg's pipeline mode),
# the projection reaches about 0.4 of the relay's rate in large batches (12,000–14,000 events/s
# against 32,000–38,000).

# %%
consumer_database.close()
v2.close()
pokedex.close()
temporary.cleanup()
assert castore_tasks() == []  # nothing left running (notebook 03, "Leaving nothing behind")

# %% [markdown]
# ## Recap
#
# - **CQRS**: commands store events, queries read **read models** shaped for their question;
#   a **projection** follows the ordered log and keeps a read model up to date.
# - A projection runner applies a batch of events and moves the checkpoint **in one
#   transaction** of the events' own database: a failing apply or a `SIGKILL` mid-batch leaves
#   neither half a batch nor a checkpoint ahead of the table — every event is applied exactly once.
# - **Lag** is the log entries beyond the checkpoint: `await runner.lag()`.
# - A new question means a new read model under a **new name**, rebuilt from the first event
#   while the old one keeps serving; `switch` points readers at it once it has caught up, and
#   `drop` removes the old one.
# - A transactional checkpoint needs the read model beside the events; otherwise, deliver at least
#   once and deduplicate with keys kept in the consumer's own transaction.
#
# *When this notebook was last built it ran in {{build_time}} in a fresh kernel.*
#
# **Further reading**
#
# - Martin Fowler, *CQRS*: <https://martinfowler.com/bliki/CQRS.html>
# - Microsoft, *CQRS pattern* (read models, materialized views):
#   <https://learn.microsoft.com/en-us/azure/architecture/patterns/cqrs>
# - Chris Richardson, *Command Query Responsibility Segregation*:
#   <https://microservices.io/patterns/data/cqrs.html>
# - SQLite, *Transactions* (`BEGIN IMMEDIATE`): <https://www.sqlite.org/lang_transaction.html>
# - In this package: `castore_edu/projections/` (`projection.py`, `runner.py`, `sqlite.py`,
#   `postgres.py`), `castore_edu/course/leaderboard.py`, `tests/test_projection_kill.py`,
#   `benchmarks/projections.py`; docs/api.md §16.
#
# Now do exercise 11 in `exercises/06_read_models.ipynb` (a projection step that keeps the read
# model and its checkpoint in one transaction).
