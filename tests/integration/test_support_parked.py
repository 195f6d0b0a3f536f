"""`spotsync parked` for a sink delivery given up, and its retry as an operator event."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from daemon.cli import main
from daemon.http import create_app
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
                NewEvent(EventType.SINK_GAVE_UP, GAVE_UP, "api"),
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
    assert (
        "fix: make SPOTSYNC_SINK_URL reachable and answering 2xx, then "
        "`spotsync parked retry deal-sink`"
    ) in out

    assert main(["parked", "retry", "deal-sink", "--reason", "sink is back"]) == 0
    history = anyio.run(_stream, database)
    retry = history[-1]
    assert (retry.type, retry.source, retry.data) == (
        EventType.RETRY_REQUESTED,
        "operator",
        {"reason": "sink is back"},
    )
    assert NotifySink("synced", "msg_1") in decide(fold(history[:-1]), retry)


@dataclass(frozen=True)
class _Settings:
    api_token: str | None = "query-token"
    hmac_key: str | None = None


@pytest.mark.anyio
async def test_a_contract_whose_sink_delivery_is_parked_is_listed_as_failed(
    tmp_path: Path,
) -> None:
    """`sync=failed` finds every contract a person must act on, the sink's too, with the
    error that says what to fix."""
    database = str(tmp_path / "spotsync.db")
    await _seed(database)
    async with await open_store(database) as store:
        transport = httpx.ASGITransport(app=create_app(store, _Settings()))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://daemon",
            headers={"Authorization": "Bearer query-token"},
        ) as http:
            listed = (await http.get("/v1/contracts", params={"sync": "failed"})).json()
            one = (await http.get("/v1/contracts/deal-sink")).json()
    assert [c["external_id"] for c in listed["contracts"]] == ["deal-sink"]
    assert one["sync"] == "failed"
    assert one["error"]["step"] == "sink synced"
    assert one["error"]["message"] == "sink answered 503"
    assert "spotsync parked retry deal-sink" in one["error"]["fix"]
