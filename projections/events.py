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
