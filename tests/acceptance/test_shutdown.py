"""SIGTERM under a load of webhooks: what was answered 200 is in the log after a restart."""

from __future__ import annotations

import base64
import hashlib
import hmac
import signal
from collections import Counter

import anyio
import httpx
import orjson
import pytest

from daemon.sandbox import DEFAULT_HMAC_KEY, Faults
from eventstore import open_store
from projections.events import EventType
from tests.acceptance.conftest import Deployment, contract_request, wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SENDERS = 8
CREATE = "POST /api/v2.1/public/contracts/"
KEY = base64.b64decode(DEFAULT_HMAC_KEY)


def signed(n: int) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(
        {"activity": "CONTRACT_SIGNED", "contract_id": 900_000 + n, "contract_status": "SIGN"}
    )
    signature = hmac.new(KEY, body, hashlib.sha512).hexdigest()
    return body, {"X-SD-WEBHOOK-CONTENT-HASH": signature, "content-type": "application/json"}


async def test_sigterm_during_webhooks_loses_nothing_acknowledged(deployment: Deployment) -> None:
    """Deliveries in flight at SIGTERM end 200 (and stay in the log) or fail so SpotDraft retries.

    The daemon exits 0, and every delivery answered 200 is in the log after a restart."""
    outcomes: dict[int, str] = {}
    acknowledged = anyio.Event()
    counter = iter(range(1_000_000))

    async def sender(url: str) -> None:
        # A connection of its own per sender, kept alive, as SpotDraft's workers do.
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            while True:
                n = next(counter)
                body, headers = signed(n)
                try:
                    response = await http.post("/webhooks/spotdraft", content=body, headers=headers)
                except httpx.ConnectError:
                    outcomes[n] = "refused"
                    return  # the listener is closed: the daemon is going away
                except httpx.TransportError as exc:
                    outcomes[n] = type(exc).__name__
                    continue
                outcomes[n] = str(response.status_code)
                if sum(1 for o in outcomes.values() if o == "200") >= 200:
                    acknowledged.set()

    async with deployment.daemon() as process, anyio.create_task_group() as tg:
        for _ in range(SENDERS):
            tg.start_soon(sender, deployment.url)
        with anyio.fail_after(60):
            await acknowledged.wait()
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            status = await process.wait()
    assert status == 0, deployment.log_text()

    # Anything but a 200 is an answer SpotDraft retries: a 503, or a connection that
    # closed or refused (a request cut that way was never acknowledged).
    kinds = Counter(outcomes.values())
    assert set(kinds) <= {"200", "503", "refused", "RemoteProtocolError", "ReadError"}, kinds
    assert kinds["refused"] >= 1

    async with deployment.daemon():
        pass  # a restart on the same database starts and stops cleanly
    async with await open_store(deployment.env["SPOTSYNC_DATABASE"]) as store:
        stored = {
            e.data["raw_body"]
            async for e in store.read_all()
            if e.type == EventType.WEBHOOK_RECEIVED
        }
    answered_200 = {signed(n)[0].decode() for n, outcome in outcomes.items() if outcome == "200"}
    assert answered_200 - stored == set()
    assert len(answered_200) >= 200


async def test_sigterm_during_a_hanging_spotdraft_call_exits_0(deployment: Deployment) -> None:
    """With a SpotDraft call hanging, SIGTERM stops the daemon within its grace period, exit 0."""
    deployment.sandbox.set_faults(Faults(api_timeout_rate=1.0))
    async with deployment.daemon() as process, deployment.api() as api:
        response = await api.post("/v1/contracts", json=contract_request("crm-hang-1"))
        assert response.status_code == 202

        async def hanging() -> bool:
            return sum(deployment.sandbox.stats.calls[CREATE].values()) >= 1

        await wait_for(hanging, seconds=30, what="the create call to hang")
        process.send_signal(signal.SIGTERM)
        # In-flight work gets the daemon's grace period (10 s) to finish, then is cut.
        with anyio.fail_after(25):
            status = await process.wait()
    assert status == 0, deployment.log_text()
