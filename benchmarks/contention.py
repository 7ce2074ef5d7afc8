"""``python -m benchmarks.contention`` — many commands racing for one aggregate, with and without back-off.

``n`` commands start at once on one in-memory counter; each reads it, then pushes the next
version, and retries on ``EventAlreadyExistsError`` until it succeeds. Without back-off (Castore's
behaviour) every round lets one command win and sends all the others back at once:
``n (n - 1) / 2`` retries. With back-off (``retry_delay_ms=1``, doubling, full jitter) the losers
spread out. The waits are real ``asyncio.sleep`` calls, so the retries with back-off, and both
times, vary from run to run: each figure is the median of several rounds. ``--quick`` runs
smaller crowds (a smoke test for CI).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from castore_edu.testing.contention import RaceResult, race_for_one_aggregate

RETRY_DELAY_MS = 1.0


@dataclass(frozen=True)
class ContentionRow:
    """Medians over the rounds, for one crowd size."""

    commands: int
    retries_at_once: float
    retries_backed_off: float
    seconds_at_once: float
    seconds_backed_off: float


def median_race(commands: int, rounds: int, retry_delay_ms: float) -> tuple[float, float]:
    """The median retries and seconds of ``rounds`` races, each seeded differently."""
    results: list[RaceResult] = [
        asyncio.run(
            race_for_one_aggregate(commands, retry_delay_ms=retry_delay_ms, seed=seed, sleep=asyncio.sleep)
        )
        for seed in range(rounds)
    ]
    assert all(result.successes == commands for result in results), "every command must succeed"
    return statistics.median(r.retries for r in results), statistics.median(r.seconds for r in results)


def measure(commands: int, rounds: int) -> ContentionRow:
    retries_at_once, seconds_at_once = median_race(commands, rounds, retry_delay_ms=0)
    retries_backed_off, seconds_backed_off = median_race(commands, rounds, retry_delay_ms=RETRY_DELAY_MS)
    return ContentionRow(commands, retries_at_once, retries_backed_off, seconds_at_once, seconds_backed_off)


def print_table(rows: list[ContentionRow], print_fn: Callable[[str], None]) -> None:
    print_fn(
        "| concurrent commands | retries, at once | retries, back-off | time, at once | time, back-off |"
    )
    print_fn("|---:|---:|---:|---:|---:|")
    for row in rows:
        print_fn(
            f"| {row.commands:,} | {row.retries_at_once:,.0f} | {row.retries_backed_off:,.0f} "
            f"| {row.seconds_at_once * 1000:,.0f} ms | {row.seconds_backed_off * 1000:,.0f} ms |"
        )


def main(argv: list[str] | None = None, print_fn: Callable[[str], None] = print) -> list[ContentionRow]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small crowds, for a smoke test")
    options = parser.parse_args(argv)
    crowds, rounds = ((10, 50), 3) if options.quick else ((50, 100, 200), 5)
    print_fn(
        f"{rounds} rounds per figure (medians), in memory; back-off: retry_delay_ms={RETRY_DELAY_MS:g}, "
        "doubling up to 1,000 ms, full jitter"
    )
    rows = [measure(commands, rounds) for commands in crowds]
    print_table(rows, print_fn)
    return rows


if __name__ == "__main__":
    main()
