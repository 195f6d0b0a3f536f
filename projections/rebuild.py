"""``projections rebuild [--verify]``: drop the read models and fold the whole log again.

With ``verify`` the log is first folded into shadow collections, compared row by row
with the live ones (both read in key order, a page at a time, so memory stays flat),
then copied over the live ones; the differences are reported.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from eventstore import Document, DocumentWrite, EventStore
from projections.longruns import rare_gc
from projections.runner import LIVE, SHADOW, ContractProjection, Tables, catch_up

MAX_REPORTED = 100


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
    batch_size: int = 2000,
    on_progress: Callable[[int, int], None] | None = None,
) -> RebuildReport:
    """Drop and rebuild the live read models; with ``verify``, report how they differed."""
    started = time.monotonic()
    last = await store.last_position()
    report = RebuildReport(verified=verify)

    target = SHADOW if verify else LIVE
    await store.drop_projection(target.name, target.collections)
    with rare_gc() as collector:
        done = 0

        def progress(position: int) -> None:
            nonlocal done
            collector.tick(position - done)
            done = position
            if on_progress is not None:
                on_progress(position, last)

        report.position = await catch_up(
            store,
            ContractProjection(store, target, cache_size=max(10_000, 4 * batch_size)),
            until_position=last,
            batch_size=batch_size,
            on_batch=progress,
        )
    if verify:
        for live, shadow in zip(LIVE.collections, SHADOW.collections, strict=True):
            await _compare(store, live, shadow, report)
        await store.drop_projection(LIVE.name, LIVE.collections)
        await _copy(store, SHADOW, LIVE, report.position)
        await store.drop_projection(SHADOW.name, SHADOW.collections)
    report.seconds = time.monotonic() - started
    return report


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
