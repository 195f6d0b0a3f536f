"""Intake: ``POST /v1/contracts`` (a contract request) and ``POST /v1/contracts/{id}/send``.

A request is stored as the first event of stream ``contract-{external_id}`` with
``expected_version=0``, so the store itself decides who was first: a repeat with the
same payload (same fingerprint) is answered 200 as the first was, a different one 409.

One exception: a contract that failed before SpotDraft created it (a template field
mismatch, say) takes a corrected request, 202, appended after the failure; the failure's
``fix`` says so. That is the only way to correct a request, since a retry re-sends the
stored one; and it cannot make a second SpotDraft contract, since none exists (a create
whose outcome was unknown is looked up first, as always).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response

from daemon.http.errors import ApiError, ORJSONResponse
from daemon.http.limits import read_body
from daemon.http.validation import (
    SEND_FIELD,
    is_valid_external_id,
    normalise_integers,
    validate_intake,
    validate_send,
)
from eventstore import ConcurrencyError, EventStore, NewEvent, RecordedEvent
from projections.contract import ContractState, fold
from projections.events import EventType, contract_stream

CONTRACTS = "contracts"
# sync phases and SpotDraft statuses after which a send makes no sense
_SENT_OR_LATER_SYNC = {"sent", "executed", "synced", "voided", "failed"}
_SENT_OR_LATER_STATUS = {"REDLINING", "SIGN", "EXECUTED", "ON_HOLD", "VOIDED"}
_SEND_ATTEMPTS = 5

log = structlog.get_logger("spotsync.intake")


def contract_url(external_id: str) -> str:
    return "/v1/contracts/" + quote(external_id, safe="")


def fingerprint(request: Any, send: Any) -> str:
    canonical = orjson.dumps({"request": request, "send": send}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


_EMPTY = object()


async def read_json(request: Request, *, empty: Any = _EMPTY) -> Any:
    """The body's JSON; an empty body is ``empty`` when given, else invalid JSON."""
    body = await read_body(request, request.app.state.max_body_bytes)
    if empty is not _EMPTY and not body.strip():
        return empty
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # An invalid payload (SPEC section 5): 422, the whole body named, and where it broke.
        raise ApiError(
            422,
            "the body is not valid JSON",
            code="invalid_json",
            fields=[{"field": "(body)", "message": f"not valid JSON: {exc}"}],
        ) from None


def _answer(external_id: str, status: int) -> Response:
    url = contract_url(external_id)
    return ORJSONResponse(
        {"external_id": external_id, "url": url}, status_code=status, headers={"Location": url}
    )


async def submit_contract(request: Request) -> Response:
    body = await read_json(request)
    errors = validate_intake(body)
    if errors:
        raise ApiError(422, "the contract request is not valid", fields=errors)
    normalise_integers(body)
    external_id: str = body["external_metadata"]["id"]
    send = body.get(SEND_FIELD)
    contract_request = {k: v for k, v in body.items() if k != SEND_FIELD}
    digest = fingerprint(contract_request, send)
    store: EventStore = request.app.state.store
    stream = contract_stream(external_id)
    event = NewEvent(
        type=EventType.CONTRACT_REQUESTED,
        data={
            "external_id": external_id,
            "request": contract_request,
            "send": send,
            "fingerprint": digest,
        },
        source="intake",
    )
    expected = 0
    for _ in range(_SEND_ATTEMPTS):
        try:
            result = await store.append(stream, [event], expected_version=expected)
        except ConcurrencyError:
            # Stored before (maybe this very request, retried), or changed meanwhile.
            history = await store.read_stream(stream)
            latest = [e for e in history if e.type == EventType.CONTRACT_REQUESTED][-1:]
            if latest and latest[0].data.get("fingerprint") == digest:
                return _answer(external_id, 200)
            state = fold(history)
            if state is None or state.error is None or state.created:
                raise ApiError(409, _conflict(external_id, state), code="conflict") from None
            expected = state.version  # failed before it was created: a corrected request
            continue
        log.info(
            "contract requested",
            external_id=external_id,
            stream=stream,
            position=result.position,
            corrects=expected > 0,
        )
        return _answer(external_id, 202)
    raise ApiError(409, "the contract changed while this request was stored; send it again",
                   code="conflict")


def _conflict(external_id: str, state: ContractState | None) -> str:
    text = f"external id {external_id!r} was already submitted with a different payload"
    if state is not None and state.error is not None:
        return f"{text}; it failed after SpotDraft created it, so it takes no new request"
    return text


def _why_not_sendable(history: list[RecordedEvent], doc: dict[str, Any] | None) -> str | None:
    for event in history:
        if event.type == EventType.SEND_REQUESTED or (
            event.type == EventType.CONTRACT_REQUESTED and event.data.get("send") is not None
        ):
            return "a send was already requested for this contract"
    if doc is not None:
        if doc.get("_send_requested"):
            return "a send was already requested for this contract"
        # The flow's own phase: a parked sink delivery does not stop a send.
        progress = ContractState.from_document(doc).progress
        if progress in _SENT_OR_LATER_SYNC:
            return f"the contract cannot be sent while its sync state is {progress!r}"
        if doc.get("status") in _SENT_OR_LATER_STATUS:
            return f"the contract cannot be sent in status {doc['status']!r}"
    return None


async def send_contract(request: Request) -> Response:
    external_id: str = request.path_params["external_id"]
    if not is_valid_external_id(external_id):
        raise ApiError(404, "no contract has this external id")
    body = await read_json(request, empty={})
    errors = validate_send(body)
    if errors:
        raise ApiError(422, "the send request is not valid", fields=errors)
    store: EventStore = request.app.state.store
    stream = contract_stream(external_id)
    for _ in range(_SEND_ATTEMPTS):
        history = await store.read_stream(stream)
        if not history:
            raise ApiError(404, "no contract has this external id")
        reason = _why_not_sendable(history, await store.get_document(CONTRACTS, external_id))
        if reason is not None:
            raise ApiError(409, reason, code="not_sendable")
        event = NewEvent(type=EventType.SEND_REQUESTED, data={"body": body}, source="intake")
        try:
            result = await store.append(stream, [event], expected_version=history[-1].version)
        except ConcurrencyError:
            continue  # a webhook or handler appended meanwhile: decide again on the new state
        log.info("send requested", external_id=external_id, stream=stream, position=result.position)
        return _answer(external_id, 202)
    raise ApiError(
        503, "the contract is changing too fast to decide; retry", headers={"Retry-After": "1"}
    )
