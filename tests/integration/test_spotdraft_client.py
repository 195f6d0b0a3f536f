"""The SpotDraft client against the sandbox over real loopback HTTP."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from daemon.sandbox import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Faults,
    Sandbox,
    SandboxOptions,
)
from handlers.spotdraft import (
    ConfigurationError,
    OutcomeUnknownError,
    PermanentError,
    RateBudget,
    RetryPolicy,
    SpotDraftClient,
    SpotDraftCredentials,
)

pytestmark = pytest.mark.anyio

ACME = json.loads((Path(__file__).parent.parent / "data" / "acme_contract.json").read_text())
TIMEOUT = httpx.Timeout(5.0, connect=2.0)
# Short waits keep retried runs quick; the policy is the production one otherwise.
QUICK = RetryPolicy(max_attempts=8, base=0.05, cap=0.5)


def acme(external_id: str = "hubspot-deal-10024") -> dict[str, Any]:
    payload: dict[str, Any] = copy.deepcopy(ACME)
    payload["external_metadata"]["id"] = external_id
    return payload


@asynccontextmanager
async def sandbox_and_client(
    faults: Faults | None = None,
    *,
    budget: RateBudget | None = None,
    http_timeout: httpx.Timeout = TIMEOUT,
    retry: RetryPolicy = QUICK,
    secret: str = DEFAULT_CLIENT_SECRET,
) -> AsyncIterator[tuple[Sandbox, SpotDraftClient]]:
    options = SandboxOptions(faults=faults or Faults(), seed=3, timeout_hang_s=3.0)
    async with Sandbox.serve(options) as sandbox:
        assert sandbox.url is not None
        credentials = SpotDraftCredentials(sandbox.url, DEFAULT_CLIENT_ID, secret)
        client = SpotDraftClient(
            credentials, budget=budget or RateBudget(10.0), timeout=http_timeout, retry=retry
        )
        async with client:
            yield sandbox, client


def served(sandbox: Sandbox, status: int) -> int:
    """How many API answers with ``status`` the sandbox gave, over every endpoint."""
    return sum(by_status.get(status, 0) for by_status in sandbox.stats.calls.values())


async def test_the_guides_flow_from_create_to_the_stored_pdf(tmp_path: Path) -> None:
    """Create, find, send, status, key pointers, link and download all work end to end."""
    async with sandbox_and_client() as (sandbox, client):
        created = await client.create_contract(acme())
        composite = created.value["id"]
        assert created.exchanges[0].status == 201
        found = await client.find_by_external_id("hubspot-deal-10024")
        assert [c["id"] for c in found.value] == [created.value["contract_id"]]
        await client.send_to_counterparties(composite)
        assert (await client.get_status(composite)).value["contract_status"] == "REDLINING"
        while await sandbox.advance(composite) != "EXECUTED":
            pass
        pointers = (await client.get_key_pointers(composite)).value
        assert {"effective_date", "contract_value"} <= {p["field_name"] for p in pointers}
        link = (await client.get_download_link(composite)).value
        stored = await client.download(link["url"], tmp_path, link["file_name"])
        document = sandbox.document(composite)
    assert document is not None
    assert stored.value.sha256 == hashlib.sha256(document).hexdigest()
    assert (await anyio.Path(stored.value.path).read_bytes()).startswith(b"%PDF")


async def test_template_metadata_lists_the_guides_fields() -> None:
    """Template 1204's metadata names the fields the guide's contract_data uses."""
    async with sandbox_and_client() as (_, client):
        metadata = (await client.get_template_metadata(1204)).value
    variables = {attribute.get("variable") for attribute in metadata["attributes"]}
    assert set(ACME["contract_data"]) <= variables


@pytest.mark.parametrize("external_id", ["crm deal #7?x=1", "100%", "ü-ñ", ".."])
async def test_odd_external_ids_round_trip_through_the_lookup(external_id: str) -> None:
    """An id with spaces, #, ?, % or only dots finds exactly the contract created with it."""
    async with sandbox_and_client() as (_, client):
        created = await client.create_contract(acme(external_id))
        found = await client.find_by_external_id(external_id)
    assert [c["id"] for c in found.value] == [created.value["contract_id"]]


@pytest.mark.slow
async def test_100_concurrent_calls_at_10_per_second_get_no_429() -> None:
    """100 calls at once through a 10/s budget meet the sandbox's 10/s limit with no 429.

    The real figures (10/s on both sides), so this takes about 100 / 9.5 = 10.5 seconds.
    """
    budget = RateBudget(10.0)
    results: list[int] = []
    async with sandbox_and_client(budget=budget) as (sandbox, client):

        async def one() -> None:
            result = await client.get_template_metadata(1204)
            results.append(len(result.exchanges))

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(one)
        elapsed = time.monotonic() - started
        throttled = sandbox.stats.rate_limited
    assert throttled == 0
    assert results == [1] * 100  # no call needed a second attempt
    assert budget.stats().calls == 100
    assert 9.0 < elapsed < 20.0


async def test_with_pacing_off_429s_are_served_and_every_call_completes() -> None:
    """Unpaced, the sandbox throttles, and Retry-After carries every call through."""
    async with sandbox_and_client(Faults(rate_limit_rps=20), budget=RateBudget.unlimited()) as (
        sandbox,
        client,
    ):
        results = []

        async def one() -> None:
            results.append(await client.get_template_metadata(1204))

        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(one)
        throttled = sandbox.stats.rate_limited
    assert throttled > 0
    assert len(results) == 40
    retried = [r for r in results if len(r.exchanges) > 1]
    assert retried
    for result in retried:
        assert result.exchanges[0].status == 429
        assert result.exchanges[0].retry_after is not None
        assert result.exchanges[-1].status == 200
    assert client.budget.stats().throttled > 0


async def test_5xx_answers_are_retried() -> None:
    """With 30% of calls failing 5xx, every status call still succeeds after retries."""
    async with sandbox_and_client() as (sandbox, client):
        composite = (await client.create_contract(acme("deal-5xx"))).value["id"]
        sandbox.set_faults(Faults(api_error_rate=0.3))
        results = [await client.get_status(composite) for _ in range(15)]
        errors = served(sandbox, 500) + served(sandbox, 502) + served(sandbox, 503)
    statuses = [e.status for r in results for e in r.exchanges]
    assert errors > 0
    assert {500, 502, 503} & set(statuses)
    assert all(r.value["contract_status"] == "DRAFT" for r in results)


async def test_timeouts_are_retried() -> None:
    """Calls that hang past the client's read timeout are retried until one answers."""
    timeout = httpx.Timeout(0.3, connect=2.0)
    async with sandbox_and_client(Faults(api_timeout_rate=0.3), http_timeout=timeout) as (
        _,
        client,
    ):
        results = [await client.get_template_metadata(1204) for _ in range(8)]
    errors = [e.error for r in results for e in r.exchanges]
    assert "timeout" in errors
    assert all(r.last.status == 200 for r in results)


async def test_a_create_that_times_out_is_not_sent_again() -> None:
    """A create whose answer never came is not retried, and the lookup finds one contract."""
    timeout = httpx.Timeout(0.3, connect=2.0)
    async with sandbox_and_client(Faults(create_delay_ms=2000), http_timeout=timeout) as (
        sandbox,
        client,
    ):
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.create_contract(acme("deal-unknown"))
        found = await client.find_by_external_id("deal-unknown")
        contracts = sandbox.contracts()
    assert len(caught.value.exchanges) == 1
    assert len(found.value) == 1
    assert len(contracts) == 1


async def test_a_400_is_not_retried_and_names_the_fields() -> None:
    """A field mismatch is one call, one 400, and a message naming the unknown field."""
    payload = acme()
    payload["contract_data"]["customer_nam"] = payload["contract_data"].pop("customer_name")
    async with sandbox_and_client() as (sandbox, client):
        with pytest.raises(PermanentError) as caught:
            await client.create_contract(payload)
        calls = sum(sandbox.stats.calls.values(), start=Counter[int]())
    assert caught.value.status == 400
    assert len(caught.value.exchanges) == 1
    assert calls == {400: 1}
    assert "customer_nam" in str(caught.value)


async def test_an_unknown_template_is_a_permanent_404_with_the_public_error_body() -> None:
    """A template of another workspace answers 404 with code and message parsed."""
    payload = acme()
    payload["contract_template_id"] = 999_999
    async with sandbox_and_client() as (_, client):
        with pytest.raises(PermanentError) as caught:
            await client.create_contract(payload)
    assert caught.value.status == 404
    assert caught.value.code
    assert caught.value.message
    assert "To fix" in str(caught.value)


async def test_sending_twice_is_a_402_for_the_workflow_state() -> None:
    """A second send on a contract no longer in DRAFT is refused (402), not retried."""
    async with sandbox_and_client() as (_, client):
        composite = (await client.create_contract(acme("deal-402"))).value["id"]
        await client.send_to_counterparties(composite)
        with pytest.raises(PermanentError) as caught:
            await client.send_to_counterparties(composite)
    assert caught.value.status == 402
    assert len(caught.value.exchanges) == 1


async def test_wrong_credentials_are_a_configuration_error_without_the_secret() -> None:
    """A wrong secret is a 401 ConfigurationError whose message does not contain it."""
    async with sandbox_and_client(secret="wrong-secret-value") as (_, client):
        with pytest.raises(ConfigurationError) as caught:
            await client.get_template_metadata(1204)
    assert "SPOTDRAFT_CLIENT_SECRET" in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)
    assert "wrong-secret-value" not in json.dumps(
        [e.to_event_data() for e in caught.value.exchanges]
    )


async def test_a_wrong_base_path_is_a_permanent_404_not_a_retry() -> None:
    """A base url with an extra path prefix is refused once, pointing at SPOTDRAFT_BASE_URL."""
    async with Sandbox.serve(SandboxOptions()) as sandbox:
        credentials = SpotDraftCredentials(
            f"{sandbox.url}/spotdraft", DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
        )
        async with SpotDraftClient(credentials, timeout=TIMEOUT) as client:
            with pytest.raises(PermanentError) as caught:
                await client.get_status("T-1")
    assert caught.value.status == 404
    assert "SPOTDRAFT_BASE_URL" in str(caught.value)
    assert len(caught.value.exchanges) == 1


async def test_a_trailing_slash_mismatch_is_a_configuration_error_naming_the_url() -> None:
    """Were a path to drift from the description, SpotDraft's 302 says so, naming the url."""
    async with sandbox_and_client() as (sandbox, client):
        wrong = "/api/v2.1/public/templates/1204/metadata/"
        with pytest.raises(ConfigurationError) as caught:
            await client._api("get_template_metadata", "GET", wrong)
    message = str(caught.value)
    assert f"{sandbox.url}{wrong}" in message
    assert "Location: /api/v2.1/public/templates/1204/metadata" in message
    assert caught.value.status == 302
