"""Telling the source system about milestones, signed the Standard Webhooks way.

A POST per milestone (created, sent, synced, failed, voided) to ``SPOTSYNC_SINK_URL``
with a JSON body ``{"type": "contract.<milestone>", "timestamp": <when the milestone was
reached, ISO 8601>, "data": <projection>}`` (the same bytes on every attempt)
and the headers ``webhook-id`` (the same on every attempt, so the receiver can dedupe),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``). A secret written
``whsec_<base64>`` is base64-decoded first, as the Standard Webhooks libraries do.

Attempts are retried with capped exponential backoff until a 2xx; ``on_attempt`` is
called for every attempt so the caller records it as an event. A sink that is down for
a deploy or a night is waited for: the pauses double from half a second up to an hour,
and the delivery gives up only once the next attempt would start more than
``give_up_after`` (a day) after the first, about 30 attempts in all (or after
``max_attempts``, when given). The caller then parks it for an operator's retry. A
delivery that gets through cuts every other one's wait short: the sink is back. A
delivery taken up again after a restart goes on from its earlier attempts (``Resumed``):
their count, and the day that began at the first of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import httpx
import orjson

from eventstore.envelope import format_timestamp, utcnow

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True, slots=True)
class SinkAttempt:
    """One POST to the sink: its number, the HTTP status if any, and what went wrong."""

    attempt: int
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Resumed:
    """The attempts a delivery made before it was taken up again (by a restarted daemon)."""

    attempts: int
    first_at: datetime  # when the first of them was made


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64 part of a ``whsec_`` secret, else the secret's bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: use it as written
    return secret.encode("utf-8")


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class Sink:
    """Deliveries to one sink url. Owns an ``httpx.AsyncClient`` unless given one."""

    def __init__(
        self,
        url: str,
        secret: str | None,
        *,
        http: httpx.AsyncClient | None = None,
        max_attempts: int | None = None,
        base_delay: float = 0.5,
        max_delay: float = 3600.0,
        give_up_after: float = 24 * 3600.0,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self._secret = secret
        self._http = http or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._owns_http = http is None
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.give_up_after = give_up_after
        self._back = anyio.Event()  # set when a delivery gets through, then replaced

    def __repr__(self) -> str:
        return f"Sink(url={self.url!r})"

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Sink:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def headers(self, webhook_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
        }
        if self._secret:
            headers["webhook-signature"] = sign(self._secret, webhook_id, stamp, body)
        return headers

    async def deliver(
        self,
        webhook_id: str,
        milestone: str,
        data: Mapping[str, Any],
        on_attempt: Callable[[SinkAttempt], Awaitable[None]],
        *,
        occurred_at: str | None = None,
        resumed: Resumed | None = None,
    ) -> bool:
        """POST until a 2xx, or until the attempts run out (``max_attempts``, or the next
        one due past ``give_up_after``); True when delivered.

        ``occurred_at``: when the milestone was reached (ISO 8601; default now), the
        body's ``timestamp`` as Standard Webhooks has it; ``webhook-timestamp`` is the
        time of each attempt. ``resumed``: the attempts made before a restart, counted
        on from (the first one made now is tried at once: the sink may be back).
        """
        stamp = occurred_at or format_timestamp(utcnow())
        body = orjson.dumps({"type": f"contract.{milestone}", "timestamp": stamp, "data": data})
        started = anyio.current_time()
        attempt = 0
        if resumed is not None:
            attempt = resumed.attempts
            started -= max(0.0, (utcnow() - resumed.first_at).total_seconds())
        while True:
            attempt += 1
            result = await self._post(attempt, webhook_id, body)
            await on_attempt(result)
            if result.ok:
                self._back.set()
                self._back = anyio.Event()
                return True
            if self.max_attempts is not None and attempt >= self.max_attempts:
                return False
            delay = self._delay(attempt)
            if anyio.current_time() + delay - started > self.give_up_after:
                return False
            with anyio.move_on_after(delay):
                await self._back.wait()

    async def _post(self, attempt: int, webhook_id: str, body: bytes) -> SinkAttempt:
        try:
            response = await self._http.post(
                self.url, content=body, headers=self.headers(webhook_id, body)
            )
        except httpx.HTTPError as exc:
            return SinkAttempt(attempt, None, f"{type(exc).__name__}: {exc}"[:500])
        if response.is_success:
            return SinkAttempt(attempt, response.status_code, None)
        return SinkAttempt(
            attempt, response.status_code, f"the sink answered {response.status_code}"
        )

    def _delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security
