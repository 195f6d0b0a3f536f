"""`spotsync sandbox`: a local SpotDraft stand-in, faithful to SpotDraft's API description."""

from __future__ import annotations

import argparse
import base64
import binascii
import signal
import sys

import anyio

from daemon.cli import CommandError
from daemon.commands import port, seconds, startup_failure

HELP = "a local SpotDraft stand-in, faithful to SpotDraft's API description"
READS_SETTINGS = False  # it runs on settings of its own: no --config


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, not {text}")
    return value


def _range(text: str) -> tuple[int, int]:
    from daemon.sandbox.options import parse_range

    try:
        return parse_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daemon.sandbox.options import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_HMAC_KEY,
        DEFAULT_RATE_LIMIT_RPS,
    )

    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=port,
        default=8765,
        help="port to listen on, 0 for any free one (default %(default)s)",
    )
    parser.add_argument(
        "--webhook-url",
        metavar="URL",
        help="where to POST signed webhooks (e.g. the daemon's /webhooks/spotdraft)",
    )
    parser.add_argument(
        "--hmac-key",
        metavar="BASE64",
        default=DEFAULT_HMAC_KEY,
        help="webhook signing key, base64 (default: the demo key)",
    )
    parser.add_argument(
        "--client-id",
        default=DEFAULT_CLIENT_ID,
        help="accepted client-id header (default %(default)s)",
    )
    parser.add_argument(
        "--client-secret",
        default=DEFAULT_CLIENT_SECRET,
        help="accepted client-secret header (default: the demo secret)",
    )
    parser.add_argument(
        "--auto-sign",
        metavar="SECONDS",
        type=seconds,
        help="after a send, move to SIGN and then EXECUTED every SECONDS "
        "(default: only on POST /_sandbox/contracts/{id}/advance)",
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        type=int,
        default=0,
        help="seed of every random fault decision (default %(default)s)",
    )
    faults = parser.add_argument_group(
        "faults (also settable at runtime with PUT /_sandbox/faults)"
    )
    faults.add_argument(
        "--api-error-rate",
        metavar="P",
        type=_rate,
        default=0.0,
        help="share of API calls answered 5xx",
    )
    faults.add_argument(
        "--api-timeout-rate",
        metavar="P",
        type=_rate,
        default=0.0,
        help="share of API calls that hang past a client's timeout, then answer 504",
    )
    faults.add_argument(
        "--latency-ms",
        metavar="MIN,MAX",
        type=_range,
        default=(0, 0),
        help="added latency per API call",
    )
    faults.add_argument(
        "--rate-limit-rps",
        metavar="N",
        type=float,
        default=DEFAULT_RATE_LIMIT_RPS,
        help="requests per second per workspace before 429 (default %(default)s)",
    )
    faults.add_argument(
        "--webhook-drop-rate",
        metavar="P",
        type=_rate,
        default=0.0,
        help="share of webhook deliveries never sent",
    )
    faults.add_argument(
        "--webhook-duplicate-rate",
        metavar="P",
        type=_rate,
        default=0.0,
        help="share of webhook deliveries sent twice",
    )
    faults.add_argument(
        "--webhook-reorder",
        action="store_true",
        help="deliver each lifecycle step's webhooks backwards, and after the contract's "
        "next step (a step with none after it waits 1 s)",
    )
    faults.add_argument(
        "--webhook-delay-ms",
        metavar="MIN,MAX",
        type=_range,
        default=(0, 0),
        help="delay before each webhook delivery, each its own (a later one may overtake)",
    )


def run(args: argparse.Namespace) -> int:
    from daemon.sandbox import Faults, FaultsError, SandboxOptions

    try:
        base64.b64decode(args.hmac_key, validate=True)
    except (binascii.Error, ValueError):
        raise CommandError("--hmac-key must be base64") from None
    try:
        faults = Faults(
            api_error_rate=args.api_error_rate,
            api_timeout_rate=args.api_timeout_rate,
            latency_ms=args.latency_ms,
            rate_limit_rps=args.rate_limit_rps,
            webhook_drop_rate=args.webhook_drop_rate,
            webhook_duplicate_rate=args.webhook_duplicate_rate,
            webhook_reorder=args.webhook_reorder,
            webhook_delay_ms=args.webhook_delay_ms,
        )
        options = SandboxOptions(
            client_id=args.client_id,
            client_secret=args.client_secret,
            hmac_key=args.hmac_key,
            webhook_url=args.webhook_url,
            auto_sign=args.auto_sign,
            seed=args.seed,
            faults=faults,
            host=args.host,
            port=args.port,
        )
    except (FaultsError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    try:
        anyio.run(_serve, options)
    except OSError as exc:
        raise CommandError(str(exc)) from None
    except BaseExceptionGroup as group:
        failure = startup_failure(group, (OSError,))
        if failure is None:
            raise
        raise failure from None
    return 0


async def _serve(options: object) -> None:
    from daemon.sandbox import DEFAULT_CLIENT_SECRET, DEFAULT_HMAC_KEY, Sandbox, SandboxOptions

    assert isinstance(options, SandboxOptions)
    async with Sandbox.serve(options) as sandbox:
        print(f"SpotDraft sandbox at {sandbox.url}", flush=True)
        print(f"  client-id:     {options.client_id}")
        # The demo credentials are public and printed; ones the user chose are not echoed.
        demo_secret = options.client_secret == DEFAULT_CLIENT_SECRET
        print(f"  client-secret: {options.client_secret if demo_secret else '(as given)'}")
        demo_key = options.hmac_key == DEFAULT_HMAC_KEY
        print(f"  hmac key:      {options.hmac_key if demo_key else '(as given)'}")
        target = options.webhook_url or "(none; register one: POST /api/v2.1/public/webhooks/)"
        print(f"  webhooks to:   {target}")
        print(f"  control:       {sandbox.url}/_sandbox/ (contracts, faults, stats)")
        print("Ctrl-C to stop.", flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                print("stopping", file=sys.stderr, flush=True)
                break
