"""Downloaded documents land whole and readable by their owner only."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handlers.spotdraft.downloads import stream_to_file

pytestmark = pytest.mark.anyio


async def _chunks() -> AsyncIterator[bytes]:
    yield b"%PDF-1.4\n"
    yield b"executed"


async def test_a_stored_document_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    """An executed PDF is written 0600 even under a permissive umask."""
    previous = os.umask(0o002)
    try:
        stored = await stream_to_file(_chunks(), tmp_path, "acme.pdf", max_bytes=1 << 20)
    finally:
        os.umask(previous)
    assert stored.path.read_bytes() == b"%PDF-1.4\nexecuted"
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["acme.pdf"]
