"""Replay: the decisions run over a recorded log, compared with what the log shows was run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from bench.logs import fill
from eventstore import MemoryEventStore, NewEvent, RecordedEvent
from handlers.decisions import CONTRACTS_PATH, Command, PullKeyPointers, SendContract, decide
from handlers.replay import ContractReplay, _skim_call, replay_log, replay_stream
from handlers.spotdraft.client import CONTRACTS
from projections.contract import ContractState
from projections.events import EventType, contract_stream

pytestmark = pytest.mark.anyio

STREAM = contract_stream("deal-1")


async def _append(store: MemoryEventStore, *events: NewEvent) -> RecordedEvent:
    result = await store.append(STREAM, list(events), expected_version=None)
    return result.events[-1]


def _caused(
    trigger: RecordedEvent, type_: str, data: dict[str, Any], source: Any = "api"
) -> NewEvent:
    return NewEvent(type_, data, source, causation_id=trigger.event_id)


async def _recorded_case() -> MemoryEventStore:
    """Requested with send, created, sent: the outcomes the handlers record, caused as they are."""
    store = MemoryEventStore()
    request = {"external_id": "deal-1", "request": {"contract_name": "MSA"}, "send": {}}
    requested = await _append(store, NewEvent(EventType.CONTRACT_REQUESTED, request, "intake"))
    call = {"operation": "create_contract", "method": "POST", "path": "/contracts/", "status": 201}
    created = await _append(
        store,
        _caused(requested, EventType.CONTRACT_CREATE_INTENDED, {"attempt": 1}),
        _caused(requested, EventType.SPOTDRAFT_CALL_RECORDED, call),
        _caused(requested, EventType.CONTRACT_CREATED, {"id": "T-1", "contract_id": 1}),
    )
    send = {"operation": "send_to_counterparties", "method": "POST", "status": 200}
    await _append(
        store,
        _caused(created, EventType.SPOTDRAFT_CALL_RECORDED, send),
        _caused(created, EventType.CONTRACT_SENT, {"composite_id": "T-1"}),
    )
    return store


async def test_the_recorded_decisions_replay_without_differences() -> None:
    """The handlers' own decisions over their own log differ nowhere."""
    store = await _recorded_case()
    replay = await replay_stream(store, STREAM)
    assert replay is not None
    assert replay.difference_count == 0
    assert replay.steps[0].issued == ["CreateContract"]
    assert replay.steps[0].recorded == ["CreateContract"]
    assert replay.state is not None
    assert replay.state.sync == "sent"


async def test_each_command_is_shown_as_the_api_call_it_makes() -> None:
    """Replay names the SpotDraft calls the handlers would make, with the contract's ids."""
    store = await _recorded_case()
    replay = await replay_stream(store, STREAM)
    assert replay is not None
    calls = {step.event.type: step.calls for step in replay.steps}
    assert calls[EventType.CONTRACT_REQUESTED] == [f"POST {CONTRACTS}/"]
    assert f"POST {CONTRACTS}/T-1/send_to_counterparties" in calls[EventType.CONTRACT_CREATED]


def test_the_calls_replay_names_are_the_clients_paths() -> None:
    """The decisions name the paths the client really calls."""
    assert CONTRACTS_PATH == CONTRACTS


async def test_a_decision_that_no_longer_sends_is_reported_against_the_log() -> None:
    """A changed table that drops the send shows the recorded send as a difference."""

    def no_send(state: ContractState | None, event: RecordedEvent) -> list[Command]:
        return [c for c in decide(state, event) if not isinstance(c, SendContract)]

    store = await _recorded_case()
    replay = await replay_stream(store, STREAM, decide_fn=no_send)
    assert replay is not None
    differing = [(s.event.type, s.differences) for s in replay.steps if s.differences]
    assert differing == [
        (
            EventType.CONTRACT_CREATED,
            ["the log shows SendContract; the handlers would not issue it now"],
        )
    ]


async def test_a_decision_that_issues_more_is_reported_as_missing_from_the_log() -> None:
    """A changed table that pulls key pointers on send shows a command the log never ran."""

    def eager(state: ContractState | None, event: RecordedEvent) -> list[Command]:
        extra = [PullKeyPointers()] if event.type == EventType.CONTRACT_SENT else []
        return [*decide(state, event), *extra]

    store = await _recorded_case()
    replays = [r async for r in replay_log(store, decide_fn=eager)]
    assert [(r.external_id, r.difference_count) for r in replays] == [("deal-1", 1)]
    (step,) = replays[0].steps
    assert step.differences == ["the handlers would issue PullKeyPointers; the log shows none"]


async def test_until_gives_the_state_at_that_position_and_no_later_decisions() -> None:
    """With until, the state is the fold up to it; later outcomes still count as recorded."""
    store = await _recorded_case()
    replay = await replay_stream(store, STREAM, until=4)
    assert replay is not None
    assert [s.event.position for s in replay.steps] == [1, 2, 3, 4]
    assert replay.state is not None
    assert (replay.state.sync, replay.state.last_position) == ("created", 4)
    assert replay.steps[3].recorded == ["SendContract"]
    assert replay.difference_count == 0


class _ExportedLog:
    """A source that is not an event store (as an exported file is): read in log order."""

    def __init__(self, store: MemoryEventStore) -> None:
        self.store = store

    def read_all(
        self, *, from_position: int = 1, until_position: int | None = None, page_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        return self.store.read_all(
            from_position=from_position, until_position=until_position, page_size=page_size
        )

    async def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]:
        return await self.store.read_stream(stream, from_version=from_version)


async def _interleaved_cases(*external_ids: str) -> MemoryEventStore:
    """The recorded case of each contract, their events interleaved in the log."""
    store = MemoryEventStore()
    triggers: dict[str, RecordedEvent] = {}

    async def append(external_id: str, *events: NewEvent) -> None:
        stream = contract_stream(external_id)
        result = await store.append(stream, list(events), expected_version=None)
        triggers[external_id] = result.events[-1]

    call = {"operation": "create_contract", "method": "POST", "path": "/contracts/", "status": 201}
    send = {"operation": "send_to_counterparties", "method": "POST", "status": 200}
    for external_id in external_ids:
        request = {"external_id": external_id, "request": {"contract_name": "MSA"}, "send": {}}
        await append(external_id, NewEvent(EventType.CONTRACT_REQUESTED, request, "intake"))
    for n, external_id in enumerate(external_ids):
        requested = triggers[external_id]
        await append(
            external_id,
            _caused(requested, EventType.CONTRACT_CREATE_INTENDED, {"attempt": 1}),
            _caused(requested, EventType.SPOTDRAFT_CALL_RECORDED, call),
            _caused(requested, EventType.CONTRACT_CREATED, {"id": f"T-{n}", "contract_id": n}),
        )
    for n, external_id in enumerate(external_ids[1:], 1):  # the first one is never sent
        created = triggers[external_id]
        await append(
            external_id,
            _caused(created, EventType.SPOTDRAFT_CALL_RECORDED, send),
            _caused(created, EventType.CONTRACT_SENT, {"composite_id": f"T-{n}"}),
        )
    return store


def _no_send(state: ContractState | None, event: RecordedEvent) -> list[Command]:
    return [c for c in decide(state, event) if not isinstance(c, SendContract)]


def _summary(replay: ContractReplay) -> tuple[Any, ...]:
    steps = [
        (s.event.position, s.event.data, s.recorded, s.differences)
        for s in replay.steps
        if s.differences
    ]
    return replay.external_id, steps, replay.state


@pytest.mark.parametrize("exported", [False, True], ids=["store", "exported"])
async def test_the_whole_log_reports_each_contract_as_replaying_it_alone(exported: bool) -> None:
    """A whole-log replay finds, contract by contract, the differences and final state
    that replaying each contract on its own finds."""
    ids = ("deal-b", "deal-a", "deal-c")
    store = await _interleaved_cases(*ids)
    source = _ExportedLog(store) if exported else store
    alone = []
    for external_id in ids:
        replay = await replay_stream(store, contract_stream(external_id), decide_fn=_no_send)
        assert replay is not None
        alone.append(_summary(replay))
    whole = [_summary(r) async for r in replay_log(source, decide_fn=_no_send)]
    assert sorted(whole, key=lambda r: r[0]) == sorted(alone, key=lambda r: r[0])
    assert [len(steps) for _, steps, _ in sorted(whole, key=lambda r: r[0])] == [1, 0, 1]


@pytest.mark.parametrize("until", [9, 14])
async def test_a_whole_store_until_a_position_replays_as_an_exported_log(until: int) -> None:
    """Contract by contract from the store or in log order from an export, a whole-log
    replay up to a position reports the same contracts, differences and states."""
    store = await _interleaved_cases("deal-b", "deal-a", "deal-c")
    by_contract = [_summary(r) async for r in replay_log(store, decide_fn=_no_send, until=until)]
    in_log_order = [
        _summary(r) async for r in replay_log(_ExportedLog(store), decide_fn=_no_send, until=until)
    ]
    assert sorted(by_contract, key=lambda r: r[0]) == sorted(in_log_order, key=lambda r: r[0])
    assert max(r[2].last_position for r in by_contract) == until


@pytest.mark.parametrize("exported", [False, True], ids=["store", "exported"])
async def test_a_whole_log_until_a_position_counts_what_was_recorded_after_it(
    exported: bool,
) -> None:
    """Up to a position, a whole-log replay finds what replaying each contract alone finds:
    a create decided by then and run later is no difference, and a contract begun later
    is not listed."""
    store = await _interleaved_cases("deal-b", "deal-a", "deal-c")  # requested at 1, 2, 3
    source = _ExportedLog(store) if exported else store
    whole = {r.external_id: r async for r in replay_log(source, until=2)}
    assert sorted(whole) == ["deal-a", "deal-b"]
    for external_id, replay in whole.items():
        alone = await replay_stream(store, contract_stream(external_id), until=2)
        assert alone is not None
        assert _summary(replay) == _summary(alone)
        assert replay.difference_count == 0


async def _realistic_log() -> MemoryEventStore:
    """Whole lifecycles (as the bench's logs), then contracts that went wrong: a
    duplicated execution, a sink that gave up and a retry, a create whose outcome was
    lost and looked up, a failure and a void."""
    store = MemoryEventStore()
    await fill(store, 600, window=20)

    async def append(stream: str, *events: NewEvent) -> RecordedEvent:
        result = await store.append(stream, list(events), expected_version=None)
        return result.events[-1]

    def caused(trigger: RecordedEvent, type_: str, data: dict[str, Any], source: Any = "api"):
        return NewEvent(type_, data, source, causation_id=trigger.event_id)

    odd = contract_stream("odd-executed")
    requested = await append(
        odd, NewEvent(EventType.CONTRACT_REQUESTED, _request("odd-executed"), "intake")
    )
    created = await append(
        odd,
        caused(requested, EventType.CONTRACT_CREATE_INTENDED, {"attempt": 1}),
        caused(requested, EventType.CONTRACT_CREATED, {"id": "T-9", "contract_id": 9}),
    )
    executed = {"activity": "CONTRACT_EXECUTED", "contract_id": 9}
    first = await append(odd, NewEvent(EventType.WEBHOOK_RECEIVED, executed, "webhook"))
    await append(odd, NewEvent(EventType.WEBHOOK_RECEIVED, executed, "webhook"))
    await append(
        odd,
        caused(first, EventType.KEY_POINTERS_STORED, {"key_pointers": {"a": 1}}),
        caused(
            created, EventType.SINK_QUEUED, {"milestone": "created", "webhook_id": "m1"}, "sink"
        ),
        caused(
            created, EventType.SINK_GAVE_UP, {"milestone": "created", "webhook_id": "m1"}, "sink"
        ),
    )
    retry = await append(odd, NewEvent(EventType.RETRY_REQUESTED, {}, "operator"))
    await append(
        odd,
        caused(
            retry, EventType.SINK_DELIVERED, {"milestone": "created", "webhook_id": "m1"}, "sink"
        ),
    )

    lost = contract_stream("odd-lost")
    requested = await append(
        lost, NewEvent(EventType.CONTRACT_REQUESTED, _request("odd-lost"), "intake")
    )
    await append(
        lost,
        caused(requested, EventType.CONTRACT_CREATE_INTENDED, {"attempt": 1}),
        caused(requested, EventType.STEP_DEFERRED, {"step": "create", "reason": "timeout"}),
    )
    nudge = await append(
        lost, NewEvent(EventType.RECONCILE_REQUESTED, {"reason": "r"}, "reconciler")
    )
    await append(
        lost,
        caused(
            nudge,
            EventType.CONTRACT_CREATED,
            {"id": "T-8", "contract_id": 8, "found_by_lookup": True},
        ),
    )

    failed = contract_stream("odd-failed")
    requested = await append(
        failed, NewEvent(EventType.CONTRACT_REQUESTED, _request("odd-failed"), "intake")
    )
    created = await append(
        failed, caused(requested, EventType.CONTRACT_CREATED, {"id": "T-7", "contract_id": 7})
    )
    await append(
        failed,
        caused(created, EventType.CONTRACT_FAILED, {"step": "send", "message": "m", "fix": "f"}),
        NewEvent(EventType.WEBHOOK_RECEIVED, {"activity": "CONTRACT_VOIDED"}, "webhook"),
    )
    return store


def _request(external_id: str) -> dict[str, Any]:
    return {"external_id": external_id, "request": {"contract_name": "MSA"}, "send": {}}


@pytest.mark.parametrize("decide_fn", [decide, _no_send], ids=["handlers", "changed"])
@pytest.mark.parametrize("halfway", [False, True], ids=["whole", "until halfway"])
async def test_stream_by_stream_and_in_log_order_replay_a_realistic_log_alike(
    decide_fn: Any, halfway: bool
) -> None:
    """Over whole lifecycles and contracts that went wrong, replaying the store stream
    by stream (each contract folded in place) finds the contracts, differences and states
    that replaying an export in log order finds, up to the end or a position halfway."""
    store = await _realistic_log()
    until = await store.last_position() // 2 if halfway else None
    by_stream = {
        r.external_id: _summary(r)
        async for r in replay_log(store, decide_fn=decide_fn, until=until, workers=0)
    }
    in_order = {
        r.external_id: _summary(r)
        async for r in replay_log(_ExportedLog(store), decide_fn=decide_fn, until=until)
    }
    assert by_stream == in_order
    assert len(by_stream) > 20
    assert halfway or {"odd-executed", "odd-lost", "odd-failed"} <= by_stream.keys()
    if decide_fn is _no_send:
        assert sum(bool(steps) for _, steps, _ in by_stream.values()) > 10


@pytest.mark.parametrize(
    "data",
    [
        {"operation": "get_key_pointers", "method": "GET", "response_body": [{"a": 1}]},
        {"method": "GET", "path": "/x", "operation": "get_key_pointers"},  # keys reordered
        {"operation": 'get_"quoted"\\', "method": "GET"},  # escapes in the value
        {"operation": None, "status": 500},
        {"status": 500},
    ],
    ids=["handlers' order", "other order", "escaped", "null", "missing"],
)
def test_a_calls_record_is_skimmed_to_the_operation_its_whole_text_names(
    data: dict[str, Any],
) -> None:
    """Replay reads a SpotDraft call's record off the front of its JSON text; whatever its
    shape, it finds the operation that decoding the whole text finds."""
    text = orjson.dumps(data).decode()
    assert _skim_call(text) == {"operation": data.get("operation")}
    assert _skim_call(text.encode()) == {"operation": data.get("operation")}
