# %% [markdown]
# # 05 · The `prev_aggregate` optimization
#
# **Time:** about 30 minutes.
#
# **Learning objectives.** By the end of this notebook you will be able to:
#
# 1. count what a connected store reads to publish a state-carrying message, with and without
#    `prev_aggregate`, as an aggregate grows from 10 to 10,000 events;
# 2. read a plot of where a publish's time goes — round trips or history — as the aggregate grows,
#    and explain its shape;
# 3. show how a *stale* `prev_aggregate` produces a wrong state-carrying message;
# 4. guard against it with a one-line check.
#
# Notebook 04 showed the claim: on a state-carrying channel, pushing without `prev_aggregate`
# re-fetches the aggregate. Here we measure what that costs against storage that behaves like a
# remote database.

# %% [markdown]
# ## 1. A slow, counting storage
#
# In memory, a read costs microseconds. Against a database across a network, each call is a
# round trip, and a read also carries every event it returns. `SimulatedLatencyAdapter`
# (`castore_edu/testing/latency.py`) wraps any adapter, waits `latency_ms` before each call (with
# `asyncio.sleep`, as a driver waiting on a socket would) and counts calls and events.
# We use 1 ms — a database in the same data centre — to keep the notebook quick.
#
# Each test aggregate is seeded straight into an `InMemoryEventStorageAdapter` through
# `initial_events`: Pikachu appears at level 1, then levels up until it has `size` events, so its
# level equals its size.

# %%
import statistics
import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

from castore_edu import (
    ConnectedEventStore,
    InMemoryEventStorageAdapter,
    InMemoryMessageBusAdapter,
    StateCarryingMessageBus,
)
from castore_edu.core.clock import stepping_clock
from castore_edu.course.pokedex import level_ups, pokemon_appeared, pokemon_leveled_up, pokemons_event_store
from castore_edu.testing.latency import CallCounts, SimulatedLatencyAdapter

LATENCY_MS = 1.0
SIZES = [10, 100, 1_000, 10_000]
PUBLISHES = 15  # pushes timed per size and mode; we keep their median

histories = {
    size: [
        pokemon_appeared("pikachu", name="Pikachu", level=1),
        *level_ups("pikachu", first_version=2, count=size - 1),
    ]
    for size in SIZES
}


def seeded_adapter(size):
    """Pikachu with `size` events, behind a simulated 1 ms network."""
    return SimulatedLatencyAdapter(
        InMemoryEventStorageAdapter(histories[size], clock=stepping_clock()), latency_ms=LATENCY_MS
    )


def connect_to_read_model(store):
    """A state-carrying bus with one consumer that keeps the messages it receives."""
    bus = StateCarryingMessageBus(message_bus_id="READ_MODELS", source_event_stores=[store])
    adapter = InMemoryMessageBusAdapter.attach_to(bus)
    received = []

    async def read_model(message, context):
        received.append(message)

    adapter.on({}, read_model)
    return ConnectedEventStore(store, bus), adapter, received


# %% [markdown]
# ## 2. Measuring a publish
#
# For each size, we push `PUBLISHES` level-ups through a connected store, once without and once
# with `prev_aggregate`, count what crossed the "network" during the pushes, and time each push.
#
# Before deciding, a command reads the aggregate anyway (notebook 02), so both modes start from
# that one read — it is the same in both, and not counted. What differs is what *publishing*
# costs on top of it: without `prev_aggregate` the connected store reads the aggregate back after
# every push; with it, the store folds the one new event into the aggregate it was given.


# %%
@dataclass(frozen=True)
class Measurement:
    size: int
    with_prev: bool
    counts: CallCounts
    publish_ms: tuple[float, ...]  # how long each push took

    @property
    def median_ms(self):
        """The typical publish: one slow push (the machine was busy elsewhere) does not move it."""
        return statistics.median(self.publish_ms)

    @property
    def round_trip_share(self):
        """How much of the typical publish is spent waiting on the network: round trips x latency."""
        round_trips = (self.counts.reads + self.counts.writes) / PUBLISHES
        return round_trips * LATENCY_MS / self.median_ms


async def measure(size, *, with_prev):
    adapter = seeded_adapter(size)
    store = pokemons_event_store(adapter)
    connected, bus_adapter, received = connect_to_read_model(store)
    aggregate = (await store.get_aggregate("pikachu")).aggregate  # the command's own read
    adapter.reset_counts()
    publish_ms = []
    for version in range(size + 1, size + 1 + PUBLISHES):
        event = pokemon_leveled_up("pikachu", version=version)
        started = time.perf_counter()
        result = await connected.push_event(event, prev_aggregate=aggregate if with_prev else None)
        publish_ms.append(1000 * (time.perf_counter() - started))
        aggregate = result.next_aggregate
    await bus_adapter.wait_idle()
    # Either way, every message carries the right state: level == number of events.
    assert [message.aggregate.level for message in received] == list(range(size + 1, size + 1 + PUBLISHES))
    return Measurement(size, with_prev, adapter.counts, tuple(publish_ms))


measurements = {
    (size, with_prev): await measure(size, with_prev=with_prev)
    for size in SIZES
    for with_prev in (False, True)
}

# %% [markdown]
# The counts are exact, so we can assert them: without `prev_aggregate`, **one read per
# publish**, returning the whole history up to the new event (`size + 1`, `size + 2`, …
# events); with it, **nothing**.

# %%
for size in SIZES:
    without, with_prev = measurements[size, False].counts, measurements[size, True].counts
    expected_events = sum(size + k for k in range(1, PUBLISHES + 1))
    assert without == CallCounts(
        reads=PUBLISHES, events_read=expected_events, writes=PUBLISHES, events_written=PUBLISHES
    )
    assert with_prev == CallCounts(reads=0, events_read=0, writes=PUBLISHES, events_written=PUBLISHES)

print(f"{'events':>7} | {'reads per publish':^19} | {'events read per publish':^25}")
print(f"{'':>7} | {'without':>9} {'with':>9} | {'without':>12} {'with':>12}")
for size in SIZES:
    without, with_prev = measurements[size, False].counts, measurements[size, True].counts
    print(
        f"{size:>7} | {without.reads // PUBLISHES:>9} {with_prev.reads // PUBLISHES:>9} | "
        f"{without.events_read // PUBLISHES:>12} {with_prev.events_read // PUBLISHES:>12}"
    )

# %% [markdown]
# Times are measured live, so they differ on every run and every machine (the notebook tests
# mask them). A single push can be slow because the machine was busy with something else, so we
# time `PUBLISHES` pushes per size and keep the **median**: the typical publish. Its *shape* does
# not change from run to run: without `prev_aggregate`, each publish pays a second round trip and
# then transfers and folds the whole history, so its cost grows with the aggregate; with it, a
# publish costs one write whatever the size.

# %%
for size in SIZES:
    without, with_prev = measurements[size, False], measurements[size, True]
    # No padding around the numbers: the notebook tests replace each measured time by a placeholder.
    print(
        f"{size:>6} events: {without.median_ms:.2f} ms without, {with_prev.median_ms:.2f} ms with prev_aggregate"
    )

# Sizes far apart, so that a busy machine cannot swap them: an aggregate a thousand times larger
# costs more to publish without prev_aggregate (and the share of it spent waiting falls).
smallest, largest = SIZES[0], SIZES[-1]
assert measurements[largest, False].median_ms > measurements[smallest, False].median_ms
assert measurements[largest, False].median_ms > measurements[largest, True].median_ms

# %% [markdown]
# The left panel splits the typical publish in two. The part spent **waiting on round trips** is
# counted, not timed: the round trips above (2 per publish without `prev_aggregate`, 1 with)
# times the 1 ms each of them sleeps. The rest is **work**: reading the history out of storage,
# folding it with the reducer, publishing — and the event loop waking up a little after each
# 1 ms sleep, which is why even the publish with `prev_aggregate` is not all waiting.


# %%
figure, (share_axes, time_axes) = plt.subplots(1, 2, figsize=(10, 3.8))
for with_prev, label, marker in ((False, "without prev_aggregate", "o"), (True, "with prev_aggregate", "s")):
    rows = [measurements[size, with_prev] for size in SIZES]
    share_axes.plot(SIZES, [100 * row.round_trip_share for row in rows], marker=marker, label=label)
    time_axes.plot(SIZES, [row.median_ms for row in rows], marker=marker, label=label)
share_axes.axhline(50, color="grey", linestyle=":", linewidth=1)  # half waiting, half work
time_axes.axhline(LATENCY_MS, color="grey", linestyle=":", linewidth=1)  # one round trip: the floor
share_axes.set(
    xscale="log",
    ylim=(0, 100),
    xlabel="events in the aggregate",
    ylabel="% of the publish spent in round trips",
    title="Where a publish's time goes (median publish)",
)
time_axes.set(
    xscale="log",
    yscale="log",
    xlabel="events in the aggregate",
    ylim=(LATENCY_MS / 2, None),
    ylabel="ms per publish (median)",
    title=f"Time per publish ({LATENCY_MS:g} ms simulated latency)",
)
time_axes.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # 1, 2, 5, 10, 20, 50… ms
time_axes.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
time_axes.yaxis.set_minor_formatter(NullFormatter())
for axes in (share_axes, time_axes):
    axes.set_xticks(SIZES, [f"{size:,}" for size in SIZES])
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="lower left" if axes is share_axes else "upper left")
figure.subplots_adjust(wspace=0.3)
plt.show()

# %% [markdown]
# With `prev_aggregate` (squares), a publish is one write: mostly waiting on its round trip, just
# above the dotted 1 ms floor on the right, and as fast at 10,000 events as at 10. Without it (circles), the curve on the left falls as the
# aggregate grows. At 10 events most of the publish is waiting — the second round trip roughly
# doubles its cost, as the right panel shows. A few hundred events on (where exactly depends on how
# fast your machine folds), the history work overtakes the waiting — the dotted 50 % line — and at
# 10,000 events transferring and folding the history is nearly all of it. The network moves that
# crossing too: on a slower one, each round trip weighs more and the history takes over later.
# In production that read also costs money (DynamoDB bills per read unit) and load on the
# database that serves your commands.
#
# ## 3. When `prev_aggregate` lies
#
# The store *trusts* `prev_aggregate`: it folds the new event into whatever it is given. Nothing
# checks that it is the state at `version − 1`. Here is how that goes wrong.
#
# A "level-up service" keeps aggregates in a cache to save reads. It cached Pikachu at
# version 4. Meanwhile another process levels Pikachu up (version 5). Later the service levels
# Pikachu up again: it asks the store for the last version — a cheap, one-event read — so that
# its push does not conflict, and passes its cached aggregate as `prev_aggregate`.

# %%
from castore_edu.course.scenes import opening_scene

pokedex = await opening_scene()
pokemons = pokedex.pokemons
connected, bus_adapter, received = connect_to_read_model(pokemons)

cache = {"pikachu": (await pokemons.get_aggregate("pikachu")).aggregate}  # version 4, level 7
await connected.push_event(pokemon_leveled_up("pikachu", version=5))  # the other process

(last,) = await pokemons.get_events("pikachu", reverse=True, limit=1)
stale_push = await connected.push_event(
    pokemon_leveled_up("pikachu", version=last.version + 1), prev_aggregate=cache["pikachu"]
)
await bus_adapter.wait_idle()

message = received[-1]
truth = (await pokemons.get_aggregate("pikachu")).aggregate
print(f"{'':28}{'version':>8}{'level':>7}")
print(f"{'cached prev_aggregate':28}{cache['pikachu'].version:>8}{cache['pikachu'].level:>7}")
print(f"{'message the read model got':28}{message.aggregate.version:>8}{message.aggregate.level:>7}")
print(f"{'store (get_aggregate)':28}{truth.version:>8}{truth.level:>7}")
assert message.aggregate.version == truth.version == 6
assert (message.aggregate.level, truth.level) == (8, 9)  # the message misses the other level-up

# %% [markdown]
# The push succeeded — version 6 was free — so optimistic concurrency did not help: the *version*
# was fresh, only the *aggregate* was stale. Every consumer of the state-carrying channel now
# believes Pikachu is level 8, and `stale_push.next_aggregate` says so too.
#
# Had the service computed the version from its cache as well (`cached.version + 1`), the push
# would have hit `EventAlreadyExistsError` and nothing wrong would have been published. The
# danger appears when the version and the aggregate come from two different reads.

# %%
from castore_edu import EventAlreadyExistsError

assert stale_push.next_aggregate == message.aggregate
try:
    await connected.push_event(
        pokemon_leveled_up("pikachu", version=cache["pikachu"].version + 1), prev_aggregate=cache["pikachu"]
    )
except EventAlreadyExistsError as error:
    print("consistent but stale:", error)
else:
    raise AssertionError("version 5 is taken")

# %% [markdown]
# ## 4. A guard
#
# The check is one comparison: `prev_aggregate` must be the same aggregate, at exactly
# `event.version − 1`. If it is, and the push succeeds, no event can have slipped in between
# (that version would have been taken). `castore_edu/course/pokedex.py` has it as
# `is_prev_aggregate_of`, `check_prev_aggregate` and `push_with_checked_prev_aggregate`:

# %%
import inspect

from castore_edu.course.pokedex import (
    StalePrevAggregateError,
    is_prev_aggregate_of,
    push_with_checked_prev_aggregate,
)

print(inspect.getsource(is_prev_aggregate_of))

# %% [markdown]
# With the guard, the stale push is refused before anything is stored or published:

# %%
event = pokemon_leveled_up("pikachu", version=truth.version + 1)
messages_before = len(received)
try:
    await push_with_checked_prev_aggregate(connected, event, prev_aggregate=cache["pikachu"])
except StalePrevAggregateError as error:
    print("refused:", error)
else:
    raise AssertionError("a stale prev_aggregate must be refused")
await bus_adapter.wait_idle()
assert (await pokemons.get_events("pikachu", reverse=True, limit=1))[
    0
].version == truth.version  # nothing stored
assert len(received) == messages_before  # nothing published

# %% [markdown]
# What to do instead? Pass `prev_aggregate` only when it fits, and let the connected store
# re-fetch otherwise: one read, and a correct message.

# %%
prev = cache["pikachu"] if is_prev_aggregate_of(cache["pikachu"], event) else None
result = await connected.push_event(event, prev_aggregate=prev)
await bus_adapter.wait_idle()

fresh = (await pokemons.get_aggregate("pikachu")).aggregate
assert prev is None and received[-1].aggregate == fresh and fresh.level == 10
cache["pikachu"] = fresh  # a correct state to cache from now on
print("message:", received[-1].aggregate)

# %%
from castore_edu.course.scenes import castore_tasks

assert castore_tasks() == []  # nothing left running (notebook 03, "Leaving nothing behind")

# %% [markdown]
# ## Recap
#
# - Without `prev_aggregate`, every state-carrying publish costs one extra read that returns the
#   whole history: a second round trip, and work that grows with the aggregate.
# - With it, a publish costs one reducer call — flat in the aggregate's size.
# - `prev_aggregate` is trusted. A stale one (version fresh, state old) publishes a wrong
#   state, and optimistic concurrency cannot see it.
# - Guard it: `prev_aggregate.version == event.version - 1` (and the same id); fall back to the
#   re-fetch when it does not hold.
#
# *When this notebook was last built it ran in {{build_time}} in a fresh kernel.*
#
# **Further reading**
#
# - Castore, connected event store (the `prevAggregate` option):
#   <https://castore-dev.github.io/castore/docs/reacting-to-events/connected-event-store/>
# - Martin Fowler, *Event Sourcing* (its snapshots are the other way to avoid folding long
#   histories): <https://martinfowler.com/eaaDev/EventSourcing.html>
# - Martin Fowler, *What do you mean by "Event-Driven"?* (event-carried state transfer):
#   <https://martinfowler.com/articles/201701-event-driven.html>
# - In this package: `castore_edu/testing/latency.py`, `castore_edu/connected/connected_event_store.py`, `castore_edu/course/pokedex.py`.
#
# Now do exercises 3–4 in `exercises/02_channels_and_connected_stores.ipynb` (a filtered bus
# listener, and a state-carrying queue fed without reads), then go on to **06 · Event groups**.
