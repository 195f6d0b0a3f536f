"""The append-only event log: envelope, store interface, backends, subscriptions."""

from __future__ import annotations

from eventstore.base import AppendResult, Document, DocumentWrite, EventStore, StreamRow
from eventstore.envelope import NewEvent, RecordedEvent
from eventstore.errors import (
    AppendOnlyError,
    ConcurrencyError,
    EventIdConflictError,
    EventStoreError,
    PersistenceError,
    SchemaError,
    StoreBusyError,
)
from eventstore.memory import MemoryEventStore

__all__ = [
    "AppendOnlyError",
    "AppendResult",
    "ConcurrencyError",
    "Document",
    "DocumentWrite",
    "EventIdConflictError",
    "EventStore",
    "EventStoreError",
    "MemoryEventStore",
    "NewEvent",
    "PersistenceError",
    "RecordedEvent",
    "SchemaError",
    "StoreBusyError",
    "StreamRow",
    "open_store",
]


async def open_store(url: str, *, writer_process: bool = False) -> EventStore:
    """Open the backend that ``url`` names: ``memory:``, a ``postgresql://`` URL, or a file path.

    The caller closes it (``async with await open_store(url) as store``).
    ``writer_process``: for SQLite, commits run in a process of their own (for a daemon
    that serves while it writes: ``SQLiteEventStore.open``); other backends ignore it.
    """
    if url == "memory:":
        return MemoryEventStore()
    if url.startswith(("postgresql://", "postgres://")):
        from eventstore.postgres import PostgresEventStore

        return await PostgresEventStore.open(url)
    from eventstore.sqlite import SQLiteEventStore

    return await SQLiteEventStore.open(url, writer_process=writer_process)
