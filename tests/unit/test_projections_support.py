"""Builders of contract-stream events shared by the flow's unit tests (holds no tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from eventstore import RecordedEvent
from projections.events import EventType, contract_stream

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
REQUEST: dict[str, Any] = {
    "contract_template_id": 1204,
    "contract_data": {"customer_name": "Acme"},
    "counter_party_details": [],
    "external_metadata": {"id": "deal-1", "integration_name": "HubSpot", "record_type": "Deal"},
}


class Log:
    """A growing contract stream whose events get consecutive positions and versions."""

    def __init__(self, external_id: str = "deal-1") -> None:
        self.external_id = external_id
        self.events: list[RecordedEvent] = []

    def add(self, type_: str, data: dict[str, Any] | None = None, **meta: Any) -> RecordedEvent:
        n = len(self.events) + 1
        event = RecordedEvent(
            position=n,
            stream=contract_stream(self.external_id),
            version=n,
            type=type_,
            data=data or {},
            metadata={"event_id": f"e{n}", "source": meta.get("source", "api")},
            recorded_at=T0 + timedelta(seconds=n),
        )
        self.events.append(event)
        return event

    def requested(self, send: dict[str, Any] | None = None) -> RecordedEvent:
        data = {"external_id": self.external_id, "request": REQUEST, "send": send}
        return self.add(EventType.CONTRACT_REQUESTED, data, source="intake")

    def created(self, **extra: Any) -> RecordedEvent:
        data = {"id": "T-7", "contract_id": 7, "contract_link": "https://x/7"}
        data.update({"contract_status": "DRAFT", "found_by_lookup": False, **extra})
        return self.add(EventType.CONTRACT_CREATED, data)

    def webhook(self, activity: str) -> RecordedEvent:
        data = {"activity": activity, "contract_id": 7, "external_id": self.external_id}
        return self.add(EventType.WEBHOOK_RECEIVED, data, source="webhook")
