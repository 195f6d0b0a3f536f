"""The events endpoint gives each event the timeline's summary, as `spotsync events` does."""

from __future__ import annotations

import httpx
import pytest

from eventstore import MemoryEventStore, NewEvent
from projections.events import EventType
from tests.unit.test_http_queries import client, request, store  # noqa: F401 - fixtures

pytestmark = pytest.mark.anyio

WEBHOOK = {
    "activity": "CONTRACT_EXECUTED",
    "contract_id": 7,
    "contract_status": "EXECUTED",
    "external_id": "d-9",
    "raw_body": '{"activity":"CONTRACT_EXECUTED"}',
}


async def test_a_later_page_still_names_a_duplicate_of_an_earlier_event(
    client: httpx.AsyncClient,  # noqa: F811 - the fixture
    store: MemoryEventStore,  # noqa: F811 - the fixture
) -> None:
    """From version 3 on, the repeated delivery is still told apart from the first."""
    await request(store, "d-9")
    for _ in range(2):
        event = NewEvent(EventType.WEBHOOK_RECEIVED, WEBHOOK, "webhook")
        await store.append("contract-d-9", [event], expected_version=None)
    response = await client.get("/v1/contracts/d-9/events", params={"from_version": "3"})
    assert response.status_code == 200
    events = response.json()["events"]
    assert [(e["version"], e["summary"]) for e in events] == [
        (3, "webhook CONTRACT_EXECUTED (duplicate of #2)")
    ]
