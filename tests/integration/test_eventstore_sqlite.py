"""The SQLite backend on real files: the contract, plus what only a file can show."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import anyio
import pytest

from daemon import runtime
from daemon.cli import main
from eventstore import (
    ConcurrencyError,
    DocumentWrite,
    EventStore,
    NewEvent,
    PersistenceError,
    open_store,
)
from eventstore.sqlite import SQLiteEventStore
from projections.runner import CONTRACTS, PROJECTION
from tests.eventstore_contract import (
    EventStoreContract,
    StoreFactory,
    event,
    second_daemon_is_refused,
)

pytestmark = pytest.mark.anyio


class TestSQLiteEventStore(EventStoreContract):
    @pytest.fixture(params=["thread", "process"])
    def open_store(self, tmp_path: Path, request: pytest.FixtureRequest) -> StoreFactory:
        """The contract holds whichever side of the writer commits run on."""
        writer_process = request.param == "process"

        async def open_() -> EventStore:
            return await open_store(str(tmp_path / "events.db"), writer_process=writer_process)

        return open_


async def test_database_refuses_update_and_delete_of_events(tmp_path: Path) -> None:
    """UPDATE and DELETE on events fail even through the plain sqlite3 client."""
    path = tmp_path / "events.db"
    async with await open_store(str(path)) as store:
        await store.append("s", [event(1)], expected_version=0)
    db = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE events SET data = '{}' WHERE position = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM events")
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    finally:
        db.close()


async def test_database_file_is_owner_only(tmp_path: Path) -> None:
    """The database file is created readable and writable by its owner only."""
    path = tmp_path / "events.db"
    async with await open_store(str(path)) as store:
        await store.append("s", [event(1)], expected_version=0)
        modes = await anyio.to_thread.run_sync(_modes, tmp_path)
    assert set(modes) >= {"events.db", "events.db-wal"}
    assert set(modes.values()) == {0o600}, modes


def _modes(folder: Path) -> dict[str, int]:
    return {file.name: stat.S_IMODE(file.stat().st_mode) for file in folder.iterdir()}


async def test_unopenable_path_is_a_persistence_error(tmp_path: Path) -> None:
    """A path in a missing directory fails with PersistenceError naming the problem."""
    with pytest.raises(PersistenceError, match="cannot open"):
        await open_store(str(tmp_path / "missing" / "events.db"))


async def test_append_by_another_process_wakes_a_follower(tmp_path: Path) -> None:
    """A follower notices an append made through another connection to the same file."""
    path = str(tmp_path / "events.db")
    async with await SQLiteEventStore.open(path) as follower, await SQLiteEventStore.open(
        path
    ) as writer:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follower.wait_for_append, 0)
                await writer.append("s", [event(1)], expected_version=0)
        assert await follower.last_position() == 1


async def test_one_conflict_in_a_group_commit_spares_the_others(tmp_path: Path) -> None:
    """Concurrent appends committed together: the stale one fails, the rest are stored."""
    outcomes: dict[int, str] = {}
    async with await open_store(str(tmp_path / "events.db")) as store:
        await store.append("shared", [event(0)], expected_version=0)

        async def append(n: int) -> None:
            # Even n: its own new stream (succeeds); odd n: a stale version (conflicts).
            stream, expected = (f"own-{n}", 0) if n % 2 == 0 else ("shared", 0)
            try:
                await store.append(stream, [NewEvent("T", {"n": n}, "api")],
                                   expected_version=expected)
                outcomes[n] = "stored"
            except ConcurrencyError:
                outcomes[n] = "conflict"

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for n in range(40):
                    tg.start_soon(append, n)
        assert all(outcomes[n] == ("stored" if n % 2 == 0 else "conflict") for n in range(40))
        positions = [e.position async for e in store.read_all()]
        assert positions == list(range(1, 22))


async def test_cancelled_appender_does_not_stall_the_writer(tmp_path: Path) -> None:
    """Appends cancelled while queued do not block the appends that follow them."""
    async with await open_store(str(tmp_path / "events.db")) as store:
        with anyio.fail_after(30):
            for _ in range(20):
                async with anyio.create_task_group() as tg:
                    append = partial(store.append, expected_version=None)
                    for n in range(10):
                        tg.start_soon(append, f"s{n}", [event(n)])
                    await anyio.lowlevel.checkpoint()
                    tg.cancel_scope.cancel()
            result = await store.append("after", [event(1)], expected_version=0)
        assert result.position == await store.last_position()
        assert [e.position async for e in store.read_all()] == list(range(1, result.position + 1))


@pytest.mark.parametrize(("writers", "overlap_from"), [(20, 1), (100, None)])
async def test_two_batches_in_flight_keep_the_log_gap_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writers: int, overlap_from: int | None
) -> None:
    """With the writer pipelined (two batches in flight), every append lands once, in order."""
    monkeypatch.setattr("eventstore.sqlite._PIPELINE", 2)
    if overlap_from is not None:  # else the default: many writers make a batch overlap
        monkeypatch.setattr("eventstore.sqlite._OVERLAP_FROM", overlap_from)
    async with await open_store(str(tmp_path / "events.db")) as store:

        async def write(w: int) -> None:
            for n in range(20):
                await store.append(f"w{w}", [event(n)], expected_version=n)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for w in range(writers):
                    tg.start_soon(write, w)
        log = [e async for e in store.read_all()]
        assert [e.position for e in log] == list(range(1, 20 * writers + 1))
        for w in range(writers):
            assert [e.data["n"] for e in await store.read_stream(f"w{w}")] == list(range(20))


@pytest.mark.parametrize("writer_process", [False, True])
async def test_appends_planned_from_memory_see_other_writers_and_stored_ids(
    tmp_path: Path, writer_process: bool
) -> None:
    """The writer plans from what it committed last; another store's appends to the file
    and ids stored before are still seen: refusals, duplicates, gap-free positions."""
    path = str(tmp_path / "events.db")
    async with await SQLiteEventStore.open(
        path, writer_process=writer_process
    ) as ours, await SQLiteEventStore.open(path) as theirs:
        first = event(1)
        await ours.append("s", [first], expected_version=0)
        await theirs.append("s", [event(2)], expected_version=1)
        await theirs.append("t", [event(3)], expected_version=0)
        with pytest.raises(ConcurrencyError):
            await ours.append("s", [event(4)], expected_version=1)
        placed = await ours.append("s", [event(5)], expected_version=None)
        assert (placed.position, placed.events[0].version) == (4, 3)
        retry = await ours.append("s", [first], expected_version=None)
        assert retry.duplicate
        assert retry.position == 1
        await theirs.append("t", [event(6)], expected_version=1)
        after = await ours.append("s", [event(7)], expected_version=3)
        assert (after.position, after.events[0].version) == (6, 4)
        # A stream this writer never appended to is taken to be new, and checked too.
        with pytest.raises(ConcurrencyError):
            await ours.append("t", [event(8)], expected_version=0)
        joined = await ours.append("t", [event(9)], expected_version=None)
        assert (joined.position, joined.events[0].version) == (7, 3)
        assert [e.position async for e in ours.read_all()] == list(range(1, 8))


async def test_one_store_at_a_time_holds_a_role_on_a_file(tmp_path: Path) -> None:
    """A role claimed on a file is refused to any other opening of it (in this process
    or another) until the one holding it closes; another file is another store."""
    database = tmp_path / "spotsync.db"
    first = await open_store(str(database))
    async with await open_store(str(database)) as second:
        try:
            assert await first.try_claim("daemon")
            assert await first.try_claim("daemon")  # held already: still its own
            assert not await second.try_claim("daemon")
            assert await second.try_claim("support")
            async with await open_store(str(tmp_path / "other.db")) as elsewhere:
                assert await elsewhere.try_claim("daemon")
        finally:
            await first.close()
        assert await second.try_claim("daemon")
    assert stat.S_IMODE((tmp_path / "spotsync.db-daemon.lock").stat().st_mode) == 0o600


async def test_a_second_daemon_on_the_same_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two daemons on one file would each run every handler (a second send, a second
    sink notice for every step): the second refuses to start, naming why."""
    monkeypatch.setattr(runtime, "CLAIM_WAIT_SECONDS", 0.5)
    await second_daemon_is_refused(str(tmp_path / "spotsync.db"), tmp_path / "documents")


async def test_a_rebuild_or_import_is_refused_while_a_daemon_holds_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``projections rebuild`` drops the read models a running daemon folds, and the
    daemon's handlers would act on events ``import`` adds: while one holds the store,
    each refuses in one line and changes nothing; once it has stopped, they run."""
    database = str(tmp_path / "spotsync.db")
    dump = tmp_path / "log.jsonl"
    monkeypatch.setenv("SPOTSYNC_DATABASE", database)
    daemon = await open_store(database)
    try:
        await daemon.append("contract-deal-1", [event(1)], expected_version=0)
        await daemon.commit_projection(PROJECTION, 1, [DocumentWrite(CONTRACTS, "k", {})])
        export = ["export", "--output", str(dump)]
        assert await anyio.to_thread.run_sync(main, export) == 0
        capsys.readouterr()
        assert await daemon.try_claim("daemon")
        for command, doing in (
            (["projections", "rebuild"], "as it folds the read models a rebuild drops"),
            (["import", "--force", str(dump)], "as its handlers would act on the imported"),
        ):
            assert await anyio.to_thread.run_sync(main, command) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1
            assert "a spotsync daemon (or another command) is using this database" in err
            assert f"stop it first, {doing}" in err
        assert await daemon.get_document(CONTRACTS, "k") == {}
        assert await daemon.load_checkpoint(PROJECTION) == 1
        assert await daemon.last_position() == 1
    finally:
        await daemon.close()
    assert await anyio.to_thread.run_sync(main, ["projections", "rebuild"]) == 0
    assert "rebuilt the contract read models up to position 1" in capsys.readouterr().out


def _ended(pid: int) -> bool:
    """Whether the process is gone, or a zombie nobody has reaped yet."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``condition``: a process's end sends this process nothing to wait on."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.02)


async def test_a_store_that_only_reads_starts_no_writer_and_close_ends_it(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "events.db")
    store = await SQLiteEventStore.open(path, writer_process=True)
    async with store:
        await store.append("s", [event(1)], expected_version=0)
        pid = store.writer_pid
        assert pid is not None
    assert store.writer_pid is None
    await _until(lambda: _ended(pid))
    reader = await SQLiteEventStore.open(path, writer_process=True)
    async with reader:
        assert [e.data["n"] async for e in reader.read_all()] == [1]
        assert reader.writer_pid is None


async def test_a_writer_that_dies_is_replaced_and_nothing_acknowledged_is_lost(
    tmp_path: Path,
) -> None:
    store = await SQLiteEventStore.open(str(tmp_path / "events.db"), writer_process=True)
    async with store:
        for n in range(3):
            await store.append("s", [event(n)], expected_version=n)
        killed = store.writer_pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        await _until(lambda: store.writer_pid != killed)
        # The next write starts a new writer, which plans from the file, not from memory.
        await store.append("s", [event(3)], expected_version=3)
        assert store.writer_pid not in (None, killed)
        assert [(e.position, e.data["n"]) async for e in store.read_all()] == [
            (1, 0), (2, 1), (3, 2), (4, 3)
        ]


async def test_the_writer_outlives_signals_to_the_process_group(tmp_path: Path) -> None:
    """A terminal's Ctrl-C or a service manager's stop reaches every process of the group:
    the writer stays for the daemon's last commits, and ends with its stdin."""
    store = await SQLiteEventStore.open(str(tmp_path / "events.db"), writer_process=True)
    async with store:
        await store.append("s", [event(1)], expected_version=0)
        pid = store.writer_pid
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGINT)
        await store.append("s", [event(2)], expected_version=1)
        assert store.writer_pid == pid


def test_the_writer_ends_with_a_parent_that_was_killed(tmp_path: Path) -> None:
    script = (
        "import anyio, sys\n"
        "from eventstore.sqlite import SQLiteEventStore\n"
        "from eventstore import NewEvent\n"
        "async def main():\n"
        "    store = await SQLiteEventStore.open(sys.argv[1], writer_process=True)\n"
        "    await store.append('s', [NewEvent('Noted', {}, 'operator')], expected_version=0)\n"
        "    print(store.writer_pid, flush=True)\n"
        "    await anyio.sleep(60)\n"
        "anyio.run(main)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "events.db")], stdout=subprocess.PIPE
    )
    assert parent.stdout is not None
    try:
        writer = int(parent.stdout.readline())
        assert not _ended(writer)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    deadline = time.monotonic() + 10
    while not _ended(writer):
        assert time.monotonic() < deadline, "the writer outlived its parent"
        time.sleep(0.02)
