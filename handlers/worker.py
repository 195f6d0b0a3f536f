"""The handlers' runtime: a subscription that feeds contract events to decisions and executors.

Contracts are worked on concurrently (at most ``concurrency`` at once) but each
contract's events one after the other, in stream order. The checkpoint is the position
before the lowest event not yet finished, so a crash re-runs unfinished work and never
skips it; re-running is safe because every command is refined against the current
state first (work already recorded is not repeated).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from contextlib import nullcontext
from pathlib import Path

import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus
from structlog.contextvars import bound_contextvars

from eventstore import EventStore, PersistenceError, RecordedEvent
from eventstore.outages import Backoff, OnOutage, store_outage
from handlers.api import SpotDraftAPI
from handlers.decisions import decide
from handlers.executor import INTENT_LEASE, Executor
from handlers.sink import Sink
from handlers.sink_worker import SinkWorker
from projections.contract import ContractState, apply, fold
from projections.events import external_id_of

log = structlog.get_logger("spotsync.handlers")

CHECKPOINT = "handlers"
HANDLE_ATTEMPTS = 3
RETRY_DELAY = 0.5  # seconds, times the attempt number


class HandlerRunner:
    """Dispatches contract events to per-contract lanes and keeps the checkpoint honest."""

    def __init__(
        self,
        store: EventStore,
        executor: Executor,
        *,
        concurrency: int = 16,
        starting: int = 4,
        max_pending: int = 10_000,
        name: str = CHECKPOINT,
        cache_size: int = 10_000,
        on_outage: OnOutage | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.name = name
        self.on_outage = on_outage
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._starting = anyio.CapacityLimiter(max(1, min(starting, concurrency - 1)))
        self._slots = anyio.Semaphore(max_pending)
        self._lanes: dict[str, deque[RecordedEvent]] = {}
        self._unfinished: list[int] = []
        self._finished: set[int] = set()
        self._dispatched = 0
        self._saved = 0
        self._advanced = anyio.Event()
        self._drained = anyio.Event()  # set whenever no lane has work left
        # stream -> the fold up to (and including) the last event decided on
        self._states: OrderedDict[str, ContractState] = OrderedDict()
        self._cache_size = cache_size

    @property
    def checkpoint(self) -> int:
        return self._unfinished[0] - 1 if self._unfinished else self._dispatched

    async def run(
        self,
        *,
        stop: anyio.Event | None = None,
        grace: float = 10.0,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Handle events until cancelled, or until ``stop`` is set: then take no new event,
        give the work in progress ``grace`` seconds to finish, and return."""
        start = await self.store.load_checkpoint(self.name)
        self._dispatched = self._saved = start
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._save_checkpoints)
            task_status.started()
            with anyio.CancelScope() as following:
                if stop is not None:
                    tg.start_soon(_cancel_when, stop, following)
                events = self.store.subscribe(from_position=start + 1, on_outage=self.on_outage)
                async for event in events:
                    await self._dispatch(tg, event)
            with anyio.move_on_after(grace):
                while self._lanes:
                    await self._drained.wait()
            if self._lanes:
                log.warning(
                    "stopping with work unfinished; it resumes on the next start",
                    contracts=len(self._lanes),
                )
            tg.cancel_scope.cancel()
        # What finished is not done again after a restart; what did not, is.
        with anyio.CancelScope(shield=True), anyio.move_on_after(grace):
            try:
                await self._save_checkpoint()
            except PersistenceError:
                if self.on_outage is None:
                    raise
                log.warning("checkpoint not saved: finished work runs again at the next start")

    async def _dispatch(self, tg: TaskGroup, event: RecordedEvent) -> None:
        self._dispatched = event.position
        if external_id_of(event.stream) is None:
            self._advanced.set()
            return
        await self._slots.acquire()
        heapq.heappush(self._unfinished, event.position)
        lane = self._lanes.get(event.stream)
        if lane is not None:
            lane.append(event)
            return
        self._lanes[event.stream] = deque([event])
        tg.start_soon(self._drain, event.stream)

    async def _drain(self, stream: str) -> None:
        lane = self._lanes[stream]
        # Contracts in progress come before new ones: a lane that starts a contract also
        # needs one of a few starting slots, so a burst of intake cannot hold every lane
        # while the contracts ahead of it wait to be finished.
        starting = self._starting if lane[0].version == 1 else nullcontext()
        async with starting, self._limiter:
            while lane:
                event = lane[0]
                # Handling swallows every error but cancellation; a cancelled event is not
                # finished, so the checkpoint stays before it and a restart runs it again.
                await self._handle_with_retries(event)
                lane.popleft()
                self._finish(event.position)
            # No await between the empty check and this: a new event starts a new lane.
            del self._lanes[stream]
            if not self._lanes:
                self._drained.set()
                self._drained = anyio.Event()

    async def _handle_with_retries(self, event: RecordedEvent) -> None:
        # Handling is idempotent (commands are refined against the current state), so a
        # store hiccup is simply tried again. A bug must not stop every other contract:
        # after the last attempt the event is logged and passed, and the reconciler's
        # next nudge re-runs whatever it left undone. A store that is away (with
        # ``on_outage``) is waited for instead, however long: nothing could be recorded
        # meanwhile, and passing every event in flight would leave them all to the
        # reconciler.
        attempt = 0
        backoff = Backoff()
        while True:
            try:
                await self.handle(event)
            except Exception as exc:
                outage = store_outage(exc)
                if outage is not None and self.on_outage is not None:
                    delay = backoff.next()
                    self.on_outage(outage, delay)
                    await anyio.sleep(delay)
                    continue
                attempt += 1
                log.exception(
                    "handler failed", stream=event.stream, position=event.position, attempt=attempt
                )
                if attempt == HANDLE_ATTEMPTS:
                    return
                await anyio.sleep(RETRY_DELAY * attempt)
            else:
                return

    async def handle(self, event: RecordedEvent) -> None:
        """Decide on ``event`` with the state before it, then run the commands it calls for."""
        # Every log line while handling it names the contract and the event.
        with bound_contextvars(
            external_id=external_id_of(event.stream), stream=event.stream, position=event.position
        ):
            await self._handle(event)

    async def _handle(self, event: RecordedEvent) -> None:
        before = await self._state_before(event)
        commands = decide(before, event)
        after = apply(before, event)
        self._remember(event.stream, after)
        if after.sink_queue and self.executor.sink is not None:
            # Whatever the event, notices still queued are being delivered (a lane that
            # stopped on a store error takes up again at the contract's next event).
            self.executor.sink.wake(event.stream)
        if not commands:
            return
        newer = await self.store.read_stream(event.stream, from_version=event.version + 1)
        current = fold(newer, after)
        assert current is not None
        for command in commands:
            current = await self.executor.execute(event, command, current)

    async def _state_before(self, event: RecordedEvent) -> ContractState | None:
        cached = self._states.get(event.stream)
        if cached is not None and cached.version == event.version - 1:
            return cached
        if event.version == 1:
            return None
        history = await self.store.read_stream(event.stream)
        return fold(history[: event.version - 1])

    def _remember(self, stream: str, state: ContractState) -> None:
        self._states[stream] = state
        self._states.move_to_end(stream)
        while len(self._states) > self._cache_size:
            self._states.popitem(last=False)

    def _finish(self, position: int) -> None:
        self._slots.release()
        self._finished.add(position)
        while self._unfinished and self._unfinished[0] in self._finished:
            self._finished.discard(heapq.heappop(self._unfinished))
        self._advanced.set()

    async def _save_checkpoints(self) -> None:
        backoff = Backoff()
        while True:
            await self._advanced.wait()
            self._advanced = anyio.Event()
            try:
                await self._save_checkpoint()
            except PersistenceError as exc:
                if self.on_outage is None:
                    raise
                # Not saved: a restart meanwhile would run the finished work again,
                # which is safe. Tried again at the next advance, after a pause.
                delay = backoff.next()
                self.on_outage(exc, delay)
                await anyio.sleep(delay)
                self._advanced.set()
            else:
                backoff.reset()

    async def _save_checkpoint(self) -> None:
        position = self.checkpoint
        if position > self._saved:
            await self.store.save_checkpoint(self.name, position)
            self._saved = position


async def _cancel_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def run_handlers(
    store: EventStore,
    client: SpotDraftAPI,
    *,
    documents_dir: str | Path,
    sink: Sink | None = None,
    concurrency: int = 16,
    intent_lease: float = INTENT_LEASE,
    stop: anyio.Event | None = None,
    grace: float = 10.0,
    on_outage: OnOutage | None = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run the handlers until cancelled or ``stop`` (then drain for ``grace`` seconds);
    ``started()`` once the subscription is set up. ``on_outage``: the store going away
    is waited out (``HandlerRunner``), not the end of the handlers."""
    stopped_at = None

    async def note_stop(stop: anyio.Event) -> None:
        nonlocal stopped_at
        await stop.wait()
        stopped_at = anyio.current_time()

    async with anyio.create_task_group() as tg:
        worker = None
        if sink is not None:
            worker = SinkWorker(store, sink, concurrency=concurrency)
            await tg.start(worker.run)
        if stop is not None:
            tg.start_soon(note_stop, stop)
        executor = Executor(
            store, client, documents_dir=Path(documents_dir), sink=worker, intent_lease=intent_lease
        )
        runner = HandlerRunner(store, executor, concurrency=concurrency, on_outage=on_outage)
        await runner.run(stop=stop, grace=grace, task_status=task_status)
        if worker is not None and stopped_at is not None:
            # Deliveries under way finish within the same grace; what is left stays queued.
            with anyio.move_on_after(stopped_at + grace - anyio.current_time()):
                await worker.wait_idle()
        tg.cancel_scope.cancel()
