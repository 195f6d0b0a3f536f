"""Prometheus metrics, one registry per app (so tests and two apps in a process never clash).

The handlers' layer increments them through a ``Metrics`` object it is given:

    metrics.event_appended("ContractCreated")
    metrics.api_call("POST /api/v2.1/public/contracts/", 201, seconds=0.12)
    metrics.set_parked(3)
    metrics.set_subscription_lag("handlers", 12)
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from eventstore import EventStore
from eventstore.outages import OnOutage
from handlers.spotdraft import Exchange

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


# The parts of the daemon that wait for an event store that cannot be reached.
STORE_COMPONENTS = ("read models", "handlers", "reconciler", "metrics", "claim")


class Metrics:
    """The daemon's counters and gauges, and their text exposition."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_appended = Counter(
            "spotsync_events_appended",
            "Events appended to the log by this process, by event type.",
            ["type"],
            registry=r,
        )
        self.subscription_lag = Gauge(
            "spotsync_subscription_lag_events",
            "Events in the log that a subscription has not processed yet.",
            ["subscription"],
            registry=r,
        )
        self.api_calls = Counter(
            "spotsync_spotdraft_api_calls",
            "SpotDraft API calls by endpoint and outcome (HTTP status, or timeout/error).",
            ["endpoint", "status"],
            registry=r,
        )
        self.api_call_seconds = Histogram(
            "spotsync_spotdraft_api_call_seconds",
            "SpotDraft API call latency by endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.webhook_verification_failures = Counter(
            "spotsync_webhook_verification_failures",
            "Webhook deliveries refused for a missing or bad signature.",
            ["reason"],
            registry=r,
        )
        self.webhooks_received = Counter(
            "spotsync_webhooks_received",
            "Verified webhook deliveries stored, by whether they matched a contract.",
            ["matched"],
            registry=r,
        )
        self.parked = Gauge(
            "spotsync_parked_items",
            "Work stopped on a permanent error, waiting for a person.",
            registry=r,
        )
        self.sink_queued = Gauge(
            "spotsync_sink_queued_contracts",
            "Contracts with notices queued for the sink, not yet delivered or given up on.",
            registry=r,
        )
        self.store_unreachable = Counter(
            "spotsync_store_unreachable",
            "Tries to reach the event store that failed, by the part of the daemon that waits"
            " for it (read models, handlers, reconciler, metrics, claim).",
            ["component"],
            registry=r,
        )
        # Labels that are always present, so a scrape shows zeros rather than nothing.
        for reason in ("missing", "invalid"):
            self.webhook_verification_failures.labels(reason)
        for component in STORE_COMPONENTS:
            self.store_unreachable.labels(component)
        # Looked up once: a label look-up costs more than the increment on the hot path.
        self._webhooks_matched = self.webhooks_received.labels("yes")
        self._webhooks_unmatched = self.webhooks_received.labels("no")

    async def count_appends(
        self, store: EventStore, after_position: int, on_outage: OnOutage | None = None
    ) -> None:
        """Count every event appended past ``after_position``, by type, whoever appended
        it (HTTP intake, handlers, reconciler, an operator's command). Runs until cancelled."""
        events = store.subscribe(from_position=after_position + 1, on_outage=on_outage)
        async for event in events:
            self.event_appended(event.type)

    def event_appended(self, event_type: str, count: int = 1) -> None:
        self.events_appended.labels(event_type).inc(count)

    def api_call(self, endpoint: str, status: int | str, *, seconds: float | None = None) -> None:
        """One SpotDraft call: ``endpoint`` is a route template (no ids), ``status`` its outcome."""
        self.api_calls.labels(endpoint, str(status)).inc()
        if seconds is not None:
            self.api_call_seconds.labels(endpoint).observe(seconds)

    def spotdraft_exchange(self, exchange: Exchange) -> None:
        """One attempt of a SpotDraft call, as the client reports it."""
        status = exchange.status if exchange.status is not None else (exchange.error or "error")
        # Errors are free text; the label keeps only their first word ("timeout", ...).
        label = str(status).split(":", 1)[0].split(" ", 1)[0][:32]
        self.api_call(exchange.operation, label, seconds=exchange.latency_ms / 1000)

    def webhook_stored(self, *, matched: bool) -> None:
        (self._webhooks_matched if matched else self._webhooks_unmatched).inc()

    def webhook_refused(self, reason: str) -> None:
        self.webhook_verification_failures.labels(reason).inc()

    def set_subscription_lag(self, subscription: str, events: int) -> None:
        self.subscription_lag.labels(subscription).set(max(events, 0))

    def store_outage(self, component: str) -> None:
        self.store_unreachable.labels(component).inc()

    def set_parked(self, count: int) -> None:
        self.parked.set(count)

    def set_sink_queued(self, contracts: int) -> None:
        self.sink_queued.set(contracts)

    def render(self) -> bytes:
        return generate_latest(self.registry)
