# %% [markdown]
# # 12 · Snapshots: reading a long aggregate from a saved fold
#
# **Time:** about 40 minutes.
#
# **Learning objectives.** By the end of this notebook you will be able to:
#
# 1. give an event store snapshots — a store, a policy, a reducer version — and read what
#    `get_aggregate` returns from one (`snapshot_version`, and only the events after it);
# 2. measure what a command reads and how long it takes as an aggregate grows from 10 to 10,000
#    events, with and without snapshots, next to notebook 05's `prev_aggregate`;
# 3. show a *stale* snapshot after a reducer change, and how the reducer version guards it;
# 4. say when snapshots are premature, from measurements of your own aggregates.
#
# An aggregate is never stored: it is folded from its events on every read (notebook 01). That is
# what makes it trustworthy, and what makes a long history slow. Notebook 05 took one read away
# from a *write* (`prev_aggregate`); a snapshot shortens every *read*. Castore has no snapshots
# yet, and its users keep asking for them (issue #181, the open pull request #201): here is one
# way to build them, and what they cost.

# %% [markdown]
# ## 1. Snapshots in one screen
#
# A **snapshot** is an aggregate as the reducer folded it at one version, saved so that a later
# read starts there. `SnapshotConfig` (`castore_edu/snapshots/config.py`) tells an event store
# three things:
#
# - **where** snapshots live: a snapshot store (here in memory; SQLite and PostgreSQL in section 5);
# - **when** to take one: a policy, `EveryNEvents(100)`, saves one each time a read passes a
#   multiple of 100 versions;
# - **which reducer** made them: `reducer_version`, a name you change whenever the reducer changes
#   (section 3 shows why).
#
# Pikachu appears at level 1 and levels up until it has 250 events, so its level is 250.

# %%
from castore_edu import EveryNEvents, InMemoryEventStorageAdapter, InMemorySnapshotStore, SnapshotConfig
from castore_edu.core.clock import stepping_clock
from castore_edu.course.pokedex import level_ups, pokemon_appeared, pokemon_leveled_up, pokemons_event_store


def history(size, pokemon_id="pikachu"):
    """A Pokémon that appears at level 1, then levels up until it has `size` events."""
    return [
        pokemon_appeared(pokemon_id, name=pokemon_id.title(), level=1),
        *level_ups(pokemon_id, first_version=2, count=size - 1),
    ]


adapter = InMemoryEventStorageAdapter(history(250), clock=stepping_clock())
snapshots = InMemorySnapshotStore()
pokemons = pokemons_event_store(adapter)
pokemons.snapshots = SnapshotConfig(snapshots, reducer_version="v1", policy=EveryNEvents(100))
plain = pokemons_event_store(adapter)  # the same events, no snapshots

first = await pokemons.get_aggregate("pikachu")  # no snapshot yet: folds all 250, then saves one
second = await pokemons.get_aggregate("pikachu")  # starts from it
print(f"{'':8}{'snapshot_version':>17}{'events':>8}{'last_event':>12}{'level':>7}")
for name, result in (("first", first), ("second", second)):
    print(
        f"{name:8}{result.snapshot_version!s:>17}{len(result.events):>8}"
        f"{result.last_event.version:>12}{result.aggregate.level:>7}"
    )
assert first.aggregate == second.aggregate == (await plain.get_aggregate("pikachu")).aggregate
assert (first.snapshot_version, len(first.events)) == (None, 250)
assert (second.snapshot_version, second.events) == (250, [])

# %% [markdown]
# Look at what the second read returned. `AggregateResult` now says where its fold started:
#
# - `snapshot_version` is the version of the snapshot it started from (`None`: from nothing);
# - `events` holds **only the events after the snapshot** — none here. So
#   `build_aggregate(result.events, snapshot.aggregate) == result.aggregate` still holds, and code
#   that needs the whole history asks `get_events`;
# - `last_event` is still the aggregate's last event (a command computes the next version from
#   it): the read starts *at* the snapshot's version, and that event is read but not folded again.
#
# That answers the question Castore's pull request leaves open — should `events` be partial,
# or cost a full read? Partial, and saying so. Three more pushes, and the next read folds three:

# %%
for version in (251, 252, 253):
    await pokemons.push_event(pokemon_leveled_up("pikachu", version=version))
third = await pokemons.get_aggregate("pikachu")
(saved,) = await snapshots.list_snapshots("POKEMONS", "pikachu")

print("snapshot kept:", saved.version, saved.reducer_version, saved.aggregate)
print("read:", third.snapshot_version, [event.version for event in third.events], third.aggregate.level)
assert pokemons.build_aggregate(third.events, saved.aggregate) == third.aggregate
assert third.last_event.version == 253 and third.aggregate.level == 253

# %% [markdown]
# Where do snapshots come from? **Only from reads**: what `get_aggregate` folded from storage is
# offered to the policy. A push never saves one, even when it computes `next_aggregate` from a
# `prev_aggregate`: that one is trusted, not checked (notebook 05, section 3), and a stale one
# frozen into a snapshot would be folded into every later read. A snapshot is a cache; a cache is
# filled from the source of truth.
#
# ## 2. What a command reads, as an aggregate grows
#
# We measure as notebook 05 did: a `SimulatedLatencyAdapter` waits 1 ms before every call to
# storage and counts calls and events. A **command** here reads Pikachu, then pushes a level-up
# through a connected store with a state-carrying bus, whose consumer needs the new aggregate.
# Four ways to run it:
#
# | | read before deciding | aggregate for the message |
# |---|---|---|
# | neither | all events | read back: all events again |
# | `prev_aggregate` (05) | all events | folded from the aggregate read, no read |
# | snapshots | from the snapshot | read back, from the snapshot |
# | snapshots + `prev_aggregate` | from the snapshot | no read |
#
# With snapshots, one earlier read of the aggregate has run before we measure, as it would have
# in production, and left a snapshot at the last event. (It is not counted. The benchmark,
# `python -m benchmarks.snapshots`, also measures the policy's worst case: a snapshot 99 events back.)

# %%
import time
from dataclasses import dataclass

import matplotlib.pyplot as plt

from castore_edu import ConnectedEventStore, InMemoryMessageBusAdapter, StateCarryingMessageBus
from castore_edu.testing.latency import CallCounts, SimulatedLatencyAdapter

LATENCY_MS = 1.0
SIZES = [10, 100, 1_000, 10_000]
COMMANDS = 3  # commands measured per size and mode
MODES = ["neither", "prev_aggregate", "snapshots", "snapshots + prev_aggregate"]
histories = {size: history(size) for size in SIZES}


@dataclass(frozen=True)
class Measurement:
    counts: CallCounts
    ms_per_command: float


async def measure(size, mode):
    storage = SimulatedLatencyAdapter(
        InMemoryEventStorageAdapter(histories[size], clock=stepping_clock()), latency_ms=LATENCY_MS
    )
    store = pokemons_event_store(storage)
    if mode.startswith("snapshots"):
        store.snapshots = SnapshotConfig(
            InMemorySnapshotStore(), reducer_version="v1", policy=EveryNEvents(100)
        )
    bus = StateCarryingMessageBus(message_bus_id="LEVELS", source_event_stores=[store])
    received = []

    async def read_model(message, context):
        received.append(message.aggregate.level)

    bus_adapter = InMemoryMessageBusAdapter.attach_to(bus)
    bus_adapter.on({}, read_model)
    connected = ConnectedEventStore(store, bus)
    if store.snapshots is not None:
        await store.get_aggregate("pikachu")  # the earlier read, which left a snapshot (not counted)
    storage.reset_counts()
    started = time.perf_counter()
    for _ in range(COMMANDS):
        pikachu = (await connected.get_aggregate("pikachu")).aggregate  # the command's read
        event = pokemon_leveled_up("pikachu", version=pikachu.version + 1)
        await connected.push_event(event, prev_aggregate=pikachu if mode.endswith("prev_aggregate") else None)
    elapsed = time.perf_counter() - started
    await bus_adapter.wait_idle()
    assert received == [size + 1, size + 2, size + 3]  # every message carries the right level
    return Measurement(storage.counts, 1000 * elapsed / COMMANDS)


measurements = {(size, mode): await measure(size, mode) for size in SIZES for mode in MODES}

# %% [markdown]
# The counts are exact, so we assert them. For `size` events and three commands: without
# snapshots, every read returns the whole history (`size`, `size + 1`, `size + 2` events, and as
# many again read back when there is no `prev_aggregate`). With snapshots, a read returns the
# snapshot's own event and what came after: 1, 2, 3 events — **once the aggregate has a snapshot**.
# At 10 events it never gets one (the policy waits for 100), so snapshots change nothing there.

# %%
for size in SIZES:
    snapshotted = size >= 100
    expected = {
        "neither": (2 * COMMANDS, 6 * size + 9),
        "prev_aggregate": (COMMANDS, 3 * size + 3),
        "snapshots": (2 * COMMANDS, 15 if snapshotted else 6 * size + 9),
        "snapshots + prev_aggregate": (COMMANDS, 6 if snapshotted else 3 * size + 3),
    }
    for mode, (reads, events_read) in expected.items():
        counts = measurements[size, mode].counts
        assert (counts.reads, counts.events_read) == (reads, events_read), (size, mode, counts)

LABELS = {"neither": "neither", "prev_aggregate": "prev_aggregate", "snapshots": "snapshots"}
LABELS["snapshots + prev_aggregate"] = "both"
print("round trips / events read, per command")
print(f"{'events':>7} | " + " | ".join(f"{LABELS[mode]:>14}" for mode in MODES))
for size in SIZES:
    cells = []
    for mode in MODES:
        counts = measurements[size, mode].counts
        cells.append(f"{counts.reads // COMMANDS} / {counts.events_read // COMMANDS:,}".rjust(14))
    print(f"{size:>7,} | " + " | ".join(cells))

# %% [markdown]
# Times are measured live, so they differ on every run (the notebook tests mask them); their
# shape does not. Without snapshots a command's cost grows with the aggregate: transferring and
# folding its history. `prev_aggregate` halves it (one read instead of two); snapshots flatten it;
# both together leave one round trip and a few events, whatever the size.

# %%
for size in SIZES:
    figures = ", ".join(f"{mode} {measurements[size, mode].ms_per_command:.2f} ms" for mode in MODES)
    print(f"{size:>6,} events: {figures}")

largest = SIZES[-1]
assert (
    measurements[largest, "snapshots + prev_aggregate"].ms_per_command
    < measurements[largest, "prev_aggregate"].ms_per_command
)

# %%
figure, (reads_axes, time_axes) = plt.subplots(1, 2, figsize=(11, 4))
markers = {"neither": "o", "prev_aggregate": "s", "snapshots": "^", "snapshots + prev_aggregate": "D"}
for mode in MODES:
    rows = [measurements[size, mode] for size in SIZES]
    reads_axes.plot(
        SIZES, [row.counts.events_read / COMMANDS for row in rows], marker=markers[mode], label=mode
    )
    time_axes.plot(SIZES, [row.ms_per_command for row in rows], marker=markers[mode], label=mode)
reads_axes.set(
    xscale="log",
    yscale="log",
    xlabel="events in the aggregate",
    ylabel="events read per command",
    title="Events read per command (read + publish)",
)
time_axes.set(
    xscale="log",
    yscale="log",
    xlabel="events in the aggregate",
    ylabel="ms per command",
    title=f"Time per command ({LATENCY_MS:g} ms simulated latency)",
)
for axes in (reads_axes, time_axes):
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8)
figure.subplots_adjust(wspace=0.3)
plt.show()

# %% [markdown]
# Two different savings, which add up. `prev_aggregate` removes a **round trip** (the read back);
# snapshots shorten **every read**, the command's own included. Below about 100 events neither
# fold nor transfer costs much next to a 1 ms round trip: the time curves sit on top of each other
# there, and only `prev_aggregate`'s missing round trip shows.
#
# ## 3. A stale snapshot after a reducer change
#
# A snapshot freezes what *one* reducer made of every event before it. Change the reducer, and
# every snapshot taken before the change still holds the old reducer's answer.
#
# Here is such a change. The game designers decide that a wild Pokémon appears at **level 5** at
# least: `POKEMON_APPEARED` now folds into `max(5, payload["level"])`. Pikachu appeared at level 1,
# so with the new reducer it should be at level 253 + 4 = 257. The snapshot at 250 was folded by
# the old reducer, from level 1. Deploy the new reducer and forget to change the reducer version:

# %%
import dataclasses

from castore_edu.course.pokedex import POKEMON_APPEARED, pokemon_reducer


def reducer_with_level_5_at_least(pokemon, event):
    """The new rule: a Pokémon appears at level 5 at least."""
    folded = pokemon_reducer(pokemon, event)
    if event.type == POKEMON_APPEARED.type:
        return dataclasses.replace(folded, level=max(5, folded.level))
    return folded


pokemons.reducer = reducer_with_level_5_at_least  # the new code is deployed...
# ...and pokemons.snapshots still says reducer_version="v1"

stale = await pokemons.get_aggregate("pikachu")
truth = pokemons.build_aggregate(await pokemons.get_events("pikachu"))  # a fold from scratch
print(f"from the snapshot at {stale.snapshot_version}: level {stale.aggregate.level}")
print(f"from the events:           level {truth.level}")
assert stale.snapshot_version == 250
assert (stale.aggregate.level, truth.level) == (253, 257)  # four levels wrong, for good

# %% [markdown]
# Nothing failed and nothing warned: the read was fast, the result wrong — and it stays wrong for
# every read that starts from an old snapshot, which is every read of an aggregate that has one.
# Only aggregates *without* a snapshot (the short ones) get the new rule. Two aggregates with the
# same history would disagree.
#
# **The guard: the reducer version.** Every snapshot carries the `reducer_version` it was taken
# with, and a read uses only snapshots of the version declared *now*. Changing the reducer and the
# version together is the whole fix:

# %%
pokemons.snapshots = SnapshotConfig(snapshots, reducer_version="v2", policy=EveryNEvents(100))

fixed = await pokemons.get_aggregate("pikachu")  # no v2 snapshot yet: folds from scratch, saves one
again = await pokemons.get_aggregate("pikachu")  # from the v2 snapshot
print(
    "first read with v2: ", fixed.snapshot_version, len(fixed.events), "events, level", fixed.aggregate.level
)
print(
    "second read with v2:", again.snapshot_version, len(again.events), "events, level", again.aggregate.level
)
print(
    "kept:", [(s.version, s.reducer_version) for s in await snapshots.list_snapshots("POKEMONS", "pikachu")]
)
assert fixed.aggregate == again.aggregate == truth
assert (fixed.snapshot_version, again.snapshot_version) == (None, 253)

# %% [markdown]
# The v1 snapshot is still kept, and never used again: a snapshot of another version is ignored
# by every store (`load_latest` filters on it) and, once more, by `SnapshotConfig`, so that a store
# of your own that forgot the filter cannot break the guard. (`await snapshots.discard(...)`
# removes old ones when you want the space back.) The first read of each aggregate after the
# change pays a full fold: bump the version when the *reducer* changes, not on every deployment.
#
# The guard relies on you to bump it, and a version changed by hand is easy to forget (Castore's
# users say as much in issue #181). A test can catch the forgotten bump: fold a few recorded
# histories from scratch and from a snapshot taken before the change, and compare.
#
# Two more rules keep a snapshot from changing a result (`castore_edu/snapshots/protocol.py`):
# a store **copies** (a reducer that changes the aggregate in place cannot change a stored
# snapshot), and a snapshot whose own event is not in storage is ignored. A snapshot store that
# fails costs a full fold and a logged warning, never a failed read. And `push_event(...,
# force=True)`, which rewrites history, discards the aggregate's snapshots from that version on.

# %% [markdown]
# ## 4. When snapshots are premature
#
# Snapshots cost something: a second store to run, a write every 100 events, a reducer version to
# bump (and section 3's failure when you forget), a codec for databases (section 5). They pay off
# only for aggregates with long histories that are read often. Most aggregates are short. Before
# adding snapshots, **measure your own**: how long are your aggregates, and how often is each read?
#
# A Pokédex of 1,000 Pokémon, where most are seen a few times and a few are trained for years
# (a seeded, heavy-tailed distribution):

# %%
import random
import statistics

rng = random.Random(12)
sizes = {f"pokemon-{n:04}": min(10_000, max(1, int(3 * rng.paretovariate(1.1)))) for n in range(1_000)}
population = [event for pokemon_id, size in sizes.items() for event in history(size, pokemon_id)]

counting = SimulatedLatencyAdapter(
    InMemoryEventStorageAdapter(population, clock=stepping_clock()), latency_ms=0
)
snapshot_store = InMemorySnapshotStore()
with_snapshots = pokemons_event_store(counting)
with_snapshots.snapshots = SnapshotConfig(snapshot_store, reducer_version="v1", policy=EveryNEvents(100))
without_snapshots = pokemons_event_store(counting)


async def read_every_pokemon(store):
    counting.reset_counts()
    for pokemon_id in sizes:
        await store.get_aggregate(pokemon_id)
    return counting.counts


plain_pass = await read_every_pokemon(without_snapshots)
first_pass = await read_every_pokemon(with_snapshots)  # saves the snapshots
later_pass = await read_every_pokemon(with_snapshots)
snapshotted = [pokemon_id for pokemon_id, size in sizes.items() if size >= 100]
kept = [pokemon_id for pokemon_id in sizes if await snapshot_store.list_snapshots("POKEMONS", pokemon_id)]

print(f"median events per Pokémon: {statistics.median(sizes.values()):g}, longest: {max(sizes.values()):,}")
print(f"Pokémon with 100 events or more: {len(snapshotted)} of {len(sizes):,}")
print(f"{'':34}{'round trips':>12}{'events read':>13}")
print(f"{'a pass without snapshots':34}{plain_pass.reads:>12,}{plain_pass.events_read:>13,}")
print(f"{'a pass with snapshots, once saved':34}{later_pass.reads:>12,}{later_pass.events_read:>13,}")
assert kept == snapshotted  # exactly the long ones got a snapshot
assert plain_pass.reads == later_pass.reads == len(sizes)  # one round trip per read, either way
assert plain_pass.events_read == first_pass.events_read == len(population)
assert later_pass.events_read == sum(size if size < 100 else 1 for size in sizes.values())
long_share = sum(sizes[pokemon_id] for pokemon_id in snapshotted) / len(population)
print(f"share of all events in those {len(snapshotted)}: {long_share:.0%}")
assert (len(snapshotted), statistics.median(sizes.values()), round(100 * long_share)) == (23, 5, 42)

# %% [markdown]
# Read it before deciding:
#
# - **977 of 1,000 Pokémon never get a snapshot.** Half of them have 5 events or fewer: a read is
#   a round trip, and the round trip costs the same with snapshots.
# - **The savings sit in the tail.** The 23 long aggregates hold 42 % of all events, so a full pass
#   reads a good deal less with snapshots — *if* those 23 are the ones read often. If they are
#   old trainers nobody opens, the snapshots only cost writes and storage.
# - **The round trips do not change.** Every read is still one call (1,000 per pass): with a
#   millisecond per round trip and short aggregates, that is the cost to fight — with
#   `prev_aggregate` on the write path (notebook 05) and a read model (a projection) for the
#   queries, which keeps the state ready without folding at all.
#
# Snapshots are the right tool when measurements like these show long aggregates on a hot path.
# A model that makes aggregates short in the first place (one per season instead of one per
# lifetime) is often better still: it needs no cache, and no reducer version to remember.
#
# ## 5. Snapshots in a database: a codec
#
# The in-memory store copies aggregates (`copy.deepcopy`) and keeps any object. A database keeps
# text: `SQLiteSnapshotStore` and `PostgresSnapshotStore` write JSON. A dataclass becomes a dict on
# the way in (`dataclasses.asdict`), and the store needs to be told how to rebuild it on the way
# out — the same `decode_aggregate` as notebook 10's messages. Every save checks that the text
# reads back *equal* to the aggregate, because a snapshot that came back as a dict would change the
# result. Without the decoder, the save is refused:

# %%
import tempfile

from castore_edu import Snapshot, SQLiteEventStorageAdapter, SQLiteSnapshotStore
from castore_edu.course.pokedex import Pokemon

directory = tempfile.TemporaryDirectory()
sqlite_adapter = SQLiteEventStorageAdapter(f"{directory.name}/pokedex.sqlite", clock=stepping_clock())
without_decoder = SQLiteSnapshotStore(sqlite_adapter)  # in the events' own file, table `snapshots`
pikachu_at_253 = third.aggregate

# %% tags=["raises-exception"]
await without_decoder.save("POKEMONS", Snapshot("pikachu", 253, "v1", pikachu_at_253))

# %%
import sys

error = sys.last_value
assert isinstance(error, ValueError) and "decode_aggregate" in str(error)
assert await without_decoder.list_snapshots("POKEMONS", "pikachu") == []  # nothing was written

# %% [markdown]
# Through `get_aggregate` the same refusal is only a logged warning: the read still returns the
# right aggregate, without a snapshot. With the decoder, the snapshot reads back as a `Pokemon`:

# %%
sqlite_snapshots = SQLiteSnapshotStore(sqlite_adapter, decode_aggregate=lambda data: Pokemon(**data))
await sqlite_snapshots.save("POKEMONS", Snapshot("pikachu", 253, "v1", pikachu_at_253))
loaded = await sqlite_snapshots.load_latest("POKEMONS", "pikachu", reducer_version="v1")
print(loaded)
assert loaded.aggregate == pikachu_at_253 and isinstance(loaded.aggregate, Pokemon)

sqlite_adapter.close()
directory.cleanup()

# %%
from castore_edu.course.scenes import castore_tasks

assert castore_tasks() == []  # nothing left running (notebook 03, "Leaving nothing behind")

# %% [markdown]
# ## Recap
#
# - A snapshot is a fold saved at one version; `get_aggregate` starts from the latest one that
#   fits and reads only what came after. `snapshot_version` says which; `events` then holds only
#   the events after it; `last_event` stays the real last event.
# - Snapshots are taken from reads only, never from a trusted `prev_aggregate`; a policy
#   (`EveryNEvents(100)`) decides when.
# - Snapshots shorten every read; `prev_aggregate` removes the read back of a publish. Together a
#   command costs one short read, whatever the size.
# - A snapshot freezes the old reducer's answer. The reducer version is the guard: change it with
#   the reducer, and old snapshots are never used again.
# - Measure first: most aggregates are short, and a round trip costs the same with snapshots.
#   Databases need a codec, and `decode_aggregate` for dataclasses.
#
# *When this notebook was last built it ran in {{build_time}} in a fresh kernel.*
#
# **Further reading**
#
# - Castore, the snapshot discussion (issue #181) and the open proposal (pull request #201):
#   <https://github.com/castore-dev/castore/issues/181>, <https://github.com/castore-dev/castore/pull/201>
# - Martin Fowler, *Event Sourcing* (snapshots as an optimisation of the rebuild):
#   <https://martinfowler.com/eaaDev/EventSourcing.html>
# - In this package: `castore_edu/snapshots/` (the rules in `protocol.py`, the guard in
#   `config.py`), `castore_edu/core/event_store.py` (`get_aggregate`), `benchmarks/snapshots.py`,
#   `docs/api.md` §17.
#
# Now do exercise 12 in `exercises/07_snapshots.ipynb` (a read that starts from a snapshot, by
# hand), then go on to the next notebook.
