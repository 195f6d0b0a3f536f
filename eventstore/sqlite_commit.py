"""What the SQLite writer runs on its connection's thread: one function per group commit.

A batch of appends is planned (``eventstore.groupcommit``) against the head of the log:
its last position and the versions of the batch's streams. The writer remembers the
head it left (``Head``), so the common batch needs no look-up at all: it is planned
from memory and inserted with one statement. That memory is checked for free. Positions
and versions are gap-free, so anyone else's append since (another process on the same
file) took position ``last + 1``, an append to a stream took its next version, and an
event id stored earlier is unique too: each makes the insert fail on a primary key or
unique index. Then the transaction starts over, and the batch is planned from what one
``look_up`` statement reads.

Few statements matter as much as little work: the event loop's thread holds the GIL
most of the time, and each statement costs this thread a wait to get it back.

Any other write (checkpoints, documents) is a run of named statements (``Statements``)
in its own savepoint, so one failing job never fails the rest of its batch. Every job is
data, not a function: the commit runs in the store's writer process
(``eventstore.sqlite_writer``).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any, Protocol

import orjson

from eventstore.base import decode_row
from eventstore.envelope import RecordedEvent
from eventstore.errors import AppendOnlyError, EventStoreError, PersistenceError
from eventstore.groupcommit import Append, AppendBatch, Batch, Planned, Row, plan_append
from eventstore.migrations import queries

Q = queries("sqlite")
_ROWS_PER_INSERT = 128  # 1024 parameters a statement, well inside SQLite's limit
_HEAD_STREAMS = 10_000  # stream versions remembered; past that, forgotten and looked up


# Named queries (``Q``), each with the rows it runs on.
Steps = list[tuple[str, list[tuple[Any, ...]]]]


class Slot(Protocol):
    """A job of a commit: what to write (``payload``), and where its outcome goes."""

    payload: Any
    result: Any
    error: BaseException | None


@dataclass(slots=True)
class Statements:
    """A write that is not an append (a checkpoint, projection documents): named queries,
    each run on its rows, in order."""

    steps: Steps

    def run(self, db: sqlite3.Connection) -> None:
        for query, rows in self.steps:
            db.executemany(Q[query], rows)


def prepare_writer(db: sqlite3.Connection) -> None:
    """A connection that writes: WAL, and a commit returns only once it is on disk."""
    db.execute("PRAGMA busy_timeout = 10000")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise PersistenceError(f"could not switch the database to WAL mode (it is {mode})")
    db.execute("PRAGMA synchronous = FULL")


class Head:
    """The head of the log as this writer left it: the last position, and the versions
    of the streams it appended to recently. ``last`` is None when unknown (at first, and
    after a failed commit)."""

    __slots__ = ("last", "versions")

    def __init__(self) -> None:
        self.last: int | None = None
        self.versions: dict[str, int] = {}

    def batch(self, appends: list[Append]) -> Batch | None:
        """A batch to plan from memory, or None when the last position is not known.

        A stream not remembered is taken to be new (version 0): if it has events after
        all, its version 1 is stored, and the insert fails on (stream, version) like any
        stale memory does.
        """
        if self.last is None:
            return None
        versions = self.versions
        return Batch(self.last + 1, {}, {a.stream: versions.get(a.stream, 0) for a in appends})

    def advance(self, batch: Batch) -> None:
        self.last = batch.next_position - 1
        if len(self.versions) + len(batch.versions) > _HEAD_STREAMS:
            self.versions.clear()
        self.versions.update(batch.versions)

    def forget(self) -> None:
        self.last = None
        self.versions.clear()


def commit(jobs: Sequence[Slot], head: Head, db: sqlite3.Connection) -> int:
    """One transaction for every queued job; a job that fails is left out alone.

    Returns the last position of the log after the commit (0 when no append said).
    """
    appending: list[Slot] = []
    only_appends = True
    for job in jobs:
        if isinstance(job.payload, Append):
            appending.append(job)
        elif isinstance(job.payload, AppendBatch):
            appending.extend(job.payload.jobs)
        else:
            only_appends = False
    planned = _plan_from_memory(head, appending)
    if planned and only_appends and len(planned[0].rows) <= _ROWS_PER_INSERT:
        # One statement outside a transaction is a transaction of its own, durable when
        # the statement returns: the whole commit costs this thread one wait for the GIL.
        try:
            insert(db, planned[0].rows)
        except sqlite3.IntegrityError:
            planned = None  # someone else appended, or an id was stored before
        except BaseException:
            head.forget()
            raise
        else:
            return _planned(head, appending, planned)
    db.execute("BEGIN IMMEDIATE")
    try:
        if planned:
            try:
                insert(db, planned[0].rows)
            except sqlite3.IntegrityError:
                planned = None
                db.execute("ROLLBACK")
                db.execute("BEGIN IMMEDIATE")
        batch = planned[0] if planned else _from_database(db, appending) if appending else None
        for job in jobs:
            if not isinstance(job.payload, Append | AppendBatch):
                db.execute("SAVEPOINT job")
                try:
                    job.result = job.payload.run(db)
                except sqlite3.Error as exc:
                    db.execute("ROLLBACK TO job")
                    job.error = translate(exc)
                db.execute("RELEASE job")
        db.execute("COMMIT")
    except BaseException:
        head.forget()
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    if planned:
        return _planned(head, appending, planned)
    if batch is not None:
        head.advance(batch)
    return head.last or 0


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """The block in a write transaction of its own, outside the group commits; rolled
    back if it raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _plan_from_memory(head: Head, appending: list[Slot]) -> tuple[Batch, list[Planned]] | None:
    """The batch planned against ``head``, or None when the head is unknown or an append
    would be refused: refusals are decided against the database."""
    batch = head.batch([job.payload for job in appending]) if appending else None
    if batch is None:
        return None
    try:
        return batch, [plan_append(batch, job.payload, decode_rows) for job in appending]
    except EventStoreError:
        return None


def _planned(head: Head, appending: list[Slot], planned: tuple[Batch, list[Planned]]) -> int:
    """Hand out the outcomes of a batch planned from memory, now that it is committed."""
    batch, outcomes = planned
    for job, outcome in zip(appending, outcomes, strict=True):
        job.result = outcome
    head.advance(batch)
    return batch.next_position - 1


def _from_database(db: sqlite3.Connection, appending: list[Slot]) -> Batch:
    batch = look_up(db, [job.payload for job in appending])
    for job in appending:
        try:
            job.result = plan_append(batch, job.payload, decode_rows)
        except EventStoreError as exc:
            job.error = exc
    insert(db, batch.rows)
    return batch


def insert(db: sqlite3.Connection, rows: list[Row]) -> None:
    """All the rows, in as few statements as the parameter limit allows."""
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        db.execute(_insert_statement(len(chunk)), list(chain.from_iterable(chunk)))


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_statement(rows: int) -> str:
    return Q["insert_event"].rstrip().rstrip(";") + ", (?, ?, ?, ?, ?, ?, ?, ?)" * (rows - 1)


def look_up(db: sqlite3.Connection, appends: list[Append]) -> Batch:
    """A batch that knows the last position, its streams' versions and its stored ids."""
    ids = orjson.dumps([i for append in appends for i in append.ids]).decode()
    streams = orjson.dumps(list({append.stream for append in appends})).decode()
    last, stored, versions = 0, dict[str, Sequence[Any]](), dict[str, int]()
    for kind, *row in db.execute(Q["look_up"], {"ids": ids, "streams": streams}).fetchall():
        if kind == 2:
            stored[row[7]] = row
        elif kind == 1:
            versions[row[0]] = row[1]
        else:
            last = row[0]
    return Batch(last + 1, stored, versions)


def max_position(db: sqlite3.Connection) -> int:
    return int(db.execute(Q["last_position"]).fetchone()[0])


def decode_rows(rows: Sequence[Any]) -> list[RecordedEvent]:
    return [decode_row(row) for row in rows]


def translate(exc: sqlite3.Error) -> EventStoreError:
    message = str(exc)
    if "append-only" in message:
        error: EventStoreError = AppendOnlyError(message)
    else:
        error = PersistenceError(f"SQLite failed: {message}")
    error.__cause__ = exc
    return error
