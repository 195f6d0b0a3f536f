"""`spotsync replay`: rebuild contract state from a log and show what handlers would do."""

from __future__ import annotations

import argparse

from daemon.cli import CommandError

HELP = "rebuild contract state from a log and show what handlers would do"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise CommandError("not yet available in this version")
