"""An ordered log with gaps, as a server database's log has them.

A rolled-back transaction never gives its position back (notebook 09), so a reader of a server's
log meets gaps: 1, 2, 4, 7... A relay or a projection must save the *position* of the last entry
it handled, never a count of entries: on a log without gaps the two agree, and code that counts
passes by luck. The exercise checks put this log in front of a learner's code to tell them apart.
"""

from __future__ import annotations

import dataclasses

from castore_edu.core.events import LoggedEvent
from castore_edu.storage.protocol import OrderedLogStorage


class LogWithGaps:
    """The ordered log of ``inner``, with a gap before every position: 2, 4, 6..."""

    def __init__(self, inner: OrderedLogStorage) -> None:
        self.inner = inner

    async def read_log(self, *, after_position: int = 0, limit: int | None = None) -> list[LoggedEvent]:
        entries = await self.inner.read_log(after_position=after_position // 2, limit=limit)
        return [dataclasses.replace(entry, position=2 * entry.position) for entry in entries]

    async def last_position(self) -> int:
        return 2 * await self.inner.last_position()
