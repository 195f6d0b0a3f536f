"""Replay: the handlers' pure decisions run over a recorded log, compared with what it shows.

For every event of a contract stream, ``decide`` (the very function the handlers run, or
a changed one under test) says which commands it calls for *now*. The log says what was
actually run for that event: the handlers record every outcome with ``causation_id`` =
the triggering event, so the outcomes of a trigger name the commands it ran (a
``SpotDraftCallRecorded`` of ``get_key_pointers`` → ``PullKeyPointers``, a
``SinkDelivered`` of milestone ``sent`` → ``NotifySink(sent)`` ...). The two lists are
compared per trigger:

- a command the log shows but ``decide`` would not issue is a difference;
- a command ``decide`` would issue that the log does not show is a difference, unless
  running it would have been a no-op: ``refine`` drops it against the contract's state
  at the end of the log (another trigger did the work), or it is a sink notice in a
  daemon that runs without a sink (the log's own ``skipped`` deliveries say so).

Nothing here writes or calls out. A whole log in an event store is replayed contract by
contract (``EventStore.read_streams``: each stream from its first event to its last), so
memory holds one contract at a time. Another source (an exported log) is fed in log
order, its contracts kept in a bounded LRU; one evicted and met again is folded again
from its stream.
"""

from __future__ import annotations

import itertools
import multiprocessing
import operator
from collections import OrderedDict, deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import anyio
import anyio.to_thread
import orjson

from eventstore import EventStore, StreamRow, open_store
from eventstore.base import decode_row
from eventstore.envelope import RecordedEvent, parse_timestamp
from handlers.decisions import (
    ALWAYS_DECIDED,
    EDGE_FIELDS,
    NO_COMMANDS,
    Command,
    NotifySink,
    decide,
    refine,
)
from projections.contract import (
    FOLDED,
    ContractState,
    advance,
    apply,
    fields_of,
    fold,
    snapshot,
    state_of,
)
from projections.events import CONTRACT_STREAM_PREFIX, EventType, external_id_of
from projections.longruns import rare_gc
from projections.rebuild import PAGE_EVENTS, default_workers

Decide = Callable[[ContractState | None, RecordedEvent], list[Command]]

# Below this many events, starting worker processes costs more than it saves.
PARALLEL_FROM = 100_000
# Events in a name range that a worker replays: what the parent holds (the replays of a
# few ranges, waiting their turn) stays the same however long the log. A range costs its
# worker an event loop and a store, opened and closed (about 7 ms): in ranges of 10,000
# events, 8% of the workers' time on the 1M bench log; in ranges of 25,000 the replay
# took 5% less time.
RANGE_EVENTS = 25_000

# SpotDraft operations → the command that calls them (``get_status`` by a handler is the
# send command checking a refused or unanswered send).
_OPERATIONS = {
    "create_contract": "CreateContract",
    "find_by_external_id": "LookupContract",
    "send_to_counterparties": "SendContract",
    "get_status": "SendContract",
    "get_key_pointers": "PullKeyPointers",
    "get_download_link": "FetchDocument",
    "download": "FetchDocument",
}
_STEPS = {
    "create": "CreateContract",
    "lookup": "LookupContract",
    "send": "SendContract",
    "key_pointers": "PullKeyPointers",
    "document": "FetchDocument",
}
_FACTS: dict[str, str] = {
    EventType.CONTRACT_CREATE_INTENDED: "CreateContract",
    EventType.CONTRACT_NOT_FOUND: "LookupContract",
    EventType.CONTRACT_SENT: "SendContract",
    EventType.STATUS_OBSERVED: "SendContract",
    EventType.KEY_POINTERS_STORED: "PullKeyPointers",
    EventType.DOCUMENT_STORED: "FetchDocument",
}
_SINK = frozenset(
    {
        EventType.SINK_QUEUED,
        EventType.SINK_DELIVERED,
        EventType.SINK_ATTEMPT_FAILED,
        EventType.SINK_GAVE_UP,
    }
)


_EDGES = operator.itemgetter(*EDGE_FIELDS)
# A SpotDraft call's record: the longest of a log but the request's (its request and
# response bodies: a quarter of the bench log's data), of which the fold reads nothing
# and replay only the operation.
_SKIMMED = frozenset({EventType.SPOTDRAFT_CALL_RECORDED}) - FOLDED
_OPERATION_FIRST = '{"operation":"'


def _skim_call(data: str | bytes) -> dict[str, Any]:
    """The ``operation`` of a SpotDraft call's record, from its JSON text: read off the
    front where it stands first, as the handlers write it (unless it holds an escape),
    else from the whole text decoded."""
    if isinstance(data, str) and data.startswith(_OPERATION_FIRST):
        start = len(_OPERATION_FIRST)
        end = data.find('"', start)
        if end > 0 and "\\" not in data[start:end]:
            return {"operation": data[start:end]}
    return {"operation": orjson.loads(data).get("operation")}


class EventSource(Protocol):
    """What replay reads: an ``EventStore``, or a log loaded from an exported file."""

    def read_all(
        self, *, from_position: int = 1, until_position: int | None = None, page_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]: ...

    async def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]: ...


def label(command: Command) -> str:
    return command.describe()


def recorded_command(event: RecordedEvent) -> str | None:
    """The command whose run recorded ``event``, or None for facts from outside."""
    if event.metadata.get("causation_id") is None:
        return None
    return _recorded_by(event.type, event.data)


def _recorded_by(kind: str, data: Mapping[str, Any]) -> str | None:
    """The command that records an event of ``kind`` with ``data`` when it runs."""
    if kind == EventType.SPOTDRAFT_CALL_RECORDED:
        return _OPERATIONS.get(str(data.get("operation")))
    if kind in _SINK:
        return f"NotifySink({data.get('milestone')})"
    if kind == EventType.CONTRACT_CREATED:
        return "LookupContract" if data.get("found_by_lookup") else "CreateContract"
    if kind in (EventType.CONTRACT_FAILED, EventType.STEP_DEFERRED):
        return _STEPS.get(str(data.get("step")))
    return _FACTS.get(kind)


def _family(name: str) -> str:
    # The executor turns a create into a lookup (and back) as the intents dictate.
    return "CreateContract" if name == "LookupContract" else name


@dataclass(slots=True)
class Step:
    """One event of a contract: what ``decide`` would issue now, what the log shows was run."""

    event: RecordedEvent
    would_issue: list[Command]
    recorded: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    spotdraft_id: str | None = None  # the contract's, once the event is applied

    @property
    def issued(self) -> list[str]:
        return [label(command) for command in self.would_issue]

    @property
    def calls(self) -> list[str]:
        """The API calls of ``would_issue``, in its order."""
        external_id = external_id_of(self.event.stream) or self.event.stream
        return [c.call(external_id, self.spotdraft_id) for c in self.would_issue]


@dataclass(slots=True)
class ContractReplay:
    """A contract's steps (in stream order) once the log is read, and its state at the end."""

    external_id: str
    steps: list[Step]
    state: ContractState | None

    @property
    def difference_count(self) -> int:
        return sum(len(step.differences) for step in self.steps)


def compare(step: Step, final: ContractState | None, *, sink_configured: bool) -> None:
    """Fill ``step.differences`` (and notes) from its commands and recorded outcomes."""
    if not step.would_issue and not step.recorded:
        return  # most events: nothing decided, nothing run
    issued = step.issued
    if issued == step.recorded:
        return  # the rest of the steps: run as decided
    wanted = [_family(name) for name in issued]
    shown = {_family(name) for name in step.recorded}
    for name in dict.fromkeys(step.recorded):
        if _family(name) not in wanted:
            step.differences.append(f"the log shows {name}; the handlers would not issue it now")
    for command, family in zip(step.would_issue, wanted, strict=True):
        if family in shown:
            continue
        name = label(command)
        if final is not None and refine(command, final) is None:
            step.notes.append(f"{name}: not run for this event (done by then, or not needed)")
        elif isinstance(command, NotifySink) and not sink_configured:
            step.notes.append(f"{name}: not run (no sink configured)")
        else:
            step.differences.append(f"the handlers would issue {name}; the log shows none")


@dataclass(slots=True)
class _Contract:
    state: ContractState | None
    # Steps are made for the events that call for commands or that the log shows
    # commands ran for: most events do neither. ``seen`` keeps the others by event id,
    # in case an outcome recorded later names one of them as its trigger.
    steps: list[Step] = field(default_factory=list)
    by_id: dict[str, Step] = field(default_factory=dict)
    seen: dict[str, RecordedEvent] = field(default_factory=dict)
    at_until: ContractState | None = None  # None: no event of it by ``until`` (yet)
    sink_ran: bool = False

    def trigger(self, event_id: str) -> Step | None:
        """The step of the event ``event_id``, made now if it had none."""
        step = self.by_id.get(event_id)
        if step is None:
            event = self.seen.pop(event_id, None)
            if event is None:
                return None
            step = self.by_id[event_id] = Step(event, [])
            self.steps.append(step)
        return step


class _OpenStream:
    """The contract ``feed_streams`` is in: its fields, folded in place, and its steps.

    ``seen`` keeps the rows of the events that called for nothing, by event id, in case
    an outcome recorded later names one of them as its trigger (made a step then)."""

    __slots__ = (
        "_moment",
        "_stamp",
        "at_until",
        "by_id",
        "events",
        "fields",
        "past_until",
        "seen",
        "sink_ran",
        "steps",
        "stream",
    )

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.fields = fields_of(None, stream)
        self.steps: list[Step] = []
        self.by_id: dict[str, Step] = {}
        self.seen: dict[str, StreamRow] = {}
        self.events = 0  # up to ``until``
        self.past_until = False  # the last event was past it
        self.at_until: ContractState | None = None  # the state at it, once past it
        self.sink_ran = False
        self._stamp = ""
        self._moment: datetime | None = None

    def moment(self, stamp: str) -> datetime:
        # The events of one append share their time: parse it once.
        if stamp != self._stamp or self._moment is None:
            self._stamp, self._moment = stamp, parse_timestamp(stamp)
        return self._moment

    def add(self, step: Step) -> None:
        self.by_id[step.event.event_id] = step
        self.steps.append(step)

    def record(self, trigger_id: str, name: str) -> None:
        """The log shows command ``name`` run for the event ``trigger_id``."""
        step = self.by_id.get(trigger_id)
        if step is None:
            row = self.seen.pop(trigger_id, None)
            if row is None:
                return
            step = Step(decode_row(row), [])
            self.add(step)
        if name not in step.recorded:
            step.recorded.append(name)


class Replayer:
    """Feeds events in log order; yields each contract's ``ContractReplay`` once it is done.

    ``keep_steps``: keep every step (a single contract's detailed view), not only the
    ones with differences (a whole log's summary). ``keep_states``: give each contract's
    state at the end (or at ``until``); without, ``state`` is None. ``until``: stop
    deciding after this position (the log after it still counts as what was recorded, so
    a command decided by then and run later is no difference) — with ``until_time``, the
    same for ``recorded_at``. A whole log's summary leaves out the contracts that began
    after it.
    """

    def __init__(
        self,
        source: EventSource,
        *,
        decide_fn: Decide = decide,
        keep_steps: bool = False,
        keep_states: bool = True,
        until: int | None = None,
        until_time: datetime | None = None,
        max_contracts: int = 10_000,
    ) -> None:
        self.source = source
        self.decide = decide_fn
        self.keep_steps = keep_steps
        self.keep_states = keep_states
        self.until = until
        self.until_time = until_time
        self.max_contracts = max_contracts
        self._bounded = until is not None or until_time is not None
        self.events = 0
        self._contracts: OrderedDict[str, _Contract] = OrderedDict()
        self._open: _OpenStream | None = None  # ``feed_streams``' contract

    async def feed(self, event: RecordedEvent) -> Sequence[ContractReplay]:
        """Take one event; returns the replays of contracts evicted to make room."""
        self.events += 1
        contract = self._contracts.get(event.stream)
        if contract is not None:
            self._contracts.move_to_end(event.stream)
            self._step(contract, event)
            return ()
        if external_id_of(event.stream) is None:
            return ()
        state = None
        if event.version > 1:  # evicted earlier (or the log starts mid-stream): fold again
            history = await self.source.read_stream(event.stream)
            state = fold(history[: event.version - 1])
        contract = self._contracts[event.stream] = _Contract(state)
        self._step(contract, event)
        if len(self._contracts) > self.max_contracts:
            replay = self._finish(*self._contracts.popitem(last=False))
            return () if replay is None else (replay,)
        return ()

    def finish(self) -> Iterator[ContractReplay]:
        """Every contract still open, at the end of the log."""
        if self._open is not None:
            replay = self._close(self._open)
            if replay is not None:
                yield replay
        while self._contracts:
            replay = self._finish(*self._contracts.popitem(last=False))
            if replay is not None:
                yield replay

    def feed_streams(self, rows: Sequence[StreamRow]) -> list[ContractReplay]:
        """Take rows of whole streams, stream after stream, payloads as JSON text
        (``read_streams(decoded=False)``: each row decoded as it is replayed); returns the
        replays of the contracts whose streams ended before the last row.

        The fast way through a whole log, and the same replay as ``feed``: one contract is
        open at a time, its fields folded in place (``advance``). ``decide`` is asked only
        where it may answer with commands: not for the records of a run (``NO_COMMANDS``),
        nor for an event that turns none of the facts it acts on (``EDGE_FIELDS``); an
        envelope is made only for the events it is asked about. The others keep their row,
        made an event should a recorded outcome name it as its trigger. A SpotDraft call's
        record is skimmed for its operation, not decoded whole.
        """
        done: list[ContractReplay] = []
        loads = orjson.loads
        edges = _EDGES
        own_decide = self.decide is decide
        bounded = self._bounded
        self.events += len(rows)
        contract = self._open
        for row in rows:
            position, stream, version, type_, data, metadata, stamp = row
            if contract is None or stream != contract.stream:
                if contract is not None:
                    replay = self._close(contract)
                    if replay is not None:
                        done.append(replay)
                contract = self._open = _OpenStream(stream)
            payload = _skim_call(data) if type_ in _SKIMMED else loads(data)
            meta = loads(metadata)
            if type_ in _SINK and not payload.get("skipped"):
                contract.sink_ran = True
            cause = meta.get("causation_id")
            if cause is not None:
                name = _recorded_by(type_, payload)
                if name is not None:
                    contract.record(str(cause), name)
            fields = contract.fields
            if bounded and self._past_until(position, contract.moment(stamp)):
                if not contract.past_until and contract.events:
                    contract.at_until = snapshot(fields)  # the state at ``until``
                contract.past_until = True
                advance(fields, position, version, type_, payload, meta, stamp)
                continue
            contract.past_until = False
            contract.events += 1
            if own_decide and type_ in NO_COMMANDS:
                advance(fields, position, version, type_, payload, meta, stamp)
                contract.seen[str(meta["event_id"])] = row
                continue
            # The state after the event gets fields of its own: the old ones stay the
            # state before it, for ``decide`` to compare.
            old, fields = fields, fields.copy()
            contract.fields = fields
            advance(fields, position, version, type_, payload, meta, stamp)
            if own_decide and type_ not in ALWAYS_DECIDED and edges(fields) == edges(old):
                contract.seen[str(meta["event_id"])] = row  # no fact turned: nothing to do
                continue
            before = state_of(old) if contract.events > 1 else None
            event = RecordedEvent(
                position, stream, version, type_, payload, meta, contract.moment(stamp)
            )
            if own_decide:
                commands = decide(before, event, state_of(fields))
            else:
                commands = self.decide(before, event)
            if commands:
                contract.add(Step(event, commands, spotdraft_id=fields["spotdraft_id"]))
            else:
                contract.seen[event.event_id] = row
        return done

    def _step(self, contract: _Contract, event: RecordedEvent) -> None:
        if event.type in _SINK and not event.data.get("skipped"):
            contract.sink_ran = True
        name = recorded_command(event)
        if name is not None:
            trigger = contract.trigger(str(event.metadata["causation_id"]))
            if trigger is not None and name not in trigger.recorded:
                trigger.recorded.append(name)
        before = contract.state
        after = contract.state = apply(before, event)
        if self._bounded and self._past_until(event.position, event.recorded_at):
            return
        contract.at_until = after
        if self.decide is decide:
            commands = decide(before, event, after)  # the fold done once, not twice
        else:
            commands = self.decide(before, event)
        # A whole log in log order keeps only the envelope's bookkeeping: the data is read
        # again for the few contracts that differ (replay_log), so memory does not hold
        # payloads.
        kept = event if self.keep_steps else _slim(event)
        if commands or self.keep_steps:
            step = contract.by_id[kept.event_id] = Step(
                kept, commands, spotdraft_id=after.spotdraft_id
            )
            contract.steps.append(step)
        else:
            contract.seen[kept.event_id] = kept

    def _past_until(self, position: int, recorded_at: datetime) -> bool:
        if self.until is not None and position > self.until:
            return True
        return self.until_time is not None and recorded_at > self.until_time

    def _finish(self, stream: str, contract: _Contract) -> ContractReplay | None:
        return self._summary(
            stream, contract.steps, contract.state, contract.at_until, contract.sink_ran
        )

    def _close(self, contract: _OpenStream) -> ContractReplay | None:
        self._open = None
        final = state_of(contract.fields)
        at_until = contract.at_until if contract.past_until else final
        return self._summary(contract.stream, contract.steps, final, at_until, contract.sink_ran)

    def _summary(
        self,
        stream: str,
        steps: list[Step],
        final: ContractState | None,
        at_until: ContractState | None,
        sink_ran: bool,
    ) -> ContractReplay | None:
        if at_until is None and not self.keep_steps:
            return None  # not there yet at ``until``
        # A daemon without a sink records nothing for most milestones ("synced" only, as
        # skipped): a missing notice is a difference only where a sink was seen at work.
        kept: list[Step] = []
        for step in sorted(steps, key=_position):
            compare(step, final, sink_configured=sink_ran)
            if self.keep_steps or step.differences:
                kept.append(step)
        state = at_until if self.keep_states else None
        return ContractReplay(external_id_of(stream) or stream, kept, state)


async def replay_stream(
    source: EventSource,
    stream: str,
    *,
    decide_fn: Decide = decide,
    until: int | None = None,
    until_time: datetime | None = None,
) -> ContractReplay | None:
    """One contract in detail: every step, and its state at ``until`` (None: never existed)."""
    events = await source.read_stream(stream)
    if not events:
        return None
    replayer = Replayer(
        source, decide_fn=decide_fn, keep_steps=True, until=until, until_time=until_time
    )
    for event in events:
        await replayer.feed(event)
    return next(replayer.finish())  # kept even if it began after ``until``: it was asked for


async def replay_log(
    source: EventSource,
    *,
    decide_fn: Decide = decide,
    until: int | None = None,
    page_size: int = PAGE_EVENTS,
    max_contracts: int = 2_000,
    workers: int | None = None,
    states: bool = True,
) -> AsyncIterator[ContractReplay]:
    """Every contract of the log; yields each one's replay (only steps with differences)
    and, unless ``states`` is False, its state at the end (worker processes then send
    back only what a summary of the log shows: each state costs as much to pass back as
    a tenth of its replay).

    Each contract is replayed as ``replay_stream`` replays it, ``until`` included: the
    decisions stop there, the outcomes recorded later still count, and the contracts that
    began later are left out. From an event store, contract by contract in the store's
    order of stream names. ``workers``: processes that replay name
    ranges side by side (default: one per core up to four, for a long log in a store other
    processes can open, with the handlers' own ``decide``; 0 or 1: this process). From
    another source, in the order contracts leave the LRU of ``max_contracts``.
    """
    if isinstance(source, EventStore):
        if workers is None:
            long_log = await source.last_position() >= PARALLEL_FROM and decide_fn is decide
            workers = default_workers() if long_log else 0
        if workers > 1 and source.url is not None:
            job = _Job(source.url, decide_fn, until, page_size, states)
            ranges = _replay_in_workers(source, job, workers)
        else:
            ranges = replay_streams(
                source, decide_fn=decide_fn, until=until, page_size=page_size, states=states
            )
        async with aclosing(ranges):  # a caller that stops early stops the workers too
            async for replay in ranges:
                yield replay
        return
    replayer = Replayer(
        source,
        decide_fn=decide_fn,
        keep_states=states,
        until=until,
        max_contracts=max_contracts,
    )
    with rare_gc() as collector:
        async for event in source.read_all(page_size=page_size):
            collector.tick()
            for done in await replayer.feed(event):
                yield await _with_payloads(source, done)
    for done in replayer.finish():
        yield await _with_payloads(source, done)


async def replay_streams(
    store: EventStore,
    *,
    decide_fn: Decide = decide,
    until: int | None = None,
    start: str | None = None,
    stop: str | None = None,
    page_size: int = PAGE_EVENTS,
    states: bool = True,
    blocking: bool = False,
) -> AsyncGenerator[ContractReplay, None]:
    """The contracts whose streams are named from ``start`` to ``stop``, one after the other.
    ``blocking``: read on this thread (``read_streams``), in a process doing nothing else."""
    replayer = Replayer(store, decide_fn=decide_fn, keep_states=states, until=until)
    with rare_gc() as collector:
        pages = store.read_streams(
            CONTRACT_STREAM_PREFIX,
            start=start,
            stop=stop,
            decoded=False,
            page_size=page_size,
            blocking=blocking,
        )
        async for page in pages:
            collector.tick(len(page))
            for done in replayer.feed_streams(page):
                yield done
    for done in replayer.finish():
        yield done


@dataclass(frozen=True, slots=True)
class _Job:
    """What every worker is told, besides its name range."""

    url: str
    decide_fn: Decide
    until: int | None
    page_size: int
    states: bool


async def _replay_in_workers(
    store: EventStore, job: _Job, workers: int
) -> AsyncGenerator[ContractReplay, None]:
    # Name ranges of about RANGE_EVENTS events, replayed by a pool of processes while
    # their replays are yielded in name order. The pool's futures outlive each yield, as
    # no task group may (a caller can stop iterating at any yield); a range's replays wait
    # for their turn, so at most ``workers`` + 1 ranges' worth is held, however long the log.
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    pool = ProcessPoolExecutor(workers, mp_context=context)
    try:
        for _ in range(workers):
            pool.submit(_started)  # each starts (and imports this module) while the log is split
        parts = max(workers * 2, await store.last_position() // RANGE_EVENTS)
        bounds = await store.split_streams(CONTRACT_STREAM_PREFIX, parts)
        pending: deque[Future[list[ContractReplay]]] = deque()
        for start, stop in itertools.pairwise([None, *bounds, None]):
            pending.append(pool.submit(replay_range_in_worker, job, start, stop))
            if len(pending) > workers:
                for replay in await _result(pending.popleft()):
                    yield replay
        while pending:
            for replay in await _result(pending.popleft()):
                yield replay
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _started() -> None:
    """Nothing: a worker process imports this module to run it, so it is ready to replay."""


async def _result(future: Future[list[ContractReplay]]) -> list[ContractReplay]:
    return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)


def replay_range_in_worker(job: _Job, start: str | None, stop: str | None) -> list[ContractReplay]:
    """``replay_streams`` in a worker process, on a store of its own."""

    async def run() -> list[ContractReplay]:
        async with await open_store(job.url) as store:
            replays = replay_streams(
                store,
                decide_fn=job.decide_fn,
                until=job.until,
                start=start,
                stop=stop,
                page_size=job.page_size,
                states=job.states,
                blocking=True,
            )
            return [replay async for replay in replays]

    return anyio.run(run)


async def _with_payloads(source: EventSource, replay: ContractReplay) -> ContractReplay:
    if replay.steps:
        events = {e.position: e for e in await source.read_stream(replay.steps[0].event.stream)}
        for step in replay.steps:
            step.event = events.get(step.event.position, step.event)
    return replay


def _position(step: Step) -> int:
    return step.event.position


def _slim(event: RecordedEvent) -> RecordedEvent:
    return event._replace(data={})
