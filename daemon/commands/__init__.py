"""One module per sub-command: ``HELP``, ``add_arguments(parser)``, ``run(args) -> exit code``."""

from __future__ import annotations

import os

from daemon.cli import CommandError


def is_url(database: str) -> bool:
    return database == "memory:" or database.startswith(("postgresql://", "postgres://"))


def existing_store(database: str) -> str:
    """``database``, when it names a store that is there: a command that reads the log
    must not make an empty one (and report on it) because the path was mistyped."""
    if not is_url(database) and not os.path.exists(database):
        raise CommandError(f"no event store at {database} (set SPOTSYNC_DATABASE)")
    return database
