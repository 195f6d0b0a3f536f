"""`spotsync sandbox`: a local SpotDraft stand-in, faithful to SpotDraft's API description."""

from __future__ import annotations

import argparse

from daemon.cli import CommandError

HELP = "a local SpotDraft stand-in, faithful to SpotDraft's API description"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise CommandError("not yet available in this version")
