"""The shared request budget: slot spacing, sharing, 429 slow-down and recovery, on fake time."""

from __future__ import annotations

import itertools
import math

import anyio
import pytest

from handlers.spotdraft import RateBudget


class FakeTime:
    """A clock that only moves when a sleep asks it to (or a test does)."""

    def __init__(self, *, advance: bool = True) -> None:
        self.now = 0.0
        self.advance = advance
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance:
            self.now += seconds
        await anyio.lowlevel.checkpoint()


def most_in_any_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of ``times`` inside any half-open window of ``window`` seconds."""
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + window - 1e-12) for start in times)


@pytest.mark.anyio
async def test_slots_are_evenly_spaced_below_the_rate() -> None:
    """Sequential calls leave 1/(rate*headroom) apart, so no second holds more than rate."""
    time = FakeTime()
    budget = RateBudget(10.0, clock=time.clock, sleep=time.sleep)
    starts = []
    for _ in range(50):
        await budget.acquire()
        starts.append(time.now)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(starts)}
    assert gaps == {round(1 / (10 * budget.headroom), 9)}
    assert most_in_any_window(starts) <= 10


@pytest.mark.anyio
async def test_concurrent_callers_get_distinct_slots() -> None:
    """100 callers arriving at once are handed 100 different, evenly spaced slots."""
    time = FakeTime(advance=False)
    budget = RateBudget(10.0, headroom=1.0, clock=time.clock, sleep=time.sleep)
    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(budget.acquire)
    waits = sorted([0.0, *time.sleeps])
    assert len(waits) == 100
    assert waits == pytest.approx([i * 0.1 for i in range(100)])
    assert most_in_any_window(waits) == 10
    assert budget.stats().calls == 100


@pytest.mark.anyio
async def test_two_clients_sharing_a_budget_share_its_rate() -> None:
    """The budget, not the caller, owns the rate: interleaved users still get one spacing."""
    time = FakeTime()
    budget = RateBudget(5.0, headroom=1.0, clock=time.clock, sleep=time.sleep)
    starts = []
    for _ in range(10):
        await budget.acquire()  # "client A"
        starts.append(time.now)
        await budget.acquire()  # "client B"
        starts.append(time.now)
    assert starts[-1] == pytest.approx(19 * 0.2)
    assert most_in_any_window(starts) <= 5


@pytest.mark.anyio
async def test_a_429_holds_every_caller_until_retry_after() -> None:
    """After throttle(3), the next slot is no earlier than three seconds later."""
    time = FakeTime()
    budget = RateBudget(10.0, clock=time.clock, sleep=time.sleep)
    await budget.acquire()
    budget.throttle(3.0)
    await budget.acquire()
    assert time.now >= 3.0
    assert budget.stats().throttled == 1


@pytest.mark.anyio
async def test_a_429_halves_the_rate_then_it_recovers() -> None:
    """The rate halves at a 429 and climbs back to the configured rate over `recovery`."""
    time = FakeTime()
    budget = RateBudget(10.0, recovery=10.0, clock=time.clock, sleep=time.sleep)
    budget.throttle(1.0)
    assert budget.effective_rate(1.0) == pytest.approx(5.0)
    assert budget.effective_rate(6.0) == pytest.approx(7.5)
    assert budget.effective_rate(11.0) == pytest.approx(10.0)
    assert budget.effective_rate(50.0) == 10.0


@pytest.mark.anyio
async def test_repeated_429s_do_not_stop_the_budget() -> None:
    """Each 429 halves again, but never below min_fraction of the rate."""
    time = FakeTime()
    budget = RateBudget(10.0, min_fraction=0.1, clock=time.clock, sleep=time.sleep)
    for _ in range(10):
        budget.throttle(0.0)
    assert budget.effective_rate(0.0) == pytest.approx(1.0)


@pytest.mark.anyio
async def test_a_caller_already_waiting_queues_again_behind_a_429() -> None:
    """A slot reserved before a 429 does not fire inside the Retry-After pause."""
    time = FakeTime()
    budget = RateBudget(1.0, headroom=1.0, clock=time.clock, sleep=time.sleep)
    await budget.acquire()  # slot at 0; the next one is at 1.0

    async def throttle_midway(seconds: float) -> None:
        time.sleeps.append(seconds)
        if len(time.sleeps) == 1:
            budget.throttle(5.0)  # arrives while the caller waits for its slot
        time.now += seconds
        await anyio.lowlevel.checkpoint()

    budget._sleep = throttle_midway
    await budget.acquire()
    assert time.now >= 5.0
    assert time.sleeps[0] == pytest.approx(1.0)


@pytest.mark.anyio
async def test_unlimited_budget_does_not_wait_but_counts() -> None:
    """With pacing off, calls never wait, yet utilisation is still counted."""
    time = FakeTime()
    budget = RateBudget.unlimited(clock=time.clock, sleep=time.sleep)
    for _ in range(1000):
        await budget.acquire()
    assert time.now == 0.0
    assert budget.stats().calls == 1000
    assert math.isinf(budget.stats().effective_rate)


def test_rate_must_be_positive() -> None:
    """A zero or negative rate is refused at construction."""
    with pytest.raises(ValueError, match="rate"):
        RateBudget(0)
