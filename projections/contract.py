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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import orjson

from eventstore.base import StreamRow
from eventstore.envelope import RecordedEvent, format_timestamp
from projections.events import (
    ACTIVITY_DELETED,
    ACTIVITY_STATUS,
    FINAL_SYNC,
    STATUS_ORDER,
    EventType,
    external_id_of,
)

# The longest wait a status answer may ask for (what an imported log says is bounded).
QUIET_FOR_MAX = 7 * 24 * 3600.0


# Not slotted: the fold copies and changes the instance __dict__ (``apply``), several
# times faster than ``dataclasses.replace`` on a frozen class, which matters on long logs.
# The top-level fields of a contract's row that the read models also keep an index of
# (``projections.runner``): the query API's filters (``updated_at`` for ``updated_since``:
# its keys sort by time), and what finds parked work and the sink's queue. In the order
# ``ContractState.indexed`` gives their values.
INDEXED = ("status", "sync", "_parked", "_sink_pending", "updated_at")


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
    deferrals: int = 0  # transient failures in a row of the deferred step
    notified: tuple[str, ...] = ()
    sink_parked: Mapping[str, Any] | None = None
    # Later milestones waiting behind the parked delivery: the sink hears them in order.
    sink_held: tuple[Mapping[str, Any], ...] = ()
    # Milestones queued for the sink's workers, in order ({"milestone", "webhook_id",
    # "trigger"}); each leaves the queue once delivered or given up on.
    sink_queue: tuple[Mapping[str, Any], ...] = ()
    version: int = 0
    last_position: int = 0
    updated_at: str | None = None
    last_heard_at: str | None = None
    # Seconds the reconciler waits on top of stale_after before it asks again: its last
    # answer saw nothing new (see handlers.reconciler). Any later event clears it, but
    # the sink's own failed attempts to tell the contract's news.
    quiet_for: float = 0.0

    @property
    def created(self) -> bool:
        return self.spotdraft_id is not None

    @property
    def sync(self) -> str:
        """spotsync's own phase as SPEC section 5 shows it: the flow's ``progress``, but
        "failed" while a delivery to the sink is parked, since a person must make the
        sink answer before the source system hears the rest (``error`` says so)."""
        return "failed" if self.sink_parked is not None else self.progress

    @property
    def progress(self) -> str:
        """The phase of the flow itself, which the handlers decide on: a parked sink
        delivery does not stop it (the data is still pulled; the sink is told later)."""
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
        return self.progress in FINAL_SYNC

    @property
    def data_complete(self) -> bool:
        """Key pointers and the document are stored: only the sink is left to tell."""
        return self.key_pointers is not None and self.document is not None

    @property
    def sink_error(self) -> dict[str, str] | None:
        """The parked sink delivery as an ``error`` (step, message, fix), if one is."""
        parked = self.sink_parked
        if parked is None:
            return None
        step = f"sink {parked.get('milestone')}"
        if self.sink_held:
            held = ", ".join(str(told.get("milestone")) for told in self.sink_held)
            step += f" (then {held})"
        return {
            "step": step,
            "message": str(parked.get("error") or "the sink did not answer 2xx"),
            "fix": "make SPOTSYNC_SINK_URL reachable and answering 2xx, then "
            f"`spotsync parked retry {self.external_id}`",
        }

    @property
    def parked(self) -> str | None:
        """What stopped it for a person: "failed" (sync), "sink" (a delivery), or None."""
        if self.error is not None:
            return "failed"
        return "sink" if self.sink_parked is not None else None

    def indexed(self) -> tuple[str | None, ...]:
        """The values of the row's ``INDEXED`` fields, as ``to_document`` writes them."""
        pending = "yes" if self.sink_queue else None
        return (self.status, self.sync, self.parked, pending, self.updated_at)

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
            # What a person must fix: the flow's own error first, else the sink's.
            "error": dict(self.error) if self.error is not None else self.sink_error,
            "last_position": self.last_position,
            "updated_at": self.updated_at,
            "_last_heard_at": self.last_heard_at,
            "_quiet_for": self.quiet_for,
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
            "_deferrals": self.deferrals,
            "_notified": list(self.notified),
            "_error": None if self.error is None else dict(self.error),  # the flow's own
            "_sink_parked": None if self.sink_parked is None else dict(self.sink_parked),
            "_sink_held": [dict(held) for held in self.sink_held],
            "_sink_queue": [dict(queued) for queued in self.sink_queue],
            # text, so the sink's workers can find what is left to deliver after a restart
            "_sink_pending": "yes" if self.sink_queue else None,
            # text, so parked work can be queried: "failed", "sink" or null
            "_parked": self.parked,
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
            error=doc["_error"] if "_error" in doc else doc.get("error"),
            deferred=doc.get("_deferred"),
            deferrals=int(doc.get("_deferrals", 0)),
            notified=tuple(doc.get("_notified") or ()),
            sink_parked=doc.get("_sink_parked"),
            sink_held=tuple(doc.get("_sink_held") or ()),
            sink_queue=tuple(doc.get("_sink_queue") or ()),
            version=int(doc.get("_version", 0)),
            last_position=int(doc.get("last_position", 0)),
            updated_at=doc.get("updated_at"),
            last_heard_at=doc.get("_last_heard_at"),
            quiet_for=float(doc.get("_quiet_for") or 0.0),
        )


def public_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document without its private ``_`` keys: what the query API and the sink show."""
    return {key: value for key, value in doc.items() if not key.startswith("_")}


def blank(external_id: str) -> ContractState:
    """The state of a contract before its first event (as ``ContractState(external_id)``,
    without the dataclass's field by field construction)."""
    return _frozen(_initial(external_id))


def fold(events: Any, state: ContractState | None = None) -> ContractState | None:
    """Apply ``events`` (an iterable of RecordedEvent) in order."""
    for event in events:
        state = apply(state, event)
    return state


def apply(
    state: ContractState | None, event: RecordedEvent, stamp: str | None = None
) -> ContractState:
    """The state after ``event``. Unknown event types only advance the bookkeeping.

    ``stamp``: the event's ``recorded_at`` as ISO text, when the caller read it so.
    """
    fields = fields_of(state, event.stream)  # the one copy: the fold then works in place
    if stamp is None:
        stamp = _timestamp(event.recorded_at)
    advance(fields, event.position, event.version, event.type, event.data, event.metadata, stamp)
    return _frozen(fields)


def fields_of(state: ContractState | None, stream: str) -> Fields:
    """A copy of the state's fields (a blank contract's for None), to ``advance`` in place."""
    if state is None:
        return _initial(external_id_of(stream) or stream)
    return state.__dict__.copy()


def advance(
    fields: Fields,
    position: int,
    version: int,
    type_: str,
    data: Mapping[str, Any],
    metadata: Mapping[str, Any],
    stamp: str,
) -> None:
    """Fold one event into a contract's ``fields`` in place (``apply`` without the copy):
    for a caller that holds one contract's fields and needs no state of it in between."""
    fields["version"] = version
    fields["last_position"] = position
    fields["updated_at"] = fields["last_heard_at"] = stamp
    if type_ not in _KEEPS_QUIET:
        fields["quiet_for"] = 0.0
    handler = _APPLY.get(type_)
    if handler is not None:
        handler(fields, data, metadata)


def snapshot(fields: Fields) -> ContractState:
    """The state ``fields`` stand for now, unchanged by later ``advance`` calls on them."""
    return _frozen(fields.copy())


def state_of(fields: Fields) -> ContractState:
    """The state of ``fields`` as they are, without a copy: valid until they next change."""
    return _frozen(fields)


class StreamFold:
    """Folds whole streams from rows in stream order, each from its first event to its last.

    The fast way to the final states of many contracts (a rebuild): one mutable set of
    fields per contract, changed in place, made a ``ContractState`` once its stream ends.
    Each contract's state depends only on its own stream, so it equals the state folded
    in log order with ``apply``. Rows come with their payloads as JSON text
    (``read_streams(decoded=False)``): a row's data is decoded only if its type changes
    the state, its metadata only if the change reads it, and each just before use.
    """

    __slots__ = ("_fields", "_stream")

    def __init__(self) -> None:
        self._stream: str | None = None
        self._fields: dict[str, Any] | None = None

    def feed(self, rows: Iterable[StreamRow]) -> list[ContractState]:
        """Fold ``rows``; returns the states of the streams that ended before the last row."""
        done: list[ContractState] = []
        handlers = _APPLY
        reads_metadata = _READS_METADATA
        keeps_quiet = _KEEPS_QUIET
        loads = orjson.loads
        stream = self._stream
        fields = self._fields if self._fields is not None else _DEFAULTS
        for position, row_stream, version, type_, data, metadata, stamp in rows:
            if row_stream != stream:
                if stream is not None:
                    done.append(_frozen(fields))
                stream = row_stream
                fields = _initial(external_id_of(stream) or stream)
            fields["version"] = version
            fields["last_position"] = position
            fields["updated_at"] = fields["last_heard_at"] = stamp
            if type_ not in keeps_quiet:
                fields["quiet_for"] = 0.0
            handler = handlers.get(type_)
            if handler is not None:
                meta = loads(metadata) if type_ in reads_metadata else _NO_METADATA
                handler(fields, loads(data), meta)
        if stream is not None:
            self._stream, self._fields = stream, fields
        return done

    def finish(self) -> list[ContractState]:
        """The state of the stream the last rows belonged to (if any)."""
        fields, self._stream, self._fields = self._fields, None, None
        return [] if fields is None else [_frozen(fields)]


def merge_status(state: ContractState, status: str | None) -> ContractState:
    """Fold a contract_status seen anywhere (webhook, status call, create answer)."""
    fields = state.__dict__.copy()
    _merge_status(fields, status)
    return _frozen(fields)


# -- the fold itself: handlers change a state's fields in place -------------------------
#
# One dict per step, not one per change: ``apply`` copies the fields once and the
# handler sets what the event changes; ``StreamFold`` does not even copy. Handlers read
# the fields as they go, so a handler that sets a field and then merges a status sees
# its own change, as a chain of immutable updates would.

Fields = dict[str, Any]
_DEFAULTS: Fields = {}  # every field's default, filled in below


def _initial(external_id: str) -> Fields:
    fields = _DEFAULTS.copy()
    fields["external_id"] = external_id
    return fields


def _frozen(fields: Fields) -> ContractState:
    """A ContractState with ``fields`` as its own: ``dataclasses.replace`` without its cost."""
    state = object.__new__(ContractState)
    object.__setattr__(state, "__dict__", fields)  # frozen: bypass the dataclass's __setattr__
    return state


def _merge_status(s: Fields, status: str | None) -> None:
    if not status or s["status"] in ("EXECUTED", "VOIDED"):
        return
    if status == "VOIDED":
        s["status"] = "VOIDED"
        s["voided"] = True
        return
    if status == "ON_HOLD":
        s["status"] = "ON_HOLD"
        return
    rank = STATUS_ORDER.get(status)
    if rank is None or rank < s["max_rank"]:
        return  # unknown, or a late report of an earlier stage
    s["status"] = status
    s["max_rank"] = rank
    s["sent"] = s["sent"] or rank >= STATUS_ORDER["REDLINING"]
    s["executed_seen"] = s["executed_seen"] or status == "EXECUTED"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


_last_stamp: tuple[datetime | None, str] = (None, "")


def _timestamp(moment: datetime) -> str:
    # Events appended together share their recorded_at: format each instant once.
    global _last_stamp
    if _last_stamp[0] != moment:
        _last_stamp = (moment, format_timestamp(moment))
    return _last_stamp[1]


def _clear(s: Fields, *steps: str) -> None:
    """Clear the deferred step if the fact being folded completes it."""
    if s["deferred"] in steps:
        s["deferred"] = None
        s["deferrals"] = 0


def _requested(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    request = d.get("request") or {}
    meta = request.get("external_metadata") or {} if isinstance(request, Mapping) else {}
    send = d.get("send")
    s["request"] = request
    s["integration_name"] = _text(meta.get("integration_name"))
    s["record_type"] = _text(meta.get("record_type"))
    s["correlation_id"] = s["correlation_id"] or str(m["event_id"])
    s["send_requested"] = s["send_requested"] or send is not None
    if send is not None:
        s["send_body"] = send
    # A request after a failure corrects the one that failed (intake takes it only
    # before SpotDraft created the contract): the flow starts over from it.
    s["error"] = s["deferred"] = None
    s["deferrals"] = 0
    s["notified"] = tuple(m for m in s["notified"] if m != "failed")


def _send_requested(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    s["send_requested"] = True
    s["send_body"] = d.get("body") or s["send_body"] or {}


def _intended(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    s["intents"] += 1
    s["intent_open"] = True
    s["intent_at"] = s["updated_at"]


def _created(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    contract_id = d.get("contract_id")
    s["spotdraft_id"] = _text(d.get("id"))
    s["contract_id"] = None if contract_id is None else int(contract_id)
    s["contract_link"] = _text(d.get("contract_link"))
    s["intent_open"] = False
    _clear(s, "create", "lookup")
    _merge_status(s, _text(d.get("contract_status")) or "DRAFT")


def _not_found(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    s["intent_open"] = False


def _sent(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    s["sent"] = True
    _clear(s, "send")
    _merge_status(s, "REDLINING")


def _status(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    _merge_status(s, _text(d.get("contract_status")))
    quiet_for = d.get("quiet_for")
    if isinstance(quiet_for, int | float) and not isinstance(quiet_for, bool) and quiet_for > 0:
        s["quiet_for"] = min(float(quiet_for), QUIET_FOR_MAX)


def _webhook(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    activity = d.get("activity")
    contract_id = d.get("contract_id")
    if isinstance(contract_id, int) and s["webhook_contract_id"] is None:
        s["webhook_contract_id"] = contract_id
    if activity == ACTIVITY_DELETED:
        if not s["executed_seen"]:
            s["voided"] = True
        return
    status = ACTIVITY_STATUS.get(str(activity))
    if status is not None:
        _merge_status(s, status)


def _key_pointers(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    s["key_pointers"] = dict(d.get("key_pointers") or {})
    _clear(s, "key_pointers")


def _document(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    s["document"] = {
        key: d.get(key)
        for key in ("path", "sha256", "bytes", "file_name", "download_url_expires_at")
    }
    _clear(s, "document")


def _deferred(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    step = _text(d.get("step"))
    s["deferrals"] = s["deferrals"] + 1 if step == s["deferred"] else 1
    s["deferred"] = step


def _failed(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    s["error"] = {key: d.get(key) for key in ("step", "status", "code", "message", "fix", "fields")}
    if d.get("step") == "create":
        s["intent_open"] = False


def _sink_queued(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    milestone = str(d.get("milestone"))
    queue = s["sink_queue"]
    if milestone in s["notified"] or _queued(queue, milestone):
        return
    queued = {
        "milestone": milestone,
        "webhook_id": _text(d.get("webhook_id")),
        "trigger": _text(d.get("trigger")),
        "at": s["updated_at"],  # when the milestone was reached: the notice's timestamp
    }
    s["sink_queue"] = (*queue, queued)


def _queued(queue: tuple[Mapping[str, Any], ...], milestone: str) -> bool:
    # A loop, not any() over a generator (made anew each call): the fold runs this for
    # every sink event.
    for queued in queue:  # noqa: SIM110
        if queued["milestone"] == milestone:
            return True
    return False


def _dequeue(s: Fields, milestone: str) -> None:
    queue = s["sink_queue"]
    if _queued(queue, milestone):
        s["sink_queue"] = tuple(q for q in queue if q["milestone"] != milestone)


def _sink_delivered(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    milestone = str(d.get("milestone"))
    _dequeue(s, milestone)
    parked = s["sink_parked"]
    if parked is not None and parked.get("milestone") == milestone:
        # What waited behind it is parked in its turn: a retry tells it next.
        held = s["sink_held"]
        s["sink_parked"] = held[0] if held else None
        s["sink_held"] = held[1:]
    if milestone not in s["notified"]:
        s["notified"] = (*s["notified"], milestone)


def _sink_gave_up(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    given_up = {key: d.get(key) for key in ("milestone", "webhook_id", "attempts", "error")}
    _dequeue(s, str(given_up["milestone"]))
    parked = s["sink_parked"]
    if parked is None or parked.get("milestone") == given_up["milestone"]:
        s["sink_parked"] = given_up
    elif all(held.get("milestone") != given_up["milestone"] for held in s["sink_held"]):
        # A later milestone while one is parked: it waits its turn, it does not replace it.
        s["sink_held"] = (*s["sink_held"], given_up)


def _retry(s: Fields, d: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    # The parked delivery and those held behind it are queued again, each under its own
    # webhook-id, ahead of what was queued after them (and not yet told as held): the
    # sink's workers may read the stream before the handlers see this event.
    parked = s["sink_parked"]
    if parked is not None:
        queue = s["sink_queue"]
        again: list[Mapping[str, Any]] = []
        for told in (parked, *s["sink_held"]):
            milestone = _text(told.get("milestone"))
            if milestone is None or milestone in s["notified"]:
                continue
            if any(q["milestone"] == milestone for q in (*again, *queue)):
                continue
            again.append(
                {
                    "milestone": milestone,
                    "webhook_id": _text(told.get("webhook_id")) or f"msg_{m.get('event_id')}",
                    "trigger": _text(m.get("event_id")),
                    "at": s["updated_at"],
                }
            )
        s["sink_queue"] = (*again, *queue)
    # A failure told to the sink may be told again if the retry fails again.
    s["error"] = s["sink_parked"] = s["deferred"] = None
    s["sink_held"] = ()
    s["deferrals"] = 0
    s["notified"] = tuple(m for m in s["notified"] if m != "failed")


# (fields, data, metadata) → None; changes the fields in place.
_Fold = Callable[[Fields, Mapping[str, Any], Mapping[str, Any]], None]
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
    EventType.SINK_QUEUED: _sink_queued,
    EventType.SINK_DELIVERED: _sink_delivered,
    EventType.SINK_GAVE_UP: _sink_gave_up,
    EventType.RETRY_REQUESTED: _retry,
}
# The types whose data the fold reads: of any other, only the bookkeeping is folded.
FOLDED = frozenset(_APPLY)
# The sink's failures to tell a contract's news: they are no news of the contract, so a
# wait the reconciler asked for (``quiet_for``) goes on through them.
_KEEPS_QUIET = frozenset(
    {EventType.SINK_QUEUED, EventType.SINK_ATTEMPT_FAILED, EventType.SINK_GAVE_UP}
)
# The types whose handler reads the event's metadata (the others get an empty mapping).
_READS_METADATA = frozenset({EventType.CONTRACT_REQUESTED, EventType.RETRY_REQUESTED})
_NO_METADATA: Mapping[str, Any] = MappingProxyType({})
_DEFAULTS.update(ContractState(external_id="").__dict__)
