"""`spotsync parked`: list work stopped on a permanent error; `parked retry ID` retries it.

A retry is itself an event (``RetryRequested``, source "operator"); a running daemon's
handlers re-run the stopped step when they see it.
"""

from __future__ import annotations

import argparse

import anyio

from daemon.cli import CommandError
from daemon.commands import existing_store
from daemon.config import load_settings
from eventstore import EventStoreError, open_store
from handlers.parked import NotParkedError, ParkedItem, list_parked, retry_parked

HELP = "list work stopped on a permanent error, or retry it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    retry = actions.add_parser("retry", help="re-run the stopped step of one contract")
    retry.add_argument("external_id", metavar="EXTERNAL_ID")
    retry.add_argument("--reason", default=None, help="why (kept in the event)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None))
    database = existing_store(settings.database)
    try:
        if getattr(args, "action", None) == "retry":
            position = anyio.run(_retry, database, args.external_id, args.reason)
            print(f"retry requested for {args.external_id} (position {position})")
            return 0
        items = anyio.run(_list, database)
    except NotParkedError as exc:
        raise CommandError(str(exc)) from None
    except EventStoreError as exc:
        raise CommandError(f"cannot read {settings.database}: {exc}") from None
    if not items:
        print("nothing is parked")
        return 0
    for item in items:
        print(f"{item.external_id}  [{item.kind}: {item.step}]  {item.reason}")
        print(f"    fix: {item.fix}")
    return 0


async def _list(database: str) -> list[ParkedItem]:
    async with await open_store(database) as store:
        return await list_parked(store)


async def _retry(database: str, external_id: str, reason: str | None) -> int:
    async with await open_store(database) as store:
        event = await retry_parked(store, external_id, reason=reason)
    return event.position
