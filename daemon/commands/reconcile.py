"""`spotsync reconcile`: run one bounded reconciliation pass now."""

from __future__ import annotations

import argparse

from daemon.cli import CommandError

HELP = "run one bounded reconciliation pass now"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise CommandError("not yet available in this version")
