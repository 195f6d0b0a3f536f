"""The PostgreSQL backend on a real server: the contract, plus the database's own refusals.

Each test gets a fresh schema (selected through the URL's ``search_path``), dropped after.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from eventstore import EventStore, open_store
from eventstore.postgres import temporary_schema
from tests.eventstore_contract import EventStoreContract, StoreFactory, event

POSTGRES_URL = os.environ.get("SPOTSYNC_TEST_POSTGRES_URL")

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.postgres,
    pytest.mark.skipif(
        not POSTGRES_URL, reason="SPOTSYNC_TEST_POSTGRES_URL is not set (PostgreSQL tests skipped)"
    ),
]


@pytest.fixture
async def schema_url() -> AsyncIterator[str]:
    """A URL whose connections live in a new, empty schema."""
    assert POSTGRES_URL
    async with temporary_schema(POSTGRES_URL, "test") as url:
        yield url


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def open_store(self, schema_url: str) -> StoreFactory:
        async def open_() -> EventStore:
            return await open_store(schema_url)

        return open_


async def test_database_refuses_update_delete_and_truncate(schema_url: str) -> None:
    """UPDATE, DELETE and TRUNCATE on events fail even through a plain asyncpg connection."""
    async with await open_store(schema_url) as store:
        await store.append("s", [event(1)], expected_version=0)
    conn = await asyncpg.connect(schema_url)
    try:
        for statement in (
            "UPDATE events SET type = 'Changed'",
            "DELETE FROM events",
            "TRUNCATE events",
        ):
            with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM events") == 1
    finally:
        await conn.close()
