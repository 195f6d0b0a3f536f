"""`spotsync export`: write the event log as JSON lines."""

from __future__ import annotations

import argparse

from daemon.cli import CommandError

HELP = "write the event log as JSON lines (the envelope format)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise CommandError("not yet available in this version")
