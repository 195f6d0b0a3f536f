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
from eventstore import ConcurrencyError, EventStoreError, open_store
from handlers.parked import NotParkedError, ParkedItem, list_parked, retry_parked

HELP = "list work stopped on a permanent error, or retry it"
READS_SETTINGS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    retry = actions.add_parser(
        "retry", help="re-run the stopped step of one contract (or of every parked one)"
    )
    retry.add_argument("external_id", metavar="EXTERNAL_ID", nargs="?")
    retry.add_argument(
        "--all",
        action="store_true",
        help="every parked contract and sink delivery (once what stopped them is fixed)",
    )
    retry.add_argument("--reason", default=None, help="why (kept in the event)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None))
    database = existing_store(settings.database)
    try:
        if getattr(args, "action", None) == "retry":
            if (args.external_id is None) == (not args.all):
                raise CommandError("give one EXTERNAL_ID or --all")
            if args.all:
                return _report(anyio.run(_retry_all, database, args.reason))
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


async def _retry_all(database: str, reason: str | None) -> list[tuple[str, int | str]]:
    """A retry for each parked contract (once, if both it and its sink delivery are):
    its position, or why it was not retried (retried meanwhile, say)."""
    outcomes: list[tuple[str, int | str]] = []
    async with await open_store(database) as store:
        parked = dict.fromkeys(item.external_id for item in await list_parked(store))
        for external_id in parked:
            try:
                event = await retry_parked(store, external_id, reason=reason)
            except NotParkedError as exc:
                outcomes.append((external_id, str(exc)))
            except ConcurrencyError:
                outcomes.append((external_id, f"{external_id} changed meanwhile; look again"))
            else:
                outcomes.append((external_id, event.position))
    return outcomes


def _report(outcomes: list[tuple[str, int | str]]) -> int:
    if not outcomes:
        print("nothing is parked")
    for external_id, outcome in outcomes:
        if isinstance(outcome, int):
            print(f"retry requested for {external_id} (position {outcome})")
        else:
            print(f"not retried: {outcome}")
    return 0
