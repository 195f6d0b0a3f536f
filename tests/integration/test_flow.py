"""The flow end to end: handlers and projections on the memory store, the sandbox over loopback.

Webhooks reach the log the way the daemon's intake stores them (a ``WebhookReceived``
event on the contract's stream); the HTTP intake itself is tested elsewhere.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from daemon.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Sandbox, SandboxOptions
from eventstore import EventStore, MemoryEventStore, NewEvent
from eventstore.envelope import format_timestamp, utcnow
from handlers.reconciler import reconcile_once
from handlers.spotdraft import RetryPolicy, SpotDraftClient, SpotDraftCredentials
from handlers.worker import run_handlers
from projections.events import EventType, contract_stream
from projections.runner import CONTRACT_IDS, CONTRACTS, run_projections, wait_for_projection

pytestmark = pytest.mark.anyio

ACME = json.loads((Path(__file__).parents[1] / "data" / "acme_contract.json").read_text())


def _receiver(store: EventStore) -> httpx.MockTransport:
    """Stores each delivery as the daemon's webhook intake would, then answers 200."""

    async def receive(request: httpx.Request) -> httpx.Response:
        raw = request.content.decode()
        body = json.loads(raw)
        meta = body.get("external_metadata") or {}
        external_id = meta.get("id")
        if external_id is None:
            row = await store.get_document(CONTRACT_IDS, str(body.get("contract_id")))
            external_id = row["external_id"] if row else None
        data = {
            "activity": body.get("activity"),
            "contract_id": body.get("contract_id"),
            "contract_status": body.get("contract_status"),
            "external_id": external_id,
            "raw_body": raw,
            "raw_body_base64": None,
            "signature": request.headers.get("x-sd-webhook-content-hash", ""),
            "received_at": format_timestamp(utcnow()),
        }
        stream = contract_stream(external_id) if external_id else "webhooks-unmatched"
        event = NewEvent(EventType.WEBHOOK_RECEIVED, data, "webhook")
        await store.append(stream, [event], expected_version=None)
        return httpx.Response(200)

    return httpx.MockTransport(receive)


def _client(sandbox: Sandbox) -> SpotDraftClient:
    assert sandbox.url is not None
    credentials = SpotDraftCredentials(sandbox.url, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    return SpotDraftClient(credentials, retry=RetryPolicy(max_attempts=3))


async def _request(store: EventStore, external_id: str, send: dict[str, Any] | None) -> None:
    request = copy.deepcopy(ACME)
    request["external_metadata"]["id"] = external_id
    data = {"external_id": external_id, "request": request, "send": send, "fingerprint": "x"}
    await store.append(
        contract_stream(external_id),
        [NewEvent(EventType.CONTRACT_REQUESTED, data, "intake")],
        expected_version=0,
    )


async def _wait_for_document(
    store: EventStore, external_id: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The contract's projection once ``condition`` holds (bound it with fail_after)."""
    while True:
        position = await store.last_position()
        await wait_for_projection(store, position)
        doc = await store.get_document(CONTRACTS, external_id)
        if doc is not None and condition(doc):
            return doc
        await store.wait_for_append(position)


@asynccontextmanager
async def _daemon(
    store: EventStore, sandbox: Sandbox, documents: Path
) -> AsyncIterator[anyio.abc.TaskGroup]:
    async with _client(sandbox) as client, anyio.create_task_group() as tg:
        await tg.start(run_projections, store)
        await tg.start(functools.partial(run_handlers, store, client, documents_dir=documents))
        yield tg
        tg.cancel_scope.cancel()


async def test_a_request_goes_from_intake_to_synced(tmp_path: Path) -> None:
    """A requested contract is created once, sent, followed to execution and synced."""
    store = MemoryEventStore()
    options = SandboxOptions(
        webhook_url="http://receiver.test/webhooks/spotdraft", webhook_transport=_receiver(store)
    )
    async with Sandbox.serve(options) as sandbox, _daemon(store, sandbox, tmp_path):
        await _request(store, "hubspot-deal-10024", send={})
        with anyio.fail_after(20):
            doc = await _wait_for_document(
                store, "hubspot-deal-10024", lambda d: d["sync"] == "sent"
            )
            composite = doc["spotdraft"]["id"]
            await sandbox.advance(composite)  # SIGN
            await sandbox.advance(composite)  # EXECUTED
            doc = await _wait_for_document(
                store, "hubspot-deal-10024", lambda d: d["sync"] == "synced"
            )
        contracts = sandbox.contracts()

    assert [c["external_metadata"]["id"] for c in contracts] == ["hubspot-deal-10024"]
    assert doc["status"] == "EXECUTED"
    assert doc["key_pointers"]["customer_name"] == "Acme Inc."
    stored = tmp_path / doc["document"]["path"]
    assert stored.parent == tmp_path
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == doc["document"]["sha256"]
    assert doc["document"]["sha256"] == contracts[0]["document_sha256"]
    assert doc["error"] is None


async def test_a_crash_between_create_and_record_leaves_one_contract(tmp_path: Path) -> None:
    """Killed after SpotDraft created the contract but before the outcome was recorded,
    the restarted handlers find it by external id instead of creating a second one."""
    store = MemoryEventStore()
    options = SandboxOptions()
    async with Sandbox.serve(options) as sandbox:
        sandbox.set_faults(replace(sandbox.faults, create_delay_ms=60_000))
        async with _daemon(store, sandbox, tmp_path):
            await _request(store, "deal-crash", send=None)
            with anyio.fail_after(10):
                await sandbox.wait_until(lambda: len(sandbox.contracts()) == 1)
        # The daemon is gone: the intent is recorded, its outcome is not.
        types = [e.type for e in await store.read_stream(contract_stream("deal-crash"))]
        assert types == [EventType.CONTRACT_REQUESTED, EventType.CONTRACT_CREATE_INTENDED]

        sandbox.set_faults(replace(sandbox.faults, create_delay_ms=0))
        async with _daemon(store, sandbox, tmp_path):
            with anyio.fail_after(10):
                doc = await _wait_for_document(
                    store, "deal-crash", lambda d: d["sync"] == "created"
                )
        contracts = sandbox.contracts()

    assert len(contracts) == 1
    assert doc["spotdraft"]["id"] == contracts[0]["id"]
    history = await store.read_stream(contract_stream("deal-crash"))
    created = [e for e in history if e.type == EventType.CONTRACT_CREATED]
    assert [e.data["found_by_lookup"] for e in created] == [True]


async def test_a_template_field_mismatch_fails_with_the_fields_named(tmp_path: Path) -> None:
    """A request with a field the template lacks ends failed, naming the field to fix."""
    store = MemoryEventStore()
    async with Sandbox.serve(SandboxOptions()) as sandbox, _daemon(store, sandbox, tmp_path):
        request = copy.deepcopy(ACME)
        request["external_metadata"]["id"] = "deal-bad"
        request["contract_data"]["no_such_field"] = 1
        data = {"external_id": "deal-bad", "request": request, "send": {}, "fingerprint": "x"}
        await store.append(
            contract_stream("deal-bad"),
            [NewEvent(EventType.CONTRACT_REQUESTED, data, "intake")],
            expected_version=0,
        )
        with anyio.fail_after(10):
            doc = await _wait_for_document(store, "deal-bad", lambda d: d["sync"] == "failed")
        assert sandbox.contracts() == []
    error = doc["error"]
    assert error["step"] == "create"
    assert error["status"] == 400
    assert error["fields"] == ["contract_data.no_such_field"]
    assert "contract_data.no_such_field" in error["fix"]


async def test_lost_webhooks_are_repaired_by_the_reconciler(tmp_path: Path) -> None:
    """With every webhook dropped, a reconciliation pass finds EXECUTED and the contract syncs."""
    store = MemoryEventStore()
    options = SandboxOptions(
        webhook_url="http://receiver.test/webhooks/spotdraft", webhook_transport=_receiver(store)
    )
    async with Sandbox.serve(options) as sandbox:
        sandbox.set_faults(replace(sandbox.faults, webhook_drop_rate=1.0))
        async with _client(sandbox) as client, _daemon(store, sandbox, tmp_path):
            await _request(store, "deal-quiet", send={})
            with anyio.fail_after(20):
                doc = await _wait_for_document(store, "deal-quiet", lambda d: d["sync"] == "sent")
                await sandbox.advance(doc["spotdraft"]["id"])
                await sandbox.advance(doc["spotdraft"]["id"])
                later = utcnow() + timedelta(hours=1)
                report = await reconcile_once(store, client, stale_after=900, batch=5, now=later)
                doc = await _wait_for_document(store, "deal-quiet", lambda d: d["sync"] == "synced")
        webhooks = await store.read_stream(contract_stream("deal-quiet"))
    assert report.status_calls == 1
    assert doc["status"] == "EXECUTED"
    assert not [e for e in webhooks if e.type == EventType.WEBHOOK_RECEIVED]
