"""The read models: live runner, id map, reconcile queue and rebuild (memory store; SQLite
where a save must really wait for the writer)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from eventstore import (
    DocumentWrite,
    EventStore,
    MemoryEventStore,
    NewEvent,
    PersistenceError,
    open_store,
)
from eventstore.envelope import format_timestamp
from projections.events import EventType, contract_stream
from projections.rebuild import rebuild, rebuild_if_outdated
from projections.runner import (
    CONTRACT_IDS,
    CONTRACTS,
    PROJECTION,
    REBUILDING,
    RECONCILE_DUE,
    SHAPE,
    SHAPES,
    ContractProjection,
    catch_up,
    contracts_where,
    run_projections,
    shape_write,
    stored_shape,
    updated_since,
    wait_for_projection,
)
from tests.unit.test_projections_support import REQUEST

pytestmark = pytest.mark.anyio


async def _contract(store: EventStore, external_id: str, contract_id: int) -> int:
    stream = contract_stream(external_id)
    await store.append(
        stream,
        [
            NewEvent(
                EventType.CONTRACT_REQUESTED,
                {"external_id": external_id, "request": REQUEST, "send": None},
                "intake",
            )
        ],
        expected_version=0,
    )
    created = {
        "id": f"T-{contract_id}",
        "contract_id": contract_id,
        "contract_link": None,
        "contract_status": "DRAFT",
        "found_by_lookup": False,
    }
    result = await store.append(
        stream, [NewEvent(EventType.CONTRACT_CREATED, created, "api")], expected_version=None
    )
    return result.position


async def test_live_runner_serves_contracts_and_the_id_map() -> None:
    """Appended events show up in contracts and contract_ids once the projection catches up."""
    store = MemoryEventStore()
    await _contract(store, "deal-1", 11)
    async with anyio.create_task_group() as tg:
        await tg.start(run_projections, store)
        position = await _contract(store, "deal-2", 12)
        with anyio.fail_after(5):
            await wait_for_projection(store, position)
        tg.cancel_scope.cancel()
    doc = await store.get_document(CONTRACTS, "deal-2")
    assert doc is not None
    assert (doc["sync"], doc["status"], doc["last_position"]) == ("created", "DRAFT", position)
    assert await store.get_document(CONTRACT_IDS, "11") == {"external_id": "deal-1"}
    due = await store.query_documents(RECONCILE_DUE)
    assert [row["external_id"] for _, row in due] == ["deal-1", "deal-2"]


async def test_final_contracts_leave_the_reconcile_queue() -> None:
    """A voided contract is no longer a reconciliation candidate."""
    store = MemoryEventStore()
    await _contract(store, "deal-1", 11)
    webhook = {"activity": "CONTRACT_VOIDED", "contract_id": 11, "external_id": "deal-1"}
    position = (
        await store.append(
            contract_stream("deal-1"),
            [NewEvent(EventType.WEBHOOK_RECEIVED, webhook, "webhook")],
            expected_version=None,
        )
    ).position
    async with anyio.create_task_group() as tg:
        await tg.start(run_projections, store)
        with anyio.fail_after(5):
            await wait_for_projection(store, position)
        tg.cancel_scope.cancel()
    assert await store.query_documents(RECONCILE_DUE) == []


async def test_rebuild_equals_live_and_verify_reports_a_corrupted_row() -> None:
    """A rebuilt projection equals the live one; a tampered row is reported and repaired."""
    store = MemoryEventStore()
    for n in range(30):
        await _contract(store, f"deal-{n:02d}", 100 + n)
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(run_projections, store, batch_size=7))
        tg.cancel_scope.cancel()
    live = await store.query_documents(CONTRACTS)

    clean = await rebuild(store, verify=True, batch_size=4)
    assert clean.difference_count == 0
    assert await store.query_documents(CONTRACTS) == live

    bad = dict(live[3][1], status="EXECUTED")
    await store.commit_projection(
        PROJECTION, clean.position, [DocumentWrite(CONTRACTS, "deal-03", bad)]
    )
    report = await rebuild(store, verify=True)
    assert [d.describe() for d in report.differences] == ["contracts/deal-03: differs (status)"]
    assert await store.query_documents(CONTRACTS) == live
    assert await store.load_checkpoint(PROJECTION) == await store.last_position()


async def test_rows_of_another_shape_of_the_fold_are_folded_again_at_start() -> None:
    """A new store is stamped with today's shape of the rows and left alone; rows that an
    earlier spotsync wrote (no shape recorded, a field it did not know, a fold that
    differed) are refolded from the log by ``rebuild_if_outdated``, which ``run`` calls
    before it serves."""
    store = MemoryEventStore()
    assert await stored_shape(store) is None
    for n in range(3):
        await _contract(store, f"deal-{n}", 10 + n)
    async with anyio.create_task_group() as tg:
        await tg.start(run_projections, store)
        tg.cancel_scope.cancel()
    assert await stored_shape(store) == SHAPE
    assert await rebuild_if_outdated(store) is None
    today = await store.query_documents(CONTRACTS)

    earlier = {k: v for k, v in today[1][1].items() if k != "_quiet_for"} | {"sync": "pending"}
    position = await store.load_checkpoint(PROJECTION)
    await store.commit_projection(
        PROJECTION,
        position,
        [DocumentWrite(SHAPES, PROJECTION, None), DocumentWrite(CONTRACTS, "deal-1", earlier)],
    )
    assert await stored_shape(store) == 1
    report = await rebuild_if_outdated(store)
    assert report is not None
    assert report.position == position
    assert await store.query_documents(CONTRACTS) == today
    assert await stored_shape(store) == SHAPE
    assert await store.load_checkpoint(PROJECTION) == position


class _KilledMidRebuild(MemoryEventStore):
    """A store whose process dies (here: raises) as a rebuild writes its first rows."""

    armed = False

    async def commit_projection(
        self, name: str, position: int, writes: Sequence[DocumentWrite], *, blocking: bool = False
    ) -> None:
        if self.armed and position == 0 and writes:
            raise RuntimeError("killed")
        await super().commit_projection(name, position, writes, blocking=blocking)


async def test_a_rebuild_cut_short_is_done_again_before_the_daemon_serves() -> None:
    """A ``projections rebuild`` killed half-way has emptied the id map, left old and new
    contract rows mixed, and the checkpoint at 0. The store says a rebuild was under way,
    so ``run`` rebuilds before it serves, rather than answer queries from a read model
    refolding at live speed."""
    store = _KilledMidRebuild()
    for n in range(3):
        await _contract(store, f"deal-{n}", 10 + n)
    await catch_up(store, ContractProjection(store))
    position = await store.load_checkpoint(PROJECTION)
    before = await store.query_documents(CONTRACTS)

    store.armed = True
    with pytest.raises(RuntimeError, match="killed"):
        await rebuild(store, workers=0)
    store.armed = False
    assert await store.query_documents(CONTRACT_IDS) == []
    assert await store.load_checkpoint(PROJECTION) == 0
    assert await stored_shape(store) == REBUILDING

    started: list[int] = []
    report = await rebuild_if_outdated(store, on_start=started.append)
    assert report is not None
    assert started == [REBUILDING]
    assert await store.query_documents(CONTRACTS) == before
    assert await store.load_checkpoint(PROJECTION) == position
    assert await stored_shape(store) == SHAPE


async def test_a_contract_created_twice_maps_its_last_id_live_and_rebuilt() -> None:
    """Should a log hold two creates for one contract, the id map follows the contract's
    row, the runner's as the rebuild's: the id the row shows maps back, the other does not."""
    store = MemoryEventStore()
    await _contract(store, "deal-1", 11)
    created = {"id": "T-12", "contract_id": 12, "contract_status": "DRAFT"}
    await store.append(
        contract_stream("deal-1"),
        [NewEvent(EventType.CONTRACT_CREATED, created, "api")],
        expected_version=None,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(run_projections, store, batch_size=1))
        tg.cancel_scope.cancel()
    doc = await store.get_document(CONTRACTS, "deal-1")
    assert doc is not None
    assert doc["spotdraft"]["contract_id"] == 12
    live_ids = await store.query_documents(CONTRACT_IDS)
    assert live_ids == [("12", {"external_id": "deal-1"})]

    report = await rebuild(store, verify=True)
    assert report.difference_count == 0
    assert await store.query_documents(CONTRACT_IDS) == live_ids


class _FailingCommits(MemoryEventStore):
    async def commit_projection(
        self, name: str, position: int, writes: Sequence[DocumentWrite], *, blocking: bool = False
    ) -> None:
        raise PersistenceError("disk full")


@pytest.mark.anyio
async def test_a_failed_save_surfaces_as_the_stores_error_and_keeps_the_checkpoint() -> None:
    """A store that cannot commit fails catch_up with its own error; the checkpoint stays."""
    store = _FailingCommits()
    for n in range(5):
        await store.append(
            f"contract-d-{n}", [NewEvent("ContractRequested", {}, "intake")], expected_version=0
        )
    with pytest.raises(PersistenceError, match="disk full"):
        await catch_up(store, ContractProjection(store), batch_size=2)
    assert await store.load_checkpoint("contracts") == 0


async def test_a_cache_smaller_than_a_batch_never_reads_back_an_unsaved_state(
    tmp_path: Path,
) -> None:
    # On SQLite a save really waits for the writer, so the next batch is folded meanwhile:
    # its states must stay cached until they are saved, whatever the cache's size.
    async with await open_store(str(tmp_path / "log.db")) as store:
        contracts = [f"deal-{n}" for n in range(8)]
        for external_id in contracts:
            await _contract(store, external_id, 100 + len(external_id))
        for _ in range(12):
            for external_id in contracts:
                intended = NewEvent(EventType.CONTRACT_CREATE_INTENDED, {}, "api")
                await store.append(contract_stream(external_id), [intended], expected_version=None)
        await catch_up(store, ContractProjection(store, cache_size=1), batch_size=len(contracts))
        docs = dict(await store.query_documents(CONTRACTS))
        assert {key: doc["_intents"] for key, doc in docs.items()} == dict.fromkeys(contracts, 12)
        report = await rebuild(store, verify=True)
        assert report.difference_count == 0, [d.describe() for d in report.differences]


async def test_rows_an_older_spotsync_wrote_are_still_found_before_their_rebuild() -> None:
    """Read models of shape 5 have no index yet (``run`` rebuilds them before it serves):
    ``spotsync parked`` run first still finds the parked contract, by reading every row."""
    store = MemoryEventStore()
    row = {"external_id": "deal-1", "_parked": "failed"}
    await store.commit_projection(
        PROJECTION, 3, [DocumentWrite(CONTRACTS, "deal-1", row), shape_write(shape=5)]
    )
    assert await contracts_where(store, "_parked", "failed") == [("deal-1", row)]
    await store.commit_projection(PROJECTION, 3, [shape_write()])
    assert await contracts_where(store, "_parked", "failed") == []  # the index says none


async def test_the_index_of_update_times_lists_each_contract_once_at_its_last_change() -> None:
    """``updated_since`` (the list API's ``updated_since`` filter) finds the contracts
    changed from a moment on, least recent first, each at its latest change only."""
    store = MemoryEventStore()
    t1, t2, t3 = (datetime(2026, 11, 24, 10, minute, tzinfo=UTC) for minute in (0, 1, 2))

    async def event(external_id: str, kind: str, data: dict[str, object], at: datetime) -> None:
        new = NewEvent(kind, {"external_id": external_id, **data}, "intake", recorded_at=at)
        await store.append(contract_stream(external_id), [new], expected_version=None)

    await event("deal-1", EventType.CONTRACT_REQUESTED, {"request": REQUEST, "send": None}, t1)
    await event("deal-2", EventType.CONTRACT_REQUESTED, {"request": REQUEST, "send": None}, t2)
    await catch_up(store, ContractProjection(store))
    await event("deal-1", EventType.CONTRACT_CREATE_INTENDED, {}, t3)
    await catch_up(store, ContractProjection(store))

    def since(moment: datetime) -> Awaitable[list[str]]:
        return updated_since(store, format_timestamp(moment))

    assert await since(t1) == ["deal-2", "deal-1"]  # deal-1's change at t1 is not kept
    assert await since(t3) == ["deal-1"]
    assert await since(t3 + timedelta(microseconds=1)) == []
    assert await updated_since(store, format_timestamp(t1), limit=1) == ["deal-2"]
    report = await rebuild(store, verify=True)
    assert report.difference_count == 0, [d.describe() for d in report.differences]
    assert await since(t1) == ["deal-2", "deal-1"]
