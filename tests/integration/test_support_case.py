"""A recorded support case, end to end: built by the real handlers against the sandbox with
a duplicated, a reordered and a missing webhook and a reconciler repair; exported,
imported into a fresh SQLite file and replayed at three positions, where the state must
be what the live projection showed at those positions."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from daemon.cli import main
from daemon.sandbox import Sandbox, SandboxOptions
from eventstore import EventStore, NewEvent, open_store
from eventstore.envelope import format_timestamp, utcnow
from handlers.reconciler import reconcile_once
from handlers.worker import run_handlers
from projections.contract import public_view
from projections.events import EventType, contract_stream
from projections.runner import CONTRACTS, run_projections, wait_for_projection
from tests.integration.test_flow import _client, _request

CASE = "deal-case"


@dataclass
class _Receiver:
    """The daemon's webhook intake, with faults: CREATED stored twice, SENT held back until
    after SIGNATURE_REQUESTED, EXECUTED dropped."""

    store: EventStore
    seen: list[str] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)

    async def _store(self, data: dict[str, Any]) -> None:
        event = NewEvent(EventType.WEBHOOK_RECEIVED, data, "webhook")
        await self.store.append(contract_stream(CASE), [event], expected_version=None)

    async def receive(self, request: httpx.Request) -> httpx.Response:
        raw = request.content.decode()
        body = json.loads(raw)
        activity = body["activity"]
        data = {
            "activity": activity,
            "contract_id": body.get("contract_id"),
            "contract_status": body.get("contract_status"),
            "external_id": CASE,
            "raw_body": raw,
            "raw_body_base64": None,
            "signature": request.headers.get("x-sd-webhook-content-hash", ""),
            "received_at": format_timestamp(utcnow()),
        }
        if activity == "CONTRACT_SENT_TO_COUNTERPARTY":
            self.held.append(data)
        elif activity != "CONTRACT_EXECUTED":
            await self._store(data)
            if activity == "CONTRACT_CREATED":
                await self._store(data)
            if activity == "CONTRACT_SIGNATURE_REQUESTED":
                for late in self.held:
                    await self._store(late)
        self.seen.append(activity)
        return httpx.Response(200)


async def _document(store: EventStore) -> dict[str, Any]:
    await wait_for_projection(store, await store.last_position())
    doc = await store.get_document(CONTRACTS, CASE)
    assert doc is not None
    return public_view(doc)


async def _build_case(database: str, documents: Path) -> list[dict[str, Any]]:
    """Runs the case; returns the projection's document at three moments."""
    snapshots: list[dict[str, Any]] = []
    async with await open_store(database) as store:
        receiver = _Receiver(store)
        options = SandboxOptions(
            webhook_url="http://receiver.test/webhooks/spotdraft",
            webhook_transport=httpx.MockTransport(receiver.receive),
        )
        async with (
            Sandbox.serve(options) as sandbox,
            _client(sandbox) as client,
            anyio.create_task_group() as tg,
        ):
            await tg.start(run_projections, store)
            await tg.start(functools.partial(run_handlers, store, client, documents_dir=documents))
            await _request(store, "deal-other", send=None)
            await _request(store, CASE, send={})
            with anyio.fail_after(30):
                await sandbox.wait_until(lambda: "CONTRACT_SENT_TO_COUNTERPARTY" in receiver.seen)
                doc = await _document(store)
                while doc["sync"] != "sent":
                    await store.wait_for_append(doc["last_position"])
                    doc = await _document(store)
                snapshots.append(doc)
                composite = doc["spotdraft"]["id"]
                await sandbox.advance(composite)  # SIGN, then the late SENT
                await sandbox.wait_until(lambda: "CONTRACT_SIGNATURE_REQUESTED" in receiver.seen)
                snapshots.append(await _document(store))
                await sandbox.advance(composite)  # SIGNED, EXECUTED (dropped)
                await sandbox.wait_until(lambda: "CONTRACT_EXECUTED" in receiver.seen)
                later = utcnow() + timedelta(hours=1)
                await reconcile_once(store, client, stale_after=900, batch=5, now=later)
                doc = await _document(store)
                while doc["sync"] != "synced":
                    await store.wait_for_append(doc["last_position"])
                    doc = await _document(store)
                snapshots.append(doc)
            tg.cancel_scope.cancel()
    return snapshots


async def _positions(database: str) -> dict[str, int]:
    async with await open_store(database) as store:
        return {e.event_id: e.position for e in await store.read_stream(contract_stream(CASE))}


async def _projected(database: str) -> dict[str, Any]:
    async with await open_store(database) as store:
        doc = await store.get_document(CONTRACTS, CASE)
    assert doc is not None
    return public_view(doc)


def _replay(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["replay", "--external-id", CASE, "--json", *args])
    lines = capsys.readouterr().out.splitlines()
    final: dict[str, Any] = json.loads(lines[-1])
    final["exit"] = code
    final["steps"] = [json.loads(line) for line in lines[:-1]]
    return final


def _without_position(doc: dict[str, Any]) -> dict[str, Any]:
    # An import gives each event a new position; everything else, times too, must match.
    return {k: v for k, v in doc.items() if k != "last_position"}


def test_a_messy_case_replays_to_what_the_projection_showed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Imported fresh and replayed, the case's state at three positions is the projection's."""
    original, fresh = str(tmp_path / "original.db"), str(tmp_path / "fresh.db")
    exported = tmp_path / "case.jsonl"
    snapshots = anyio.run(_build_case, original, tmp_path)
    assert [s["status"] for s in snapshots] == ["REDLINING", "SIGN", "EXECUTED"]
    assert snapshots[2]["sync"] == "synced"

    monkeypatch.setenv("SPOTSYNC_DATABASE", original)
    assert main(["export", "--external-id", CASE, "--output", str(exported)]) == 0
    monkeypatch.setenv("SPOTSYNC_DATABASE", fresh)
    assert main(["import", str(exported)]) == 0
    capsys.readouterr()
    moved = anyio.run(_positions, original)
    now_at = anyio.run(_positions, fresh)
    position_in_fresh = {moved[event_id]: now_at[event_id] for event_id in moved}

    # The imported contract's projection, rebuilt there, is the one the original showed.
    assert main(["projections", "rebuild"]) == 0
    capsys.readouterr()
    rebuilt = anyio.run(_projected, fresh)
    assert rebuilt["last_position"] == position_in_fresh[snapshots[2]["last_position"]]
    assert _without_position(rebuilt) == _without_position(snapshots[2])

    for snapshot in snapshots:
        at = position_in_fresh[snapshot["last_position"]]
        replayed = _replay(capsys, "--until", str(at))
        assert replayed["state"]["last_position"] == at
        assert _without_position(replayed["state"]) == _without_position(snapshot)
        # From the exported file itself, positions and times are the original ones.
        from_file = _replay(
            capsys, "--from", str(exported), "--until", str(snapshot["last_position"])
        )
        assert from_file["state"] == snapshot
        assert from_file["differences"] == 0, from_file["steps"]

    summaries = [step["summary"] for step in _replay(capsys)["steps"]]
    assert "webhook CONTRACT_CREATED (duplicate of" in "\n".join(summaries)
    assert "webhook CONTRACT_SENT_TO_COUNTERPARTY (late: arrived after a later stage)" in summaries
    assert "GET status → EXECUTED (reconciler)" in summaries
    assert not any(s.startswith("webhook CONTRACT_EXECUTED") for s in summaries)
