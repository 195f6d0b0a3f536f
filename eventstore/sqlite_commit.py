"""What the SQLite writer runs on its connection's thread: one function per group commit.

Appends are planned (``eventstore.groupcommit``) against what the batch looked up with
one statement each, then inserted together with one ``executemany``. Any other write
(checkpoints, documents) is a function run in its own savepoint, so one failing job
never fails the rest of its batch.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from eventstore.envelope import RecordedEvent, parse_timestamp
from eventstore.errors import AppendOnlyError, EventStoreError, PersistenceError
from eventstore.groupcommit import Append, Batch, Job, plan_append
from eventstore.migrations import queries

Q = queries("sqlite")


def commit(jobs: list[Job[Any]], db: sqlite3.Connection) -> int:
    """One transaction for every queued job; a job that fails is left out alone.

    Returns the last position of the log after the commit.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        appends = [job.payload for job in jobs if isinstance(job.payload, Append)]
        batch = look_up(db, appends)
        for job in jobs:
            if isinstance(job.payload, Append):
                try:
                    job.result = plan_append(batch, job.payload, decode_rows)
                except EventStoreError as exc:
                    job.error = exc
                continue
            db.execute("SAVEPOINT job")
            try:
                job.result = job.payload(db)
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


def look_up(db: sqlite3.Connection, appends: list[Append]) -> Batch:
    """A batch that knows the last position, its streams' versions and its stored ids."""
    ids = orjson.dumps([i for append in appends for i in append.ids]).decode()
    streams = orjson.dumps(list({append.stream for append in appends})).decode()
    last, stored, versions = 0, dict[str, Sequence[Any]](), dict[str, int]()
    for kind, *row in db.execute(Q["look_up"], (ids, streams)).fetchall():
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
