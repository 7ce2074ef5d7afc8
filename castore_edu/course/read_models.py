"""The course's read model: the level of every Pokémon, kept from notification messages.

Notebook 08 uses it to show why consumers must be idempotent: it *adds* each event's
contribution, so a message delivered twice would count twice — unless its handler is wrapped by
:func:`castore_edu.reliability.idempotency.idempotent`, as :attr:`LevelBoard.handler` is.
"""

from __future__ import annotations

from typing import Any

from castore_edu.core.events import EventDetail
from castore_edu.course.pokedex import POKEMON_APPEARED, POKEMON_LEVELED_UP
from castore_edu.messaging.delivery import TaskContext
from castore_edu.reliability.idempotency import ProcessedMessages, idempotent


def level_gain(event: EventDetail) -> int | None:
    """What ``event`` adds to a Pokémon's level: its starting level when it appears, one per
    level-up; ``None`` for an event that has nothing to do with levels."""
    if event.type == POKEMON_APPEARED.type:
        return int(event.payload["level"])
    if event.type == POKEMON_LEVELED_UP.type:
        return 1
    return None


class LevelBoard:
    """A read model: the level of every Pokémon, kept up to date from notification messages.

    It *adds* each event's contribution — the starting level on ``POKEMON_APPEARED``, one on
    ``POKEMON_LEVELED_UP`` — so the order of deliveries does not matter, but a duplicate would
    count twice. Register :attr:`handler` (the idempotent one), not :meth:`apply`.
    """

    def __init__(self, processed: ProcessedMessages | None = None) -> None:
        self.levels: dict[str, int] = {}
        self.handler = idempotent(self.apply, processed)

    def __repr__(self) -> str:
        return f"LevelBoard({self.levels})"

    async def apply(self, message: Any, context: TaskContext | None = None) -> None:
        """Apply one message's effect, unconditionally (not idempotent on its own)."""
        event = message.event
        if (gain := level_gain(event)) is not None:
            self.levels[event.aggregate_id] = self.levels.get(event.aggregate_id, 0) + gain

    def reset(self) -> None:
        """Forget everything — levels *and* processed keys — before rebuilding by replay."""
        self.levels.clear()
        self.handler.processed.clear()
