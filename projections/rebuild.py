"""``projections rebuild [--verify]``: fold the whole log into the read models again.

The log is folded stream by stream, not in log order: a contract's state depends only
on its own stream, so each contract is folded from its first event to its last and
written once, with no state kept between contracts and nothing read back. The contract
streams are cut into parts of about equal size (``EventStore.split_streams``), dealt
out in name ranges that shrink towards the end (``shrinking_ranges``) to worker
processes that fold them side by side, each with its own connection, writing their rows
in batches; the memory store (or a short log) is folded in this process. The checkpoint
stays at 0 until every range is written, then moves to the last position.

The contract rows are written over the old ones rather than after deleting them all:
deleting a long log's rows first took a quarter of the rebuild, before any worker could
write (SQLite writes out every page it frees). Each batch deletes instead the old rows
in its own span of keys that no stream of the log accounts for any more. The small
collections, the id map, the reconciliation candidates and the index, are emptied first.

With ``verify`` the log is first folded into shadow collections, compared row by row
with the live ones (both read in key order, a page at a time, so memory stays flat),
then copied over the live ones; the differences are reported.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import anyio.to_process
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from eventstore import Document, DocumentWrite, EventStore, open_store
from projections.contract import StreamFold
from projections.events import CONTRACT_STREAM_PREFIX, external_id_of
from projections.longruns import one_failure, rare_gc, shrinking_ranges
from projections.runner import (
    LIVE,
    REBUILDING,
    SHADOW,
    SHAPE,
    Tables,
    shape_write,
    state_writes,
    stored_shape,
)

MAX_REPORTED = 100
# Below this many events, starting worker processes costs more than it saves.
PARALLEL_FROM = 100_000
# Worker processes by default: one per core, at most this many (each holds ~50 MB).
MAX_WORKERS = 4
# The log is cut into this many parts per worker, dealt out in ranges of at most
# PARTS_PER_RANGE parts that shrink to one part towards the end (``shrinking_ranges``):
# ranges of an eighth of the log at most on two workers, then smaller ones, so the
# progress bar moves and the workers finish together.
PARTS_PER_WORKER = 32
PARTS_PER_RANGE = 8
# Contracts whose rows are written together. Fewer than a short log's range holds, so a
# worker's peak (the rows waiting to be written) does not grow with the log.
BATCH_CONTRACTS = 250
# Events read at a time: a small page's rows stay in the CPU's caches while they are
# folded (measured about a tenth faster than pages of 2000).
PAGE_EVENTS = 500


@dataclass(frozen=True, slots=True)
class Difference:
    """One row that the live read model and a fresh fold of the log disagree on."""

    collection: str
    key: str
    problem: str  # "missing from live", "only in live", "differs"
    fields: tuple[str, ...] = ()

    def describe(self) -> str:
        named = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.collection}/{self.key}: {self.problem}{named}"


@dataclass(slots=True)
class RebuildReport:
    position: int = 0
    seconds: float = 0.0
    verified: bool = False
    rows_compared: int = 0
    difference_count: int = 0
    differences: list[Difference] = field(default_factory=list)


async def rebuild(
    store: EventStore,
    *,
    verify: bool = False,
    batch_size: int = BATCH_CONTRACTS,
    on_progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> RebuildReport:
    """Drop and rebuild the live read models; with ``verify``, report how they differed.

    ``on_progress(events folded, last position)`` as ranges finish. ``workers``: worker
    processes (default: one per core up to four, for a long log in a store other
    processes can open; 0 or 1 folds in this process).
    """
    started = time.monotonic()
    last = await store.last_position()
    report = RebuildReport(verified=verify, position=last)
    if workers is None:
        workers = default_workers() if last >= PARALLEL_FROM else 0
    target = SHADOW if verify else LIVE
    # Marked before anything is dropped: should this rebuild be cut short, the next
    # ``run`` rebuilds before it serves (``rebuild_if_outdated``).
    live_position = await store.load_checkpoint(LIVE.name)
    await store.commit_projection(LIVE.name, live_position, [shape_write(LIVE, REBUILDING)])
    await fold_streams(store, target, last, workers, batch_size, on_progress)
    await store.commit_projection(target.name, last, [])
    if verify:
        for live, shadow in zip(LIVE.collections, SHADOW.collections, strict=True):
            await _compare(store, live, shadow, report)
        await store.drop_projection(LIVE.name, LIVE.collections)
        await _copy(store, SHADOW, LIVE, report.position)
        await store.drop_projection(SHADOW.name, SHADOW.collections)
    await store.commit_projection(LIVE.name, last, [shape_write()])
    report.seconds = time.monotonic() - started
    return report


async def rebuild_if_outdated(
    store: EventStore, on_start: Callable[[int], None] | None = None
) -> RebuildReport | None:
    """Rebuild the live read models if an earlier (or later) spotsync wrote them with
    another shape of the fold (``projections.runner.SHAPE``), or a rebuild was cut short
    (``REBUILDING``); None when they are current. ``on_start(stored shape)`` before a
    rebuild starts: a long log takes a while."""
    shape = await stored_shape(store)
    if shape is None or shape == SHAPE:
        return None
    if on_start is not None:
        on_start(shape)
    return await rebuild(store)


def default_workers() -> int:
    """One worker process per core, up to ``MAX_WORKERS``: memory grows with each."""
    return min(os.cpu_count() or 1, MAX_WORKERS)


async def fold_streams(
    store: EventStore,
    tables: Tables,
    until: int,
    workers: int,
    batch_size: int = BATCH_CONTRACTS,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Drop ``tables``, then fold every contract stream up to position ``until`` into them
    (checkpoint 0). Worker processes start while the old rows are deleted."""
    # The contract rows are overwritten and swept range by range (``fold_range``).
    emptied = (tables.contract_ids, tables.reconcile_due, tables.index)
    if workers <= 1 or store.url is None:
        await store.drop_projection(tables.name, emptied)
        done = 0

        def advance(events: int) -> None:
            nonlocal done
            done += events
            if on_progress is not None:
                on_progress(done, until)

        await fold_range(store, tables, None, None, until, batch_size, advance)
        return
    url = store.url
    limiter = anyio.CapacityLimiter(workers)
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(partial(anyio.to_process.run_sync, _started, limiter=limiter))
        await store.drop_projection(tables.name, emptied)
        bounds = await store.split_streams(CONTRACT_STREAM_PREFIX, workers * PARTS_PER_WORKER)
    done = 0

    async def fold_one(start: str | None, stop: str | None) -> None:
        nonlocal done
        folded = await anyio.to_process.run_sync(
            fold_range_in_worker,
            url,
            tables,
            start,
            stop,
            until,
            batch_size,
            cancellable=True,
            limiter=limiter,
        )
        done += folded  # not ``done += await ...``: that adds to the count before the wait
        if on_progress is not None:
            on_progress(done, until)

    async with anyio.create_task_group() as tg:
        for start, stop in shrinking_ranges(bounds, workers, PARTS_PER_RANGE):
            tg.start_soon(fold_one, start, stop)


async def fold_range(
    store: EventStore,
    tables: Tables,
    start: str | None,
    stop: str | None,
    until: int,
    batch_size: int = BATCH_CONTRACTS,
    on_events: Callable[[int], None] | None = None,
    page_size: int = PAGE_EVENTS,
    blocking: bool = False,
) -> int:
    """Fold the contract streams from ``start`` to ``stop`` and write their rows, a batch
    of about ``batch_size`` contracts at a time (checkpoint 0); returns the events folded.
    ``blocking``: read and write on this thread (``read_streams``, ``commit_projection``),
    in a process doing nothing else."""
    fold = StreamFold()
    writes: list[DocumentWrite] = []
    written: set[str] = set()
    contracts = events = 0
    span = last = _key_bound(start) or ""
    with rare_gc() as collector, one_failure():
        async with (
            anyio.create_task_group() as tg,
            _batch_writer(tg, store, tables, blocking) as put,
        ):
            pages = store.read_streams(
                CONTRACT_STREAM_PREFIX,
                start=start,
                stop=stop,
                until_position=until,
                decoded=False,
                page_size=page_size,
                blocking=blocking,
            )
            async for page in pages:
                states = fold.feed(page)
                for state in states:
                    writes.extend(state_writes(tables, state.external_id, None, state))
                    written.add(last := state.external_id)
                contracts += len(states)
                events += len(page)
                collector.tick(len(page))
                if contracts >= batch_size:
                    # The span runs up to the batch's last contract, where the next one
                    # starts: that row, written now, counts as written by the next too.
                    await put(_Batch(writes, written, span, last))
                    writes, written, contracts, span = [], {last}, 0, last
                if on_events is not None:
                    on_events(len(page))
            for state in fold.finish():
                writes.extend(state_writes(tables, state.external_id, None, state))
                written.add(state.external_id)
            # Sent even when empty: old rows past the range's last stream go too.
            await put(_Batch(writes, written, span, _key_bound(stop)))
    return events


@dataclass(frozen=True, slots=True)
class _Batch:
    """The rows of a batch of contracts, and the span of contract keys it accounts for,
    ``start`` up to (not including) ``stop``: an old row there not ``written`` is of no
    stream of the log (any more), and is deleted with the batch."""

    writes: list[DocumentWrite]
    written: set[str]
    start: str
    stop: str | None


def _key_bound(stream: str | None) -> str | None:
    """The contract key where a range bound (a contract stream's name) falls."""
    if stream is None:
        return None
    external_id = external_id_of(stream)
    if external_id is None:
        raise ValueError(f"a range of contract streams is bounded by their names, not {stream!r}")
    return external_id


@asynccontextmanager
async def _batch_writer(
    tg: TaskGroup, store: EventStore, tables: Tables, blocking: bool
) -> AsyncIterator[Callable[[_Batch], Awaitable[None]]]:
    """Where ``fold_range`` puts its batches. A task writes each while the next one is
    folded, so the fold does not wait on the disk; or, ``blocking``, it is written at once
    on this thread: a worker process has no core to spare for a writer thread, which only
    took the GIL from the fold (one range: 6.3-7.7 us an event with it, 5.0 without)."""
    if blocking:
        yield partial(_write_batch, store, tables, blocking=True)
        return
    send, batches = anyio.create_memory_object_stream[_Batch]()
    tg.start_soon(_write_batches, store, tables, batches)
    async with send:
        yield send.send


async def _write_batches(
    store: EventStore, tables: Tables, batches: MemoryObjectReceiveStream[_Batch]
) -> None:
    async with batches:
        async for batch in batches:
            await _write_batch(store, tables, batch)


async def _write_batch(
    store: EventStore, tables: Tables, batch: _Batch, *, blocking: bool = False
) -> None:
    old = await store.document_keys(tables.contracts, start=batch.start, stop=batch.stop)
    stale = [DocumentWrite(tables.contracts, key, None) for key in old if key not in batch.written]
    await store.commit_projection(tables.name, 0, [*stale, *batch.writes], blocking=blocking)


def _started() -> None:
    """Nothing: a worker process imports this module to run it, so it is ready to fold."""


def fold_range_in_worker(
    url: str,
    tables: Tables,
    start: str | None,
    stop: str | None,
    until: int,
    batch_size: int,
) -> int:
    """``fold_range`` in a worker process, on a store of its own."""

    async def run() -> int:
        async with await open_store(url) as store:
            return await fold_range(
                store, tables, start, stop, until, batch_size, blocking=True
            )

    return anyio.run(run)


async def _rows(
    store: EventStore, collection: str, page: int = 1000
) -> AsyncIterator[tuple[str, Document]]:
    after: str | None = None
    while True:
        rows = await store.query_documents(collection, after_key=after, limit=page)
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = rows[-1][0]


async def _compare(store: EventStore, live: str, fresh: str, report: RebuildReport) -> None:
    live_rows = _rows(store, live)
    fresh_rows = _rows(store, fresh)
    a = await anext(live_rows, None)
    b = await anext(fresh_rows, None)
    while a is not None or b is not None:
        report.rows_compared += 1
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            _report(report, Difference(live, a[0], "only in live"))
            a = await anext(live_rows, None)
        elif a is None or b[0] < a[0]:
            _report(report, Difference(live, b[0], "missing from live"))
            b = await anext(fresh_rows, None)
        else:
            if a[1] != b[1]:
                _report(report, Difference(live, a[0], "differs", _changed(a[1], b[1])))
            a = await anext(live_rows, None)
            b = await anext(fresh_rows, None)


def _changed(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))


def _report(report: RebuildReport, difference: Difference) -> None:
    report.difference_count += 1
    if len(report.differences) < MAX_REPORTED:
        report.differences.append(difference)


async def _copy(store: EventStore, source: Tables, target: Tables, position: int) -> None:
    # Intermediate commits keep the checkpoint at 0, so a copy cut short is refolded.
    for src, dst in zip(source.collections, target.collections, strict=True):
        writes: list[DocumentWrite] = []
        async for key, doc in _rows(store, src):
            writes.append(DocumentWrite(dst, key, doc))
            if len(writes) >= 1000:
                await store.commit_projection(target.name, 0, writes)
                writes = []
        if writes:
            await store.commit_projection(target.name, 0, writes)
    await store.commit_projection(target.name, position, [])
