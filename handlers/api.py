"""What the handlers need of a SpotDraft client (``handlers.spotdraft.SpotDraftClient``).

A Protocol, so executors can be exercised against a small fake as well as the real
client talking to the sandbox.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from handlers.spotdraft.exchange import DownloadedFile, Result


class SpotDraftAPI(Protocol):
    async def create_contract(self, payload: dict[str, Any]) -> Result[dict[str, Any]]: ...

    async def send_to_counterparties(
        self, composite_id: str, body: dict[str, Any] | None = None
    ) -> Result[dict[str, Any]]: ...

    async def get_status(self, composite_id: str) -> Result[dict[str, Any]]: ...

    async def get_key_pointers(self, composite_id: str) -> Result[list[dict[str, Any]]]: ...

    async def get_download_link(
        self, composite_id: str, format: str = "PDF"
    ) -> Result[dict[str, Any]]: ...

    async def find_by_external_id(self, external_id: str) -> Result[list[dict[str, Any]]]: ...

    async def download(
        self, url: str, dest_dir: Path, file_name: str
    ) -> Result[DownloadedFile]: ...
