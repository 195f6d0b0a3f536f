"""`spotsync events`: print the event log as a readable timeline or as JSON lines.

The timeline has one line an event: time (UTC), position, contract, type, and what it
means (``projections.timeline``). ``--follow`` keeps printing as events arrive, from this
process or any other (the store notices foreign appends); it ends on Ctrl-C. A closed
pipe (``| head``) ends it quietly too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from typing import TextIO

import anyio

from daemon.cli import CommandError, without_passwords
from daemon.commands import existing_store, log_position
from daemon.config import load_settings
from eventstore import EventStore, EventStoreError, PersistenceError, RecordedEvent, open_store
from eventstore.outages import OnOutage
from projections.events import EventType, contract_stream, external_id_of
from projections.timeline import Timeline

HELP = "print the event log as a timeline or as JSON lines"
READS_SETTINGS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--external-id", metavar="ID", help="only this contract's events")
    parser.add_argument("--stream", metavar="NAME", help="only this stream's events")
    parser.add_argument(
        "--type",
        metavar="TYPE",
        action="append",
        dest="types",
        default=None,
        help="only events of this type (repeatable), e.g. WebhookReceived",
    )
    parser.add_argument(
        "--since",
        metavar="POSITION",
        type=log_position,
        default=1,
        help="start at this position (inclusive)",
    )
    parser.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C"
    )
    parser.add_argument(
        "--json", action="store_true", help="one event envelope (JSON) a line, as export writes"
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None))
    database = existing_store(settings.database)
    if args.external_id is not None and args.stream is not None:
        raise CommandError("give --external-id or --stream, not both")
    known = {str(t) for t in EventType}
    for name in args.types or ():
        if name not in known:
            raise CommandError(f"unknown event type {name!r}; one of: {', '.join(sorted(known))}")
    stream = contract_stream(args.external_id) if args.external_id is not None else args.stream
    printer = _Printer(sys.stdout, as_json=args.json, flush=args.follow)
    try:
        anyio.run(_print_events, database, stream, args, printer)
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep Python's own flush at
        # exit from complaining about the same closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except EventStoreError as exc:
        raise CommandError(f"cannot read {database}: {exc}") from None
    return 0


class _Printer:
    def __init__(self, out: TextIO, *, as_json: bool, flush: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.flush = flush
        self.timeline = Timeline()

    def feed(self, event: RecordedEvent) -> None:
        """Let the timeline see an event that is not printed (context for later lines)."""
        if not self.as_json:
            self.timeline.summary(event)

    def show(self, event: RecordedEvent) -> None:
        if self.as_json:
            self.out.write(event.to_json().decode() + "\n")
        else:
            self.out.write(timeline_line(event, self.timeline.summary(event)) + "\n")
        if self.flush:
            self.out.flush()


def _waiting(outage: PersistenceError, retry_in: float) -> None:
    line = f"spotsync events: {without_passwords(str(outage))}; trying again in {retry_in:.1f} s"
    print(line, file=sys.stderr)


def timeline_line(event: RecordedEvent, summary: str) -> str:
    moment = event.recorded_at
    stamp = f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"
    who = external_id_of(event.stream) or event.stream
    return f"{stamp}  #{event.position:<6} {who:<24} {event.type:<24} {summary}"


async def _print_events(
    database: str, stream: str | None, args: argparse.Namespace, printer: _Printer
) -> None:
    types = set(args.types) if args.types else None
    since = max(1, args.since)
    async with await open_store(database) as store:
        selected = _select(store, stream, since, follow=args.follow, on_outage=_waiting)
        async for event in selected:
            if event.position < since or (types is not None and event.type not in types):
                printer.feed(event)
            else:
                printer.show(event)


async def _select(
    store: EventStore,
    stream: str | None,
    since: int,
    *,
    follow: bool,
    on_outage: OnOutage | None = None,
) -> AsyncIterator[RecordedEvent]:
    """The events to look at, in order; with ``follow``, never ends by itself, and waits
    out a store that goes away (``on_outage`` is told of each try that fails)."""
    start = since
    if stream is not None:
        # The whole stream, also before --since: the timeline needs it to tell a repeated
        # webhook from a first one. Then only the log after it is scanned.
        history = await store.read_stream(stream)
        if not history and not follow:  # a mistyped id, most likely: say so
            who = external_id_of(stream)
            raise CommandError(
                f"no contract has external id {who!r} in this store"
                if who is not None
                else f"no events in stream {stream!r}"
            )
        for event in history:
            yield event
        if not follow:
            return
        start = max(since, history[-1].position + 1 if history else 1)
    source = (
        store.subscribe(from_position=start, on_outage=on_outage)
        if follow
        else store.read_all(from_position=start)
    )
    async for event in source:
        if stream is None or event.stream == stream:
            yield event
