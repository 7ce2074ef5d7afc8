"""A worker process for the racing tests (tests/test_sqlite.py, tests/test_postgres.py).

``python tests/racing_counter.py sqlite|postgres WHERE NAME COUNT`` increments the counter
"shared" COUNT times through a ``Command`` that retries on version conflicts, each event saying
NAME: several of these at once, on one database, must lose nothing.
"""

import asyncio
import sys

from castore_edu import (
    Command,
    EventDetail,
    EventStore,
    PostgresEventStorageAdapter,
    SQLiteEventStorageAdapter,
)
from castore_edu.storage.protocol import close_adapter


async def main(kind: str, where: str, name: str, count: int) -> None:
    adapter = SQLiteEventStorageAdapter(where) if kind == "sqlite" else PostgresEventStorageAdapter(where)
    counter = EventStore(
        event_store_id="COUNTERS",
        event_types=[],
        reducer=lambda aggregate, event: event.version,
        event_storage_adapter=adapter,
    )

    async def increment(_input: object, stores: list[EventStore]) -> None:
        [counters] = stores
        result = await counters.get_aggregate("shared")
        version = (result.aggregate or 0) + 1
        await counters.push_event(
            EventDetail(aggregate_id="shared", version=version, type="INCREMENTED", payload={"by": name})
        )

    command = Command(
        command_id="INCREMENT",
        required_event_stores=[counter],
        handler=increment,
        event_already_exists_retries=10_000,
    )
    for _ in range(count):
        await command.handler(None, [counter])
    await close_adapter(adapter)


def run_racing_counters(kind: str, where: str, names: list[str], per_process: int) -> None:
    """Start one worker per name, all at once, and wait for every one to succeed."""
    import subprocess
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, kind, where, name, str(per_process)],
            env={"PYTHONPATH": root},
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    for worker in workers:
        _, errors = worker.communicate(timeout=120)
        assert worker.returncode == 0, errors


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
