"""The SQL that both database adapters (SQLite, PostgreSQL) share: the columns of an event, the
query that reads one aggregate's events, and the one that lists an event store's aggregates.

Only the placeholder differs between the two drivers: ``?`` for sqlite3, ``%s`` for psycopg.
"""

from __future__ import annotations

COLUMNS = "aggregate_id, version, type, timestamp, payload, metadata, schema_version"

# A table made by a release before schema versions lacks the column: both adapters add it when
# they open the database (every row there was written in schema version 1).
ADD_SCHEMA_VERSION = "ALTER TABLE events ADD COLUMN schema_version INTEGER NOT NULL DEFAULT 1"


def select_events(
    event_store_id: str,
    aggregate_id: str,
    *,
    min_version: int | None,
    max_version: int | None,
    limit: int | None,
    reverse: bool,
    placeholder: str,
) -> tuple[str, list[object]]:
    """The query (and its parameters) for ``get_events``: filters only for the options given."""
    query = (
        f"SELECT {COLUMNS} FROM events WHERE event_store_id = {placeholder} AND aggregate_id = {placeholder}"
    )
    parameters: list[object] = [event_store_id, aggregate_id]
    if min_version is not None:
        query += f" AND version >= {placeholder}"
        parameters.append(min_version)
    if max_version is not None:
        query += f" AND version <= {placeholder}"
        parameters.append(max_version)
    query += " ORDER BY version DESC" if reverse else " ORDER BY version"
    if limit is not None:
        query += f" LIMIT {placeholder}"
        parameters.append(limit)
    return query, parameters


def list_aggregates_query(placeholder: str) -> str:
    """One row per aggregate of an event store: ``(initial_event_timestamp, created, aggregate_id)``,
    what :class:`~castore_edu.storage.listing.ListedAggregate` holds.

    Two different events answer the two questions, as in the in-memory adapter. The timestamp is
    that of the aggregate's first event, its lowest version. ``created`` says when the aggregate
    came into the database: the position of the first of its events to be *stored*, which is not
    the lowest version when versions were pushed out of order (version 2 first, then version 1).

    ``MIN(...) OVER (PARTITION BY aggregate_id)`` is a window function: it computes both minimums
    of each aggregate on every one of its rows, and the outer query keeps the lowest version's row.
    """
    return f"""
        SELECT timestamp, created, aggregate_id FROM (
            SELECT aggregate_id, version, timestamp,
                   MIN(version) OVER (PARTITION BY aggregate_id) AS lowest_version,
                   MIN(position) OVER (PARTITION BY aggregate_id) AS created
            FROM events WHERE event_store_id = {placeholder}
        ) AS aggregates
        WHERE version = lowest_version
    """
