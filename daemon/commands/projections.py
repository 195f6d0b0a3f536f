"""`spotsync projections rebuild [--verify]`: drop and rebuild the read models from the log.

Run it with the daemon stopped (it refuses to start while a daemon serves the store, as
a daemon refuses to start while it runs): the daemon folds the same read models live.
With ``--verify`` the log is folded into shadow tables first and compared row by row
with the live ones; differences are listed and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys

import anyio
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from daemon.cli import CommandError
from daemon.commands import existing_store, hold_store
from daemon.config import load_settings
from eventstore import EventStoreError, open_store
from projections.rebuild import RebuildReport, rebuild

HELP = "drop and rebuild the read models from the log"
READS_SETTINGS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    rebuild_parser = actions.add_parser(
        "rebuild", help="drop the read models and fold the whole log again (daemon stopped)"
    )
    rebuild_parser.add_argument(
        "--verify", action="store_true", help="compare with the live read models and report"
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None))
    try:
        report = anyio.run(_rebuild, existing_store(settings.database), bool(args.verify))
    except EventStoreError as exc:
        raise CommandError(f"cannot rebuild from {settings.database}: {exc}") from None
    rate = report.position / report.seconds if report.seconds else 0.0
    print(
        f"rebuilt the contract read models up to position {report.position} "
        f"in {report.seconds:.1f}s ({rate:,.0f} events/s)"
    )
    if not report.verified:
        return 0
    if report.difference_count == 0:
        print(f"verified: {report.rows_compared} rows, no differences")
        return 0
    count = report.difference_count
    print(f"{count} difference{'s' if count != 1 else ''} from the live read models:")
    for difference in report.differences:
        print(f"  {difference.describe()}")
    hidden = report.difference_count - len(report.differences)
    if hidden:
        print(f"  ... and {hidden} more")
    return 1


async def _rebuild(database: str, verify: bool) -> RebuildReport:
    async with await open_store(database) as store:
        await hold_store(store, "as it folds the read models a rebuild drops")
        if not sys.stderr.isatty():
            return await rebuild(store, verify=verify)
        with _progress_bar() as bar:
            task = bar.add_task("rebuilding", total=None)

            def progress(position: int, last: int) -> None:
                bar.update(task, completed=position, total=last or None)

            return await rebuild(store, verify=verify, on_progress=progress)


def _progress_bar() -> Progress:
    """Events done of the log, events/s and time left, on stderr (a terminal only)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        _RateColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} events/s")
