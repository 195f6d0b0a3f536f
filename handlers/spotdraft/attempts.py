"""One SpotDraft call as a series of attempts: pacing, retries, and the exchanges to record.

Every attempt first takes a slot of the shared :class:`RateBudget` (downloads may skip
it), then is sorted: 2xx returns; 429, 5xx and transport failures are retried after a
backoff (or the server's Retry-After); anything else becomes the permanent error that
says what to fix. A non-idempotent call (create, send) is never retried once SpotDraft
may have acted on it: that is an :class:`OutcomeUnknownError` for the caller to resolve.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import structlog

from handlers.spotdraft.errors import (
    ConfigurationError,
    OutcomeUnknownError,
    PermanentError,
    StorageError,
    TransientError,
    permanent_error_for,
)
from handlers.spotdraft.exchange import MAX_TEXT_BODY, Exchange, cut, recordable
from handlers.spotdraft.pacing import Clock, RateBudget, Sleep
from handlers.spotdraft.retry import RetryPolicy, parse_retry_after

log = structlog.get_logger("spotsync.spotdraft")

# Transport failures after which the request certainly never reached SpotDraft.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer, read: status, headers, the parsed body, and what an exchange keeps of it."""

    status: int
    headers: httpx.Headers
    body: Any  # parsed JSON, text, or None; the full body, for the caller
    recorded: Any  # what the exchange keeps of it
    value: Any = None  # a downloaded file, for the download call


class Attempts:
    """Runs a call's attempts against one base url, budget and retry policy."""

    def __init__(
        self,
        base_url: str,
        budget: RateBudget,
        retry: RetryPolicy,
        *,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        self._base_url = base_url
        self._on_exchange = on_exchange
        self._budget = budget
        self._retry = retry
        self._sleep = sleep or anyio.sleep
        self._clock = clock or anyio.current_time

    async def run(
        self,
        operation: str,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        send: Callable[[], Awaitable[Reply]],
        *,
        idempotent: bool,
        paced: bool,
    ) -> tuple[Reply, tuple[Exchange, ...]]:
        """Run ``send`` until it succeeds, fails permanently, or attempts run out."""
        exchanges = _Exchanges(self._on_exchange)
        recorded_body = recordable(body) if body is not None else None
        # What every attempt's exchange shares; each adds its outcome.
        exchange = functools.partial(Exchange, operation, method, path, recorded_body)
        url = f"{self._base_url}{path}" if path.startswith("/api/") else path
        max_attempts = self._retry.max_attempts
        for attempt in range(1, max_attempts + 1):
            if paced:
                await self._budget.acquire()
            started = self._clock()
            try:
                reply = await send()
            except (PermanentError, StorageError) as exc:
                # Raised while storing a download (too large, or no room for it): recorded
                # with the attempt, and not tried again now.
                exchanges.append(exchange(None, None, self._ms_since(started), attempt, str(exc)))
                exc.exchanges = tuple(exchanges)
                raise
            except httpx.TransportError as exc:
                error = describe(exc)
                exchanges.append(exchange(None, None, self._ms_since(started), attempt, error))
                if isinstance(exc, httpx.UnsupportedProtocol):
                    raise ConfigurationError(
                        f"cannot reach {url}: {error}; check SPOTDRAFT_BASE_URL",
                        exchanges=tuple(exchanges),
                    ) from exc
                if not idempotent and not isinstance(exc, _NOT_SENT):
                    raise OutcomeUnknownError(
                        f"{operation}: {error} after the request was sent; SpotDraft may have "
                        "carried it out, so look the contract up before calling again",
                        exchanges=tuple(exchanges),
                    ) from exc
                if attempt == max_attempts:
                    raise TransientError(
                        f"{operation}: {error} on all {attempt} attempts to reach {url}",
                        exchanges=tuple(exchanges),
                    ) from exc
                await self._pause(operation, path, attempt, error, None)
                continue

            retry_after = (
                parse_retry_after(reply.headers.get("retry-after"))
                if reply.status == 429 or reply.status >= 500
                else None
            )
            elapsed = self._ms_since(started)
            exchanges.append(
                exchange(reply.status, reply.recorded, elapsed, attempt, None, retry_after)
            )
            if 200 <= reply.status < 300:
                return reply, tuple(exchanges)
            if reply.status == 429:
                if paced:
                    self._budget.throttle(retry_after)
            elif reply.status >= 500:
                if not idempotent:
                    raise OutcomeUnknownError(
                        f"{operation}: SpotDraft answered {reply.status}; it may still have "
                        "carried the request out, so look the contract up before calling again",
                        exchanges=tuple(exchanges),
                        status=reply.status,
                        retry_after=retry_after,
                    )
            else:
                raise permanent_error_for(
                    operation=operation,
                    method=method,
                    url=url,
                    status=reply.status,
                    body=reply.body,
                    location=reply.headers.get("location"),
                    exchanges=tuple(exchanges),
                )
            status_text = f"status {reply.status}"
            if retry_after is not None and retry_after > self._retry.max_retry_after:
                raise TransientError(
                    f"{operation}: SpotDraft asked to wait {retry_after:.0f}s ({status_text}), "
                    f"longer than the {self._retry.max_retry_after:.0f}s spotsync waits in line",
                    exchanges=tuple(exchanges),
                    status=reply.status,
                    retry_after=retry_after,
                )
            if attempt == max_attempts:
                raise TransientError(
                    f"{operation}: SpotDraft answered {status_text} on all {attempt} attempts",
                    exchanges=tuple(exchanges),
                    status=reply.status,
                    retry_after=retry_after,
                )
            await self._pause(operation, path, attempt, status_text, retry_after)
        raise AssertionError("unreachable")  # pragma: no cover

    def _ms_since(self, started: float) -> float:
        return (self._clock() - started) * 1000

    async def _pause(
        self, operation: str, path: str, attempt: int, why: str, retry_after: float | None
    ) -> None:
        delay = self._retry.delay(attempt, retry_after)
        # Throttling is routine under load; failures of SpotDraft itself are worth a warning.
        emit = log.info if why == "status 429" else log.warning
        emit(
            "spotdraft.retry",
            operation=operation,
            path=path,
            attempt=attempt,
            reason=why,
            delay_s=round(delay, 3),
        )
        await self._sleep(delay)


def read_reply(response: httpx.Response) -> Reply:
    """Parse a read response: JSON when it is JSON, else its text, else None."""
    content = response.content
    if not content.strip():
        return Reply(response.status_code, response.headers, None, None)
    try:
        body: Any = response.json()
    except ValueError:
        text = response.text
        return Reply(response.status_code, response.headers, text, cut(text, MAX_TEXT_BODY))
    return Reply(response.status_code, response.headers, body, recordable(body))


def describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, httpx.PoolTimeout):
        return "pool timeout"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect error"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "unsupported protocol"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol error (connection closed mid-answer)"
    return "network error"


class _Exchanges(list[Exchange]):
    """A call's exchanges, each also shown to the observer (metrics) as it happens."""

    def __init__(self, observer: Callable[[Exchange], None] | None) -> None:
        super().__init__()
        self._observer = observer

    def append(self, exchange: Exchange) -> None:
        super().append(exchange)
        if self._observer is not None:
            self._observer(exchange)
