"""The schema files: numbered migrations and named queries load as the backends expect."""

from __future__ import annotations

import sqlite3

import pytest

from eventstore.errors import SchemaError
from eventstore.migrations import Dialect, migrations, pending, queries, sqlite_statements

DIALECTS: list[Dialect] = ["sqlite", "postgres"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_migrations_are_numbered_without_holes(dialect: Dialect) -> None:
    """Migrations load in order 1..N, each with its name from the file."""
    found = migrations(dialect)
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "events"


def test_both_databases_have_the_same_migrations() -> None:
    """SQLite and PostgreSQL evolve in step: the same numbers and names."""
    sqlite = [(m.version, m.name) for m in migrations("sqlite")]
    assert sqlite == [(m.version, m.name) for m in migrations("postgres")]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_named_queries_are_complete(dialect: Dialect) -> None:
    """Every query a backend uses is present and non-empty in its queries.sql."""
    named = queries(dialect)
    needed = {"read_all", "read_stream", "last_position", "stream_version", "save_checkpoint",
              "load_checkpoint", "upsert_document", "query_documents", "record_version"}
    assert needed <= set(named)
    assert all(sql.strip() for sql in named.values())


def test_sqlite_script_splits_around_trigger_bodies() -> None:
    """A trigger's inner semicolons do not split it; every statement runs on its own."""
    statements = sqlite_statements(migrations("sqlite")[0].sql)
    code = [" ".join(ln for ln in s.splitlines() if not ln.startswith("--")) for s in statements]
    assert [c.split()[0:2] for c in code] == [
        ["CREATE", "TABLE"], ["CREATE", "TRIGGER"], ["CREATE", "TRIGGER"],
    ]
    db = sqlite3.connect(":memory:")
    for statement in statements:
        db.execute(statement)
    db.close()


def test_unfinished_statement_is_a_schema_error() -> None:
    """A script ending mid-statement is refused instead of silently dropped."""
    with pytest.raises(SchemaError, match="unterminated"):
        sqlite_statements("CREATE TABLE t (x INTEGER);\nCREATE TABLE u (")


def test_pending_lists_only_unapplied_migrations() -> None:
    """A database at version 1 gets the later migrations; an up-to-date one gets none."""
    latest = len(migrations("sqlite"))
    assert [m.version for m in pending("sqlite", [1])] == list(range(2, latest + 1))
    assert pending("sqlite", list(range(1, latest + 1))) == []


def test_newer_database_is_refused() -> None:
    """A database migrated by a newer spotsync is refused with advice to upgrade."""
    with pytest.raises(SchemaError, match="upgrade spotsync"):
        pending("postgres", [1, 2, 99])
