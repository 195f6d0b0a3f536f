"""The SQLite store's writer: a process of its own that runs every group commit.

Why a process and not a thread: a thread beside the event loop must win the GIL back
after each thing it hands to SQLite or the kernel (waking, the insert, the statement's
reset, waking the loop: four times a commit), and each time the loop, which holds the
GIL nearly always, is stopped and then waits to get it back. Measured under
bench.ingest's 32 connections: each extra hand-over of the GIL per commit cost 3.5 to 4 %
of the webhooks a second. A process has a GIL of its own; the loop pays a write and a
read on a pipe per commit.

The wire: the parent writes a request per group commit to the child's stdin and reads
one reply per request from its stdout, in order. Each is a 4-byte big-endian length and
a pickle. A request lists the batch's jobs as data (``encode``): appends as their
encoded rows, other writes as ``Statements``. The reply is the log's last position and
each job's outcome, or the exception that failed the whole commit.

The child ignores SIGINT and SIGTERM, which a terminal or a service manager sends to the
whole process group: it ends when its stdin does, after the commits already sent, so a
daemon shutting down keeps its writer until its last commit. If the parent dies, the
pipe closes and the child ends too.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import sqlite3
import struct
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from eventstore.errors import EventStoreError, PersistenceError
from eventstore.groupcommit import Append, AppendBatch, Job, Planned
from eventstore.sqlite_commit import Head, Statements, commit, prepare_writer, translate

_LENGTH = struct.Struct(">I")
_ROOT = str(Path(__file__).resolve().parent.parent)  # where the child imports us from
_STOP_SECONDS = 30.0  # how long close() waits for the commits already sent to finish

WireAppend = tuple[str, list[str], list[str], list[str], list[str], int | None, Any]
Outcome = tuple[Any, BaseException | None]


def encode(jobs: Sequence[Job[Any]]) -> list[tuple[str, Any]]:
    """A group commit's jobs as plain data, for the writer."""
    entries: list[tuple[str, Any]] = []
    for job in jobs:
        payload = job.payload
        if isinstance(payload, Append):
            entries.append(("a", _wire(payload)))
        elif isinstance(payload, AppendBatch):
            entries.append(("b", [_wire(sub.payload) for sub in payload.jobs]))
        else:
            entries.append(("s", cast(Statements, payload).steps))
    return entries


def _wire(append: Append) -> WireAppend:
    return (
        append.stream,
        append.types,
        append.data,
        append.metadata,
        append.ids,
        append.expected_version,
        append.stamps,
    )


def settle(jobs: Sequence[Job[Any]], reply: tuple[Any, list[Any] | None]) -> int:
    """Give each job the outcome the writer sent back; the log's last position."""
    last, outcomes = reply
    if outcomes is None:
        raise cast(BaseException, last)
    for job, outcome in zip(jobs, outcomes, strict=True):
        if isinstance(job.payload, AppendBatch):
            for sub, (result, error) in zip(job.payload.jobs, outcome, strict=True):
                sub.result, sub.error = result, error
        else:
            job.result, job.error = outcome
    return int(last)


class WriterProcess:
    """The parent's end: starts the writer on the first commit, and again if it died."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._protocol: _Replies | None = None
        self._transport: asyncio.SubprocessTransport | None = None
        self._starting = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The writer's process id, while one runs."""
        running = self._protocol is not None and self._protocol.running
        return self._transport.get_pid() if running and self._transport else None

    async def commit(self, jobs: Sequence[Job[Any]]) -> int:
        """Run one group commit in the writer; the log's last position after it."""
        request = pickle.dumps(encode(jobs), pickle.HIGHEST_PROTOCOL)
        protocol = await self._running()
        reply = await protocol.send(request)
        return settle(jobs, pickle.loads(reply))  # noqa: S301  # from our own child

    async def close(self) -> None:
        """Let the writer finish the commits already sent, then end."""
        protocol, transport = self._protocol, self._transport
        self._protocol = self._transport = None
        if protocol is None or transport is None:
            return
        stdin = transport.get_pipe_transport(0)
        if stdin is not None:
            stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(protocol.ended), _STOP_SECONDS)
        except TimeoutError:
            transport.kill()
        finally:
            transport.close()

    async def _running(self) -> _Replies:
        if self._protocol is None or not self._protocol.running:
            async with self._starting:  # two batches in flight must not start two writers
                if self._protocol is None or not self._protocol.running:
                    await self._start()
        assert self._protocol is not None
        return self._protocol

    async def _start(self) -> None:
        if self._transport is not None:
            self._transport.close()
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": f"{_ROOT}{os.pathsep}{path}" if path else _ROOT}
        loop = asyncio.get_running_loop()
        protocol = _Replies(loop)
        transport, _ = await loop.subprocess_exec(
            lambda: protocol,
            sys.executable,
            "-m",
            "eventstore.sqlite_writer",
            str(self.path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,
            env=env,
        )
        self._protocol, self._transport = protocol, transport


class _Replies(asyncio.SubprocessProtocol):
    """Frames from the writer's stdout, each the answer to the oldest request."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._buffer = bytearray()
        self._waiting: deque[asyncio.Future[bytes]] = deque()
        self._stdin: asyncio.WriteTransport | None = None
        self._exited = False
        # Set once the process has ended and its last reply is read.
        self.ended: asyncio.Future[None] = loop.create_future()

    @property
    def running(self) -> bool:
        return not self._exited and not self.ended.done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pipe = cast(asyncio.SubprocessTransport, transport).get_pipe_transport(0)
        self._stdin = cast(asyncio.WriteTransport, pipe)

    def send(self, request: bytes) -> asyncio.Future[bytes]:
        if self._stdin is None or self._stdin.is_closing() or not self.running:
            raise PersistenceError("the SQLite writer process is not running")
        reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting.append(reply)
        self._stdin.write(_LENGTH.pack(len(request)))
        self._stdin.write(request)
        return reply

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 4:
            (size,) = _LENGTH.unpack_from(buffer)
            if len(buffer) < 4 + size:
                return
            frame = bytes(buffer[4 : 4 + size])
            del buffer[: 4 + size]
            reply = self._waiting.popleft()
            if not reply.done():
                reply.set_result(frame)

    def process_exited(self) -> None:
        self._exited = True  # replies may still be in the pipe: ``connection_lost`` reads on

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(None)
        while self._waiting:
            reply = self._waiting.popleft()
            if not reply.done():
                reply.set_exception(
                    PersistenceError("the SQLite writer process ended before it answered")
                )


# -- the child ---------------------------------------------------------------------------


class _Slot:
    """A job on the writer's side: no future, only its payload and outcome."""

    __slots__ = ("error", "payload", "result")

    def __init__(self, payload: Any) -> None:
        self.payload = payload
        self.result: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Outcome:
        return (self.result, self.error)


def _append(wire: WireAppend) -> Append:
    stream, types, data, metadata, ids, expected, stamps = wire
    return Append(stream, types, data, metadata, ids, expected, (), [], stamps)


def _decode(entries: list[tuple[str, Any]]) -> list[_Slot]:
    slots = []
    for kind, body in entries:
        if kind == "a":
            slots.append(_Slot(_append(body)))
        elif kind == "b":
            subs = [_Slot(_append(wire)) for wire in body]
            # ``commit`` reads a batch's jobs for their payload and outcome alone.
            slots.append(_Slot(AppendBatch(cast(list[Job[Planned]], subs))))
        else:
            slots.append(_Slot(Statements(body)))
    return slots


def _outcomes(slots: list[_Slot]) -> list[Any]:
    outcomes: list[Any] = []
    for slot in slots:
        if isinstance(slot.payload, AppendBatch):
            outcomes.append([cast(_Slot, sub).outcome() for sub in slot.payload.jobs])
        else:
            outcomes.append(slot.outcome())
    return outcomes


def _failure(exc: BaseException) -> EventStoreError:
    if isinstance(exc, EventStoreError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return translate(exc)
    return PersistenceError(f"the SQLite writer failed: {type(exc).__name__}: {exc}")


def serve(path: str) -> None:
    """Run commits from stdin until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Replies go to the stdout the parent reads; anything else printed goes to stderr.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = os.fdopen(0, "rb")
    db = sqlite3.connect(path, isolation_level=None)
    prepare_writer(db)
    head = Head()
    while True:
        header = requests.read(4)
        if len(header) < 4:
            break
        (size,) = _LENGTH.unpack(header)
        slots = _decode(pickle.loads(requests.read(size)))  # noqa: S301  # from our parent
        try:
            reply: tuple[Any, Any] = (commit(slots, head, db), _outcomes(slots))
        except BaseException as exc:
            reply = (_failure(exc), None)
        try:
            frame = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an outcome that does not pickle fails the batch
            frame = pickle.dumps((_failure(exc), None), pickle.HIGHEST_PROTOCOL)
        replies.write(_LENGTH.pack(len(frame)))
        replies.write(frame)
        replies.flush()
    db.close()


if __name__ == "__main__":
    serve(sys.argv[1])
