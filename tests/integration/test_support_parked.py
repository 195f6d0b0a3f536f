"""`spotsync parked` for a sink delivery given up, and its retry as an operator event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from daemon.cli import main
from eventstore import NewEvent, RecordedEvent, open_store
from handlers.decisions import NotifySink, decide
from projections.contract import fold
from projections.events import EventType, contract_stream
from projections.runner import ContractProjection, catch_up

GAVE_UP = {
    "milestone": "synced",
    "webhook_id": "msg_1",
    "attempts": 5,
    "error": "sink answered 503",
}


async def _seed(database: str) -> None:
    async with await open_store(database) as store:
        request: dict[str, Any] = {"external_id": "deal-sink", "request": {}, "send": None}
        await store.append(
            contract_stream("deal-sink"),
            [
                NewEvent(EventType.CONTRACT_REQUESTED, request, "intake"),
                NewEvent(EventType.SINK_GAVE_UP, GAVE_UP, "sink"),
            ],
            expected_version=0,
        )
        await catch_up(store, ContractProjection(store))


async def _stream(database: str) -> list[RecordedEvent]:
    async with await open_store(database) as store:
        return await store.read_stream(contract_stream("deal-sink"))


def test_a_sink_delivery_given_up_is_listed_and_retried_by_an_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A parked delivery shows its error and fix; its retry is an operator event that resends."""
    database = str(tmp_path / "spotsync.db")
    monkeypatch.setenv("SPOTSYNC_DATABASE", database)
    anyio.run(_seed, database)

    assert main(["parked"]) == 0
    out = capsys.readouterr().out
    assert "deal-sink  [sink: sink synced]  sink answered 503" in out
    assert "fix: make SPOTSYNC_SINK_URL reachable and answering 2xx, then retry" in out

    assert main(["parked", "retry", "deal-sink", "--reason", "sink is back"]) == 0
    history = anyio.run(_stream, database)
    retry = history[-1]
    assert (retry.type, retry.source, retry.data) == (
        EventType.RETRY_REQUESTED,
        "operator",
        {"reason": "sink is back"},
    )
    assert NotifySink("synced", "msg_1") in decide(fold(history[:-1]), retry)
