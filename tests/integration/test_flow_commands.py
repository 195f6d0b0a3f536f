"""The flow's commands on a real SQLite file: projections rebuild, parked (retry), reconcile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from daemon.cli import main
from eventstore import DocumentWrite, NewEvent, open_store
from projections.events import EventType, contract_stream
from projections.runner import CONTRACTS, PROJECTION, ContractProjection, catch_up

FAILED = {
    "step": "create",
    "status": 400,
    "code": None,
    "message": "contract_data.colour is not a field of template 1204",
    "fix": "correct these fields: contract_data.colour",
    "fields": ["contract_data.colour"],
}


async def _seed(database: str) -> None:
    async with await open_store(database) as store:
        for external_id in ("deal-ok", "deal-bad"):
            request: dict[str, Any] = {"external_id": external_id, "request": {}, "send": None}
            await store.append(
                contract_stream(external_id),
                [NewEvent(EventType.CONTRACT_REQUESTED, request, "intake")],
                expected_version=0,
            )
        await store.append(
            contract_stream("deal-bad"),
            [NewEvent(EventType.CONTRACT_FAILED, FAILED, "api")],
            expected_version=None,
        )
        await catch_up(store, ContractProjection(store))


async def _corrupt(database: str) -> None:
    async with await open_store(database) as store:
        doc = await store.get_document(CONTRACTS, "deal-ok")
        assert doc is not None
        doc["sync"] = "synced"
        position = await store.load_checkpoint(PROJECTION)
        await store.commit_projection(
            PROJECTION, position, [DocumentWrite(CONTRACTS, "deal-ok", doc)]
        )


async def _types(database: str, external_id: str) -> list[str]:
    async with await open_store(database) as store:
        return [e.type for e in await store.read_stream(contract_stream(external_id))]


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path / "spotsync.db")
    monkeypatch.setenv("SPOTSYNC_DATABASE", path)
    anyio.run(_seed, path)
    return path


def test_rebuild_verify_is_clean_then_reports_a_tampered_row(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`projections rebuild --verify` finds nothing on a fresh log, then names a tampered row."""
    assert main(["projections", "rebuild", "--verify"]) == 0
    assert "no differences" in capsys.readouterr().out
    anyio.run(_corrupt, database)
    assert main(["projections", "rebuild", "--verify"]) == 1
    assert "contracts/deal-ok: differs (sync)" in capsys.readouterr().out
    assert main(["projections", "rebuild", "--verify"]) == 0


def test_parked_lists_the_fix_and_retry_records_an_operator_event(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`parked` shows the failed contract and its fix; `parked retry` appends RetryRequested."""
    assert main(["parked"]) == 0
    out = capsys.readouterr().out
    assert "deal-bad  [contract: create]" in out
    assert "fix: correct these fields: contract_data.colour" in out
    assert "deal-ok" not in out
    assert main(["parked", "retry", "deal-bad"]) == 0
    assert anyio.run(_types, database, "deal-bad")[-1] == EventType.RETRY_REQUESTED
    assert main(["parked", "retry", "deal-ok"]) == 2
    assert "deal-ok is not parked" in capsys.readouterr().err


def test_reconcile_without_credentials_is_one_clear_line(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reconcile` without SpotDraft settings names the missing variables."""
    for name in ("SPOTDRAFT_BASE_URL", "SPOTDRAFT_CLIENT_ID", "SPOTDRAFT_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["reconcile", "--limit", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "spotsync reconcile: set SPOTDRAFT_BASE_URL, SPOTDRAFT_CLIENT_ID, "
        "SPOTDRAFT_CLIENT_SECRET to call SpotDraft"
    )


def test_parked_retry_all_retries_each_parked_contract_once(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once what stopped them is fixed, `parked retry --all` appends one RetryRequested per
    parked contract and leaves the others alone; a second run finds them retried."""
    assert main(["parked", "retry", "--all", "--reason", "template fixed"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("retry requested for deal-bad (position ")
    assert "deal-ok" not in out
    assert anyio.run(_types, database, "deal-bad")[-1] == EventType.RETRY_REQUESTED
    assert anyio.run(_types, database, "deal-ok")[-1] != EventType.RETRY_REQUESTED
    # The read model has not folded the retry (no daemon runs): the log says it is done.
    assert main(["parked", "retry", "--all"]) == 0
    assert "not retried: deal-bad is not parked" in capsys.readouterr().out
    assert main(["parked", "retry"]) == 2
    assert "give one EXTERNAL_ID or --all" in capsys.readouterr().err
