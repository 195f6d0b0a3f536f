"""Shared fixtures. Async tests run through anyio's own pytest plugin, on asyncio."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # asyncpg and aiosqlite are asyncio libraries, so trio is not offered.
    return "asyncio"
