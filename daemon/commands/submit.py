"""`spotsync submit`: submit a contract request (JSON file) to a running daemon."""

from __future__ import annotations

import argparse

from daemon.cli import CommandError

HELP = "submit a contract request (JSON file) to a running daemon"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise CommandError("not yet available in this version")
