"""The HTTP app over real loopback HTTP (hypercorn), and `spotsync submit` against it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest

from daemon.cli import main
from daemon.http import create_app
from daemon.serving import bind, serving
from eventstore import MemoryEventStore, open_store

TOKEN = "loopback-token-123"
RAW_KEY = b"loopback-hmac-key"
ACME = Path(__file__).parents[1] / "data" / "acme_contract.json"


@dataclass(frozen=True)
class Config:
    api_token: str | None = TOKEN
    hmac_key: str | None = base64.b64encode(RAW_KEY).decode()


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
async def base_url(store: MemoryEventStore) -> AsyncIterator[str]:
    async with serving(create_app(store, Config(), max_body_bytes=64 * 1024)) as url:
        yield url


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    """What submit printed (the served app's own log lines come before it)."""
    return capsys.readouterr().out.strip().splitlines()[-1]


async def submit(*argv: str) -> int:
    return await anyio.to_thread.run_sync(main, ["submit", *argv])


@pytest.mark.anyio
async def test_submit_posts_the_file_and_prints_the_answer(
    base_url: str, store: MemoryEventStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """`spotsync submit` prints 202, then 200 for the same file, and the contract exists."""
    assert await submit(str(ACME), "--url", base_url, "--token", TOKEN) == 0
    first = last_line(capsys)
    assert first == (f"202 accepted: hubspot-deal-10024 {base_url}/v1/contracts/hubspot-deal-10024")
    assert await submit(str(ACME), "--url", base_url, "--token", TOKEN) == 0
    assert last_line(capsys).startswith("200 already submitted: hubspot-deal-10024")
    assert await store.stream_version("contract-hubspot-deal-10024") == 1


@pytest.mark.anyio
async def test_submit_reads_url_and_token_from_the_environment(
    store: MemoryEventStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without flags, SPOTSYNC_LISTEN and SPOTSYNC_API_TOKEN say where and how."""
    bound = bind()
    port = bound.port
    bound.sock.close()
    async with serving(create_app(store, Config()), port=port):
        monkeypatch.setenv("SPOTSYNC_LISTEN", f"127.0.0.1:{port}")
        monkeypatch.setenv("SPOTSYNC_API_TOKEN", TOKEN)
        assert await submit(str(ACME)) == 0
    assert last_line(capsys).startswith("202 accepted")


@pytest.mark.anyio
async def test_submit_reports_http_errors_in_one_line(
    base_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 422 names the fields, a 401 says so; both exit non-zero without a traceback."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"external_metadata": {"id": "x"}}))
    assert await submit(str(bad), "--url", base_url, "--token", TOKEN) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "422 invalid_request" in err
    assert "contract_template_id: is required" in err
    assert await submit(str(ACME), "--url", base_url, "--token", "wrong") == 2
    err = capsys.readouterr().err
    assert "401 unauthorized" in err
    assert "wrong" not in err


@pytest.mark.anyio
async def test_submit_conflict_exits_non_zero(
    base_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A different payload for a submitted external id is a one-line 409."""
    assert await submit(str(ACME), "--url", base_url, "--token", TOKEN) == 0
    changed = json.loads(ACME.read_text())
    changed["contract_name"] = "Changed"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(changed))
    assert await submit(str(other), "--url", base_url, "--token", TOKEN) == 2
    assert "409 conflict" in capsys.readouterr().err


@pytest.mark.anyio
async def test_submit_user_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unreadable file, invalid JSON and a refused connection each end in one line, exit 2."""
    bound = bind()
    closed_url = bound.url
    bound.sock.close()
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    cases = [
        ([str(tmp_path / "missing.json"), "--url", closed_url], "cannot read"),
        ([str(broken), "--url", closed_url], "is not valid JSON"),
        ([str(ACME), "--url", closed_url, "--token", TOKEN], "connection refused"),
    ]
    for argv, expected in cases:
        assert await submit(*argv) == 2
        err = capsys.readouterr().err
        assert expected in err
        assert err.startswith("spotsync submit: ")
        assert err.count("\n") == 1


@pytest.mark.anyio
async def test_signed_webhook_over_loopback_is_stored(
    base_url: str, store: MemoryEventStore
) -> None:
    """A real HTTP delivery with a valid signature is answered 200 after it is stored."""
    body = b'{"activity": "CONTRACT_CREATED", "contract_id": 7}'
    signature = hmac.new(RAW_KEY, body, hashlib.sha512).hexdigest()
    async with httpx.AsyncClient() as client:
        response = await client.post(
            base_url + "/webhooks/spotdraft",
            content=body,
            headers={"X-SD-WEBHOOK-CONTENT-HASH": signature},
        )
    assert response.status_code == 200
    [event] = await store.read_stream("webhooks-unmatched")
    assert event.data["raw_body"] == body.decode()


@pytest.mark.anyio
async def test_oversized_declared_body_is_refused_before_it_is_sent(base_url: str) -> None:
    """A Content-Length over the limit is answered 413 without waiting for the body."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with anyio.fail_after(10):
        async with await anyio.connect_tcp(host, int(port)) as conn:
            await conn.send(
                b"POST /webhooks/spotdraft HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"
            )
            answer = await conn.receive()
    assert answer.startswith(b"HTTP/1.1 413")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    ["a%2Fb", "..%2F..%2Fetc%2Fpasswd", "%00", "%E2%82", "%25", "x%0Ay", "..", "%2E%2E"],
)
async def test_odd_ids_over_real_http_are_never_a_server_error(base_url: str, path: str) -> None:
    """Encoded slashes, NUL, broken UTF-8 and dot segments answer a JSON 4xx."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient() as client:
        for suffix in ("", "/events"):
            response = await client.get(f"{base_url}/v1/contracts/{path}{suffix}", headers=auth)
            assert 400 <= response.status_code < 500
            assert "error" in response.json()
        sent = await client.post(f"{base_url}/v1/contracts/{path}/send", headers=auth)
        assert 400 <= sent.status_code < 500


@pytest.mark.anyio
async def test_intake_and_webhooks_on_a_sqlite_file_survive_reopening(tmp_path: Path) -> None:
    """On a real SQLite store: 202, 200, 409 and a mapped webhook, all there after reopening."""
    database = str(tmp_path / "spotsync.db")
    payload = json.loads(ACME.read_text())
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = b'{"activity": "CONTRACT_CREATED", "external_metadata": {"id": "hubspot-deal-10024"}}'
    signature = hmac.new(RAW_KEY, body, hashlib.sha512).hexdigest()
    async with await open_store(database) as store:
        async with serving(create_app(store, Config())) as url, httpx.AsyncClient() as client:
            first = await client.post(url + "/v1/contracts", json=payload, headers=auth)
            again = await client.post(url + "/v1/contracts", json=payload, headers=auth)
            payload["contract_name"] = "Changed"
            other = await client.post(url + "/v1/contracts", json=payload, headers=auth)
            hook = await client.post(
                url + "/webhooks/spotdraft",
                content=body,
                headers={"X-SD-WEBHOOK-CONTENT-HASH": signature},
            )
        assert [first.status_code, again.status_code, other.status_code] == [202, 200, 409]
        assert hook.status_code == 200
    async with await open_store(database) as reopened:
        events = await reopened.read_stream("contract-hubspot-deal-10024")
    assert [e.type for e in events] == ["ContractRequested", "WebhookReceived"]
    assert events[1].data["raw_body"] == body.decode()
