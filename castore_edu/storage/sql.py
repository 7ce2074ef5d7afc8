"""The SQL that both database adapters (SQLite, PostgreSQL) share: the columns of an event and
the query that reads one aggregate's events.

Only the placeholder differs between the two drivers: ``?`` for sqlite3, ``%s`` for psycopg.
"""

from __future__ import annotations

COLUMNS = "aggregate_id, version, type, timestamp, payload, metadata"


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
