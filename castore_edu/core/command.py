"""Commands: the place where business rules decide which events to push.

A command handler reads the current state, decides, and pushes. Between the read and the push
another writer may have pushed the same version: the push then fails with
:class:`~castore_edu.core.errors.EventAlreadyExistsError`. Because the handler decided on stale state,
the right reaction is to run the *whole* handler again on fresh state — which is what
:class:`Command` does, up to ``event_already_exists_retries`` more times, with no pause.

Keep handlers free of side effects other than pushing events: a retry repeats everything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from castore_edu.core.errors import is_event_already_exists_error
from castore_edu.core.event_store import EventStore

Handler = Callable[..., Awaitable[Any]]
OnEventAlreadyExists = Callable[..., Awaitable[Any]]


class Command:
    """A named handler that retries itself on version conflicts."""

    def __init__(
        self,
        *,
        command_id: str,
        required_event_stores: Sequence[EventStore],
        handler: Handler,
        event_already_exists_retries: int = 2,
        on_event_already_exists: OnEventAlreadyExists | None = None,
    ) -> None:
        retries = event_already_exists_retries
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValueError(f"event_already_exists_retries must be an int >= 0, got {retries!r}")
        self.command_id = command_id
        self.required_event_stores = list(required_event_stores)
        self.event_already_exists_retries = retries
        self.on_event_already_exists = on_event_already_exists
        self._run = handler

    async def handler(self, input: Any, event_stores: Sequence[EventStore], *context: Any) -> Any:
        """Run the user's handler; on a version conflict, tell ``on_event_already_exists`` and
        run it again, until the retries are spent (then the conflict is raised)."""
        retries_left = self.event_already_exists_retries
        attempt_number = 1
        while True:
            try:
                return await self._run(input, event_stores, *context)
            except Exception as error:
                if not is_event_already_exists_error(error):
                    raise
                if self.on_event_already_exists is not None:
                    await self.on_event_already_exists(
                        error, attempt_number=attempt_number, retries_left=retries_left
                    )
                if retries_left == 0:
                    raise
                retries_left -= 1
                attempt_number += 1
