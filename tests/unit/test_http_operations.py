"""Health, readiness, metrics, the OpenAPI document, and JSON errors for unknown routes."""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import jsonschema  # type: ignore[import-untyped]  # no stubs in the venv
import pytest

from daemon.http import Metrics, create_app
from eventstore import MemoryEventStore, NewEvent, PersistenceError

TOKEN = "ops-token-do-not-leak"
HMAC_KEY = base64.b64encode(b"hmac-key-do-not-leak").decode()


@dataclass(frozen=True)
class Config:
    api_token: str | None = TOKEN
    hmac_key: str | None = HMAC_KEY


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://daemon")


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
async def client(store: MemoryEventStore) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(store, Config())) as client:
        yield client


@pytest.mark.anyio
async def test_healthz_is_ok(client: httpx.AsyncClient) -> None:
    """Liveness needs nothing and answers 200."""
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


class UnreachableStore(MemoryEventStore):
    async def last_position(self) -> int:
        raise PersistenceError("connection refused")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("store_factory", "running", "status", "checks"),
    [
        (MemoryEventStore, True, 200, {"store": True, "subscriptions": True}),
        (MemoryEventStore, False, 503, {"store": True, "subscriptions": False}),
        (UnreachableStore, True, 503, {"store": False, "subscriptions": True}),
    ],
)
async def test_readyz_reports_store_and_subscriptions(
    store_factory: Callable[[], MemoryEventStore],
    running: bool,
    status: int,
    checks: dict[str, bool],
) -> None:
    """Ready only when the store answers and the subscriptions run."""
    app = create_app(store_factory(), Config(), subscriptions_running=lambda: running)
    async with client_for(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == status
    assert response.json()["checks"] == checks


@pytest.mark.anyio
async def test_metrics_expose_the_counters(store: MemoryEventStore) -> None:
    """The Prometheus text names every family, with values the handlers' layer fed in."""
    metrics = Metrics()
    await store.save_checkpoint("handlers", 0)
    app = create_app(store, Config(), metrics=metrics, lag_checkpoints=["handlers"])

    async def parked(m: Metrics) -> None:
        m.set_parked(2)
        m.set_sink_queued(3)

    app.state.on_scrape = parked
    metrics.api_call("POST /api/v2.1/public/contracts/", 201, seconds=0.2)
    metrics.api_call("GET /api/v2.1/public/contracts/{id}/status", "timeout")
    async with client_for(app) as client:
        intake = {"Authorization": f"Bearer {TOKEN}"}
        await client.post("/v1/contracts", json={}, headers=intake)  # 422, appends nothing
        await client.post("/webhooks/spotdraft", content=b"{}")  # refused: no signature
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'spotsync_spotdraft_api_calls_total{endpoint="POST /api/v2.1/public/contracts/",'
        'status="201"} 1.0' in text
    )
    assert 'status="timeout"' in text
    assert 'spotsync_webhook_verification_failures_total{reason="missing"} 1.0' in text
    assert "spotsync_parked_items 2.0" in text
    assert "spotsync_sink_queued_contracts 3.0" in text
    assert 'spotsync_subscription_lag_events{subscription="handlers"} 0.0' in text
    assert "# TYPE spotsync_events_appended_total counter" in text
    assert TOKEN not in text


@pytest.mark.anyio
async def test_metrics_are_served_while_the_store_is_away(store: MemoryEventStore) -> None:
    """A scrape in an outage still answers 200, with the outage counted: the gauges read
    from the store keep their last values rather than fail the whole scrape."""
    metrics = Metrics()
    metrics.set_parked(1)
    app = create_app(store, Config(), metrics=metrics)

    async def away(m: Metrics) -> None:
        raise PersistenceError("cannot reach PostgreSQL: connection refused")

    app.state.on_scrape = away
    metrics.store_outage("handlers")
    async with client_for(app) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert 'spotsync_store_unreachable_total{component="handlers"} 1.0' in response.text
    assert 'spotsync_store_unreachable_total{component="claim"} 0.0' in response.text
    assert "spotsync_parked_items 1.0" in response.text


@pytest.mark.anyio
async def test_appends_are_counted_by_type(store: MemoryEventStore) -> None:
    """Events appended after the counter starts show in spotsync_events_appended_total."""
    metrics = Metrics()
    await store.append(
        "contract-m-0", [NewEvent("ContractRequested", {}, "intake")], expected_version=0
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(metrics.count_appends, store, await store.last_position())
        for n in (1, 2):
            event = NewEvent("ContractRequested", {}, "intake")
            await store.append(f"contract-m-{n}", [event], expected_version=0)
        await store.append(
            "contract-m-1", [NewEvent("WebhookReceived", {}, "webhook")], expected_version=1
        )
        with anyio.fail_after(5):
            await anyio.wait_all_tasks_blocked()  # the counter has caught up and waits
        tg.cancel_scope.cancel()
    text = metrics.render().decode()
    assert 'spotsync_events_appended_total{type="ContractRequested"} 2.0' in text
    assert 'spotsync_events_appended_total{type="WebhookReceived"} 1.0' in text


@pytest.mark.anyio
async def test_two_apps_have_separate_registries(store: MemoryEventStore) -> None:
    """Each app gets its own registry, so building two in one process does not clash."""
    first, second = create_app(store, Config()), create_app(store, Config())
    first.state.metrics.set_parked(5)
    assert b"spotsync_parked_items 0.0" in second.state.metrics.render()


@pytest.mark.anyio
async def test_the_description_asks_for_a_token_only_where_one_is_needed(
    store: MemoryEventStore,
) -> None:
    """With a token, /v1 operations declare bearer auth; served without one
    (--insecure-local), the description asks for none."""

    def secured(spec: dict[str, Any]) -> set[str]:
        return {
            path for path, operations in spec["paths"].items()
            for operation in operations.values() if "security" in operation
        }

    async with client_for(create_app(store, Config())) as client:
        with_token = (await client.get("/openapi.json")).json()
    local = create_app(store, Config(api_token=None), allow_anonymous=True)
    async with client_for(local) as client:
        without = (await client.get("/openapi.json")).json()
    assert {p for p in secured(with_token) if p.startswith("/v1")} == {
        p for p in with_token["paths"] if p.startswith("/v1")
    }
    assert secured(without) == set()
    assert "securitySchemes" not in without["components"]


@pytest.mark.anyio
async def test_openapi_document_is_valid(client: httpx.AsyncClient) -> None:
    """/openapi.json is OpenAPI 3.1 whose schemas are valid JSON Schema and cover every route."""
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {
        "/v1/contracts",
        "/v1/contracts/{external_id}",
        "/v1/contracts/{external_id}/send",
        "/v1/contracts/{external_id}/events",
        "/webhooks/spotdraft",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    }
    for schema in spec["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    resolver_root = {"components": spec["components"]}
    for path in spec["paths"].values():
        for operation in path.values():
            assert operation["responses"]
            for response in operation["responses"].values():
                for media in response.get("content", {}).values():
                    jsonschema.Draft202012Validator.check_schema(
                        {**media["schema"], **resolver_root}
                    )


@pytest.mark.anyio
async def test_openapi_schemas_describe_real_answers(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """An accepted intake and its 422 answer validate against the published schemas."""
    spec = (await client.get("/openapi.json")).json()

    def check(instance: Any, name: str) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        jsonschema.Draft202012Validator(schema).validate(instance)

    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = await client.post("/v1/contracts", json={"external_metadata": {}}, headers=auth)
    check(bad.json(), "Error")
    body = {
        "contract_template_id": 1,
        "contract_data": {},
        "counter_party_details": [
            {"is_individual": True, "poc_details": {"first_name": "A", "email": "a@x"}}
        ],
        "external_metadata": {"id": "doc-1"},
    }
    check(body, "ContractRequest")
    good = await client.post("/v1/contracts", json=body, headers=auth)
    check(good.json(), "Accepted")
    check((await client.get("/v1/contracts/doc-1", headers=auth)).json(), "Contract")
    events = (await client.get("/v1/contracts/doc-1/events", headers=auth)).json()["events"]
    check(events[0], "Event")


@pytest.mark.anyio
async def test_unknown_routes_and_methods_answer_json(client: httpx.AsyncClient) -> None:
    """404 and 405 use the same error body as everything else."""
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = await client.delete("/v1/contracts")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_no_token_is_a_startup_error_unless_anonymous_is_allowed(
    store: MemoryEventStore,
) -> None:
    """Without an API token the app refuses to build, unless told it may run open."""
    with pytest.raises(ValueError, match="SPOTSYNC_API_TOKEN"):
        create_app(store, Config(api_token=None))
    create_app(store, Config(api_token=None), allow_anonymous=True)


def test_malformed_hmac_key_is_a_startup_error_that_hides_the_key(
    store: MemoryEventStore,
) -> None:
    """A key that is not base64 is refused, and the message does not repeat it."""
    with pytest.raises(ValueError, match="SPOTDRAFT_HMAC_KEY") as caught:
        create_app(store, Config(hmac_key="not*base64!secret"))
    assert "secret" not in str(caught.value)


def _validator_python() -> str | None:
    """An interpreter that has openapi-spec-validator: this one, or the system's."""
    if importlib.util.find_spec("openapi_spec_validator") is not None:
        return sys.executable
    system = shutil.which("python3")
    if system is None:
        return None
    probe = subprocess.run(
        [system, "-c", "import openapi_spec_validator"], capture_output=True, check=False
    )
    return system if probe.returncode == 0 else None


@pytest.mark.anyio
async def test_openapi_document_passes_openapi_spec_validator(client: httpx.AsyncClient) -> None:
    """The served document passes openapi-spec-validator (where it is installed)."""
    python = _validator_python()
    if python is None:
        pytest.skip("openapi-spec-validator is not installed")
    spec = (await client.get("/openapi.json")).text
    check = "import json, sys; from openapi_spec_validator import validate; "
    check += "validate(json.loads(sys.stdin.read()))"
    result = await anyio.run_process([python, "-c", check], input=spec.encode(), check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(spec)["info"]["title"] == "spotsync"


class BrokenStore(MemoryEventStore):
    async def get_document(self, collection: str, key: str) -> None:
        raise RuntimeError("a bug, with a secret: " + TOKEN)


@pytest.mark.anyio
async def test_unexpected_errors_are_a_json_500_without_details() -> None:
    """A bug answers 500 in the error shape, and says nothing about its cause."""
    async with client_for(create_app(BrokenStore(), Config())) as client:
        response = await client.get("/v1/contracts/x", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert TOKEN not in response.text
