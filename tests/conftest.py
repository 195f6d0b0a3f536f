"""Shared fixtures. Async tests run through anyio's own pytest plugin, on asyncio."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture
def anyio_backend() -> str:
    # asyncpg and aiosqlite are asyncio libraries, so trio is not offered.
    return "asyncio"


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Commands called in-process (``main([...])``) configure logging for the whole
    process; each test starts from the configuration the one before it found."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)
