"""The event store contract, written once: each backend's test module subclasses it.

A subclass provides the fixture ``open_store``: an async callable that opens a store on
the backend's test database (the same database each time it is called within a test;
the memory fake hands out its one instance).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import anyio
import orjson
import pytest

from daemon.config import Settings
from daemon.runtime import Daemon, running_daemon
from daemon.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_HMAC_KEY
from eventstore import (
    AppendResult,
    ConcurrencyError,
    DocumentWrite,
    EventIdConflictError,
    EventStore,
    EventStoreError,
    NewEvent,
    RecordedEvent,
    StoreBusyError,
)
from eventstore.envelope import format_timestamp

StoreFactory = Callable[[], Awaitable[EventStore]]


def event(n: int | str = 0, **extra: Any) -> NewEvent:
    return NewEvent(type="TestHappened", data={"n": n, **extra}, source="api")


class EventStoreContract:
    """Behaviour every backend shares. ``durable`` is False for the memory fake."""

    durable: ClassVar[bool] = True
    pytestmark = pytest.mark.anyio

    @pytest.fixture
    async def store(self, open_store: StoreFactory) -> AsyncIterator[EventStore]:
        store = await open_store()
        yield store
        await store.close()

    # -- append and read ---------------------------------------------------------------

    async def test_appended_events_read_back_in_order(self, store: EventStore) -> None:
        """A stream reads back exactly what was appended, with versions and positions."""
        result = await store.append("contract-a", [event(1), event(2)], expected_version=0)
        assert [e.version for e in result.events] == [1, 2]
        assert [e.position for e in result.events] == [1, 2]
        assert not result.duplicate
        read = await store.read_stream("contract-a")
        assert [(e.position, e.version, e.type, e.data) for e in read] == [
            (1, 1, "TestHappened", {"n": 1}),
            (2, 2, "TestHappened", {"n": 2}),
        ]
        assert read[0].event_id == result.events[0].event_id
        assert read[0].source == "api"
        assert read[0].recorded_at.tzinfo is not None
        assert await store.stream_version("contract-a") == 2
        assert await store.stream_version("contract-none") == 0
        assert await store.last_position() == 2

    async def test_read_stream_from_a_version(self, store: EventStore) -> None:
        """read_stream(from_version=N) starts at version N of that stream only."""
        await store.append("a", [event(1), event(2), event(3)], expected_version=0)
        await store.append("b", [event(9)], expected_version=0)
        assert [e.data["n"] for e in await store.read_stream("a", from_version=2)] == [2, 3]
        assert await store.read_stream("nothing") == []

    async def test_payloads_round_trip_exactly(self, store: EventStore) -> None:
        """Nested, unicode and numeric payloads come back equal, with causation ids kept."""
        data = {"text": "Ünïcode ✓", "nested": {"list": [1, 2.5, None, True]}, "big": 2**53}
        new = NewEvent("X", data, "webhook", causation_id="c-1", correlation_id="r-1")
        await store.append("s", [new], expected_version=None)
        (read,) = await store.read_stream("s")
        assert read.data == data
        assert (read.causation_id, read.correlation_id, read.event_id) == (
            "c-1", "r-1", new.event_id,
        )

    async def test_an_imported_event_keeps_the_time_it_was_recorded(
        self, store: EventStore
    ) -> None:
        """An event that carries its recorded_at (import) keeps it, read back and in the
        append's answer; the others of the same append are recorded now."""
        then = datetime(2026, 4, 20, 9, 30, 1, 123456, tzinfo=UTC)
        imported = NewEvent("X", {"n": 1}, "webhook", recorded_at=then)
        before = datetime.now(UTC)
        result = await store.append("contract-a", [imported, event(2)], expected_version=0)
        read = await store.read_stream("contract-a")
        assert result.events[0].recorded_at == then
        assert read[0].recorded_at == then
        assert read[1].recorded_at >= before
        assert result.events[1].recorded_at == read[1].recorded_at
        assert [e.recorded_at async for e in store.read_all()] == [e.recorded_at for e in read]

    async def test_wrong_expected_version_is_refused(self, store: EventStore) -> None:
        """An append that expects a stale version raises ConcurrencyError and writes nothing."""
        await store.append("s", [event(1)], expected_version=0)
        with pytest.raises(ConcurrencyError) as info:
            await store.append("s", [event(2)], expected_version=0)
        assert (info.value.expected, info.value.actual) == (0, 1)
        with pytest.raises(ConcurrencyError):
            await store.append("s", [event(2)], expected_version=5)
        assert [e.data["n"] for e in await store.read_stream("s")] == [1]
        assert await store.last_position() == 1
        result = await store.append("s", [event(2)], expected_version=1)
        assert (result.position, result.version) == (2, 2)

    async def test_racing_appends_for_one_version_let_exactly_one_win(
        self, store: EventStore
    ) -> None:
        """Ten concurrent appends expecting the same version: one succeeds, nine conflict."""
        for version in range(4):  # later rounds meet a writer already batching
            outcomes: list[str] = []

            async def attempt(
                n: int, version: int = version, outcomes: list[str] = outcomes
            ) -> None:
                try:
                    await store.append("race", [event(n)], expected_version=version)
                    outcomes.append("won")
                except ConcurrencyError:
                    outcomes.append("conflict")

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for n in range(10):
                        tg.start_soon(attempt, n)
            assert sorted(outcomes) == ["conflict"] * 9 + ["won"]
        assert [e.version for e in await store.read_stream("race")] == [1, 2, 3, 4]

    async def test_stored_event_ids_are_not_recorded_twice(self, store: EventStore) -> None:
        """Retrying an append with the same event ids returns the original positions."""
        first, second = event(1), event(2)
        original = await store.append("s", [first, second], expected_version=0)
        await store.append("other", [event(3)], expected_version=0)
        retry = await store.append("s", [first, second], expected_version=0)
        assert retry.duplicate
        assert [e.position for e in retry.events] == [e.position for e in original.events]
        assert [e.data for e in retry.events] == [{"n": 1}, {"n": 2}]
        # Even to another stream and with any expected version: the id decides.
        again = await store.append("elsewhere", [first], expected_version=7)
        assert again.duplicate
        assert again.position == 1
        assert await store.last_position() == 3

    async def test_concurrent_retries_of_one_event_store_it_once(self, store: EventStore) -> None:
        """Ten concurrent appends of the same event: one position, the others see duplicates."""
        for round_ in range(1, 6):  # later rounds meet a writer already batching
            same = event(round_)
            results: list[AppendResult] = []

            async def attempt(same: NewEvent = same, results: list[AppendResult] = results) -> None:
                results.append(await store.append("s", [same], expected_version=None))

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for _ in range(10):
                        tg.start_soon(attempt)
            assert sorted(r.duplicate for r in results) == [False] + [True] * 9
            assert {r.position for r in results} == {round_}
            assert all(r.events[0].data == {"n": round_} for r in results)
        assert await store.last_position() == 5

    async def test_batch_mixing_stored_and_new_ids_is_refused(self, store: EventStore) -> None:
        """A batch with one stored and one new id raises and stores nothing new."""
        stored = event(1)
        await store.append("s", [stored], expected_version=0)
        with pytest.raises(EventIdConflictError):
            await store.append("s", [stored, event(2)], expected_version=None)
        assert await store.last_position() == 1

    async def test_append_batch_places_each_append_in_order_and_refuses_them_alone(
        self, store: EventStore
    ) -> None:
        """Many appends at once (an import): placed in the order given, each refused on
        its own (a wrong version, ids mixing stored and new), each stored one's ids a
        no-op, and the rest stored all the same."""
        stored = event("stored")
        await store.append("s-old", [stored], expected_version=0)
        appends: list[tuple[str, list[NewEvent], int | None]] = []
        for n in range(150):  # more rows than one SQLite statement takes
            appends.append((f"s-{n % 7}", [event(n)], None))
        appends += [
            ("s-0", [event("next")], 22),  # s-0's 22 appends above: its version 22
            ("s-old", [event("late")], 0),  # the stream is at version 1
            ("s-x", [stored, event("new")], None),  # one stored id, one new
            ("s-elsewhere", [stored], 5),  # only the stored id: a duplicate, not refused
            ("s-0", [event("after"), event("after2")], 23),
        ]
        outcomes = await store.append_batch(appends)
        assert len(outcomes) == len(appends)
        *placed, next_, late, mixed, duplicate, after = outcomes
        assert isinstance(late, ConcurrencyError)
        assert isinstance(mixed, EventIdConflictError)
        assert isinstance(duplicate, AppendResult)
        assert duplicate.duplicate
        assert duplicate.position == 1
        assert all(isinstance(o, AppendResult) for o in (*placed, next_, after))
        results = [o for o in (*placed, next_, after) if isinstance(o, AppendResult)]
        assert [r.events[0].position for r in results] == [*range(2, 153), 153]
        assert [r.events[-1].version for r in results[-2:]] == [23, 25]
        assert await store.last_position() == 154
        assert [e.data["n"] for e in await store.read_stream("s-0")][-3:] == [
            "next", "after", "after2",
        ]
        assert [e.data["n"] for e in await store.read_stream("s-old")] == ["stored"]
        assert await store.read_stream("s-x") == []
        with pytest.raises(ValueError, match="at least one"):
            await store.append_batch([("s", [], None)])

    async def test_empty_append_is_a_mistake(self, store: EventStore) -> None:
        """Appending no events raises ValueError instead of silently doing nothing."""
        with pytest.raises(ValueError, match="at least one"):
            await store.append("s", [], expected_version=None)

    async def test_read_all_pages_through_bounds(self, store: EventStore) -> None:
        """read_all honours from/until (inclusive) across page boundaries."""
        for n in range(1, 26):
            await store.append(f"s{n % 3}", [event(n)], expected_version=None)
        everything = [e.position async for e in store.read_all(page_size=4)]
        assert everything == list(range(1, 26))
        window = [e.position async for e in store.read_all(
            from_position=5, until_position=17, page_size=4
        )]
        assert window == list(range(5, 18))
        assert [e.position async for e in store.read_all(from_position=26)] == []
        assert [e.position async for e in store.read_all(from_position=0, until_position=2)] == [
            1, 2,
        ]

    async def _interleaved(self, store: EventStore) -> None:
        """Streams a..e of ``contract-`` (version n is event n*10 + stream), and others."""
        for n in range(1, 6):
            for s, name in enumerate("caebd"):
                await store.append(f"contract-{name}", [event(n * 10 + s)], expected_version=None)
            await store.append("webhooks-unmatched", [event(n)], expected_version=None)
        await store.append("contractor-z", [event(99)], expected_version=None)
        await store.append("contract", [event(98)], expected_version=None)

    async def test_read_streams_yields_whole_streams_in_version_order(
        self, store: EventStore
    ) -> None:
        """read_streams gives each prefixed stream's events in order, stream after stream."""
        await self._interleaved(store)
        pages = [page async for page in store.read_streams("contract-", page_size=4)]
        rows = [row for page in pages for row in page]
        assert all(len(page) <= 4 for page in pages)
        assert [(row[1], row[2]) for row in rows] == [
            (f"contract-{name}", version) for name in "abcde" for version in range(1, 6)
        ]
        # Bounds past the prefix's names still give only the streams that start with it.
        wide = store.read_streams("contract-c", start="contract-", stop="z", page_size=3)
        assert {row[1] for page in [p async for p in wide] for row in page} == {"contract-c"}
        for row in rows:
            stored = (await store.read_stream(row[1], from_version=row[2]))[0]
            assert row == (
                stored.position,
                stored.stream,
                stored.version,
                stored.type,
                stored.data,
                stored.metadata,
                format_timestamp(stored.recorded_at),
            )

    async def test_read_streams_stops_at_a_position_and_can_leave_payloads_as_text(
        self, store: EventStore
    ) -> None:
        """until_position cuts every stream; decoded=False gives data and metadata as the
        JSON text they decode from."""
        await self._interleaved(store)
        other = NewEvent("Other", {"x": 1}, "api")
        await store.append("contract-a", [other], expected_version=None)
        until = (await store.read_stream("webhooks-unmatched"))[1].position  # round two
        rows = [
            row
            async for page in store.read_streams("contract-", until_position=until, page_size=3)
            for row in page
        ]
        assert [(row[1], row[2]) for row in rows] == [
            (f"contract-{name}", version) for name in "abcde" for version in (1, 2)
        ]
        assert all(row[0] <= until for row in rows)
        decoded = [row async for page in store.read_streams("contract-a") for row in page]
        text = [
            row
            async for page in store.read_streams("contract-a", decoded=False, page_size=4)
            for row in page
        ]
        assert all(isinstance(row[4], str | bytes) for row in text)
        assert [(*row[:4], orjson.loads(row[4]), orjson.loads(row[5]), row[6]) for row in text] == (
            decoded
        )
        assert decoded[-1][3:5] == ("Other", {"x": 1})
        assert decoded[-1][5]["event_id"] == other.event_id

    async def test_split_streams_cuts_ranges_that_read_every_stream_once(
        self, store: EventStore
    ) -> None:
        """The ranges between split_streams' bounds read the prefixed streams once, in order."""
        for n in range(60):
            await store.append(f"contract-{n % 12:02d}", [event(n)], expected_version=None)
            await store.append("other", [event(n)], expected_version=None)
        whole = [row async for page in store.read_streams("contract-") for row in page]
        bounds = await store.split_streams("contract-", 4)
        assert len(bounds) <= 3
        assert all(bound.startswith("contract-") for bound in bounds)
        edges: list[str | None] = [None, *bounds, None]
        pieces = []
        for start, stop in itertools.pairwise(edges):
            ranged = store.read_streams("contract-", start=start, stop=stop, page_size=7)
            pieces.append([row async for page in ranged for row in page])
        assert [row for piece in pieces for row in piece] == whole
        # Read on the caller's thread (a rebuild's worker), the same rows come.
        blocking = store.read_streams("contract-", start=edges[-2], page_size=5, blocking=True)
        assert [row async for page in blocking for row in page] == pieces[-1]
        if type(store).split_streams is not EventStore.split_streams:
            assert len(bounds) >= 2  # a backend that samples its log does split it
            assert all(piece for piece in pieces)
        assert await store.split_streams("nothing-", 4) == []

    async def test_subscribe_catches_up_then_follows(self, store: EventStore) -> None:
        """A subscriber sees the history, then an event appended later, without polling delay."""
        await store.append("s", [event(1), event(2)], expected_version=0)
        seen: list[RecordedEvent] = []
        caught_up = anyio.Event()
        got_third = anyio.Event()

        async def follow() -> None:
            async for recorded in store.subscribe(from_position=1, idle_timeout=30):
                seen.append(recorded)
                if len(seen) == 2:
                    caught_up.set()
                if len(seen) == 3:
                    got_third.set()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                await caught_up.wait()
                await store.append("s", [event(3)], expected_version=2)
                # idle_timeout=30 proves the wake-up, not the safety-net timeout, delivered it.
                with anyio.fail_after(5):
                    await got_third.wait()
                tg.cancel_scope.cancel()
        assert [e.position for e in seen] == [1, 2, 3]

    async def test_wait_for_append_returns_at_once_when_already_past(
        self, store: EventStore
    ) -> None:
        """wait_for_append does not block when the log is already longer."""
        await store.append("s", [event(1)], expected_version=0)
        with anyio.fail_after(5):
            await store.wait_for_append(0)

    async def test_concurrent_writers_never_let_a_follower_skip(
        self, store: EventStore, open_store: StoreFactory
    ) -> None:
        """20 writers x 50 appends while a follower reads: it sees 1..1000 once, in order.

        Writers and follower are spread over four stores (their own connections, as
        separate processes would have), so writer transactions overlap each other and
        the follower's reads land while some are still in flight.
        """
        writers, appends = 20, 50
        total = writers * appends
        seen: list[int] = []
        done = anyio.Event()
        follower = await open_store()
        stores = [store, await open_store(), await open_store()]

        async def write(w: int) -> None:
            for n in range(appends):
                await stores[w % 3].append(f"writer-{w}", [event(n)], expected_version=n)

        async def follow() -> None:
            async for recorded in follower.subscribe(page_size=7, idle_timeout=0.5):
                seen.append(recorded.position)
                if len(seen) == total:
                    done.set()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                with anyio.fail_after(60):
                    async with anyio.create_task_group() as writing:
                        for w in range(writers):
                            writing.start_soon(write, w)
                # A skipped position never arrives: bound the wait, then show what is missing.
                with anyio.move_on_after(10):
                    await done.wait()
                tg.cancel_scope.cancel()
        finally:
            for extra in {follower, *stores[1:]} - {store}:
                await extra.close()
        missing = sorted(set(range(1, total + 1)) - set(seen))
        assert not missing, f"the follower skipped positions {missing[:20]}"
        assert seen == list(range(1, total + 1))
        assert await store.last_position() == total

    # -- checkpoints and documents -----------------------------------------------------

    async def test_checkpoints_start_at_zero_and_remember(self, store: EventStore) -> None:
        """A new subscriber's checkpoint is 0; a saved one reads back."""
        assert await store.load_checkpoint("handlers") == 0
        await store.save_checkpoint("handlers", 42)
        await store.save_checkpoint("handlers", 43)
        assert await store.load_checkpoint("handlers") == 43

    @pytest.mark.parametrize("blocking", [False, True], ids=["", "blocking"])
    async def test_commit_projection_writes_documents_and_checkpoint(
        self, store: EventStore, blocking: bool
    ) -> None:
        """Documents and the checkpoint land together; a None doc deletes. The same on the
        calling thread (``blocking``, a rebuild worker's way)."""
        await store.commit_projection("contracts", 3, [
            DocumentWrite("contracts", "b", {"status": "DRAFT"}),
            DocumentWrite("contracts", "a", {"status": "SIGN"}),
            DocumentWrite("contracts", "gone", {"status": "x"}),
        ], blocking=blocking)
        await store.commit_projection("contracts", 5, [
            DocumentWrite("contracts", "b", {"status": "EXECUTED"}),
            DocumentWrite("contracts", "gone", None),
            DocumentWrite("contracts", "never", None),
        ], blocking=blocking)
        assert await store.load_checkpoint("contracts") == 5
        assert await store.get_document("contracts", "b") == {"status": "EXECUTED"}
        assert await store.get_document("contracts", "gone") is None
        assert await store.get_document("elsewhere", "a") is None

    @pytest.mark.parametrize("blocking", [False, True], ids=["", "blocking"])
    async def test_failed_commit_projection_changes_nothing(
        self, store: EventStore, blocking: bool
    ) -> None:
        """When one write of a projection commit fails, no write and no checkpoint persist."""
        await store.commit_projection("p", 1, [DocumentWrite("c", "k", {"v": "old"})])
        bad = {"v": threading.Lock()}  # neither JSON nor copyable
        with pytest.raises((TypeError, EventStoreError)):
            await store.commit_projection("p", 2, [
                DocumentWrite("c", "k", {"v": "new"}),
                DocumentWrite("c", "k2", bad),
            ], blocking=blocking)
        assert await store.get_document("c", "k") == {"v": "old"}
        assert await store.get_document("c", "k2") is None
        assert await store.load_checkpoint("p") == 1

    async def test_query_documents_filters_and_pages(self, store: EventStore) -> None:
        """equals, at_least and after_key/limit select and page documents by key order."""
        docs = {
            f"k{i:02d}": {"status": "SIGN" if i % 2 else "DRAFT", "updated_at": f"2026-01-{i:02d}"}
            for i in range(1, 11)
        }
        await store.commit_projection(
            "p", 1, [DocumentWrite("c", k, d) for k, d in docs.items()]
        )
        await store.commit_projection("q", 1, [DocumentWrite("other", "k01", {"status": "SIGN"})])
        signed = await store.query_documents("c", equals={"status": "SIGN"})
        assert [k for k, _ in signed] == ["k01", "k03", "k05", "k07", "k09"]
        recent = await store.query_documents(
            "c", equals={"status": "SIGN"}, at_least={"updated_at": "2026-01-05"}
        )
        assert [k for k, _ in recent] == ["k05", "k07", "k09"]
        page1 = await store.query_documents("c", limit=4)
        page2 = await store.query_documents("c", after_key=page1[-1][0], limit=4)
        page3 = await store.query_documents("c", after_key=page2[-1][0], limit=4)
        keys = [k for page in (page1, page2, page3) for k, _ in page]
        assert keys == sorted(docs)
        assert page1[0][1] == docs["k01"]
        assert await store.query_documents("c", equals={"missing": "x"}) == []
        assert await store.query_documents("c", at_least={"missing": ""}) == []

    async def test_document_keys_lists_a_range_of_one_collection(self, store: EventStore) -> None:
        """Keys come in code point order, from start up to (not including) stop."""
        keys = ["a", "a-1", "b", "b\u00e9", "c"]
        await store.commit_projection("p", 1, [
            *(DocumentWrite("c", key, {"n": key}) for key in reversed(keys)),
            DocumentWrite("other", "b", {"n": "b"}),
        ])
        assert await store.document_keys("c") == keys
        assert await store.document_keys("c", start="a-1", stop="b\u00e9") == ["a-1", "b"]
        assert await store.document_keys("c", start="b-") == ["b\u00e9", "c"]
        assert await store.document_keys("c", stop="a") == []
        assert await store.document_keys("c", start="a-1", limit=2) == ["a-1", "b"]
        found = await store.get_documents("c", ["b\u00e9", "missing", "a"])
        assert found == {"b\u00e9": {"n": "b\u00e9"}, "a": {"n": "a"}}
        assert await store.get_documents("c", []) == {}
        assert await store.document_keys("c", start="a", stop="c", limit=0) == []
        assert await store.document_keys("missing") == []

    async def test_drop_projection_forgets_documents_and_checkpoint(
        self, store: EventStore
    ) -> None:
        """Dropping a projection deletes its collections and checkpoint, nothing else."""
        await store.commit_projection("p", 7, [
            DocumentWrite("c1", "a", {"x": "1"}), DocumentWrite("c2", "a", {"x": "2"}),
        ])
        await store.commit_projection("keep", 3, [DocumentWrite("c3", "a", {"x": "3"})])
        await store.append("s", [event(1)], expected_version=0)
        await store.drop_projection("p", ["c1", "c2"])
        assert await store.query_documents("c1") == []
        assert await store.query_documents("c2") == []
        assert await store.load_checkpoint("p") == 0
        assert await store.get_document("c3", "a") == {"x": "3"}
        assert await store.load_checkpoint("keep") == 3
        assert await store.last_position() == 1

    # -- lifecycle ---------------------------------------------------------------------

    async def test_closed_store_refuses_work(self, open_store: StoreFactory) -> None:
        """After close, calls fail with the store's own error instead of hanging."""
        store = await open_store()
        await store.close()
        with pytest.raises(EventStoreError):
            await store.append("s", [event(1)], expected_version=None)
        await store.close()  # closing twice is harmless

    async def test_everything_survives_close_and_reopen(self, open_store: StoreFactory) -> None:
        """Events, checkpoints and documents are still there after closing and reopening."""
        if not self.durable:
            pytest.skip("the memory store keeps nothing after close, by design")
        store = await open_store()
        original = await store.append("s", [event(1), event(2)], expected_version=0)
        await store.commit_projection("p", 2, [DocumentWrite("c", "k", {"v": "1"})])
        await store.commit_projection("q", 3, [DocumentWrite("c", "j", {"v": "2"})], blocking=True)
        await store.close()
        async with await open_store() as reopened:
            assert [e.data for e in await reopened.read_stream("s")] == [{"n": 1}, {"n": 2}]
            assert await reopened.load_checkpoint("p") == 2
            assert await reopened.get_document("c", "k") == {"v": "1"}
            assert await reopened.load_checkpoint("q") == 3
            assert await reopened.get_document("c", "j") == {"v": "2"}
            retry = await reopened.append("s", list(_as_new(original.events)), expected_version=0)
            assert retry.duplicate
            nxt = await reopened.append("s", [event(3)], expected_version=2)
            assert nxt.position == 3


def _as_new(events: tuple[RecordedEvent, ...]) -> list[NewEvent]:
    return [e.as_new_event() for e in events]


def daemon_settings(database: str, documents: Path) -> Settings:
    """A daemon on ``database`` that serves on any free port and calls no SpotDraft."""
    return Settings(
        database=database,
        listen="127.0.0.1:0",
        base_url="http://127.0.0.1:9",
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        hmac_key=DEFAULT_HMAC_KEY,
        documents_dir=str(documents),
    )


async def second_daemon_is_refused(database: str, documents: Path) -> None:
    """Two daemons on one store would each run every handler (a second send, a second
    sink notice for every step): the second one refuses to start, naming why; once the
    first has stopped, the store is free again. (Callers shorten CLAIM_WAIT_SECONDS.)"""
    settings = daemon_settings(database, documents)
    async with running_daemon(settings, insecure_local=True):
        with (
            pytest.raises(StoreBusyError, match="another spotsync run is already serving"),
            anyio.fail_after(30),  # without the refusal it would serve until cancelled
        ):
            await Daemon(settings, insecure_local=True).run(anyio.Event())
    async with running_daemon(settings, insecure_local=True) as again:
        assert await again.store.last_position() == 0
