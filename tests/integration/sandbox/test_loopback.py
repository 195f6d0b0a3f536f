"""The sandbox over real loopback HTTP: rate limit, seeded faults, lifecycle, webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from daemon.sandbox import Faults, Sandbox, SandboxOptions
from daemon.serving import serving
from tests.unit.sandbox.support import API, HEADERS, acme

pytestmark = pytest.mark.anyio


class Receiver:
    """A webhook endpoint on loopback that answers a scripted list of statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[bytes] = []
        self.signatures: list[str] = []
        self._arrived = anyio.Event()

    async def hook(self, request: Request) -> Response:
        self.bodies.append(await request.body())
        self.signatures.append(request.headers["x-sd-webhook-content-hash"])
        self._arrived.set()
        self._arrived = anyio.Event()
        return Response(status_code=self.statuses.pop(0) if self.statuses else 200)

    @property
    def activities(self) -> list[str]:
        return [json.loads(body)["activity"] for body in self.bodies]

    async def wait_for(self, count: int, within: float = 5.0) -> None:
        with anyio.fail_after(within):
            while len(self.bodies) < count:
                await self._arrived.wait()


@asynccontextmanager
async def running(
    receiver: Receiver | None = None, **values: object
) -> AsyncIterator[tuple[Sandbox, httpx.AsyncClient]]:
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])] if receiver else [])
    async with serving(app) as hook_url:
        options = SandboxOptions(webhook_url=f"{hook_url}/hook" if receiver else None,
                                 webhook_retry_delays=(0.05, 0.05, 0.05), **values)  # type: ignore[arg-type]
        async with (
            Sandbox.serve(options) as sandbox,
            httpx.AsyncClient(base_url=sandbox.url or "", headers=HEADERS,
                              timeout=5.0) as client,
        ):
            yield sandbox, client


async def test_bursts_beyond_ten_per_second_get_429_with_retry_after() -> None:
    """Twenty concurrent calls: ten pass (plus what refilled meanwhile), the rest are 429."""
    responses: list[httpx.Response] = []
    async with running() as (_, client):

        async def call() -> None:
            responses.append(await client.get(f"{API}/webhooks/hmac_key/"))

        started = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(call)
        elapsed = anyio.current_time() - started
    limited = [r for r in responses if r.status_code == 429]
    passed = sum(r.status_code == 200 for r in responses)
    assert 10 <= passed <= 10 + math.ceil(elapsed * 10)
    assert len(limited) == 20 - passed > 0
    assert all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    assert all(r.json()["detail"].startswith("Request was throttled") for r in limited)


async def _statuses(seed: int) -> list[int]:
    faults = Faults(api_error_rate=0.5, rate_limit_rps=1000)
    async with running(seed=seed, faults=faults) as (_, client):
        return [(await client.get(f"{API}/templates/1204/metadata")).status_code
                for _ in range(12)]


async def test_faults_repeat_exactly_under_the_same_seed() -> None:
    """Two sandboxes with seed 3 fail the same calls; a different seed fails others."""
    first, second, other = await _statuses(3), await _statuses(3), await _statuses(4)
    assert first == second
    assert 200 in first
    assert any(status >= 500 for status in first)
    assert other != first


async def test_lifecycle_by_advance_with_signed_webhooks() -> None:
    """Create, send and two advances over HTTP; each webhook carries a valid signature."""
    receiver = Receiver()
    async with running(receiver) as (sandbox, client):
        created = await client.post(f"{API}/contracts/", json=acme())
        cid = created.json()["id"]
        await client.post(f"{API}/contracts/{cid}/send_to_counterparties", json={})
        for _ in range(2):
            advanced = await client.post(f"/_sandbox/contracts/{cid}/advance")
        await receiver.wait_for(6)
        key = base64.b64decode(sandbox.options.hmac_key)
    assert advanced.json() == {"id": cid, "contract_status": "EXECUTED"}
    assert receiver.activities[-1] == "CONTRACT_EXECUTED"
    for body, signature in zip(receiver.bodies, receiver.signatures, strict=True):
        assert hmac.new(key, body, hashlib.sha512).hexdigest() == signature


async def test_auto_sign_executes_after_send() -> None:
    """With auto_sign 0.2 s a sent contract reaches EXECUTED without any command."""
    receiver = Receiver()
    async with running(receiver, auto_sign=0.2) as (sandbox, client):
        created = await client.post(f"{API}/contracts/", json=acme())
        cid = created.json()["id"]
        await client.post(f"{API}/contracts/{cid}/send_to_counterparties", json={})
        with anyio.fail_after(5):
            await sandbox.wait_until(lambda: sandbox.contracts()[0]["contract_status"]
                                     == "EXECUTED")
        status = await client.get(f"{API}/contracts/{cid}/status")
        await receiver.wait_for(6)
    assert status.json()["contract_status"] == "EXECUTED"
    assert receiver.activities[2:] == ["CONTRACT_SIGNATURE_REQUESTED", "CONTRACT_SIGNED",
                                       "CONTRACT_SIGNED", "CONTRACT_EXECUTED"]


async def test_auto_sign_leaves_drafts_alone() -> None:
    """Auto-sign starts at send: a draft that is never sent stays DRAFT."""
    async with running(auto_sign=0.0) as (sandbox, client):
        await client.post(f"{API}/contracts/", json=acme())
        await anyio.lowlevel.checkpoint()
        status = await client.get(f"{API}/contracts/T-1/status")
    assert status.json()["contract_status"] == "DRAFT"
    assert sandbox.contracts()[0]["activities"] == ["CONTRACT_CREATED"]


async def test_webhook_is_retried_after_a_500() -> None:
    """The receiver's 500 is followed by the same signed body until it answers 200."""
    receiver = Receiver(statuses=[500])
    async with running(receiver) as (_, client):
        await client.post(f"{API}/contracts/", json=acme())
        await receiver.wait_for(2)
    assert receiver.bodies[0] == receiver.bodies[1]
    assert receiver.signatures[0] == receiver.signatures[1]


async def test_slash_mismatch_is_302_over_http() -> None:
    """A missing trailing slash is 302 with Location, and is not followed by default."""
    async with running() as (_, client):
        response = await client.get(f"{API}/webhooks/hmac_key")
    assert response.status_code == 302
    assert response.headers["location"] == f"{API}/webhooks/hmac_key/"


async def test_timeout_fault_does_the_work_and_outlasts_the_client() -> None:
    """api_timeout_rate 1 hangs past a 0.2 s client timeout, yet the contract was created."""
    faults = Faults(api_timeout_rate=1.0)
    async with running(faults=faults, timeout_hang_s=1.0) as (sandbox, client):
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{API}/contracts/", json=acme(), timeout=0.2)
        assert [c["external_metadata"]["id"] for c in sandbox.contracts()] == [
            acme()["external_metadata"]["id"]]


async def test_create_delay_commits_before_the_answer() -> None:
    """With create_delay_ms the client times out, yet the lookup finds the contract."""
    async with running(faults=Faults(create_delay_ms=1000)) as (sandbox, client):
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{API}/contracts/", json=acme(), timeout=0.2)
        sandbox.set_faults(Faults())
        found = await client.get(f"{API}/contracts/by_external_metadata/hubspot-deal-10024")
    assert [c["id"] for c in found.json()] == [1]
