"""The handlers' pure decisions: a contract's state and a new event → the commands to issue.

No I/O here: ``spotsync replay`` runs exactly these functions over a log to show what the
handlers would do. Two functions make the whole table:

- ``decide(state, event)``: edge-triggered. ``state`` is the fold of the stream *before*
  ``event``; a command is issued when the event makes a fact true for the first time
  (execution first seen → pull key pointers and the document once, however many
  CONTRACT_EXECUTED deliveries follow). Nudges (an operator's retry, the reconciler)
  issue whatever is ``outstanding``.
- ``refine(command, current)``: level-triggered. Just before running a command the
  executor re-checks it against the *current* state (which may include outcomes
  recorded after the triggering event): work already done is dropped, and a create
  whose earlier intent has no outcome becomes a lookup. This keeps a re-run after a
  crash, or two triggers for one fact, from calling SpotDraft twice.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from eventstore.envelope import RecordedEvent
from projections.contract import ContractState, apply, blank
from projections.events import EventType

# SpotDraft's contracts API as ``handlers.spotdraft.client`` calls it. (Not imported from
# there: the client would cost every replay worker httpx and 16 MB.)
CONTRACTS_PATH = "/api/v2.1/public/contracts"


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every command; ``name`` is what replay prints, ``CALL`` the API call."""

    CALL: ClassVar[str] = ""

    @property
    def name(self) -> str:
        return type(self).__name__

    def describe(self) -> str:
        return self.name

    def call(self, external_id: str, spotdraft_id: str | None) -> str:
        """The HTTP call this command makes for the contract (``{id}`` while it has no
        SpotDraft id yet)."""
        template = self.CALL or self.name
        return template.replace("{external_id}", external_id).replace(
            "{id}", spotdraft_id or "{id}"
        )


@dataclass(frozen=True, slots=True)
class CreateContract(Command):
    """Record an intent, then ``POST /contracts/`` with the request's payload."""

    CALL = f"POST {CONTRACTS_PATH}/"


@dataclass(frozen=True, slots=True)
class LookupContract(Command):
    """``GET /contracts/by_external_metadata/{id}``: an earlier create's outcome is unknown."""

    CALL = f"GET {CONTRACTS_PATH}/by_external_metadata/{{external_id}}"


@dataclass(frozen=True, slots=True)
class SendContract(Command):
    """``POST /contracts/{id}/send_to_counterparties``."""

    CALL = f"POST {CONTRACTS_PATH}/{{id}}/send_to_counterparties"

    body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PullKeyPointers(Command):
    """``GET /contracts/{id}/key_pointers``."""

    CALL = f"GET {CONTRACTS_PATH}/{{id}}/key_pointers"


@dataclass(frozen=True, slots=True)
class FetchDocument(Command):
    """``POST /contracts/{id}/download_link``, then download the executed PDF."""

    CALL = f"POST {CONTRACTS_PATH}/{{id}}/download_link, then GET the PDF"


@dataclass(frozen=True, slots=True)
class NotifySink(Command):
    """Tell the source system about a milestone; ``webhook_id`` is stable across attempts."""

    CALL = "POST to SPOTSYNC_SINK_URL"

    milestone: str = "created"
    webhook_id: str = ""

    def describe(self) -> str:
        return f"NotifySink({self.milestone})"


MILESTONES = ("created", "sent", "synced", "failed", "voided")
# Events that ask the handlers to re-run whatever is outstanding.
_NUDGES = frozenset(
    {EventType.RETRY_REQUESTED, EventType.RECONCILE_REQUESTED, EventType.CONTRACT_NOT_FOUND}
)
# Events that never call for a command: the records a command leaves as it runs (its API
# calls, a create's intent, a deferral, the sink's own bookkeeping). None of them moves
# a fact the edges of ``decide`` look at (created, sent, executed, voided, an error, the
# stored data), so it answers them at once; half a long log is made of them.
NO_COMMANDS = frozenset(
    {
        EventType.SPOTDRAFT_CALL_RECORDED,
        EventType.CONTRACT_CREATE_INTENDED,
        EventType.STEP_DEFERRED,
        EventType.SINK_QUEUED,
        EventType.SINK_DELIVERED,
        EventType.SINK_ATTEMPT_FAILED,
        EventType.SINK_GAVE_UP,
    }
)


# Events ``decide`` answers from more than the facts below: a request (create, or look up),
# an explicit send, and the nudges that issue whatever is outstanding.
ALWAYS_DECIDED = frozenset(
    {EventType.CONTRACT_REQUESTED, EventType.SEND_REQUESTED, EventType.STATUS_OBSERVED} | _NUDGES
)
# The fields of a contract's state that the facts ``decide`` acts on as they turn true
# are made of: created, sent, executed, voided, failed, its data stored, "synced" told
# (``progress``, ``data_complete``). Any event outside ``ALWAYS_DECIDED`` that leaves them
# as they were calls for nothing (most webhooks: a duplicate, a signature, any stage that
# changes no fact). ``decide`` answers such an event so at once, and a replay, which
# folds a contract's fields as a dict, without making it an envelope to ask about.
EDGE_FIELDS = (
    "spotdraft_id",
    "sent",
    "executed_seen",
    "voided",
    "error",
    "notified",
    "key_pointers",
    "document",
)
_edges = operator.attrgetter(*EDGE_FIELDS)


def webhook_id_for(event: RecordedEvent) -> str:
    return f"msg_{event.event_id}"


def decide(
    state: ContractState | None, event: RecordedEvent, new: ContractState | None = None
) -> list[Command]:
    """The commands ``event`` calls for, given the contract's state before it.

    ``new``: ``apply(state, event)``, when the caller has it already (replay folds anyway).
    """
    kind = event.type
    if kind in NO_COMMANDS:
        return []
    if new is None:
        new = apply(state, event)
    before = state if state is not None else blank(new.external_id)
    if kind not in ALWAYS_DECIDED and _edges(before) == _edges(new):
        return []  # no fact it acts on turned
    commands: list[Command] = []

    if kind == EventType.RETRY_REQUESTED and before.sink_parked is not None:
        # The parked delivery first, then those held behind it, each under its own id.
        for parked in (before.sink_parked, *before.sink_held):
            milestone = str(parked.get("milestone"))
            webhook_id = parked.get("webhook_id") or webhook_id_for(event)
            commands.append(NotifySink(milestone, str(webhook_id)))
    nudge = kind in _NUDGES or (
        kind == EventType.STATUS_OBSERVED and event.data.get("by") == "reconciler"
    )
    if nudge:
        # One delivery per milestone: a retried parked one keeps its webhook-id.
        told = {c.milestone for c in commands if isinstance(c, NotifySink)}
        commands.extend(
            c
            for c in outstanding(new, webhook_id_for(event))
            if c not in commands and not (isinstance(c, NotifySink) and c.milestone in told)
        )
        return commands

    if new.progress == "voided":
        return [_notice("voided", event)] if before.progress != "voided" else []
    if new.error is not None:
        return [_notice("failed", event)] if before.error is None else []

    if kind == EventType.CONTRACT_REQUESTED and not new.created:
        commands.append(LookupContract() if new.intent_open else CreateContract())
    if new.created and not before.created:
        commands.append(_notice("created", event))
    if (not before.created or kind == EventType.SEND_REQUESTED) and _send_due(new):
        commands.append(SendContract(dict(new.send_body or {})))
    if new.sent and not before.sent and not new.executed_seen:
        commands.append(_notice("sent", event))
    if new.executed_seen and not before.executed_seen:
        commands.extend(_pulls(new))
    if new.data_complete and not before.data_complete and "synced" not in new.notified:
        commands.append(_notice("synced", event))
    return commands


def _notice(milestone: str, event: RecordedEvent) -> NotifySink:
    return NotifySink(milestone, webhook_id_for(event))


def outstanding(state: ContractState, webhook_id: str) -> list[Command]:
    """Everything still to do for a contract that is not waiting on a person."""
    if state.error is not None or state.final:
        return []
    if not state.created:
        return [LookupContract() if state.intent_open else CreateContract()]
    commands: list[Command] = []
    if _send_due(state):
        commands.append(SendContract(dict(state.send_body or {})))
    if state.executed_seen:
        commands.extend(_pulls(state))
        if state.data_complete and "synced" not in state.notified:
            # Tried before and parked: the same message again, so the sink can dedupe it.
            parked = state.sink_parked
            if parked is not None and parked.get("milestone") == "synced":
                webhook_id = str(parked.get("webhook_id") or webhook_id)
            commands.append(NotifySink("synced", webhook_id))
    return commands


def refine(command: Command, current: ContractState) -> Command | None:
    """``command`` as it should run against the current state, or None if it is not needed."""
    if isinstance(command, NotifySink):
        if command.milestone in current.notified:
            return None
        if any(held.get("milestone") == command.milestone for held in current.sink_held):
            return None  # waits behind the parked delivery until an operator's retry
        if any(queued.get("milestone") == command.milestone for queued in current.sink_queue):
            return None  # the sink's workers have it already
        if command.milestone == "synced" and not current.data_complete:
            return None
        return command
    if current.error is not None or current.progress == "voided":
        return None
    if isinstance(command, CreateContract | LookupContract):
        if current.created:
            return None
        return LookupContract() if current.intent_open else CreateContract()
    if isinstance(command, SendContract):
        return command if _send_due(current) else None
    if isinstance(command, PullKeyPointers):
        return command if current.key_pointers is None else None
    if isinstance(command, FetchDocument):
        return command if current.document is None else None
    return command


def _send_due(state: ContractState) -> bool:
    return (
        state.send_requested
        and state.created
        and not state.sent
        and state.status in (None, "DRAFT")
    )


def _pulls(state: ContractState) -> list[Command]:
    commands: list[Command] = []
    if state.key_pointers is None:
        commands.append(PullKeyPointers())
    if state.document is None:
        commands.append(FetchDocument())
    return commands
