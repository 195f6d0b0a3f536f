"""`spotsync parked`: list work stopped on a permanent error, or retry it."""

from __future__ import annotations

import argparse

from daemon.cli import CommandError

HELP = "list work stopped on a permanent error, or retry it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise CommandError("not yet available in this version")
