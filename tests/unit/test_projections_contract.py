"""The contract-state fold: state only moves forward, and the document is SPEC section 5."""

from __future__ import annotations

from projections.contract import ContractState, fold, public_view
from projections.events import EventType
from tests.unit.test_projections_support import Log


def _state(log: Log) -> ContractState:
    state = fold(log.events)
    assert state is not None
    return state


def test_late_sent_webhook_does_not_undo_execution() -> None:
    """A CONTRACT_SENT_TO_COUNTERPARTY arriving after CONTRACT_EXECUTED leaves it EXECUTED."""
    log = Log()
    log.requested()
    log.created()
    log.webhook("CONTRACT_EXECUTED")
    log.webhook("CONTRACT_SENT_TO_COUNTERPARTY")
    state = _state(log)
    assert state.status == "EXECUTED"
    assert state.sync == "executed"


def test_void_after_execution_is_ignored_and_void_before_is_final() -> None:
    """VOIDED ends a contract, except one already EXECUTED."""
    executed, voided = Log(), Log()
    for log in (executed, voided):
        log.requested()
        log.created()
    executed.webhook("CONTRACT_EXECUTED")
    executed.webhook("CONTRACT_VOIDED")
    voided.webhook("CONTRACT_VOIDED")
    voided.webhook("CONTRACT_SIGNED")
    assert _state(executed).status == "EXECUTED"
    assert (_state(voided).status, _state(voided).sync) == ("VOIDED", "voided")


def test_on_hold_pauses_and_a_later_stage_resumes() -> None:
    """ON_HOLD shows as the status until a stage at or past the furthest one arrives."""
    log = Log()
    log.requested()
    log.created()
    log.webhook("CONTRACT_SENT_TO_COUNTERPARTY")
    log.add(EventType.STATUS_OBSERVED, {"contract_status": "ON_HOLD", "by": "reconciler"})
    assert _state(log).status == "ON_HOLD"
    log.webhook("CONTRACT_CREATED")  # a late DRAFT does not resume it
    assert _state(log).status == "ON_HOLD"
    log.webhook("CONTRACT_SIGNATURE_REQUESTED")
    assert _state(log).status == "SIGN"


def test_unknown_activity_changes_nothing_but_bookkeeping() -> None:
    """A webhook with an activity spotsync does not know leaves status and sync alone."""
    log = Log()
    log.requested()
    log.created()
    before = _state(log)
    log.webhook("CONTRACT_COMMENT_ADDED")
    after = _state(log)
    assert (after.status, after.sync) == (before.status, before.sync)
    assert after.last_position == before.last_position + 1


def test_document_is_the_spec_shape_and_round_trips() -> None:
    """to_document has SPEC section 5's keys, and from_document folds on identically."""
    log = Log()
    log.requested(send={})
    log.created()
    log.add(EventType.CONTRACT_SENT, {"composite_id": "T-7", "already_sent": False})
    log.webhook("CONTRACT_EXECUTED")
    log.add(EventType.KEY_POINTERS_STORED, {"key_pointers": {"contract_value": 12000}})
    doc = _state(log).to_document()
    assert set(public_view(doc)) == {
        "external_id",
        "integration_name",
        "record_type",
        "spotdraft",
        "status",
        "sync",
        "key_pointers",
        "document",
        "error",
        "last_position",
        "updated_at",
    }
    assert doc["spotdraft"] == {"id": "T-7", "contract_id": 7, "contract_link": "https://x/7"}
    assert (doc["integration_name"], doc["record_type"]) == ("HubSpot", "Deal")
    assert doc["key_pointers"] == {"contract_value": 12000}
    assert doc["sync"] == "executed"
    restored = ContractState.from_document(doc)
    assert restored.to_document() == doc


def test_synced_needs_data_and_the_sink_and_failure_names_the_fix() -> None:
    """sync is synced only once data is stored and the sink told; a failure shows its fix."""
    log = Log()
    log.requested()
    log.created()
    log.webhook("CONTRACT_EXECUTED")
    log.add(EventType.KEY_POINTERS_STORED, {"key_pointers": {}})
    log.add(EventType.DOCUMENT_STORED, {"path": "a.pdf", "sha256": "0", "bytes": 1})
    assert _state(log).sync == "executed"
    log.add(EventType.SINK_DELIVERED, {"milestone": "synced", "webhook_id": "m"})
    assert _state(log).sync == "synced"

    failed = Log("deal-2")
    failed.requested()
    failed.add(
        EventType.CONTRACT_FAILED,
        {
            "step": "create",
            "status": 400,
            "message": "bad",
            "fix": "fix these fields: x",
            "fields": ["contract_data.x"],
        },
    )
    state = _state(failed)
    assert state.sync == "failed"
    assert state.error is not None
    assert state.error["fields"] == ["contract_data.x"]
    failed.add(EventType.RETRY_REQUESTED, {}, source="operator")
    assert _state(failed).sync == "pending"
