"""`spotsync events`: print the event log as a timeline or as JSON lines."""

from __future__ import annotations

import argparse

from daemon.cli import CommandError

HELP = "print the event log as a timeline or as JSON lines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise CommandError("not yet available in this version")
