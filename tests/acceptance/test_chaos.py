"""Crash runs: the daemon SIGKILLed under faults, then restarted on the same database."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import anyio
import pytest

from bench.chaos import ChaosOptions, run_chaos
from daemon.sandbox import Faults
from tests.acceptance.conftest import Deployment, contract_request, contracts_by_sync, wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

BY_EXTERNAL_METADATA = (
    "GET /api/v2.1/public/contracts/by_external_metadata/{external_metadata_id}"
)


@pytest.mark.timeout(240)
async def test_chaos_run_keeps_every_promise(tmp_path: Path) -> None:
    """30 contracts, 2 SIGKILLs, every fault on, SQLite: every end check of bench.chaos holds."""
    result = await run_chaos(
        ChaosOptions(workdir=tmp_path, contracts=30, kills=2, seed=7), say=lambda _: None
    )
    assert result.failures() == []
    assert result.summary["webhook_deliveries"]["acknowledged"] > 0
    assert len(result.summary["kill_moments"]) == 2
    assert result.summary["kills_mid_request"] >= 1


async def test_kill_between_create_and_its_response_creates_once(deployment: Deployment) -> None:
    """SIGKILL after SpotDraft committed a create but before its 201 arrived: one contract."""
    deployment.sandbox.set_faults(Faults(create_delay_ms=30_000))
    async with deployment.daemon() as process, deployment.api() as api:
        response = await api.post("/v1/contracts", json=contract_request("crm-window-1"))
        assert response.status_code == 202

        async def created_in_sandbox() -> bool:
            return len(deployment.sandbox.contracts()) == 1

        # The create is committed and its 201 held back: the daemon cannot know yet.
        await wait_for(created_in_sandbox, seconds=30, what="the create to reach the sandbox")
        process.send_signal(signal.SIGKILL)
        with anyio.fail_after(10):
            await process.wait()
    deployment.sandbox.set_faults(Faults())

    async with deployment.daemon(), deployment.api() as api:

        async def synced() -> bool:
            return (await contracts_by_sync(api)).get("crm-window-1") == "synced"

        await wait_for(synced, seconds=60, what="the contract synced after restart")
    counts = Counter(c["external_metadata"]["id"] for c in deployment.sandbox.contracts())
    assert counts == {"crm-window-1": 1}
    assert sum(deployment.sandbox.stats.calls[BY_EXTERNAL_METADATA].values()) >= 1
