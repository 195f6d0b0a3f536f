"""POST /webhooks/spotdraft under hostile bytes, on the real SQLite and PostgreSQL stores.

``test_http_webhooks.py`` fuzzes the route over the memory store; here the same kinds
of body go through the backends a daemon runs on (where NUL, invalid UTF-8 and deep
nesting meet real column types), and the size limit is shown to stop reading early.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.http import create_app
from daemon.http.limits import DRAIN_BYTES
from eventstore import open_store
from eventstore.postgres import temporary_schema
from projections.events import UNMATCHED_WEBHOOKS_STREAM, EventType
from tests.unit.test_http_webhooks import Config, delivery, post, sign, webhook_bodies

POSTGRES_URL = os.environ.get("SPOTSYNC_TEST_POSTGRES_URL")

hostile_bodies = (
    webhook_bodies
    # Invalid UTF-8 inside otherwise valid JSON, and encoded lone surrogates.
    | st.binary(max_size=64).map(lambda raw: b'{"activity": "' + raw + b'"}')
    | st.sampled_from([b'{"activity": "\\ud800"}', b'"\xed\xa0\x80"', b"\x00" * 16])
    # Deeper than any JSON parser recurses, in both container kinds.
    | st.integers(1000, 100_000).map(lambda d: b'{"a":' * d + b"1" + b"}" * d)
    | st.integers(1000, 100_000).map(lambda d: b"[" * d + b"]" * d)
    # Right shape, hostile values.
    | st.text().map(
        lambda text: delivery(external_metadata={"id": text}, contract_status=text, activity=text)
    )
)


async def exchange(database: str, body: bytes, signature: str | None) -> list[dict[str, object]]:
    """Post ``body`` to a fresh app over ``database``; the answer's status must be no 5xx.

    Returns the stored events' data, read back through a newly opened store."""
    store = await open_store(database)
    try:
        app = create_app(store, Config(), max_body_bytes=1 << 20)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
            response = await post(client, body, signature)
    finally:
        await store.close()
    if signature is None or signature == "0" * 128:
        assert response.status_code == 401, response.text
    else:
        assert response.status_code == 200, response.text
    async with await open_store(database) as reopened:
        return [
            dict(e.data)
            async for e in reopened.read_all()
            if e.type == EventType.WEBHOOK_RECEIVED
        ]


def stored_bytes(data: dict[str, object]) -> bytes:
    if isinstance(data["raw_body"], str):
        return data["raw_body"].encode("utf-8")
    assert isinstance(data["raw_body_base64"], str)
    return base64.b64decode(data["raw_body_base64"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=hostile_bodies)
def test_signed_hostile_bodies_are_stored_exactly_in_sqlite(body: bytes) -> None:
    """Any signed bytes are answered 200 and read back from the SQLite file byte for byte."""
    with tempfile.TemporaryDirectory() as tmp:
        database = str(Path(tmp) / "spotsync.db")
        [data] = anyio.run(exchange, database, body, sign(body))
        assert stored_bytes(data) == body


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=hostile_bodies, signature=st.sampled_from([None, "0" * 128]))
def test_unsigned_or_forged_bodies_are_401_and_store_nothing(
    body: bytes, signature: str | None
) -> None:
    """Without a valid signature every body is refused with 401 and nothing is appended."""
    with tempfile.TemporaryDirectory() as tmp:
        assert anyio.run(exchange, str(Path(tmp) / "spotsync.db"), body, signature) == []


@pytest.fixture(scope="module")
def postgres_schema() -> str:
    if not POSTGRES_URL:
        pytest.skip("SPOTSYNC_TEST_POSTGRES_URL is not set (PostgreSQL tests skipped)")
    return f"fuzz_{uuid.uuid4().hex[:12]}"


@pytest.mark.postgres
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=hostile_bodies)
def test_signed_hostile_bodies_are_stored_exactly_in_postgres(
    postgres_schema: str, body: bytes
) -> None:
    """Any signed bytes are answered 200 and read back from PostgreSQL byte for byte."""
    assert POSTGRES_URL

    async def scenario() -> None:
        async with temporary_schema(POSTGRES_URL, postgres_schema) as url:
            [data] = await exchange(url, body, sign(body))
            assert stored_bytes(data) == body

    anyio.run(scenario)


@pytest.mark.anyio
async def test_an_oversized_stream_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    """A chunked 64 MiB body gets 413 once the limit and the bounded drain are passed."""
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1024):
            pulled += 1
            yield b"{" * 65536

    async with await open_store(str(tmp_path / "spotsync.db")) as store:
        app = create_app(store, Config(), max_body_bytes=1 << 20)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
            response = await client.post(
                "/webhooks/spotdraft",
                content=chunks(),
                headers={"X-SD-WEBHOOK-CONTENT-HASH": "0" * 128},
            )
        assert response.status_code == 413
        assert pulled <= DRAIN_BYTES // 65536 + 1 < 1024
        assert await store.last_position() == 0


@pytest.mark.anyio
async def test_a_declared_oversized_body_is_refused_unread(tmp_path: Path) -> None:
    """A Content-Length past what is worth draining is answered 413 before a byte is pulled."""
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        pulled += 1
        yield b"x" * 10

    async with await open_store(str(tmp_path / "spotsync.db")) as store:
        app = create_app(store, Config(), max_body_bytes=1 << 20)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
            body = json.dumps({"x": 1}).encode()
            response = await client.post(
                "/webhooks/spotdraft",
                content=chunks(),
                headers={
                    "content-length": str(DRAIN_BYTES + 1),
                    "X-SD-WEBHOOK-CONTENT-HASH": sign(body),
                },
            )
        assert response.status_code == 413
        assert pulled == 0
        assert await store.stream_version(UNMATCHED_WEBHOOKS_STREAM) == 0
