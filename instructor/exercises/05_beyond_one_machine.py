# %% [markdown]
# # Exercises 9–10 · Beyond one machine
#
# **Time:** about 25 minutes. **Do them after** notebooks 09 and 10.
#
# **Learning objectives.** By the end of these exercises you will have:
#
# 1. written a log reader that never moves its checkpoint past a position a running transaction
#    may still fill — the guard of notebook 09, on a small log that needs no server;
# 2. written a worker that acknowledges a message only after its read model committed, and
#    applies it once even when the broker delivers it again after a crash (notebook 10).
#
# **How the exercises work.** Replace each `raise NotImplementedError(...)` line with your code,
# run the cell, then run the **check** cell below it: `✅ Exercise N passed`, or a short *Not yet*
# box with what is not right yet and a hint. Checks never show a solution; run them as often as
# you like. Both run in memory: no server to start.

# %% [markdown]
# ## Exercise 9 · Read a server's log without skipping a late commit
#
# `ServerLog` is a server database's log in miniature. A transaction takes its position when it
# writes, and its event becomes visible when it commits — or never, if it rolls back (its position
# then stays a gap for good). `await log.read_log(after_position=n)` returns the committed
# entries after `n`; `await log.oldest_in_flight()` returns the lowest position a running
# transaction still holds, or `None` (PostgreSQL's `pg_snapshot_xmin`, notebook 09, section 3).
# The cell below shows the trap: position 2 is committed before position 1.
#
# **Task.** Write `read_new(log, checkpoint)`, which returns `(entries, new_checkpoint)`: the
# committed entries after `checkpoint` that are safe to publish, in order, and the position of
# the last of them (or `checkpoint` if there are none). The new checkpoint must never pass a
# position that a transaction in flight could still fill — yet a rolled-back position must not
# stop the reader for ever.
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# Below the oldest transaction in flight, nothing can change any more. Ask for it *before* you
# read the log: a transaction may commit while you read.
# </details>
#
# **Check yourself.** The check reads a log where a slow transaction commits after a faster one,
# another rolls back, and a third commits in the middle of your read.

# %%
from castore_edu.course.exercises import ServerLog
from castore_edu.course.pokedex import pokemon_appeared

demo = ServerLog()
slow = demo.begin(pokemon_appeared("slowpoke", name="Slowpoke", level=1))  # position 1, running
demo.write(pokemon_appeared("pikachu", name="Pikachu", level=5))  # position 2, committed
assert [entry.position for entry in await demo.read_log()] == [2]  # 1 is not visible yet...
assert await demo.oldest_in_flight() == 1  # ...and may still be
demo.commit(slow)
assert [entry.position for entry in await demo.read_log(after_position=0)] == [1, 2]
assert await demo.oldest_in_flight() is None  # nothing running: nothing below can change


# %%
async def read_new(log: ServerLog, checkpoint: int):
    """The entries after `checkpoint` that no running transaction can still precede, and the new checkpoint."""
    ### BEGIN SOLUTION (hint: ask await log.oldest_in_flight() first, then read after the checkpoint and keep what lies below it)
    horizon = await log.oldest_in_flight()  # first: a commit during the read stays above it
    entries = await log.read_log(after_position=checkpoint)
    if horizon is not None:
        entries = [entry for entry in entries if entry.position < horizon]
    return entries, entries[-1].position if entries else checkpoint
    ### END SOLUTION


# %%
from castore_edu.course.exercises import check_read_new

await check_read_new(read_new)

# %% [markdown]
# ## Exercise 10 · Acknowledge only after the read model committed
#
# A broker delivers a message until it is acknowledged (notebook 10, section 3). A worker that
# acknowledges too early loses the message if its process dies before the read model committed;
# one that acknowledges late gets the message again if it dies between the commit and the ack.
#
# `LevelDatabase` is a read model in a database of its own: `async with board.transaction() as tx:`
# opens a transaction; inside, `tx.level_up(pokemon_id)` counts a level-up, `tx.remember(key)`
# records that a message was applied and `tx.has_applied(key)` tells whether one was. Leaving
# the block commits it all at once; an error inside it, or at the commit, keeps none of it.
#
# **Task.** Write `work(delivery, board)`, the worker the broker calls with each delivery
# (`delivery.message`, a `NotificationMessage` of a level-up, and `await delivery.ack()`). It
# counts each level-up **once** on the board and acknowledges the message only once that is
# committed. An error of the board must get out (the broker then delivers the message again).
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# Exercise 7's key, `(event_store_id, aggregate_id, version)`, goes *into the same transaction*
# as the level-up. The ack comes after the `async with` block — also for a message the board has
# applied already.
# </details>
#
# **Check yourself.** The check delivers six level-ups: the process dies during the commit of
# the second, between the commit and the ack of the third, and the commit of the fourth fails
# with an error; the last two are of two Eevees, in two stores, at the same version. Whatever was
# not acknowledged is delivered again.

# %%
from castore_edu.course.exercises import Delivery, LevelDatabase


async def work(delivery: Delivery, board: LevelDatabase) -> None:
    """Count the delivered level-up once, then acknowledge it."""
    ### BEGIN SOLUTION (hint: in one transaction, skip a known key or count the level-up and remember its key; then ack)
    message = delivery.message
    key = (message.event_store_id, message.event.aggregate_id, message.event.version)
    async with board.transaction() as tx:
        if not tx.has_applied(key):
            tx.level_up(message.event.aggregate_id)
            tx.remember(key)  # committed with the level-up, or rolled back with it
    await delivery.ack()  # only now: a crash before this line means a redelivery, never a loss
    ### END SOLUTION


# %%
from castore_edu.course.exercises import check_ack_after_commit

await check_ack_after_commit(work)

# %% [markdown]
# ## Recap
#
# - On a server database a reader may move its checkpoint only up to the oldest transaction in
#   flight, read *before* the log: a late commit then lands above the checkpoint, and a rolled-back
#   position, a gap for good, stops nobody.
# - A worker acknowledges after its read model committed, and records in the same transaction
#   which message it applied: a crash before the commit costs a redelivery, a crash after it a
#   skipped duplicate — never a lost or a doubled level-up.
#
# **Further reading**
#
# - PostgreSQL, transaction ids and snapshots (`pg_snapshot_xmin`):
#   <https://www.postgresql.org/docs/current/functions-info.html#FUNCTIONS-PG-SNAPSHOT>
# - NATS, *JetStream consumers* (acknowledgements, `ack_wait`):
#   <https://docs.nats.io/nats-concepts/jetstream/consumers>
# - Chris Richardson, *Idempotent consumer*:
#   <https://microservices.io/patterns/communication-style/idempotent-consumer.html>
#
# This was the last exercise of the workshop. Well done!
