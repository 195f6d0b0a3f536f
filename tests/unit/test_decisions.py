"""The handlers' decision table: what each event calls for, given the state before it."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from eventstore import RecordedEvent
from handlers import decisions
from handlers.decisions import (
    ALWAYS_DECIDED,
    EDGE_FIELDS,
    NO_COMMANDS,
    Command,
    CreateContract,
    FetchDocument,
    LookupContract,
    NotifySink,
    PullKeyPointers,
    SendContract,
    decide,
    refine,
)
from projections.contract import ContractState, apply, fold
from projections.events import EventType
from tests.unit.test_projections_support import Log


def _run(log: Log) -> list[list[str]]:
    """The commands each event of the log calls for, as names."""
    state: ContractState | None = None
    out = []
    for event in log.events:
        out.append([c.describe() for c in decide(state, event)])
        state = apply(state, event)
    return out


def _last(log: Log) -> list[Command]:
    return decide(fold(log.events[:-1]), log.events[-1])


def test_request_creates_and_creation_sends_when_asked() -> None:
    """A request is created; once created it is sent if the request asked for it."""
    log = Log()
    log.requested(send={"to_emails": ["a@b.c"]})
    log.add(EventType.CONTRACT_CREATE_INTENDED, {"attempt": 1})
    log.created()
    assert _run(log) == [["CreateContract"], [], ["NotifySink(created)", "SendContract"]]
    assert _last(log)[1] == SendContract({"to_emails": ["a@b.c"]})


def test_send_requested_before_creation_waits_for_it() -> None:
    """SendRequested for a contract not yet created sends once it is created, not before."""
    log = Log()
    log.requested()
    log.add(EventType.SEND_REQUESTED, {"body": {}}, source="intake")
    log.created()
    assert _run(log) == [["CreateContract"], [], ["NotifySink(created)", "SendContract"]]


def test_duplicated_execution_pulls_once() -> None:
    """A duplicated CONTRACT_EXECUTED pulls key pointers and the document once."""
    log = Log()
    log.requested()
    log.created()
    log.webhook("CONTRACT_EXECUTED")
    log.webhook("CONTRACT_EXECUTED")
    assert _run(log)[2:] == [["PullKeyPointers", "FetchDocument"], []]


def test_reordered_deliveries_act_on_each_fact_once() -> None:
    """EXECUTED before SENT and SIGNED: pulls once, and the late ones change nothing."""
    log = Log()
    log.requested()
    log.created()
    log.webhook("CONTRACT_EXECUTED")
    log.webhook("CONTRACT_SIGNED")
    log.webhook("CONTRACT_SENT_TO_COUNTERPARTY")
    decisions = _run(log)
    assert decisions[2] == ["PullKeyPointers", "FetchDocument"]
    assert decisions[3:] == [[], []]


def test_unknown_activity_issues_nothing() -> None:
    """A webhook activity spotsync does not act on issues no command."""
    log = Log()
    log.requested()
    log.created()
    log.webhook("CONTRACT_RENAMED")
    assert _run(log)[-1] == []


def test_data_complete_tells_the_sink_synced() -> None:
    """Once both key pointers and the document are stored, the sink is told 'synced'."""
    log = Log()
    log.requested()
    log.created()
    log.webhook("CONTRACT_EXECUTED")
    log.add(EventType.KEY_POINTERS_STORED, {"key_pointers": {"a": 1}})
    log.add(EventType.DOCUMENT_STORED, {"path": "x.pdf", "sha256": "0", "bytes": 1})
    assert _run(log)[3:] == [[], ["NotifySink(synced)"]]


def test_intent_without_outcome_looks_up_before_creating() -> None:
    """A create intent with no recorded outcome turns the next create into a lookup."""
    log = Log()
    log.requested()
    log.add(EventType.CONTRACT_CREATE_INTENDED, {"attempt": 1})
    current = fold(log.events)
    assert current is not None
    assert refine(CreateContract(), current) == LookupContract()
    log.add(EventType.RECONCILE_REQUESTED, {"reason": "overdue"}, source="reconciler")
    assert _last(log) == [LookupContract()]
    log.add(EventType.CONTRACT_NOT_FOUND, {"external_id": "deal-1"})
    assert _last(log) == [CreateContract()]


def test_refine_drops_work_already_done() -> None:
    """A command whose outcome is already recorded is not issued again."""
    log = Log()
    log.requested()
    log.created()
    log.webhook("CONTRACT_EXECUTED")
    log.add(EventType.KEY_POINTERS_STORED, {"key_pointers": {}})
    log.add(EventType.SINK_DELIVERED, {"milestone": "created", "webhook_id": "m"})
    current = fold(log.events)
    assert current is not None
    assert refine(CreateContract(), current) is None
    assert refine(PullKeyPointers(), current) is None
    assert refine(FetchDocument(), current) == FetchDocument()
    assert refine(NotifySink("created", "m"), current) is None
    assert refine(SendContract({}), current) is None


def test_permanent_failure_notifies_and_retry_reruns_the_step() -> None:
    """A failed create tells the sink 'failed'; the operator's retry creates again."""
    log = Log()
    log.requested()
    log.add(EventType.CONTRACT_CREATE_INTENDED, {"attempt": 1})
    log.add(EventType.CONTRACT_FAILED, {"step": "create", "status": 400, "message": "m"})
    log.add(EventType.RETRY_REQUESTED, {}, source="operator")
    assert _run(log)[2:] == [["NotifySink(failed)"], ["CreateContract"]]


def test_reconciler_status_ahead_drives_the_missed_steps() -> None:
    """A reconciler's EXECUTED status for a contract whose webhook was lost pulls the data."""
    log = Log()
    log.requested()
    log.created()
    log.add(EventType.STATUS_OBSERVED, {"contract_status": "EXECUTED", "by": "reconciler"})
    assert _run(log)[-1] == ["PullKeyPointers", "FetchDocument"]


def test_void_tells_the_sink_once_and_stops_work() -> None:
    """A voided contract tells the sink once and issues nothing else."""
    log = Log()
    log.requested(send={})
    log.created()
    log.webhook("CONTRACT_VOIDED")
    log.webhook("CONTRACT_VOIDED")
    assert _run(log)[2:] == [["NotifySink(voided)"], []]
    current = fold(log.events)
    assert current is not None
    assert refine(SendContract({}), current) is None


_MILESTONES = ("created", "sent", "synced", "failed", "voided")
_STATUSES = ("DRAFT", "REDLINING", "SIGN", "EXECUTED", "VOIDED", "ON_HOLD")
_ACTIVITIES = (
    "CONTRACT_CREATED",
    "CONTRACT_SENT_TO_COUNTERPARTY",
    "CONTRACT_SIGNATURE_REQUESTED",
    "CONTRACT_SIGNED",
    "CONTRACT_EXECUTED",
    "CONTRACT_VOIDED",
    "CONTRACT_DELETED",
)


def _any_event(log: Log, rng: random.Random) -> None:
    """Append one event of any type the handlers fold, with data of any plausible kind."""
    milestone = {"milestone": rng.choice(_MILESTONES), "webhook_id": f"m{rng.randrange(3)}"}
    makers: list[Callable[[], Any]] = [
        lambda: log.requested(send=rng.choice([None, {}])),
        lambda: log.add(EventType.SEND_REQUESTED, {"body": {}}, source="intake"),
        lambda: log.add(EventType.CONTRACT_CREATE_INTENDED, {"attempt": 1}),
        lambda: log.created(contract_status=rng.choice(_STATUSES)),
        lambda: log.add(EventType.CONTRACT_NOT_FOUND, {}),
        lambda: log.add(EventType.CONTRACT_SENT, {"composite_id": "T-7"}),
        lambda: log.add(
            EventType.STATUS_OBSERVED,
            {"contract_status": rng.choice(_STATUSES), "by": rng.choice(["handler", "reconciler"])},
        ),
        lambda: log.webhook(rng.choice(_ACTIVITIES)),
        lambda: log.add(EventType.KEY_POINTERS_STORED, {"key_pointers": {"a": 1}}),
        lambda: log.add(EventType.DOCUMENT_STORED, {"path": "d.pdf", "sha256": "0", "bytes": 1}),
        lambda: log.add(EventType.STEP_DEFERRED, {"step": rng.choice(["create", "send"])}),
        lambda: log.add(EventType.CONTRACT_FAILED, {"step": rng.choice(["create", "send"])}),
        lambda: log.add(EventType.SPOTDRAFT_CALL_RECORDED, {"operation": "get_status"}),
        lambda: log.add(EventType.SINK_QUEUED, {**milestone, "trigger": "e1"}, source="sink"),
        lambda: log.add(EventType.SINK_DELIVERED, {**milestone, "status": 204}, source="sink"),
        lambda: log.add(EventType.SINK_ATTEMPT_FAILED, {**milestone, "error": "x"}, source="sink"),
        lambda: log.add(EventType.SINK_GAVE_UP, {**milestone, "attempts": 9}, source="sink"),
        lambda: log.add(EventType.RETRY_REQUESTED, {}, source="operator"),
        lambda: log.add(EventType.RECONCILE_REQUESTED, {"reason": "r"}, source="reconciler"),
    ]
    rng.choice(makers)()


def test_the_records_of_a_run_call_for_nothing_after_any_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``decide`` answers the events a command records as it runs (NO_COMMANDS) at once,
    with nothing: after any history of any events, its whole table answers them so too."""
    checked: set[str] = set()
    # The whole table, always: neither shortcut of ``decide`` answers first.
    monkeypatch.setattr(decisions, "NO_COMMANDS", frozenset())
    monkeypatch.setattr(decisions, "ALWAYS_DECIDED", frozenset(EventType))
    for state, event, _ in _histories(random.Random(11)):
        if event.type in NO_COMMANDS:
            assert decide(state, event) == [], (event.type, state)
            checked.add(event.type)
    assert checked == NO_COMMANDS


def test_an_event_that_turns_no_fact_calls_for_nothing_after_any_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outside ``ALWAYS_DECIDED``, an event that leaves a contract's ``EDGE_FIELDS`` as
    they were calls for no command: after any history of any events, ``decide``'s whole
    table answers it so too (it and replay answer it at once)."""
    monkeypatch.setattr(decisions, "ALWAYS_DECIDED", frozenset(EventType))  # the whole table
    quiet: set[str] = set()
    for state, event, after in _histories(random.Random(23)):
        before = state if state is not None else ContractState(after.external_id)
        unchanged = all(getattr(before, name) == getattr(after, name) for name in EDGE_FIELDS)
        if unchanged and event.type not in ALWAYS_DECIDED:
            assert decide(state, event) == [], (event.type, state)
            quiet.add(event.type)
    # Every kind of event that can be answered so was met in such a history.
    answered = {EventType.WEBHOOK_RECEIVED, EventType.CONTRACT_CREATED, EventType.CONTRACT_SENT}
    assert quiet >= answered | {EventType.CONTRACT_FAILED} | NO_COMMANDS


def _histories(
    rng: random.Random, count: int = 400
) -> Iterator[tuple[ContractState | None, RecordedEvent, ContractState]]:
    """(state before, event, state after) through ``count`` random histories of 1 to 29
    events of any kind."""
    for _ in range(count):
        log = Log()
        for _ in range(rng.randrange(1, 30)):
            _any_event(log, rng)
        state: ContractState | None = None
        for event in log.events:
            after = apply(state, event)
            yield state, event, after
            state = after
