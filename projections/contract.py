"""A contract's state, folded from its stream: the one fold the read model and the handlers share.

``apply(state, event)`` is pure and total: any event of a contract stream, in any order,
moves the state forward or leaves it alone. SpotDraft's status only moves forward
(DRAFT < REDLINING < SIGN < EXECUTED; VOIDED is terminal unless EXECUTED came first;
ON_HOLD is a pause that any stage at or past the furthest one seen resumes), so a late or
duplicated webhook never undoes what is known. Facts that handlers act on once
(execution seen, milestones told to the sink) are flags here, so a decision can tell
the first delivery of a fact from a repeat.

``to_document()`` is the SPEC section 5 JSON plus private keys prefixed ``_`` (the query
API hides them); ``from_document()`` reads it back, so the read model can fold on from
a stored row without replaying the stream. Only the create request payload is not kept
in the document: the handlers fold the stream itself and need it, the read model does not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventstore.envelope import RecordedEvent, format_timestamp
from projections.events import (
    ACTIVITY_DELETED,
    ACTIVITY_STATUS,
    FINAL_SYNC,
    STATUS_ORDER,
    EventType,
    external_id_of,
)


# Not slotted: ``_evolve`` copies the instance __dict__, several times faster than
# ``dataclasses.replace`` on a frozen class, which matters when rebuilding a long log.
@dataclass(frozen=True)
class ContractState:
    """What spotsync knows about one contract after a prefix of its stream."""

    external_id: str
    integration_name: str | None = None
    record_type: str | None = None
    request: Mapping[str, Any] | None = None
    correlation_id: str | None = None
    send_requested: bool = False
    send_body: Mapping[str, Any] | None = None
    spotdraft_id: str | None = None
    contract_id: int | None = None
    contract_link: str | None = None
    webhook_contract_id: int | None = None
    status: str | None = None
    max_rank: int = -1
    intents: int = 0
    intent_open: bool = False
    intent_at: str | None = None
    sent: bool = False
    executed_seen: bool = False
    voided: bool = False
    key_pointers: Mapping[str, Any] | None = None
    document: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    deferred: str | None = None
    notified: tuple[str, ...] = ()
    sink_parked: Mapping[str, Any] | None = None
    version: int = 0
    last_position: int = 0
    updated_at: str | None = None
    last_heard_at: str | None = None

    @property
    def created(self) -> bool:
        return self.spotdraft_id is not None

    @property
    def sync(self) -> str:
        """spotsync's own phase (SPEC section 5)."""
        if self.voided and not self.executed_seen:
            return "voided"
        if self.error is not None:
            return "failed"
        if self.executed_seen:
            return "synced" if "synced" in self.notified else "executed"
        if self.sent:
            return "sent"
        return "created" if self.created else "pending"

    @property
    def final(self) -> bool:
        return self.sync in FINAL_SYNC

    @property
    def data_complete(self) -> bool:
        """Key pointers and the document are stored: only the sink is left to tell."""
        return self.key_pointers is not None and self.document is not None

    def to_document(self) -> dict[str, Any]:
        return {
            "external_id": self.external_id,
            "integration_name": self.integration_name,
            "record_type": self.record_type,
            "spotdraft": None
            if not self.created
            else {
                "id": self.spotdraft_id,
                "contract_id": self.contract_id,
                "contract_link": self.contract_link,
            },
            "status": self.status,
            "sync": self.sync,
            "key_pointers": dict(self.key_pointers or {}),
            "document": None if self.document is None else dict(self.document),
            "error": None if self.error is None else dict(self.error),
            "last_position": self.last_position,
            "updated_at": self.updated_at,
            "_last_heard_at": self.last_heard_at,
            "_key_pointers_stored": self.key_pointers is not None,
            "_version": self.version,
            "_correlation_id": self.correlation_id,
            "_send_requested": self.send_requested,
            "_send_body": None if self.send_body is None else dict(self.send_body),
            "_webhook_contract_id": self.webhook_contract_id,
            "_max_rank": self.max_rank,
            "_intents": self.intents,
            "_intent_open": self.intent_open,
            "_intent_at": self.intent_at,
            "_sent": self.sent,
            "_executed_seen": self.executed_seen,
            "_voided": self.voided,
            "_deferred": self.deferred,
            "_notified": list(self.notified),
            "_sink_parked": None if self.sink_parked is None else dict(self.sink_parked),
            # text, so parked work can be queried: "failed", "sink" or null
            "_parked": "failed"
            if self.error is not None
            else ("sink" if self.sink_parked is not None else None),
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> ContractState:
        spotdraft = doc.get("spotdraft") or {}
        return cls(
            external_id=doc["external_id"],
            integration_name=doc.get("integration_name"),
            record_type=doc.get("record_type"),
            correlation_id=doc.get("_correlation_id"),
            send_requested=bool(doc.get("_send_requested")),
            send_body=doc.get("_send_body"),
            spotdraft_id=spotdraft.get("id"),
            contract_id=spotdraft.get("contract_id"),
            contract_link=spotdraft.get("contract_link"),
            webhook_contract_id=doc.get("_webhook_contract_id"),
            status=doc.get("status"),
            max_rank=int(doc.get("_max_rank", -1)),
            intents=int(doc.get("_intents", 0)),
            intent_open=bool(doc.get("_intent_open")),
            intent_at=doc.get("_intent_at"),
            sent=bool(doc.get("_sent")),
            executed_seen=bool(doc.get("_executed_seen")),
            voided=bool(doc.get("_voided")),
            key_pointers=doc.get("key_pointers") if doc.get("_key_pointers_stored") else None,
            document=doc.get("document"),
            error=doc.get("error"),
            deferred=doc.get("_deferred"),
            notified=tuple(doc.get("_notified") or ()),
            sink_parked=doc.get("_sink_parked"),
            version=int(doc.get("_version", 0)),
            last_position=int(doc.get("last_position", 0)),
            updated_at=doc.get("updated_at"),
            last_heard_at=doc.get("_last_heard_at"),
        )


def public_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document without its private ``_`` keys: what the query API and the sink show."""
    return {key: value for key, value in doc.items() if not key.startswith("_")}


def fold(events: Any, state: ContractState | None = None) -> ContractState | None:
    """Apply ``events`` (an iterable of RecordedEvent) in order."""
    for event in events:
        state = apply(state, event)
    return state


def apply(state: ContractState | None, event: RecordedEvent) -> ContractState:
    """The state after ``event``. Unknown event types only advance the bookkeeping."""
    if state is None:
        state = ContractState(external_id=external_id_of(event.stream) or event.stream)
    stamp = _timestamp(event.recorded_at)
    state = _evolve(
        state,
        version=event.version,
        last_position=event.position,
        updated_at=stamp,
        last_heard_at=stamp,
    )
    handler = _APPLY.get(event.type)
    return state if handler is None else handler(state, event.data, event)


def merge_status(state: ContractState, status: str | None) -> ContractState:
    """Fold a contract_status seen anywhere (webhook, status call, create answer)."""
    if not status or state.status in ("EXECUTED", "VOIDED"):
        return state
    if status == "VOIDED":
        return _evolve(state, status="VOIDED", voided=True)
    if status == "ON_HOLD":
        return _evolve(state, status="ON_HOLD")
    rank = STATUS_ORDER.get(status)
    if rank is None or rank < state.max_rank:
        return state  # unknown, or a late report of an earlier stage
    return _evolve(
        state,
        status=status,
        max_rank=rank,
        sent=state.sent or rank >= STATUS_ORDER["REDLINING"],
        executed_seen=state.executed_seen or status == "EXECUTED",
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


_last_stamp: tuple[datetime | None, str] = (None, "")


def _timestamp(moment: datetime) -> str:
    # Events appended together share their recorded_at: format each instant once.
    global _last_stamp
    if _last_stamp[0] != moment:
        _last_stamp = (moment, format_timestamp(moment))
    return _last_stamp[1]


def _evolve(state: ContractState, **changes: Any) -> ContractState:
    """``state`` with ``changes``: ``dataclasses.replace`` without its per-call overhead."""
    new = object.__new__(ContractState)
    # One merged dict, set as the instance dict (frozen: bypass the dataclass's __setattr__).
    object.__setattr__(new, "__dict__", state.__dict__ | changes)
    return new


def _cleared(s: ContractState, *steps: str) -> str | None:
    """The deferred step, unless the fact being folded completes it."""
    return None if s.deferred in steps else s.deferred


def _requested(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    request = d.get("request") or {}
    meta = request.get("external_metadata") or {} if isinstance(request, Mapping) else {}
    send = d.get("send")
    return _evolve(
        s,
        request=request,
        integration_name=_text(meta.get("integration_name")),
        record_type=_text(meta.get("record_type")),
        correlation_id=s.correlation_id or e.event_id,
        send_requested=s.send_requested or send is not None,
        send_body=send if send is not None else s.send_body,
    )


def _send_requested(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    return _evolve(s, send_requested=True, send_body=d.get("body") or s.send_body or {})


def _intended(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    return _evolve(s, intents=s.intents + 1, intent_open=True, intent_at=s.updated_at)


def _created(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    contract_id = d.get("contract_id")
    s = _evolve(
        s,
        spotdraft_id=_text(d.get("id")),
        contract_id=None if contract_id is None else int(contract_id),
        contract_link=_text(d.get("contract_link")),
        intent_open=False,
        deferred=_cleared(s, "create", "lookup"),
    )
    return merge_status(s, _text(d.get("contract_status")) or "DRAFT")


def _not_found(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    return _evolve(s, intent_open=False)


def _sent(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    return merge_status(_evolve(s, sent=True, deferred=_cleared(s, "send")), "REDLINING")


def _status(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    return merge_status(s, _text(d.get("contract_status")))


def _webhook(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    activity = d.get("activity")
    contract_id = d.get("contract_id")
    if isinstance(contract_id, int) and s.webhook_contract_id is None:
        s = _evolve(s, webhook_contract_id=contract_id)
    if activity == ACTIVITY_DELETED:
        return s if s.executed_seen else _evolve(s, voided=True)
    status = ACTIVITY_STATUS.get(str(activity))
    return s if status is None else merge_status(s, status)


def _key_pointers(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    pointers = dict(d.get("key_pointers") or {})
    return _evolve(s, key_pointers=pointers, deferred=_cleared(s, "key_pointers"))


def _document(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    document = {
        key: d.get(key)
        for key in ("path", "sha256", "bytes", "file_name", "download_url_expires_at")
    }
    return _evolve(s, document=document, deferred=_cleared(s, "document"))


def _deferred(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    return _evolve(s, deferred=_text(d.get("step")))


def _failed(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    error = {key: d.get(key) for key in ("step", "status", "code", "message", "fix", "fields")}
    intent_open = False if d.get("step") == "create" else s.intent_open
    return _evolve(s, error=error, intent_open=intent_open)


def _sink_delivered(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    milestone = str(d.get("milestone"))
    parked = s.sink_parked
    if parked is not None and parked.get("milestone") == milestone:
        parked = None
    notified = s.notified if milestone in s.notified else (*s.notified, milestone)
    return _evolve(s, notified=notified, sink_parked=parked)


def _sink_gave_up(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    parked = {key: d.get(key) for key in ("milestone", "webhook_id", "attempts", "error")}
    return _evolve(s, sink_parked=parked)


def _retry(s: ContractState, d: Mapping[str, Any], e: RecordedEvent) -> ContractState:
    # A failure told to the sink may be told again if the retry fails again.
    notified = tuple(m for m in s.notified if m != "failed")
    return _evolve(s, error=None, sink_parked=None, deferred=None, notified=notified)


_Fold = Callable[[ContractState, Mapping[str, Any], RecordedEvent], ContractState]
_APPLY: dict[str, _Fold] = {
    EventType.CONTRACT_REQUESTED: _requested,
    EventType.SEND_REQUESTED: _send_requested,
    EventType.CONTRACT_CREATE_INTENDED: _intended,
    EventType.CONTRACT_CREATED: _created,
    EventType.CONTRACT_NOT_FOUND: _not_found,
    EventType.CONTRACT_SENT: _sent,
    EventType.STATUS_OBSERVED: _status,
    EventType.WEBHOOK_RECEIVED: _webhook,
    EventType.KEY_POINTERS_STORED: _key_pointers,
    EventType.DOCUMENT_STORED: _document,
    EventType.STEP_DEFERRED: _deferred,
    EventType.CONTRACT_FAILED: _failed,
    EventType.SINK_DELIVERED: _sink_delivered,
    EventType.SINK_GAVE_UP: _sink_gave_up,
    EventType.RETRY_REQUESTED: _retry,
}
