"""Shared pytest settings: async tests run on asyncio, through anyio's pytest plugin.

A test module with ``async def`` tests says so with ``pytestmark = pytest.mark.anyio``; each such
test then runs in a fresh event loop, which is closed (and whatever is still running cancelled)
when the test ends, as ``asyncio.run`` would.

Tests that need PostgreSQL take ``postgres_conninfo``: a schema of their own on one server per run.
Tests that need NATS take ``nats_server_url``: one JetStream server per run (each test names its
channels afresh, so that no test meets another's streams).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


_schema_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """One PostgreSQL server for the whole run: ``CASTORE_EDU_POSTGRES_URL`` if set, else a
    private server started here and stopped when the run ends (even a failed one)."""
    from castore_edu.testing.servers import postgres_url

    with postgres_url() as url:
        yield url


@pytest.fixture(scope="session")
def nats_server_url() -> Iterator[str]:
    """One NATS server with JetStream for the whole run: ``CASTORE_EDU_NATS_URL`` if set, else a
    private server started here and stopped when the run ends (even a failed one)."""
    from castore_edu.testing.servers import nats_url

    with nats_url() as url:
        yield url


@pytest.fixture
def postgres_conninfo(postgres_server_url: str) -> Iterator[str]:
    """A connection string to a schema of this test's own, dropped after it: every test starts
    from an empty database, and no test sees another's tables (or a user's)."""
    import psycopg
    import psycopg.conninfo

    schema = f"castore_edu_test_{os.getpid()}_{next(_schema_numbers)}"
    with psycopg.connect(postgres_server_url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    yield psycopg.conninfo.make_conninfo(postgres_server_url, options=f"-c search_path={schema}")
    with psycopg.connect(postgres_server_url, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")
