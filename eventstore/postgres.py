"""The PostgreSQL backend, via an asyncpg pool, with LISTEN/NOTIFY for followers.

Gap-free positions that never become visible out of order (the bug that made Marten
and Eventuous projections skip events): an append transaction first locks the single
counter row ``event_positions`` (``SELECT ... FOR UPDATE``) and keeps the lock until it
commits. So appends take their positions and commit strictly one after the other, and
PostgreSQL makes a transaction visible before it releases its locks: when position N+1
becomes visible, N already is. A rolled-back append rolls the counter back too, so no
hole is ever left. The price is that append transactions are serialized, even across
processes; within one process, group commit (``eventstore.groupcommit``) puts
concurrent appends into one transaction, so they share the lock and the disk sync.

Extra query parameters of the URL become server settings (asyncpg's rule), so
``postgresql://host/db?search_path=tenant`` keeps the schema in ``tenant``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any

import anyio
import asyncpg
import orjson

from eventstore.base import (
    AppendResult,
    Document,
    DocumentWrite,
    EventStore,
    StreamRow,
    decode_stream_rows,
    sample_positions,
    split_points,
    write_runs,
)
from eventstore.envelope import NewEvent, RecordedEvent, parse_timestamp
from eventstore.errors import (
    AppendOnlyError,
    EventStoreError,
    PersistenceError,
    StoreBusyError,
)
from eventstore.groupcommit import Append, Batch, GroupCommit, Job, Planned, plan_append
from eventstore.migrations import pending, queries
from eventstore.outages import Backoff, OnOutage

Q = queries("postgres")
_NO_LIMIT = 2**63 - 1
# LISTEN/NOTIFY wakes followers at once; the poll only covers a lost listener connection.
_POLL_INTERVAL = 1.0
_CLOSE_TIMEOUT = 10.0
# A network can drop a connection's packets without closing it (a NAT that forgot it, a
# partition): neither end hears of it until it sends. The listener's connection, which
# holds the claims, is asked to answer this often and within this long, or is given up.
_HEARTBEAT_EVERY = 5.0
_HEARTBEAT_TIMEOUT = 5.0
# The server probes each connection that has been idle this long, and ends it once the
# probes go unanswered (10 s, then 3 more 5 s apart): a session of this store left behind
# by such a network lets go of its claim, and an idle connection keeps its NAT mapping.
_SERVER_SETTINGS = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}
# How long a claim held by this store's own silent connection takes to come free.
_STALE_CLAIM_WAIT = 5.0
# Any statement on a pooled connection: past this, the connection counts as gone silent
# and is dropped (the pool connects afresh), and the store's caller gets an outage.
_COMMAND_TIMEOUT = 60.0


class PostgresEventStore(EventStore):
    """The event store in a PostgreSQL database (``SPOTSYNC_DATABASE=postgresql://...``)."""

    def __init__(
        self, pool: Any, listener: Any, channel: str, last: int, application_name: str
    ) -> None:
        self._pool = pool
        # Concurrent appends share transactions (and their one wait for the disk).
        self._group = GroupCommit(self._commit)
        self._listener = listener
        self._channel = channel
        self._last_position = last
        self._appended = anyio.Event()
        self._closed = False
        self._claims: list[str] = []  # roles held, on the listener's connection
        self._listener_lost = anyio.Event()
        self._listener_busy = anyio.Lock()  # a connection runs one query at a time
        # Every connection of this store says so to the server: ``keep_claims`` knows its
        # own sessions left behind by a silent network from another process's.
        self._application_name = application_name

    @classmethod
    async def open(cls, url: str) -> PostgresEventStore:
        """Connect, migrate the schema, and start listening for appends."""
        pool = listener = None
        name = f"spotsync {uuid.uuid4().hex[:12]}"
        try:
            with _translated(), _url_checked():
                pool = await asyncpg.create_pool(
                    url,
                    min_size=1,
                    max_size=10,
                    timeout=10,
                    command_timeout=_COMMAND_TIMEOUT,
                    server_settings={"synchronous_commit": "on", **_settings(name)},
                )
                async with pool.acquire() as conn:
                    await _migrate(conn)
                    schema = await conn.fetchval("SELECT current_schema()")
                    last = int(await conn.fetchval(Q["last_position"]))
                # One channel per schema, so two stores in one database do not wake each
                # other; channel names are identifiers, at most 63 bytes.
                channel = f"spotsync_events:{schema}".encode()[:63].decode(errors="ignore")
                listener = await _connect_listener(url, name)
                store = cls(pool, listener, channel, last, name)
                store.url = url
                await store._listen(listener)
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
                if listener is not None:
                    await listener.close()
                if pool is not None:
                    await pool.close()
            raise
        return store

    # -- the log -----------------------------------------------------------------------

    async def append(
        self, stream: str, events: Sequence[NewEvent], *, expected_version: int | None
    ) -> AppendResult:
        if not events:
            raise ValueError("append needs at least one event")
        self._check_open()
        append = Append.of(stream, events, expected_version)
        job: Job[Planned] = Job(append)  # not Job[Planned](...): typing's call is slow
        return append.result(await self._group.submit(job))

    async def _commit(self, jobs: list[Job[Any]]) -> None:
        """Commit a batch of appends in one transaction, holding the position lock."""
        appends: list[Append] = [job.payload for job in jobs]
        ids = [event_id for append in appends for event_id in append.ids]
        streams = list({append.stream for append in appends})
        with _translated():
            async with self._pool.acquire() as conn, conn.transaction():
                last = int(await conn.fetchval(Q["lock_positions"]))
                # From here on, every earlier append has committed and is visible.
                stored: dict[str, Sequence[Any]] = {}
                versions: dict[str, int] = {}
                for row in await conn.fetch(Q["look_up"], ids, streams):
                    if row[0] is None:
                        versions[row[1]] = int(row[2])
                    else:
                        stored[row[7]] = tuple(row)[:7]
                batch = Batch(last + 1, stored, versions)
                for job in jobs:
                    try:
                        job.result = plan_append(batch, job.payload, _decode_rows)
                    except EventStoreError as exc:
                        job.error = exc
                if not batch.rows:
                    return
                columns = [list(column) for column in zip(*batch.rows, strict=True)]
                # The statement takes the event ids, then the times (as text, the way
                # the rows hold them: an imported event keeps its own).
                columns[6:] = [columns[7], columns[6]]
                last = batch.next_position - 1
                await conn.execute(Q["insert_events"], *columns, last, self._channel)
        self._advance(last)

    async def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]:
        return _decode_rows(await self._fetch(Q["read_stream"], stream, from_version))

    async def read_all(
        self,
        *,
        from_position: int = 1,
        until_position: int | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        position = max(from_position, 1)
        until = _NO_LIMIT if until_position is None else until_position
        while position <= until:
            rows = await self._fetch(Q["read_all"], position, until, page_size)
            for row in rows:  # decoded as taken, as SQLite's read_all does
                yield _decode_row(row)
            if len(rows) < page_size:
                return
            position = rows[-1][0] + 1

    async def read_streams(
        self,
        prefix: str,
        *,
        start: str | None = None,
        stop: str | None = None,
        until_position: int | None = None,
        decoded: bool = True,
        page_size: int = 1000,
        blocking: bool = False,  # asyncpg reads on the event loop's thread anyway
    ) -> AsyncIterator[list[StreamRow]]:
        # Names compare in the database's collation, so bounds come from split_streams;
        # a prefix sorts before every name that starts with it in any collation.
        after: tuple[str, int] = (prefix if start is None else start, 0)
        until = _NO_LIMIT if until_position is None else until_position
        query = Q["read_streams_to_end" if stop is None else "read_streams"]
        while True:
            rows = await self._fetch(query, *after, stop, prefix, until, page_size)
            page = decode_stream_rows(rows, decoded)
            if page:
                yield page
            if len(page) < page_size:
                return
            after = (page[-1][1], page[-1][2])

    async def split_streams(self, prefix: str, parts: int) -> list[str]:
        positions = sample_positions(await self.last_position(), parts)
        rows = await self._fetch(Q["sample_streams"], positions, prefix)
        return split_points([row[0] for row in rows], parts)

    async def last_position(self) -> int:
        return int((await self._fetch(Q["last_position"]))[0][0])

    async def stream_version(self, stream: str) -> int:
        return int((await self._fetch(Q["stream_version"], stream))[0][0])

    async def try_claim(self, role: str) -> bool:
        # On the listener's connection: it lives as long as the store, so does the claim
        # (and ``keep_claims`` takes it again should that connection drop).
        self._check_open()
        if role in self._claims:
            return True
        with _translated():
            async with self._listener_busy:
                claimed = bool(await self._listener.fetchval(Q["try_claim"], role))
        if claimed:
            self._claims.append(role)
        return claimed

    async def refresh_statistics(self) -> None:
        # Until autovacuum gets to it, a freshly loaded table is planned as the empty one
        # it was: a rebuild right after an import of 250k events ran at half its speed.
        self._check_open()
        with _translated():
            await self._pool.execute(Q["refresh_statistics"])

    async def keep_claims(self, on_outage: OnOutage | None = None) -> None:
        """The claims live on the listener's connection, and the server lets go of them
        when it ends (a restart, a cut, an administrator's ``pg_terminate_backend``).
        Each time, a new connection takes them again as soon as the server answers
        (``on_outage`` is told of each try that fails); raises ``StoreBusyError`` when
        another process took one first. While the server is away nobody can take them,
        and nothing this process does gets through to the database either.

        A connection can also go silent (a network that drops its packets): the listener
        is asked to answer every few seconds, and given up when it does not. The server
        may not have noticed yet, so a session of this store's own can still hold a claim
        when the new connection asks for it: that session is ended, and the claim taken."""
        while True:
            with anyio.move_on_after(_HEARTBEAT_EVERY):
                await self._listener_lost.wait()
            if self._closed:
                return
            if not self._listener_lost.is_set():
                if await self._listener_answers():
                    continue
                # Unheard from: its own end would set the next ``_listener_lost`` too.
                self._listener.remove_termination_listener(self._on_listener_lost)
                self._listener.terminate()
            self._listener_lost = anyio.Event()
            self._listener, last = await self._reconnect(on_outage)
            self._advance(last)  # appends the lost channel missed

    async def _listener_answers(self) -> bool:
        try:
            async with self._listener_busy:
                await self._listener.fetchval("SELECT 1", timeout=_HEARTBEAT_TIMEOUT)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            return False
        except asyncpg.InternalClientError:
            # The answer to a statement given up on arrived after all, as the answer to
            # this one: the driver has lost track of the connection. It is given up too.
            return False
        return True

    async def _claim_again(self, listener: Any, role: str) -> bool:
        """Take ``role`` on ``listener``, ending this store's own silent sessions that
        still hold it; False when another process holds it."""
        with _translated():
            if await listener.fetchval(Q["try_claim"], role):
                return True
            ended = await listener.fetch(Q["end_own_stale_claims"], role, self._application_name)
            if not ended:
                return False
            # The ended sessions let go as they exit, a moment later.
            deadline = anyio.current_time() + _STALE_CLAIM_WAIT
            while anyio.current_time() < deadline:
                if await listener.fetchval(Q["try_claim"], role):
                    return True
                await anyio.sleep(0.05)
        return False

    async def _reconnect(self, on_outage: OnOutage | None) -> tuple[Any, int]:
        """A new listener connection holding the claims again, and the last position,
        read on it (the pool's connections may be silent too). A server that drops the
        new connection too, or does not answer, is tried again after a wait."""
        backoff = Backoff()
        while True:
            listener = None
            try:
                with _translated():
                    listener = await _connect_listener(self.url, self._application_name)
                for role in self._claims:
                    if not await self._claim_again(listener, role):
                        raise StoreBusyError(
                            f"the connection that held this process's claim ({role}) on "
                            "the database dropped, and another spotsync process holds it "
                            "now: stopping, so that only one runs"
                        )
                with _translated():
                    await self._listen(listener)
                    return listener, int(await listener.fetchval(Q["last_position"]))
            except PersistenceError as exc:
                if listener is not None:
                    listener.terminate()
                delay = backoff.next()
                if on_outage is not None:
                    on_outage(exc, delay)
                await anyio.sleep(delay)
            except BaseException:
                if listener is not None:
                    listener.terminate()
                raise

    async def _listen(self, listener: Any) -> None:
        await listener.add_listener(self._channel, self._on_notify)
        listener.add_termination_listener(self._on_listener_lost)

    def _on_listener_lost(self, connection: Any) -> None:
        self._listener_lost.set()

    async def wait_for_append(self, after_position: int) -> None:
        if self._last_position > after_position:
            return
        while True:
            appended = self._appended  # taken first, so no wake-up can slip between checks
            if await self.last_position() > after_position:
                return
            with anyio.move_on_after(_POLL_INTERVAL):
                await appended.wait()
            if self._last_position > after_position:
                return

    # -- checkpoints and projection documents -------------------------------------------

    async def load_checkpoint(self, name: str) -> int:
        rows = await self._fetch(Q["load_checkpoint"], name)
        return int(rows[0][0]) if rows else 0

    async def save_checkpoint(self, name: str, position: int) -> None:
        self._check_open()
        with _translated():
            await self._pool.execute(Q["save_checkpoint"], name, position)

    async def commit_projection(
        self,
        name: str,
        position: int,
        writes: Sequence[DocumentWrite],
        *,
        blocking: bool = False,  # asyncpg writes on the event loop's thread anyway
    ) -> None:
        self._check_open()
        with _translated():
            async with self._pool.acquire() as conn, conn.transaction():
                # An executemany goes out as one pipeline: a statement a row waited out a
                # round trip each (a rebuild ran at half speed).
                for query, rows in write_runs(writes, _jsonb_dumps):
                    await conn.executemany(Q[query], rows)
                await conn.execute(Q["save_checkpoint"], name, position)

    async def get_document(self, collection: str, key: str) -> Document | None:
        rows = await self._fetch(Q["get_document"], collection, key)
        return _as_document(rows[0][0]) if rows else None

    async def get_documents(self, collection: str, keys: Sequence[str]) -> dict[str, Document]:
        rows = await self._fetch(Q["get_documents"], collection, list(keys))
        return {row[0]: _as_document(row[1]) for row in rows}

    async def document_keys(
        self,
        collection: str,
        *,
        start: str = "",
        stop: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        if stop is None:
            rows = await self._fetch(Q["document_keys_to_end"], collection, start, limit)
        else:
            rows = await self._fetch(Q["document_keys"], collection, start, stop, limit)
        return [row[0] for row in rows]

    async def query_documents(
        self,
        collection: str,
        *,
        equals: Mapping[str, str] | None = None,
        at_least: Mapping[str, str] | None = None,
        after_key: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Document]]:
        equals, at_least = dict(equals or {}), dict(at_least or {})
        rows = await self._fetch(
            Q["query_documents"],
            collection,
            after_key,
            list(equals),
            list(equals.values()),
            list(at_least),
            list(at_least.values()),
            limit,
        )
        return [(str(key), _as_document(doc)) for key, doc in rows]

    async def drop_projection(self, name: str, collections: Sequence[str]) -> None:
        self._check_open()
        with _translated():
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.executemany(Q["delete_collection"], [(c,) for c in collections])
                await conn.execute(Q["delete_checkpoint"], name)

    # -- lifecycle ---------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._listener_lost.set()  # ``keep_claims`` returns
        with anyio.CancelScope(shield=True), _translated():
            with anyio.move_on_after(_CLOSE_TIMEOUT):
                await self._listener.close()
                await self._pool.close()
            if not self._listener.is_closed():
                self._listener.terminate()
            self._pool.terminate()

    # -- plumbing ----------------------------------------------------------------------

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        self._check_open()
        with _translated():
            rows: list[Any] = await self._pool.fetch(sql, *args)
            return rows

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._advance(int(payload))

    def _advance(self, position: int) -> None:
        if position > self._last_position:
            self._last_position = position
        self._appended.set()
        self._appended = anyio.Event()

    def _check_open(self) -> None:
        if self._closed:
            raise EventStoreError("the store is closed")


async def _migrate(conn: Any) -> None:
    """Apply the migrations the database has not recorded, each with its record, atomically."""
    async with conn.transaction():
        await conn.execute(Q["lock_migrations"])
        await conn.execute(Q["create_schema_version"])
        applied = [int(row[0]) for row in await conn.fetch(Q["applied_versions"])]
        for migration in pending("postgres", applied):
            await conn.execute(migration.sql)
            await conn.execute(Q["record_version"], migration.version, migration.name)


def _decode_rows(rows: Sequence[Sequence[Any]]) -> list[RecordedEvent]:
    return [_decode_row(row) for row in rows]


def _decode_row(row: Sequence[Any]) -> RecordedEvent:
    position, stream, version, type_, data, meta, at = row[:7]
    return RecordedEvent(
        position,
        stream,
        version,
        type_,
        orjson.loads(data),
        orjson.loads(meta),
        # A row planned earlier in the same batch carries its time as text.
        at if isinstance(at, datetime) else parse_timestamp(at),
    )


# A JSON \u0000 escape, not one whose backslash is itself escaped ("\\u0000" is text).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _jsonb_dumps(doc: Document) -> str:
    return _jsonb_text(orjson.dumps(doc).decode())


def _jsonb_text(text: str) -> str:
    """JSON text jsonb accepts: it refuses NUL in strings, so NUL becomes U+FFFD.

    Events keep NUL (their column is json); a read model shows the replacement, and a
    rebuild writes the same replacement, so rebuilt and live documents still agree."""
    return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def _as_document(raw: str) -> Document:
    doc: Document = orjson.loads(raw)
    return doc


def _settings(application_name: str) -> dict[str, str]:
    return {"application_name": application_name, **_SERVER_SETTINGS}


async def _connect_listener(url: str | None, application_name: str) -> Any:
    return await asyncpg.connect(url, timeout=10, server_settings=_settings(application_name))


@contextmanager
def _translated() -> Iterator[None]:
    """Driver errors become the store's own, raised from their cause."""
    try:
        yield
    except asyncpg.RestrictViolationError as exc:
        raise AppendOnlyError(str(exc)) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise PersistenceError(f"PostgreSQL failed: {exc}") from exc
    except (OSError, TimeoutError) as exc:
        raise PersistenceError(f"cannot reach PostgreSQL: {exc}") from exc


@contextmanager
def _url_checked() -> Iterator[None]:
    """A URL asyncpg cannot use (a port that is no number or past 65535, an unclosed
    ``[``) is the store's error too, not a bare ValueError. Its message never quotes
    the URL."""
    try:
        yield
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, asyncpg.InterfaceError):
            raise  # asyncpg's own configuration errors: _translated words them
        raise PersistenceError(f"not a usable PostgreSQL URL: {exc}") from exc


@asynccontextmanager
async def temporary_schema(url: str, prefix: str = "scratch") -> AsyncIterator[str]:
    """A URL whose connections live in a new, empty schema, dropped afterwards.

    For tests, benchmarks and trial runs that need a PostgreSQL store of their own.
    """
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _translated():
        admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}search_path={schema}"
    finally:
        with anyio.CancelScope(shield=True):
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await admin.close()
