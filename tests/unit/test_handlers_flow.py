"""The handlers against a fake SpotDraft: each fact acted on once, errors sorted right."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import anyio
import pytest

from eventstore import MemoryEventStore
from handlers.executor import Executor
from handlers.spotdraft import OutcomeUnknownError, Result
from handlers.worker import HandlerRunner
from projections.events import EventType
from tests.unit.test_handlers_support import (
    FakeSpotDraft,
    append,
    handlers,
    permanent,
    request,
    settle,
    state_of,
    transient,
    webhook,
)

pytestmark = pytest.mark.anyio


async def test_duplicated_execution_pulls_key_pointers_and_document_once(tmp_path: Path) -> None:
    """Three CONTRACT_EXECUTED deliveries: one key-pointer call, one download, synced."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    async with handlers(store, client, tmp_path):
        await request(store, send={})
        with anyio.fail_after(5):
            state = await settle(store)
            assert state.sent
            for _ in range(3):
                await webhook(store, "CONTRACT_EXECUTED")
            await webhook(store, "CONTRACT_SENT_TO_COUNTERPARTY")  # late, changes nothing
            state = await settle(store)
    assert client.calls["get_key_pointers"] == 1
    assert client.calls["download"] == 1
    assert client.calls["create_contract"] == 1
    assert (state.status, state.sync) == ("EXECUTED", "synced")
    assert state.key_pointers == {"contract_value": 12000}
    assert state.document is not None
    assert (tmp_path / state.document["path"]).exists()


async def test_unknown_create_outcome_is_looked_up_not_repeated(tmp_path: Path) -> None:
    """A create whose answer was lost is found by external id: one contract, no second POST."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    client.fail["create_contract"] = [OutcomeUnknownError("timed out")]
    async with handlers(store, client, tmp_path):
        await request(store)
        with anyio.fail_after(5):
            state = await settle(store)
    assert client.calls["create_contract"] == 1
    assert client.calls["find_by_external_id"] == 1
    assert len(client.contracts) == 1
    assert (state.sync, state.spotdraft_id) == ("created", "T-1")


async def test_send_refused_because_already_sent_checks_status_instead_of_failing(
    tmp_path: Path,
) -> None:
    """A 402 on send for a contract already past DRAFT counts as sent, not as a failure."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    client.fail["send_to_counterparties"] = [permanent(402, {"detail": "not in DRAFT"})]
    async with handlers(store, client, tmp_path):
        await request(store)
        with anyio.fail_after(5):
            await settle(store)
            client.contracts["T-1"]["contract_status"] = "SIGN"  # sent from SpotDraft's UI
            await append(store, EventType.SEND_REQUESTED, {"body": {}}, source="intake")
            state = await settle(store)
    assert client.calls["get_status"] == 1
    assert (state.status, state.sync, state.error) == ("SIGN", "sent", None)


class SendAnswerLost(FakeSpotDraft):
    """A send whose answer never comes back (a timeout, a 5xx): SpotDraft carried it out
    first (``acted``) or not."""

    def __init__(self, *, acted: bool) -> None:
        super().__init__()
        self.acted = acted
        self.lost = 1

    async def send_to_counterparties(
        self, composite_id: str, body: dict[str, Any] | None = None
    ) -> Result[dict[str, Any]]:
        if self.lost:
            self.lost -= 1
            self.calls["send_to_counterparties"] += 1
            if self.acted:
                self.contracts[composite_id]["contract_status"] = "REDLINING"
            raise OutcomeUnknownError("timed out")
        return await super().send_to_counterparties(composite_id, body)


@pytest.mark.parametrize(("acted", "sends"), [(True, 1), (False, 2)])
async def test_a_send_with_no_answer_is_checked_before_it_is_sent_again(
    tmp_path: Path, acted: bool, sends: int
) -> None:
    """A send that may have happened asks SpotDraft's status: sent already (REDLINING)
    counts as sent, never sent twice; still DRAFT is sent now."""
    store, client = MemoryEventStore(), SendAnswerLost(acted=acted)
    async with handlers(store, client, tmp_path):
        await request(store, send={})
        with anyio.fail_after(5):
            state = await settle(store)
    assert (client.calls["send_to_counterparties"], client.calls["get_status"]) == (sends, 1)
    assert (state.status, state.sync, state.error) == ("REDLINING", "sent", None)
    sent = [e for e in await store.read_stream("contract-deal-1") if e.type == "ContractSent"]
    assert [e.data["already_sent"] for e in sent] == [acted]


@pytest.mark.parametrize(
    ("failing", "step", "calls"),
    [
        ("get_key_pointers", "key_pointers", (2, 1, 1)),
        ("download", "document", (1, 2, 2)),
    ],
)
async def test_a_step_whose_retries_run_out_is_deferred_and_a_nudge_redoes_it(
    tmp_path: Path, failing: str, step: str, calls: tuple[int, int, int]
) -> None:
    """Retries running out defer the step (never fail it); the reconciler's nudge redoes
    that step alone. A document is fetched again through a new link: links are temporary."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    client.fail[failing] = [transient()]
    async with handlers(store, client, tmp_path):
        await request(store)
        with anyio.fail_after(5):
            await settle(store)
            await webhook(store, "CONTRACT_EXECUTED")
            state = await settle(store)
            assert (state.sync, state.deferred, state.error) == ("executed", step, None)
            observed = {"contract_status": "EXECUTED", "by": "reconciler"}
            await append(store, EventType.STATUS_OBSERVED, observed, source="reconciler")
            state = await settle(store)
    pulls = ("get_key_pointers", "get_download_link", "download")
    assert tuple(client.calls[call] for call in pulls) == calls
    assert state.sync == "synced"
    assert state.document is not None
    assert (tmp_path / state.document["path"]).read_bytes().startswith(b"%PDF")


async def test_permanent_error_parks_and_retry_reruns_the_step(tmp_path: Path) -> None:
    """A 404 on create ends failed with a fix; after RetryRequested the create runs again."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    client.fail["create_contract"] = [permanent(404, {"detail": "Template not found"})]
    async with handlers(store, client, tmp_path):
        await request(store)
        with anyio.fail_after(5):
            state = await settle(store)
            assert state.sync == "failed"
            assert state.error is not None
            # A request SpotDraft refused is corrected by submitting it again, fixed.
            assert state.error["fix"].startswith("do better; then submit the corrected request")
            await append(store, EventType.RETRY_REQUESTED, {"reason": None}, source="operator")
            state = await settle(store)
    assert state.sync == "created"
    assert client.calls["create_contract"] == 2


async def test_restart_reprocesses_from_the_checkpoint_without_repeating_calls(
    tmp_path: Path,
) -> None:
    """Handlers restarted on the same log do not call SpotDraft again for work recorded."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    async with handlers(store, client, tmp_path):
        await request(store, send={})
        with anyio.fail_after(5):
            await settle(store)
    await store.save_checkpoint("handlers", 0)  # as if it crashed before saving any
    async with handlers(store, client, tmp_path):
        with anyio.fail_after(5):
            state = await settle(store)
    assert client.calls["create_contract"] == 1
    assert client.calls["send_to_counterparties"] == 1
    assert state.sync == "sent"


async def test_two_workers_on_one_log_create_once(tmp_path: Path) -> None:
    """Two handler processes racing on the same request: one intent wins, one create call."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    gate = anyio.Event()
    create = client.create_contract

    async def slow_create(payload: dict[str, Any]) -> Result[dict[str, Any]]:
        await gate.wait()
        return await create(payload)

    client.create_contract = slow_create  # type: ignore[method-assign]  # a slower SpotDraft
    runners = [
        HandlerRunner(store, Executor(store, client, documents_dir=tmp_path), name=f"w{n}")
        for n in range(2)
    ]
    await request(store)
    async with anyio.create_task_group() as tg:
        for runner in runners:
            await tg.start(functools.partial(runner.run))
        with anyio.fail_after(5):
            while not any(
                e.type == EventType.CONTRACT_CREATE_INTENDED
                for e in await store.read_stream("contract-deal-1")
            ):
                await store.wait_for_append(await store.last_position())
            await anyio.wait_all_tasks_blocked()
            gate.set()
            for runner in runners:
                await settle(store, checkpoint=runner.name)
        tg.cancel_scope.cancel()
    state = await state_of(store)
    assert client.calls["create_contract"] == 1
    assert (state.sync, state.intents) == ("created", 1)


async def test_a_crash_before_the_create_reached_spotdraft_creates_after_lookup(
    tmp_path: Path,
) -> None:
    """An intent left by a dead worker whose POST never arrived: lookup, then one create."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    await request(store)
    await append(store, EventType.CONTRACT_CREATE_INTENDED, {"attempt": 1}, source="api")
    executor = Executor(store, client, documents_dir=tmp_path, intent_lease=0.0)
    runner = HandlerRunner(store, executor)
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(runner.run))
        with anyio.fail_after(5):
            state = await settle(store)
        tg.cancel_scope.cancel()
    types = [e.type for e in await store.read_stream("contract-deal-1")]
    assert client.calls["find_by_external_id"] == 1
    assert client.calls["create_contract"] == 1
    assert EventType.CONTRACT_NOT_FOUND in types
    assert (state.sync, state.intents) == ("created", 2)
