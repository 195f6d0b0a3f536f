"""The PostgreSQL backend on a real server: the contract, plus the database's own refusals.

Each test gets a fresh schema (selected through the URL's ``search_path``), dropped after.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc
import asyncpg
import httpx
import pytest
from anyio.streams.text import TextReceiveStream
from structlog.testing import capture_logs

from daemon import runtime
from daemon.runtime import Daemon, running_daemon
from eventstore import EventStore, PersistenceError, StoreBusyError, open_store, postgres
from eventstore.postgres import temporary_schema
from tests.acceptance.conftest import wait_for
from tests.eventstore_contract import (
    EventStoreContract,
    StoreFactory,
    daemon_settings,
    event,
    second_daemon_is_refused,
)

POSTGRES_URL = os.environ.get("SPOTSYNC_TEST_POSTGRES_URL")

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.postgres,
    pytest.mark.skipif(
        not POSTGRES_URL, reason="SPOTSYNC_TEST_POSTGRES_URL is not set (PostgreSQL tests skipped)"
    ),
]


@pytest.fixture
async def schema_url() -> AsyncIterator[str]:
    """A URL whose connections live in a new, empty schema."""
    assert POSTGRES_URL
    async with temporary_schema(POSTGRES_URL, "test") as url:
        yield url


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def open_store(self, schema_url: str) -> StoreFactory:
        async def open_() -> EventStore:
            return await open_store(schema_url)

        return open_


async def test_database_refuses_update_delete_and_truncate(schema_url: str) -> None:
    """UPDATE, DELETE and TRUNCATE on events fail even through a plain asyncpg connection."""
    async with await open_store(schema_url) as store:
        await store.append("s", [event(1)], expected_version=0)
    conn = await asyncpg.connect(schema_url)
    try:
        for statement in (
            "UPDATE events SET type = 'Changed'",
            "DELETE FROM events",
            "TRUNCATE events",
        ):
            with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM events") == 1
    finally:
        await conn.close()


async def test_one_process_at_a_time_holds_a_role(schema_url: str) -> None:
    """A role claimed through one connection is refused to another until that store
    closes; a store in another schema of the same database is another store."""
    assert POSTGRES_URL
    first = await open_store(schema_url)
    async with await open_store(schema_url) as second:
        try:
            assert await first.try_claim("daemon")
            assert not await second.try_claim("daemon")
            assert await second.try_claim("another role")
            async with (
                temporary_schema(POSTGRES_URL, "test") as elsewhere_url,
                await open_store(elsewhere_url) as elsewhere,
            ):
                assert await elsewhere.try_claim("daemon")
        finally:
            await first.close()
        # The server lets go once it has seen the first store's session end.
        await wait_for(
            lambda: second.try_claim("daemon"), seconds=10, what="the first store's claim to end"
        )


async def test_a_second_daemon_on_the_same_database_is_refused(
    schema_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two daemons on one store would each run every handler (a second send, a second
    sink notice for every step): the second one refuses to start, naming why."""
    monkeypatch.setattr(runtime, "CLAIM_WAIT_SECONDS", 0.5)
    await second_daemon_is_refused(schema_url, tmp_path / "documents")


_connect = asyncpg.connect  # the real one, for the tests' own connections


def _sample(exposition: str, name: str) -> float:
    """The value of one sample in a Prometheus text exposition."""
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the exposition")


async def _claim_holders(url: str, role: str = "daemon") -> list[int]:
    """The server sessions that hold ``role`` in this URL's schema."""
    conn = await _connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = hashtext('spotsync')::oid"
            " AND objid = hashtext(current_schema() || '/' || $1)::oid",
            role,
        )
        return [row[0] for row in rows]
    finally:
        await conn.close()


async def _end_claim_sessions(url: str) -> None:
    """End the sessions holding the daemon's claim, as a restart of the server (or an
    administrator's ``pg_terminate_backend``) would."""
    holders = await _claim_holders(url)
    assert len(holders) == 1
    conn = await _connect(url)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", holders[0])
    finally:
        await conn.close()


async def test_a_claim_whose_connection_ends_is_taken_again(schema_url: str) -> None:
    """The claim lives on a connection. When the server ends it, the store takes the
    claim again on a new one, so a second daemon is still refused."""
    async with await open_store(schema_url) as store, await open_store(schema_url) as other:
        assert await store.try_claim("daemon")
        first = await _claim_holders(schema_url)
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.keep_claims)
            await _end_claim_sessions(schema_url)

            async def held_again() -> bool:
                holders = await _claim_holders(schema_url)
                return bool(holders) and holders != first

            await wait_for(held_again, seconds=10, what="the claim to be taken again")
            assert not await other.try_claim("daemon")
            tg.cancel_scope.cancel()


async def test_a_claim_taken_back_on_a_connection_that_drops_too_is_tried_again(
    schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server answers, then drops the new connection before the claim is taken (a
    network that comes and goes): a wait, and another try, rather than an error."""
    async with await open_store(schema_url) as store, await open_store(schema_url) as other:
        assert await store.try_claim("daemon")
        first = await _claim_holders(schema_url)
        connections = 0

        async def flapping(*args: Any, **kwargs: Any) -> Any:
            nonlocal connections
            connections += 1
            conn = await _connect(*args, **kwargs)
            if connections == 1:
                conn.terminate()
            return conn

        monkeypatch.setattr(asyncpg, "connect", flapping)
        outages: list[BaseException] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.keep_claims, lambda exc, delay: outages.append(exc))
            await _end_claim_sessions(schema_url)

            async def held_again() -> bool:
                holders = await _claim_holders(schema_url)
                return bool(holders) and holders != first

            await wait_for(held_again, seconds=10, what="the claim to be taken again")
            assert connections == 2
            assert [type(exc) for exc in outages] == [PersistenceError]
            assert not await other.try_claim("daemon")
            tg.cancel_scope.cancel()


def _gated_connect(monkeypatch: pytest.MonkeyPatch) -> anyio.Event:
    """New connections wait for the returned event: another process can act first."""
    gate = anyio.Event()

    async def connect(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await _connect(*args, **kwargs)

    monkeypatch.setattr(asyncpg, "connect", connect)
    return gate


async def test_a_claim_taken_by_another_process_meanwhile_is_lost(
    schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should another process claim the store while the connection was down, the store
    says so (``StoreBusyError``) rather than go on as a second daemon."""
    async with await open_store(schema_url) as store, await open_store(schema_url) as other:
        assert await store.try_claim("daemon")
        gate = _gated_connect(monkeypatch)

        async def take_over() -> None:
            await _end_claim_sessions(schema_url)
            await wait_for(
                lambda: other.try_claim("daemon"), seconds=10, what="the claim to be free"
            )
            gate.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(take_over)
            with (
                pytest.raises(StoreBusyError, match="another spotsync process holds it now"),
                anyio.fail_after(30),
            ):
                await store.keep_claims()


async def test_a_daemon_that_loses_its_claim_stops(
    schema_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon that may no longer be the only one stops, as on SIGTERM, and fails with
    the reason (``spotsync run`` prints it as one line and exits non-zero)."""
    settings = daemon_settings(schema_url, tmp_path / "documents")
    shutdown = anyio.Event()
    failures: list[StoreBusyError] = []

    async def serve(*, task_status: anyio.abc.TaskStatus[Any]) -> None:
        try:
            await Daemon(settings, insecure_local=True).run(shutdown, task_status=task_status)
        except StoreBusyError as exc:
            failures.append(exc)

    with anyio.fail_after(60):  # without the claim kept, it would serve on
        async with await open_store(schema_url) as other, anyio.create_task_group() as tg:
            await tg.start(serve)
            gate = _gated_connect(monkeypatch)
            await _end_claim_sessions(schema_url)
            await wait_for(
                lambda: other.try_claim("daemon"), seconds=10, what="the claim to be free"
            )
            gate.set()
    assert shutdown.is_set()
    assert len(failures) == 1
    assert "another spotsync process holds it now" in str(failures[0])


async def test_statistics_are_refreshed_after_a_bulk_load(schema_url: str) -> None:
    """Until autovacuum analyzes a freshly filled table, the planner takes it for the
    empty one it was (a rebuild after an import ran at half speed); ``import`` asks for
    the statistics at once."""
    async with await open_store(schema_url) as store:
        for n in range(40):
            await store.append(f"contract-deal-{n % 4}", [event(n)], expected_version=None)
        await store.refresh_statistics()
    conn = await _connect(schema_url)
    try:
        rows = await conn.fetchval("SELECT reltuples FROM pg_class WHERE oid = 'events'::regclass")
        assert rows == 40
    finally:
        await conn.close()


class _Cuttable:
    """A TCP relay to the PostgreSQL server that a test can cut, as a restart of the server
    (or the network) would: every connection through it is closed and new ones are
    refused until it is restored. Or it can freeze, as a network that drops packets
    would: the connections through it stay open at both ends but carry nothing, ever
    again, and new ones are refused until it is restored. The real server, which other
    tests share, is left alone."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._scope: anyio.CancelScope | None = None
        self._frozen = anyio.Event()  # set: the connections made until then carry nothing
        self._restored = anyio.Event()

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with anyio.create_task_group() as frozen:
            while True:
                async with await anyio.create_tcp_listener(
                    local_host="127.0.0.1", local_port=self.port
                ) as listener:
                    self.port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610
                    with anyio.CancelScope() as self._scope:
                        async with anyio.create_task_group() as relays:
                            task_status.started()
                            task_status = anyio.TASK_STATUS_IGNORED
                            await listener.serve(
                                partial(self._relay, self._frozen, frozen), task_group=relays
                            )
                await self._restored.wait()

    async def cut(self) -> None:
        self._restored = anyio.Event()
        assert self._scope is not None
        self._scope.cancel()

    async def freeze(self) -> None:
        self._frozen.set()
        self._frozen = anyio.Event()
        await self.cut()

    def restore(self) -> None:
        self._restored.set()

    async def _relay(
        self, frozen: anyio.Event, keeper: anyio.abc.TaskGroup, client: anyio.abc.SocketStream
    ) -> None:
        try:
            server = await anyio.connect_tcp(*self.target)
        except BaseException:
            await _close(client)
            raise
        try:

            async def pump(src: anyio.abc.SocketStream, dst: anyio.abc.SocketStream) -> None:
                try:
                    async for chunk in src:
                        await dst.send(chunk)
                    await dst.send_eof()
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    tg.cancel_scope.cancel()  # one end reset: the relay closes the other

            async with anyio.create_task_group() as tg:
                tg.start_soon(pump, client, server)
                tg.start_soon(pump, server, client)
        finally:
            if frozen.is_set():  # both ends stay open, where the cut leaves them alone
                keeper.start_soon(_hold, client, server)
            else:
                await _close(client, server)


async def _hold(*streams: anyio.abc.SocketStream) -> None:
    try:
        await anyio.sleep_forever()
    finally:
        await _close(*streams)


async def _close(*streams: anyio.abc.SocketStream) -> None:
    with anyio.CancelScope(shield=True):
        for stream in streams:
            await stream.aclose()


@pytest.mark.parametrize("away", ["cut", "silent"])
async def test_a_daemon_waits_out_its_database_and_goes_on(
    schema_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, away: str
) -> None:
    """The database goes away for a while: a relay cut, as a restart would, or gone
    silent, as a network that drops packets would. The daemon does not stop: ``/readyz``
    says the store is away meanwhile; once it is back, the daemon holds its claim again,
    and a contract requested then is stored and folded into the read models."""
    monkeypatch.setattr(postgres, "_HEARTBEAT_EVERY", 0.2)
    monkeypatch.setattr(postgres, "_HEARTBEAT_TIMEOUT", 0.5)
    monkeypatch.setattr(postgres, "_COMMAND_TIMEOUT", 0.5)
    parts = urlsplit(schema_url)
    relay = _Cuttable((parts.hostname or "127.0.0.1", parts.port or 5432))
    request = json.loads((Path(__file__).parents[1] / "data" / "acme_contract.json").read_text())
    external_id = request["external_metadata"]["id"]
    async with anyio.create_task_group() as tg:
        await tg.start(relay.serve)
        url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{relay.port}"))
        settings = daemon_settings(url, tmp_path / "documents")
        async with (
            running_daemon(settings, insecure_local=True) as running,
            httpx.AsyncClient(base_url=running.url) as http,
        ):
            first = await _claim_holders(schema_url)
            with capture_logs() as logs:
                await (relay.cut() if away == "cut" else relay.freeze())

                async def store_away() -> bool:
                    answer = await http.get("/readyz")
                    return answer.status_code == 503 and not answer.json()["checks"]["store"]

                async def every_part_waiting() -> bool:
                    waiting = {
                        line.get("component")
                        for line in logs
                        if line["event"] == "store unreachable: waiting"
                    }
                    return waiting >= {"read models", "handlers", "metrics", "claim"}

                await wait_for(store_away, seconds=20, what="/readyz to say the store is away")
                await wait_for(every_part_waiting, seconds=20, what="every part to wait")
            # ...and /metrics counts the tries, for an alert that does not read logs.
            scraped = (await http.get("/metrics")).text
            for component in ("read models", "handlers", "metrics", "claim"):
                sample = f'spotsync_store_unreachable_total{{component="{component}"}}'
                assert _sample(scraped, sample) >= 1
            # The server let go of the claim, or keeps it for the silent session.
            assert await _claim_holders(schema_url) == ([] if away == "cut" else first)
            relay.restore()

            async def claimed_again() -> bool:
                holders = await _claim_holders(schema_url)
                return bool(holders) and holders != first

            async def accepted() -> bool:
                return (await http.post("/v1/contracts", json=request)).status_code == 202

            async def folded() -> bool:
                return (await http.get(f"/v1/contracts/{external_id}")).status_code == 200

            await wait_for(claimed_again, seconds=30, what="the claim to be taken again")
            await wait_for(accepted, seconds=30, what="the intake to be accepted")
            await wait_for(folded, seconds=30, what="the read models to show the contract")
            assert (await http.get("/readyz")).status_code == 200
        tg.cancel_scope.cancel()


async def test_a_claim_on_a_connection_gone_silent_is_taken_back(
    schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The network drops the connections' packets without closing them. The store finds
    its listener silent and connects again, refused while the network is down; once it
    is back, the server still keeps the silent session holding the claim (it has not
    noticed): the store ends that session, its own, and holds the claim again, while
    another process still cannot take it."""
    monkeypatch.setattr(postgres, "_HEARTBEAT_EVERY", 0.2)
    monkeypatch.setattr(postgres, "_HEARTBEAT_TIMEOUT", 0.5)
    monkeypatch.setattr(postgres, "_COMMAND_TIMEOUT", 0.5)
    parts = urlsplit(schema_url)
    relay = _Cuttable((parts.hostname or "127.0.0.1", parts.port or 5432))
    async with anyio.create_task_group() as tg:
        await tg.start(relay.serve)
        url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{relay.port}"))
        async with await open_store(url) as store:
            assert await store.try_claim("daemon")
            first = await _claim_holders(schema_url)
            refused: list[BaseException] = []
            tg.start_soon(store.keep_claims, lambda exc, delay: refused.append(exc))
            await relay.freeze()

            async def reconnecting() -> bool:
                return bool(refused)

            await wait_for(reconnecting, seconds=20, what="the silent listener to be given up")
            assert await _claim_holders(schema_url) == first  # the silent session holds on
            relay.restore()

            async def claimed_again() -> bool:
                holders = await _claim_holders(schema_url)
                return len(holders) == 1 and holders != first

            await wait_for(claimed_again, seconds=30, what="the claim to be taken again")
            async with await open_store(schema_url) as other:
                assert not await other.try_claim("daemon")

            async def works() -> bool:
                # Its pooled connection went silent too: a statement gives it up.
                try:
                    await store.append("s", [event(1)], expected_version=None)
                except PersistenceError:
                    return False
                return True

            await wait_for(works, seconds=20, what="an append through new connections")
            assert [e.stream for e in await store.read_stream("s")] == ["s"]
        tg.cancel_scope.cancel()


async def test_events_follow_waits_out_its_database(schema_url: str) -> None:
    """`spotsync events --follow` (its own process) outlives a cut of the database: it
    says it is waiting, then prints the event appended meanwhile."""
    parts = urlsplit(schema_url)
    relay = _Cuttable((parts.hostname or "127.0.0.1", parts.port or 5432))
    async with await open_store(schema_url) as direct:
        await direct.append("contract-deal-1", [event(1)], expected_version=0)
    async with anyio.create_task_group() as tg:
        await tg.start(relay.serve)
        url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{relay.port}"))
        command = [sys.executable, "-m", "daemon", "events", "--follow", "--json"]
        env = {**os.environ, "SPOTSYNC_DATABASE": url}
        async with await anyio.open_process(command, env=env) as process:
            assert process.stdout is not None
            assert process.stderr is not None
            out = TextReceiveStream(process.stdout)
            err = TextReceiveStream(process.stderr)
            seen = said = ""
            try:
                with anyio.fail_after(30):
                    async for chunk in out:
                        if '"position":1' in (seen := seen + chunk):
                            break
                    await relay.cut()
                    async for chunk in err:
                        if "trying again in" in (said := said + chunk):
                            break
                    async with await open_store(schema_url) as direct:
                        await direct.append("contract-deal-1", [event(2)], expected_version=1)
                    relay.restore()
                    async for chunk in out:
                        if '"position":2' in (seen := seen + chunk):
                            break
            finally:
                if process.returncode is None:
                    process.terminate()
        tg.cancel_scope.cancel()
    assert said.startswith("spotsync events: ")
    assert "PostgreSQL" in said
    assert "trying again in" in said
    assert '"position":2' in seen


class _Confused:
    """A listener connection whose driver has lost track of it: the answer to a statement
    given up on comes back as the answer to the next one."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        raise asyncpg.InternalClientError("got result for unknown protocol state 3")


async def test_a_listener_the_driver_lost_track_of_is_given_up_and_the_claim_taken_again(
    schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heartbeat answered out of turn (the late answer to one that timed out) ends that
    connection like a silent one: the claim is taken again on a new one, and nothing
    escapes to stop the daemon."""
    monkeypatch.setattr(postgres, "_HEARTBEAT_EVERY", 0.05)
    async with await open_store(schema_url) as store, anyio.create_task_group() as tg:
        assert isinstance(store, postgres.PostgresEventStore)
        assert await store.try_claim("daemon")
        first = await _claim_holders(schema_url)
        tg.start_soon(store.keep_claims)
        store._listener = _Confused(store._listener)

        async def claimed_again() -> bool:
            holders = await _claim_holders(schema_url)
            return len(holders) == 1 and holders != first

        await wait_for(claimed_again, seconds=20, what="the claim to be taken again")
        tg.cancel_scope.cancel()
