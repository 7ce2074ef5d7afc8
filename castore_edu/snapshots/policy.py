"""When to take a snapshot: :class:`EveryNEvents`.

A snapshot costs a write, and storage for one more copy of the aggregate; it saves reading and
folding the events it covers. So it pays off only for aggregates with long histories, read often
(notebook 12 measures where). The policy here keeps at most one snapshot per block of ``n``
versions, and never lets a read fold more than ``n - 1`` events after a snapshot without saving
a newer one.
"""

from __future__ import annotations

from castore_edu.core.arguments import require_int


class EveryNEvents:
    """A snapshot each time a read passes a multiple of ``n``: at 100, 200, 300... for ``n=100``.

    A read that folded the events after ``from_version`` up to ``to_version`` takes one when a
    multiple of ``n`` lies in between (``from_version < k·n <= to_version``). The snapshot is then
    taken at ``to_version``, where the read stands, not at the multiple: the first read of an
    aggregate of 1,234 events saves its snapshot at 1,234, and the next one is due at 1,300.
    """

    def __init__(self, n: int) -> None:
        self.n = require_int("n", n, minimum=1)

    def __repr__(self) -> str:
        return f"EveryNEvents({self.n})"

    def due(self, *, from_version: int, to_version: int) -> bool:
        return to_version // self.n > from_version // self.n
