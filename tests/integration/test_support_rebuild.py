"""`projections rebuild --verify` on a long (100k-event) realistic log in a SQLite file."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from bench.logs import fill
from daemon.cli import main
from eventstore import DocumentWrite, open_store
from projections.rebuild import rebuild
from projections.runner import CONTRACTS, PROJECTION

EVENTS = 100_000


async def _seed(database: str) -> int:
    async with await open_store(database) as store:
        appended = await fill(store, EVENTS, whole=True)
        await rebuild(store)
        return appended


async def _corrupt(database: str, external_id: str) -> None:
    async with await open_store(database) as store:
        doc = await store.get_document(CONTRACTS, external_id)
        assert doc is not None
        doc["status"] = "DRAFT"
        position = await store.load_checkpoint(PROJECTION)
        await store.commit_projection(
            PROJECTION, position, [DocumentWrite(CONTRACTS, external_id, doc)]
        )


@pytest.mark.timeout(300)
def test_verify_on_a_long_log_is_clean_then_names_the_corrupted_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 100k-event log rebuilds with no differences; one tampered row is then reported."""
    database = str(tmp_path / "spotsync.db")
    monkeypatch.setenv("SPOTSYNC_DATABASE", database)
    appended = anyio.run(_seed, database)
    assert appended >= EVENTS

    assert main(["projections", "rebuild", "--verify"]) == 0
    out = capsys.readouterr().out
    assert f"up to position {appended} " in out
    assert "no differences" in out

    anyio.run(_corrupt, database, "hubspot-deal-4242")
    assert main(["projections", "rebuild", "--verify"]) == 1
    out = capsys.readouterr().out
    assert "1 difference from the live read models:" in out
    assert "contracts/hubspot-deal-4242: differs (status)" in out
