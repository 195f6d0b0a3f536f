"""One line a event, saying what it means: the readable timeline of ``spotsync events``.

The same ``Timeline`` serves the CLI and ``GET /v1/contracts/{id}/events``, so support
reads the same words in both. Some lines need what came before in the stream (is this
webhook a repeat of one already stored? does it report a stage the contract has passed?),
so a ``Timeline`` is fed the events in log order and keeps a little state per stream, in
a bounded LRU: memory stays flat over a whole log, and a stream evicted and met again
only loses the "duplicate of" hints for deliveries stored before it was evicted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eventstore.envelope import RecordedEvent
from projections.events import ACTIVITY_STATUS, STATUS_ORDER, EventType

API_PREFIX = "/api/v2.1/public"
MAX_TEXT = 120  # characters of free text (reasons, errors) kept on one line


@dataclass(slots=True)
class _StreamMemory:
    # hash of each webhook body → where it was first stored (a duplicate is the same body)
    webhooks: dict[int, int] = field(default_factory=dict)
    max_rank: int = -1
    final: str | None = None


class Timeline:
    """Summarises events fed in log order; ``summary(event)`` is one line of plain text."""

    def __init__(self, *, max_streams: int = 10_000) -> None:
        self._streams: OrderedDict[str, _StreamMemory] = OrderedDict()
        self._max_streams = max_streams

    def summary(self, event: RecordedEvent) -> str:
        data = event.data
        if event.type == EventType.WEBHOOK_RECEIVED:
            return self._webhook(event)
        if event.type == EventType.STATUS_OBSERVED:
            self._observe(event.stream, _text(data.get("contract_status")))
        if event.type == EventType.CONTRACT_CREATED:
            self._observe(event.stream, _text(data.get("contract_status")) or "DRAFT")
        describe = _DESCRIBE.get(event.type)
        return event.type if describe is None else describe(data, event)

    def _memory(self, stream: str) -> _StreamMemory:
        memory = self._streams.get(stream)
        if memory is None:
            memory = self._streams[stream] = _StreamMemory()
            while len(self._streams) > self._max_streams:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(stream)
        return memory

    def _observe(self, stream: str, status: str | None) -> None:
        memory = self._memory(stream)
        if status in ("EXECUTED", "VOIDED") and memory.final is None:
            memory.final = status
        rank = STATUS_ORDER.get(status or "", -1)
        memory.max_rank = max(memory.max_rank, rank)

    def _webhook(self, event: RecordedEvent) -> str:
        data = event.data
        activity = _text(data.get("activity")) or "(no activity)"
        line = f"webhook {activity}"
        if data.get("external_id") is None and not event.stream.startswith("contract-"):
            return f"{line} for unknown contract {data.get('contract_id')} (unmatched)"
        memory = self._memory(event.stream)
        key = hash((data.get("raw_body"), data.get("raw_body_base64"), activity))
        first = memory.webhooks.get(key)
        status = ACTIVITY_STATUS.get(activity)
        notes: list[str] = []
        if first is not None:
            notes.append(f"duplicate of #{first}")
        else:
            memory.webhooks[key] = event.position
            rank = STATUS_ORDER.get(status or "", -1)
            if memory.final is not None and status != memory.final:
                notes.append(f"late: already {memory.final}")
            elif 0 <= rank < memory.max_rank:
                notes.append("late: arrived after a later stage")
        self._observe(event.stream, status)
        return f"{line} ({'; '.join(notes)})" if notes else line


def short_path(path: str) -> str:
    """A SpotDraft path without the API prefix: ``/contracts/T-1/send_to_counterparties``."""
    return path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _cut(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _call(d: Mapping[str, Any], e: RecordedEvent) -> str:
    method = d.get("method") or "?"
    path = short_path(str(d.get("path") or ""))
    operation = d.get("operation")
    if operation == "get_status":
        path = "status"
    elif operation == "download":
        path = "executed document"
    status = d.get("status")
    answer = "no answer" if status is None else str(status)
    body = d.get("response_body")
    detail = ""
    if isinstance(body, Mapping) and status is not None and 200 <= int(status) < 300:
        if operation == "create_contract" and body.get("id") is not None:
            detail = f" {body['id']}"
        elif operation == "get_status" and body.get("contract_status") is not None:
            detail = f" {body['contract_status']}"
    line = f"{method} {path} → {answer}{detail} in {float(d.get('latency_ms') or 0):.0f} ms"
    attempt = d.get("attempt")
    if isinstance(attempt, int) and attempt > 1:
        line += f" (attempt {attempt})"
    if d.get("error"):
        line += f": {_cut(d['error'])}"
    if e.source == "reconciler":
        line += " (reconciler)"
    return line


def _requested(d: Mapping[str, Any], e: RecordedEvent) -> str:
    request = d.get("request")
    request = request if isinstance(request, Mapping) else {}
    name = request.get("contract_name")
    template = request.get("contract_template_id")
    line = "requested" + (f" {name!r}" if name else "")
    if template is not None:
        line += f" (template {template})"
    if d.get("send") is not None:
        line += ", to be sent once created"
    return line


def _created(d: Mapping[str, Any], e: RecordedEvent) -> str:
    how = " (found by lookup)" if d.get("found_by_lookup") else ""
    return f"created {d.get('id')} in SpotDraft{how}"


def _sent(d: Mapping[str, Any], e: RecordedEvent) -> str:
    return "sent to counterparties" + (" (it already was)" if d.get("already_sent") else "")


def _status(d: Mapping[str, Any], e: RecordedEvent) -> str:
    line = f"GET status → {d.get('contract_status')} ({d.get('by') or e.source})"
    wait = d.get("next_call_in")
    if isinstance(wait, int | float) and not isinstance(wait, bool):
        line += f", nothing new: next call in {_span(wait)}"
    return line


def _span(seconds: float) -> str:
    """``seconds`` as people say it: 45 s, 30 min, 4 h."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.3g} h"


def _key_pointers(d: Mapping[str, Any], e: RecordedEvent) -> str:
    pointers = d.get("key_pointers")
    names = list(pointers) if isinstance(pointers, Mapping) else []
    shown = ", ".join(names[:4]) + (f" (+{len(names) - 4})" if len(names) > 4 else "")
    return f"key pointers stored: {shown or 'none'}"


def _document(d: Mapping[str, Any], e: RecordedEvent) -> str:
    return f"document stored: {d.get('path')} ({d.get('bytes')} bytes)"


def _failed(d: Mapping[str, Any], e: RecordedEvent) -> str:
    status = f" {d['status']}" if d.get("status") is not None else ""
    return f"FAILED at {d.get('step')}{status}: {_cut(d.get('message'))}; fix: {_cut(d.get('fix'))}"


def _sink_queued(d: Mapping[str, Any], e: RecordedEvent) -> str:
    return f"sink {d.get('milestone')} queued"


def _sink_delivered(d: Mapping[str, Any], e: RecordedEvent) -> str:
    if d.get("skipped"):
        return f"sink: {d.get('milestone')} (no sink configured)"
    return f"sink told {d.get('milestone')} → {d.get('status')}"


def _sink_failed(d: Mapping[str, Any], e: RecordedEvent) -> str:
    answer = d.get("status") if d.get("status") is not None else "no answer"
    error = _cut(d.get("error"))
    return f"sink {d.get('milestone')} attempt {d.get('attempt')} → {answer}: {error}"


def _sink_gave_up(d: Mapping[str, Any], e: RecordedEvent) -> str:
    if d.get("held_behind"):
        return f"sink {d.get('milestone')} held behind the parked {d.get('held_behind')} (parked)"
    return (
        f"sink gave up on {d.get('milestone')} after {d.get('attempts')} attempts "
        f"(parked): {_cut(d.get('error'))}"
    )


def _reason(prefix: str) -> Any:
    def describe(d: Mapping[str, Any], e: RecordedEvent) -> str:
        reason = d.get("reason")
        return f"{prefix} by {e.source}" + (f": {_cut(reason)}" if reason else "")

    return describe


_DESCRIBE: dict[str, Any] = {
    EventType.CONTRACT_REQUESTED: _requested,
    EventType.SEND_REQUESTED: lambda d, e: f"send requested by {e.source}",
    EventType.SPOTDRAFT_CALL_RECORDED: _call,
    EventType.CONTRACT_CREATE_INTENDED: lambda d, e: f"create intended (try {d.get('attempt')})",
    EventType.CONTRACT_CREATED: _created,
    EventType.CONTRACT_NOT_FOUND: lambda d, e: "lookup found no contract: it was never created",
    EventType.CONTRACT_SENT: _sent,
    EventType.STATUS_OBSERVED: _status,
    EventType.KEY_POINTERS_STORED: _key_pointers,
    EventType.DOCUMENT_STORED: _document,
    EventType.STEP_DEFERRED: lambda d, e: f"{d.get('step')} deferred: {_cut(d.get('reason'))}",
    EventType.CONTRACT_FAILED: _failed,
    EventType.SINK_QUEUED: _sink_queued,
    EventType.SINK_DELIVERED: _sink_delivered,
    EventType.SINK_ATTEMPT_FAILED: _sink_failed,
    EventType.SINK_GAVE_UP: _sink_gave_up,
    EventType.RECONCILE_REQUESTED: _reason("reconcile requested"),
    EventType.RETRY_REQUESTED: _reason("retry requested"),
}


def summarize(events: list[RecordedEvent]) -> list[str]:
    """The summaries of ``events`` (in log order), as a fresh timeline sees them."""
    timeline = Timeline()
    return [timeline.summary(event) for event in events]
