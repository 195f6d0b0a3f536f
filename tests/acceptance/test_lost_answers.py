"""SpotDraft did the work but its answer was lost (a gateway timeout): one contract each."""

from __future__ import annotations

from collections import Counter

import pytest

from daemon.sandbox import Faults
from tests.acceptance.conftest import Deployment, contract_request, contracts_by_sync, wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

BY_EXTERNAL_METADATA = (
    "GET /api/v2.1/public/contracts/by_external_metadata/{external_metadata_id}"
)


def contracts_per_external_id(deployment: Deployment) -> Counter[str]:
    return Counter(c["external_metadata"]["id"] for c in deployment.sandbox.contracts())


async def test_a_create_whose_answer_timed_out_is_found_not_repeated(
    deployment: Deployment,
) -> None:
    """Every answer lost: SpotDraft creates the contract anyway; once answers come back
    the daemon finds it by external id and syncs it, with no second contract."""
    deployment.sandbox.set_faults(Faults(api_timeout_rate=1.0))
    async with deployment.daemon(), deployment.api() as api:
        response = await api.post("/v1/contracts", json=contract_request("crm-lost-1"))
        assert response.status_code == 202

        async def created_in_sandbox() -> bool:
            return contracts_per_external_id(deployment) == {"crm-lost-1": 1}

        await wait_for(created_in_sandbox, seconds=30, what="the create carried out")
        deployment.sandbox.set_faults(Faults())

        async def synced() -> bool:
            return (await contracts_by_sync(api)).get("crm-lost-1") == "synced"

        await wait_for(synced, seconds=90, what="the contract synced")
    assert contracts_per_external_id(deployment) == {"crm-lost-1": 1}
    assert sum(deployment.sandbox.stats.calls[BY_EXTERNAL_METADATA].values()) >= 1


@pytest.mark.timeout(240)
async def test_contracts_sync_once_each_while_answers_time_out(deployment: Deployment) -> None:
    """A fifth of all answers lost after the work was done: 8 contracts sync, one each."""
    deployment.sandbox.set_faults(Faults(api_timeout_rate=0.2))
    external_ids = [f"crm-timeout-{n}" for n in range(8)]
    async with deployment.daemon(), deployment.api() as api:
        for external_id in external_ids:
            response = await api.post("/v1/contracts", json=contract_request(external_id))
            assert response.status_code == 202, response.text

        async def all_synced() -> bool:
            syncs = await contracts_by_sync(api)
            return all(syncs.get(i) == "synced" for i in external_ids)

        await wait_for(all_synced, seconds=180, what="8 contracts synced")
    assert contracts_per_external_id(deployment) == dict.fromkeys(external_ids, 1)
    timeouts = sum(by_status.get(504, 0) for by_status in deployment.sandbox.stats.calls.values())
    assert timeouts > 0
