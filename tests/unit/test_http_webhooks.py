"""POST /webhooks/spotdraft: signature on the raw bytes, lenient storage, mapping, limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.http import Metrics, create_app
from eventstore import DocumentWrite, MemoryEventStore, NewEvent, PersistenceError
from projections.events import UNMATCHED_WEBHOOKS_STREAM, EventType
from projections.runner import ContractProjection, catch_up

RAW_KEY = b"workspace-webhook-key-0123456789"
HMAC_KEY = base64.b64encode(RAW_KEY).decode()
TOKEN = "test-api-token"


@dataclass(frozen=True)
class Config:
    api_token: str | None = TOKEN
    hmac_key: str | None = HMAC_KEY


def sign(body: bytes) -> str:
    return hmac.new(RAW_KEY, body, hashlib.sha512).hexdigest()


def delivery(**fields: object) -> bytes:
    payload = {
        "activity": "CONTRACT_EXECUTED",
        "activity_data": {"performed_by": "x", "timestamp": "2026-04-20T10:00:00Z"},
        "contract_id": 1234,
        "contract_status": "EXECUTED",
        **fields,
    }
    return orjson.dumps(payload)


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def client(store: MemoryEventStore, metrics: Metrics) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(store, Config(), metrics=metrics, max_body_bytes=4096)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
        yield client


async def post(
    client: httpx.AsyncClient, body: bytes, signature: str | bytes | None
) -> httpx.Response:
    headers = {b"content-type": b"application/json"}
    if signature is not None:
        raw = signature if isinstance(signature, bytes) else signature.encode("latin-1")
        headers[b"x-sd-webhook-content-hash"] = raw
    return await client.post("/webhooks/spotdraft", content=body, headers=headers)


async def all_events(store: MemoryEventStore) -> list[tuple[str, str, dict[str, object]]]:
    return [(e.stream, e.type, dict(e.data)) async for e in store.read_all()]


async def add_contract(store: MemoryEventStore, external_id: str) -> None:
    event = NewEvent(
        type=EventType.CONTRACT_REQUESTED, data={"external_id": external_id}, source="intake"
    )
    await store.append(f"contract-{external_id}", [event], expected_version=0)


@pytest.mark.anyio
async def test_valid_signature_is_stored_then_acknowledged(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """A correctly signed delivery answers 200 and its raw body is in the log."""
    body = delivery()
    response = await post(client, body, sign(body))
    assert response.status_code == 200
    [(stream, kind, data)] = await all_events(store)
    assert (stream, kind) == (UNMATCHED_WEBHOOKS_STREAM, "WebhookReceived")
    assert data["raw_body"] == body.decode()
    assert data["activity"] == "CONTRACT_EXECUTED"
    assert data["contract_id"] == 1234
    assert data["signature"] == sign(body)


@pytest.mark.anyio
async def test_uppercase_hex_signature_is_accepted(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """Hex case does not matter: the digest is the same."""
    body = delivery()
    assert (await post(client, body, sign(body).upper())).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize("signature", [None, "", "00" * 64, "not hex at all", b"\xe9\xff"])
async def test_missing_or_wrong_signature_is_refused_and_not_stored(
    client: httpx.AsyncClient,
    store: MemoryEventStore,
    metrics: Metrics,
    signature: str | bytes | None,
) -> None:
    """Without a matching signature: 401, JSON error, nothing in the log, a failure counted."""
    response = await post(client, delivery(), signature)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert await all_events(store) == []
    assert b"spotsync_webhook_verification_failures_total{reason=" in metrics.render()
    failures = sum(
        s.value
        for m in metrics.registry.collect()
        for s in m.samples
        if s.name == "spotsync_webhook_verification_failures_total"
    )
    assert failures == 1


@pytest.mark.anyio
async def test_one_changed_byte_breaks_the_signature(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """The signature covers the raw bytes: changing one byte after signing gives 401."""
    body = delivery()
    signature = sign(body)
    tampered = body.replace(b"1234", b"1235")
    assert (await post(client, tampered, signature)).status_code == 401
    assert await all_events(store) == []


@pytest.mark.anyio
async def test_reformatted_json_does_not_verify(client: httpx.AsyncClient) -> None:
    """Re-serialised JSON with the same meaning is not the signed body."""
    body = delivery()
    spaced = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    assert (await post(client, spaced, sign(body))).status_code == 401


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "text", "b64"),
    [
        (b"{not json", "{not json", None),
        (b"[1, 2, 3]", "[1, 2, 3]", None),
        (b"\xff\xfe\x00garbage", None, base64.b64encode(b"\xff\xfe\x00garbage").decode()),
        (b"nul\x00inside", None, base64.b64encode(b"nul\x00inside").decode()),
        (b"", "", None),
    ],
)
async def test_signed_bodies_of_any_shape_are_stored(
    client: httpx.AsyncClient,
    store: MemoryEventStore,
    body: bytes,
    text: str | None,
    b64: str | None,
) -> None:
    """Invalid JSON, wrong shapes and invalid UTF-8, when signed, are stored and answered 200."""
    response = await post(client, body, sign(body))
    assert response.status_code == 200
    [(stream, _, data)] = await all_events(store)
    assert stream == UNMATCHED_WEBHOOKS_STREAM
    assert (data["raw_body"], data["raw_body_base64"]) == (text, b64)
    assert data["activity"] is None
    assert data["contract_id"] is None


@pytest.mark.anyio
async def test_wrongly_typed_fields_are_kept_raw_but_not_interpreted(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """A contract_id that is not an integer and an activity that is not text map to nothing."""
    body = delivery(contract_id={"x": 1}, activity=["A"], external_metadata="nope")
    assert (await post(client, body, sign(body))).status_code == 200
    [(stream, _, data)] = await all_events(store)
    assert stream == UNMATCHED_WEBHOOKS_STREAM
    assert data["contract_id"] is None
    assert data["activity"] is None


@pytest.mark.anyio
async def test_unknown_activity_is_stored(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """An activity nobody handles is stored like any other."""
    body = delivery(activity="CONTRACT_SOMETHING_NEW")
    assert (await post(client, body, sign(body))).status_code == 200
    [(_, _, data)] = await all_events(store)
    assert data["activity"] == "CONTRACT_SOMETHING_NEW"


@pytest.mark.anyio
async def test_maps_by_external_id_when_the_contract_stream_exists(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """external_metadata.id of a known contract puts the delivery on its stream."""
    await add_contract(store, "deal-1")
    body = delivery(external_metadata={"id": "deal-1"})
    assert (await post(client, body, sign(body))).status_code == 200
    events = await store.read_stream("contract-deal-1")
    assert [e.type for e in events] == ["ContractRequested", "WebhookReceived"]
    assert events[1].data["external_id"] == "deal-1"
    assert events[1].source == "webhook"


@pytest.mark.anyio
async def test_maps_by_contract_id_through_the_id_map(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """Without a usable external id, SpotDraft's contract_id is looked up in contract_ids."""
    await add_contract(store, "deal-2")
    await store.commit_projection(
        "test", 1, [DocumentWrite("contract_ids", "1234", {"external_id": "deal-2"})]
    )
    body = delivery(external_metadata={"id": "never-submitted"})
    assert (await post(client, body, sign(body))).status_code == 200
    events = await store.read_stream("contract-deal-2")
    assert events[-1].type == "WebhookReceived"
    assert events[-1].data["external_id"] == "deal-2"


@pytest.mark.anyio
async def test_a_contract_created_a_moment_ago_waits_for_the_id_map(
    store: MemoryEventStore,
) -> None:
    """A delivery naming only SpotDraft's contract id, for a contract whose creation the
    read models have not folded yet, waits for them and lands on the contract, not among
    the unmatched; one that matches nothing still goes there once they are caught up."""
    app = create_app(store, Config(), id_map_wait=30.0)
    created = {"id": "T-1234", "contract_id": 1234, "contract_status": "DRAFT"}
    await add_contract(store, "deal-3")
    await store.append(
        "contract-deal-3",
        [NewEvent(EventType.CONTRACT_CREATED, created, "api")],
        expected_version=None,
    )
    body = delivery()  # no external_metadata: SpotDraft's id only
    answers: list[httpx.Response] = []
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://daemon") as client,
        anyio.create_task_group() as tg,
    ):

        async def deliver() -> None:
            answers.append(await post(client, body, sign(body)))

        tg.start_soon(deliver)
        with anyio.fail_after(5):
            await anyio.wait_all_tasks_blocked()  # waiting for the read models
            assert answers == []
            await catch_up(store, ContractProjection(store))
    assert [a.status_code for a in answers] == [200]
    assert (await store.read_stream("contract-deal-3"))[-1].type == "WebhookReceived"

    other = delivery(contract_id=999)
    await catch_up(store, ContractProjection(store))
    with anyio.fail_after(5):
        assert (await post_to(app, other)).status_code == 200
    assert await store.stream_version(UNMATCHED_WEBHOOKS_STREAM) == 1


async def post_to(app: object, body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
        return await post(client, body, sign(body))


@pytest.mark.anyio
async def test_unknown_contract_goes_to_the_unmatched_stream(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """A delivery for a contract spotsync did not create is kept apart and answered 200."""
    body = delivery(contract_id=999, external_metadata={"id": "elsewhere"})
    assert (await post(client, body, sign(body))).status_code == 200
    [event] = await store.read_stream(UNMATCHED_WEBHOOKS_STREAM)
    assert event.data["external_id"] == "elsewhere"
    assert await store.stream_version("contract-elsewhere") == 0


@pytest.mark.anyio
async def test_body_over_the_limit_is_413_and_not_stored(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """A body larger than the limit is refused with 413, signed or not."""
    body = b"x" * 5000
    response = await post(client, body, sign(body))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert await all_events(store) == []


@pytest.mark.anyio
async def test_streamed_body_over_the_limit_is_413(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """Without Content-Length (chunked), the limit still holds while reading."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000

    response = await client.post(
        "/webhooks/spotdraft", content=chunks(), headers={"X-SD-WEBHOOK-CONTENT-HASH": "ab"}
    )
    assert response.status_code == 413
    assert await all_events(store) == []


@pytest.mark.anyio
async def test_a_body_streamed_in_chunks_is_verified_and_stored_whole(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """Chunked bodies (no Content-Length) are joined before the signature is checked."""
    body = delivery(contract_title="x" * 2000)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 700):
            yield body[start : start + 700]

    response = await client.post(
        "/webhooks/spotdraft", content=chunks(), headers={"X-SD-WEBHOOK-CONTENT-HASH": sign(body)}
    )
    assert response.status_code == 200
    assert response.json() == {"status": "stored", "position": 1}
    [(_, _, data)] = await all_events(store)
    assert data["raw_body"] == body.decode()


class FailingStore(MemoryEventStore):
    async def append(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]  # a fake that always fails
        raise PersistenceError("disk on fire")


@pytest.mark.anyio
async def test_store_failure_answers_503_so_spotdraft_retries() -> None:
    """When the append fails the delivery is not acknowledged: 503 with Retry-After."""
    app = create_app(FailingStore(), Config())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
        body = delivery()
        response = await post(client, body, sign(body))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "disk on fire" not in response.text


@pytest.mark.anyio
async def test_without_a_configured_key_every_delivery_is_refused(
    store: MemoryEventStore,
) -> None:
    """No HMAC key configured means nothing verifies: 401, nothing stored."""
    app = create_app(store, Config(hmac_key=None))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
        body = delivery()
        assert (await post(client, body, sign(body))).status_code == 401
    assert await all_events(store) == []


def test_an_empty_key_is_refused_at_start_up() -> None:
    """A key that decodes to nothing would verify a signature anyone can compute."""
    with pytest.raises(ValueError, match="empty"):
        create_app(MemoryEventStore(), Config(hmac_key=" "))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
webhook_bodies = (
    st.binary(max_size=512)
    | json_values.map(lambda value: json.dumps(value).encode())
    | st.fixed_dictionaries(
        {},
        optional={
            "activity": json_values,
            "contract_id": json_values,
            "contract_status": json_values,
            "external_metadata": json_values | st.fixed_dictionaries({"id": json_values}),
        },
    ).map(lambda value: json.dumps(value, ensure_ascii=False).encode())
    | st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth)
)


@settings(max_examples=150, deadline=None)
@given(body=webhook_bodies)
def test_any_signed_body_is_stored_and_answered_200(body: bytes) -> None:
    """Whatever the bytes, a signed delivery is stored once and answered 200, never 5xx."""

    async def scenario() -> None:
        store = MemoryEventStore()
        app = create_app(store, Config(), max_body_bytes=1 << 16)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
            assert (await post(client, body, sign(body))).status_code == 200
            assert (await post(client, body, "0" * 128)).status_code == 401
        [(_, kind, data)] = await all_events(store)
        assert kind == "WebhookReceived"
        text, encoded = data["raw_body"], data["raw_body_base64"]
        if isinstance(text, str):
            assert text.encode() == body
        else:
            assert isinstance(encoded, str)
            assert base64.b64decode(encoded) == body

    anyio.run(scenario)
