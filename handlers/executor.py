"""Running the decisions' commands: SpotDraft calls and sink notices, each outcome recorded.

Every HTTP attempt becomes a ``SpotDraftCallRecorded`` event and the outcome a fact
(``ContractCreated``, ``KeyPointersStored``...), appended to the contract's stream with
``causation_id`` = the triggering event and ``correlation_id`` = the contract's first
event. Errors are sorted once, here:

- ``PermanentError``: the contract ends ``failed`` with what to fix (``ContractFailed``);
- ``OutcomeUnknownError`` (a create or send that may have happened): look before acting
  again, at once (lookup by external id; status check for a send);
- other ``TransientError`` (retries ran out): ``StepDeferred``; the next nudge retries.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import structlog

from eventstore import ConcurrencyError, EventStore, NewEvent, RecordedEvent
from eventstore.envelope import Source, parse_timestamp, utcnow
from handlers.api import SpotDraftAPI
from handlers.decisions import (
    Command,
    CreateContract,
    FetchDocument,
    LookupContract,
    NotifySink,
    PullKeyPointers,
    SendContract,
    refine,
)
from handlers.documents import document_file_name
from handlers.sink_worker import SinkWorker
from handlers.spotdraft.errors import (
    OutcomeUnknownError,
    PermanentError,
    SpotDraftError,
    field_names,
)
from handlers.spotdraft.exchange import Exchange
from projections.contract import ContractState, fold
from projections.events import EventType, contract_stream

log = structlog.get_logger("spotsync.handlers")

_NAMESPACE = uuid.UUID("0b6f4c1e-54b8-4b8e-9d0e-6c3f1f0f5a77")
# A command that calls for a follow-up (lookup after an unknown create, create after an
# empty lookup) runs again at once, at most this many times per trigger.
MAX_ROUNDS = 6
# How long a create may be in flight: an intent younger than this with no outcome may
# belong to a live worker, or to a dead one whose request SpotDraft is still handling.
# Create is sent once (never retried when the outcome is unknown), so this is the
# client's request timeout plus a margin; the daemon derives it from SPOTDRAFT_TIMEOUT.
INTENT_LEASE = 35.0


@dataclass(frozen=True, slots=True)
class _Outcome:
    events: list[NewEvent]
    again: bool = False


class Executor:
    """Runs commands for one contract at a time (the caller serialises per contract)."""

    def __init__(
        self,
        store: EventStore,
        client: SpotDraftAPI,
        *,
        documents_dir: Path,
        sink: SinkWorker | None = None,
        intent_lease: float = INTENT_LEASE,
    ) -> None:
        self.intent_lease = intent_lease
        # Intents this executor recorded itself (external_id, attempt): their outcome is
        # known to be unknown here, no other worker is waiting on them.
        self._own_intents: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.store = store
        self.client = client
        self.documents_dir = Path(documents_dir)
        self.sink = sink

    async def execute(
        self, trigger: RecordedEvent, command: Command, current: ContractState
    ) -> ContractState:
        """Run ``command`` if the current state still needs it; returns the state after."""
        for _ in range(MAX_ROUNDS):
            refined = refine(command, current)
            if refined is None:
                return current
            log.info("command", command=refined.describe(), external_id=current.external_id)
            current, again = await self._run(trigger, refined, current)
            if not again:
                return current
            command = refined
        return current

    async def _run(
        self, trigger: RecordedEvent, command: Command, current: ContractState
    ) -> tuple[ContractState, bool]:
        if isinstance(command, CreateContract):
            return await self._create(trigger, current)
        if isinstance(command, NotifySink):
            return await self._notify(trigger, command, current), False
        if isinstance(command, LookupContract):
            outcome = await self._lookup(trigger, current)
        elif isinstance(command, SendContract):
            outcome = await self._send(command, current)
        elif isinstance(command, PullKeyPointers):
            outcome = await self._key_pointers(current)
        elif isinstance(command, FetchDocument):
            outcome = await self._document(current)
        else:
            raise TypeError(f"no executor for {command!r}")
        return await self._record(trigger, current, outcome.events), outcome.again

    # -- steps -------------------------------------------------------------------------

    async def _create(
        self, trigger: RecordedEvent, current: ContractState
    ) -> tuple[ContractState, bool]:
        attempt = current.intents + 1
        intent = NewEvent(
            EventType.CONTRACT_CREATE_INTENDED,
            {"attempt": attempt},
            "api",
            event_id=str(uuid.uuid5(_NAMESPACE, f"{trigger.event_id}/intent/{attempt}")),
            causation_id=trigger.event_id,
            correlation_id=current.correlation_id or trigger.event_id,
        )
        stream = contract_stream(current.external_id)
        try:
            result = await self.store.append(stream, [intent], expected_version=current.version)
        except ConcurrencyError:
            # Someone appended meanwhile. Another worker's intent means it is creating
            # right now: leave it to that worker. Anything else (a webhook): decide again.
            fresh = await self._refresh(current)
            return fresh, fresh.intents == current.intents
        current = await self._refresh(current)
        if result.duplicate:
            return current, False  # another worker recorded this very intent and creates
        self._own_intents[(current.external_id, attempt)] = None
        if len(self._own_intents) > 10_000:
            self._own_intents.popitem(last=False)
        try:
            created = await self.client.create_contract(dict(current.request or {}))
        except SpotDraftError as exc:
            outcome = self._failure("create", exc)
        else:
            value = created.value
            fact = {
                "id": str(value["id"]),
                "contract_id": value.get("contract_id"),
                "contract_link": value.get("contract_link"),
                "contract_status": value.get("contract_status"),
                "found_by_lookup": False,
            }
            events = self._calls(created.exchanges)
            outcome = _Outcome([*events, NewEvent(EventType.CONTRACT_CREATED, fact, "api")])
        return await self._record(trigger, current, outcome.events), outcome.again

    async def _lookup(self, trigger: RecordedEvent, current: ContractState) -> _Outcome:
        try:
            found = await self.client.find_by_external_id(current.external_id)
        except SpotDraftError as exc:
            return self._failure("lookup", exc)
        events = self._calls(found.exchanges)
        matches = [c for c in found.value if _external_id(c) in (None, current.external_id)]
        if not matches and self._intent_remaining(current) > 0:
            # A young intent may be another worker's create still in flight: wait for its
            # outcome (or the lease to run out), then look again before ever creating.
            current = await self._record(trigger, current, events)
            await self._await_outcome(current)
            return _Outcome([], again=True)
        if not matches:
            empty = {"external_id": current.external_id}
            return _Outcome([*events, NewEvent(EventType.CONTRACT_NOT_FOUND, empty, "api")], True)
        # Exactly one is expected; should there be more, the oldest is the one we keep.
        first = min(matches, key=lambda c: int(c.get("contract_id") or c.get("id") or 0))
        contract_id = int(first.get("contract_id") or first["id"])
        composite = first["id"] if isinstance(first["id"], str) else f"T-{contract_id}"
        fact: dict[str, Any] = {
            "id": composite,
            "contract_id": contract_id,
            "contract_link": first.get("contract_link"),
            "contract_status": first.get("contract_status"),
            "found_by_lookup": True,
        }
        return _Outcome([*events, NewEvent(EventType.CONTRACT_CREATED, fact, "api")])

    def _intent_remaining(self, current: ContractState) -> float:
        if not current.intent_open or current.intent_at is None:
            return 0.0
        if (current.external_id, current.intents) in self._own_intents:
            return 0.0
        age = (utcnow() - parse_timestamp(current.intent_at)).total_seconds()
        return self.intent_lease - age

    async def _await_outcome(self, current: ContractState) -> None:
        with anyio.move_on_after(self._intent_remaining(current)):
            while True:
                position = await self.store.last_position()
                fresh = await self._refresh(current)
                if fresh.created or not fresh.intent_open or fresh.intents > current.intents:
                    return
                await self.store.wait_for_append(position)

    async def _send(self, command: SendContract, current: ContractState) -> _Outcome:
        composite = str(current.spotdraft_id)
        try:
            sent = await self.client.send_to_counterparties(composite, dict(command.body))
        except PermanentError as exc:
            if exc.status != 402:
                return self._failure("send", exc)
            # 402: SpotDraft's workflow refused; if it is already past DRAFT, it was sent.
            return await self._check_sent(current, self._calls(exc.exchanges), exc)
        except OutcomeUnknownError as exc:
            return await self._check_sent(current, self._calls(exc.exchanges), None)
        except SpotDraftError as exc:
            return self._failure("send", exc)
        fact = {"composite_id": composite, "already_sent": False}
        return _Outcome(
            [*self._calls(sent.exchanges), NewEvent(EventType.CONTRACT_SENT, fact, "api")]
        )

    async def _check_sent(
        self, current: ContractState, events: list[NewEvent], refusal: PermanentError | None
    ) -> _Outcome:
        try:
            status = await self.client.get_status(str(current.spotdraft_id))
        except SpotDraftError as exc:
            outcome = self._failure("send", exc)
            return _Outcome([*events, *outcome.events], outcome.again)
        events = [*events, *self._calls(status.exchanges)]
        observed = str(status.value.get("contract_status"))
        events.append(
            NewEvent(
                EventType.STATUS_OBSERVED,
                {
                    "contract_status": observed,
                    "contract_name": status.value.get("contract_name"),
                    "by": "handler",
                },
                "api",
            )
        )
        if observed not in ("DRAFT", "ON_HOLD"):
            fact = {"composite_id": current.spotdraft_id, "already_sent": True}
            if observed != "VOIDED":
                events.append(NewEvent(EventType.CONTRACT_SENT, fact, "api"))
            return _Outcome(events)
        if refusal is None:
            return _Outcome(events, again=observed == "DRAFT")  # not sent: send now
        return _Outcome([*events, *self._failure("send", refusal, calls=False).events])

    async def _key_pointers(self, current: ContractState) -> _Outcome:
        try:
            pulled = await self.client.get_key_pointers(str(current.spotdraft_id))
        except SpotDraftError as exc:
            return self._failure("key_pointers", exc)
        pointers = {
            str(kp.get("field_name") or kp.get("label") or kp.get("id")): kp.get("value")
            for kp in pulled.value
        }
        fact = NewEvent(EventType.KEY_POINTERS_STORED, {"key_pointers": pointers}, "api")
        return _Outcome([*self._calls(pulled.exchanges), fact])

    async def _document(self, current: ContractState) -> _Outcome:
        events: list[NewEvent] = []
        try:
            link = await self.client.get_download_link(str(current.spotdraft_id))
            events = self._calls(link.exchanges)
            name = document_file_name(current.external_id)
            stored = await self.client.download(str(link.value["url"]), self.documents_dir, name)
        except SpotDraftError as exc:
            outcome = self._failure("document", exc)
            return _Outcome([*events, *outcome.events], outcome.again)
        fact = {
            "path": name,
            "sha256": stored.value.sha256,
            "bytes": stored.value.bytes,
            "file_name": link.value.get("file_name"),
            "download_url_expires_at": link.value.get("expires_at"),
        }
        events = [*events, *self._calls(stored.exchanges)]
        return _Outcome([*events, NewEvent(EventType.DOCUMENT_STORED, fact, "api")])

    async def _notify(
        self, trigger: RecordedEvent, command: NotifySink, current: ContractState
    ) -> ContractState:
        base = {"milestone": command.milestone, "webhook_id": command.webhook_id}
        if self.sink is None:
            if command.milestone != "synced":
                return current
            fact = {**base, "status": None, "attempt": 0, "skipped": True}
            return await self._record(
                trigger, current, [NewEvent(EventType.SINK_DELIVERED, fact, "api")]
            )
        # Queued, not delivered here: the sink's workers deliver it, so a sink that is
        # down holds up no SpotDraft work.
        fact = {**base, "trigger": trigger.event_id}
        current = await self._record(
            trigger, current, [NewEvent(EventType.SINK_QUEUED, fact, "api")]
        )
        self.sink.wake(contract_stream(current.external_id))
        return current

    # -- recording ---------------------------------------------------------------------

    def _calls(self, exchanges: Sequence[Exchange], source: Source = "api") -> list[NewEvent]:
        return [
            NewEvent(EventType.SPOTDRAFT_CALL_RECORDED, exchange.to_event_data(), source)
            for exchange in exchanges
        ]

    def _failure(self, step: str, exc: SpotDraftError, *, calls: bool = True) -> _Outcome:
        events = self._calls(exc.exchanges) if calls else []
        if isinstance(exc, PermanentError):
            return _Outcome(
                [*events, NewEvent(EventType.CONTRACT_FAILED, failure(step, exc), "api")]
            )
        reason = str(exc)
        events.append(NewEvent(EventType.STEP_DEFERRED, {"step": step, "reason": reason}, "api"))
        # An unknown create outcome is resolved by a lookup right away.
        return _Outcome(events, again=isinstance(exc, OutcomeUnknownError) and step == "create")

    async def _record(
        self, trigger: RecordedEvent, current: ContractState, events: list[NewEvent]
    ) -> ContractState:
        if events:
            correlation = current.correlation_id or trigger.event_id
            stamped = [
                NewEvent(
                    e.type,
                    e.data,
                    e.source,
                    causation_id=trigger.event_id,
                    correlation_id=correlation,
                )
                for e in events
            ]
            await self.store.append(
                contract_stream(current.external_id), stamped, expected_version=None
            )
        return await self._refresh(current)

    async def _refresh(self, current: ContractState) -> ContractState:
        """``current`` with whatever was appended to its stream since (ours or others')."""
        newer = await self.store.read_stream(
            contract_stream(current.external_id), from_version=current.version + 1
        )
        state = fold(newer, current)
        assert state is not None
        return state


# Statuses of a create that the request itself can cause (rather than the configuration).
_REQUEST_AT_FAULT = {400, 402, 404}


def failure(step: str, exc: PermanentError) -> dict[str, Any]:
    """``ContractFailed`` data: what went wrong, and what a person must fix."""
    text = str(exc)
    said, _, fix = text.partition(" To fix: ")
    if step == "create" and exc.status in _REQUEST_AT_FAULT:
        fix = (
            f"{fix or text}; then submit the corrected request under the same external id "
            "(POST /v1/contracts or spotsync submit): it replaces the one that failed"
        )
    return {
        "step": step,
        "status": exc.status,
        "code": exc.code,
        "message": exc.message or exc.detail or said.rstrip("."),
        "fix": fix or text,
        "fields": field_names(exc.field_errors),
    }


def _external_id(contract: Mapping[str, Any]) -> str | None:
    meta = contract.get("external_metadata")
    if isinstance(meta, Mapping) and meta.get("id") is not None:
        return str(meta["id"])
    return None
