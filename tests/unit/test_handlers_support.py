"""A fake SpotDraft client and a small harness for handler tests (holds no tests)."""

from __future__ import annotations

import copy
import functools
import hashlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from eventstore import EventStore, NewEvent, RecordedEvent
from handlers.sink import Sink
from handlers.spotdraft import DownloadedFile, Exchange, PermanentError, Result, TransientError
from handlers.worker import run_handlers
from projections.contract import ContractState, fold
from projections.events import EventType, contract_stream
from tests.unit.test_projections_support import REQUEST


def _result(operation: str, value: Any, status: int = 200) -> Result[Any]:
    exchange = Exchange(operation, "GET", f"/{operation}", None, status, value, 1.0, 1)
    return Result(value, (exchange,))


class FakeSpotDraft:
    """Enough of SpotDraft for the handlers: contracts by id, scripted failures, call counts."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.contracts: dict[str, dict[str, Any]] = {}
        self.fail: dict[str, list[Exception]] = {}

    def _enter(self, operation: str) -> None:
        self.calls[operation] += 1
        queued = self.fail.get(operation)
        if queued:
            raise queued.pop(0)

    async def create_contract(self, payload: dict[str, Any]) -> Result[dict[str, Any]]:
        number = len(self.contracts) + 1
        contract: dict[str, Any] = {
            "id": f"T-{number}",
            "contract_id": number,
            "contract_link": f"https://sd/{number}",
            "contract_status": "DRAFT",
            "external_metadata": payload.get("external_metadata"),
        }
        self.contracts[contract["id"]] = contract
        self._enter("create_contract")  # a failure after the commit: the outcome is unknown
        return _result("create_contract", copy.deepcopy(contract), 201)

    async def send_to_counterparties(
        self, composite_id: str, body: dict[str, Any] | None = None
    ) -> Result[dict[str, Any]]:
        self._enter("send_to_counterparties")
        self.contracts[composite_id]["contract_status"] = "REDLINING"
        return _result("send_to_counterparties", {})

    async def get_status(self, composite_id: str) -> Result[dict[str, Any]]:
        self._enter("get_status")
        status = self.contracts[composite_id]["contract_status"]
        return _result("get_status", {"contract_status": status, "contract_name": "x"})

    async def get_key_pointers(self, composite_id: str) -> Result[list[dict[str, Any]]]:
        self._enter("get_key_pointers")
        pointers = [{"field_name": "contract_value", "value": 12000, "label": "Value"}]
        return _result("get_key_pointers", pointers)

    async def get_download_link(
        self, composite_id: str, format: str = "PDF"
    ) -> Result[dict[str, Any]]:
        self._enter("get_download_link")
        link = {"url": f"https://files/{composite_id}", "file_name": "c.pdf"}
        return _result("get_download_link", link)

    async def find_by_external_id(self, external_id: str) -> Result[list[dict[str, Any]]]:
        self._enter("find_by_external_id")
        found = [
            {"id": c["contract_id"], **{k: v for k, v in c.items() if k != "id"}}
            for c in self.contracts.values()
            if (c.get("external_metadata") or {}).get("id") == external_id
        ]
        return _result("find_by_external_id", found)

    async def download(self, url: str, dest_dir: Path, file_name: str) -> Result[DownloadedFile]:
        self._enter("download")
        content = f"%PDF {url}".encode()
        await anyio.Path(dest_dir).mkdir(parents=True, exist_ok=True)
        await anyio.Path(dest_dir / file_name).write_bytes(content)
        stored = DownloadedFile(
            dest_dir / file_name, hashlib.sha256(content).hexdigest(), len(content)
        )
        return _result("download", stored)


def permanent(status: int, body: Any) -> PermanentError:
    return PermanentError(f"refused ({status}). To fix: do better", status=status, body=body)


def transient() -> TransientError:
    return TransientError("SpotDraft answered 503 on every attempt", status=503)


async def request(store: EventStore, external_id: str = "deal-1", send: Any = None) -> None:
    meta = {**REQUEST["external_metadata"], "id": external_id}
    data = {
        "external_id": external_id,
        "request": {**REQUEST, "external_metadata": meta},
        "send": send,
    }
    await store.append(
        contract_stream(external_id),
        [NewEvent(EventType.CONTRACT_REQUESTED, data, "intake")],
        expected_version=0,
    )


async def append(
    store: EventStore,
    type_: str,
    data: dict[str, Any],
    external_id: str = "deal-1",
    source: Any = "webhook",
) -> RecordedEvent:
    result = await store.append(
        contract_stream(external_id), [NewEvent(type_, data, source)], expected_version=None
    )
    return result.events[-1]


async def webhook(store: EventStore, activity: str, external_id: str = "deal-1") -> RecordedEvent:
    data = {"activity": activity, "contract_id": 1, "external_id": external_id}
    return await append(store, EventType.WEBHOOK_RECEIVED, data, external_id)


async def state_of(store: EventStore, external_id: str = "deal-1") -> ContractState:
    state = fold(await store.read_stream(contract_stream(external_id)))
    assert state is not None
    return state


async def settle(
    store: EventStore,
    external_id: str = "deal-1",
    *,
    checkpoint: str = "handlers",
) -> ContractState:
    """The contract's state once the handlers have processed the whole log and the sink's
    workers have delivered (or given up on) what it queued for the sink."""
    while True:
        position = await store.last_position()
        if await store.load_checkpoint(checkpoint) >= position:
            state = await state_of(store, external_id)
            if not state.sink_queue:
                return state
        with anyio.move_on_after(0.05):
            await store.wait_for_append(position)


@asynccontextmanager
async def handlers(
    store: EventStore, client: FakeSpotDraft, documents: Path, sink: Sink | None = None
) -> AsyncIterator[TaskGroup]:
    async with anyio.create_task_group() as tg:
        await tg.start(
            functools.partial(run_handlers, store, client, documents_dir=documents, sink=sink)
        )
        yield tg
        tg.cancel_scope.cancel()
