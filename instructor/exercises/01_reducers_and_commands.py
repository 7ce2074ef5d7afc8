# %% [markdown]
# # Exercises 1–2 · Reducers and commands
#
# **Time:** about 25 minutes. **Do them after** notebooks 01 and 02.
#
# **Learning objectives.** By the end of these exercises you will have:
#
# 1. written the reducer of the `TRAINERS` store, including a new kind of event;
# 2. made a command survive several concurrent writers by retrying on version conflicts.
#
# **How the exercises work.** Each exercise gives a task, a hint (click it to unfold) and a code
# cell in which a `raise NotImplementedError(...)` line marks what you write. Replace that line
# with your code, run the cell, then run the **check** cell below it: it prints
# `✅ Exercise N passed`, or shows a short *Not yet* box that says what is not right yet and
# gives a hint. Run a check as often as you like — it never shows a solution. Run the cells from
# the top, one at a time: a check that says *Not yet* stops "Run All" there, as any error does.

# %% [markdown]
# ## Exercise 1 · Write a reducer
#
# Trainers can now let a Pokémon go. A new event type says so: `TRAINER_RELEASED_POKEMON`, with
# the payload `{"pokemon_id": ...}` (`trainer_released_pokemon(trainer_id, version=...,
# pokemon_id=...)` makes one).
#
# **Task.** Write `trainer_reducer(trainer, event)`, the reducer of the `TRAINERS` store:
#
# - `TRAINER_CREATED` (payload `{"name": ...}`) makes a new `Trainer` who owns no Pokémon;
# - `TRAINER_CAUGHT_POKEMON` adds `payload["pokemon_id"]` at the end of `pokemon_ids`;
# - `TRAINER_RELEASED_POKEMON` removes it;
# - any other event type changes nothing but the version.
#
# Every event sets the aggregate's `version` to its own. `Trainer` is a frozen dataclass
# (`castore_edu/course/pokedex.py`): return a new one and never touch the one you are given.
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# `dataclasses.replace(trainer, version=..., pokemon_ids=...)` copies a frozen dataclass with some
# fields changed. A tuple cannot be changed in place: build a new one. Notebook 01 walks through
# the course's `pokemon_reducer`, written the same way.
# </details>
#
# **Check yourself.** Run your cell, then the check: it folds Misty's whole story with your
# reducer — her start, three catches, a release, and an event type your reducer has never heard of
# (and Brock's start, too).

# %%
from dataclasses import replace

from castore_edu import EventDetail
from castore_edu.course.exercises import TRAINER_RELEASED_POKEMON
from castore_edu.course.pokedex import TRAINER_CAUGHT_POKEMON, TRAINER_CREATED, Trainer


def trainer_reducer(trainer: Trainer | None, event: EventDetail) -> Trainer:
    """Fold one event of the TRAINERS store into a trainer."""
    ### BEGIN SOLUTION (hint: start with TRAINER_CREATED, the one event that folds into None)
    if event.type == TRAINER_CREATED.type:
        return Trainer(aggregate_id=event.aggregate_id, version=event.version, name=event.payload["name"])
    if event.type == TRAINER_CAUGHT_POKEMON.type:
        caught = event.payload["pokemon_id"]
        return replace(trainer, version=event.version, pokemon_ids=(*trainer.pokemon_ids, caught))
    if event.type == TRAINER_RELEASED_POKEMON.type:
        released = event.payload["pokemon_id"]
        kept = tuple(pokemon_id for pokemon_id in trainer.pokemon_ids if pokemon_id != released)
        return replace(trainer, version=event.version, pokemon_ids=kept)
    return replace(trainer, version=event.version)
    ### END SOLUTION


# %%
from castore_edu.course.exercises import check_trainer_reducer

await check_trainer_reducer(trainer_reducer)

# %% [markdown]
# ## Exercise 2 · Make a command retry on conflicts
#
# Four players press "level up!" on Pikachu at the same moment. Four handlers read Pikachu at the
# same version and push the same next version: the storage takes one and refuses the others
# with `EventAlreadyExistsError` (notebook 02, section 5).
#
# **Task.** Write `make_level_up_command(pokemons)`. It returns a `Command` whose handler, called
# as `await command.handler({"pokemon_id": "pikachu"}, [pokemons])`,
#
# 1. reads the Pokémon,
# 2. pushes a `POKEMON_LEVELED_UP` event at its next version,
# 3. returns the Pokémon's new level.
#
# Four of these calls running at once must **all** succeed: Pikachu ends four levels higher.
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# A `Command` runs its whole handler again when it raises `EventAlreadyExistsError` — on fresh
# state, as long as it has retries left (`event_already_exists_retries`). Count how many times
# the unluckiest of four writers can lose. With `prev_aggregate`, the result of `push_event`
# carries the new state in `next_aggregate`.
# </details>
#
# **Check yourself.** The check runs four level-ups of Pikachu at once, on storage that pauses at
# every call, so that every handler reads before any of them writes; then another writer levels
# Pikachu up, and your command levels up Pikachu and Eevee once more.

# %%
from castore_edu import Command, EventStore
from castore_edu.course.pokedex import pokemon_leveled_up


def make_level_up_command(pokemons: EventStore) -> Command:
    """A command that levels a Pokémon up, and survives three other writers doing the same."""

    ### BEGIN SOLUTION (hint: write an async handler(input, event_stores), then return a Command around it)
    async def level_up(input, event_stores):
        (store,) = event_stores
        current = (await store.get_existing_aggregate(input["pokemon_id"])).aggregate
        event = pokemon_leveled_up(input["pokemon_id"], version=current.version + 1)
        result = await store.push_event(event, prev_aggregate=current)
        return result.next_aggregate.level

    return Command(
        command_id="LEVEL_UP_POKEMON",
        required_event_stores=[pokemons],
        handler=level_up,
        event_already_exists_retries=3,  # four writers: the last one can lose three times
    )
    ### END SOLUTION


# %%
from castore_edu.course.exercises import check_level_up_command

await check_level_up_command(make_level_up_command)

# %% [markdown]
# ## Recap
#
# - A reducer is a pure function: one new aggregate per event, the version always moved on,
#   unknown event types tolerated.
# - A version conflict means "you decided on stale state": a `Command` runs the whole handler
#   again, and needs as many retries as the number of rivals it may meet.
#
# **Further reading**
#
# - Castore, aggregates and reducers: <https://castore-dev.github.io/castore/docs/event-sourcing/aggregates-reducers/>
# - Castore, pushing events (and commands): <https://castore-dev.github.io/castore/docs/event-sourcing/pushing-events/>
#
# Next: **Exercises 3–4 · Channels and connected stores**, after notebooks 03 to 05.
