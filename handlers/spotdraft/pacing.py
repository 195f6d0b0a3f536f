"""One request budget shared by every SpotDraft call spotsync makes.

SpotDraft allows 10 requests per second per workspace. A token bucket with a burst
would let N calls leave at once and trip a strict one-second window on the server, so
the budget hands out evenly spaced *slots* instead: a call waits for its slot, and
slots are ``1 / (rate * headroom)`` seconds apart. With the default headroom of 0.98 a
budget of 10/s spends at most 9.8/s: eleven calls span at least 1.02 s, and the 1-second
token bucket SpotDraft's limit is taken to be (NOTES.md) absorbs the jitter of a late
slot with its burst. The 2 % left over is the price of never tripping the limit; a
bigger margin would idle budget that the flow benchmark shows is worth spending.

A 429 means someone (another spotsync, another integration on the workspace) spent the
budget: every caller is held until ``Retry-After`` has passed, and the rate is halved,
recovering linearly to the configured rate over ``recovery`` seconds.

Reservation is synchronous (no await between reading and moving the next slot), so
concurrent tasks on one event loop can never take the same slot.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class BudgetStats:
    """Utilisation so far: slots handed out, 429s reported, and total time callers waited."""

    calls: int
    throttled: int
    waited_s: float
    rate: float
    effective_rate: float


class RateBudget:
    """Evenly spaced request slots at ``rate`` per second, shared by every client given it.

    ``rate=math.inf`` turns pacing off (429s still hold callers until Retry-After).
    ``clock`` and ``sleep`` default to anyio's and exist so tests need not wait.
    """

    def __init__(
        self,
        rate: float = 10.0,
        *,
        headroom: float = 0.98,
        recovery: float = 10.0,
        min_fraction: float = 0.1,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if not rate > 0:
            raise ValueError("rate must be a positive number of requests per second")
        if not 0 < headroom <= 1:
            raise ValueError("headroom must be in (0, 1]")
        self.rate = rate
        self.headroom = headroom
        self.recovery = recovery
        self.min_fraction = min_fraction
        self._clock = clock or anyio.current_time
        self._sleep = sleep or anyio.sleep
        self._next_slot = -math.inf
        self._blocked_until = -math.inf
        self._reduced_rate: float | None = None
        self._recovery_from = 0.0
        self._calls = 0
        self._throttled = 0
        self._waited = 0.0

    @classmethod
    def unlimited(cls, *, clock: Clock | None = None, sleep: Sleep | None = None) -> RateBudget:
        """No pacing at all; only 429s hold callers (until their Retry-After passes)."""
        return cls(math.inf, clock=clock, sleep=sleep)

    def __repr__(self) -> str:
        return f"RateBudget(rate={self.rate}, calls={self._calls}, throttled={self._throttled})"

    def effective_rate(self, now: float | None = None) -> float:
        """The rate in force at ``now``: the configured one, or a reduced one after a 429."""
        if self._reduced_rate is None or math.isinf(self.rate):
            return self.rate
        now = self._clock() if now is None else now
        elapsed = max(0.0, now - self._recovery_from)
        rate = self._reduced_rate + (self.rate - self._reduced_rate) * elapsed / self.recovery
        if rate >= self.rate:
            self._reduced_rate = None
            return self.rate
        return rate

    def interval(self, now: float | None = None) -> float:
        """Seconds between two slots at the rate in force."""
        rate = self.effective_rate(now)
        return 0.0 if math.isinf(rate) else 1.0 / (rate * self.headroom)

    async def acquire(self) -> None:
        """Wait for this call's slot. Cancellation while waiting gives up the slot unused."""
        started = self._clock()
        while True:
            now = self._clock()
            if now < self._blocked_until:
                await self._sleep(self._blocked_until - now)
                continue
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval(now)
            if slot > now:
                await self._sleep(slot - now)
            if self._blocked_until <= slot:
                break
            # A 429 arrived while this call waited for its slot: queue again behind it.
        self._calls += 1
        self._waited += self._clock() - started

    def throttle(self, retry_after: float | None) -> None:
        """Report a 429: hold every caller until ``retry_after`` passes and halve the rate."""
        now = self._clock()
        pause = retry_after if retry_after is not None and retry_after > 0 else 1.0
        self._throttled += 1
        self._blocked_until = max(self._blocked_until, now + pause)
        self._next_slot = max(self._next_slot, self._blocked_until)
        if not math.isinf(self.rate):
            floor = self.rate * self.min_fraction
            self._reduced_rate = max(floor, self.effective_rate(now) / 2)
            self._recovery_from = self._blocked_until

    def stats(self) -> BudgetStats:
        return BudgetStats(
            calls=self._calls,
            throttled=self._throttled,
            waited_s=self._waited,
            rate=self.rate,
            effective_rate=self.effective_rate(),
        )
