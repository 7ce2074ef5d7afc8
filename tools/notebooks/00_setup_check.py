# %% [markdown]
# # 00 · Setup check
#
# **Time:** about 10 minutes.
#
# **Learning objectives.** By the end of this notebook you will know that your environment can:
#
# 1. import `castore_edu` on a recent enough Python;
# 2. push an event and `await` it at the top level of a cell (Jupyter runs an asyncio event loop for you);
# 3. show an interactive widget (ipywidgets);
# 4. draw a plot (matplotlib).
#
# If every cell below runs without an error, you are ready for the course. Each cell also
# *asserts* what it claims: the course never asks you to take a printed value on trust.

# %% [markdown]
# ## 1. Versions
#
# castore_edu needs Python 3.11 or newer. The versions printed here depend on your machine, so
# the automatic notebook tests (nbval) ignore this one output.

# %%
# NBVAL_IGNORE_OUTPUT
# (versions differ from machine to machine; the first matplotlib import may also print a one-time notice)
import sys

import ipywidgets
import matplotlib
import matplotlib.pyplot as plt

import castore_edu

print(f"Python      {sys.version.split()[0]}")
print(f"castore_edu {castore_edu.__version__}")
print(f"ipywidgets  {ipywidgets.__version__}")
print(f"matplotlib  {matplotlib.__version__}")
assert sys.version_info >= (3, 11), "castore_edu needs Python 3.11 or newer"

# %% [markdown]
# ## 2. One event
#
# The whole course uses one small domain, Pokémon and their trainers, defined once in
# `castore_edu/course/pokedex.py`. `in_memory_pokedex()` gives two event stores that keep their
# events in memory. Their timestamps come from a *stepping clock*: the first event is stamped
# 2024-01-01 at midnight, each next one a second later, so the outputs below are the same on
# every machine.
#
# `push_event` is a coroutine. In a notebook you can `await` it directly in a cell: Jupyter's
# kernel already runs an asyncio event loop (in a script you would wrap your code in
# `asyncio.run(...)`).

# %%
from castore_edu.course.pokedex import in_memory_pokedex, pokemon_appeared

pokedex = in_memory_pokedex()
result = await pokedex.pokemons.push_event(pokemon_appeared("pikachu", name="Pikachu", level=5))
result.event

# %%
assert result.event.timestamp == "2024-01-01T00:00:00.000Z"
assert result.next_aggregate.name == "Pikachu" and result.next_aggregate.level == 5
result.next_aggregate

# %% [markdown]
# ## 3. A widget
#
# A slider should appear below. (On GitHub or in a viewer without a running kernel you may see
# only its text form.) Code can move it too, which is how the tests check widgets.

# %%
slider = ipywidgets.IntSlider(value=5, min=1, max=100, description="level")
slider

# %%
slider.value = 6
assert slider.value == 6

# %% [markdown]
# ## 4. A plot
#
# A bar chart of Pikachu's level after each of three made-up level-ups. The data are fixed, so
# the picture is the same on every run.

# %%
levels = [5, 6, 7, 8]
figure, axes = plt.subplots(figsize=(5, 2.5))
axes.bar([f"v{version}" for version in range(1, 5)], levels, color="gold")
axes.set_xlabel("version")
axes.set_ylabel("level")
axes.set_title("Pikachu's level, version by version")
plt.show()
assert len(axes.patches) == len(levels)

# %% [markdown]
# ## Recap
#
# - `castore_edu` imports, events can be pushed and awaited at the top level of a cell.
# - Widgets and plots render: you can use the event store explorer (notebook 02) and the
#   measurements of notebook 05.
#
# *When this notebook was last built (`python tools/build_notebooks.py`) it ran in {{build_time}}
# in a fresh kernel.*
#
# **Further reading**
#
# - Castore's installation page: <https://castore-dev.github.io/castore/docs/installation/>
# - Top-level `await` in IPython and Jupyter: <https://ipython.readthedocs.io/en/stable/interactive/autoawait.html>
# - The course domain, with docstrings that explain each choice: `castore_edu/course/pokedex.py`
#
# Next: **01 · Events, event types, aggregates and reducers**.
