"""Retries: which failures are retried, how long the client waits, and when it stops."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from handlers.spotdraft import (
    OutcomeUnknownError,
    PermanentError,
    RateBudget,
    RetryPolicy,
    SpotDraftClient,
    SpotDraftCredentials,
    TransientError,
)
from handlers.spotdraft.retry import parse_retry_after

STATUS = {"contract_status": "SIGN", "contract_name": "MSA"}
Step = Callable[[httpx.Request], httpx.Response]


class Script:
    """A fake SpotDraft that answers each request with the next step of a script."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.steps.pop(0)(request)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def status(code: int, body: Any = None, **headers: str) -> Step:
    return lambda request: httpx.Response(code, json=body, headers=headers)


def fail(exc_type: type[httpx.TransportError]) -> Step:
    def raise_(request: httpx.Request) -> httpx.Response:
        raise exc_type("simulated", request=request)

    return raise_


def client_for(script: Script, **kwargs: Any) -> SpotDraftClient:
    retry = kwargs.pop("retry", RetryPolicy(max_attempts=5, rng=random.Random(7)))
    return SpotDraftClient(
        SpotDraftCredentials("https://api.us.spotdraft.com", "id", "secret"),
        budget=kwargs.pop("budget", RateBudget.unlimited(clock=script.clock, sleep=script.sleep)),
        transport=httpx.MockTransport(script),
        retry=retry,
        sleep=kwargs.pop("sleep", script.sleep),
        **kwargs,
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    "first",
    [
        status(500),
        status(502),
        status(503),
        status(504),
        status(429),
        fail(httpx.ReadTimeout),
        fail(httpx.ConnectTimeout),
        fail(httpx.ConnectError),
        fail(httpx.RemoteProtocolError),
    ],
    ids=["500", "502", "503", "504", "429", "read-timeout", "connect-timeout", "refused", "eof"],
)
async def test_transient_failures_of_a_read_are_retried(first: Step) -> None:
    """5xx, 429, timeouts and connection errors are retried until the call succeeds."""
    script = Script(first, first, status(200, STATUS))
    async with client_for(script) as client:
        result = await client.get_status("T-1")
    assert result.value == STATUS
    assert [exchange.attempt for exchange in result.exchanges] == [1, 2, 3]
    assert result.exchanges[-1].status == 200
    assert len(script.requests) == 3
    assert script.sleeps  # it waited before retrying


@pytest.mark.anyio
async def test_timeouts_are_recorded_as_exchanges_without_a_status() -> None:
    """A timed-out attempt is an exchange with status None and error "timeout"."""
    script = Script(fail(httpx.ReadTimeout), fail(httpx.ConnectError), status(200, STATUS))
    async with client_for(script) as client:
        result = await client.get_status("T-1")
    first, second, _ = result.exchanges
    assert (first.status, first.error) == (None, "timeout")
    assert (second.status, second.error) == (None, "connect error")


@pytest.mark.anyio
async def test_backoff_is_exponential_with_full_jitter() -> None:
    """Each wait is drawn from [0, base * 2**(attempt-1)], capped."""
    script = Script(*[status(503)] * 5)
    policy = RetryPolicy(max_attempts=5, base=1.0, cap=5.0, rng=random.Random(1))
    async with client_for(script, retry=policy) as client:
        with pytest.raises(TransientError):
            await client.get_status("T-1")
    ceilings = [1.0, 2.0, 4.0, 5.0]
    assert len(script.sleeps) == 4
    for wait, ceiling in zip(script.sleeps, ceilings, strict=True):
        assert 0 <= wait <= ceiling
    replay = random.Random(1)
    assert script.sleeps == [replay.uniform(0, c) for c in ceilings]


@pytest.mark.anyio
async def test_retry_after_is_honoured() -> None:
    """A 429's Retry-After is the wait before the next attempt, and is recorded."""
    script = Script(
        status(429, {"detail": "slow down"}, **{"retry-after": "3"}), status(200, STATUS)
    )
    async with client_for(script) as client:
        result = await client.get_status("T-1")
    assert script.sleeps[0] == 3.0
    assert result.exchanges[0].retry_after == 3.0


@pytest.mark.anyio
async def test_a_429_slows_the_shared_budget() -> None:
    """A 429 holds the shared budget for Retry-After, so other callers wait too."""
    now = [0.0]

    async def fake_sleep(seconds: float) -> None:
        now[0] += seconds
        await anyio.lowlevel.checkpoint()

    budget = RateBudget(10.0, clock=lambda: now[0], sleep=fake_sleep)
    script = Script(status(429, None, **{"retry-after": "2"}), status(200, STATUS))
    async with client_for(script, budget=budget) as client:
        await client.get_status("T-1")
    assert budget.stats().throttled == 1
    assert budget.effective_rate(now[0]) < 10.0
    assert budget.stats().calls == 2


@pytest.mark.anyio
async def test_attempts_are_bounded_and_end_in_a_transient_error() -> None:
    """After max_attempts transient failures, TransientError carries every exchange."""
    script = Script(*[status(503, {"detail": "busy"})] * 3)
    async with client_for(script, retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(TransientError) as caught:
            await client.get_status("T-1")
    assert len(script.requests) == 3
    assert [exchange.status for exchange in caught.value.exchanges] == [503, 503, 503]
    assert "3 attempts" in str(caught.value)


@pytest.mark.anyio
async def test_a_retry_after_beyond_the_limit_gives_up_at_once() -> None:
    """A Retry-After longer than max_retry_after ends the call, keeping the wait asked."""
    script = Script(status(429, None, **{"retry-after": "3600"}))
    policy = RetryPolicy(max_attempts=5, max_retry_after=60)
    async with client_for(script, retry=policy) as client:
        with pytest.raises(TransientError) as caught:
            await client.get_status("T-1")
    assert caught.value.retry_after == 3600
    assert script.sleeps == []


@pytest.mark.anyio
async def test_a_400_after_a_503_stops_retrying() -> None:
    """A permanent answer on a later attempt ends the call, with both exchanges."""
    script = Script(status(503), status(404, {"detail": "Not found."}))
    async with client_for(script) as client:
        with pytest.raises(PermanentError) as caught:
            await client.get_status("T-1")
    assert [exchange.status for exchange in caught.value.exchanges] == [503, 404]


@pytest.mark.anyio
@pytest.mark.parametrize("first", [status(500), fail(httpx.ReadTimeout)], ids=["500", "timeout"])
async def test_create_is_not_retried_when_its_outcome_is_unknown(first: Step) -> None:
    """A create that timed out or got a 5xx may exist: OutcomeUnknownError, one attempt."""
    script = Script(first, status(201, {"id": "T-1"}))
    async with client_for(script) as client:
        with pytest.raises(OutcomeUnknownError, match="look the contract up"):
            await client.create_contract({"contract_template_id": 1})
    assert len(script.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("first", [status(429), fail(httpx.ConnectError)], ids=["429", "refused"])
async def test_create_is_retried_when_it_surely_did_not_happen(first: Step) -> None:
    """A 429 or a refused connection means nothing was created, so create is retried."""
    script = Script(first, status(201, {"id": "T-1", "contract_id": 1}))
    async with client_for(script) as client:
        result = await client.create_contract({"contract_template_id": 1})
    assert result.value["id"] == "T-1"
    assert len(script.requests) == 2


@pytest.mark.anyio
async def test_send_is_not_retried_after_a_timeout() -> None:
    """send_to_counterparties is not idempotent either: a timeout is an unknown outcome."""
    script = Script(fail(httpx.ReadTimeout), status(200))
    async with client_for(script) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.send_to_counterparties("T-1")
    assert len(script.requests) == 1


@pytest.mark.anyio
async def test_cancellation_during_a_backoff_wait_stops_the_call() -> None:
    """Cancelling the caller while it waits to retry ends the call; no further attempt."""
    script = Script(status(503), status(200, STATUS))
    with anyio.CancelScope() as scope:

        async def cancelled_sleep(seconds: float) -> None:
            scope.cancel()
            await anyio.sleep_forever()

        async with client_for(script, sleep=cancelled_sleep) as client:
            await client.get_status("T-1")
    assert scope.cancelled_caught
    assert len(script.requests) == 1


def test_retry_after_parses_seconds_and_http_dates() -> None:
    """Retry-After as delta-seconds or an HTTP date becomes seconds; junk is ignored."""
    from datetime import UTC, datetime

    now = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Tue, 24 Nov 2026 10:00:07 GMT", now=now) == 7.0
    assert parse_retry_after("Tue, 24 Nov 2026 09:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-3") == 0.0
