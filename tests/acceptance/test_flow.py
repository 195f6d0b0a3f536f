"""The whole flow, as `spotsync run` runs it, against the sandbox over real loopback HTTP."""

from __future__ import annotations

import copy
import hashlib
import signal
from collections import Counter

import anyio
import pytest

from daemon.sandbox import Faults
from eventstore import open_store
from tests.acceptance.conftest import (
    Deployment,
    contract_request,
    contracts_by_sync,
    wait_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FAULTY = Faults(
    api_error_rate=0.10,
    webhook_drop_rate=0.20,
    webhook_duplicate_rate=0.30,
    webhook_reorder=True,
)


def assert_one_contract_per_external_id(deployment: Deployment, external_ids: list[str]) -> None:
    counts = Counter(c["external_metadata"]["id"] for c in deployment.sandbox.contracts())
    assert {i: counts[i] for i in external_ids} == dict.fromkeys(external_ids, 1)


async def test_twenty_contracts_sync_through_faults(deployment: Deployment) -> None:
    """With 5xx and dropped, duplicated, reordered webhooks, 20 contracts sync, once each."""
    deployment.sandbox.set_faults(FAULTY)
    external_ids = [f"crm-deal-{n:03d}" for n in range(20)]
    async with deployment.daemon(), deployment.api() as api:
        for external_id in external_ids:
            response = await api.post("/v1/contracts", json=contract_request(external_id))
            assert response.status_code == 202, response.text

        async def all_synced() -> bool:
            syncs = await contracts_by_sync(api)
            return all(syncs.get(i) == "synced" for i in external_ids)

        await wait_for(all_synced, seconds=120, what="20 contracts synced")
        contracts = {i: (await api.get(f"/v1/contracts/{i}")).json() for i in external_ids}
        metrics = (await api.get("/metrics")).text

    assert_one_contract_per_external_id(deployment, external_ids)
    sandbox_documents = {c["external_metadata"]["id"]: c for c in deployment.sandbox.contracts()}
    for external_id, contract in contracts.items():
        document = contract["document"]
        on_disk = (deployment.tmp / "documents" / document["path"]).read_bytes()
        composite_id = contract["spotdraft"]["id"]
        assert sandbox_documents[external_id]["id"] == composite_id
        assert hashlib.sha256(on_disk).hexdigest() == document["sha256"]
        assert (
            document["sha256"]
            == hashlib.sha256(deployment.sandbox.document(composite_id) or b"").hexdigest()
        )
        assert contract["status"] == "EXECUTED"
        assert contract["key_pointers"]["contract_value"] == 12000
    notified = {
        body["data"]["external_id"]
        for body in deployment.sink.received.values()
        if body["type"] == "contract.synced"
    }
    assert notified == set(external_ids)
    created = 'spotsync_spotdraft_api_calls_total{endpoint="create_contract",status="201"}'
    assert f"{created} 20.0" in metrics
    assert 'spotsync_spotdraft_api_calls_total{endpoint="get_key_pointers",status="200"}' in metrics
    # Every event says where it came from in SPEC section 6's words.
    async with await open_store(deployment.env["SPOTSYNC_DATABASE"]) as store:
        sources = {event.source async for event in store.read_all()}
    assert {"intake", "webhook", "api"} <= sources
    assert sources <= {"webhook", "api", "intake", "reconciler", "operator"}


async def test_a_killed_daemon_finishes_after_restart(deployment: Deployment) -> None:
    """SIGKILL mid-run, then a restart on the same database: every contract syncs, once."""
    deployment.sandbox.set_faults(Faults(api_error_rate=0.05, webhook_drop_rate=0.1))
    external_ids = [f"erp-request-{n:03d}" for n in range(10)]
    async with deployment.daemon() as process, deployment.api() as api:
        for external_id in external_ids:
            response = await api.post("/v1/contracts", json=contract_request(external_id))
            assert response.status_code == 202, response.text

        async def some_created() -> bool:
            return len(deployment.sandbox.contracts()) >= 3

        await wait_for(some_created, seconds=30, what="the first contracts created")
        process.send_signal(signal.SIGKILL)
        with anyio.fail_after(10):
            await process.wait()
        assert process.returncode == -signal.SIGKILL
        executed = [c for c in deployment.sandbox.contracts() if c["contract_status"] == "EXECUTED"]
        # 10 contracts need 40-odd paced calls: the kill lands well before the end.
        assert len(executed) < len(external_ids)

    async with deployment.daemon(), deployment.api() as api:

        async def all_synced() -> bool:
            syncs = await contracts_by_sync(api)
            return all(syncs.get(i) == "synced" for i in external_ids)

        await wait_for(all_synced, seconds=90, what="10 contracts synced after restart")
    assert_one_contract_per_external_id(deployment, external_ids)


async def test_bad_signature_is_refused_and_changes_nothing(deployment: Deployment) -> None:
    """A delivery with a bad signature gets 401, and the contract's log stays as it was."""
    async with deployment.daemon(), deployment.api() as api:
        response = await api.post("/v1/contracts", json=contract_request("crm-sig-1", send=False))
        assert response.status_code == 202

        async def created() -> bool:
            return (await contracts_by_sync(api)).get("crm-sig-1") == "created"

        await wait_for(created, seconds=30, what="the contract created")
        before = (await api.get("/v1/contracts/crm-sig-1/events")).json()
        contract_id = (await api.get("/v1/contracts/crm-sig-1")).json()["spotdraft"]["contract_id"]
        body = (
            b'{"activity": "CONTRACT_EXECUTED", "contract_id": %d, "contract_status": "EXECUTED",'
            b' "external_metadata": {"id": "crm-sig-1"}}' % contract_id
        )
        forged = await api.post(
            "/webhooks/spotdraft",
            content=body,
            headers={"X-SD-WEBHOOK-CONTENT-HASH": "0" * 128},
        )
        unsigned = await api.post("/webhooks/spotdraft", content=body)
        assert forged.status_code == 401
        assert unsigned.status_code == 401
        after = (await api.get("/v1/contracts/crm-sig-1/events")).json()
        contract = (await api.get("/v1/contracts/crm-sig-1")).json()
    assert after == before
    assert contract["status"] == "DRAFT"
    assert contract["sync"] == "created"


async def test_template_field_mismatch_fails_with_the_fields_named(
    deployment: Deployment,
) -> None:
    """An intake whose contract_data does not match template 1204 ends failed, naming the
    fields; the corrected request, submitted as the fix says, replaces it and syncs."""
    request = contract_request("crm-mismatch-1")
    corrected = copy.deepcopy(request)
    data = request["contract_data"]
    data["customer_nmae"] = data.pop("customer_name")
    async with deployment.daemon(), deployment.api() as api:
        response = await api.post("/v1/contracts", json=request)
        assert response.status_code == 202

        async def sync_is(state: str) -> bool:
            return (await contracts_by_sync(api)).get("crm-mismatch-1") == state

        await wait_for(lambda: sync_is("failed"), seconds=30, what="the contract to fail")
        contract = (await api.get("/v1/contracts/crm-mismatch-1")).json()
        message = str(contract["error"])
        assert "customer_nmae" in message
        assert "customer_name" in message
        assert "submit the corrected request under the same external id" in message
        assert deployment.sandbox.contracts() == []

        assert (await api.post("/v1/contracts", json=corrected)).status_code == 202
        assert (await api.post("/v1/contracts", json=corrected)).status_code == 200
        await wait_for(lambda: sync_is("synced"), seconds=60, what="the corrected one to sync")
        contract = (await api.get("/v1/contracts/crm-mismatch-1")).json()
        # Created once it is, it takes no other request.
        again = await api.post("/v1/contracts", json=request)
    assert contract["error"] is None
    assert again.status_code == 409
    assert [c["external_metadata"]["id"] for c in deployment.sandbox.contracts()] == [
        "crm-mismatch-1"
    ]
