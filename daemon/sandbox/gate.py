"""What every SpotDraft API call passes around its handler: auth, the rate limit, faults.

SpotDraft (a Django REST framework service) authenticates first and throttles
second, so a request with bad credentials is a 401 and does not spend a token.
Bodies use DRF's own wording where SpotDraft's description shows none.

The two API faults fail on either side of the work: an ``api_error_rate`` 5xx is
answered before the handler runs (nothing is done), while an ``api_timeout_rate``
timeout lets the handler run and then loses its answer (the work is done, the client
waits past its timeout for a 504), as a gateway timeout often means in real life.
"""

from __future__ import annotations

import hmac
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from daemon.sandbox.options import Faults, SandboxOptions
from daemon.sandbox.stats import Stats

Handler = Callable[[Request], Awaitable[Response]]

NOT_PROVIDED = "Authentication credentials were not provided."
# Not in the description: Django REST framework's AuthenticationFailed default text.
INCORRECT = "Incorrect authentication credentials."


def detail(status: int, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": text}, status_code=status, headers=headers)


def public_error(status: int, code: str, message: str) -> JSONResponse:
    """SpotDraft's public error object: ``{detail, status_code, code, message}``."""
    body = {"detail": message, "status_code": status, "code": code, "message": message}
    return JSONResponse(body, status_code=status)


def field_errors(errors: dict[str, Any]) -> JSONResponse:
    """A 400 keyed by field, as DRF serializers answer invalid input."""
    return JSONResponse(errors, status_code=400)


class TokenBucket:
    """``rate`` requests a second, at most ``rate`` at once (a 1-second bucket)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.reset(rate)

    def reset(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self._tokens = self.capacity
        self._at = self._clock()

    def take(self) -> float | None:
        """None if a token was taken, else the seconds until one is available."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate


class Gate:
    """Wraps API handlers; shared by every route of one sandbox."""

    def __init__(self, options: SandboxOptions, rng: random.Random, stats: Stats) -> None:
        self._options = options
        self._rng = rng
        self._stats = stats
        self.faults = options.faults
        self.bucket = TokenBucket(options.faults.rate_limit_rps)

    def set_faults(self, faults: Faults) -> None:
        if faults.rate_limit_rps != self.faults.rate_limit_rps:
            self.bucket.reset(faults.rate_limit_rps)
        self.faults = faults

    def wrap(self, endpoint: str, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            response = await self._check(request)
            if response is None:
                # Both fates are drawn as the request arrives, so a seed decides them alike.
                failure, times_out = self._fate()
                self._stats.in_flight += 1
                try:
                    await self._latency()
                    response = failure or await handler(request)
                finally:
                    self._stats.in_flight -= 1
                if failure is None and times_out:
                    return await self._lose_answer(endpoint)
            self._stats.record(endpoint, response.status_code)
            return response

        return guarded

    def _fate(self) -> tuple[Response | None, bool]:
        """The 5xx this request fails with before any work, or whether its answer is lost."""
        faults = self.faults
        if faults.api_error_rate and self._rng.random() < faults.api_error_rate:
            return detail(self._rng.choice((500, 502, 503)), "Upstream error"), False
        return None, bool(faults.api_timeout_rate
                          and self._rng.random() < faults.api_timeout_rate)

    async def _latency(self) -> None:
        low, high = self.faults.latency_ms
        if high:
            await anyio.sleep(self._rng.uniform(low, high) / 1000)

    async def _lose_answer(self, endpoint: str) -> Response:
        """The work is done; its answer comes after the client has given up waiting."""
        # Counted now, while it hangs, and not "in flight": the client has stopped waiting.
        self._stats.record(endpoint, 504)
        await anyio.sleep(self._options.timeout_hang_s)
        return detail(504, "Upstream timeout")

    async def _check(self, request: Request) -> Response | None:
        client_id = request.headers.get("client-id")
        secret = request.headers.get("client-secret")
        if not client_id or not secret:
            return detail(401, NOT_PROVIDED)
        id_ok = hmac.compare_digest(client_id.encode(), self._options.client_id.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self._options.client_secret.encode())
        if not (id_ok and secret_ok):
            return detail(401, INCORRECT)
        wait = self.bucket.take()
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            return detail(429, f"Request was throttled. Expected available in {seconds} "
                          f"second{'s' if seconds > 1 else ''}.",
                          headers={"Retry-After": str(seconds)})
        return None
