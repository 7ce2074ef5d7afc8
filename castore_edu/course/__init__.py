"""Course material: the Pokédex domain, the read model, the experiment, widgets and exercise checks.

Nothing in the library imports this room; the notebooks do. ``pokedex`` is the domain every
notebook uses; ``read_models`` the LevelBoard of notebook 08; ``leaderboard`` the season and the
two leaderboard projections of notebook 11; ``experiment`` the side-by-side run of notebook 08; ``widgets`` the explorer (02) and the failure simulator (08), which need the
``notebooks`` extra; ``exercises`` the self-checks of the workshop exercises.
Import from the modules: ``from castore_edu.course.pokedex import in_memory_pokedex``.
"""
