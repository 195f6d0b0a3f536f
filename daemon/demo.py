"""``spotsync demo``: the whole flow on embedded defaults, in one process.

A SpotDraft sandbox, the daemon (on a SQLite file in the demo folder) and a small
stand-in for the source system's notification endpoint, all on loopback. The demo
submits contract requests over the daemon's HTTP API as a source system would, lets
the sandbox sign them, and shows each contract's progress until it is synced.
"""

from __future__ import annotations

import base64
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from daemon.config import Settings
from daemon.demo_contracts import demo_requests
from daemon.runtime import running_daemon
from daemon.sandbox import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_HMAC_KEY,
    Sandbox,
    SandboxOptions,
)
from daemon.serving import bind, serving

FINAL = {"synced", "failed", "voided"}


@dataclass
class SinkRecorder:
    """The source system's side: notifications received, by ``webhook-id``."""

    received: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> Starlette:
        async def notify(request: Request) -> Response:
            self.received[request.headers.get("webhook-id", "")] = orjson.loads(
                await request.body()
            )
            return Response(status_code=204)

        return Starlette(routes=[Route("/notify", notify, methods=["POST"])])


async def run_demo(
    workdir: Path, console: Console, *, auto_sign: float = 0.5, give_up_after: float = 120.0
) -> int:
    """Run the demo in ``workdir``; 0 when every contract ended synced."""
    database, documents = await _fresh_workdir(workdir)
    api_token = secrets.token_urlsafe(24)
    sink = SinkRecorder()
    bound = bind("127.0.0.1", 0)
    options = SandboxOptions(
        webhook_url=f"{bound.url}/webhooks/spotdraft", auto_sign=auto_sign, seed=7
    )
    async with serving(sink.app()) as sink_url, Sandbox.serve(options) as sandbox:
        settings = Settings(
            database=str(database),
            listen=f"127.0.0.1:{bound.port}",
            api_token=api_token,
            base_url=sandbox.url,
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            hmac_key=DEFAULT_HMAC_KEY,
            documents_dir=str(documents),
            sink_url=f"{sink_url}/notify",
            sink_secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
            reconcile_interval=5.0,
            reconcile_stale_after=10.0,
        )
        console.print(f"[bold]SpotDraft sandbox[/] {sandbox.url}   [bold]spotsync[/] {bound.url}")
        console.print(f"[bold]event log[/] {database}")
        async with running_daemon(settings, bound=bound) as daemon:
            headers = {"authorization": f"Bearer {api_token}"}
            async with httpx.AsyncClient(base_url=daemon.url, headers=headers) as http:
                for request in demo_requests():
                    response = await http.post("/v1/contracts", json=request)
                    response.raise_for_status()
                    console.print(
                        f"submitted {request['external_metadata']['id']} → {response.status_code}"
                    )
                expected = len(demo_requests())
                contracts = await _follow(http, console, expected, give_up_after)
        notified = sum(1 for body in sink.received.values() if body["type"] == "contract.synced")
    console.print(_table(contracts, "Contracts"))
    console.print(f"executed PDFs in [bold]{documents}[/]")
    console.print(f"source system notified of {notified} synced contracts")
    synced = [c for c in contracts if c["sync"] == "synced"]
    if len(synced) < expected:
        console.print(f"[red]{expected - len(synced)} of {expected} contracts did not sync[/]")
        return 1
    return 0


async def _follow(
    http: httpx.AsyncClient, console: Console, expected: int, give_up_after: float
) -> list[dict[str, Any]]:
    """Show the contracts' progress until every one is final (or the time is up)."""
    contracts: list[dict[str, Any]] = []
    live = Live(console=console, auto_refresh=False, transient=True)
    with live, anyio.move_on_after(give_up_after):
        while True:
            response = await http.get("/v1/contracts", params={"limit": 500})
            response.raise_for_status()
            contracts = response.json()["contracts"]
            live.update(_table(contracts, "Progress"), refresh=True)
            if len(contracts) >= expected and all(c["sync"] in FINAL for c in contracts):
                break
            # A display refresh rate, not a wait for a condition: the table is for people.
            await anyio.sleep(0.25)
    return contracts


MARKER = ".spotsync-demo"


def _table(contracts: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("external id", "SpotDraft id", "status", "sync", "key data", "document"):
        table.add_column(column)
    for contract in contracts:
        pointers = contract.get("key_pointers") or {}
        key_data = ", ".join(
            f"{name}={pointers[name]}"
            for name in ("effective_date", "contract_value")
            if name in pointers
        )
        document = (contract.get("document") or {}).get("path") or ""
        table.add_row(
            contract["external_id"],
            (contract.get("spotdraft") or {}).get("id") or "",
            contract.get("status") or "",
            contract["sync"],
            key_data,
            document,
        )
    return table


class WorkdirError(Exception):
    """The folder given to the demo is not one it may use; the message says why."""


async def _fresh_workdir(workdir: Path) -> tuple[Path, Path]:
    """The demo's own database and documents folder, emptied of a previous run.

    Only a folder the demo made (it leaves ``MARKER`` there) is emptied: pointed at a
    daemon's folder by mistake, it refuses rather than delete a real log.
    """
    root = anyio.Path(workdir)
    if await root.exists() and not await root.is_dir():
        raise WorkdirError(f"{workdir} is not a folder")
    await root.mkdir(parents=True, exist_ok=True, mode=0o700)
    database = workdir / "spotsync.db"
    marker = root / MARKER
    if not await marker.exists():
        for name in (database.name, "documents"):
            if await (root / name).exists():
                raise WorkdirError(
                    f"{workdir / name} was not made by the demo; choose another --dir"
                )
        await marker.write_text("made by spotsync demo: its files here are rebuilt each run\n")
    for suffix in ("", "-wal", "-shm"):
        await anyio.Path(f"{database}{suffix}").unlink(missing_ok=True)
    documents = workdir / "documents"
    if await anyio.Path(documents).exists():
        await anyio.to_thread.run_sync(shutil.rmtree, documents)
    return database, documents
