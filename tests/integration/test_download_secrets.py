"""A download url's signature is a short-lived credential: it never reaches the event log."""

from __future__ import annotations

import functools
from pathlib import Path

import anyio
import httpx
import orjson
import pytest

from daemon.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Sandbox, SandboxOptions
from eventstore import MemoryEventStore
from handlers.spotdraft import RetryPolicy, SpotDraftClient, SpotDraftCredentials
from handlers.worker import run_handlers
from projections.runner import run_projections
from tests.integration.test_flow import _receiver, _request, _wait_for_document

pytestmark = pytest.mark.anyio

EXTERNAL_ID = "deal-download"


class SeenUrls(httpx.AsyncBaseTransport):
    """Real HTTP, remembering every url the client asked for."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.urls: list[httpx.URL] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(request.url)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_no_event_of_a_download_holds_the_urls_signature(tmp_path: Path) -> None:
    """The contract syncs with its PDF, and no recorded event carries the download signature."""
    store = MemoryEventStore()
    seen = SeenUrls()
    options = SandboxOptions(
        webhook_url="http://receiver.test/webhooks/spotdraft", webhook_transport=_receiver(store)
    )
    async with Sandbox.serve(options) as sandbox:
        assert sandbox.url is not None
        credentials = SpotDraftCredentials(sandbox.url, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        client = SpotDraftClient(credentials, retry=RetryPolicy(max_attempts=3), transport=seen)
        async with client, anyio.create_task_group() as tg:
            await tg.start(run_projections, store)
            await tg.start(functools.partial(run_handlers, store, client, documents_dir=tmp_path))
            await _request(store, EXTERNAL_ID, send={})
            with anyio.fail_after(20):
                doc = await _wait_for_document(store, EXTERNAL_ID, lambda d: d["sync"] == "sent")
                await sandbox.advance(doc["spotdraft"]["id"])  # SIGN
                await sandbox.advance(doc["spotdraft"]["id"])  # EXECUTED
                doc = await _wait_for_document(store, EXTERNAL_ID, lambda d: d["sync"] == "synced")
            tg.cancel_scope.cancel()

    fetched = [url for url in seen.urls if url.path.startswith("/_files/")]
    assert len(fetched) == 1
    secrets = credentials_in(fetched[0], doc["document"]["file_name"])
    assert secrets  # the url is signed
    assert (tmp_path / doc["document"]["path"]).read_bytes().startswith(b"%PDF")
    recorded = [orjson.dumps(event.data).decode() async for event in store.read_all()]
    assert any("/_files/" in data for data in recorded)  # the download itself was recorded
    assert [data for data in recorded for secret in secrets if secret in data] == []


def credentials_in(url: httpx.URL, file_name: str) -> set[str]:
    """What a download url carries besides the file's own name: its signature, wherever it is."""
    segments = set(url.path.split("/")) - {"", "_files", file_name}
    return segments | set(url.params.values())
