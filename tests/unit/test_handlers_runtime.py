"""The handlers' runtime: stopping within a grace period, and log lines that name the event."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from eventstore import MemoryEventStore
from handlers.spotdraft import Result
from handlers.worker import CHECKPOINT, run_handlers
from tests.unit.test_handlers_support import FakeSpotDraft, request, state_of, webhook

pytestmark = pytest.mark.anyio


class SlowSpotDraft(FakeSpotDraft):
    """Create takes until the test lets it finish."""

    def __init__(self) -> None:
        super().__init__()
        self.creating = anyio.Event()
        self.release = anyio.Event()

    async def create_contract(self, payload: dict[str, Any]) -> Result[dict[str, Any]]:
        self.creating.set()
        await self.release.wait()
        return await super().create_contract(payload)


async def test_a_create_in_flight_finishes_and_is_recorded(tmp_path: Path) -> None:
    """Stop during a create: the call completes, its outcome is in the log, the run returns."""
    store, client, stop = MemoryEventStore(), SlowSpotDraft(), anyio.Event()
    run = functools.partial(
        run_handlers, store, client, documents_dir=tmp_path, stop=stop, grace=10.0
    )
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(run)
            await request(store)
            await client.creating.wait()
            stop.set()
            client.release.set()
    state = await state_of(store)
    assert state.spotdraft_id == "T-1"
    # The request (position 1) is done: a restart does not create again.
    assert await store.load_checkpoint(CHECKPOINT) >= 1


async def test_work_past_the_grace_period_resumes_on_the_next_start(tmp_path: Path) -> None:
    """A create that outlasts the grace period is cut off; the next run completes it, once."""
    store, client, stop = MemoryEventStore(), SlowSpotDraft(), anyio.Event()
    run = functools.partial(
        run_handlers, store, client, documents_dir=tmp_path, stop=stop, grace=0.1
    )
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(run)
            await request(store)
            await client.creating.wait()
            stop.set()
    assert await store.load_checkpoint(CHECKPOINT) == 0
    assert (await state_of(store)).spotdraft_id is None

    client.release.set()
    again = functools.partial(run_handlers, store, client, documents_dir=tmp_path, intent_lease=0)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(again)
            while (await state_of(store)).spotdraft_id is None:
                await store.wait_for_append(await store.last_position())
            tg.cancel_scope.cancel()
    assert (await state_of(store)).spotdraft_id == "T-1"
    assert len(client.contracts) == 1


async def test_handler_log_lines_name_the_contract_and_event(tmp_path: Path) -> None:
    """While an event is handled, log lines carry its external_id, stream and position."""
    store, client = MemoryEventStore(), FakeSpotDraft()
    with capture_logs(processors=[merge_contextvars]) as lines:
        run = functools.partial(run_handlers, store, client, documents_dir=tmp_path)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(run)
                await request(store)
                while (await state_of(store)).spotdraft_id is None:
                    await store.wait_for_append(await store.last_position())
                tg.cancel_scope.cancel()
    commands = [line for line in lines if line["event"] == "command"]
    assert commands
    assert commands[0]["external_id"] == "deal-1"
    assert commands[0]["stream"] == "contract-deal-1"
    assert commands[0]["position"] == 1


class GatedSpotDraft(FakeSpotDraft):
    """Creates for the new contracts hang until the gate opens; everything else answers."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()

    async def create_contract(self, payload: dict[str, Any]) -> Result[dict[str, Any]]:
        if payload["external_metadata"]["id"].startswith("new-"):
            await self.gate.wait()
        return await super().create_contract(payload)


async def test_a_burst_of_new_contracts_does_not_hold_up_one_in_progress(
    tmp_path: Path,
) -> None:
    """Contracts in progress come first: while new creates wait, an executed one syncs."""
    store, client = MemoryEventStore(), GatedSpotDraft()
    run = functools.partial(run_handlers, store, client, documents_dir=tmp_path, concurrency=4)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(run)
            await request(store, send={})
            while (await state_of(store)).sync != "sent":
                await store.wait_for_append(await store.last_position())
            for n in range(8):
                await request(store, f"new-{n}")
            await webhook(store, "CONTRACT_EXECUTED")
            while (await state_of(store)).sync != "synced":
                await store.wait_for_append(await store.last_position())
            assert client.calls["create_contract"] == 1  # the new ones are still waiting
            client.gate.set()
            tg.cancel_scope.cancel()
