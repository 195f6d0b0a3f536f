"""`spotsync import`: load a JSONL event log (as written by export) into the store.

Streams, versions, payloads, event ids and the time each event was recorded are kept
(so a contract's projection, and a replay ``--at`` a time, read as in the original
store); each event gets a new position in this store, in the file's order. Appending
with the original event ids makes a repeated import a no-op, and appending with the
original versions refuses to renumber a stream.

The whole file is checked before anything is appended: a line that is not an event
envelope (data and metadata JSON objects, a contract stream named by a valid external
id) imports nothing and is named, since a stored event can never be taken back.

An exported log interleaves its contracts, so most appends are of an event or two. They
are handed to the store a few thousand events at a time (``append_batch``), which
commits them together instead of paying a transaction each, in file order; the next
lot is read and parsed while the store writes one. The first append the store refuses
(a stream it holds otherwise) stops the import: what was committed before it stays, and
importing again with ``--force`` skips it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path

import anyio
import anyio.to_thread
import orjson

from daemon.cli import CommandError
from daemon.commands import hold_store, is_url
from daemon.config import load_settings
from daemon.http.validation import is_valid_external_id
from eventstore import ConcurrencyError, EventStore, EventStoreError, RecordedEvent, open_store
from projections.events import external_id_of
from projections.longruns import one_failure

HELP = "load a JSONL event log into the store"
READS_SETTINGS = True

_GROUP = 64  # consecutive events of one stream appended (atomically) together
_LOT = 4_000  # events handed to the store at once
_READ_BYTES = 1 << 20  # lines read from the file at a time, off the event loop


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="JSON lines written by spotsync export")
    parser.add_argument(
        "--force",
        action="store_true",
        help="import into a store that already has events (stored event ids are skipped)",
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None))
    source = Path(args.file)
    if not source.is_file():
        raise CommandError(f"no such file: {args.file}")
    database = settings.database
    if not is_url(database) and not Path(database).parent.is_dir():
        raise CommandError(f"the folder of {database} does not exist (set SPOTSYNC_DATABASE)")
    try:
        added, skipped = anyio.run(_import, database, source, args.force)
    except EventStoreError as exc:
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror}") from exc
    already = f" ({skipped} were already stored)" if skipped else ""
    print(f"imported {added} events{already}", file=sys.stderr)
    return 0


async def _import(database: str, source: Path, force: bool) -> tuple[int, int]:
    async with await open_store(database) as store:
        await hold_store(store, "as its handlers would act on the imported events")
        present = await store.last_position()
        if present and not force:
            raise CommandError(
                f"the store already holds {present} events; import into an empty store, "
                "or pass --force to add to it"
            )
        # Every line is checked first: a broken one imports nothing.
        await anyio.to_thread.run_sync(_check_file, source)
        importer = _Importer(store)
        with one_failure():  # a broken line: its own error, not a group of one
            lots_of = _lots(source, distinct=present > 0)
            async with anyio.create_task_group() as tg, aclosing(lots_of) as lots:
                async for lot in lots:
                    await importer.room.acquire()
                    tg.start_soon(importer.append, lot, tg.cancel_scope)
        if importer.failure is not None:
            raise importer.failure
        await store.refresh_statistics()  # what runs next (rebuild, replay) reads it all
        return importer.added, importer.skipped


class _Importer:
    """Appends lots of groups of events, one at a time: the next lot is parsed while one
    is written, and handed over once that one is stored and found refused nowhere (the
    first refusal cancels the rest)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.room = anyio.Semaphore(1)
        self.added = self.skipped = 0
        self.failure: Exception | None = None

    async def append(self, lot: list[list[RecordedEvent]], scope: anyio.CancelScope) -> None:
        try:
            if self.failure is None:
                await self._append(lot, scope)
        finally:
            self.room.release()  # after a failure is known: the next lot is then not stored

    async def _append(self, lot: list[list[RecordedEvent]], scope: anyio.CancelScope) -> None:
        try:
            outcomes = await self.store.append_batch(
                [
                    (group[0].stream, [e.as_new_event() for e in group], group[0].version - 1)
                    for group in lot
                ]
            )
        except EventStoreError as exc:
            self._fail(exc, scope)
            return
        for group, outcome in zip(lot, outcomes, strict=True):
            if isinstance(outcome, ConcurrencyError):
                first = group[0]
                self._fail(
                    CommandError(
                        f"stream {first.stream!r} is at version {outcome.actual} in the store, "
                        f"but the file continues it at version {first.version}; it holds other "
                        "events (what was imported before stays: import again with --force to "
                        "skip it)"
                    ),
                    scope,
                )
            elif isinstance(outcome, EventStoreError):
                self._fail(outcome, scope)
            elif outcome.duplicate:
                self.skipped += len(group)
            else:
                self.added += len(group)

    def _fail(self, error: Exception, scope: anyio.CancelScope) -> None:
        if self.failure is None:
            self.failure = error
            scope.cancel()


async def _lots(
    source: Path, *, distinct: bool
) -> AsyncGenerator[list[list[RecordedEvent]], None]:
    """The groups of ``_groups``, about ``_LOT`` events a list. ``distinct``: a stream at
    most once a lot. (A store with events of its own may refuse a group; a later group
    of the same stream in the same lot could then fit the store's version by chance, and
    would be stored after events that are not the file's.)"""
    lot: list[list[RecordedEvent]] = []
    streams: set[str] = set()
    size = 0
    async for group in _groups(source):
        stream = group[0].stream
        if lot and (size >= _LOT or (distinct and stream in streams)):
            yield lot
            lot, size = [], 0
            streams.clear()
        lot.append(group)
        streams.add(stream)
        size += len(group)
    if lot:
        yield lot


async def _groups(source: Path) -> AsyncGenerator[list[RecordedEvent], None]:
    """Runs of consecutive versions of one stream, the file read a megabyte at a time."""
    group: list[RecordedEvent] = []
    with source.open("rb") as file:
        number = 0
        while lines := await anyio.to_thread.run_sync(file.readlines, _READ_BYTES):
            for line in lines:
                number += 1
                if not line.strip():
                    continue
                event = _parse(line, source, number)
                last = group[-1] if group else None
                if last is not None and (
                    event.stream != last.stream
                    or event.version != last.version + 1
                    or len(group) >= _GROUP
                ):
                    yield group
                    group = []
                group.append(event)
    if group:
        yield group


def _check_file(source: Path) -> None:
    """Parse every line, raising on the first that is not an event envelope."""
    with source.open("rb") as file:
        for number, line in enumerate(file, start=1):
            if line.strip():
                _parse(line, source, number)


def _parse(line: bytes, source: Path, number: int) -> RecordedEvent:
    try:
        event = RecordedEvent.from_json(line)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CommandError(f"{source}:{number}: not an event envelope ({exc})") from None
    problem = _problem(event)
    if problem is not None:
        raise CommandError(f"{source}:{number}: not an event envelope ({problem})")
    return event


def _problem(event: RecordedEvent) -> str | None:
    """What makes a parsed envelope unfit to store, if anything."""
    if event.version < 1:
        return "version must be 1 or more"
    if not event.stream or not event.type:
        return "stream and type must not be empty"
    if not isinstance(event.data, dict):
        return "data must be a JSON object"
    if not isinstance(event.metadata, dict):
        return "metadata must be a JSON object"
    event_id = event.metadata.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        return "metadata.event_id must be a non-empty string"
    for name in ("causation_id", "correlation_id", "source"):
        if not isinstance(event.metadata.get(name), str | None):
            return f"metadata.{name} must be a string or null"
    external_id = external_id_of(event.stream)
    if external_id is not None and not is_valid_external_id(external_id):
        return f"stream {event.stream!r} does not name a valid external id"
    return None
