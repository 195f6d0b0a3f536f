"""How a long fold deals a log's streams out to worker processes."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from projections.longruns import shrinking_ranges


@given(parts=st.integers(1, 400), workers=st.integers(1, 4), most=st.integers(1, 16))
def test_ranges_cover_every_part_once_and_shrink_to_single_parts(
    parts: int, workers: int, most: int
) -> None:
    bounds = [f"contract-{n:04d}" for n in range(1, parts)]
    index = {name: n for n, name in enumerate(bounds, start=1)}
    ranges = shrinking_ranges(bounds, workers, most)

    # Each range starts where the one before stopped: every stream is read once, in order.
    assert ranges[0][0] is None
    assert ranges[-1][1] is None
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    sizes = [
        (parts if stop is None else index[stop]) - (0 if start is None else index[start])
        for start, stop in ranges
    ]
    assert sum(sizes) == parts
    assert all(1 <= size <= most for size in sizes)
    assert sizes == sorted(sizes, reverse=True)
    # The last parts go one at a time, so no worker is left with a big range at the end.
    tail = min(parts, 2 * workers - 1)
    assert sizes[-tail:] == [1] * tail


def test_a_log_too_short_to_split_is_one_range() -> None:
    assert shrinking_ranges([], 2, 8) == [(None, None)]
