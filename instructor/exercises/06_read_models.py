# %% [markdown]
# # Exercise 11 · Read models
#
# **Time:** about 15 minutes. **Do it after** notebook 11.
#
# **Learning objectives.** By the end of this exercise you will have:
#
# 1. written the step of a projection that applies new events to a read model and moves its
#    checkpoint in **one** SQLite transaction, so that a crash or an error anywhere in the step
#    leaves neither half a batch nor a checkpoint ahead of the table.
#
# **How the exercises work.** Replace the `raise NotImplementedError(...)` line with your code,
# run the cell, then run the **check** cell below it: `✅ Exercise 11 passed`, or a short *Not yet*
# box with what is not right yet and a hint. Checks never show a solution; run them as often as
# you like. It runs on a small SQLite file of its own: nothing to set up.

# %% [markdown]
# ## Exercise 11 · Keep a read model and its checkpoint in one transaction
#
# The read model is the table `levels`: each Pokémon's level, *added up* from the events — the
# starting level of a `POKEMON_APPEARED`, one per `POKEMON_LEVELED_UP`. Applied twice, an event
# counts twice. Four helpers do the SQL (the cell below shows them at work):
#
# - `load_checkpoint(connection, name)` — the position saved under `name` (0 if none);
# - `save_checkpoint(connection, name, position)` — save it;
# - `apply_level(connection, entry)` — add one log entry's contribution (entries of other stores
#   change nothing);
# - `read_levels(connection)` — the table, as a dict.
#
# **Task.** Write `project_step(connection, storage, name)`: apply every log entry after the
# checkpoint saved under `name` to the table, and save the position of the last entry read as
# the new checkpoint — **all in one transaction** of `connection` (an SQLite connection in
# autocommit mode: you write `BEGIN IMMEDIATE`, `COMMIT` and `ROLLBACK` yourself). If anything
# fails, nothing of the step may be kept, and the error must get out. Return how many log
# entries the step read.
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# Notebook 11, section 3: `BEGIN IMMEDIATE` comes before you read the checkpoint, `COMMIT` after
# you saved it. `try: ... except BaseException: connection.execute("ROLLBACK"); raise`. The log's
# positions may have gaps: save `entries[-1].position`, not a count.
# </details>
#
# **Check yourself.** The check runs your step on a small Pokédex in an SQLite file. The process
# dies in the middle of applying the log, then while saving the checkpoint; then a run goes
# through, more events come (a trainer's among them), and the database fails with an error in
# the middle of a step. After each of these, a connection of the check's own reads the file:
# the levels must be exactly the fold of the events up to the checkpoint.

# %%
import sqlite3
import tempfile

from castore_edu.course.exercises import apply_level, load_checkpoint, read_levels, save_checkpoint
from castore_edu.course.exercises.read_models import create_tables
from castore_edu.course.pokedex import sqlite_pokedex, tell_the_story

demo_directory = tempfile.TemporaryDirectory()
demo = sqlite_pokedex(f"{demo_directory.name}/demo.sqlite")
await tell_the_story(demo)
demo_connection = sqlite3.connect(f"{demo_directory.name}/demo.sqlite", isolation_level=None)
create_tables(demo_connection)
first = (await demo.pokemons.event_storage_adapter.read_log())[0]  # Pikachu appears, level 5
apply_level(demo_connection, first)
save_checkpoint(demo_connection, "demo", first.position)
assert read_levels(demo_connection) == {"pikachu": 5} and load_checkpoint(demo_connection, "demo") == 1
demo_connection.close()
demo.close()
demo_directory.cleanup()


# %%
async def project_step(connection, storage, name):
    """Apply the log's entries after the checkpoint to `levels`, and move the checkpoint: one transaction."""
    ### BEGIN SOLUTION (hint: BEGIN IMMEDIATE, then load the checkpoint, read the log after it, apply every entry, save the last position, COMMIT; ROLLBACK if anything fails)
    connection.execute("BEGIN IMMEDIATE")  # the write lock, before the checkpoint is read
    try:
        checkpoint = load_checkpoint(connection, name)
        entries = await storage.read_log(after_position=checkpoint)
        for entry in entries:
            apply_level(connection, entry)
        if entries:
            save_checkpoint(connection, name, entries[-1].position)  # a position: the log may have gaps
        connection.execute("COMMIT")  # the levels and the checkpoint, together
    except BaseException:
        connection.execute("ROLLBACK")  # nothing of the step is kept...
        raise  # ...and whoever runs the projection learns that it failed
    return len(entries)
    ### END SOLUTION


# %%
from castore_edu.course.exercises import check_projection_step

await check_projection_step(project_step)

# %% [markdown]
# ## Recap
#
# - A read model kept in the events' own database can commit its changes and its checkpoint in
#   one transaction: a crash before the `COMMIT` keeps neither, a crash after it keeps both, so
#   every event is applied exactly once — no table of processed keys needed.
# - The transaction begins before the checkpoint is read, so no other writer can move it until
#   the commit; on an error it is rolled back, and the error gets out.
# - A checkpoint is a log position, not a count: logs may have gaps, and hold other stores' events.
#
# **Further reading**
#
# - SQLite, *Transactions* (`BEGIN IMMEDIATE`, `ROLLBACK`): <https://www.sqlite.org/lang_transaction.html>
# - Martin Fowler, *CQRS*: <https://martinfowler.com/bliki/CQRS.html>
# - In this package: `castore_edu/projections/runner.py` and `sqlite.py`, which do the same with
#   batches, rebuilds and switches.
