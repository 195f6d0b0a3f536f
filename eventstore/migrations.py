"""Schema files: numbered migrations and named queries, one folder per dialect under ``sql/``.

A migration is ``sql/<dialect>/NNNN_what.sql``; the backends apply the ones a database
has not recorded in its ``schema_version`` table, in order, each in its own transaction.
Named queries live in ``sql/<dialect>/queries.sql``, each introduced by ``-- name: NAME``.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from eventstore.errors import SchemaError

Dialect = Literal["sqlite", "postgres"]

SQL_DIR = Path(__file__).parent / "sql"
_MIGRATION_FILE = re.compile(r"(\d{4})_(\w+)\.sql")
_NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@functools.cache
def migrations(dialect: Dialect) -> tuple[Migration, ...]:
    """Every migration of ``dialect``, in version order, numbered 1, 2, 3... without holes."""
    found = []
    for path in sorted((SQL_DIR / dialect).glob("*.sql")):
        match = _MIGRATION_FILE.fullmatch(path.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise SchemaError(f"the {dialect} migrations are not numbered 1..{len(found)}")
    return tuple(found)


@functools.cache
def queries(dialect: Dialect) -> dict[str, str]:
    """The named queries of ``dialect``: name -> SQL text."""
    text = (SQL_DIR / dialect / "queries.sql").read_text()
    parts = _NAME_LINE.split(text)
    # parts: [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def pending(dialect: Dialect, applied: list[int]) -> list[Migration]:
    """The migrations still to apply to a database that recorded ``applied``.

    Raises ``SchemaError`` when the database is newer than this program.
    """
    known = migrations(dialect)
    newest = max(applied, default=0)
    if newest > len(known):
        raise SchemaError(
            f"the database schema is version {newest}, newer than this program knows "
            f"({len(known)}); upgrade spotsync"
        )
    done = set(applied)
    return [m for m in known if m.version not in done]


def sqlite_statements(script: str) -> list[str]:
    """Split a SQLite script into statements (trigger bodies contain ``;`` too).

    ``executescript`` would commit first, so a migration could not share one transaction
    with the row that records it.
    """
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statement = current.strip()
            if _has_code(statement):
                statements.append(statement)
            current = ""
    if _has_code(current):
        raise SchemaError(f"unterminated SQL statement: {current.strip()[:60]!r}")
    return statements


def _has_code(sql: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in sql.splitlines())
