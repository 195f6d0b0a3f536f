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
import functools
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import orjson

from eventstore.envelope import NewEvent, RecordedEvent, format_timestamp, parse_timestamp
from eventstore.errors import (
    ConcurrencyError,
    EventIdConflictError,
    EventStoreError,
    PersistenceError,
)
from eventstore.outages import Backoff, OnOutage

Document = dict[str, Any]

# An event as ``read_streams`` yields it, lighter than a RecordedEvent: (position, stream,
# version, type, data, metadata, recorded_at as ISO text). data and metadata are decoded,
# or their JSON text (str or bytes) for a reader that asked for ``decoded=False``.
StreamRow = tuple[int, str, int, str, Any, Any, str]


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


# One append of ``append_batch``: (stream, events, expected_version), and what came of it.
Appending = tuple[str, Sequence[NewEvent], int | None]
AppendOutcome = AppendResult | EventStoreError


@dataclass(frozen=True, slots=True)
class DocumentWrite:
    """Upsert ``doc`` at (collection, key); ``doc=None`` deletes it."""

    collection: str
    key: str
    doc: Document | None


# A run of writes of one kind: the query's name and the rows it runs on.
WriteRun = tuple[str, list[tuple[str, ...]]]


def write_runs(writes: Iterable[DocumentWrite], dumps: Callable[[Document], str]) -> list[WriteRun]:
    """``writes`` as runs of upserts (``upsert_document``: collection, key, ``dumps(doc)``)
    and of deletes (``delete_document``: collection, key), in the caller's order, so an
    upsert then a delete of one key deletes it. A run is one executemany: a rebuild
    writes thousands of rows."""
    runs: list[WriteRun] = []
    row: tuple[str, ...]
    for w in writes:
        if w.doc is None:
            query, row = "delete_document", (w.collection, w.key)
        else:
            query, row = "upsert_document", (w.collection, w.key, dumps(w.doc))
        if runs and runs[-1][0] == query:
            runs[-1][1].append(row)
        else:
            runs.append((query, [row]))
    return runs


class EventStore(abc.ABC):
    """An append-only log with a gap-free global order, checkpoints and projection documents."""

    # What ``open_store`` opens this same store with in another process (long folds use
    # worker processes); None when no other process can (the memory store).
    url: str | None = None

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

    async def append_batch(self, appends: Sequence[Appending]) -> list[AppendOutcome]:
        """Each ``(stream, events, expected_version)`` appended as ``append`` would, placed
        in the order given; returns each one's result, or the ``ConcurrencyError`` or
        ``EventIdConflictError`` that refused it alone (the others are stored all the
        same). For loading many appends at once (``spotsync import``): a backend commits
        them together, here through its group commit, the SQLite one as a single job.
        """
        if any(not events for _, events, _ in appends):
            raise ValueError("append needs at least one event")
        outcomes: list[AppendOutcome | None] = [None] * len(appends)

        async def one(i: int, append: Appending) -> None:
            stream, events, expected = append
            try:
                outcomes[i] = await self.append(stream, events, expected_version=expected)
            except (ConcurrencyError, EventIdConflictError) as exc:
                outcomes[i] = exc

        # Started in order, the appends queue for the group commit in order.
        try:
            async with anyio.create_task_group() as tg:
                for i, append in enumerate(appends):
                    tg.start_soon(one, i, append)
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the store's own error, as append raises it
        return [outcome for outcome in outcomes if outcome is not None]

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

    async def read_streams(
        self,
        prefix: str,
        *,
        start: str | None = None,
        stop: str | None = None,
        until_position: int | None = None,
        decoded: bool = True,
        page_size: int = 1000,
        blocking: bool = False,
    ) -> AsyncIterator[list[StreamRow]]:
        """The events of the streams named ``prefix...``, stream after stream, a page at a time.

        Each stream's events come in version order, up to ``until_position``; streams come
        in the store's order of names, from ``start`` (inclusive) to ``stop`` (exclusive),
        bounds that ``split_streams`` gives. For folding whole streams one after the
        other, in flat memory. This default lists the stream names first (memory grows
        with the number of streams); backends read their (stream, version) index instead.

        ``decoded=False``: data and metadata as JSON text, for a fold that decodes each row
        as it comes to it (``orjson.loads`` takes both kinds of text) and only the
        payloads it reads. Decoding a whole page first keeps all its payloads alive at
        once, out of the CPU's caches: that costs a long fold nearly twice its reading.

        ``blocking=True``: read each page on the calling thread, its event loop blocked
        meanwhile, for a process that has nothing else to do (a rebuild's or a replay's
        worker). A backend that reads on a thread of its own (SQLite) then saves the hop
        to it: rows made on one core and folded on another cost that fold a fifth more.
        Backends that read on the event loop's thread anyway ignore it.
        """
        names: set[str] = set()
        async for event in self.read_all(until_position=until_position, page_size=page_size):
            if event.stream.startswith(prefix) and _between(event.stream, start, stop):
                names.add(event.stream)
        page: list[StreamRow] = []
        for name in sorted(names):
            page.extend(stream_rows(await self.read_stream(name), until_position, decoded))
            while len(page) >= page_size:
                yield page[:page_size]
                del page[:page_size]
        if page:
            yield page

    async def split_streams(self, prefix: str, parts: int) -> list[str]:
        """Bounds that cut the streams named ``prefix...`` into ``parts`` ranges of about
        as many events each, for ``read_streams(start=..., stop=...)``: at most
        ``parts - 1`` stream names in the store's order. The default does not split."""
        return []

    @abc.abstractmethod
    async def last_position(self) -> int:
        """The highest position a reader may see (0 for an empty log)."""

    @abc.abstractmethod
    async def stream_version(self, stream: str) -> int:
        """The stream's current version (0 if it has no events)."""

    async def try_claim(self, role: str) -> bool:
        """Hold ``role`` (such as being the one daemon) for this process until the store
        is closed; False when another process holds it. This default claims without
        asking anyone: right for the memory store, which one process alone sees."""
        return True

    async def refresh_statistics(self) -> None:
        """Let the database's query planner see the log and read models as they are now:
        after a bulk load (``import``), before the commands that read it all. This
        default has no planner to tell (SQLite plans well enough without)."""
        return

    async def keep_claims(self, on_outage: OnOutage | None = None) -> None:
        """Run while the claims are needed: keep them held, or raise ``StoreBusyError``
        once one is lost for good (``on_outage``: told while the store is away). This
        default never returns: a claim that nothing but the end of the process lets go
        of (a lock on a file) cannot be lost."""
        await anyio.sleep_forever()

    @abc.abstractmethod
    async def wait_for_append(self, after_position: int) -> None:
        """Return when the log has grown past ``after_position``.

        In-process appends wake waiters at once; appends by another process are
        noticed by the backend's own means (LISTEN/NOTIFY, or a short poll). Callers
        bound the wait with ``anyio.move_on_after``.
        """

    async def subscribe(
        self,
        *,
        from_position: int = 1,
        page_size: int = 1000,
        idle_timeout: float = 1.0,
        on_outage: OnOutage | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up from ``from_position``, then follow new events as they are appended.

        Never ends by itself; cancel the task that iterates it. With ``on_outage``, a
        store that cannot be read (``PersistenceError``) is waited out: ``on_outage`` is
        told, and the subscription goes on from where it was once the store is back
        (``eventstore.outages``). Without, the error ends it.
        """
        next_position = from_position
        backoff = Backoff()
        while True:
            try:
                async for event in self.read_all(
                    from_position=next_position, page_size=page_size
                ):
                    yield event
                    next_position = event.position + 1
                # The bound is a safety net for a missed wake-up, not the way events arrive.
                with anyio.move_on_after(idle_timeout):
                    await self.wait_for_append(next_position - 1)
            except PersistenceError as exc:
                if on_outage is None:
                    raise
                delay = backoff.next()
                on_outage(exc, delay)
                await anyio.sleep(delay)
            else:
                backoff.reset()

    # -- checkpoints and projection documents -------------------------------------------

    @abc.abstractmethod
    async def load_checkpoint(self, name: str) -> int:
        """The last position subscriber ``name`` processed (0 if none)."""

    @abc.abstractmethod
    async def save_checkpoint(self, name: str, position: int) -> None:
        """Record that subscriber ``name`` processed the log up to ``position``."""

    @abc.abstractmethod
    async def commit_projection(
        self,
        name: str,
        position: int,
        writes: Sequence[DocumentWrite],
        *,
        blocking: bool = False,
    ) -> None:
        """Apply ``writes`` and set checkpoint ``name`` to ``position`` in one transaction.

        ``blocking=True``: commit on the calling thread, its event loop blocked meanwhile,
        outside the store's group commits, for a process that writes nothing else (a
        rebuild's worker). A backend that commits on a thread of its own (SQLite) then
        spares the fold the GIL it would share with that thread: a worker folded and
        wrote one range in 20-35% less time. Such a commit need not wait for the disk
        (SQLite's does not): it is durable once a later commit of the store is, as a
        rebuild's batches are with its final checkpoint; a power cut before may lose it
        (a rebuild, its checkpoint still 0, is then done again). Backends that write on
        the event loop's thread anyway ignore it.
        """

    @abc.abstractmethod
    async def get_document(self, collection: str, key: str) -> Document | None:
        """One document, or None."""

    @abc.abstractmethod
    async def get_documents(self, collection: str, keys: Sequence[str]) -> dict[str, Document]:
        """The documents of ``keys`` that exist, by key, in one read."""

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
    async def document_keys(
        self,
        collection: str,
        *,
        start: str = "",
        stop: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """The keys of ``collection`` from ``start`` up to (not including) ``stop``, in
        order, at most ``limit``; ``stop=None``: to the last key."""

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


def _between(name: str, start: str | None, stop: str | None) -> bool:
    return (start is None or name >= start) and (stop is None or name < stop)


def decode_stream_rows(rows: Iterable[Sequence[Any]], decoded: bool) -> list[StreamRow]:
    """Rows read as stored (data and metadata as JSON text) as ``StreamRow``s, their
    payloads decoded or (``decoded=False``) left as text."""
    if not decoded:
        return [(p, s, v, t, d, m, at) for p, s, v, t, d, m, at in rows]
    loads = orjson.loads
    return [(p, s, v, t, loads(d), loads(m), at) for p, s, v, t, d, m, at in rows]


def decode_row(row: Sequence[Any]) -> RecordedEvent:
    """An event from its row as stored (position, stream, version, type, data, metadata,
    recorded_at): a SQLite row, or a ``StreamRow`` read with ``decoded=False``."""
    loads = orjson.loads
    return RecordedEvent(
        row[0], row[1], row[2], row[3], loads(row[4]), loads(row[5]), _timestamp(row[6])
    )


@functools.lru_cache(maxsize=4096)
def _timestamp(text: str) -> datetime:
    # A group commit stamps all its events alike, so reads parse few distinct times.
    return parse_timestamp(text)


def stream_rows(
    events: Sequence[RecordedEvent], until_position: int | None, decoded: bool
) -> list[StreamRow]:
    """A stream's events (in version order) up to ``until_position``, as ``StreamRow``s."""
    rows: list[StreamRow] = []
    for e in events:
        if until_position is not None and e.position > until_position:
            break
        data, metadata = e.data, e.metadata
        rows.append(
            (
                e.position,
                e.stream,
                e.version,
                e.type,
                data if decoded else orjson.dumps(data),
                metadata if decoded else orjson.dumps(metadata),
                format_timestamp(e.recorded_at),
            )
        )
    return rows


def split_points(names: Sequence[str], parts: int) -> list[str]:
    """Bounds cutting ``names`` (one per event, sorted) into ``parts`` runs of about equal
    length, never inside one name's run: for ``split_streams``."""
    bounds: list[str] = []
    for k in range(1, parts):
        name = names[len(names) * k // parts] if names else None
        # In the store's order, which Python's need not be: equal names are neighbours.
        if name is not None and name != names[0] and (not bounds or name != bounds[-1]):
            bounds.append(name)
    return bounds


def sample_positions(last: int, parts: int, per_part: int = 64) -> list[int]:
    """Evenly spaced positions of a log ending at ``last``: the events whose streams
    ``split_streams`` sorts to find its bounds (a stream is met as often as it is long)."""
    count = min(last, parts * per_part)
    return [1 + (last - 1) * i // max(count - 1, 1) for i in range(count)]
