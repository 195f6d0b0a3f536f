"""`spotsync events` on a real SQLite file: filters, JSON lines, --follow across processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import orjson
import pytest
from anyio.streams.text import TextReceiveStream

from daemon.cli import main
from eventstore import NewEvent, open_store
from projections.events import EventType, contract_stream

WEBHOOK = {
    "activity": "CONTRACT_EXECUTED",
    "contract_id": 7,
    "contract_status": "EXECUTED",
    "external_id": "deal-1",
    "raw_body": '{"activity":"CONTRACT_EXECUTED"}',
    "raw_body_base64": None,
    "signature": "ab",
    "received_at": "2026-11-24T10:00:00.000000Z",
}


async def _append(database: str, external_id: str, *events: NewEvent) -> None:
    async with await open_store(database) as store:
        await store.append(contract_stream(external_id), list(events), expected_version=None)


def _requested(external_id: str) -> NewEvent:
    data = {"external_id": external_id, "request": {"contract_name": "MSA"}, "send": None}
    return NewEvent(EventType.CONTRACT_REQUESTED, data, "intake")


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path / "spotsync.db")
    monkeypatch.setenv("SPOTSYNC_DATABASE", path)
    webhook = NewEvent(EventType.WEBHOOK_RECEIVED, WEBHOOK, "webhook")
    anyio.run(_append, path, "deal-1", _requested("deal-1"), webhook)
    anyio.run(_append, path, "deal-2", _requested("deal-2"))
    anyio.run(_append, path, "deal-1", NewEvent(EventType.WEBHOOK_RECEIVED, WEBHOOK, "webhook"))
    return path


def test_the_timeline_of_one_contract_names_the_duplicate(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One contract's timeline has only its events, and the repeated delivery is named."""
    assert main(["events", "--external-id", "deal-1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert "#1 " in lines[0]
    assert "requested 'MSA'" in lines[0]
    assert lines[2].endswith("webhook CONTRACT_EXECUTED (duplicate of #2)")
    assert "deal-2" not in "".join(lines)


def test_json_lines_are_the_envelopes_filtered_by_type_and_position(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints one stored envelope a line; --type and --since narrow them."""
    assert main(["events", "--json", "--type", "WebhookReceived", "--since", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    envelopes = [orjson.loads(line) for line in lines]
    assert [(e["position"], e["type"]) for e in envelopes] == [(4, "WebhookReceived")]
    assert set(envelopes[0]) == {
        "position",
        "stream",
        "version",
        "type",
        "data",
        "metadata",
        "recorded_at",
    }


def test_an_unknown_type_is_one_clear_line(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt --type is refused, naming the types there are."""
    assert main(["events", "--type", "Webhook"]) == 2
    assert "unknown event type 'Webhook'" in capsys.readouterr().err


def test_an_unknown_external_id_is_one_clear_line(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped id fails with the id named, rather than print nothing and succeed."""
    assert main(["events", "--external-id", "deal-9"]) == 2
    captured = capsys.readouterr()
    assert "no contract has external id 'deal-9' in this store" in captured.err
    assert captured.out == ""


@pytest.mark.anyio
async def test_follow_prints_an_event_another_process_appends(database: str) -> None:
    """`events --follow` in its own process prints an event appended after it started."""
    command = [sys.executable, "-m", "daemon", "events", "--follow", "--external-id", "deal-1"]
    env = {**os.environ, "SPOTSYNC_DATABASE": database}
    async with await anyio.open_process(command, env=env) as process:
        assert process.stdout is not None
        seen = ""
        lines = TextReceiveStream(process.stdout)
        try:
            with anyio.fail_after(20):
                async for chunk in lines:
                    seen += chunk
                    if seen.count("\n") >= 3:
                        break
                await _append(database, "deal-1", _retry())
                async for chunk in lines:
                    seen += chunk
                    if "retry requested by operator: fixed" in seen:
                        break
        finally:
            process.terminate()
    assert "retry requested by operator: fixed" in seen


def _retry() -> NewEvent:
    return NewEvent(EventType.RETRY_REQUESTED, {"reason": "fixed"}, "operator")
