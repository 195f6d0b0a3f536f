"""Parked work: contracts stopped on a permanent error, and sink deliveries given up.

``list_parked`` reads the read model; ``retry_parked`` appends ``RetryRequested``
(source "operator"), which the decisions turn into re-running the stopped step.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventstore import EventStore, NewEvent, RecordedEvent
from projections.contract import ContractState, fold
from projections.events import EventType, contract_stream
from projections.runner import contracts_where


class NotParkedError(Exception):
    """The contract is unknown, or it is not stopped on anything a retry would re-run."""


@dataclass(frozen=True, slots=True)
class ParkedItem:
    external_id: str
    kind: str  # "contract" (sync failed) or "sink" (a delivery given up)
    step: str
    reason: str
    fix: str
    position: int


async def list_parked(store: EventStore) -> list[ParkedItem]:
    """Everything waiting for a person, in external id order."""
    items = [
        _item(kind, ContractState.from_document(doc))
        for kind, value in (("contract", "failed"), ("sink", "sink"))
        for _, doc in await contracts_where(store, "_parked", value)
    ]
    return sorted(items, key=lambda item: (item.external_id, item.kind))


def _item(kind: str, state: ContractState) -> ParkedItem:
    if kind == "contract" and state.error is not None:
        error = state.error
        return ParkedItem(
            state.external_id,
            kind,
            str(error.get("step")),
            str(error.get("message") or ""),
            str(error.get("fix") or ""),
            state.last_position,
        )
    sink = state.sink_error
    assert sink is not None  # listed as "sink": a delivery of it is parked
    return ParkedItem(
        state.external_id, "sink", sink["step"], sink["message"], sink["fix"],
        state.last_position,
    )


async def retry_parked(
    store: EventStore, external_id: str, *, reason: str | None = None
) -> RecordedEvent:
    """Append ``RetryRequested`` for a parked contract; raises NotParkedError otherwise."""
    stream = contract_stream(external_id)
    history = await store.read_stream(stream)
    state = fold(history)
    if state is None:
        raise NotParkedError(f"no contract has external id {external_id!r}")
    if state.error is None and state.sink_parked is None:
        raise NotParkedError(f"{external_id} is not parked (sync: {state.sync})")
    event = NewEvent(
        EventType.RETRY_REQUESTED,
        {"reason": reason},
        "operator",
        correlation_id=state.correlation_id,
    )
    result = await store.append(stream, [event], expected_version=state.version)
    return result.events[-1]
