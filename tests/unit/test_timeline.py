"""The readable timeline: one line an event, saying what it means."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eventstore import RecordedEvent
from projections.events import EventType
from projections.timeline import Timeline, summarize

_AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def _event(position: int, type_: str, data: dict[str, Any], source: str = "api") -> RecordedEvent:
    return RecordedEvent(
        position=position,
        stream="contract-deal-1",
        version=position,
        type=type_,
        data=data,
        metadata={"event_id": f"e{position}", "causation_id": None, "source": source},
        recorded_at=_AT,
    )


def _webhook(position: int, activity: str, status: str, body: str) -> RecordedEvent:
    data = {
        "activity": activity,
        "contract_status": status,
        "contract_id": 7,
        "external_id": "deal-1",
        "raw_body": body,
    }
    return _event(position, EventType.WEBHOOK_RECEIVED, data, "webhook")


def test_a_repeated_webhook_body_is_named_a_duplicate_of_the_first() -> None:
    """The same delivery stored twice reads as a duplicate of the first position."""
    lines = summarize(
        [
            _webhook(4, "CONTRACT_EXECUTED", "EXECUTED", '{"a":1}'),
            _webhook(5, "CONTRACT_EXECUTED", "EXECUTED", '{"a":1}'),
        ]
    )
    assert lines == ["webhook CONTRACT_EXECUTED", "webhook CONTRACT_EXECUTED (duplicate of #4)"]


def test_a_webhook_for_a_stage_already_passed_is_marked_late() -> None:
    """A SENT delivery arriving after EXECUTED says it came late."""
    lines = summarize(
        [
            _webhook(1, "CONTRACT_EXECUTED", "EXECUTED", "x"),
            _webhook(2, "CONTRACT_SENT_TO_COUNTERPARTY", "REDLINING", "y"),
        ]
    )
    assert lines[1] == "webhook CONTRACT_SENT_TO_COUNTERPARTY (late: already EXECUTED)"


def test_an_api_call_shows_method_path_status_id_and_latency() -> None:
    """A create call reads like ``POST /contracts/ → 201 T-1234 in 182 ms``."""
    call = _event(
        1,
        EventType.SPOTDRAFT_CALL_RECORDED,
        {
            "operation": "create_contract",
            "method": "POST",
            "path": "/api/v2.1/public/contracts/",
            "status": 201,
            "response_body": {"id": "T-1234"},
            "latency_ms": 182.4,
            "attempt": 1,
            "error": None,
        },
    )
    assert Timeline().summary(call) == "POST /contracts/ → 201 T-1234 in 182 ms"


def test_a_failed_call_without_answer_shows_the_error_and_attempt() -> None:
    """A timed-out retry names its attempt and the error instead of a status."""
    call = _event(
        1,
        EventType.SPOTDRAFT_CALL_RECORDED,
        {
            "operation": "get_key_pointers",
            "method": "GET",
            "path": "/api/v2.1/public/contracts/T-1/key_pointers",
            "status": None,
            "response_body": None,
            "latency_ms": 10_000,
            "attempt": 2,
            "error": "timed out",
        },
    )
    assert Timeline().summary(call) == (
        "GET /contracts/T-1/key_pointers → no answer in 10000 ms (attempt 2): timed out"
    )


def test_a_reconciler_status_check_names_the_reconciler() -> None:
    """The reconciler's status answer reads ``GET status → EXECUTED (reconciler)``."""
    observed = _event(
        1,
        EventType.STATUS_OBSERVED,
        {"contract_status": "EXECUTED", "by": "reconciler"},
        "reconciler",
    )
    assert Timeline().summary(observed) == "GET status → EXECUTED (reconciler)"


def test_a_failure_says_what_to_fix_and_an_operator_retry_who_asked() -> None:
    """A permanent error shows its fix; a retry shows it came from an operator."""
    failed = _event(
        1,
        EventType.CONTRACT_FAILED,
        {
            "step": "create",
            "status": 400,
            "message": "unknown field",
            "fix": "remove it",
        },
    )
    retry = _event(2, EventType.RETRY_REQUESTED, {"reason": "template fixed"}, "operator")
    assert summarize([failed, retry]) == [
        "FAILED at create 400: unknown field; fix: remove it",
        "retry requested by operator: template fixed",
    ]


def test_an_unknown_event_type_is_shown_by_its_type() -> None:
    """Events from a newer version still get a line: their type."""
    assert Timeline().summary(_event(1, "SomethingNew", {})) == "SomethingNew"
