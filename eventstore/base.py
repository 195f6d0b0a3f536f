"""The one interface every backend implements (memory, SQLite, PostgreSQL).

Besides the append-only log, a store keeps two small mutable things that must commit
together with what they describe:

- checkpoints: how far a named subscriber has processed the log;
- documents: the rows of read models, as JSON objects keyed by (collection, key).
  ``commit_projection`` writes a projection's documents and its checkpoint in one
  transaction, so after a crash it neither skips nor double-applies an event.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from eventstore.envelope import NewEvent, RecordedEvent

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append stored; ``duplicate`` when every event id was already there."""

    events: tuple[RecordedEvent, ...]
    duplicate: bool = False

    @property
    def position(self) -> int:
        """The global position of the last event of the batch."""
        return self.events[-1].position

    @property
    def version(self) -> int:
        """The stream's version after the last event of the batch."""
        return self.events[-1].version


@dataclass(frozen=True, slots=True)
class DocumentWrite:
    """Upsert ``doc`` at (collection, key); ``doc=None`` deletes it."""

    collection: str
    key: str
    doc: Document | None


class EventStore(abc.ABC):
    """An append-only log with a gap-free global order, checkpoints and projection documents."""

    # -- the log -----------------------------------------------------------------------

    @abc.abstractmethod
    async def append(
        self, stream: str, events: Sequence[NewEvent], *, expected_version: int | None
    ) -> AppendResult:
        """Append ``events`` to ``stream`` atomically.

        ``expected_version`` is the stream's current version as the caller knows it
        (0: the stream must not exist yet), or ``None`` to append whatever it is.
        A mismatch raises ``ConcurrencyError``. When every event id of the batch is
        already stored, nothing is written and the stored events come back with
        ``duplicate=True``; a batch mixing stored and new ids raises
        ``EventIdConflictError``. Returns only once the events are durable.
        """

    @abc.abstractmethod
    async def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]:
        """The stream's events from ``from_version`` (inclusive), in order."""

    @abc.abstractmethod
    def read_all(
        self,
        *,
        from_position: int = 1,
        until_position: int | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        """The whole log from ``from_position`` to ``until_position`` (both inclusive).

        Streamed page by page: never the whole log in memory. Only positions with no
        uncommitted position before them are returned.
        """

    @abc.abstractmethod
    async def last_position(self) -> int:
        """The highest position a reader may see (0 for an empty log)."""

    @abc.abstractmethod
    async def stream_version(self, stream: str) -> int:
        """The stream's current version (0 if it has no events)."""

    @abc.abstractmethod
    async def wait_for_append(self, after_position: int) -> None:
        """Return when the log has grown past ``after_position``.

        In-process appends wake waiters at once; appends by another process are
        noticed by the backend's own means (LISTEN/NOTIFY, or a short poll). Callers
        bound the wait with ``anyio.move_on_after``.
        """

    async def subscribe(
        self, *, from_position: int = 1, page_size: int = 1000, idle_timeout: float = 1.0
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up from ``from_position``, then follow new events as they are appended.

        Never ends by itself; cancel the task that iterates it.
        """
        next_position = from_position
        while True:
            async for event in self.read_all(from_position=next_position, page_size=page_size):
                yield event
                next_position = event.position + 1
            # The bound is a safety net for a missed wake-up, not the way events arrive.
            with anyio.move_on_after(idle_timeout):
                await self.wait_for_append(next_position - 1)

    # -- checkpoints and projection documents -------------------------------------------

    @abc.abstractmethod
    async def load_checkpoint(self, name: str) -> int:
        """The last position subscriber ``name`` processed (0 if none)."""

    @abc.abstractmethod
    async def save_checkpoint(self, name: str, position: int) -> None:
        """Record that subscriber ``name`` processed the log up to ``position``."""

    @abc.abstractmethod
    async def commit_projection(
        self, name: str, position: int, writes: Sequence[DocumentWrite]
    ) -> None:
        """Apply ``writes`` and set checkpoint ``name`` to ``position`` in one transaction."""

    @abc.abstractmethod
    async def get_document(self, collection: str, key: str) -> Document | None:
        """One document, or None."""

    @abc.abstractmethod
    async def query_documents(
        self,
        collection: str,
        *,
        equals: Mapping[str, str] | None = None,
        at_least: Mapping[str, str] | None = None,
        after_key: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Document]]:
        """Documents ordered by key, filtered on top-level text fields.

        ``equals``: field == value; ``at_least``: field >= value (text order, which is
        time order for our timestamps); ``after_key``: keyset pagination.
        """

    @abc.abstractmethod
    async def drop_projection(self, name: str, collections: Sequence[str]) -> None:
        """Delete every document of ``collections`` and checkpoint ``name``, in one transaction."""

    # -- lifecycle ---------------------------------------------------------------------

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; appends already returned are durable."""

    async def __aenter__(self) -> EventStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
