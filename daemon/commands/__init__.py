"""One module per sub-command: ``HELP``, ``add_arguments(parser)``, ``run(args) -> exit code``."""

from __future__ import annotations

import argparse
import math
import os

from daemon.cli import CommandError
from eventstore import EventStore, StoreBusyError


def is_url(database: str) -> bool:
    return database == "memory:" or database.startswith(("postgresql://", "postgres://"))


def existing_store(database: str) -> str:
    """``database``, when it names a store that is there: a command that reads the log
    must not make an empty one (and report on it) because the path was mistyped."""
    if not is_url(database) and not os.path.exists(database):
        raise CommandError(f"no event store at {database} (set SPOTSYNC_DATABASE)")
    return database


async def hold_store(store: EventStore, doing: str) -> None:
    """Take the daemon's claim on ``store`` for a command that changes what a running
    daemon works from (its read models, its log): refused while one serves the store,
    as a daemon refuses to start while such a command runs."""
    if not await store.try_claim("daemon"):
        raise StoreBusyError(
            f"a spotsync daemon (or another command) is using this database: stop it "
            f"first, {doing}"
        )


def seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 for any free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, not {text}")
    return value


def startup_failure(
    group: BaseExceptionGroup[BaseException], kinds: tuple[type[Exception], ...]
) -> CommandError | None:
    """The one-line error for a task group that failed only with ``kinds`` (a port in
    use, an unreachable database); None when anything else failed too."""
    reasons, rest = group.split(kinds)
    if reasons is None or rest is not None:
        return None
    error: BaseException = reasons
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return CommandError(str(error))


def log_position(text: str) -> int:
    """An argparse type: a position in the log (0 is before the first event)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a position: {text}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"positions start at 1, not {text}")
    return value
