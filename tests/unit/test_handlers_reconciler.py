"""Reconciliation and parked work: bounded status calls for quiet contracts; operator retries."""

from __future__ import annotations

import functools
from collections import Counter
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from eventstore import MemoryEventStore, NewEvent, RecordedEvent
from eventstore.envelope import utcnow
from handlers import worker as worker_module
from handlers.parked import NotParkedError, list_parked, retry_parked
from handlers.reconciler import ReconcileReport, reconcile_once
from handlers.spotdraft import Exchange, TransientError
from handlers.worker import HANDLE_ATTEMPTS, HandlerRunner
from projections.events import EventType
from projections.runner import ContractProjection, catch_up
from projections.timeline import Timeline
from tests.unit.test_handlers_support import (
    FakeSpotDraft,
    handlers,
    permanent,
    request,
    settle,
    state_of,
    transient,
)

pytestmark = pytest.mark.anyio


async def _project(store: MemoryEventStore) -> None:
    await catch_up(store, ContractProjection(store))


async def test_reconciler_asks_only_quiet_contracts_within_its_batch(tmp_path: Path) -> None:
    """Only contracts quiet for stale_after are asked, at most `batch`; answers are recorded."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    async with handlers(store, client, tmp_path):
        for n in range(3):
            await request(store, f"deal-{n}")
        with anyio.fail_after(5):
            for n in range(3):
                await settle(store, f"deal-{n}")
    await _project(store)
    later = utcnow() + timedelta(minutes=20)

    recent = await reconcile_once(store, client, stale_after=900, batch=10)
    assert (recent.status_calls, recent.nudged) == (0, 0)

    report = await reconcile_once(store, client, stale_after=900, batch=2, now=later)
    assert report.status_calls == 2
    assert client.calls["get_status"] == 2
    asked = [await state_of(store, x) for x in report.external_ids]
    assert all(s.status == "DRAFT" for s in asked)
    history = await store.read_stream(f"contract-{report.external_ids[0]}")
    assert history[-1].type == EventType.STATUS_OBSERVED
    assert history[-1].data["by"] == "reconciler"
    assert len(set(report.external_ids)) == 2


async def test_a_contract_waiting_on_people_is_asked_less_often_until_something_happens(
    tmp_path: Path,
) -> None:
    """A draft nobody sends: each answer that tells nothing new doubles the wait before
    the next call (15, 30, 60 ... minutes, at most 16 times stale_after, so a contract
    waiting weeks costs a few calls a day); a webhook about it ends the wait, and an
    answer that moves it on asks for none."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    async with handlers(store, client, tmp_path):
        await request(store)
        with anyio.fail_after(5):
            await settle(store)

    async def asked(after: timedelta) -> bool:
        await _project(store)
        report = await reconcile_once(store, client, stale_after=900, batch=5, now=utcnow() + after)
        return report.status_calls == 1

    for minutes in (15, 30, 60, 120, 240, 240, 240):
        assert not await asked(timedelta(minutes=minutes - 1))
        assert await asked(timedelta(minutes=minutes))
    last = (await store.read_stream("contract-deal-1"))[-1]
    assert (last.type, last.data["next_call_in"]) == (EventType.STATUS_OBSERVED, 4 * 3600)
    assert Timeline().summary(last) == (
        "GET status → DRAFT (reconciler), nothing new: next call in 4 h"
    )

    webhook = {"activity": "CONTRACT_DATA_UPDATED", "contract_status": "DRAFT"}
    await store.append(
        "contract-deal-1",
        [NewEvent(EventType.WEBHOOK_RECEIVED, webhook, "webhook")],
        expected_version=None,
    )
    assert not await asked(timedelta(minutes=14))
    assert await asked(timedelta(minutes=15))

    client.contracts["T-1"]["contract_status"] = "REDLINING"  # sent from SpotDraft's app
    assert await asked(timedelta(minutes=30))
    moved = (await store.read_stream("contract-deal-1"))[-1]
    assert (moved.data["contract_status"], "quiet_for" in moved.data) == ("REDLINING", False)
    assert await asked(timedelta(minutes=15))


async def test_a_step_deferred_in_an_outage_is_tried_again_within_a_minute(
    tmp_path: Path,
) -> None:
    """A send deferred after the client's retries is not left for stale_after (15
    minutes): the pass after its retry time nudges it, and a second failure waits twice
    as long; once SpotDraft answers, the contract is sent."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    client.fail["send_to_counterparties"] = [transient(), transient()]
    async with handlers(store, client, tmp_path):
        await request(store, send={})
        with anyio.fail_after(5):
            state = await settle(store)
        assert (state.sync, state.deferred, state.deferrals) == ("created", "send", 1)
        await _project(store)
        start = utcnow()

        early = await reconcile_once(store, client, stale_after=900, batch=5, now=start)
        assert (early.nudged, early.status_calls) == (0, 0)
        first = await reconcile_once(
            store, client, stale_after=900, batch=5, now=start + timedelta(seconds=31)
        )
        assert (first.nudged, first.external_ids) == (1, ["deal-1"])
        with anyio.fail_after(5):
            await settle(store)
        await _project(store)
        again = utcnow()
        waited = await reconcile_once(
            store, client, stale_after=900, batch=5, now=again + timedelta(seconds=45)
        )
        assert waited.nudged == 0  # the second deferral waits 60 s
        second = await reconcile_once(
            store, client, stale_after=900, batch=5, now=again + timedelta(seconds=61)
        )
        assert second.nudged == 1
        with anyio.fail_after(5):
            state = await settle(store)
    assert client.calls["send_to_counterparties"] == 3
    assert (state.sync, state.deferred, state.deferrals) == ("sent", None, 0)
    await _project(store)
    assert await reconcile_once(store, client, stale_after=900, batch=5, now=utcnow()) == (
        ReconcileReport()
    )


async def test_a_status_call_that_fails_is_recorded_and_not_repeated_every_pass(
    tmp_path: Path,
) -> None:
    """SpotDraft down for the reconciler's call: each attempt is recorded in the contract's
    stream, and the contract waits stale_after again before it is asked, however often
    the passes run meanwhile."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    async with handlers(store, client, tmp_path):
        await request(store)
        with anyio.fail_after(5):
            await settle(store)
    await _project(store)
    attempt = Exchange("get_status", "GET", "/contracts/T-1/status", None, 503, {}, 2.0, 1)
    client.fail["get_status"] = [
        TransientError("SpotDraft answered 503 on every attempt", exchanges=(attempt,))
    ]
    start = utcnow()

    failed = await reconcile_once(
        store, client, stale_after=900, batch=5, now=start + timedelta(minutes=20)
    )
    assert (failed.status_calls, failed.errors, failed.external_ids) == (1, 1, ["deal-1"])
    last = (await store.read_stream("contract-deal-1"))[-1]
    assert (last.type, last.data["status"], last.source) == (
        EventType.SPOTDRAFT_CALL_RECORDED,
        503,
        "reconciler",
    )
    await _project(store)
    for minutes in (1, 5, 14):
        quiet = await reconcile_once(
            store, client, stale_after=900, batch=5, now=start + timedelta(minutes=minutes)
        )
        assert quiet.status_calls == 0
    again = await reconcile_once(
        store, client, stale_after=900, batch=5, now=start + timedelta(minutes=16)
    )
    assert (again.status_calls, again.errors) == (1, 0)
    assert client.calls["get_status"] == 2


async def test_a_contract_never_created_is_nudged_without_a_call(tmp_path: Path) -> None:
    """A request that no create followed (the handlers were stopped, say) has nothing to
    ask SpotDraft about: the pass records a nudge, and the handlers create it on it."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    await request(store)
    await store.save_checkpoint("handlers", await store.last_position())  # seen, not done
    await _project(store)

    report = await reconcile_once(
        store, client, stale_after=900, batch=5, now=utcnow() + timedelta(minutes=20)
    )
    assert (report.nudged, report.status_calls, report.external_ids) == (1, 0, ["deal-1"])
    assert sum(client.calls.values()) == 0
    nudge = (await store.read_stream("contract-deal-1"))[-1]
    assert (nudge.type, nudge.data, nudge.source) == (
        EventType.RECONCILE_REQUESTED,
        {"reason": "overdue"},
        "reconciler",
    )
    async with handlers(store, client, tmp_path):
        with anyio.fail_after(5):
            state = await settle(store)
    assert (state.sync, state.spotdraft_id, client.calls["create_contract"]) == (
        "created",
        "T-1",
        1,
    )


async def test_reconciled_execution_pulls_the_data(tmp_path: Path) -> None:
    """A contract whose EXECUTED webhook never came is synced after a reconciliation pass."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    async with handlers(store, client, tmp_path):
        await request(store)
        with anyio.fail_after(5):
            await settle(store)
            client.contracts["T-1"]["contract_status"] = "EXECUTED"
            await _project(store)
            later = utcnow() + timedelta(hours=1)
            await reconcile_once(store, client, stale_after=900, batch=5, now=later)
            state = await settle(store)
    assert (state.status, state.sync) == ("EXECUTED", "synced")


async def test_parked_lists_failures_with_their_fix_and_retry_is_an_operator_event(
    tmp_path: Path,
) -> None:
    """A failed contract is listed with its fix; retry appends RetryRequested by the operator."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    client.fail["create_contract"] = [permanent(404, {"detail": "Template not found"})]
    async with handlers(store, client, tmp_path):
        await request(store)
        with anyio.fail_after(5):
            await settle(store)
    await _project(store)
    parked = await list_parked(store)
    assert [(p.external_id, p.kind, p.step) for p in parked] == [("deal-1", "contract", "create")]
    assert parked[0].fix.startswith("do better; then submit the corrected request")
    event = await retry_parked(store, "deal-1")
    assert (event.type, event.source) == (EventType.RETRY_REQUESTED, "operator")
    with pytest.raises(NotParkedError):
        await retry_parked(store, "deal-1")
    with pytest.raises(NotParkedError):
        await retry_parked(store, "nobody")


async def test_checkpoint_never_passes_an_unfinished_event() -> None:
    """While one contract's event is still being handled, the checkpoint stays before it."""
    store = MemoryEventStore()
    release = anyio.Event()
    started = anyio.Event()

    class SlowRunner(HandlerRunner):
        async def handle(self, event: RecordedEvent) -> None:
            if event.stream == "contract-slow":
                started.set()
                await release.wait()

    runner = SlowRunner(store, executor=None)  # type: ignore[arg-type]  # handle() never runs it
    await request(store, "slow")
    for n in range(3):
        await request(store, f"fast-{n}")
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(runner.run))
        with anyio.fail_after(5):
            await started.wait()
            while runner._dispatched < 4:
                await store.wait_for_append(runner._dispatched)
            assert runner.checkpoint == 0
            release.set()
            while await store.load_checkpoint("handlers") < 4:
                await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()


async def test_a_handler_that_keeps_failing_passes_that_event_and_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug that fails one event every time neither stops the other contracts nor holds
    the checkpoint for ever: the event is tried HANDLE_ATTEMPTS times, each failure logged
    with its attempt, then passed (the reconciler's nudge redoes what it left undone)."""
    monkeypatch.setattr(worker_module, "RETRY_DELAY", 0.0)
    store = MemoryEventStore()
    tries: Counter[str] = Counter()

    class BuggyRunner(HandlerRunner):
        async def handle(self, event: RecordedEvent) -> None:
            tries[event.stream] += 1
            if event.stream == "contract-bad":
                raise RuntimeError("a bug")

    runner = BuggyRunner(store, executor=None)  # type: ignore[arg-type]  # handle() never runs it
    await request(store, "bad")
    for n in range(3):
        await request(store, f"good-{n}")
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            await tg.start(functools.partial(runner.run))
            with anyio.fail_after(5):
                while await store.load_checkpoint("handlers") < 4:
                    await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    assert tries == {"contract-bad": HANDLE_ATTEMPTS, **{f"contract-good-{n}": 1 for n in range(3)}}
    failures = [e for e in logs if e["event"] == "handler failed"]
    assert [(e["stream"], e["attempt"]) for e in failures] == [
        ("contract-bad", n) for n in range(1, HANDLE_ATTEMPTS + 1)
    ]

