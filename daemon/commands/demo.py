"""`spotsync demo`: the whole flow on embedded defaults: sandbox and daemon in one process."""

from __future__ import annotations

import argparse

from daemon.cli import CommandError

HELP = "the whole flow on embedded defaults: sandbox and daemon in one process"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise CommandError("not yet available in this version")
