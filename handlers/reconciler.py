"""Bounded reconciliation: ask SpotDraft for the status of contracts that went quiet.

One pass makes at most ``batch`` status calls, only for contracts that are neither final
nor failed and have heard nothing for ``stale_after`` (the ``reconcile_due`` read model,
read most overdue first). Each answer is recorded (``StatusObserved``, source
"reconciler"), and the handlers treat it as a nudge: a status ahead of the projection
drives the same steps the missed webhook would have. A contract without a SpotDraft id
gets a ``ReconcileRequested`` instead (no call needed): the handlers look it up or
create it, as its intent says.

An answer that tells nothing new, about a contract waiting on people (to send, sign,
countersign), asks for a longer wait before the next call: twice the last one, up to 16
times ``stale_after`` (``quiet_for`` in ``StatusObserved``, folded into the contract's
key in ``reconcile_due``). A contract awaiting signature for weeks is asked a few times
a day, not every ``stale_after``: its timeline and the log stay readable, and the batch
goes to the contracts that may have missed a webhook. Any other event about the
contract (a webhook, a request) ends the wait.

A step deferred on a transient failure (SpotDraft down longer than the client's own
retries) does not wait for ``stale_after``: its row says when to try again (30 s, then
doubling up to 15 minutes, ``projections.runner.retry_at``), and the pass nudges it
then, within the same ``batch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio
import structlog
from anyio.abc import TaskStatus

from eventstore import EventStore, NewEvent
from eventstore.envelope import format_timestamp, utcnow
from eventstore.outages import OnOutage, store_outage
from handlers.api import SpotDraftAPI
from handlers.decisions import NotifySink, outstanding
from handlers.spotdraft.errors import SpotDraftError
from projections.contract import ContractState, merge_status
from projections.events import EventType, contract_stream
from projections.runner import CONTRACTS, RECONCILE_DUE

log = structlog.get_logger("spotsync.reconciler")

# Quiet answers in a row stretch the time between calls, up to this many stale_after.
QUIET_MAX_FACTOR = 16


@dataclass(slots=True)
class ReconcileReport:
    """What one pass did."""

    status_calls: int = 0
    nudged: int = 0
    errors: int = 0
    external_ids: list[str] = field(default_factory=list)


async def reconcile_once(
    store: EventStore,
    client: SpotDraftAPI,
    *,
    stale_after: float,
    batch: int,
    now: datetime | None = None,
) -> ReconcileReport:
    """One bounded pass; returns what it did."""
    report = ReconcileReport()
    if batch <= 0:
        return report
    moment = now or utcnow()
    await _retry_deferred(store, format_timestamp(moment), batch, report)
    cutoff = format_timestamp(moment - timedelta(seconds=stale_after))
    rows = await store.query_documents(RECONCILE_DUE, limit=batch - len(report.external_ids))
    for key, row in rows:
        if key >= cutoff:
            break  # keys sort by last heard: every later one is more recent
        doc = await store.get_document(CONTRACTS, str(row["external_id"]))
        if doc is None:
            continue
        state = ContractState.from_document(doc)
        if state.final or state.error is not None or state.external_id in report.external_ids:
            continue
        report.external_ids.append(state.external_id)
        if state.spotdraft_id is None:
            await _append(store, state, EventType.RECONCILE_REQUESTED, {"reason": "overdue"})
            report.nudged += 1
            continue
        report.status_calls += 1
        try:
            result = await client.get_status(state.spotdraft_id)
        except SpotDraftError as exc:
            # Recording the attempt also marks the contract heard from, so a SpotDraft
            # outage is not asked about again before stale_after has passed once more.
            report.errors += 1
            log.warning("status call failed", external_id=state.external_id, error=str(exc))
            for exchange in exc.exchanges:
                await _append(
                    store, state, EventType.SPOTDRAFT_CALL_RECORDED, exchange.to_event_data()
                )
            continue
        events = [
            NewEvent(EventType.SPOTDRAFT_CALL_RECORDED, e.to_event_data(), "reconciler")
            for e in result.exchanges
        ]
        status = result.value.get("contract_status")
        observed = {
            "contract_status": status,
            "contract_name": result.value.get("contract_name"),
            "by": "reconciler",
        }
        if _quiet(state, status):
            wait = min(2 * state.quiet_for + stale_after, (QUIET_MAX_FACTOR - 1) * stale_after)
            observed["quiet_for"] = wait
            observed["next_call_in"] = wait + stale_after  # for people reading the log
        events.append(NewEvent(EventType.STATUS_OBSERVED, observed, "reconciler"))
        await store.append(
            contract_stream(state.external_id),
            [_correlated(e, state) for e in events],
            expected_version=None,
        )
    return report


def _quiet(state: ContractState, status: object) -> bool:
    """Whether a status answer leaves the contract as it was, waiting on people alone:
    to send it, to sign it, or (a sink notice parked) an operator to retry it."""
    unchanged = merge_status(state, status if isinstance(status, str) else None) == state
    if not unchanged or state.deferred is not None:
        return False
    return all(
        isinstance(command, NotifySink) and state.sink_parked is not None
        for command in outstanding(state, "")
    )


async def _retry_deferred(store: EventStore, now: str, batch: int, report: ReconcileReport) -> None:
    """Nudge the contracts whose deferred step is due again (a handful, in an outage)."""
    rows = await store.query_documents(RECONCILE_DUE, at_least={"retry_at": ""})
    for _, row in sorted(rows, key=lambda kv: str(kv[1]["retry_at"])):
        if len(report.external_ids) >= batch or str(row["retry_at"]) > now:
            break
        doc = await store.get_document(CONTRACTS, str(row["external_id"]))
        if doc is None:
            continue
        state = ContractState.from_document(doc)
        if state.deferred is None or state.final or state.error is not None:
            continue
        report.external_ids.append(state.external_id)
        await _append(
            store, state, EventType.RECONCILE_REQUESTED, {"reason": f"{state.deferred} deferred"}
        )
        report.nudged += 1


async def run_reconciler(
    store: EventStore,
    client: SpotDraftAPI,
    *,
    interval: float,
    stale_after: float,
    batch: int,
    on_outage: OnOutage | None = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """A pass every ``interval`` seconds until cancelled. A pass the store cannot serve
    is told to ``on_outage`` (the next pass is the next try); any other failure is
    logged whole, and the passes go on."""
    task_status.started()
    while True:
        try:
            report = await reconcile_once(store, client, stale_after=stale_after, batch=batch)
        except Exception as exc:
            outage = store_outage(exc)
            if outage is not None and on_outage is not None:
                on_outage(outage, interval)
            else:
                log.exception("reconciliation pass failed")
        else:
            if report.external_ids:
                log.info("reconciled", calls=report.status_calls, nudged=report.nudged)
        await anyio.sleep(interval)


def _correlated(event: NewEvent, state: ContractState) -> NewEvent:
    return NewEvent(event.type, event.data, event.source, correlation_id=state.correlation_id)


async def _append(
    store: EventStore, state: ContractState, type_: str, data: dict[str, object]
) -> None:
    event = NewEvent(type_, data, "reconciler", correlation_id=state.correlation_id)
    await store.append(contract_stream(state.external_id), [event], expected_version=None)
