"""`spotsync export`: write the event log (or one contract's stream) as JSON lines."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from typing import BinaryIO

import anyio

from daemon.cli import CommandError
from daemon.commands import existing_store
from daemon.config import load_settings
from eventstore import EventStore, EventStoreError, RecordedEvent, open_store
from projections.events import contract_stream

HELP = "write the event log as JSON lines (the envelope format)"
READS_SETTINGS = True

_CHUNK = 1000  # events written per thread hop


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", "-o", metavar="FILE",
        help="write to FILE (created owner-only) instead of stdout",
    )
    parser.add_argument(
        "--external-id", metavar="ID", help="only this contract's events (the stream contract-ID)"
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None))
    database = existing_store(settings.database)
    if args.external_id is not None:  # a mistyped id: say so, and leave no empty file
        anyio.run(_require_contract, database, args.external_id)
    try:
        output = sys.stdout.buffer if args.output is None else _create_private(args.output)
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror}") from exc
    try:
        count: int = anyio.run(_export, database, args.external_id, output)
    except EventStoreError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        if output is not sys.stdout.buffer:
            output.close()
    if args.output is not None:
        print(f"exported {count} events to {args.output}", file=sys.stderr)
    return 0


async def _require_contract(database: str, external_id: str) -> None:
    try:
        async with await open_store(database) as store:
            found = await store.stream_version(contract_stream(external_id)) > 0
    except EventStoreError as exc:
        raise CommandError(str(exc)) from exc
    if not found:
        raise CommandError(f"no contract has external id {external_id!r} in this store")


async def _export(database: str, external_id: str | None, output: BinaryIO) -> int:
    count = 0
    async with await open_store(database) as store:
        chunk: list[bytes] = []
        async for event in _events(store, external_id):
            chunk.append(event.to_json() + b"\n")
            if len(chunk) >= _CHUNK:
                await anyio.to_thread.run_sync(output.writelines, chunk)
                count, chunk = count + len(chunk), []
        await anyio.to_thread.run_sync(output.writelines, chunk)
        await anyio.to_thread.run_sync(output.flush)
    return count + len(chunk)


async def _events(store: EventStore, external_id: str | None) -> AsyncIterator[RecordedEvent]:
    if external_id is None:
        async for event in store.read_all():
            yield event
    else:
        for event in await store.read_stream(contract_stream(external_id)):
            yield event


def _create_private(path: str) -> BinaryIO:
    # The log holds business data: readable by its owner only, like the database.
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
