"""`spotsync projections`: drop and rebuild the read models from the log."""

from __future__ import annotations

import argparse

from daemon.cli import CommandError

HELP = "drop and rebuild the read models from the log"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise CommandError("not yet available in this version")
