"""The sink's own workers: milestones queued by the handlers, delivered beside them.

A handler that decides to tell the sink appends ``SinkQueued`` and goes on; delivering
(with its retries, up to a day when the sink is down) happens here, one lane per
contract so that a contract's milestones reach the sink in order, at most
``concurrency`` contracts at once. A sink that is down therefore holds up only the
notices, never the SpotDraft work of other contracts, nor the next steps of this one.

What is left to deliver is part of the contract's state (``sink_queue``), so a restart
loses nothing: at start the workers take up every contract whose read-model row says it
has milestones queued, and the handlers wake them for each new one. Every attempt is
recorded (``SinkAttemptFailed``, ``SinkDelivered``), so a delivery taken up after a
restart counts its attempts and its day on from the first one (``earlier_attempts``: a
daemon restarted every night still gives up on a sink down for good). A delivery that
runs out of attempts is parked (``SinkGaveUp``) with the milestones queued behind it
held back, so the sink never hears them out of turn; ``spotsync parked retry`` sends
them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import structlog
from anyio.abc import TaskStatus
from structlog.contextvars import bound_contextvars

from eventstore import EventStore, NewEvent, RecordedEvent
from handlers.sink import Resumed, Sink, SinkAttempt
from projections.contract import ContractState, fold, public_view
from projections.events import EventType, contract_stream, external_id_of
from projections.runner import contracts_where

log = structlog.get_logger("spotsync.sink")

# A lane stopped by a store error (a database restart, say) is taken up again this many
# seconds later: a voided or failed contract may see no other event to wake it.
RETRY_AFTER_SECONDS = 30.0


async def queued_contracts(store: EventStore) -> list[str]:
    """The contracts whose read-model row says notices are queued for the sink."""
    return [key for key, _ in await contracts_where(store, "_sink_pending", "yes")]


def earlier_attempts(history: Sequence[RecordedEvent], queued: Mapping[str, Any]) -> Resumed | None:
    """The failed attempts the log shows for the delivery ``queued`` since it was queued
    (or queued again by an operator's retry): what a restarted daemon goes on from."""
    milestone, webhook_id = queued.get("milestone"), queued.get("webhook_id")
    attempts: list[RecordedEvent] = []
    for event in reversed(history):
        if event.type == EventType.RETRY_REQUESTED:
            break
        if event.data.get("milestone") != milestone:
            continue
        if event.type == EventType.SINK_ATTEMPT_FAILED:
            if event.data.get("webhook_id") == webhook_id:
                attempts.append(event)
        elif event.type in (
            EventType.SINK_QUEUED,
            EventType.SINK_DELIVERED,
            EventType.SINK_GAVE_UP,
        ):
            break
    if not attempts:
        return None
    return Resumed(len(attempts), attempts[-1].recorded_at)


class SinkWorker:
    """Delivers the milestones queued in contract streams: ``concurrency`` workers, each
    taking the next contract that has notices waiting and telling them in order.

    Waiting contracts are kept as names in arrival order, not as tasks, so a long sink
    outage with thousands of contracts queued costs a few bytes each.
    """

    def __init__(
        self,
        store: EventStore,
        sink: Sink,
        *,
        concurrency: int = 16,
        retry_after: float = RETRY_AFTER_SECONDS,
    ) -> None:
        self.store = store
        self.sink = sink
        self.concurrency = concurrency
        self.retry_after = retry_after
        self._waiting: dict[str, None] = {}  # streams to work on, in the order woken
        self._busy: set[str] = set()  # streams a worker is on
        self._again: set[str] = set()  # streams woken while a worker was on them
        self._failed: dict[str, None] = {}  # streams whose lane the store stopped
        self._woken = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self._running = False

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled, starting with what the read model says is queued."""
        async with anyio.create_task_group() as tg:
            for _ in range(self.concurrency):
                tg.start_soon(self._work)
            tg.start_soon(self._retry_failed)
            self._running = True
            task_status.started()
            for external_id in await queued_contracts(self.store):
                self.wake(contract_stream(external_id))

    def wake(self, stream: str) -> None:
        """Deliver what ``stream`` has queued (now, or once a worker is free for it)."""
        if not self._running:
            raise RuntimeError("the sink worker is not running")
        if stream in self._busy:
            self._again.add(stream)
        elif stream not in self._waiting:
            self._waiting[stream] = None
            if self._idle.is_set():
                self._idle = anyio.Event()
            self._woken.set()

    async def wait_idle(self) -> None:
        """Return once nothing is waiting or being worked on (a quiet moment, no promise)."""
        await self._idle.wait()

    async def _work(self) -> None:
        while True:
            while not self._waiting:
                if self._woken.is_set():  # every idle worker then waits on the same one
                    self._woken = anyio.Event()
                await self._woken.wait()
            stream = next(iter(self._waiting))
            del self._waiting[stream]
            self._busy.add(stream)
            try:
                await self._lane(stream)
            finally:
                self._busy.discard(stream)
                if stream in self._again:  # woken again at the very end: look once more
                    self._again.discard(stream)
                    self._waiting[stream] = None
                if not self._waiting and not self._busy:
                    self._idle.set()

    async def _retry_failed(self) -> None:
        while True:
            await anyio.sleep(self.retry_after)
            failed, self._failed = self._failed, {}
            for stream in failed:
                self.wake(stream)

    async def _lane(self, stream: str) -> None:
        """Tell ``stream``'s queued notices one after the other, until none is left."""
        with bound_contextvars(external_id=external_id_of(stream), stream=stream):
            while True:
                self._again.discard(stream)
                try:
                    history = await self.store.read_stream(stream)
                    state = fold(history)
                    if state is None or not state.sink_queue:
                        return
                    queued = state.sink_queue[0]
                    await self._deliver(state, queued, earlier_attempts(history, queued))
                except Exception:
                    # The store failed (a delivery that failed is recorded, not raised):
                    # what is queued stays queued, for the contract's next event or
                    # ``retry_after`` from now, whichever comes first. Only this contract
                    # stops: the other workers go on.
                    log.exception("sink delivery could not be read or recorded")
                    self._failed[stream] = None
                    return

    async def _deliver(
        self, current: ContractState, queued: Mapping[str, Any], resumed: Resumed | None
    ) -> None:
        milestone = str(queued["milestone"])
        webhook_id = str(queued["webhook_id"])
        trigger = queued.get("trigger")
        base = {"milestone": milestone, "webhook_id": webhook_id}
        parked = current.sink_parked
        if parked is not None and parked.get("milestone") != milestone:
            # The sink hears a contract's milestones in order: while one is parked, the
            # next is held behind it (and listed with it) rather than told out of turn.
            ahead = str(parked.get("milestone"))
            fact = {
                **base,
                "attempts": 0,
                "error": f"held back until the {ahead} delivery before it gets through",
                "held_behind": ahead,
            }
            await self._record(current, trigger, EventType.SINK_GAVE_UP, fact)
            return
        data = public_view(current.to_document())
        if milestone == "synced":
            data["sync"] = "synced"  # what this very delivery makes true
        last_error = ""
        attempts = 0

        async def record(attempt: SinkAttempt) -> None:
            nonlocal last_error, attempts
            attempts = attempt.attempt
            info = {**base, "status": attempt.status, "attempt": attempt.attempt}
            if attempt.ok:
                await self._record(
                    current, trigger, EventType.SINK_DELIVERED, {**info, "skipped": False}
                )
            else:
                last_error = attempt.error or ""
                await self._record(
                    current,
                    trigger,
                    EventType.SINK_ATTEMPT_FAILED,
                    {**info, "error": attempt.error},
                )

        log.info("sink delivery", milestone=milestone, webhook_id=webhook_id)
        at = queued.get("at")
        occurred_at = at if isinstance(at, str) else None
        if not await self.sink.deliver(
            webhook_id, milestone, data, record, occurred_at=occurred_at, resumed=resumed
        ):
            fact = {**base, "attempts": attempts, "error": last_error}
            await self._record(current, trigger, EventType.SINK_GAVE_UP, fact)

    async def _record(
        self, current: ContractState, trigger: Any, type_: str, data: dict[str, Any]
    ) -> None:
        # Caused by the event that called for the milestone, as when delivered inline:
        # replay ties the outcome to that event's decision.
        event = NewEvent(
            type_,
            data,
            "api",  # a call to the source system's API (SPEC section 6 names no other)
            causation_id=trigger if isinstance(trigger, str) else None,
            correlation_id=current.correlation_id,
        )
        await self.store.append(
            contract_stream(current.external_id), [event], expected_version=None
        )
