"""`spotsync reconcile [--limit N]`: one bounded reconciliation pass now.

It asks SpotDraft for the status of contracts that have heard nothing for
SPOTSYNC_RECONCILE_STALE_AFTER (most overdue first), at most N calls, and records the
answers; a running daemon's handlers act on them (pulling what a missed webhook would
have). It reads the read models as the daemon last projected them.
"""

from __future__ import annotations

import argparse

import anyio

from daemon.cli import CommandError
from daemon.commands import existing_store
from daemon.config import Settings, load_settings
from eventstore import EventStoreError, open_store
from handlers.reconciler import ReconcileReport, reconcile_once
from handlers.spotdraft import RateBudget, SpotDraftClient, SpotDraftCredentials, SpotDraftError

HELP = "run one bounded reconciliation pass now"
READS_SETTINGS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "It records SpotDraft's answers as events and acts on none of them itself: a "
        "running daemon's handlers do (pulling what a missed webhook would have), or the "
        "next `spotsync run` when none is running."
    )
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        default=None,
        help="at most N status calls (default: SPOTSYNC_RECONCILE_BATCH)",
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None))
    limit = settings.reconcile_batch if args.limit is None else int(args.limit)
    if limit < 0:
        raise CommandError("--limit must be 0 or more")
    credentials = _credentials(settings)
    existing_store(settings.database)
    try:
        report = anyio.run(_reconcile, settings, credentials, limit)
    except EventStoreError as exc:
        raise CommandError(f"cannot read {settings.database}: {exc}") from None
    except SpotDraftError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"{report.status_calls} status calls, {report.nudged} contracts nudged, "
        f"{report.errors} errors"
    )
    for external_id in report.external_ids:
        print(f"  {external_id}")
    return 0


def _credentials(settings: Settings) -> SpotDraftCredentials:
    missing = [
        name
        for name, value in (
            ("SPOTDRAFT_BASE_URL", settings.base_url),
            ("SPOTDRAFT_CLIENT_ID", settings.client_id),
            ("SPOTDRAFT_CLIENT_SECRET", settings.client_secret),
        )
        if not value
    ]
    if missing:
        raise CommandError(f"set {', '.join(missing)} to call SpotDraft")
    try:
        return SpotDraftCredentials(
            str(settings.base_url), str(settings.client_id), str(settings.client_secret)
        )
    except SpotDraftError as exc:
        raise CommandError(str(exc)) from None


async def _reconcile(
    settings: Settings, credentials: SpotDraftCredentials, limit: int
) -> ReconcileReport:
    budget = RateBudget(settings.rate_limit)
    async with (
        await open_store(settings.database) as store,
        SpotDraftClient(credentials, budget=budget) as client,
    ):
        return await reconcile_once(
            store, client, stale_after=settings.reconcile_stale_after, batch=limit
        )
