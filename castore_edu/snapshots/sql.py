"""The snapshot table and its statements, the same on SQLite and PostgreSQL up to the placeholder.

One row per snapshot; the primary key is the key of :mod:`~castore_edu.snapshots.protocol`, and
its order — event store, aggregate, reducer version, version — is also the index a read needs:
"the highest version at or below ``max_version`` for this reducer version" is one step down it.
The aggregate is JSON text written by the store's :class:`~castore_edu.snapshots.codec.AggregateCodec`
(``TEXT``, not PostgreSQL's ``json``: the codec decides how the text becomes an aggregate).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from castore_edu.snapshots.codec import AggregateCodec
from castore_edu.snapshots.protocol import Snapshot

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    event_store_id  TEXT    NOT NULL,
    aggregate_id    TEXT    NOT NULL,
    reducer_version TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    aggregate       TEXT    NOT NULL,  -- JSON
    PRIMARY KEY (event_store_id, aggregate_id, reducer_version, version)
)
"""

LOAD_LATEST = """
SELECT version, aggregate FROM snapshots
WHERE event_store_id = %s AND aggregate_id = %s AND reducer_version = %s AND version <= %s
ORDER BY version DESC LIMIT 1
"""

SAVE = """
INSERT INTO snapshots (event_store_id, aggregate_id, reducer_version, version, aggregate)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (event_store_id, aggregate_id, reducer_version, version) DO UPDATE SET aggregate = excluded.aggregate
"""

DISCARD = "DELETE FROM snapshots WHERE event_store_id = %s AND aggregate_id = %s AND version >= %s"

# Ordered by the caller, in Python: PostgreSQL would order reducer versions by its locale's collation.
LIST = "SELECT version, reducer_version, aggregate FROM snapshots WHERE event_store_id = %s AND aggregate_id = %s"


def for_sqlite(statement: str) -> str:
    """``statement`` with SQLite's placeholder, ``?``."""
    return statement.replace("%s", "?")


def listed(aggregate_id: str, rows: Iterable[Any], codec: AggregateCodec) -> list[Snapshot]:
    """The rows of :data:`LIST` as snapshots, by version then reducer version."""
    snapshots = [
        Snapshot(aggregate_id, int(version), reducer_version, codec.loads(text))
        for version, reducer_version, text in rows
    ]
    return sorted(snapshots, key=lambda snapshot: (snapshot.version, snapshot.reducer_version))
