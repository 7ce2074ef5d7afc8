"""Shared pytest settings: async tests run on asyncio, through anyio's pytest plugin.

A test module with ``async def`` tests says so with ``pytestmark = pytest.mark.anyio``; each such
test then runs in a fresh event loop, which is closed (and whatever is still running cancelled)
when the test ends, as ``asyncio.run`` would.

Tests that need PostgreSQL take ``postgres_conninfo``: a schema of their own on one server per run.
Tests that need NATS take ``nats_server_url``: one JetStream server per run (each test names its
channels afresh, so that no test meets another's streams).

Property-based tests (hypothesis) run under one of two settings profiles, chosen by the
environment variable ``HYPOTHESIS_PROFILE``:

- ``bounded`` (the default, what ``make test`` and CI run): few examples, derandomized, so that
  every run tries the same examples and a red CI is red again on your machine; no example
  database (nothing written to ``.hypothesis/``);
- ``nightly``: many more examples and steps, a new random seed each run; a failure prints a
  ``@reproduce_failure`` blob that replays it.

Both have no deadline: a step that waits on a loaded machine's disk or database is not a bug.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "bounded",
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly",
    max_examples=500,
    stateful_step_count=50,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "bounded"))


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
