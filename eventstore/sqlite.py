"""The SQLite backend: one file in WAL mode, one writer with group commit, one reader.

Durability is ``synchronous=FULL``: an append returns only after its transaction is
fsynced. What makes that fast is group commit: appends (and projection commits) that
arrive while a commit is running wait in a queue, and the next commit takes them all
in one transaction. The whole transaction is one request to the store's writer process,
so a commit costs one round trip, not one per statement.

Group commit itself (leader, batches, pipelining) is ``eventstore.groupcommit``; the
writer process is ``eventstore.sqlite_writer``, and the transaction it runs
``eventstore.sqlite_commit``.
"""

from __future__ import annotations

import fcntl
import functools
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio
import orjson

from eventstore.base import (
    Appending,
    AppendOutcome,
    AppendResult,
    Document,
    DocumentWrite,
    EventStore,
    StreamRow,
    decode_row,
    decode_stream_rows,
    sample_positions,
    split_points,
    write_runs,
)
from eventstore.envelope import NewEvent, RecordedEvent, format_timestamp, utcnow
from eventstore.errors import EventStoreError, PersistenceError
from eventstore.groupcommit import Append, AppendBatch, GroupCommit, Job, Planned
from eventstore.migrations import pending, sqlite_statements
from eventstore.sqlite_commit import (
    Head,
    Q,
    Statements,
    Steps,
    commit,
    decode_rows,
    max_position,
    prepare_writer,
    transaction,
    translate,
)
from eventstore.sqlite_writer import WriterProcess

T = TypeVar("T")
_NO_LIMIT = 2**63 - 1
_POLL_INTERVAL = 0.2  # how soon appends by another process are noticed
# Batches in flight. Two (one committing, one queued behind it in the writer's pipe)
# overlap the event loop's work with the writer's, which runs without the GIL for most
# of a commit; but a commit has a fixed cost, so a second batch starts only when many
# writes wait for it. Fewer (the webhook route at 32 connections, say) wait for the
# running commit and join one bigger batch, which measured cheaper per append.
_PIPELINE = 2
_OVERLAP_FROM = 32


class SQLiteEventStore(EventStore):
    """The event store in one SQLite file (``SPOTSYNC_DATABASE=./spotsync.db``)."""

    def __init__(
        self,
        path: Path,
        reader: aiosqlite.Connection,
        last: int,
        writer: WriterProcess | _WriterThread,
    ) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._group = GroupCommit(self._commit, pipeline=_PIPELINE, overlap_from=_OVERLAP_FROM)
        self._last_position = last
        self._appended = anyio.Event()
        self._closed = False
        self._claims: dict[str, int] = {}  # role -> descriptor of its locked file
        # A reader and a writer on the event loop's own thread, for ``read_streams`` and
        # ``commit_projection`` with ``blocking=True``.
        self._blocking: sqlite3.Connection | None = None
        self._blocking_commits: sqlite3.Connection | None = None

    @property
    def writer_pid(self) -> int | None:
        """The process id of the store's writer, while one runs (see ``sqlite_writer``)."""
        return self._writer.pid

    @classmethod
    async def open(cls, url: str, *, writer_process: bool = False) -> SQLiteEventStore:
        """Open (creating it owner-only, and migrating it) the database file ``url``.

        Commits run on a thread of this process, or with ``writer_process`` in a writer
        process of the store's own (``eventstore.sqlite_writer``), started by the first
        write. The process keeps commits off the GIL of an event loop that has more to do
        (``spotsync run`` serving webhooks: 0.74 of a no-op route on a thread, 0.81 to
        0.88 in a process). A command that only reads or writes has nothing to gain from
        it, and would pay its start.
        """
        path = Path(url.removeprefix("sqlite://"))
        reader = None
        writer: WriterProcess | _WriterThread | None = None
        try:
            with _translated():
                absolute = await anyio.to_thread.run_sync(_create_private_file, path)
                if writer_process:
                    # It starts with the first write: a store that only reads starts none.
                    await anyio.to_thread.run_sync(_set_up, path)
                    writer = WriterProcess(path)
                else:
                    writer = await _WriterThread.open(path)
                reader = await aiosqlite.connect(path, isolation_level=None)
                await _run(reader, _setup_reader)
                last = await _run(reader, max_position)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if reader is not None:
                    await reader.close()
                if writer is not None:
                    await writer.close()
            raise
        store = cls(path, reader, last, writer)
        store.url = absolute
        return store

    # -- the log -----------------------------------------------------------------------

    async def append(
        self, stream: str, events: Sequence[NewEvent], *, expected_version: int | None
    ) -> AppendResult:
        if not events:
            raise ValueError("append needs at least one event")
        append = Append.of(stream, events, expected_version)
        # Job[Planned](...) would cost typing's generic-alias call on every append.
        job: Job[Planned] = Job(append)
        return append.result(await self._write(job))

    async def append_batch(self, appends: Sequence[Appending]) -> list[AppendOutcome]:
        if any(not events for _, events, _ in appends):
            raise ValueError("append needs at least one event")
        jobs: list[Job[Planned]] = [Job(Append.of(*append)) for append in appends]
        batch: Job[None] = Job(AppendBatch(jobs))
        await self._write(batch)
        outcomes: list[AppendOutcome] = []
        for job in jobs:
            if isinstance(job.error, EventStoreError):
                outcomes.append(job.error)
            else:
                outcomes.append(job.payload.result(job.outcome()))
        return outcomes

    async def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]:
        def read(db: sqlite3.Connection) -> list[RecordedEvent]:
            return decode_rows(db.execute(Q["read_stream"], (stream, from_version)).fetchall())

        return await self._read(read)

    async def read_all(
        self,
        *,
        from_position: int = 1,
        until_position: int | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        position = max(from_position, 1)
        until = _NO_LIMIT if until_position is None else until_position

        def read_page(db: sqlite3.Connection) -> list[Any]:
            return db.execute(Q["read_all"], (position, until, page_size)).fetchall()

        while position <= until:
            rows = await self._read(read_page)
            # Each row decoded as it is taken: a page decoded at once holds every payload
            # of the page alive together, out of the CPU's caches (read_all took 1.8 times
            # as long).
            for row in rows:
                yield decode_row(row)
            if len(rows) < page_size:
                return
            position = rows[-1][0] + 1

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
        # Names sort by code point (SQLite's BINARY, Python's str order), so the names from
        # ``prefix`` up to its successor are exactly those that start with it: the range,
        # clamped to them, needs no test of each name (5-10 % of a page's read).
        after = (prefix if start is None else max(start, prefix), 0)
        end = _successor(prefix) if stop is None else min(stop, _successor(prefix))
        until = _NO_LIMIT if until_position is None else until_position

        def read_page(db: sqlite3.Connection) -> list[StreamRow]:
            stream, version = after
            params = {"stream": stream, "version": version, "stop": end, "until": until,
                      "page": page_size}
            rows = db.execute(Q["read_streams"], params)
            if not decoded:
                return rows.fetchall()  # sqlite3's rows are StreamRows already
            return decode_stream_rows(rows.fetchall(), decoded)

        while True:
            if blocking:
                self._check_open()
                with _translated():
                    page = read_page(self._blocking_reader())
            else:
                page = await self._read(read_page)
            if page:
                yield page
            if len(page) < page_size:
                return
            after = (page[-1][1], page[-1][2])

    async def split_streams(self, prefix: str, parts: int) -> list[str]:
        positions = orjson.dumps(sample_positions(await self.last_position(), parts)).decode()

        def read(db: sqlite3.Connection) -> list[str]:
            params = {"positions": positions, "prefix": prefix}
            return [row[0] for row in db.execute(Q["sample_streams"], params)]

        return split_points(await self._read(read), parts)

    async def last_position(self) -> int:
        return await self._read(max_position)

    async def stream_version(self, stream: str) -> int:
        def read(db: sqlite3.Connection) -> int:
            return int(db.execute(Q["stream_version"], (stream,)).fetchone()[0])

        return await self._read(read)

    async def wait_for_append(self, after_position: int) -> None:
        while True:
            appended = self._appended  # taken first, so no append can slip between checks
            if self._last_position > after_position:
                return
            # Another process may append to the same file: poll for it now and then.
            if await self.last_position() > after_position:
                return
            with anyio.move_on_after(_POLL_INTERVAL):
                await appended.wait()

    # -- checkpoints and projection documents -------------------------------------------

    async def load_checkpoint(self, name: str) -> int:
        def read(db: sqlite3.Connection) -> int:
            row = db.execute(Q["load_checkpoint"], (name,)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._read(read)

    async def save_checkpoint(self, name: str, position: int) -> None:
        await self._write(Job[None](Statements([("save_checkpoint", [(name, position)])])))

    async def commit_projection(
        self,
        name: str,
        position: int,
        writes: Sequence[DocumentWrite],
        *,
        blocking: bool = False,
    ) -> None:
        steps: Steps = [*write_runs(writes, _dumps)]
        steps.append(("save_checkpoint", [(name, position)]))
        if blocking:
            self._check_open()
            db = self._blocking_writer()
            with _translated(), transaction(db):
                Statements(steps).run(db)
            return
        await self._write(Job[None](Statements(steps)))

    async def get_document(self, collection: str, key: str) -> Document | None:
        def read(db: sqlite3.Connection) -> Document | None:
            row = db.execute(Q["get_document"], (collection, key)).fetchone()
            return None if row is None else _as_document(row[0])

        return await self._read(read)

    async def query_documents(
        self,
        collection: str,
        *,
        equals: Mapping[str, str] | None = None,
        at_least: Mapping[str, str] | None = None,
        after_key: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Document]]:
        params = {
            "collection": collection,
            "after": after_key,
            "equals": orjson.dumps(dict(equals or {})).decode(),
            "at_least": orjson.dumps(dict(at_least or {})).decode(),
            "most": -1 if limit is None else limit,
        }

        def read(db: sqlite3.Connection) -> list[tuple[str, Document]]:
            rows = db.execute(Q["query_documents"], params).fetchall()
            return [(str(key), _as_document(doc)) for key, doc in rows]

        return await self._read(read)

    async def get_documents(self, collection: str, keys: Sequence[str]) -> dict[str, Document]:
        params = {"collection": collection, "keys": orjson.dumps(list(keys)).decode()}

        def read(db: sqlite3.Connection) -> dict[str, Document]:
            rows = db.execute(Q["get_documents"], params)
            return {str(key): _as_document(doc) for key, doc in rows}

        return await self._read(read)

    async def document_keys(
        self,
        collection: str,
        *,
        start: str = "",
        stop: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        query = Q["document_keys_to_end" if stop is None else "document_keys"]
        params = {
            "collection": collection,
            "start": start,
            "stop": stop,
            "most": -1 if limit is None else limit,
        }

        def read(db: sqlite3.Connection) -> list[str]:
            return [row[0] for row in db.execute(query, params)]

        return await self._read(read)

    async def drop_projection(self, name: str, collections: Sequence[str]) -> None:
        steps: Steps = [
            ("delete_collection", [(c,) for c in collections]),
            ("delete_checkpoint", [(name,)]),
        ]
        await self._write(Job[None](Statements(steps)))

    # -- lifecycle ---------------------------------------------------------------------

    async def try_claim(self, role: str) -> bool:
        # An flock on a file of its own beside the database (``spotsync.db-daemon.lock``):
        # SQLite's own locks on the database file are POSIX locks, which any close of a
        # descriptor of that file would drop. The kernel lets go when the process ends.
        self._check_open()
        if role in self._claims:
            return True
        if not role.isidentifier():
            raise ValueError(f"a role is a plain name, not {role!r}")
        path = self.path.with_name(f"{self.path.name}-{role}.lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise PersistenceError(
                f"cannot create the lock file beside the database: {exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._claims[role] = fd
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in self._claims.values():
            os.close(fd)  # closing the descriptor lets the claim go
        self._claims.clear()
        for connection in (self._blocking, self._blocking_commits):
            if connection is not None:
                connection.close()
        with anyio.CancelScope(shield=True), _translated():
            # The writer ends once the commits already sent to it are done.
            await self._writer.close()
            await self._reader.close()

    # -- plumbing ----------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        with _translated():
            return await _run(self._reader, fn)

    def _blocking_reader(self) -> sqlite3.Connection:
        if self._blocking is None:
            self._blocking = sqlite3.connect(self.path, isolation_level=None)
            _setup_reader(self._blocking)
        return self._blocking

    def _blocking_writer(self) -> sqlite3.Connection:
        if self._blocking_commits is None:
            self._blocking_commits = sqlite3.connect(self.path, isolation_level=None)
            prepare_writer(self._blocking_commits)
            # Commits that do not sync the log: the fold waits on this thread for each.
            # In WAL mode an unsynced commit cannot harm the file, and the next synced
            # one (a rebuild's checkpoint) makes it durable.
            self._blocking_commits.execute("PRAGMA synchronous = NORMAL")
        return self._blocking_commits

    async def _write(self, job: Job[T]) -> T:
        """Run ``job`` in the next group commit; return once that transaction is durable."""
        self._check_open()
        return await self._group.submit(job)

    async def _commit(self, batch: list[Job[Any]]) -> None:
        try:
            with _translated():
                last = await self._writer.commit(batch)
        except BaseException:
            if self._closed:
                raise EventStoreError("the store is closed") from None
            raise
        self._notify(last)

    def _notify(self, last_position: int) -> None:
        """Wake followers once per commit that grew the log."""
        if last_position > self._last_position:
            self._last_position = last_position
            self._appended.set()
            self._appended = anyio.Event()

    def _check_open(self) -> None:
        if self._closed:
            raise EventStoreError("the store is closed")


# -- functions run on a connection's thread ----------------------------------------------


async def _run(connection: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` with the sqlite3 connection on its own thread: one hop for the whole call.

    aiosqlite has no public way to run a function on its thread; ``_execute`` is the
    primitive its own methods are built on.
    """
    result: T = await connection._execute(fn, connection._conn)  # type: ignore[no-untyped-call]  # see docstring
    return result


class _WriterThread:
    """Commits on a thread of this process, over a connection of their own."""

    pid: int | None = None  # no process of its own

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._head = Head()  # touched only on the connection's thread, inside ``commit``

    @classmethod
    async def open(cls, path: Path) -> _WriterThread:
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await _run(db, _prepare_and_migrate)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await db.close()
            raise
        return cls(db)

    async def commit(self, jobs: Sequence[Job[Any]]) -> int:
        return await _run(self._db, functools.partial(commit, jobs, self._head))

    async def close(self) -> None:
        await self._db.close()


def _successor(prefix: str) -> str:
    """The first name after every name that starts with ``prefix``."""
    if not prefix:
        return chr(0x10FFFF) * 8
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _dumps(doc: Document) -> str:
    return orjson.dumps(doc).decode()


def _as_document(raw: str) -> Document:
    doc: Document = orjson.loads(raw)
    return doc


def _create_private_file(path: Path) -> str:
    """Create the file if need be; its absolute path (for worker processes' own opens)."""
    # Owner-only from the first byte; SQLite gives its -wal and -shm files the same mode.
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    return os.path.abspath(path)


def _set_up(path: Path) -> None:
    """Switch the file to WAL and migrate it, before the writer process opens it."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        _prepare_and_migrate(db)
    finally:
        db.close()


def _prepare_and_migrate(db: sqlite3.Connection) -> None:
    prepare_writer(db)
    _migrate(db)


def _setup_reader(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA busy_timeout = 10000")
    db.execute("PRAGMA query_only = ON")


def _migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations the file has not recorded, each with its record, atomically."""
    with transaction(db):
        db.execute(Q["create_schema_version"])
        applied = [int(row[0]) for row in db.execute(Q["applied_versions"])]
        for migration in pending("sqlite", applied):
            for statement in sqlite_statements(migration.sql):
                db.execute(statement)
            db.execute(
                Q["record_version"],
                (migration.version, migration.name, format_timestamp(utcnow())),
            )


# -- error translation --------------------------------------------------------------------


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc) from exc
    except OSError as exc:
        raise PersistenceError(f"cannot open the database file: {exc}") from exc
