"""Long, realistic event logs, fast: for the replay benchmark and the long-log tests.

Each contract goes the way the demo's do (request, intent, create call, created, webhooks
with a duplicate, send, signature, execution, key pointers, document, sink notices queued
and delivered), in the shapes the handlers record (``SpotDraftCallRecorded`` with its
bodies, webhooks with their raw body and signature), with ``causation_id`` set as the
executor sets it. About ``window`` contracts are in flight at once, so their streams
interleave in the log as they do in a live one. Appends go through the store (concurrent
appenders, so the backend's group commit batches them), one lifecycle step an append.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

from eventstore import EventStore, NewEvent
from projections.events import EventType, contract_stream

_ACME: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "tests" / "data" / "acme_contract.json").read_text()
)
_API = "/api/v2.1/public/contracts"


def _call(
    operation: str, method: str, path: str, status: int, body: Any, request: Any
) -> dict[str, Any]:
    return {
        "operation": operation,
        "method": method,
        "path": path,
        "request_body": request,
        "status": status,
        "response_body": body,
        "latency_ms": 12.345,
        "attempt": 1,
        "error": None,
        "retry_after": None,
    }


def _webhook(
    n: int, external_id: str, activity: str, status: str, rng: random.Random
) -> dict[str, Any]:
    body = {
        "activity": activity,
        "activity_data": {"performed_by": {"name": "Avery Stone", "email": "legal@acme.example"}},
        "contract_id": n,
        "contract_title": "Acme Master Services Agreement",
        "contract_status": status,
        "contract_kind": "TEMPLATE_CONTRACT",
        "counterparties": [{"type": "ORGANIZATION", "poc_name": "Avery Stone"}],
        "external_metadata": {"id": external_id, "integration_name": "HubSpot"},
        "contract_reference_id": f"SD-{n:06d}",
        "contract_template_id": 1204,
    }
    return {
        "activity": activity,
        "contract_id": n,
        "contract_status": status,
        "external_id": external_id,
        "raw_body": json.dumps(body, separators=(",", ":")),
        "raw_body_base64": None,
        "signature": f"{rng.getrandbits(256):064x}" * 2,
        "received_at": "2026-11-24T10:00:00.000000Z",
    }


def lifecycle(n: int, rng: random.Random) -> Iterator[list[NewEvent]]:
    """Contract ``n``'s appends, one list an append (a lifecycle step)."""
    external_id = f"hubspot-deal-{n}"
    composite = f"T-{n}"
    request = copy.deepcopy(_ACME)
    request["external_metadata"]["id"] = external_id
    requested = NewEvent(
        EventType.CONTRACT_REQUESTED,
        {"external_id": external_id, "request": request, "send": {}, "fingerprint": "0" * 64},
        "intake",
    )
    yield [requested]
    root = requested.event_id

    def caused(
        trigger: NewEvent, type_: str, data: dict[str, Any], source: Any = "api"
    ) -> NewEvent:
        return NewEvent(type_, data, source, causation_id=trigger.event_id, correlation_id=root)

    created_body = {
        "id": composite,
        "contract_id": n,
        "contract_status": "DRAFT",
        "contract_link": f"https://app.spotdraft.com/contracts/{composite}",
    }
    created = caused(
        requested, EventType.CONTRACT_CREATED, {**created_body, "found_by_lookup": False}
    )
    yield [
        caused(requested, EventType.CONTRACT_CREATE_INTENDED, {"attempt": 1}),
        caused(
            requested,
            EventType.SPOTDRAFT_CALL_RECORDED,
            _call("create_contract", "POST", f"{_API}/", 201, created_body, request),
        ),
        created,
    ]
    webhook = _webhook(n, external_id, "CONTRACT_CREATED", "DRAFT", rng)
    yield [NewEvent(EventType.WEBHOOK_RECEIVED, webhook, "webhook")]
    if rng.random() < 0.3:  # a duplicated delivery
        yield [NewEvent(EventType.WEBHOOK_RECEIVED, webhook, "webhook")]
    yield from _notice(created, "created", caused)
    sent = caused(
        created, EventType.CONTRACT_SENT, {"composite_id": composite, "already_sent": False}
    )
    yield [
        caused(
            created,
            EventType.SPOTDRAFT_CALL_RECORDED,
            _call(
                "send_to_counterparties",
                "POST",
                f"{_API}/{composite}/send_to_counterparties",
                200,
                None,
                {"attachment_formats": ["PDF"]},
            ),
        ),
        sent,
    ]
    yield from _notice(sent, "sent", caused)
    for activity, status in (
        ("CONTRACT_SENT_TO_COUNTERPARTY", "REDLINING"),
        ("CONTRACT_SIGNATURE_REQUESTED", "SIGN"),
        ("CONTRACT_SIGNED", "SIGN"),
    ):
        yield [
            NewEvent(
                EventType.WEBHOOK_RECEIVED,
                _webhook(n, external_id, activity, status, rng),
                "webhook",
            )
        ]
    executed = NewEvent(
        EventType.WEBHOOK_RECEIVED,
        _webhook(n, external_id, "CONTRACT_EXECUTED", "EXECUTED", rng),
        "webhook",
    )
    yield [executed]
    pointers = {**request["contract_data"], "effective_date": "2026-04-20", "contract_value": n}
    document = {
        "path": f"{external_id}.pdf",
        "sha256": f"{n:064x}",
        "bytes": 48213,
        "file_name": f"{composite} Acme Master Services Agreement.pdf",
        "download_url_expires_at": None,
    }
    stored = caused(executed, EventType.DOCUMENT_STORED, document)
    yield [
        caused(
            executed,
            EventType.SPOTDRAFT_CALL_RECORDED,
            _call(
                "get_key_pointers",
                "GET",
                f"{_API}/{composite}/key_pointers",
                200,
                [{"field_name": k, "value": v} for k, v in pointers.items()],
                None,
            ),
        ),
        caused(executed, EventType.KEY_POINTERS_STORED, {"key_pointers": pointers}),
        caused(
            executed,
            EventType.SPOTDRAFT_CALL_RECORDED,
            _call(
                "get_download_link",
                "POST",
                f"{_API}/{composite}/download_link",
                200,
                {"url": f"https://files.example/{uuid.uuid4().hex}", "file_name": "x.pdf"},
                {"format": "PDF"},
            ),
        ),
        caused(
            executed,
            EventType.SPOTDRAFT_CALL_RECORDED,
            _call("download", "GET", "/files/x.pdf", 200, {"bytes": 48213}, None),
        ),
        stored,
    ]
    yield from _notice(stored, "synced", caused)


def _notice(trigger: NewEvent, milestone: str, caused: Any) -> Iterator[list[NewEvent]]:
    """A sink notice as the daemon records it: queued by the handler of ``trigger``, then
    delivered by the sink's workers, both caused by ``trigger``."""
    base = {"milestone": milestone, "webhook_id": f"msg_{trigger.event_id}"}
    yield [caused(trigger, EventType.SINK_QUEUED, {**base, "trigger": trigger.event_id}, "sink")]
    delivered = {**base, "status": 204, "attempt": 1, "skipped": False}
    yield [caused(trigger, EventType.SINK_DELIVERED, delivered, "sink")]


async def fill(
    store: EventStore,
    events: int,
    *,
    window: int = 200,
    appenders: int = 32,
    whole: bool = False,
    group: int = 1,
    seed: int = 7,
) -> int:
    """Append at least ``events`` events (whole contracts) to ``store``; returns how many.

    ``group``: lifecycle steps an append (fewer, bigger appends are faster to write; the
    contracts' events interleave a little less). ``whole``: a contract in one append.
    """
    rng = random.Random(seed)
    planned = appended = 0
    next_contract = 0
    active: list[tuple[str, Iterator[list[NewEvent]]]] = []
    lock = anyio.Lock()
    busy: set[str] = set()
    freed = anyio.Event()

    def take() -> tuple[str, list[NewEvent]] | str | None:
        """A free contract's next step; "wait" when every open contract is mid-append."""
        nonlocal next_contract, planned
        while True:
            while len(active) < window and planned < events:
                next_contract += 1
                stream = contract_stream(f"hubspot-deal-{next_contract}")
                steps = _grouped(lifecycle(next_contract, rng), 1_000 if whole else group)
                active.append((stream, steps))
            if not active:
                return None
            start = rng.randrange(len(active))
            for offset in range(len(active)):
                index = (start + offset) % len(active)
                if active[index][0] not in busy:
                    break
            else:
                return "wait"
            stream, steps = active[index]
            step = next(steps, None)
            if step is not None:
                planned += len(step)
                return stream, step
            active[index] = active[-1]
            active.pop()

    async def appender() -> None:
        # One appender a stream at a time keeps each stream's steps in order.
        nonlocal appended, freed
        while True:
            async with lock:
                taken = take()
                if isinstance(taken, tuple):
                    busy.add(taken[0])
            if taken is None:
                return
            if isinstance(taken, str):
                await freed.wait()
                continue
            stream, step = taken
            await store.append(stream, step, expected_version=None)
            appended += len(step)
            busy.discard(stream)
            freed.set()
            freed = anyio.Event()

    async with anyio.create_task_group() as tg:
        for _ in range(appenders):
            tg.start_soon(appender)
    return appended


def _grouped(steps: Iterator[list[NewEvent]], size: int) -> Iterator[list[NewEvent]]:
    chunk: list[NewEvent] = []
    for number, step in enumerate(steps, 1):
        chunk.extend(step)
        if number % size == 0:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
