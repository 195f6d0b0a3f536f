"""`spotsync run`: the daemon: HTTP server, handlers, reconciler and sink, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys

import anyio

from daemon.cli import CommandError
from daemon.commands import startup_failure
from daemon.config import Settings, load_settings
from daemon.logging import configure_logging
from daemon.runtime import Daemon, tune_the_interpreter
from eventstore import EventStoreError

HELP = "the daemon: HTTP server (webhooks, intake, query API), handlers, reconciler and sink"
READS_SETTINGS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure-local",
        action="store_true",
        help="serve the /v1 API without SPOTSYNC_API_TOKEN (only for a loopback address)",
    )
    parser.add_argument(
        "--log-format",
        choices=("json", "console"),
        default="json",
        help="log lines as JSON objects (default) or readable text",
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None))
    if settings.database == "memory:":
        raise CommandError(
            "SPOTSYNC_DATABASE=memory: keeps nothing once the process ends, so what the "
            "daemon acknowledged would be lost; give a SQLite file or a postgresql:// URL"
        )
    if args.insecure_local and settings.listen_host not in ("127.0.0.1", "localhost", "::1"):
        raise CommandError(
            f"--insecure-local serves the API without a token, so it only listens on "
            f"loopback; SPOTSYNC_LISTEN is {settings.listen}"
        )
    configure_logging(
        json=args.log_format == "json", secrets=_secrets(settings), cache_loggers=True
    )
    daemon = Daemon(settings, insecure_local=args.insecure_local)
    tune_the_interpreter()
    try:
        anyio.run(_serve, daemon)
    except (OSError, EventStoreError) as exc:
        raise CommandError(str(exc)) from None
    except BaseExceptionGroup as group:
        # The task group wraps a port in use or an unreachable database: one line, no trace.
        failure = startup_failure(group, (OSError, EventStoreError))
        if failure is None:
            raise
        raise failure from None
    return 0


async def _serve(daemon: Daemon) -> None:
    shutdown = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run, shutdown)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                print(f"spotsync run: {signal.Signals(signum).name}, stopping", file=sys.stderr)
                shutdown.set()
                break


def _secrets(settings: Settings) -> list[str | None]:
    return [settings.client_secret, settings.hmac_key, settings.api_token, settings.sink_secret]
