"""Webhooks: payload shape, the description's own signature check, retries and faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import httpx
import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest

from daemon.sandbox import Faults, Sandbox, SandboxOptions
from tests.unit.sandbox.support import (
    API,
    HEADERS,
    acme,
    create,
    sandbox_client,
    schemas,
    wait_until,
)

pytestmark = pytest.mark.anyio


class Receiver:
    """An in-process webhook endpoint: records deliveries, answers from a script."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.statuses = list(statuses or [])

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    @property
    def activities(self) -> list[str]:
        return [json.loads(r.content)["activity"] for r in self.requests]


def _options(receiver: Receiver, **values: object) -> SandboxOptions:
    return SandboxOptions(webhook_url="http://receiver.test/hook",
                          webhook_transport=httpx.MockTransport(receiver.handle),
                          webhook_retry_delays=(0.01, 0.01, 0.01), **values)  # type: ignore[arg-type]


async def _run_to_execution(options: SandboxOptions, void_one: bool = False) -> Sandbox:
    async with Sandbox.running(options) as sandbox:
        transport = httpx.ASGITransport(app=sandbox.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test",
                                     headers=HEADERS) as client:
            cid = await create(client)
            await client.post(f"{API}/contracts/{cid}/send_to_counterparties", json={})
            await sandbox.advance(cid)
            await sandbox.advance(cid)
            if void_one:
                other = await create(client)
                await client.post(f"{API}/contracts/{other}/status/void", json={"note": "x"})
            # Every delivery is queued by now; wait until each one has landed.
            await wait_until(sandbox, lambda: all(d.delivered for d in sandbox.deliveries))
    return sandbox


async def test_lifecycle_sends_the_documented_activities_in_order() -> None:
    """Created, sent, signature requested, one signed per signatory, executed."""
    receiver = Receiver()
    await _run_to_execution(_options(receiver))
    assert receiver.activities == [
        "CONTRACT_CREATED", "CONTRACT_SENT_TO_COUNTERPARTY", "CONTRACT_SIGNATURE_REQUESTED",
        "CONTRACT_SIGNED", "CONTRACT_SIGNED", "CONTRACT_EXECUTED",
    ]


async def test_payloads_validate_against_contract_activity_domain_model() -> None:
    """Every delivered body, voided included, validates against the webhook schema."""
    receiver = Receiver()
    await _run_to_execution(_options(receiver), void_one=True)
    assert "CONTRACT_VOIDED" in receiver.activities
    for request in receiver.requests:
        payload = json.loads(request.content)
        jsonschema.validate(payload, schemas()["webhook"])
        assert payload["external_metadata"]["id"] == acme()["external_metadata"]["id"]


async def test_payloads_read_as_the_descriptions_examples() -> None:
    """Counterparty type "Organization", the entity's country by name, SYSTEM executing,
    and a send naming its email recipients."""
    receiver = Receiver()
    await _run_to_execution(_options(receiver))
    payloads = {p["activity"]: p for p in (json.loads(r.content) for r in receiver.requests)}
    created = payloads["CONTRACT_CREATED"]
    assert [c["type"] for c in created["counterparties"]] == ["Organization"]
    assert created["entity"]["jurisdiction"] == "United States"
    assert payloads["CONTRACT_EXECUTED"]["activity_data"]["performed_by"] == {"name": "SYSTEM"}
    sent = payloads["CONTRACT_SENT_TO_COUNTERPARTY"]["activity_data"]
    assert sent["counterparty_email_recipients"] == {
        "to_recipients": ["legal@acme.example"], "cc_recipients": []}
    assert "counterparty_email_recipients" not in created["activity_data"]


async def test_a_send_names_the_recipients_it_was_given() -> None:
    """to_emails and cc_emails of the send are the webhook's to and cc recipients;
    an individual counterparty is of type "Individual"."""
    receiver = Receiver()
    payload = acme()
    payload["counter_party_details"] = [{
        "is_individual": True,
        "poc_details": {"first_name": "Jo", "last_name": "Park", "email": "jo@park.example"},
    }]
    async with Sandbox.running(_options(receiver)) as sandbox:
        transport = httpx.ASGITransport(app=sandbox.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test",
                                     headers=HEADERS) as client:
            cid = await create(client, payload)
            await client.post(f"{API}/contracts/{cid}/send_to_counterparties", json={
                "attachment_formats": ["PDF"], "to_emails": ["ap@park.example"],
                "cc_emails": ["owner@spotsync.example"], "bcc_emails": ["audit@spotsync.example"]})
            await wait_until(sandbox, lambda: len(receiver.requests) == 2)
    sent = json.loads(receiver.requests[1].content)
    assert sent["activity_data"]["counterparty_email_recipients"] == {
        "to_recipients": ["ap@park.example"], "cc_recipients": ["owner@spotsync.example"]}
    assert [c["type"] for c in sent["counterparties"]] == ["Individual"]


async def test_signature_verifies_with_the_descriptions_snippet() -> None:
    """The description's Python check passes on the body, and fails when one byte changes."""
    receiver = Receiver()
    sandbox = await _run_to_execution(_options(receiver))
    sample_hmac_key = sandbox.options.hmac_key
    for request in receiver.requests:
        signature = hmac.new(
            base64.b64decode(sample_hmac_key), request.content, digestmod=hashlib.sha512,
        ).hexdigest()
        assert signature == request.headers["X-SD-WEBHOOK-CONTENT-HASH"]
        tampered = bytearray(request.content)
        tampered[len(tampered) // 2] ^= 0x01
        forged = hmac.new(base64.b64decode(sample_hmac_key), bytes(tampered),
                          digestmod=hashlib.sha512).hexdigest()
        assert forged != request.headers["X-SD-WEBHOOK-CONTENT-HASH"]


async def test_failed_delivery_is_retried_until_accepted() -> None:
    """A 500 and a 503 from the receiver are followed by retries of the same body."""
    receiver = Receiver(statuses=[500, 503])
    async with Sandbox.running(_options(receiver)) as sandbox:
        transport = httpx.ASGITransport(app=sandbox.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s.test",
                                     headers=HEADERS) as client:
            await create(client)
            await wait_until(sandbox, lambda: any(d.delivered for d in sandbox.deliveries))
    assert [r.content for r in receiver.requests] == [receiver.requests[0].content] * 3
    assert sandbox.deliveries[0].attempts == 3
    assert sandbox.stats.to_json()["webhooks"]["failed_attempts"] == 2


async def test_delivery_gives_up_after_the_last_retry() -> None:
    """A receiver that always fails gets the first attempt plus one per retry pause."""
    receiver = Receiver(statuses=[500] * 10)
    async with Sandbox.running(_options(receiver)) as sandbox:
        transport = httpx.ASGITransport(app=sandbox.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s.test",
                                     headers=HEADERS) as client:
            await create(client)
            await wait_until(sandbox, lambda: sandbox.stats.webhooks["gave_up"] == 1)
    assert len(receiver.requests) == 4


async def _fates(seed: int, faults: Faults) -> tuple[list[str], dict[str, int]]:
    receiver = Receiver()
    sandbox = await _run_to_execution(_options(receiver, seed=seed, faults=faults))
    return receiver.activities, dict(sandbox.stats.webhooks)


async def test_webhook_faults_are_deterministic_under_a_seed() -> None:
    """The same seed drops and duplicates the same deliveries; stats count them."""
    faults = Faults(webhook_drop_rate=0.3, webhook_duplicate_rate=0.3)
    first, stats = await _fates(7, faults)
    second, _ = await _fates(7, faults)
    assert first == second
    assert stats["dropped"] + stats["duplicated"] > 0
    assert len(first) == 6 - stats["dropped"] + stats["duplicated"]


async def test_reorder_delivers_a_step_after_the_next_one_and_each_backwards() -> None:
    """With webhook_reorder a contract's step waits for its next step to go first, so a
    late SENT-like delivery can land after the EXECUTED that follows it; within a step,
    EXECUTED goes before the signatures."""
    activities, stats = await _fates(0, Faults(webhook_reorder=True))
    assert activities == [
        "CONTRACT_SENT_TO_COUNTERPARTY", "CONTRACT_CREATED",
        "CONTRACT_EXECUTED", "CONTRACT_SIGNED", "CONTRACT_SIGNED",
        "CONTRACT_SIGNATURE_REQUESTED",
    ]
    assert stats["reordered"] == 2


async def test_a_step_held_back_for_reorder_goes_once_no_next_step_comes() -> None:
    """The last step of a contract has nothing to wait for: it goes after the hold."""
    receiver = Receiver()
    options = _options(receiver, faults=Faults(webhook_reorder=True),
                       webhook_reorder_hold_s=0.05)
    async with Sandbox.running(options) as sandbox:
        transport = httpx.ASGITransport(app=sandbox.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test",
                                     headers=HEADERS) as client:
            await create(client)
            await wait_until(sandbox, lambda: any(d.delivered for d in sandbox.deliveries))
    assert receiver.activities == ["CONTRACT_CREATED"]


async def test_registered_webhook_gets_only_its_activities() -> None:
    """A webhook registered through the API receives just the activities it asked for."""
    receiver = Receiver()
    options = SandboxOptions(webhook_transport=httpx.MockTransport(receiver.handle))
    async with Sandbox.running(options) as sandbox:
        transport = httpx.ASGITransport(app=sandbox.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s.test",
                                     headers=HEADERS) as client:
            await client.post(f"{API}/webhooks/", json={
                "title": "t", "url": "https://receiver.test/hook",
                "only_for_activities": ["CONTRACT_EXECUTED"]})
            cid = await create(client)
            await client.post(f"{API}/contracts/{cid}/send_to_counterparties", json={})
            await sandbox.advance(cid)
            await sandbox.advance(cid)
            await wait_until(sandbox, lambda: len(receiver.requests) == 1)
    assert receiver.activities == ["CONTRACT_EXECUTED"]


WEBHOOK = {"title": "t", "url": "https://crm.example/hook",
           "only_for_activities": ["CONTRACT_CREATED"]}


async def test_custom_headers_go_with_every_delivery_to_their_hook() -> None:
    """A hook's custom headers (names trimmed) are on each attempt to it, and only to it."""
    receiver = Receiver(statuses=[500])  # the first attempt fails and is retried
    options = SandboxOptions(webhook_transport=httpx.MockTransport(receiver.handle),
                             webhook_retry_delays=(0.01,))
    async with Sandbox.running(options) as sandbox:
        transport = httpx.ASGITransport(app=sandbox.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s.test",
                                     headers=HEADERS) as client:
            registered = await client.post(f"{API}/webhooks/", json={
                **WEBHOOK, "custom_headers": {" X-ABC-ACCESS-KEY ": "example-access-key"}})
            await client.post(f"{API}/webhooks/", json={**WEBHOOK, "url": "https://b.example/"})
            await create(client)
            await wait_until(sandbox, lambda: all(d.delivered for d in sandbox.deliveries))
    assert registered.status_code == 201
    assert registered.json()["custom_headers"] == {"X-ABC-ACCESS-KEY": "example-access-key"}
    to_hook = [r.headers.get("X-ABC-ACCESS-KEY") for r in receiver.requests
               if r.url.host == "crm.example"]
    to_other = [r.headers.get("X-ABC-ACCESS-KEY") for r in receiver.requests
                if r.url.host == "b.example"]
    assert to_hook == ["example-access-key", "example-access-key"]
    assert to_other == [None]


@pytest.mark.parametrize(("change", "field"), [
    ({"only_for_activities": []}, "only_for_activities"),
    ({"url": "http://crm.example/hook"}, "url"),
    ({"url": "http://10.0.0.8:8080/hook"}, "url"),
    ({"url": "ftp://crm.example/hook"}, "url"),
    ({"custom_headers": {"Authorization": "Bearer x"}}, "custom_headers"),
    ({"custom_headers": {"DEF-ACCESS-KEY": "x"}}, "custom_headers"),
    ({"custom_headers": {"X-SD-WEBHOOK-CONTENT-HASH": "forged"}}, "custom_headers"),
    ({"custom_headers": {"x-amz-date": "x"}}, "custom_headers"),
    ({"custom_headers": {"X-Key": 42}}, "custom_headers"),
    ({"custom_headers": ["X-Key"]}, "custom_headers"),
])
async def test_webhook_registration_follows_openapis_rules(
    change: dict[str, object], field: str
) -> None:
    """An empty activity list, non-HTTPS urls, and reserved or standard header names: 400."""
    async with sandbox_client() as (sandbox, client):
        response = await client.post(f"{API}/webhooks/", json={**WEBHOOK, **change})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "SD_PUBLIC_00002"
    assert body["message"].startswith(f"{field}: ")
    assert sandbox.sender.registered == []
    if change == {"only_for_activities": []}:
        assert body["message"] == "only_for_activities: The list cannot be empty."


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/webhooks/spotdraft", "http://[::1]:8080/hook",
    "http://localhost/hook", "https://crm.example/hook",
])
async def test_webhook_urls_are_https_or_loopback(url: str) -> None:
    """https anywhere, and plain http on this machine only (the sandbox's local daemon)."""
    async with sandbox_client() as (_, client):
        response = await client.post(f"{API}/webhooks/", json={**WEBHOOK, "url": url})
    assert response.status_code == 201, response.text
