"""`spotsync import`: load a JSONL event log into the store."""

from __future__ import annotations

import argparse

from daemon.cli import CommandError

HELP = "load a JSONL event log into the store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise CommandError("not yet available in this version")
