"""Workshop exercises: self-checks that tell a learner "not yet" (and why) or "passed".

The exercise notebooks (``notebooks/exercises/``) import everything from here::

    from castore_edu.course.exercises import check_trainer_reducer
    await check_trainer_reducer(trainer_reducer)

See :mod:`castore_edu.course.exercises.feedback` for how a check reports, and
:mod:`castore_edu.course.exercises.checks` for what each one verifies (the checks of exercises 11, 12
and 13 are in :mod:`castore_edu.course.exercises.read_models`, ``snapshots`` and ``evolving_events``).
"""

from castore_edu.course.exercises.checks import (
    EXERCISES,
    TRAINER_RELEASED_POKEMON,
    Delivery,
    LevelDatabase,
    ServerLog,
    check_ack_after_commit,
    check_catch,
    check_idempotent_counter,
    check_level_queue,
    check_level_up_command,
    check_level_up_listener,
    check_read_new,
    check_rebuild_levels,
    check_relay_step,
    check_trainer_reducer,
    trainer_released_pokemon,
)
from castore_edu.course.exercises.evolving_events import (
    POKEMON_SIGHTED,
    check_sighting_upcaster,
    pokemon_sighted,
)
from castore_edu.course.exercises.feedback import Exercise, NotYet
from castore_edu.course.exercises.read_models import (
    apply_level,
    check_projection_step,
    load_checkpoint,
    read_levels,
    save_checkpoint,
)
from castore_edu.course.exercises.snapshots import check_fold_from_snapshot

__all__ = [
    "EXERCISES",
    "POKEMON_SIGHTED",
    "TRAINER_RELEASED_POKEMON",
    "Delivery",
    "Exercise",
    "LevelDatabase",
    "NotYet",
    "ServerLog",
    "apply_level",
    "check_ack_after_commit",
    "check_catch",
    "check_fold_from_snapshot",
    "check_idempotent_counter",
    "check_level_queue",
    "check_level_up_command",
    "check_level_up_listener",
    "check_projection_step",
    "check_read_new",
    "check_rebuild_levels",
    "check_relay_step",
    "check_sighting_upcaster",
    "check_trainer_reducer",
    "load_checkpoint",
    "pokemon_sighted",
    "read_levels",
    "save_checkpoint",
    "trainer_released_pokemon",
]
