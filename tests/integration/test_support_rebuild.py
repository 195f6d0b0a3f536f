"""`projections rebuild --verify` on a long (100k-event) realistic log in a SQLite file."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from bench.logs import fill
from daemon.cli import main
from eventstore import DocumentWrite, open_store
from eventstore.postgres import temporary_schema
from projections.events import CONTRACT_STREAM_PREFIX
from projections.rebuild import fold_range, rebuild
from projections.runner import (
    CONTRACT_IDS,
    CONTRACTS,
    LIVE,
    PROJECTION,
    RECONCILE_DUE,
    ContractProjection,
    catch_up,
)

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


async def _live_and_rebuilt(database: str, workers: int) -> tuple[list[Any], list[Any], int]:
    """The read models as the daemon's runner folds them in log order, then rebuilt."""
    async with await open_store(database) as store:
        if not await store.last_position():
            await fill(store, 6_000)
        await store.drop_projection(LIVE.name, LIVE.collections)
        await catch_up(store, ContractProjection(store), batch_size=300)
        live = [await store.query_documents(c) for c in LIVE.collections]
        progress: list[int] = []
        report = await rebuild(
            store, verify=True, workers=workers, on_progress=lambda done, _: progress.append(done)
        )
        rebuilt = [await store.query_documents(c) for c in LIVE.collections]
        assert await store.load_checkpoint(PROJECTION) == await store.last_position()
        # The bar counts up, range after range, to every contract event.
        folded = [e async for e in store.read_all() if e.stream.startswith(CONTRACT_STREAM_PREFIX)]
        assert progress == sorted(progress)
        assert progress[-1] == len(folded)
        return live, rebuilt, report.difference_count


@pytest.mark.parametrize("workers", [0, 2])
def test_rebuild_stream_by_stream_equals_the_runners_projection(
    tmp_path: Path, workers: int
) -> None:
    """Folding contract by contract (here, or in worker processes) gives the live rows."""
    live, rebuilt, differences = anyio.run(_live_and_rebuilt, str(tmp_path / "s.db"), workers)
    assert differences == 0
    assert len(live[0]) > 200  # contracts, and most of them with a SpotDraft id
    assert len(live[1]) > 200
    assert rebuilt == live


async def _cut_short(database: str) -> tuple[list[Any], list[Any]]:
    async with await open_store(database) as store:
        await fill(store, 6_000)
        await rebuild(store, workers=0)
        whole = [await store.query_documents(c) for c in LIVE.collections]
        # A rebuild that wrote only the first half of the contracts, then stopped.
        await store.drop_projection(LIVE.name, LIVE.collections)
        bounds = await store.split_streams(CONTRACT_STREAM_PREFIX, 2)
        await fold_range(store, LIVE, None, bounds[0], await store.last_position())
        assert await store.load_checkpoint(PROJECTION) == 0
        # A cache smaller than the log's contracts, so states are read back as well.
        await catch_up(store, ContractProjection(store, cache_size=250), batch_size=100)
        return whole, [await store.query_documents(c) for c in LIVE.collections]


def test_the_runner_folds_on_from_a_rebuild_cut_short(tmp_path: Path) -> None:
    """A rebuild stopped halfway leaves checkpoint 0; the runner then gets the same rows.

    It folds from the first event again, and every stream's first event starts its
    contract afresh, so rows the rebuild left are overwritten, never folded onto."""
    whole, after = anyio.run(_cut_short, str(tmp_path / "s.db"))
    assert after == whole


POSTGRES_URL = os.environ.get("SPOTSYNC_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "s.db")
    elif not POSTGRES_URL:
        pytest.skip("SPOTSYNC_TEST_POSTGRES_URL is not set (PostgreSQL tests skipped)")
    else:
        async with temporary_schema(POSTGRES_URL, "test") as url:
            yield url


async def _rebuilt_over_stale_rows(url: str, workers: int) -> tuple[list[Any], list[Any]]:
    async with await open_store(url) as store:
        await fill(store, 3_000)
        await catch_up(store, ContractProjection(store), batch_size=300)
        live = [await store.query_documents(c) for c in LIVE.collections]
        keys = [key for key, _ in live[0]]
        # Rows no stream accounts for, before, among and after the contracts' own...
        gone = ["!gone", "0-gone", f"{keys[len(keys) // 2]}-gone", "~gone"]
        planted = [DocumentWrite(CONTRACTS, key, live[0][0][1]) for key in gone]
        planted += [
            DocumentWrite(CONTRACT_IDS, "999999999", {"external_id": "gone"}),
            DocumentWrite(RECONCILE_DUE, "2001-01-01T00:00:00Z gone", {"external_id": "gone"}),
        ]
        # ...and one contract's row changed.
        planted.append(DocumentWrite(CONTRACTS, keys[1], {**live[0][1][1], "status": "DRAFT"}))
        position = await store.load_checkpoint(PROJECTION)
        await store.commit_projection(PROJECTION, position, planted)
        # Small batches: every range is written in several, each sweeping its own span.
        await rebuild(store, workers=workers, batch_size=7)
        return live, [await store.query_documents(c) for c in LIVE.collections]


@pytest.mark.anyio
@pytest.mark.parametrize("workers", [0, 2])
async def test_a_rebuild_leaves_no_row_the_log_does_not_account_for(
    store_url: str, workers: int
) -> None:
    """The rebuild writes over the old rows rather than delete them all first: rows of
    contracts with no stream, wherever their keys fall, and stale id map and
    reconciliation rows are gone after it, and a changed row is set right."""
    live, rebuilt = await _rebuilt_over_stale_rows(store_url, workers)
    assert len(live[0]) > 50
    assert rebuilt == live


async def _listed_both_ways(url: str) -> list[tuple[str, list[str], list[str]]]:
    """For each filter value: the contracts the query API lists page by page (through
    the index), and those a scan of every row finds."""
    from daemon.http.queries import _indexed_rows

    async with await open_store(url) as store:
        await fill(store, 6_000)
        # Folded halfway: contracts at every stage, not only done ones.
        half = await store.last_position() // 2
        await catch_up(store, ContractProjection(store), until_position=half, batch_size=300)
        rows = await store.query_documents(CONTRACTS)
        compared = []
        for field in ("status", "sync", "_parked", "_sink_pending"):
            for value in sorted({doc[field] for _, doc in rows if doc.get(field)}):
                scanned = [k for k, d in rows if d.get(field) == value]
                listed: list[str] = []
                after = None
                while True:  # pages of 7, as a client following next_cursor would
                    page = await _indexed_rows(store, {field: value}, after, 7)
                    listed += [key for key, _ in page]
                    if len(page) < 7:
                        break
                    after = page[-1][0]
                compared.append((f"{field}={value}", listed, scanned))
        return compared


@pytest.mark.anyio
async def test_the_index_lists_what_a_scan_of_every_row_finds(store_url: str) -> None:
    """Filtered lists read the index the projection keeps, not every row: on a realistic
    log, they list exactly the rows a scan finds, in the same order, page after page."""
    compared = await _listed_both_ways(store_url)
    assert len(compared) >= 6  # several statuses and phases are present in the log
    for what, listed, scanned in compared:
        assert listed == scanned, what
