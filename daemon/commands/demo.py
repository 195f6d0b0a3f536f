"""`spotsync demo`: the whole flow on embedded defaults: sandbox and daemon in one process."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import anyio
from rich.console import Console

from daemon.cli import CommandError
from daemon.commands import seconds
from daemon.logging import configure_logging

HELP = (
    "the main job on embedded defaults: a SpotDraft sandbox and the daemon in one process, "
    "driving a few contracts from intake to synced"
)
READS_SETTINGS = False  # it runs on settings of its own: no --config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("spotsync-demo"),
        help="folder for the demo's event log and documents (default ./spotsync-demo)",
    )
    parser.add_argument(
        "--auto-sign",
        type=seconds,
        default=0.5,
        metavar="SECONDS",
        help="how long the sandbox's signatories take for each stage (default 0.5)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=120.0,
        metavar="SECONDS",
        help="give up when the contracts are not all synced by then (default 120)",
    )


def run(args: argparse.Namespace) -> int:
    from daemon.demo import WorkdirError, run_demo

    configure_logging(json=False, level=logging.WARNING)
    console = Console()
    if not console.is_terminal:
        # Piped or captured output has no width of its own; keep the table readable.
        console = Console(width=160)
    try:
        code: int = anyio.run(
            lambda: run_demo(
                args.dir, console, auto_sign=args.auto_sign, give_up_after=args.timeout
            )
        )
    except WorkdirError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        if exc.filename is None:
            raise
        raise CommandError(f"cannot use {exc.filename}: {exc.strerror}") from None
    return code
