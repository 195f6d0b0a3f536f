"""The query API: one contract, the list, and a contract's events.

It serves what the projection has. A contract whose request is stored but not yet
projected is shown as a minimal ``pending`` view, never as a 404.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from daemon.http.errors import ApiError, ORJSONResponse
from daemon.http.intake import CONTRACTS
from daemon.http.validation import is_valid_external_id
from eventstore import EventStore, RecordedEvent
from eventstore.envelope import format_timestamp, parse_timestamp
from projections.events import EventType, contract_stream
from projections.runner import indexed_ids, updated_since
from projections.timeline import summarize

STATUSES = ("DRAFT", "REDLINING", "SIGN", "EXECUTED", "ON_HOLD", "VOIDED")
SYNC_PHASES = ("pending", "created", "sent", "executed", "synced", "voided", "failed")
DEFAULT_LIMIT, MAX_LIMIT = 100, 500
# ``updated_since`` reads the contracts changed since then through the index when they
# are at most this many (a poll for what changed since the last one); past it, many
# contracts match, and reading the rows in external id order stops sooner.
CHANGED_AT_MOST = 10_000

_NOT_FOUND = "no contract has this external id"
CURSOR_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")
MAX_VERSION = 2**63 - 1


def public_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The projection without its private (``_``-prefixed) keys."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def pending_view(external_id: str, history: list[RecordedEvent]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    first = history[0]
    if first.type == EventType.CONTRACT_REQUESTED:
        request = first.data.get("request")
        found = request.get("external_metadata") if isinstance(request, dict) else None
        meta = found if isinstance(found, dict) else {}
    return {
        "external_id": external_id,
        "integration_name": meta.get("integration_name"),
        "record_type": meta.get("record_type"),
        "spotdraft": None,
        "status": None,
        "sync": "pending",
        "key_pointers": {},
        "document": None,
        "error": None,
        "last_position": history[-1].position,
        "updated_at": format_timestamp(history[-1].recorded_at),
    }


async def get_contract(request: Request) -> Response:
    external_id: str = request.path_params["external_id"]
    if not is_valid_external_id(external_id):
        raise ApiError(404, _NOT_FOUND)
    store: EventStore = request.app.state.store
    doc = await store.get_document(CONTRACTS, external_id)
    if doc is not None:
        return ORJSONResponse(public_view(doc))
    history = await store.read_stream(contract_stream(external_id))
    if not history:
        raise ApiError(404, _NOT_FOUND)
    return ORJSONResponse(pending_view(external_id, history))


def _bad(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        f"{field} {message}",
        code="invalid_request",
        fields=[{"field": field, "message": message}],
    )


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The key a cursor names. Any string of the cursor alphabet is some position."""
    if not CURSOR_ALPHABET.fullmatch(cursor):
        raise _bad("cursor", "is not a cursor this API gave out")
    usable = cursor[: len(cursor) - 1] if len(cursor) % 4 == 1 else cursor
    raw = base64.urlsafe_b64decode(usable + "=" * (-len(usable) % 4))
    # Keys never hold NUL (and PostgreSQL text cannot): a forged one is dropped.
    return raw.decode("utf-8", "replace").replace("\x00", "")


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise _bad("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(text)


def _since(text: str) -> str:
    try:
        moment = parse_timestamp(text.strip().upper())  # RFC 3339 allows "t" and "z"
        # Before year 1000 %Y loses its fixed width; every stored timestamp is later anyway.
        return format_timestamp(moment) if moment.year >= 1000 else "0"
    except (ValueError, OverflowError):
        raise _bad("updated_since", "must be an ISO 8601 timestamp") from None


async def list_contracts(request: Request) -> Response:
    params = request.query_params
    equals: dict[str, str] = {}
    for name, allowed in (("status", STATUSES), ("sync", SYNC_PHASES)):
        value = params.get(name)
        if value is not None:
            if value not in allowed:
                raise _bad(name, "must be one of " + ", ".join(allowed))
            equals[name] = value
    at_least = {}
    if (since := params.get("updated_since")) is not None:
        at_least["updated_at"] = _since(since)
    limit = _limit(params.get("limit"))
    cursor = params.get("cursor")
    after = decode_cursor(cursor) if cursor else None
    store: EventStore = request.app.state.store
    rows: list[tuple[str, dict[str, Any]]] | None = None
    if since is not None:
        rows = await _changed_rows(store, at_least["updated_at"], equals, after, limit + 1)
    elif equals:
        rows = await _indexed_rows(store, equals, after, limit + 1)
    if rows is None:
        rows = await store.query_documents(
            CONTRACTS, equals=equals, at_least=at_least, after_key=after, limit=limit + 1
        )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1][0]) if len(rows) > limit else None
    return ORJSONResponse(
        {"contracts": [public_view(doc) for _, doc in page], "next_cursor": next_cursor}
    )


async def _indexed_rows(
    store: EventStore, equals: dict[str, str], after: str | None, want: int
) -> list[tuple[str, dict[str, Any]]]:
    """Up to ``want`` rows matching ``equals``, after ``after``, in external id order:
    the ids come from the index of one of the fields (``sync`` first: its values are
    fewer and rarer), so a filter that matches few rows reads few rows, however many
    contracts there are."""
    field = "sync" if "sync" in equals else next(iter(equals))
    rows: list[tuple[str, dict[str, Any]]] = []
    while True:
        ids = await indexed_ids(store, field, equals[field], after=after, limit=want)
        if await _add_matching(store, ids, equals, rows, want) or len(ids) < want:
            return rows
        after = ids[-1]


async def _changed_rows(
    store: EventStore, since: str, equals: dict[str, str], after: str | None, want: int
) -> list[tuple[str, dict[str, Any]]] | None:
    """Up to ``want`` rows updated at ``since`` or later and matching ``equals``, after
    ``after``, in external id order, found through the index of update times; None when
    more than ``CHANGED_AT_MOST`` contracts changed since then. (A row read after its
    key may have changed again since: never to before ``since``.)"""
    changed = await updated_since(store, since, limit=CHANGED_AT_MOST + 1)
    if len(changed) > CHANGED_AT_MOST:
        return None
    ids = sorted(i for i in changed if after is None or i > after)
    rows: list[tuple[str, dict[str, Any]]] = []
    for start in range(0, len(ids), want):
        if await _add_matching(store, ids[start : start + want], equals, rows, want):
            break
    return rows


async def _add_matching(
    store: EventStore,
    ids: list[str],
    equals: dict[str, str],
    rows: list[tuple[str, dict[str, Any]]],
    want: int,
) -> bool:
    """Add to ``rows`` the rows of ``ids``, in that order, that match ``equals``, until
    there are ``want``; whether there are."""
    docs = await store.get_documents(CONTRACTS, ids)
    for external_id in ids:
        doc = docs.get(external_id)
        if doc is not None and all(doc.get(k) == v for k, v in equals.items()):
            rows.append((external_id, doc))
            if len(rows) == want:
                return True
    return False


async def contract_events(request: Request) -> Response:
    external_id: str = request.path_params["external_id"]
    if not is_valid_external_id(external_id):
        raise ApiError(404, _NOT_FOUND)
    text = request.query_params.get("from_version", "1")
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_VERSION:
        raise _bad("from_version", "must be a positive integer")
    limit = request.query_params.get("limit")
    if limit is not None and (
        not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= MAX_LIMIT
    ):
        raise _bad("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    store: EventStore = request.app.state.store
    stream = contract_stream(external_id)
    if await store.stream_version(stream) == 0:
        raise ApiError(404, _NOT_FOUND)
    # The whole stream feeds the timeline (a duplicate is told by what came before).
    events = await store.read_stream(stream)
    summaries = summarize(events)
    first = int(text)
    last = len(events) if limit is None else min(len(events), first - 1 + int(limit))
    return ORJSONResponse(
        {
            "external_id": external_id,
            "events": [
                _envelope(e, summary)
                for e, summary in zip(
                    events[first - 1 : last], summaries[first - 1 : last], strict=True
                )
            ],
            "next_from_version": last + 1 if last < len(events) else None,
        }
    )


def _envelope(event: RecordedEvent, summary: str) -> dict[str, Any]:
    """The stored envelope, plus ``summary``: the line ``spotsync events`` prints for it."""
    envelope = event.to_dict()
    envelope["data"] = dict(event.data)
    envelope["metadata"] = dict(event.metadata)
    envelope["summary"] = summary
    return envelope
