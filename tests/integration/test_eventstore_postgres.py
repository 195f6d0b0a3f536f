"""The PostgreSQL backend on a real server: the contract, plus the database's own refusals.

Each test gets a fresh schema (selected through the URL's ``search_path``), dropped after.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from daemon import runtime
from eventstore import EventStore, open_store
from eventstore.postgres import temporary_schema
from tests.acceptance.conftest import wait_for
from tests.eventstore_contract import (
    EventStoreContract,
    StoreFactory,
    event,
    second_daemon_is_refused,
)

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


async def test_one_process_at_a_time_holds_a_role(schema_url: str) -> None:
    """A role claimed through one connection is refused to another until that store
    closes; a store in another schema of the same database is another store."""
    assert POSTGRES_URL
    first = await open_store(schema_url)
    async with await open_store(schema_url) as second:
        try:
            assert await first.try_claim("daemon")
            assert not await second.try_claim("daemon")
            assert await second.try_claim("another role")
            async with (
                temporary_schema(POSTGRES_URL, "test") as elsewhere_url,
                await open_store(elsewhere_url) as elsewhere,
            ):
                assert await elsewhere.try_claim("daemon")
        finally:
            await first.close()
        # The server lets go once it has seen the first store's session end.
        await wait_for(
            lambda: second.try_claim("daemon"), seconds=10, what="the first store's claim to end"
        )


async def test_a_second_daemon_on_the_same_database_is_refused(
    schema_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two daemons on one store would each run every handler (a second send, a second
    sink notice for every step): the second one refuses to start, naming why."""
    monkeypatch.setattr(runtime, "CLAIM_WAIT_SECONDS", 0.5)
    await second_daemon_is_refused(schema_url, tmp_path / "documents")
