"""Downloading the file behind a download url: whole or not at all, hashed, no credentials."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from handlers.spotdraft import (
    PermanentError,
    RateBudget,
    SpotDraftClient,
    SpotDraftCredentials,
    StorageError,
    TransientError,
    downloads,
)

PDF = b"%PDF-1.4\n" + b"x" * 200_000 + b"\n%%EOF\n"
URL = "https://files.spotdraft.example/exports/T-1.pdf?signature=SIGNED-TOKEN&expires=900"


class Files:
    """A fake file host: serves PDF, or the status/stream failure a test asks for."""

    def __init__(self, *statuses: int, broken_stream: bool = False) -> None:
        self.statuses = list(statuses)
        self.broken_stream = broken_stream
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        code = self.statuses.pop(0) if self.statuses else 200
        if code != 200:
            return httpx.Response(code, json={"detail": "expired"})
        if self.broken_stream:
            return httpx.Response(200, stream=BrokenStream())
        return httpx.Response(200, content=PDF, headers={"content-type": "application/pdf"})

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await anyio.lowlevel.checkpoint()


class BrokenStream(httpx.AsyncByteStream):
    """Half a file, then the connection drops."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield PDF[:1000]
        raise httpx.ReadError("connection reset")


def leftovers(directory: Path) -> list[str]:
    """Every name in ``directory``, hidden temporary files included."""
    return sorted(path.name for path in directory.iterdir())


def client_for(files: Files) -> SpotDraftClient:
    now = [0.0]
    return SpotDraftClient(
        SpotDraftCredentials("https://api.us.spotdraft.com", "client-1", "s3cr3t"),
        budget=RateBudget(10.0, clock=lambda: now[0], sleep=files.sleep),
        transport=httpx.MockTransport(files),
        sleep=files.sleep,
    )


@pytest.mark.anyio
async def test_download_stores_the_file_with_its_sha256_and_size(tmp_path: Path) -> None:
    """The file lands whole under the chosen name, with the right sha256 and byte count."""
    files = Files()
    async with client_for(files) as client:
        result = await client.download(URL, tmp_path / "docs", "T-1.pdf")
    stored = result.value
    assert stored.path == tmp_path / "docs" / "T-1.pdf"
    assert stored.path.read_bytes() == PDF
    assert stored.sha256 == hashlib.sha256(PDF).hexdigest()
    assert stored.bytes == len(PDF)
    assert leftovers(tmp_path / "docs") == ["T-1.pdf"]


@pytest.mark.anyio
async def test_download_sends_no_credentials_and_records_no_signature(tmp_path: Path) -> None:
    """The signed url gets no client-id/secret, and the exchange drops the url's query."""
    files = Files()
    async with client_for(files) as client:
        result = await client.download(URL, tmp_path, "T-1.pdf")
    headers = files.requests[0].headers
    assert "client-secret" not in headers
    assert "client-id" not in headers
    exchange = result.exchanges[0]
    assert exchange.path == "/exports/T-1.pdf"
    assert "SIGNED-TOKEN" not in str(exchange.to_event_data())
    assert exchange.response_body == {
        "file_name": "T-1.pdf",
        "bytes": len(PDF),
        "sha256": hashlib.sha256(PDF).hexdigest(),
    }


@pytest.mark.anyio
async def test_downloads_do_not_spend_the_api_budget(tmp_path: Path) -> None:
    """The file host is not the API: a download takes no slot of the rate budget."""
    files = Files()
    async with client_for(files) as client:
        await client.download(URL, tmp_path, "T-1.pdf")
        assert client.budget.stats().calls == 0


@pytest.mark.anyio
async def test_a_dropped_stream_is_retried_and_leaves_no_partial_file(tmp_path: Path) -> None:
    """A connection lost mid-file is retried from scratch; no torn or temporary file stays."""
    files = Files(broken_stream=True)
    async with client_for(files) as client:
        with pytest.raises(TransientError):
            await client.download(URL, tmp_path, "T-1.pdf")
    assert leftovers(tmp_path) == []
    assert len(files.requests) == 5


@pytest.mark.anyio
async def test_a_5xx_then_success_downloads_the_file(tmp_path: Path) -> None:
    """The file host's 503 is retried like the API's."""
    files = Files(503)
    async with client_for(files) as client:
        result = await client.download(URL, tmp_path, "T-1.pdf")
    assert [exchange.status for exchange in result.exchanges] == [503, 200]
    assert result.value.path.read_bytes() == PDF


@pytest.mark.anyio
async def test_an_expired_url_is_a_permanent_error(tmp_path: Path) -> None:
    """A 403 from the file host (expired signature) is not retried and writes nothing."""
    files = Files(403)
    async with client_for(files) as client:
        with pytest.raises(PermanentError):
            await client.download(URL, tmp_path, "T-1.pdf")
    assert len(files.requests) == 1
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["", ".", "..", "a/b.pdf", "..\\x.pdf", ".hidden", "a\0b"])
async def test_unsafe_file_names_are_refused(tmp_path: Path, name: str) -> None:
    """A name with a path separator, a dot-name or NUL is refused before any request."""
    files = Files()
    async with client_for(files) as client:
        with pytest.raises(ValueError, match="file name"):
            await client.download(URL, tmp_path, name)
    assert files.requests == []


@pytest.mark.anyio
async def test_a_download_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    """A file larger than max_download_bytes is abandoned, and nothing is left on disk."""
    files = Files()
    client = SpotDraftClient(
        SpotDraftCredentials("https://api.us.spotdraft.com", "client-1", "s3cr3t"),
        transport=httpx.MockTransport(files),
        sleep=files.sleep,
        max_download_bytes=1000,
    )
    async with client:
        with pytest.raises(PermanentError, match="larger than 1000 bytes") as caught:
            await client.download(URL, tmp_path, "T-1.pdf")
    assert leftovers(tmp_path) == []
    assert [exchange.attempt for exchange in caught.value.exchanges] == [1]


@pytest.mark.anyio
async def test_a_download_with_no_room_to_store_it_is_deferred_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up under a download: a transient error that names the folder and the
    fix, the call recorded once (trying again at once would not help), nothing left."""

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(downloads.os, "fsync", full)
    files = Files()
    async with client_for(files) as client:
        with pytest.raises(StorageError) as caught:
            await client.download(URL, tmp_path, "T-1.pdf")
    assert not isinstance(caught.value, PermanentError)
    assert f"cannot store T-1.pdf in {tmp_path}: No space left on device" in str(caught.value)
    assert "SPOTSYNC_DOCUMENTS_DIR" in str(caught.value)
    assert [(e.attempt, e.status) for e in caught.value.exchanges] == [(1, None)]
    assert "No space left" in str(caught.value.exchanges[0].error)
    assert len(files.requests) == 1
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_a_documents_folder_that_cannot_be_made_is_a_storage_error(tmp_path: Path) -> None:
    """SPOTSYNC_DOCUMENTS_DIR names a file: nothing is fetched, and the error says where."""
    taken = tmp_path / "documents"
    taken.write_text("not a folder")
    files = Files()
    async with client_for(files) as client:
        with pytest.raises(StorageError, match=r"cannot store T-1\.pdf in .*documents"):
            await client.download(URL, taken, "T-1.pdf")
    assert files.requests == []
