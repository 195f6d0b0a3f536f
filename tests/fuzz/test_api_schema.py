"""schemathesis against the daemon's own /openapi.json, served on loopback by a running daemon.

Every operation of the intake, send and query API is fed generated requests, valid and
invalid: no answer is a 5xx, every answer matches the description, and every contract
request the daemon accepted (200/202) can be found afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection

from daemon.config import Settings
from daemon.runtime import running_daemon
from daemon.sandbox import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_HMAC_KEY,
    Sandbox,
    SandboxOptions,
)
from daemon.serving import bind
from eventstore.postgres import temporary_schema
from tests.acceptance.conftest import contract_request, wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TOKEN = "schema-fuzz-token-9f2a"
AUTH = {"authorization": f"Bearer {TOKEN}"}
EXAMPLES = 25  # per operation and mode: enough to find a 5xx, small enough for CI


POSTGRES_URL = os.environ.get("SPOTSYNC_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A SQLite file, or a fresh PostgreSQL schema (dropped afterwards)."""
    if request.param == "sqlite":
        yield str(tmp_path / "spotsync.db")
        return
    if not POSTGRES_URL:
        pytest.skip("SPOTSYNC_TEST_POSTGRES_URL is not set (PostgreSQL tests skipped)")
    async with temporary_schema(POSTGRES_URL, "fuzz") as url:
        yield url


@pytest.fixture
async def daemon_url(database: str, tmp_path: Path) -> AsyncIterator[str]:
    bound = bind()
    options = SandboxOptions(webhook_url=f"{bound.url}/webhooks/spotdraft", seed=5)
    async with Sandbox.serve(options) as sandbox:
        config = Settings(
            database=database,
            listen=f"127.0.0.1:{bound.port}",
            api_token=TOKEN,
            base_url=sandbox.url,
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            hmac_key=DEFAULT_HMAC_KEY,
            documents_dir=str(tmp_path / "documents"),
            spotdraft_timeout=2.0,
        )
        async with running_daemon(config, bound=bound) as daemon:
            yield daemon.url


def fuzz(url: str, document: dict[str, Any], accepted: set[str]) -> list[str]:
    """Run every /v1 operation's generated cases (blocking: runs in a worker thread)."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/v1"):
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run = _cases(operation, mode, url, accepted, failures)
            run()
    return failures


def _cases(
    operation: Any, mode: GenerationMode, url: str, accepted: set[str], failures: list[str]
) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=url, headers=AUTH, timeout=10)
        label = f"{case.method} {case.formatted_path} [{mode.value}] -> {response.status_code}"
        if response.status_code >= 500:
            failures.append(f"{label}: {response.text[:200]}")
            return
        try:
            # Unknown query parameters are ignored by design, which this check calls a fault.
            case.validate_response(
                response, headers=AUTH, excluded_checks=[negative_data_rejection]
            )
        except (AssertionError, FailureGroup) as exc:
            failures.append(f"{label}: {str(exc)[:300]}")
            return
        is_intake = case.method == "POST" and case.path == "/v1/contracts"
        if is_intake and response.status_code in (200, 202):
            accepted.add(response.json()["external_id"])

    return run


async def test_the_api_answers_generated_requests_as_it_describes(daemon_url: str) -> None:
    """No 5xx, answers match /openapi.json, and every accepted contract request is kept."""
    async with httpx.AsyncClient(base_url=daemon_url, headers=AUTH, timeout=10) as api:
        document = (await api.get("/openapi.json")).json()
        accepted: set[str] = set()
        failures = await anyio.to_thread.run_sync(fuzz, daemon_url, document, accepted)
        assert failures == []
        assert accepted, "no generated contract request was accepted"
        for external_id in accepted:
            response = await api.get(f"/v1/contracts/{quote(external_id, safe='')}/events")
            assert response.status_code == 200, external_id
            assert response.json()["events"][0]["type"] == "ContractRequested"


async def test_nul_in_a_contract_request_is_served_and_the_daemon_keeps_running(
    daemon_url: str,
) -> None:
    """A NUL inside request strings is accepted; the contract is queryable; readiness holds.

    PostgreSQL's jsonb refuses NUL: the read model once crashed the daemon on it."""
    request = contract_request("crm-nul-1")
    request["contract_data"]["customer_name"] = "Acme\0Corp"
    request["external_metadata"].update(integration_name="Hub\0Spot", record_type="\\u0000Deal\0")
    async with httpx.AsyncClient(base_url=daemon_url, headers=AUTH, timeout=10) as api:
        response = await api.post("/v1/contracts", json=request)
        assert response.status_code == 202, response.text

        async def projected() -> dict[str, Any] | None:
            found = await api.get("/v1/contracts/crm-nul-1")
            return found.json() if found.status_code == 200 else None

        view = await wait_for(projected, seconds=20, what="the contract's projection")
        assert view["integration_name"] in ("Hub\0Spot", "Hub\ufffdSpot")
        assert view["record_type"] in ("\\u0000Deal\0", "\\u0000Deal\ufffd")
        assert (await api.get("/readyz")).status_code == 200
