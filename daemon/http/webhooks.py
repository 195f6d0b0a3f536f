"""``POST /webhooks/spotdraft``: verify, store, then acknowledge.

The signature is checked on the raw bytes before anything is parsed. A verified
delivery is always stored, whatever its content: bytes that are not JSON, JSON of the
wrong shape and activities nobody handles are kept for support and replay, and the
handlers decide what they mean. SpotDraft retries non-2xx answers, so a store failure
is a 503, and a 200 is sent only after the append returned (durable).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
import structlog
from starlette.types import Receive, Scope, Send

from daemon.http.errors import ApiError
from daemon.http.limits import receive_body
from daemon.http.metrics import Metrics
from daemon.http.validation import is_valid_external_id
from eventstore import EventStore, NewEvent
from eventstore.envelope import format_timestamp, utcnow
from projections.events import UNMATCHED_WEBHOOKS_STREAM, EventType, contract_stream
from projections.runner import CONTRACT_IDS, PROJECTION, wait_for_projection

SIGNATURE_HEADER = "x-sd-webhook-content-hash"
_SIGNATURE_HEADER_BYTES = SIGNATURE_HEADER.encode("ascii")
_JSON_HEADERS = [(b"content-type", b"application/json")]
_MAX_LABEL = 200  # activity and status are short enum names; anything longer is not one

log = structlog.get_logger("spotsync.webhooks")


def decode_hmac_key(key: str | None) -> bytes | None:
    """The workspace key as bytes; the error names the variable, never the value."""
    if key is None:
        return None
    try:
        decoded = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("SPOTDRAFT_HMAC_KEY is not valid base64") from None
    if not decoded:
        raise ValueError("SPOTDRAFT_HMAC_KEY is empty: any signature would verify")
    return decoded


def sign(key: bytes, body: bytes) -> str:
    """The ``X-SD-WEBHOOK-CONTENT-HASH`` SpotDraft sends for ``body``."""
    return hmac.new(key, body, hashlib.sha512).hexdigest()


def signature_ok(key: bytes | None, body: bytes, presented: str) -> bool:
    if key is None:
        return False
    expected = sign(key, body).encode("ascii")
    return hmac.compare_digest(expected, presented.strip().lower().encode("latin-1"))


@dataclass(frozen=True)
class Delivery:
    """What a verified body says about itself, read leniently (every field may be missing)."""

    activity: str | None
    contract_id: int | None
    contract_status: str | None
    external_id: str | None

    @classmethod
    def parse(cls, body: bytes) -> Delivery:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            return cls(None, None, None, None)
        meta = payload.get("external_metadata")
        external_id = meta.get("id") if isinstance(meta, dict) else None
        contract_id = payload.get("contract_id")
        if isinstance(contract_id, str) and contract_id.isascii() and contract_id.isdigit():
            contract_id = int(contract_id)
        return cls(
            activity=_label(payload.get("activity")),
            contract_id=(
                contract_id
                if isinstance(contract_id, int)
                and not isinstance(contract_id, bool)
                and 0 <= contract_id < 2**63
                else None
            ),
            contract_status=_label(payload.get("contract_status")),
            external_id=external_id if is_valid_external_id(external_id) else None,
        )


def _label(value: Any) -> str | None:
    if isinstance(value, str) and len(value) <= _MAX_LABEL and value.isprintable():
        return value
    return None


def raw_body_fields(body: bytes) -> dict[str, str | None]:
    """The body as text when it is UTF-8, else as base64.

    Text with NUL goes as base64 too: PostgreSQL's jsonb refuses ``\\u0000``.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        return {"raw_body": text, "raw_body_base64": None}
    return {"raw_body": None, "raw_body_base64": base64.b64encode(body).decode("ascii")}


class KnownStreams:
    """Contract streams seen to exist. A stream never stops existing (the log is
    append-only), so a hit needs no read; bounded, so a flood of ids cannot grow it."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._streams: set[str] = set()

    async def exists(self, store: EventStore, stream: str) -> bool:
        if stream in self._streams:
            return True
        if await store.stream_version(stream) == 0:
            return False
        if len(self._streams) >= self.limit:
            self._streams.clear()
        self._streams.add(stream)
        return True


async def resolve_stream(
    store: EventStore,
    delivery: Delivery,
    known: KnownStreams | None = None,
    *,
    id_map_wait: float = 0.0,
) -> tuple[str, str | None]:
    """The stream a delivery belongs to, and the contract's external id when it maps to one.

    A delivery that names only SpotDraft's contract id is mapped through the read model's
    id map, which may trail the log by a moment: one for a contract created just now
    waits up to ``id_map_wait`` seconds for it to catch up before it counts as unmatched.
    """
    if delivery.external_id is not None:
        stream = contract_stream(delivery.external_id)
        exists = (
            await known.exists(store, stream)
            if known is not None
            else await store.stream_version(stream) > 0
        )
        if exists:
            return stream, delivery.external_id
    if delivery.contract_id is not None:
        mapped = await _mapped(store, delivery.contract_id)
        if mapped is None and id_map_wait > 0:
            head = await store.last_position()
            if await store.load_checkpoint(PROJECTION) < head:
                with anyio.move_on_after(id_map_wait):
                    await wait_for_projection(store, head)
                mapped = await _mapped(store, delivery.contract_id)
        if mapped is not None:
            return contract_stream(mapped), mapped
    return UNMATCHED_WEBHOOKS_STREAM, None


async def _mapped(store: EventStore, contract_id: int) -> str | None:
    row = await store.get_document(CONTRACT_IDS, str(contract_id))
    mapped = row.get("external_id") if row else None
    return mapped if is_valid_external_id(mapped) and isinstance(mapped, str) else None


class WebhookEndpoint:
    """``POST /webhooks/spotdraft`` as a plain ASGI app.

    This is the daemon's hot path (SpotDraft may deliver in bursts), so it holds what it
    needs from the start, reads the two headers it needs and the body straight from the
    ASGI messages, and answers with two messages of its own, without the per-request
    objects of a starlette endpoint. Errors are raised as ``ApiError``, answered by the
    app's exception handlers.
    """

    def __init__(
        self,
        store: EventStore,
        metrics: Metrics,
        hmac_key: bytes | None,
        *,
        max_body_bytes: int,
        id_map_wait: float,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.hmac_key = hmac_key
        self.max_body_bytes = max_body_bytes
        self.id_map_wait = id_map_wait
        self.known_streams = KnownStreams()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.metrics
        declared = presented = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == _SIGNATURE_HEADER_BYTES:
                presented = value.decode("latin-1")
        body = await receive_body(receive, declared, self.max_body_bytes)
        if not presented:
            metrics.webhook_refused("missing")
            log.warning("webhook refused: no signature", bytes=len(body))
            raise ApiError(
                401, f"the {SIGNATURE_HEADER} header is missing", code="invalid_signature"
            )
        if not signature_ok(self.hmac_key, body, presented):
            metrics.webhook_refused("invalid")
            log.warning("webhook refused: signature does not match", bytes=len(body))
            raise ApiError(401, "the webhook signature does not match", code="invalid_signature")

        delivery = Delivery.parse(body)
        store = self.store
        stream, external_id = await resolve_stream(
            store, delivery, self.known_streams, id_map_wait=self.id_map_wait
        )
        data = {
            "activity": delivery.activity,
            "contract_id": delivery.contract_id,
            "contract_status": delivery.contract_status,
            "external_id": external_id or delivery.external_id,
            **raw_body_fields(body),
            "signature": presented.strip()[:_MAX_LABEL],
            "received_at": format_timestamp(utcnow()),
        }
        event = NewEvent(type=EventType.WEBHOOK_RECEIVED, data=data, source="webhook")
        result = await store.append(stream, [event], expected_version=None)
        metrics.webhook_stored(matched=external_id is not None)
        # The delivery itself is in the log (``spotsync events``): a line each is debug.
        log.debug(
            "webhook stored",
            stream=stream,
            position=result.position,
            activity=delivery.activity,
            external_id=external_id,
        )
        answer = b'{"status":"stored","position":%d}' % result.position
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(answer))],
            }
        )
        await send({"type": "http.response.body", "body": answer})
