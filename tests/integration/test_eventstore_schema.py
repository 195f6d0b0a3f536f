"""Migrating from scratch gives the checked-in schema, and an old database is upgraded.

The expected schemas live in ``eventstore_schema/``. After adding a migration, write
them again with ``python -m tests.integration.test_eventstore_schema`` and review the diff.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import asyncpg
import pytest

from eventstore import SchemaError, open_store
from eventstore.migrations import migrations, queries, sqlite_statements
from eventstore.postgres import temporary_schema
from tests.eventstore_contract import event

EXPECTED = Path(__file__).parent / "eventstore_schema"
POSTGRES_URL = os.environ.get("SPOTSYNC_TEST_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="SPOTSYNC_TEST_POSTGRES_URL is not set (PostgreSQL tests skipped)"
)

pytestmark = pytest.mark.anyio


def dump_sqlite(path: Path) -> str:
    """Every table, index and trigger of a SQLite file, in a stable order."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"
        ).fetchall()
    finally:
        db.close()
    return "".join(f"-- {kind} {name}\n{sql};\n\n" for kind, name, sql in rows)


async def dump_postgres(conn: asyncpg.Connection) -> str:
    """Columns, constraints, indexes, triggers and functions of the current schema."""
    lines = []
    for row in await conn.fetch(
        """SELECT table_name, column_name, data_type, is_nullable, column_default,
                  collation_name
           FROM information_schema.columns WHERE table_schema = current_schema()
           ORDER BY table_name, ordinal_position"""
    ):
        lines.append("column " + " | ".join(str(v) for v in row.values()))
    for row in await conn.fetch(
        """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
           FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
           ORDER BY 1, 2"""
    ):
        lines.append("constraint " + " | ".join(row.values()))
    for row in await conn.fetch(
        """SELECT tablename, indexname, replace(indexdef, current_schema() || '.', '')
           FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1, 2"""
    ):
        lines.append("index " + " | ".join(row.values()))
    for row in await conn.fetch(
        """SELECT tgname, replace(pg_get_triggerdef(t.oid), current_schema() || '.', '')
           FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
           ORDER BY 1"""
    ):
        lines.append("trigger " + " | ".join(row.values()))
    for row in await conn.fetch(
        """SELECT proname, md5(prosrc) FROM pg_proc
           WHERE pronamespace = current_schema()::regnamespace ORDER BY 1"""
    ):
        lines.append("function " + " | ".join(row.values()))
    return "\n".join(lines) + "\n"


# -- SQLite --------------------------------------------------------------------------------


async def test_sqlite_schema_from_scratch_equals_the_expected_schema(tmp_path: Path) -> None:
    """A new SQLite file ends up with exactly the checked-in schema."""
    path = tmp_path / "events.db"
    await (await open_store(str(path))).close()
    assert dump_sqlite(path) == (EXPECTED / "sqlite.sql").read_text()


async def test_old_sqlite_file_is_migrated_on_open(tmp_path: Path) -> None:
    """A file at schema version 1 with events opens as the current schema, events kept."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(queries("sqlite")["create_schema_version"])
    for statement in sqlite_statements(migrations("sqlite")[0].sql):
        db.execute(statement)
    db.execute("INSERT INTO schema_version VALUES (1, 'events', '2026-01-01T00:00:00.000000Z')")
    db.execute(
        "INSERT INTO events VALUES (1, 's', 1, 'Old', '{\"n\": 1}', ?, 'old-id', ?)",
        ('{"event_id": "old-id", "source": "api"}', "2026-01-01T00:00:00.000000Z"),
    )
    db.close()

    async with await open_store(str(path)) as store:
        (old,) = await store.read_stream("s")
        assert (old.type, old.data, old.event_id) == ("Old", {"n": 1}, "old-id")
        await store.save_checkpoint("p", 1)  # a table the old file lacked
        assert (await store.append("s", [event(2)], expected_version=1)).position == 2
    assert dump_sqlite(path) == (EXPECTED / "sqlite.sql").read_text()
    db = sqlite3.connect(path)
    versions = [r[0] for r in db.execute("SELECT version FROM schema_version ORDER BY 1")]
    db.close()
    assert versions == [m.version for m in migrations("sqlite")]


async def test_sqlite_file_from_a_newer_spotsync_is_refused(tmp_path: Path) -> None:
    """A file whose schema is newer than this program raises SchemaError on open."""
    path = tmp_path / "new.db"
    await (await open_store(str(path))).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("INSERT INTO schema_version VALUES (99, 'future', '2030-01-01T00:00:00.000000Z')")
    db.close()
    with pytest.raises(SchemaError, match="newer"):
        await open_store(str(path))


# -- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture
async def schema_url() -> AsyncIterator[str]:
    assert POSTGRES_URL
    async with temporary_schema(POSTGRES_URL, "test") as url:
        yield url


@pytest.mark.postgres
@needs_postgres
async def test_postgres_schema_from_scratch_equals_the_expected_schema(schema_url: str) -> None:
    """A new PostgreSQL schema ends up with exactly the checked-in schema."""
    await (await open_store(schema_url)).close()
    conn = await asyncpg.connect(schema_url)
    try:
        assert await dump_postgres(conn) == (EXPECTED / "postgres.txt").read_text()
    finally:
        await conn.close()


@pytest.mark.postgres
@needs_postgres
async def test_old_postgres_schema_is_migrated_on_open(schema_url: str) -> None:
    """A schema at version 1 with events opens as the current schema, events kept."""
    conn = await asyncpg.connect(schema_url)
    try:
        await conn.execute(queries("postgres")["create_schema_version"])
        await conn.execute(migrations("postgres")[0].sql)
        await conn.execute("INSERT INTO schema_version (version, name) VALUES (1, 'events')")
        await conn.execute(
            "INSERT INTO events VALUES (1, 's', 1, 'Old', '{\"n\": 1}', $1, 'old-id', now())",
            '{"event_id": "old-id", "source": "api"}',
        )
        await conn.execute("UPDATE event_positions SET last_position = 1")
        async with await open_store(schema_url) as store:
            (old,) = await store.read_stream("s")
            assert (old.type, old.data) == ("Old", {"n": 1})
            await store.save_checkpoint("p", 1)
            assert (await store.append("s", [event(2)], expected_version=1)).position == 2
        assert await dump_postgres(conn) == (EXPECTED / "postgres.txt").read_text()
    finally:
        await conn.close()


async def _write_expected() -> None:
    """Regenerate the expected schema files from the migrations (review the diff!)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.db"
        await (await open_store(str(path))).close()
        (EXPECTED / "sqlite.sql").write_text(dump_sqlite(path))
    if POSTGRES_URL:
        async with temporary_schema(POSTGRES_URL, "expected") as url:
            await (await open_store(url)).close()
            conn = await asyncpg.connect(url)
            (EXPECTED / "postgres.txt").write_text(await dump_postgres(conn))
            await conn.close()


if __name__ == "__main__":
    anyio.run(_write_expected)
    sys.exit(0)
