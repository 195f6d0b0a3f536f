"""Helpers of long folds: a rebuild, a whole-log replay, a projection catching up.

``rare_gc`` keeps the cyclic garbage collector quiet. A fold allocates millions of
short-lived objects that reference counting frees at once; the cyclic collector still
walks the young ones on every few hundred allocations, which costs a whole-log replay
nearly half its time. These folds make no reference cycles, so the collector is paused
while they run and a collection is made every ``every`` events instead (what cycles the
async machinery makes are still freed, so memory stays flat).

``shrinking_ranges`` deals a log's streams out to worker processes in ranges that shrink
towards the end, so the workers finish together.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


class RareCollector:
    def __init__(self, every: int) -> None:
        self.every = every
        self._count = 0

    def tick(self, events: int = 1) -> None:
        self._count += events
        if self._count >= self.every:
            self._count = 0
            gc.collect()


@contextmanager
def rare_gc(every: int = 200_000) -> Iterator[RareCollector]:
    """Pause automatic collection for the block; call ``tick(n)`` as events are folded."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield RareCollector(every)
    finally:
        if enabled:
            gc.enable()


@contextmanager
def one_failure() -> Iterator[None]:
    """Around a task group of pipeline stages: when one stage fails (and the others are
    cancelled), raise its own error, not a group of one, so callers see the store's error."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


def shrinking_ranges(
    bounds: Sequence[str], workers: int, most: int
) -> list[tuple[str | None, str | None]]:
    """Name ranges for ``workers`` processes to take in turn, made of the parts that
    ``bounds`` cut (``EventStore.split_streams``): each range takes a ``2 * workers``-th of
    the parts still left, at least one and at most ``most``.

    Ranges of equal size end with one worker folding the last range alone while the others
    wait: on average half a range of one core's time. Shrinking ranges end with ranges of
    one part, whatever the size of the first ones."""
    edges: list[str | None] = [None, *bounds, None]
    parts = len(edges) - 1
    ranges: list[tuple[str | None, str | None]] = []
    taken = 0
    while taken < parts:
        share = -(-(parts - taken) // (2 * workers))  # rounded up
        step = min(most, share)
        ranges.append((edges[taken], edges[taken + step]))
        taken += step
    return ranges
