"""Waiting out a store that cannot be reached (a database restart, a network cut).

A long-running reader of the log (a subscription, the read models' runner, the claim
on the store) does not end when the database goes away for a while: it is told of the
outage (``OnOutage``, to log it), waits, and tries again from where it was, the waits
doubling up to a cap. Readiness (``/readyz``) says meanwhile that the store is away.
"""

from __future__ import annotations

from collections.abc import Callable

from eventstore.errors import PersistenceError

# The first wait after a failed try, doubling up to the cap while the store stays away.
FIRST_DELAY = 0.5
MAX_DELAY = 15.0

# (what failed, seconds until the next try): called before each wait.
OnOutage = Callable[[PersistenceError, float], None]


def store_outage(exc: BaseException) -> PersistenceError | None:
    """The ``PersistenceError`` that ``exc`` is, or that every exception in the group
    ``exc`` is (stages of one pipeline that failed together); None for anything else."""
    if isinstance(exc, PersistenceError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        outages = [store_outage(inner) for inner in exc.exceptions]
        if outages and all(outages):
            return outages[0]
    return None


class Backoff:
    """The waits between tries: ``FIRST_DELAY``, doubling up to ``MAX_DELAY``; a try that
    got through starts them over (``reset``)."""

    def __init__(self, first: float | None = None, cap: float | None = None) -> None:
        self.first = FIRST_DELAY if first is None else first
        self.cap = MAX_DELAY if cap is None else cap
        self._next = self.first

    def next(self) -> float:
        delay = self._next
        self._next = min(delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first
