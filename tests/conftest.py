"""Shared pytest settings: async tests run on asyncio, through anyio's pytest plugin.

A test module with ``async def`` tests says so with ``pytestmark = pytest.mark.anyio``; each such
test then runs in a fresh event loop, which is closed (and whatever is still running cancelled)
when the test ends, as ``asyncio.run`` would.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
