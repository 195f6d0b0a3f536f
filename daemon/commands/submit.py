"""`spotsync submit`: submit a contract request (JSON file) to a running daemon.

It does what a source system does: ``POST /v1/contracts`` with the file's JSON and
the bearer token. The answer is printed as one line: status, external id and url.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import httpx

from daemon.cli import CommandError
from daemon.config import load_settings

HELP = "submit a contract request (JSON file) to a running daemon"
READS_SETTINGS = True
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE.json", help="a SpotDraft v2.1 create-contract payload"
    )
    parser.add_argument(
        "--url", help="the daemon's base url (default: http:// and SPOTSYNC_LISTEN)"
    )
    parser.add_argument("--token", help="bearer token (default: SPOTSYNC_API_TOKEN)", default=None)


def _base_url(args: argparse.Namespace, listen_host: str, listen_port: int) -> str:
    if args.url:
        url = str(args.url)
        return url if "://" in url else "http://" + url
    # A daemon listening on every interface is reached on loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen_host, listen_host)  # noqa: S104 - mapped away, never bound
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{listen_port}"


def _read_payload(path: str) -> bytes:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path} is not valid JSON: {exc}") from None
    return raw


def _describe_error(response: httpx.Response) -> str:
    try:
        error: Any = response.json()["error"]
        text = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} {response.reason_phrase}".strip()
    fields = error.get("fields") if isinstance(error, dict) else None
    if isinstance(fields, list) and fields:
        text += " (" + "; ".join(f"{f.get('field')}: {f.get('message')}" for f in fields) + ")"
    return f"{response.status_code} {text}"


def run(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None))
    token = args.token or os.environ.get("SPOTSYNC_API_TOKEN") or settings.api_token
    base = _base_url(args, settings.listen_host, settings.listen_port).rstrip("/")
    payload = _read_payload(args.file)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            response = client.post(base + "/v1/contracts", content=payload, headers=headers)
    except httpx.ConnectError:
        raise CommandError(f"cannot reach the daemon at {base}: connection refused") from None
    except httpx.TimeoutException:
        raise CommandError(f"the daemon at {base} did not answer in time") from None
    except httpx.HTTPError as exc:
        raise CommandError(f"request to {base} failed: {type(exc).__name__}") from None
    if response.status_code >= 400:
        raise CommandError(_describe_error(response))
    try:
        answer = response.json()
        external_id, url = answer["external_id"], answer["url"]
    except (ValueError, KeyError, TypeError):
        raise CommandError(
            f"{response.status_code}: the daemon's answer is not understood"
        ) from None
    state = "accepted" if response.status_code == 202 else "already submitted"
    print(f"{response.status_code} {state}: {external_id} {base}{url}")
    return 0
