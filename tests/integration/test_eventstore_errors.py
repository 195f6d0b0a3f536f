"""Driver failures reach callers as the store's own errors, raised from their cause."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from eventstore import PersistenceError, open_store

pytestmark = pytest.mark.anyio


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens here any more


async def test_unreachable_postgres_is_a_persistence_error() -> None:
    """A PostgreSQL URL nobody answers fails with PersistenceError, caused by the OS error."""
    with pytest.raises(PersistenceError, match="cannot reach PostgreSQL") as info:
        await open_store(f"postgresql://nobody@127.0.0.1:{_closed_port()}/none")
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://spotsync:Hunter2-db@127.0.0.1:five432/spotsync",
        "postgresql://spotsync:Hunter2-db@127.0.0.1:99999/spotsync",
        "postgresql://spotsync:Hunter2-db@[::1:5432/spotsync",
    ],
)
async def test_a_malformed_postgres_url_is_a_persistence_error(url: str) -> None:
    """A mistyped port or host is the store's error (one line for a command), not the
    driver's ValueError, and the message does not quote the URL's password."""
    with pytest.raises(PersistenceError, match="not a usable PostgreSQL URL") as info:
        await open_store(url)
    assert "Hunter2-db" not in str(info.value)


async def test_file_that_is_not_a_database_is_a_persistence_error(tmp_path: Path) -> None:
    """Pointing SPOTSYNC_DATABASE at some other file fails with PersistenceError, not sqlite3's."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(PersistenceError, match="SQLite failed") as info:
        await open_store(str(path))
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
