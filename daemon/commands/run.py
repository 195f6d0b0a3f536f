"""`spotsync run`: the daemon: HTTP server, handlers, reconciler and sink."""

from __future__ import annotations

import argparse

from daemon.cli import CommandError

HELP = "the daemon: HTTP server, handlers, reconciler and sink"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise CommandError("not yet available in this version")
