"""Faults through PUT /_sandbox/faults, the rate limit, and the control endpoints' stats."""

from __future__ import annotations

import httpx
import pytest

from daemon.sandbox import Faults, FaultsError, SandboxOptions
from tests.unit.sandbox.support import API, acme, check_response, create, sandbox_client

pytestmark = pytest.mark.anyio


async def test_put_faults_answers_the_whole_fault_set() -> None:
    """A partial PUT changes the fields given and keeps the rest."""
    async with sandbox_client() as (sandbox, client):
        response = await client.put("/_sandbox/faults", json={"latency_ms": [0, 1]})
        current = await client.get("/_sandbox/faults")
    assert response.status_code == 200
    assert current.json()["latency_ms"] == [0, 1]
    assert current.json()["rate_limit_rps"] == 10.0
    assert sandbox.faults.latency_ms == (0, 1)


@pytest.mark.parametrize(("body", "field"), [
    ({"api_error_rate": 2}, "api_error_rate"),
    ({"latency_ms": [5, 1]}, "latency_ms"),
    ({"latency_ms": "fast"}, "latency_ms"),
    ({"webhook_reorder": "yes"}, "webhook_reorder"),
    ({"rate_limit_rps": 0}, "rate_limit_rps"),
    ({"api_eror_rate": 0.1}, "api_eror_rate"),
])
async def test_invalid_faults_are_400_naming_the_field(body: object, field: str) -> None:
    """Each invalid fault answers 400 with the field named, and nothing changes."""
    async with sandbox_client() as (sandbox, client):
        response = await client.put("/_sandbox/faults", json=body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert field in response.json()["detail"]
    assert sandbox.faults == Faults()


def test_faults_from_json_rejects_non_objects() -> None:
    """A JSON list is not a fault set."""
    with pytest.raises(FaultsError, match="JSON object"):
        Faults.from_json([1, 2])


async def test_rate_limit_answers_429_with_retry_after() -> None:
    """The eleventh call within a second is 429 with Retry-After and a detail body."""
    async with sandbox_client() as (_, client):
        statuses = []
        for _ in range(12):
            response = await client.get(f"{API}/templates/1204/metadata")
            statuses.append(response.status_code)
        limited = response
        control = await client.get("/_sandbox/stats")
    assert statuses[:10] == [200] * 10
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    check_response("getTemplateMetadata", limited)
    assert control.status_code == 200
    assert control.json()["rate_limited"] == statuses.count(429) >= 2


async def test_rate_limit_follows_the_fault_setting() -> None:
    """With rate_limit_rps 2 the third call in a burst is limited."""
    options = SandboxOptions(faults=Faults(rate_limit_rps=2))
    async with sandbox_client(options) as (_, client):
        statuses = [(await client.get(f"{API}/webhooks/hmac_key/")).status_code
                    for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_control_endpoints_need_no_auth_and_do_not_count() -> None:
    """/_sandbox calls work without credentials and never spend rate-limit tokens."""
    options = SandboxOptions(faults=Faults(rate_limit_rps=1))
    async with sandbox_client(options) as (sandbox, client):
        transport = httpx.ASGITransport(app=sandbox.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s.test") as bare:
            statuses = [(await bare.get("/_sandbox/contracts")).status_code for _ in range(5)]
            unauthenticated = await bare.get(f"{API}/webhooks/hmac_key/")
        api = await client.get(f"{API}/webhooks/hmac_key/")
    assert statuses == [200] * 5
    assert unauthenticated.status_code == 401
    assert api.status_code == 200


async def test_error_rate_one_answers_5xx_and_changes_nothing() -> None:
    """With api_error_rate 1 every call is a 5xx and no contract is created."""
    options = SandboxOptions(faults=Faults(api_error_rate=1.0))
    async with sandbox_client(options) as (sandbox, client):
        response = await client.post(f"{API}/contracts/", json=acme())
    assert response.status_code in (500, 502, 503)
    check_response("createContract", response)
    assert sandbox.contracts() == []


async def test_timeout_rate_one_does_the_work_and_answers_504() -> None:
    """With api_timeout_rate 1 the create and the send are carried out; only the answer is lost."""
    options = SandboxOptions(faults=Faults(api_timeout_rate=1.0), timeout_hang_s=0)
    async with sandbox_client(options) as (sandbox, client):
        created = await client.post(f"{API}/contracts/", json=acme())
        sent = await client.post(f"{API}/contracts/T-1/send_to_counterparties", json={})
        stats = (await client.get("/_sandbox/stats")).json()
    assert (created.status_code, sent.status_code) == (504, 504)
    check_response("createContract", created)
    assert [(c["id"], c["contract_status"]) for c in sandbox.contracts()] == [("T-1", "REDLINING")]
    assert stats["calls"]["POST /api/v2.1/public/contracts/"] == {"504": 1}
    assert stats["in_flight"] == 0


async def test_stats_count_calls_by_endpoint_and_status() -> None:
    """Stats group calls by method and path template, then by status."""
    async with sandbox_client() as (_, client):
        await create(client)
        await client.get(f"{API}/contracts/T-1/status")
        await client.get(f"{API}/contracts/T-9/status")
        stats = (await client.get("/_sandbox/stats")).json()
    calls = stats["calls"]
    assert calls["POST /api/v2.1/public/contracts/"] == {"201": 1}
    assert calls["GET /api/v2.1/public/contracts/{composite_id}/status"] == {"200": 1, "404": 1}
    assert set(stats["webhooks"]) >= {"sent", "dropped", "duplicated"}
