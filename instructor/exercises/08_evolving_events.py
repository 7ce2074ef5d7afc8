# %% [markdown]
# # Exercise 13 · Events that evolve
#
# **Time:** about 15 minutes. **Do it after** notebook 13.
#
# **Learning objectives.** By the end of this exercise you will have:
#
# 1. written an upcaster that renames a payload field and splits another one into two, keeping
#    every field it does not know;
# 2. seen it checked the way notebook 13 tests upcasters: old events, as they were stored, and
#    the current events they must become.
#
# **How the exercises work.** The exercise gives a task, a hint (click it to unfold) and a code
# cell in which a `raise NotImplementedError(...)` line marks what you write. Replace that line
# with your code, run the cell, then run the **check** cell below it: it prints
# `✅ Exercise 13 passed`, or shows a short *Not yet* box that says what is not right yet and
# gives a hint. Run a check as often as you like — it never shows a solution.

# %% [markdown]
# ## Exercise 13 · Write an upcaster
#
# The Pokédex records sightings: `POKEMON_SIGHTED`, a trainer saw a Pokémon somewhere. Last
# year's release stored them in schema version 1, with the place as one string. Today's code reads
# version 2, which names the species `species` and splits the place into a route and a region:
#
# | version | payload |
# |---|---|
# | 1 (stored) | `{"name": "Pidgey", "level": 3, "place": "Route 1, Kanto"}` |
# | 2 (today)  | `{"species": "Pidgey", "level": 3, "route": "Route 1", "region": "Kanto"}` |
#
# Some old sightings also carry fields nobody declared (`"shiny": True`, `"weather": "fog"`), and
# the code that reads them needs those too. Today's game also caps the level of a new sighting
# at 50 — a rule for the command that records a sighting.
#
# **Task.** Write `sighted_v1_to_v2(event)`, the upcaster from version 1 to version 2: it returns
# a new event in version 2 and changes nothing else.
#
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# Start from a copy of the old payload (`dict(event.payload)`), so that the fields you do not know
# stay; rename, split the place on its last `", "` (`place.rsplit(", ", 1)`), and return
# `dataclasses.replace(event, payload=..., schema_version=2)`. Notebook 13, sections 3 and 7,
# says what an upcaster must never do.
# </details>
#
# **Check yourself.** The check gives your upcaster old sightings from two regions, one with a
# field it does not know and one above today's level cap, then reads them through an event store
# that declares `EventType("POKEMON_SIGHTED", schema_version=2, upcasters={1: sighted_v1_to_v2})`,
# and checks that the stored events are left as they were.

# %%
from dataclasses import replace

from castore_edu import EventDetail
from castore_edu.course.exercises import pokemon_sighted

old = pokemon_sighted("pidgey", name="Pidgey", level=3, place="Route 1, Kanto")  # as stored last year
assert (old.type, old.schema_version) == ("POKEMON_SIGHTED", 1)
assert old.payload == {"name": "Pidgey", "level": 3, "place": "Route 1, Kanto"}


# %%
def sighted_v1_to_v2(event: EventDetail) -> EventDetail:
    """A POKEMON_SIGHTED event of schema version 1, in version 2."""
    ### BEGIN SOLUTION (hint: copy the payload, rename "name" to "species", split "place" into "route" and "region", and say schema_version=2)
    payload = dict(event.payload)  # a copy: the old event stays as it was, unknown fields stay too
    payload["species"] = payload.pop("name")
    payload["route"], payload["region"] = payload.pop("place").rsplit(", ", 1)
    return replace(event, payload=payload, schema_version=2)
    ### END SOLUTION


# %%
from castore_edu.course.exercises import check_sighting_upcaster

await check_sighting_upcaster(sighted_v1_to_v2)

# %% [markdown]
# ## Recap
#
# - An upcaster is a pure function from an event of version n to a new event of version n + 1:
#   it copies the payload, renames and splits what changed, keeps what it does not know, and says
#   which version it made.
# - It never changes the event it was given, nor which event it is, nor the facts: a rule of
#   today's game belongs in the command that writes new events.
#
# **Further reading**
#
# - Greg Young, *Versioning in an Event Sourced System*: <https://leanpub.com/esversioning>
# - Axon Framework, *Event versioning*:
#   <https://docs.axoniq.io/axon-framework-reference/development/events/event-versioning>
#
# This was the exercise of notebook 13. Well done!
