"""The ``spotsync`` console script: one sub-command a module under ``daemon/commands``.

User mistakes end in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import Protocol

from daemon import __version__
from daemon.config import ConfigError

# The password of a URL's user info (postgresql://user:PASSWORD@host/db).
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s]*@", re.IGNORECASE)
# The password as a query parameter (postgresql://user@host/db?password=PASSWORD), which
# libpq and asyncpg take as well.
# It ends where the URL does: at the next parameter, a space, or the ": " after it.
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#\s]*?(?=:\s|[&#\s]|$)", re.IGNORECASE)


def without_passwords(text: str) -> str:
    """``text`` with every URL password masked: error lines often quote SPOTSYNC_DATABASE."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


class CommandError(Exception):
    """A user-facing failure of a command: its message is printed as one line."""


class Command(Protocol):
    HELP: str
    # False for a command that runs on settings of its own (demo, sandbox): --config,
    # which it would not read, is refused rather than silently ignored.
    READS_SETTINGS: bool

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# name on the command line -> module in daemon.commands
COMMANDS: dict[str, str] = {
    "run": "run",
    "sandbox": "sandbox",
    "demo": "demo",
    "submit": "submit",
    "events": "events",
    "replay": "replay",
    "export": "export",
    "import": "import_",
    "projections": "projections",
    "reconcile": "reconcile",
    "parked": "parked",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spotsync",
        description="Event-sourced integration daemon between business systems and SpotDraft.",
    )
    parser.add_argument("--version", action="version", version=f"spotsync {__version__}")
    parser.add_argument(
        "--config", metavar="FILE", help="TOML file with settings (environment variables win)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module: Command = importlib.import_module(f"daemon.commands.{module_name}")
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        if module.READS_SETTINGS:
            command_parser.add_argument(
                "--config", metavar="FILE", default=argparse.SUPPRESS,
                help="TOML file with settings (environment variables win)",
            )
        module.add_arguments(command_parser)
        command_parser.set_defaults(handler=module.run, reads_settings=module.READS_SETTINGS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is not None and not args.reads_settings:
        print(
            f"spotsync {args.command}: --config does not apply: it runs on settings of its own",
            file=sys.stderr,
        )
        return 2
    try:
        code: int = args.handler(args)
    except (CommandError, ConfigError) as exc:
        print(f"spotsync {args.command}: {without_passwords(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
