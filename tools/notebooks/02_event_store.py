# %% [markdown]
# # 02 · The event store
#
# **Time:** about 40 minutes.
#
# **Learning objectives.** By the end of this notebook you will be able to:
#
# 1. push events and read them back (version ranges, limits, newest first);
# 2. get an aggregate, today or at any past version (time travel), and explore it with a widget;
# 3. list the aggregates of a store, page by page;
# 4. explain optimistic concurrency: why two concurrent commands cannot both write version *n*,
#    how `Command` retries the loser, and what `force=True` risks;
# 5. run the same code on in-memory storage and on SQLite, and see SQLite data survive a restart.

# %% [markdown]
# ## 1. Pushing events
#
# An `EventStore` holds no events itself: it hands every read and write to its **storage
# adapter** (`castore_edu/storage/protocol.py`). We start in memory. `in_memory_pokedex()` gives the
# course's two stores, `POKEMONS` and `TRAINERS`, each on its own in-memory adapter, stamped by
# one deterministic clock (2024-01-01 00:00:00, then one second per event).

# %%
from castore_edu.course.pokedex import in_memory_pokedex, pokemon_appeared, pokemon_leveled_up

pokedex = in_memory_pokedex()
pokemons = pokedex.pokemons

first = await pokemons.push_event(pokemon_appeared("pikachu", name="Pikachu", level=5))
first

# %% [markdown]
# `push_event` returns the stored event — stamped by the adapter — and `next_aggregate`, the
# aggregate after the event, *when the store can compute it without reading*: for a version 1
# (there is nothing before it) or when you pass the previous aggregate as `prev_aggregate`.
# Otherwise it stays `None` rather than cost a read you may not need.

# %%
second = await pokemons.push_event(pokemon_leveled_up("pikachu", version=2))
assert second.next_aggregate is None  # no prev_aggregate, not version 1: not computed

current = (await pokemons.get_aggregate("pikachu")).aggregate  # what a command reads before deciding
third = await pokemons.push_event(pokemon_leveled_up("pikachu", version=3), prev_aggregate=current)
assert third.next_aggregate.level == 7 and third.next_aggregate.version == 3
third.next_aggregate

# %% [markdown]
# (A command usually has that previous aggregate anyway: it read it to decide — see section 5.)
#
# ## 2. Reading events
#
# `get_events` returns an aggregate's events in version order. `min_version` and
# `max_version` cut a range (both inclusive), `reverse=True` puts the newest first, and
# `limit` applies *after* ordering — so `reverse=True, limit=1` is "the last event".

# %%
for version in (4, 5):
    await pokemons.push_event(pokemon_leveled_up("pikachu", version=version))


def versions(events):
    return [event.version for event in events]


assert versions(await pokemons.get_events("pikachu")) == [1, 2, 3, 4, 5]
assert versions(await pokemons.get_events("pikachu", min_version=2, max_version=4)) == [2, 3, 4]
assert versions(await pokemons.get_events("pikachu", reverse=True)) == [5, 4, 3, 2, 1]
assert versions(await pokemons.get_events("pikachu", reverse=True, limit=1)) == [5]
assert await pokemons.get_events("mewtwo") == []  # an unknown aggregate has no events
await pokemons.get_events("pikachu", reverse=True, limit=2)

# %% [markdown]
# ## 3. Aggregates, now and in the past
#
# `get_aggregate` reads the events and folds them with the store's reducer. `max_version`
# stops the fold early: the aggregate *as it was*. The past is never lost, because nothing
# was ever overwritten (section 5 shows the one way to do it, and its price).

# %%
now = await pokemons.get_aggregate("pikachu")
then = await pokemons.get_aggregate("pikachu", max_version=2)
assert now.aggregate.level == 9 and now.last_event.version == 5
assert then.aggregate.level == 6 and len(then.events) == 2
print("now: ", now.aggregate)
print("then:", then.aggregate)

# %% [markdown]
# An unknown aggregate gives `aggregate=None`. When its absence is an error in your code, use
# `get_existing_aggregate`, which raises `AggregateNotFoundError`:

# %% tags=["raises-exception"]
await pokemons.get_existing_aggregate("mewtwo")

# %%
import sys

from castore_edu import AggregateNotFoundError

error = sys.last_value
assert isinstance(error, AggregateNotFoundError)
assert (error.aggregate_id, error.event_store_id) == ("mewtwo", "POKEMONS")
assert (await pokemons.get_aggregate("mewtwo")).aggregate is None

# %% [markdown]
# ### The event store explorer
#
# Let's give Pikachu some company with the course's opening scene (`tell_the_story` in
# `castore_edu/course/pokedex.py`): Pikachu and Charmander appear, Ash catches Pikachu, Pikachu levels
# up twice. Then open the **explorer**: pick an aggregate, slide through its versions, and watch
# the event stored at that version next to the aggregate right after it.
#
# Widget callbacks cannot `await`, so the explorer loads every event once (`load_histories`, in
# `castore_edu/course/widgets/explorer.py`) and time-travels by folding the loaded events up to the
# slider's version.

# %%
from castore_edu.course.pokedex import tell_the_story
from castore_edu.course.widgets import EventStoreExplorer, load_histories

story = in_memory_pokedex()
await tell_the_story(story)
explorer = EventStoreExplorer(await load_histories(*story.stores))
explorer

# %% [markdown]
# The explorer is plain code under the widgets, so we can drive it — and check that what it
# shows is exactly what `get_aggregate(max_version=...)` returns, at every version:

# %%
explorer.aggregate.value = ("POKEMONS", "pikachu")
explorer.version.value = 2
assert "POKEMON_CAUGHT" in explorer.event_view.value
explorer.previous.click()
assert explorer.version.value == 1 and "wild" in explorer.aggregate_view.value

for key in explorer.loaded.aggregate_keys():
    store_id, aggregate_id = key
    store = story.pokemons if store_id == "POKEMONS" else story.trainers
    for version in explorer.loaded.versions(key):
        expected = await store.get_aggregate(aggregate_id, max_version=version)
        assert explorer.loaded.aggregate_at(key, version) == expected.aggregate
print(
    "explorer and get_aggregate(max_version=...) agree on",
    len(explorer.loaded.aggregate_keys()),
    "aggregates",
)

# %% [markdown]
# ## 4. Listing aggregates
#
# `list_aggregate_ids` lists a store's aggregates in the order of their first event. With
# `limit`, it returns a page and a `next_page_token` while more remain; pass only the token to
# get the next page (it remembers the other options). `initial_event_after` and
# `initial_event_before` keep aggregates whose first event falls in that window (inclusive).

# %%
for pokemon_id, name in [("bulbasaur", "Bulbasaur"), ("squirtle", "Squirtle"), ("eevee", "Eevee")]:
    await story.pokemons.push_event(pokemon_appeared(pokemon_id, name=name, level=1))

listed, page_token, pages = [], None, 0
while True:
    page = await story.pokemons.list_aggregate_ids(limit=2, page_token=page_token)
    listed += [entry.aggregate_id for entry in page.aggregate_ids]
    pages += 1
    page_token = page.next_page_token
    if page_token is None:
        break

assert listed == ["pikachu", "charmander", "bulbasaur", "squirtle", "eevee"] and pages == 3
window = await story.pokemons.list_aggregate_ids(initial_event_after="2024-01-01T00:00:07.000Z")
assert [entry.aggregate_id for entry in window.aggregate_ids] == ["squirtle", "eevee"]
window.aggregate_ids

# %% [markdown]
# ## 5. Optimistic concurrency
#
# Two writers read Pikachu at version 5 and both decide to push version 6. Only one can: the
# storage refuses an event at a version that is taken, with `EventAlreadyExistsError`. No lock
# was held while they were thinking — the check happens once, at write time. That is
# *optimistic* concurrency: cheap when conflicts are rare, and never silently wrong.

# %% tags=["raises-exception"]
await pokemons.push_event(pokemon_leveled_up("pikachu", version=6))
await pokemons.push_event(pokemon_leveled_up("pikachu", version=6))  # the second writer

# %%
from castore_edu import EventAlreadyExistsError

error = sys.last_value
assert isinstance(error, EventAlreadyExistsError)
assert (error.event_store_id, error.aggregate_id, error.version) == ("POKEMONS", "pikachu", 6)
assert versions(await pokemons.get_events("pikachu")) == [1, 2, 3, 4, 5, 6]

# %% [markdown]
# ### Two concurrent commands
#
# A *command handler* reads the current state, decides, and pushes. Below, the handler awaits
# something between reading and pushing (here `asyncio.sleep(0)`, standing for a call to
# another service). Every `await` is a point where asyncio may run another task — so when two
# level-ups run together with `asyncio.gather`, both read version 6, and both try to push
# version 7.

# %%
import asyncio


async def level_up(input, event_stores):
    (pokemons,) = event_stores
    current = await pokemons.get_existing_aggregate(input["pokemon_id"])
    await asyncio.sleep(0)  # e.g. ask another service something: other tasks run meanwhile
    event = pokemon_leveled_up(input["pokemon_id"], version=current.aggregate.version + 1)
    result = await pokemons.push_event(event, prev_aggregate=current.aggregate)
    return result.next_aggregate.level


outcomes = await asyncio.gather(
    level_up({"pokemon_id": "pikachu"}, [pokemons]),
    level_up({"pokemon_id": "pikachu"}, [pokemons]),
    return_exceptions=True,
)
print(outcomes)
assert outcomes[0] == 11 and isinstance(outcomes[1], EventAlreadyExistsError)

# %% [markdown]
# The loser's decision was based on a state that no longer exists, so simply pushing again
# would be wrong. The right reaction is to **run the whole handler again** on fresh state.
# That is what a `Command` does (`castore_edu/core/command.py`): on `EventAlreadyExistsError` it
# calls `on_event_already_exists` and retries, up to `event_already_exists_retries` more times
# (2 by default). Because a retry repeats everything, a handler should have no side effect other
# than pushing events.
#
# Two things are called "handler" below. `handler=level_up` gives the command *our* function;
# `level_up_command.handler(...)` is the command's own method, which runs `level_up` and runs it
# again after a conflict. Calling `level_up` directly would not retry.

# %%
from castore_edu import Command

conflicts = []


async def record_conflict(error, *, attempt_number, retries_left):
    conflicts.append((error.version, attempt_number, retries_left))


level_up_command = Command(
    command_id="LEVEL_UP_POKEMON",
    required_event_stores=[pokemons],
    handler=level_up,
    on_event_already_exists=record_conflict,
)

levels = await asyncio.gather(  # Command.handler: runs level_up, retries it on a conflict
    level_up_command.handler({"pokemon_id": "pikachu"}, [pokemons]),
    level_up_command.handler({"pokemon_id": "pikachu"}, [pokemons]),
)
print("levels:", levels, "conflicts (version, attempt, retries left):", conflicts)
assert levels == [12, 13]  # both level-ups happened, one after the other
assert conflicts == [(8, 1, 2)]  # the second command lost once, then succeeded
assert (await pokemons.get_aggregate("pikachu")).aggregate.level == 13

# %% [markdown]
# ### Many writers at once: back-off and jitter
#
# Two writers cost one retry. Now let *n* players press "level up!" on Pikachu at the same moment.
# All *n* read the same version; one push wins and the *n* − 1 others retry **at once** — so they
# all read the next version together, and again only one of them wins. The retries add up to
# (*n* − 1) + (*n* − 2) + … + 1 = *n* (*n* − 1) / 2: 1,225 retries for 50 level-ups, 19,900 for
# 200, every one of them a read and a push (on a real database, two round trips).
#
# The cure is to **wait before retrying**, so that the losers come back one by one rather than
# as a crowd. Two ideas make the wait work without knowing how big the crowd is:
#
# - *exponential back-off*: the longest wait doubles with each retry (`retry_delay_ms` before the
#   first, at most `max_retry_delay_ms`), so the more often a writer lost, the wider it spreads;
# - *jitter*: each writer waits a **random** part of that longest wait (`retry_jitter=1`, the
#   default, means anywhere between 0 and it). Without jitter, the losers of a round would all wait
#   exactly the same time, wake up together and collide again, as if nobody had waited at all.
#
# Castore retries at once, and so does `Command` by default (`retry_delay_ms=0`). Below, the same
# 50 level-ups three ways: at once, then waiting up to 1 ms before the first retry and doubling
# (at most 50 ms), first without jitter and then with it. Two arguments are only there to make
# this notebook reproducible: the jitter comes from a seeded `random.Random`, and
# `sleep_in_loop_turns` stands in for `asyncio.sleep`, counting one turn of the event loop as a
# millisecond, so that the counts are the same on every machine, however busy. In an
# application, keep the default `asyncio.sleep`.

# %%
import random

from castore_edu.testing.contention import sleep_in_loop_turns


async def level_up_together(players, **backoff):
    """``players`` level-ups of a fresh Pikachu at once; returns how many retries they took."""
    pokemons = in_memory_pokedex().pokemons
    await pokemons.push_event(pokemon_appeared("pikachu", name="Pikachu", level=5))
    retries = []

    async def count_retry(error, *, attempt_number, retries_left):
        retries.append(attempt_number)

    command = Command(
        command_id="LEVEL_UP_POKEMON",
        required_event_stores=[pokemons],
        handler=level_up,
        event_already_exists_retries=players,  # the unluckiest player can lose players - 1 times
        on_event_already_exists=count_retry,
        **backoff,
    )
    await asyncio.gather(*(command.handler({"pokemon_id": "pikachu"}, [pokemons]) for _ in range(players)))
    assert (await pokemons.get_aggregate("pikachu")).aggregate.level == 5 + players  # nobody gave up
    return len(retries)


simulated = {"sleep": sleep_in_loop_turns, "jitter_random": random.Random(2024)}
backoff = {"retry_delay_ms": 1, "max_retry_delay_ms": 50, **simulated}
at_once = await level_up_together(50)
without_jitter = await level_up_together(50, retry_jitter=0, **backoff)
with_jitter = await level_up_together(50, **backoff)  # retry_jitter=1, the default
print("retries for 50 concurrent level-ups:")
print(f"  at once (Castore, the default)       {at_once:>5,}")
print(f"  back-off, every loser waits the same {without_jitter:>5,}")
print(f"  back-off with jitter                 {with_jitter:>5,}")
assert at_once == 50 * 49 // 2
assert with_jitter < at_once / 4

# %% [markdown]
# ### `force=True`: writing over a version
#
# `push_event(event, force=True)` skips the check: it writes over whatever is stored at that
# version. Say an import script gave Magikarp level 50 by mistake, and Magikarp has levelled up
# since; an operator rewrites its version 1 with the right level:

# %%
await pokemons.push_event(pokemon_appeared("magikarp", name="Magikarp", level=50))  # the mistake
await pokemons.push_event(pokemon_leveled_up("magikarp", version=2))
storage = pokemons.event_storage_adapter
last_position = await storage.last_position()
await pokemons.push_event(pokemon_appeared("magikarp", name="Magikarp", level=5), force=True)

history = await pokemons.get_events("magikarp")
assert versions(history) == [1, 2] and history[0].payload["level"] == 5  # the level-50 event is gone
assert (await pokemons.get_aggregate("magikarp", max_version=1)).aggregate.level == 5  # a new past
assert await storage.last_position() == last_position  # no new log entry: it kept its position
(entry,) = [
    e for e in await storage.read_log() if e.event.aggregate_id == "magikarp" and e.event.version == 1
]
assert entry.event == history[0]
print(f"Magikarp v1 at log position {entry.position}: level {history[0].payload['level']}")

# %% [markdown]
# The old event is gone: time travel (section 3) now tells another past, and whatever was
# decided from the old event is no longer explained by the store. Nor does the overwrite reach
# anyone who has seen the old one: it keeps its place in the storage's ordered log (`read_log`,
# every event in the order it was stored), so a relay that publishes from that log (notebook 08)
# and has passed it never publishes it, and read models keep level 50 until they are rebuilt.
# So `force=True` is for an operator's one-off fix or a migration, done knowingly and followed
# by a rebuild of what depends on it — never for application code, where it would silently win
# every conflict that optimistic concurrency is there to catch.

# %% [markdown]
# ## 6. Same code, other storage: SQLite
#
# `SQLiteEventStorageAdapter` (`castore_edu/storage/sqlite.py`) keeps events in a database file. One
# file holds both stores (rows are keyed by event store id). Its conflict detection is a
# `UNIQUE (event_store_id, aggregate_id, version)` constraint: the database itself refuses the
# second version 7, even from another process.
#
# The same story on both adapters gives the same events — timestamps included, since both use
# the same deterministic clock. The file lives in a temporary directory that we remove at the
# end.

# %%
import tempfile
from pathlib import Path

from castore_edu.course.pokedex import sqlite_pokedex

temporary = tempfile.TemporaryDirectory()
database = Path(temporary.name) / "pokedex.sqlite3"


async def all_events(pokedex):
    """Every event of every aggregate of both stores: what the explorer loads (section 3)."""
    return (await load_histories(*pokedex.stores)).histories


in_memory, on_disk = in_memory_pokedex(), sqlite_pokedex(database)
for each in (in_memory, on_disk):
    await tell_the_story(each)
assert await all_events(in_memory) == await all_events(on_disk)
print(len(await all_events(on_disk)), "aggregates, identical on both adapters")

# %%
try:
    await on_disk.pokemons.push_event(pokemon_leveled_up("pikachu", version=3))
except EventAlreadyExistsError as conflict:
    print("SQLite refused it too:", conflict)
else:
    raise AssertionError("the UNIQUE constraint must refuse a taken version")

# %% [markdown]
# ### Restart-proof
#
# Close the database, as a process that ends would, and open the file again with brand new
# objects. The events are still there. (The new clock starts a day later, so that new events
# keep sorting after the old ones.)

# %%
from castore_edu.core.clock import stepping_clock

on_disk.close()
reopened = sqlite_pokedex(database, clock=stepping_clock(start="2024-01-02T00:00:00.000Z"))
pikachu = await reopened.pokemons.get_aggregate("pikachu")
assert pikachu.aggregate.level == 7 and pikachu.aggregate.trainer_id == "ash"
await reopened.pokemons.push_event(pokemon_leveled_up("pikachu", version=5))
assert (await reopened.pokemons.get_events("pikachu", reverse=True, limit=1))[
    0
].timestamp == "2024-01-02T00:00:00.000Z"
pikachu.aggregate

# %%
reopened.close()
temporary.cleanup()
assert not database.exists()

# %% [markdown]
# ## Recap
#
# - The event store delegates storage to an adapter; the same code runs in memory and on SQLite.
# - `get_events` reads ranges (inclusive), newest first with `reverse`, `limit` after ordering.
# - `get_aggregate(max_version=n)` is time travel: fold the first *n* events. The explorer
#   widget shows it, and agrees with it.
# - `list_aggregate_ids` pages through aggregates in the order of their first event.
# - A version can be written once: `EventAlreadyExistsError` is optimistic concurrency, and
#   `Command` answers it by running the handler again on fresh state. `force=True` writes over a
#   version and rewrites history unseen by relays: for an operator's fix, never for commands.
# - Many writers retrying at once cost *n* (*n* − 1) / 2 retries; `retry_delay_ms` adds
#   exponential back-off with jitter, which sends the losers back one by one.
#
# *When this notebook was last built it ran in {{build_time}} in a fresh kernel.*
#
# **Further reading**
#
# - Castore, event stores: <https://castore-dev.github.io/castore/docs/event-sourcing/event-stores/>
# - Castore, fetching events: <https://castore-dev.github.io/castore/docs/event-sourcing/fetching-events/>
# - Castore, pushing events (and commands): <https://castore-dev.github.io/castore/docs/event-sourcing/pushing-events/>
# - Martin Fowler, *Optimistic Offline Lock*: <https://martinfowler.com/eaaCatalog/optimisticOfflineLock.html>
# - In this package: `castore_edu/core/event_store.py`, `castore_edu/storage/in_memory.py`, `castore_edu/storage/sqlite.py`,
#   `castore_edu/core/command.py`, `castore_edu/course/widgets/explorer.py`.
#
# Now do exercises 1–2 in `exercises/01_reducers_and_commands.ipynb` (a reducer of your own, and a
# command that retries), then go on to **03 · Messages and channels**.
