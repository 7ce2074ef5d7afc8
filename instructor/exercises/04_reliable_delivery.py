# %% [markdown]
# # Exercises 7–8 · Reliable delivery
#
# **Time:** about 25 minutes. **Do them after** notebooks 07 and 08.
#
# **Learning objectives.** By the end of these exercises you will have:
#
# 1. made a consumer idempotent, so that duplicate deliveries are harmless and failed ones are
#    not lost;
# 2. written the step of a relay that publishes from the storage's ordered log and resumes from
#    its checkpoint, losing nothing and repeating nothing after a failed publish.
#
# **How the exercises work.** Replace each `raise NotImplementedError(...)` line with your code,
# run the cell, then run the **check** cell below it: `✅ Exercise N passed`, or a short *Not yet*
# box with what is not right yet and a hint. Checks never show a solution; run them as often as
# you like.

# %% [markdown]
# ## Exercise 7 · Make a consumer idempotent
#
# `LevelUpCounter` is a read model: how many times each Pokémon levelled up. Its `apply` adds one
# per level-up, so a message delivered twice — "at least once" delivery does that — counts twice.
#
# **Task.** Write `handle(message, context)`, the consumer a bus or a queue would call. It applies
# each message **once**, however often it is delivered. And if `apply` fails, the error must get
# out (the bus or queue then delivers the message again), and that new delivery must be applied.
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# Notebook 08, section 4: a message about an event has a natural identity. Use `self.processed`.
# The order of two lines decides what happens when `apply` fails.
# </details>
#
# **Check yourself.** The check delivers level-ups of three Pokémon (one version out of order,
# two Eevees of two stores), delivers them all again — as new, equal objects, the way a broker
# does — then makes `apply` fail once on a new message and delivers that message a second time.

# %%
from castore_edu.course.pokedex import POKEMON_LEVELED_UP


class LevelUpCounter:
    """A read model: how many times each Pokémon levelled up, from notification messages."""

    def __init__(self) -> None:
        self.level_ups: dict[str, int] = {}
        self.processed: set[tuple[str, str, int]] = set()

    def apply(self, message) -> None:
        """The effect of one message. Not idempotent: applied twice, a level-up counts twice."""
        event = message.event
        if event.type == POKEMON_LEVELED_UP.type:
            self.level_ups[event.aggregate_id] = self.level_ups.get(event.aggregate_id, 0) + 1

    async def handle(self, message, context) -> None:
        """Apply each message once, however often it is delivered."""
        ### BEGIN SOLUTION (hint: which messages were applied already? self.processed is there to remember)
        key = (message.event_store_id, message.event.aggregate_id, message.event.version)
        if key in self.processed:
            return
        self.apply(message)
        self.processed.add(key)  # only now: if apply failed, the next delivery applies it
        ### END SOLUTION


# %%
from castore_edu.course.exercises import check_idempotent_counter

await check_idempotent_counter(LevelUpCounter)

# %% [markdown]
# ## Exercise 8 · Make a relay resume from its checkpoint
#
# A relay publishes what the storage's ordered log holds, and remembers in a *checkpoint* the log
# position of the last event it published (notebook 08, sections 1–3).
#
# **Task.** Write one step of a relay: `relay_step(storage, channel, checkpoints, name)` publishes,
# as `NotificationMessage`s on `channel`, the events of `storage`'s log after the checkpoint of the
# relay called `name`, in log order, and returns how many it published. It resumes exactly where
# the last step stopped:
#
# - a step after a successful one publishes only what is new;
# - if a publish fails, the error gets out, and the next step starts again with the event that
#   failed — nothing lost, nothing published twice;
# - each relay name has its own checkpoint.
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# `await checkpoints.load(name)` and `await checkpoints.save(name, position)` read and write a
# checkpoint (0 before the first save; both are coroutines, as a checkpoint on a server is a query away). `await storage.read_log(after_position=...)` returns `LoggedEvent`s, each
# with its `position`, `event_store_id` and `event` (the log is read with `await`, like every call
# to storage). *When* you save decides what a failure costs.
# </details>
#
# **Check yourself.** The check steps your relay over the opening story, on a log whose positions
# have gaps (as a server database's log can), while the channel refuses the 3rd publish, then
# steps it again, and again after one more event, and runs a second relay.

# %%
from castore_edu import InMemoryCheckpointStore, NotificationMessage


async def relay_step(storage, channel, checkpoints: InMemoryCheckpointStore, name: str) -> int:
    """Publish the log's events after relay `name`'s checkpoint, in order; return how many."""
    ### BEGIN SOLUTION (hint: load the checkpoint, read the log after it, publish each entry, save as you go)
    published = 0
    for entry in await storage.read_log(after_position=await checkpoints.load(name)):
        await channel.publish_message(NotificationMessage(entry.event_store_id, entry.event))
        await checkpoints.save(name, entry.position)  # only now: a failed publish is retried next step
        published += 1
    return published
    ### END SOLUTION


# %%
from castore_edu.course.exercises import check_relay_step

await check_relay_step(relay_step)

# %% [markdown]
# ## Recap
#
# - Delivery is at least once, so consumers must be idempotent: skip what was applied, and record
#   a message as applied only once its effect succeeded.
# - A relay moves its checkpoint only past what it has published: a failed publish is retried by
#   the next step, and a restarted relay continues where the last one stopped.
#
# **Further reading**
#
# - Chris Richardson, *Idempotent consumer*: <https://microservices.io/patterns/communication-style/idempotent-consumer.html>
# - Chris Richardson, *Transaction log tailing*: <https://microservices.io/patterns/data/transaction-log-tailing.html>
#
# Next: exercises 9–10 (`05_beyond_one_machine`), after notebooks 09 and 10.
