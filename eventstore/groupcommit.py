"""Group commit, shared by the SQL backends: concurrent writes are committed together.

Callers queue a ``Job``; there is no background task to own. The first caller that
finds nobody collecting becomes the leader: it yields once if the last batch woke other
callers (so that they can join), takes a batch from the queue, hands leadership on to
the oldest waiter, and commits the batch in one transaction. With ``pipeline`` above
one, that many batches are in flight at once (the event loop prepares the next while
the disk syncs the last), and a batch takes at most its share of the writes in flight,
so batches alternate evenly instead of one big batch waiting on a tiny one. A batch
goes in flight beside another only once ``overlap_from`` writes wait for it: a commit
has a fixed cost, and a few writes do better waiting to join a bigger batch.

Appends are planned in Python (``plan_append``) against what the batch looked up once
for all of them: stored event ids, stream versions and the next position (the SQLite
writer first tries what it remembers of them: ``eventstore.sqlite_commit``). A refused
append is left out alone; the others in its batch still commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import anyio
import orjson

from eventstore.base import AppendResult
from eventstore.envelope import NewEvent, RecordedEvent, format_timestamp, utcnow
from eventstore.errors import ConcurrencyError, EventIdConflictError

T = TypeVar("T")
Row = tuple[int, str, int, str, str, str, str, str]  # position .. recorded_at, event_id
Planned = AppendResult | tuple[int, int, datetime]


@dataclass(slots=True)
class Append:
    """An append waiting for the writer, its JSON already encoded."""

    stream: str
    types: list[str]
    data: list[str]
    metadata: list[str]
    ids: list[str]
    expected_version: int | None
    events: Sequence[NewEvent]
    metadata_dicts: list[dict[str, Any]]  # as encoded in ``metadata``, for the result
    stamps: list[str | None] | None  # times the events carry (import), None: none does

    @classmethod
    def of(cls, stream: str, events: Sequence[NewEvent], expected_version: int | None) -> Append:
        dumps = orjson.dumps
        metadata = [event.metadata() for event in events]
        stamps: list[str | None] | None = None
        if any(event.recorded_at is not None for event in events):
            stamps = [
                None if event.recorded_at is None else format_timestamp(event.recorded_at)
                for event in events
            ]
        return cls(
            stream=stream,
            types=[event.type for event in events],
            data=[dumps(event.data).decode() for event in events],
            metadata=[dumps(meta).decode() for meta in metadata],
            ids=[event.event_id for event in events],
            expected_version=expected_version,
            events=events,
            metadata_dicts=metadata,
            stamps=stamps,
        )

    def result(self, planned: Planned) -> AppendResult:
        """The caller's answer: its own events, placed. Nothing to decode: what was
        stored is exactly what the caller handed in."""
        if isinstance(planned, AppendResult):
            return planned  # all stored already
        position, version, at = planned
        stream, meta = self.stream, self.metadata_dicts
        return AppendResult(
            tuple(
                [
                    RecordedEvent(
                        position + i, stream, version + i, e.type, e.data, meta[i],
                        at if e.recorded_at is None else e.recorded_at,
                    )
                    for i, e in enumerate(self.events)
                ]
            )
        )


@dataclass(slots=True)
class AppendBatch:
    """Many appends as one job (``append_batch``). Each is a job of its own that is never
    queued: the writer plans and stores it with the others, and sets its outcome."""

    jobs: list[Job[Planned]]


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
        self.stored = stored  # event id -> (position, ..., recorded_at, ...), this batch's ids
        self.versions = versions  # stream -> version, for the streams of this batch
        self.rows: list[Row] = []


def plan_append(
    batch: Batch,
    append: Append,
    decode: Callable[[Sequence[Sequence[Any]]], list[RecordedEvent]],
) -> Planned:
    """Check one append against the batch so far and add its rows.

    Returns the stored events of a duplicate (``decode``d from their rows), or the
    position and version of the first new event and the time recorded. Raises, adding
    nothing, when the append is refused.
    """
    ids, stored = append.ids, batch.stored
    found = [stored.get(event_id) for event_id in ids]
    if all(found):
        return AppendResult(tuple(decode([row for row in found if row is not None])),
                            duplicate=True)
    if any(found):
        raise EventIdConflictError("the batch mixes stored and new event ids")
    if len(ids) > 1 and len(set(ids)) != len(ids):
        raise EventIdConflictError("the batch repeats an event id")
    stream = append.stream
    version = batch.versions.get(stream, 0)
    if append.expected_version is not None and append.expected_version != version:
        raise ConcurrencyError(stream, append.expected_version, version)
    position, now, rows = batch.next_position, batch.text_recorded_at, batch.rows
    stamps = append.stamps
    for i, (type_, data, meta, event_id) in enumerate(
        zip(append.types, append.data, append.metadata, ids, strict=True)
    ):
        at = now if stamps is None else stamps[i] or now
        row = (position + i, stream, version + 1 + i, type_, data, meta, at, event_id)
        rows.append(row)
        # A row reads as a stored one does, for a later append of the same id in this batch.
        stored[event_id] = row
    count = len(ids)
    batch.next_position = position + count
    batch.versions[stream] = version + count
    return position, version + 1, batch.recorded_at


class Job(Generic[T]):
    """One caller's write in a group commit (``payload``: what to do), and its outcome."""

    __slots__ = ("done", "error", "lead", "payload", "result")

    def __init__(self, payload: Any) -> None:
        self.payload = payload
        # Resolved when finished, or when handed leadership. A bare asyncio future (the
        # drivers are asyncio ones anyway) is the cheapest wake-up per append.
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


class GroupCommit:
    """Runs queued jobs through ``commit``, a batch at a time.

    ``commit(batch)`` sets each job's ``result`` or ``error``; if it raises, every job of
    the batch fails with that exception.
    """

    def __init__(
        self,
        commit: Callable[[list[Job[Any]]], Awaitable[None]],
        *,
        pipeline: int = 1,
        overlap_from: int = 1,
    ) -> None:
        self._commit = commit
        self._pipeline = pipeline
        self._overlap_from = overlap_from
        self._queue: list[Job[Any]] = []
        self._collecting = False  # a leader is chosen and forming the next batch
        self._in_flight = 0  # batches being committed
        self._in_flight_jobs = 0
        self._last_batch = 0

    async def submit(self, job: Job[T]) -> T:
        """Run ``job`` in the next batch; return once that batch has committed."""
        self._queue.append(job)
        if not self._collecting and self._room() and self._queue[0] is not job:
            # This write made room for a batch beside the one in flight: the oldest leads.
            self._hand_off()
        if self._collecting or not self._room():
            try:
                await job.done
            except BaseException:
                # Cancelled while queued: it never reaches the database, and leadership
                # handed to it passes on.
                if job in self._queue:
                    self._queue.remove(job)
                if job.lead:
                    self._collecting = False
                    self._hand_off()
                raise
            if not job.lead:
                return job.outcome()
        self._collecting = True
        try:
            if self._last_batch > 1:
                # The callers the last commit just woke may be about to queue again: let
                # them, first. (A lone writer has nobody to wait for.)
                await anyio.lowlevel.cancel_shielded_checkpoint()
            waiting = len(self._queue) + self._in_flight_jobs
            take = max(1, -(-waiting // self._pipeline))
            if len(self._queue) - take < self._overlap_from:
                take = len(self._queue)  # those left could not start beside it: take them
            batch, self._queue = self._queue[:take], self._queue[take:]
        finally:
            self._collecting = False
        self._last_batch = len(batch)
        self._in_flight += 1
        self._in_flight_jobs += len(batch)
        self._hand_off()
        # Shielded: the callers in the batch wait on this commit, whoever leads it.
        with anyio.CancelScope(shield=True):
            try:
                await self._commit(batch)
            except BaseException as exc:
                for queued in batch:
                    queued.error = exc
            finally:
                self._in_flight -= 1
                self._in_flight_jobs -= len(batch)
        for queued in batch:
            if queued is not job:
                queued.wake()
        self._hand_off()
        return job.outcome()

    def _hand_off(self) -> None:
        """Make the oldest waiter the leader, if there is room for another batch."""
        if self._queue and not self._collecting and self._room():
            successor = self._queue[0]
            self._collecting = True
            successor.lead = True
            successor.wake()

    def _room(self) -> bool:
        """Whether the queue may start a batch now."""
        if self._in_flight == 0:
            return True
        return self._in_flight < self._pipeline and len(self._queue) >= self._overlap_from
