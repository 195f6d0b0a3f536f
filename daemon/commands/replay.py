"""`spotsync replay`: rebuild contract state from a log and show what handlers would do.

With ``--external-id`` one contract in detail: every event with its timeline line, the
commands the handlers' decisions would issue for it now, what the log shows was run,
the differences marked ``!``, and the state at the end (or at ``--until``/``--at``).
Without it, the whole log: only the contracts and events that differ, and a tally.
The exit status is 1 when there are differences, so a changed decision table can be
checked against a real case in a script.

``--from FILE.jsonl`` reads an exported log instead of the store. Its events keep the
positions and times they have in the file (the export's own), so ``--until`` and ``--at``
mean what the exported log says; nothing is written anywhere and nothing is called.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import orjson

from daemon.cli import CommandError
from daemon.commands import existing_store, log_position
from daemon.commands.events import timeline_line
from daemon.config import load_settings
from eventstore import EventStoreError, RecordedEvent, open_store
from eventstore.envelope import parse_timestamp
from handlers.replay import ContractReplay, EventSource, replay_log, replay_stream
from projections.contract import public_view
from projections.events import contract_stream
from projections.timeline import Timeline

HELP = "rebuild contract state from a log and show what handlers would do (no side effects)"
READS_SETTINGS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from", dest="source", metavar="FILE", help="a JSONL log written by export"
    )
    parser.add_argument(
        "--external-id", metavar="ID", help="one contract in detail (default: the whole log)"
    )
    parser.add_argument(
        "--until", metavar="POSITION", type=log_position, help="the state as of this position"
    )
    parser.add_argument(
        "--at", metavar="TIME", help="the state as of this time (ISO 8601, e.g. 2026-11-24T10:00Z)"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object an event, then the state"
    )


def run(args: argparse.Namespace) -> int:
    at: datetime | None = None
    if args.at is not None:
        try:
            at = parse_timestamp(args.at.strip().upper())
        except ValueError:
            raise CommandError(f"--at {args.at!r} is not an ISO 8601 time") from None
    if args.at is not None and args.external_id is None:
        raise CommandError("--at needs --external-id (use --until POSITION for the whole log)")
    if args.source is not None:
        path = Path(args.source)
        if not path.is_file():
            raise CommandError(f"no such file: {args.source}")
        database = None
    else:
        database = existing_store(load_settings(getattr(args, "config", None)).database)
    try:
        differences: int = anyio.run(_replay, database, args, at)
    except EventStoreError as exc:
        raise CommandError(f"cannot read {database}: {exc}") from None
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 1 if differences else 0


async def _replay(database: str | None, args: argparse.Namespace, at: datetime | None) -> int:
    if database is None:
        source = await anyio.to_thread.run_sync(load_log, Path(args.source))
        return await _show(source, args, at)
    async with await open_store(database) as store:
        return await _show(store, args, at)


async def _show(source: EventSource, args: argparse.Namespace, at: datetime | None) -> int:
    out = _Output(args.json)
    if args.external_id is None:
        return await _show_log(source, args.until, out)
    replay = await replay_stream(
        source, contract_stream(args.external_id), until=args.until, until_time=at
    )
    if replay is None:
        raise CommandError(f"no contract has external id {args.external_id!r} in this log")
    out.contract(replay)
    out.state(replay)
    return replay.difference_count


async def _show_log(source: EventSource, until: int | None, out: _Output) -> int:
    contracts = differences = 0
    async for replay in replay_log(source, until=until, states=False):
        contracts += 1
        if replay.difference_count:
            differences += replay.difference_count
            out.contract(replay)
    out.tally(contracts, differences)
    return differences


class _Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def write(self, line: str) -> None:
        sys.stdout.write(line + "\n")

    def json(self, value: Any) -> None:
        self.write(orjson.dumps(value).decode())

    def contract(self, replay: ContractReplay) -> None:
        timeline = Timeline()
        for step in replay.steps:
            summary = timeline.summary(step.event)
            if self.as_json:
                self.json(
                    {
                        "external_id": replay.external_id,
                        "position": step.event.position,
                        "type": step.event.type,
                        "summary": summary,
                        "would_issue": step.issued,
                        "would_call": step.calls,
                        "recorded": step.recorded,
                        "differences": step.differences,
                        "notes": step.notes,
                    }
                )
                continue
            mark = "!" if step.differences else " "
            self.write(f"{mark} {timeline_line(step.event, summary)}")
            if step.issued or step.recorded:
                would = ", ".join(step.issued) or "nothing"
                shown = ", ".join(step.recorded) or "nothing"
                self.write(f"      would issue: {would}  |  log shows: {shown}")
                for call in step.calls:
                    self.write(f"        → {call}")
            for difference in step.differences:
                self.write(f"    ! {difference}")
            for note in step.notes:
                self.write(f"      ({note})")

    def state(self, replay: ContractReplay) -> None:
        state = replay.state
        document = None if state is None else public_view(state.to_document())
        position = 0 if state is None else state.last_position
        if self.as_json:
            self.json(
                {
                    "external_id": replay.external_id,
                    "position": position,
                    "state": document,
                    "differences": replay.difference_count,
                }
            )
            return
        if document is None:
            self.write(f"{replay.external_id} did not exist yet at that point")
        else:
            self.write(f"state of {replay.external_id} at #{position}:")
            self.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        self.write(_count(replay.difference_count))

    def tally(self, contracts: int, differences: int) -> None:
        if self.as_json:
            self.json({"contracts": contracts, "differences": differences})
        else:
            self.write(f"replayed {contracts} contracts: {_count(differences)}")


def _count(differences: int) -> str:
    if differences == 0:
        return "no differences from what the log shows"
    return f"{differences} difference{'s' if differences != 1 else ''} from what the log shows"


@dataclass(slots=True)
class LoadedLog:
    """An exported log held in memory with the positions it has in the file."""

    events: list[RecordedEvent]
    streams: dict[str, list[RecordedEvent]]

    async def read_all(
        self, *, from_position: int = 1, until_position: int | None = None, page_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        for event in self.events:
            if event.position >= from_position and (
                until_position is None or event.position <= until_position
            ):
                yield event

    async def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]:
        return [e for e in self.streams.get(stream, []) if e.version >= from_version]


def load_log(path: Path) -> LoadedLog:
    """Read a JSONL export; a line that is not an envelope is one clear error."""
    events: list[RecordedEvent] = []
    streams: dict[str, list[RecordedEvent]] = {}
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    event = RecordedEvent.from_json(line)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise CommandError(f"{path}:{number}: not an event envelope ({exc})") from None
                events.append(event)
                streams.setdefault(event.stream, []).append(event)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    events.sort(key=lambda e: e.position)
    for history in streams.values():
        history.sort(key=lambda e: e.version)
    return LoadedLog(events, streams)
