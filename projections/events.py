"""The event catalogue: stream names, event types and the shape of their ``data``.

Handlers write these, projections fold them, the daemon's HTTP intake writes the
intake and webhook ones. One place, so a type is never spelled two ways.
"""

from __future__ import annotations

from enum import StrEnum

CONTRACT_STREAM_PREFIX = "contract-"
# Webhook deliveries for contracts spotsync did not create (or cannot map yet).
UNMATCHED_WEBHOOKS_STREAM = "webhooks-unmatched"


def contract_stream(external_id: str) -> str:
    return CONTRACT_STREAM_PREFIX + external_id


def external_id_of(stream: str) -> str | None:
    if stream.startswith(CONTRACT_STREAM_PREFIX):
        return stream[len(CONTRACT_STREAM_PREFIX) :]
    return None


class EventType(StrEnum):
    # -- from the source system (source "intake") or an operator (source "operator") -----

    # {"external_id": str, "request": <create-contract payload as received>,
    #  "send": <send_to_counterparties body> | null, "fingerprint": sha256 hex of the
    #  canonical JSON of {"request", "send"}}. The first event of a contract stream.
    CONTRACT_REQUESTED = "ContractRequested"
    # {"body": <send_to_counterparties body>}
    SEND_REQUESTED = "SendRequested"

    # -- from SpotDraft (source "webhook") ----------------------------------------------

    # {"activity": str | null, "contract_id": int | null, "contract_status": str | null,
    #  "external_id": str | null, "raw_body": str | null (the body, when it is UTF-8),
    #  "raw_body_base64": str | null (when it is not), "signature": str (the header),
    #  "received_at": ISO timestamp}
    WEBHOOK_RECEIVED = "WebhookReceived"

    # -- from spotsync's own handlers (source "api" or "reconciler") ------------

    # One per HTTP attempt to SpotDraft, success or not: {"operation": str, "method": str,
    #  "path": str, "request_body": any (secrets masked), "status": int | null,
    #  "response_body": any, "latency_ms": float, "attempt": int, "error": str | null,
    #  "retry_after": float | null}
    SPOTDRAFT_CALL_RECORDED = "SpotDraftCallRecorded"
    # Appended BEFORE the create call, with the stream's expected version, so two workers
    # cannot both create. An intent with no outcome after it means "look up first".
    # {"attempt": int (1, 2, ...)}
    CONTRACT_CREATE_INTENDED = "ContractCreateIntended"
    # {"id": "T-1234", "contract_id": 1234, "contract_link": str | null,
    #  "contract_status": str | null, "found_by_lookup": bool}
    CONTRACT_CREATED = "ContractCreated"
    # The lookup after an unresolved intent found nothing: the create did not happen.
    # {"external_id": str}
    CONTRACT_NOT_FOUND = "ContractNotFound"
    # {"composite_id": str, "already_sent": bool (a 402 whose status check showed it past DRAFT)}
    CONTRACT_SENT = "ContractSent"
    # {"contract_status": str, "contract_name": str | null, "by": "handler" | "reconciler"}
    STATUS_OBSERVED = "StatusObserved"
    # {"key_pointers": {field_name: value}}
    KEY_POINTERS_STORED = "KeyPointersStored"
    # {"path": relative to the documents dir, "sha256": hex, "bytes": int,
    #  "file_name": str, "download_url_expires_at": ISO timestamp | null}
    DOCUMENT_STORED = "DocumentStored"
    # A step could not reach SpotDraft (retries ran out); it is retried on the next
    # nudge (reconciler, operator). Never parks the contract. {"step": str, "reason": str}
    STEP_DEFERRED = "StepDeferred"
    # A permanent error: the contract needs a person. {"step": str, "status": int | null,
    #  "code": str | null, "message": str, "fix": str, "fields": [dotted field names]}
    CONTRACT_FAILED = "ContractFailed"
    # A milestone to tell the sink, appended by the handlers; the sink's own workers
    # deliver it (``handlers.sink_worker``), so a sink that is down holds up no SpotDraft
    # work. {"milestone": "created"|"sent"|"synced"|"failed"|"voided", "webhook_id": str,
    #  "trigger": event id of the event that called for it}
    SINK_QUEUED = "SinkQueued"
    # {"milestone", "webhook_id", "status": int | null, "attempt": int,
    #  "skipped": bool (no sink configured)}
    SINK_DELIVERED = "SinkDelivered"
    # {"milestone", "webhook_id", "status": int | null, "attempt": int, "error": str}
    SINK_ATTEMPT_FAILED = "SinkAttemptFailed"
    # {"milestone", "webhook_id", "attempts": int, "error": str}: parked until a retry
    SINK_GAVE_UP = "SinkGaveUp"

    # -- nudges --------------------------------------------------------------------------

    # The reconciler found a contract with nothing heard and no SpotDraft id to ask about:
    # handlers re-run whatever is outstanding. {"reason": str}
    RECONCILE_REQUESTED = "ReconcileRequested"
    # An operator re-runs parked work after fixing its cause (source "operator").
    # {"reason": str | null}
    RETRY_REQUESTED = "RetryRequested"


# SpotDraft's contract_status values, and webhook activities spotsync acts on.
STATUS_ORDER = {"DRAFT": 0, "REDLINING": 1, "SIGN": 2, "EXECUTED": 3}
FINAL_STATUSES = frozenset({"EXECUTED", "VOIDED"})
ACTIVITY_STATUS = {
    "CONTRACT_CREATED": "DRAFT",
    "CONTRACT_SENT_TO_COUNTERPARTY": "REDLINING",
    "CONTRACT_SIGNATURE_REQUESTED": "SIGN",
    "CONTRACT_SIGNED": "SIGN",
    "CONTRACT_EXECUTED": "EXECUTED",
    "CONTRACT_VOIDED": "VOIDED",
}
ACTIVITY_DELETED = "CONTRACT_DELETED"

# Sync phases (SPEC section 5). "synced", "voided" are final; "failed" waits for a person.
SYNC_PHASES = ("pending", "created", "sent", "executed", "synced", "voided", "failed")
FINAL_SYNC = frozenset({"synced", "voided"})
