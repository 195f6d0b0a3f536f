"""`spotsync import`: load a JSONL event log (as written by export) into the store.

Streams, versions, payloads and event ids are kept; each event gets a new position and
``recorded_at`` in this store. Appending with the original event ids makes a repeated
import a no-op, and appending with the original versions refuses to renumber a stream.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import orjson

from daemon.cli import CommandError
from daemon.commands.export import is_url
from daemon.config import load_settings
from eventstore import ConcurrencyError, EventStoreError, RecordedEvent, open_store

HELP = "load a JSONL event log into the store"

_GROUP = 500  # consecutive events of one stream appended (atomically) together


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
    added = skipped = 0
    async with await open_store(database) as store:
        present = await store.last_position()
        if present and not force:
            raise CommandError(
                f"the store already holds {present} events; import into an empty store, "
                "or pass --force to add to it"
            )
        async for group in _groups(source):
            first = group[0]
            try:
                result = await store.append(
                    first.stream,
                    [event.as_new_event() for event in group],
                    expected_version=first.version - 1,
                )
            except ConcurrencyError as exc:
                raise CommandError(
                    f"stream {first.stream!r} is at version {exc.actual} in the store, but the "
                    f"file continues it at version {first.version}; it holds other events"
                ) from exc
            if result.duplicate:
                skipped += len(group)
            else:
                added += len(group)
    return added, skipped


async def _groups(source: Path) -> AsyncIterator[list[RecordedEvent]]:
    """Runs of consecutive versions of one stream, read line by line."""
    group: list[RecordedEvent] = []
    async with await anyio.open_file(source, "rb") as lines:
        number = 0
        async for line in lines:
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


def _parse(line: bytes, source: Path, number: int) -> RecordedEvent:
    try:
        event = RecordedEvent.from_json(line)
        event.event_id  # noqa: B018 - every envelope must carry its event id
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CommandError(f"{source}:{number}: not an event envelope ({exc})") from None
    if event.version < 1:
        raise CommandError(f"{source}:{number}: version must be 1 or more")
    return event
