"""Webhook payloads, their signature, and the background sender that delivers them.

Payloads are ``ContractActivityDomainModel`` bodies. The signature is what SpotDraft's
"Verifying webhooks" snippet checks: lowercase hex HMAC-SHA512 of the raw body, keyed
with the base64-decoded ``hmac_key``, in ``X-SD-WEBHOOK-CONTENT-HASH``.

Deliveries leave in batches (one batch a lifecycle step). Faults are decided when a
batch is queued, in queue order, so a seeded run drops and duplicates the same ones.
SpotDraft promises no order, and the faults break it as a network would:
``webhook_reorder`` sends a step's deliveries backwards and holds each contract's step
back until its next step has gone out (or ``webhook_reorder_hold_s`` has passed), so a
SENT can land after the EXECUTED that follows it; with ``webhook_delay_ms`` each
delivery waits its own delay in a task of its own, so a later one may overtake it.
A failed attempt (non-2xx or connection error) is retried after each pause of
``webhook_retry_delays``, in its own task of the sender's task group.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from daemon.sandbox.contracts import Contract, Signatory
from daemon.sandbox.options import Faults, SandboxOptions
from daemon.sandbox.stats import Stats

SIGNATURE_HEADER = "X-SD-WEBHOOK-CONTENT-HASH"
# Who performs what no user does: "Can be set to `SYSTEM` for system initiated actions."
SYSTEM = {"name": "SYSTEM"}
# ActivityEnum of the description: what a webhook registration may ask for.
ACTIVITIES = frozenset({
    "CONTRACT_VERSION_UPLOADED", "CONTRACT_APPROVAL_COMPLETED", "CONTRACT_APPROVAL_REQUESTED",
    "CONTRACT_CREATED", "CONTRACT_DATA_UPDATED", "CONTRACT_DELETED", "CONTRACT_EXECUTED",
    "CONTRACT_MARK_FOR_EXECUTION", "CONTRACT_SENT_TO_COUNTERPARTY", "CONTRACT_SIGNATURE_DECLINED",
    "CONTRACT_SIGNATURE_REQUESTED", "CONTRACT_SIGNED", "CONTRACT_UNMARK_FOR_EXECUTION",
    "POSTMARK_EMAIL_EVENT", "CONTRACT_KEY_POINTER_UPDATION", "CONTRACT_KEY_POINTER_CREATION",
    "SIGNING_EMAIL_DELIVERED", "SIGNING_EMAIL_OPENED", "SIGNING_EMAIL_NOT_DELIVERED",
    "SIGNING_EMAIL_LINK_CLICKED", "REDLINING_EMAIL_DELIVERED", "REDLINING_EMAIL_OPENED",
    "REDLINING_EMAIL_NOT_DELIVERED", "REDLINING_EMAIL_LINK_CLICKED",
    "CONTRACT_SIGNATURE_REQUESTED_NOTIFICATION_SENT", "COUNTER_PARTY_CREATED",
    "COUNTER_PARTY_UPDATED", "COUNTER_PARTY_CONTACT_CREATED", "COUNTER_PARTY_CONTACT_UPDATED",
    "COUNTER_PARTY_ADDRESS_CREATED", "COUNTER_PARTY_ADDRESS_UPDATED",
    "CONTRACT_ACTIVITY_LOG_COMMENT_CREATED", "CONTRACT_VOIDED", "CONTRACT_PROCESS_METRIC_UPDATED",
    "CONTRACT_EXTERNAL_METADATA_CREATED", "CONTRACT_EXTERNAL_METADATA_UPDATED",
    "CONTRACT_ENTITY_UPDATED",
})


def sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha512).hexdigest()


def activity_payload(
    contract: Contract, activity: str, actor: Signatory | None = None, status: str | None = None
) -> dict[str, Any]:
    """The ``ContractActivityDomainModel`` body for ``activity`` on ``contract``.

    Shaped as the description's examples: execution is performed by ``{"name": "SYSTEM"}``
    (no email), a send names its ``counterparty_email_recipients``.
    """
    if actor is not None:
        performer = {"name": actor.name, "email": actor.email}
    elif activity == "CONTRACT_EXECUTED":  # the last signature completes it, not a person
        performer = dict(SYSTEM)
    else:
        performer = dict(contract.business_user)
    activity_data: dict[str, Any] = {
        "performed_by": performer,
        "timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
    }
    if activity == "CONTRACT_SENT_TO_COUNTERPARTY" and contract.recipients is not None:
        activity_data["counterparty_email_recipients"] = {
            kind: list(emails) for kind, emails in contract.recipients.items()}
    return {
        "activity": activity,
        "activity_data": activity_data,
        "contract_id": contract.contract_id,
        "contract_title": contract.contract_name,
        "contract_type": contract.template.contract_type_name,
        "contract_type_name": contract.template.contract_type_name,
        "contract_type_id": contract.template.contract_type_id,
        "contract_status": status or contract.status,
        "contract_kind": "TEMPLATE_CONTRACT",
        "business_user": dict(contract.business_user),
        "created_at": contract.created.isoformat().replace("+00:00", "Z"),
        "counterparties": [_counterparty(i, c) for i, c in enumerate(contract.counterparties)],
        "external_metadata": contract.external_metadata,
        "entity": {"reference_id": contract.entity.reference_id, "name": contract.entity.name,
                   "jurisdiction": contract.entity.jurisdiction, "type": contract.entity.type},
        "contract_reference_id": contract.reference_id,
        "contract_template_id": contract.template.id,
    }


def _counterparty(index: int, details: dict[str, Any]) -> dict[str, Any]:
    poc = details.get("poc_details") or {}
    name = " ".join(p for p in (poc.get("first_name"), poc.get("last_name")) if p)
    item: dict[str, Any] = {
        # "Valid options are Organization or Individual" (the description's wording).
        "type": "Individual" if details.get("is_individual") else "Organization",
        "poc_name": name, "poc_email": poc.get("email", ""), "counterparty_id": index + 1,
    }
    if details.get("organization_name"):
        item["organization_name"] = details["organization_name"]
    return item


@dataclass(frozen=True)
class Hook:
    """A webhook registered through the API: its url, its activities, its custom headers."""

    url: str
    only_for_activities: frozenset[str]
    custom_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Delivery:
    """One webhook POST to one url, and what became of it."""

    url: str
    activity: str
    contract_id: int
    body: bytes
    signature: str
    # The registration's custom headers, sent with every attempt.
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    duplicate: bool = False
    attempts: int = 0
    status: int | None = None
    delivered: bool = False


class WebhookSender:
    """Queues signed deliveries and sends them from the sandbox's task group."""

    def __init__(
        self, options: SandboxOptions, rng: random.Random, stats: Stats,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._options = options
        self._on_change = on_change
        self._rng = rng
        self._stats = stats
        self.deliveries: list[Delivery] = []
        self.registered: list[Hook] = []
        self._send: MemoryObjectSendStream[list[Delivery]]
        self._receive: MemoryObjectReceiveStream[list[Delivery]]
        self._send, self._receive = anyio.create_memory_object_stream[list[Delivery]](math.inf)
        # Steps held back by webhook_reorder, by contract: the batch, and when it goes anyway.
        self._held: dict[int, tuple[list[Delivery], float]] = {}

    def targets(self, activity: str) -> list[tuple[str, dict[str, str]]]:
        """Where ``activity`` goes, each url with the custom headers sent along."""
        urls: list[tuple[str, dict[str, str]]] = (
            [(self._options.webhook_url, {})] if self._options.webhook_url else [])
        urls += [(hook.url, hook.custom_headers) for hook in self.registered
                 if activity in hook.only_for_activities]
        return urls

    def enqueue(self, payloads: list[dict[str, Any]], faults: Faults) -> list[Delivery]:
        """Sign ``payloads`` (one lifecycle step) and queue them after the faults have spoken."""
        batch: list[Delivery] = []
        key = self._options.hmac_key_bytes
        for payload in payloads:
            body = json.dumps(payload, separators=(",", ":")).encode()
            for url, headers in self.targets(payload["activity"]):
                delivery = Delivery(url, payload["activity"], payload["contract_id"], body,
                                    sign(key, body), headers)
                if self._rng.random() < faults.webhook_drop_rate:
                    self._stats.webhooks["dropped"] += 1
                    continue
                batch.append(delivery)
                if self._rng.random() < faults.webhook_duplicate_rate:
                    self._stats.webhooks["duplicated"] += 1
                    batch.append(Delivery(url, delivery.activity, delivery.contract_id, body,
                                          delivery.signature, headers, duplicate=True))
        low, high = faults.webhook_delay_ms
        for delivery in batch:
            delivery.delay_s = self._rng.uniform(low, high) / 1000 if high else 0.0
        self.deliveries.extend(batch)
        if batch and faults.webhook_reorder:
            batch.reverse()
            contract_id = batch[0].contract_id
            held = self._held.pop(contract_id, None)
            if held is None:
                hold = self._options.webhook_reorder_hold_s
                self._held[contract_id] = (batch, anyio.current_time() + hold)
                self._send.send_nowait([])  # the sender learns when to let it go
                return batch
            self._stats.webhooks["reordered"] += len(held[0])
            self._send.send_nowait([*batch, *held[0]])
        elif batch:
            self._send.send_nowait(batch)
        return batch

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        timeout = httpx.Timeout(self._options.webhook_timeout_s)
        async with (
            httpx.AsyncClient(transport=self._options.webhook_transport, timeout=timeout,
                              follow_redirects=False) as client,
            anyio.create_task_group() as retries,
            self._receive,
        ):
            task_status.started()
            while True:
                due = min((until for _, until in self._held.values()), default=math.inf)
                batch: list[Delivery] = []
                with anyio.move_on_after(due - anyio.current_time()):
                    try:
                        batch = await self._receive.receive()
                    except anyio.EndOfStream:
                        return
                for delivery in batch:
                    if delivery.delay_s:
                        retries.start_soon(self._deliver_later, client, delivery)
                    elif not await self._attempt(client, delivery):
                        retries.start_soon(self._retry, client, delivery)
                now = anyio.current_time()
                for contract_id, (held, until) in list(self._held.items()):
                    if until <= now:  # no next step came: it goes as it is
                        del self._held[contract_id]
                        self._send.send_nowait(held)

    async def _deliver_later(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        await anyio.sleep(delivery.delay_s)
        if not await self._attempt(client, delivery):
            await self._retry(client, delivery)

    async def _retry(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        for pause in self._options.webhook_retry_delays:
            await anyio.sleep(pause)
            if await self._attempt(client, delivery):
                return
        self._stats.webhooks["gave_up"] += 1
        self._on_change()

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery) -> bool:
        try:
            return await self._post(client, delivery)
        finally:
            self._on_change()

    async def _post(self, client: httpx.AsyncClient, delivery: Delivery) -> bool:
        delivery.attempts += 1
        self._stats.webhooks["sent"] += 1
        # Custom names never clash with these: none may start with X-SD- or lack X-.
        headers = {**delivery.headers, "Content-Type": "application/json",
                   SIGNATURE_HEADER: delivery.signature,
                   "User-Agent": "SpotDraft-Webhooks (spotsync sandbox)"}
        try:
            response = await client.post(delivery.url, content=delivery.body, headers=headers)
        except httpx.HTTPError:
            delivery.status = None
            self._stats.webhooks["failed_attempts"] += 1
            return False
        delivery.status = response.status_code
        if response.is_success:
            delivery.delivered = True
            self._stats.webhooks["delivered"] += 1
            return True
        self._stats.webhooks["failed_attempts"] += 1
        return False

    def close(self) -> None:
        self._send.close()

