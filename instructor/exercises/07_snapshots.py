# %% [markdown]
# # Exercise 12 · Snapshots
#
# **Time:** about 15 minutes. **Do it after** notebook 12.
#
# **Learning objectives.** By the end of this exercise you will have:
#
# 1. written, by hand, the read that `get_aggregate` makes when it is given snapshots: the latest
#    snapshot that fits, then only the events after it;
# 2. met the three ways such a read goes wrong without an error: a snapshot of another reducer,
#    a snapshot after `max_version`, and a snapshot changed in place.
#
# **How the exercises work.** Replace the `raise NotImplementedError(...)` line with your code,
# run the cell, then run the **check** cell below it: `✅ Exercise 12 passed`, or a short *Not yet*
# box with what is not right yet and a hint. Checks never show a solution; run them as often as
# you like.

# %% [markdown]
# ## Pikachu's snapshots
#
# A snapshot store kept these snapshots of Pikachu, in no particular order: four taken with the
# store's reducer (`"v1"`), and a newer one left over from an experiment with another reducer
# (`"v2"`, which counted every level-up twice). The store's reducer folds a Pokémon as a **dict,
# changed in place** — it updates the dict it is given and returns it, a common Python habit:

# %%
from castore_edu.course.exercises.snapshots import pokemon_reducer_in_place, snapshot_store_exercise

pokemons, storage, snapshots = snapshot_store_exercise()  # Pikachu has 60 events: level 60
assert [(snapshot.version, snapshot.reducer_version) for snapshot in snapshots] == [
    (20, "v1"), (50, "v2"), (40, "v1"), (10, "v1"), (30, "v1"),
]  # fmt: skip
assert snapshots[2].aggregate == {"id": "pikachu", "version": 40, "level": 40}

pikachu = pokemons.build_aggregate(await pokemons.get_events("pikachu", max_version=3))
assert pikachu == {"id": "pikachu", "version": 3, "level": 3}
(fourth,) = await pokemons.get_events("pikachu", min_version=4, max_version=4)
assert pokemon_reducer_in_place(pikachu, fourth) is pikachu  # the same dict, changed in place:
assert pikachu == {"id": "pikachu", "version": 4, "level": 4}

# %% [markdown]
# ## Exercise 12 · Read an aggregate from a snapshot
#
# **Task.** Write `get_aggregate_from_snapshots(event_store, snapshots, aggregate_id, *,
# reducer_version, max_version=None)`. It returns the aggregate at `max_version` (`None`: the
# latest) — the same as a fold of every event — starting from the latest snapshot in `snapshots`
# that fits: one taken with `reducer_version`, at or before `max_version`. It reads **only the
# events after that snapshot**, in one call to `event_store.get_events`, and it must leave every
# snapshot as it was. When no snapshot fits, it folds every event up to `max_version`.
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# Notebook 12, section 1: the snapshot at version *v* already holds the events 1..*v*, so the
# events to read start at *v* + 1 (`min_version=`) and stop at `max_version`.
# `event_store.build_aggregate(events, aggregate)` folds events onto an aggregate — but this
# reducer changes that aggregate: give it a copy (`copy.deepcopy`).
# </details>
#
# **Check yourself.** The check reads Pikachu six times — the latest, at versions 7, 25, 35 and 45,
# and with a reducer version that has no snapshot — counts the events your read gets from storage,
# and compares every snapshot with how it was kept after each read.

# %%
import copy

from castore_edu import EventStore, Snapshot


async def get_aggregate_from_snapshots(
    event_store: EventStore,
    snapshots: list[Snapshot],
    aggregate_id: str,
    *,
    reducer_version: str,
    max_version: int | None = None,
):
    """The aggregate at `max_version`, folded from the latest snapshot that fits, and the events after it."""
    ### BEGIN SOLUTION (hint: keep the snapshots of this reducer version at or before max_version, take the latest, read and fold what came after it)
    fitting = [
        snapshot
        for snapshot in snapshots
        if snapshot.reducer_version == reducer_version
        and (max_version is None or snapshot.version <= max_version)
    ]
    if not fitting:
        return event_store.build_aggregate(
            await event_store.get_events(aggregate_id, max_version=max_version)
        )
    latest = max(fitting, key=lambda snapshot: snapshot.version)
    events = await event_store.get_events(
        aggregate_id, min_version=latest.version + 1, max_version=max_version
    )
    return event_store.build_aggregate(events, copy.deepcopy(latest.aggregate))
    ### END SOLUTION


# %%
from castore_edu.course.exercises import check_fold_from_snapshot

await check_fold_from_snapshot(get_aggregate_from_snapshots)

# %% [markdown]
# ## Recap
#
# - A read from a snapshot takes the latest snapshot *that fits* — this reducer's, at or before
#   `max_version` — and folds only the events after it, from `snapshot.version + 1`.
# - A snapshot of another reducer version is never used: it holds another reducer's answer.
# - A snapshot must never change: fold onto a copy. The library's snapshot stores copy on every
#   save and load, so `EventStore.get_aggregate` never hands out the kept one.
#
# **Further reading**
#
# - Castore, the snapshot discussion: <https://github.com/castore-dev/castore/issues/181>
# - In this package: `castore_edu/core/event_store.py` (`get_aggregate`), `castore_edu/snapshots/`.
