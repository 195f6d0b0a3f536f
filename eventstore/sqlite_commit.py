"""Group commit for the SQLite backend: the jobs callers queue, and the one function that
commits a batch of them on the writer connection's thread.

Appends are planned in Python against what the batch already knows (stored ids, stream
versions, the next position, all looked up with one statement each), then inserted
together with one ``executemany``. Any other write (checkpoints, documents) runs in its
own savepoint, so one failing job never fails the rest of its batch.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson

from eventstore.base import AppendResult
from eventstore.envelope import RecordedEvent, format_timestamp, parse_timestamp, utcnow
from eventstore.errors import (
    AppendOnlyError,
    ConcurrencyError,
    EventIdConflictError,
    EventStoreError,
    PersistenceError,
)
from eventstore.migrations import queries

T = TypeVar("T")
Q = queries("sqlite")


Row = tuple[int, str, int, str, str, str, str, str]  # the columns of insert_event


@dataclass(slots=True)
class Append:
    """An append waiting for the writer, its JSON already encoded."""

    stream: str
    types: list[str]
    data: list[str]
    metadata: list[str]
    ids: list[str]
    expected_version: int | None


class Batch:
    """What one group commit knows: looked up once for all its appends, then kept current."""

    __slots__ = ("next_position", "recorded_at", "rows", "stored", "text_recorded_at", "versions")

    def __init__(
        self, next_position: int, stored: dict[str, Sequence[Any]], versions: dict[str, int]
    ) -> None:
        # One moment for the whole batch: when it was recorded, which is its commit.
        self.recorded_at = utcnow()
        self.text_recorded_at = format_timestamp(self.recorded_at)
        self.next_position = next_position
        self.stored = stored  # event id -> its row, for the ids of this batch
        self.versions = versions  # stream -> version, for the streams of this batch
        self.rows: list[Row] = []


class Job(Generic[T]):
    """One caller's unit of work in a group commit, and its outcome.

    An append is planned against the batch in Python and inserted with everyone else's
    in one statement; any other write runs ``fn`` inside its own savepoint.
    """

    __slots__ = ("append", "done", "error", "fn", "lead", "result")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], T] | None = None,
        append: Append | None = None,
    ) -> None:
        self.fn = fn
        self.append = append
        # Resolved when finished, or when handed leadership. A bare asyncio future (the
        # backend is asyncio anyway: aiosqlite) is the cheapest wake-up per append.
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lead = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def wake(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # set by a successful run


def commit(jobs: list[Job[Any]], db: sqlite3.Connection) -> int:
    """One transaction for every queued job; a job that fails is left out alone.

    Returns the last position of the log after the commit.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        appends = [job.append for job in jobs if job.append is not None]
        batch = Batch(max_position(db) + 1, *look_up(db, appends))
        for job in jobs:
            if job.append is not None:
                try:
                    job.result = plan_append(batch, job.append)
                except EventStoreError as exc:
                    job.error = exc
                continue
            assert job.fn is not None
            db.execute("SAVEPOINT job")
            try:
                job.result = job.fn(db)
            except sqlite3.Error as exc:
                db.execute("ROLLBACK TO job")
                job.error = translate(exc)
            db.execute("RELEASE job")
        # Every append of the batch in one statement; the plan already ruled out conflicts.
        db.executemany(Q["insert_event"], batch.rows)
        db.execute("COMMIT")
        return batch.next_position - 1
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def look_up(
    db: sqlite3.Connection, appends: list[Append]
) -> tuple[dict[str, Sequence[Any]], dict[str, int]]:
    """The stored events among the batch's ids, and the versions of its streams."""
    if not appends:
        return {}, {}
    ids = orjson.dumps([i for append in appends for i in append.ids]).decode()
    rows = db.execute(Q["events_by_ids"], (ids,)).fetchall()
    stored = {row[7]: row for row in rows}
    streams = orjson.dumps(list({append.stream for append in appends})).decode()
    versions = dict(db.execute(Q["stream_versions"], (streams,)).fetchall())
    return stored, versions


def plan_append(batch: Batch, append: Append) -> AppendResult | tuple[int, int, datetime]:
    """Check one append against the batch so far and add its rows.

    Returns the stored events of a duplicate, or the position and version of the first
    new event and the time recorded. Raises, adding nothing, when the append is refused.
    """
    stored = [batch.stored.get(event_id) for event_id in append.ids]
    if all(stored):
        return AppendResult(tuple(decode_rows(stored)), duplicate=True)
    if any(stored):
        raise EventIdConflictError("the batch mixes stored and new event ids")
    if len(set(append.ids)) != len(append.ids):
        raise EventIdConflictError("the batch repeats an event id")
    stream = append.stream
    version = batch.versions.get(stream, 0)
    if append.expected_version is not None and append.expected_version != version:
        raise ConcurrencyError(stream, append.expected_version, version)
    position, at = batch.next_position, batch.text_recorded_at
    for i, (type_, data, meta, event_id) in enumerate(
        zip(append.types, append.data, append.metadata, append.ids, strict=True)
    ):
        batch.rows.append((position + i, stream, version + 1 + i, type_, data, meta, event_id, at))
        # As events_by_ids returns it, for a later append of the same id in this batch.
        batch.stored[event_id] = (position + i, stream, version + 1 + i, type_, data, meta, at)
    count = len(append.ids)
    batch.next_position = position + count
    batch.versions[stream] = version + count
    return position, version + 1, batch.recorded_at


def max_position(db: sqlite3.Connection) -> int:
    return int(db.execute(Q["last_position"]).fetchone()[0])


def decode_rows(rows: Sequence[Any]) -> list[RecordedEvent]:
    loads, timestamp = orjson.loads, _timestamp
    return [
        RecordedEvent(
            row[0], row[1], row[2], row[3], loads(row[4]), loads(row[5]), timestamp(row[6])
        )
        for row in rows
    ]


@functools.lru_cache(maxsize=4096)
def _timestamp(text: str) -> datetime:
    # A group commit stamps all its events alike, so reads parse few distinct times.
    return parse_timestamp(text)


def translate(exc: sqlite3.Error) -> EventStoreError:
    message = str(exc)
    if "append-only" in message:
        error: EventStoreError = AppendOnlyError(message)
    else:
        error = PersistenceError(f"SQLite failed: {message}")
    error.__cause__ = exc
    return error
