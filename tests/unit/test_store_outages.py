"""A store that goes away for a while (a database restart): the daemon's long-running
readers wait it out and go on from where they were, rather than stop the daemon."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from eventstore import (
    AppendResult,
    DocumentWrite,
    MemoryEventStore,
    NewEvent,
    PersistenceError,
    RecordedEvent,
    outages,
)
from eventstore.outages import Backoff, store_outage
from handlers.reconciler import run_reconciler
from handlers.worker import run_handlers
from projections.runner import CONTRACTS, run_projections, wait_for_projection
from tests.unit.test_handlers_support import FakeSpotDraft, request, settle

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outages, "FIRST_DELAY", 0.01)


class _Away(MemoryEventStore):
    """A store whose reads and writes fail while ``away`` is above 0 (each failure counts
    it down), as a database that is restarting; ``appends_away`` fails appends alone."""

    away = 0
    appends_away = 0

    def _gone(self) -> None:
        if self.away > 0:
            self.away -= 1
            raise PersistenceError("cannot reach PostgreSQL: connection refused")

    def read_all(
        self, *, from_position: int = 1, until_position: int | None = None, page_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        self._gone()
        return super().read_all(
            from_position=from_position, until_position=until_position, page_size=page_size
        )

    async def commit_projection(
        self, name: str, position: int, writes: Sequence[DocumentWrite], *, blocking: bool = False
    ) -> None:
        self._gone()
        await super().commit_projection(name, position, writes, blocking=blocking)

    async def save_checkpoint(self, name: str, position: int) -> None:
        self._gone()
        await super().save_checkpoint(name, position)

    async def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]:
        self._gone()
        return await super().read_stream(stream, from_version=from_version)

    async def append(
        self, stream: str, events: Sequence[NewEvent], *, expected_version: int | None
    ) -> AppendResult:
        self._gone()
        if self.appends_away > 0:
            self.appends_away -= 1
            raise PersistenceError("cannot reach PostgreSQL: connection refused")
        return await super().append(stream, events, expected_version=expected_version)


def _event(n: int) -> NewEvent:
    return NewEvent("Happened", {"n": n}, "api")


async def test_a_subscription_waits_out_the_store_and_misses_nothing() -> None:
    """Told of each failed try, the subscription reads on from where it was: every event
    once, in order. Without ``on_outage`` the error ends it, as before."""
    store = _Away()
    await store.append("s", [_event(1), _event(2)], expected_version=0)
    told: list[float] = []
    seen, positions = anyio.create_memory_object_stream[int](10)
    async with seen, positions, anyio.create_task_group() as tg:

        async def follow() -> None:
            outage = lambda error, delay: told.append(delay)  # noqa: E731
            async for event in store.subscribe(idle_timeout=0.01, on_outage=outage):
                await seen.send(event.position)

        store.away = 3  # from its first read on
        tg.start_soon(follow)
        with anyio.fail_after(10):
            assert [await positions.receive(), await positions.receive()] == [1, 2]
            await store.append("s", [_event(3)], expected_version=2)
            assert await positions.receive() == 3
        tg.cancel_scope.cancel()
    assert told == [0.01, 0.02, 0.04]  # the waits double while the store stays away

    store.away = 1
    with pytest.raises(PersistenceError):
        async for _ in store.subscribe():
            pass


async def test_the_read_models_wait_out_the_store_and_catch_up() -> None:
    """Commits that fail once the runner has started are tried again from the last
    checkpoint: the rows end as if nothing had happened."""
    store = _Away()
    await request(store, "deal-1")
    told: list[float] = []
    async with anyio.create_task_group() as tg:
        run = functools.partial(run_projections, store, on_outage=lambda e, d: told.append(d))
        await tg.start(run)
        await request(store, "deal-2")
        store.away = 2  # as the runner comes to read it
        with anyio.fail_after(10):
            await wait_for_projection(store, await store.last_position())
        tg.cancel_scope.cancel()
    assert told == [0.01, 0.02]
    assert [key for key, _ in await store.query_documents(CONTRACTS)] == ["deal-1", "deal-2"]


async def test_the_handlers_wait_out_the_store(tmp_path: Path) -> None:
    """The handlers wait for the store too (their subscription, their checkpoint, and
    each event being handled, however many tries it takes): a contract whose handling
    meets the store away is created once it is back, not passed over."""
    store = _Away()
    client = FakeSpotDraft()
    told: list[float] = []
    async with anyio.create_task_group() as tg:
        run = functools.partial(
            run_handlers,
            store,
            client,
            documents_dir=tmp_path,
            on_outage=lambda e, d: told.append(d),
        )
        await tg.start(run)
        await request(store, "deal-1")
        store.appends_away = 5  # more tries than a handler gives an event failing otherwise
        with anyio.fail_after(10):
            state = await settle(store)
        tg.cancel_scope.cancel()
    assert state.created
    assert told  # it did have to wait


def test_only_store_failures_count_as_an_outage() -> None:
    away = PersistenceError("cannot reach PostgreSQL")
    assert store_outage(away) is away
    assert store_outage(ExceptionGroup("stages", [away, PersistenceError("again")])) is away
    assert store_outage(ExceptionGroup("stages", [away, ValueError("a bug")])) is None
    assert store_outage(ValueError("a bug")) is None
    backoff = Backoff(first=1, cap=5)
    assert [backoff.next() for _ in range(5)] == [1, 2, 4, 5, 5]
    backoff.reset()
    assert backoff.next() == 1


class _QueriesAway(_Away):
    """Its read-model queries fail while ``away`` is above 0; ``passes`` is set once the
    reconciler has asked often enough for several passes."""

    def __init__(self) -> None:
        super().__init__()
        self.queries = 0
        self.passes = anyio.Event()

    async def query_documents(self, collection: str, **filters: Any) -> Any:
        self.queries += 1
        if self.queries >= 6:
            self.passes.set()
        self._gone()
        return await super().query_documents(collection, **filters)


async def test_the_reconciler_tells_of_a_pass_the_store_could_not_serve() -> None:
    """A pass in an outage is an outage like any other (counted, one log line), not a
    failure logged with its traceback; the next passes go on."""
    store = _QueriesAway()
    store.away = 2
    told: list[tuple[PersistenceError, float]] = []
    with capture_logs() as logs, anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            run = functools.partial(
                run_reconciler,
                store,
                FakeSpotDraft(),
                interval=0.01,
                stale_after=900,
                batch=5,
                on_outage=lambda exc, delay: told.append((exc, delay)),
            )
            tg.start_soon(run)
            await store.passes.wait()
            tg.cancel_scope.cancel()
    assert [delay for _, delay in told] == [0.01, 0.01]
    assert not [line for line in logs if line["event"] == "reconciliation pass failed"]
