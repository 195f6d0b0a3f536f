"""The store's exceptions. Driver errors are translated into these once, at the backend boundary.

    EventStoreError
    ├── ConcurrencyError        the stream is not at the version the append expected
    ├── EventIdConflictError    a batch mixes stored and new event ids
    ├── AppendOnlyError         something tried to change or remove a stored event
    ├── SchemaError             the database schema is newer than this program, or damaged
    ├── StoreBusyError          another process holds what this one asked to hold alone
    └── PersistenceError        the database failed or could not be reached
"""

from __future__ import annotations


class EventStoreError(Exception):
    """The event store failed."""


class ConcurrencyError(EventStoreError):
    """Stream {stream!r} is at version {actual}, but the append expected {expected}.

    Another writer appended first: read the stream again, decide again, and retry.
    """

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        self.stream, self.expected, self.actual = stream, expected, actual
        super().__init__(
            f"stream {stream!r} is at version {actual}, but the append expected {expected}; "
            "read the stream again and retry"
        )

    def __reduce__(self) -> tuple[type[ConcurrencyError], tuple[str, int, int]]:
        return (type(self), (self.stream, self.expected, self.actual))  # as it was made


class EventIdConflictError(EventStoreError):
    """An append mixed event ids that are already stored with new ones; retry the exact batch."""


class AppendOnlyError(EventStoreError):
    """Stored events are never updated or deleted; the database refused it."""


class SchemaError(EventStoreError):
    """The database schema is not one this program knows; upgrade spotsync or use another file."""


class StoreBusyError(EventStoreError):
    """Another process holds the store for a role only one may have (``spotsync run``)."""


class PersistenceError(EventStoreError):
    """The database failed or could not be reached; check SPOTSYNC_DATABASE and the server."""
