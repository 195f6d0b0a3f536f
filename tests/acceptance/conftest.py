"""The daemon as a user runs it: ``spotsync run`` in its own process, against the sandbox.

The sandbox and the source system's notification endpoint run in the test's process,
on loopback; the daemon is a child process configured only through its environment.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from daemon.demo import SinkRecorder
from daemon.demo_contracts import ACME
from daemon.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_HMAC_KEY, Sandbox
from daemon.serving import serving

API_TOKEN = "acceptance-api-token-7f3c"
SINK_SECRET = "whsec_YWNjZXB0YW5jZS1zaW5rLXNlY3JldA=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def contract_request(external_id: str, *, send: bool = True, **changes: Any) -> dict[str, Any]:
    """The guide's Acme request under another external id."""
    request = copy.deepcopy(ACME)
    request["external_metadata"]["id"] = external_id
    request["contract_name"] = f"Master Services Agreement {external_id}"
    request.update(changes)
    if send:
        request["send_to_counterparties"] = {}
    return request


@dataclass
class Deployment:
    """A sandbox, a sink, and the environment a daemon process runs with."""

    tmp: Path
    sandbox: Sandbox
    sink: SinkRecorder
    port: int
    env: dict[str, str]
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"authorization": f"Bearer {API_TOKEN}"}, timeout=10
        )

    @asynccontextmanager
    async def daemon(self) -> AsyncIterator[anyio.abc.Process]:
        """``spotsync run`` until the block ends (SIGTERM), ready when the block starts."""
        log = self.tmp / f"daemon-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            process = await anyio.open_process(
                [sys.executable, "-m", "daemon", "run"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                await self.wait_ready(process)
                yield process
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    with anyio.fail_after(20):
                        await process.wait()

    async def wait_ready(self, process: anyio.abc.Process) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as http:
            with anyio.fail_after(30):
                while True:
                    if process.returncode is not None:
                        pytest.fail(f"spotsync run exited early:\n{self.log_text()}")
                    try:
                        if (await http.get("/readyz")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await anyio.sleep(0.05)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in self.logs if p.exists())


async def wait_for(
    probe: Callable[[], Any], *, seconds: float, what: str, interval: float = 0.1
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``seconds``."""
    last: Any = None
    try:
        with anyio.fail_after(seconds):
            while True:
                last = await probe()
                if last:
                    return last
                await anyio.sleep(interval)
    except TimeoutError:
        pytest.fail(f"timed out after {seconds}s waiting for {what}; last saw: {last!r}")


async def contracts_by_sync(api: httpx.AsyncClient) -> dict[str, str]:
    response = await api.get("/v1/contracts", params={"limit": 500})
    response.raise_for_status()
    return {c["external_id"]: c["sync"] for c in response.json()["contracts"]}


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    sink = SinkRecorder()
    port = free_port()
    from daemon.sandbox import SandboxOptions

    options = SandboxOptions(
        webhook_url=f"http://127.0.0.1:{port}/webhooks/spotdraft", auto_sign=0.2, seed=11
    )
    async with serving(sink.app()) as sink_url, Sandbox.serve(options) as sandbox:
        env = {
            **os.environ,
            "SPOTSYNC_DATABASE": str(tmp_path / "spotsync.db"),
            "SPOTSYNC_LISTEN": f"127.0.0.1:{port}",
            "SPOTSYNC_API_TOKEN": API_TOKEN,
            "SPOTDRAFT_BASE_URL": sandbox.url,
            "SPOTDRAFT_CLIENT_ID": DEFAULT_CLIENT_ID,
            "SPOTDRAFT_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "SPOTDRAFT_HMAC_KEY": DEFAULT_HMAC_KEY,
            "SPOTSYNC_DOCUMENTS_DIR": str(tmp_path / "documents"),
            "SPOTSYNC_SINK_URL": f"{sink_url}/notify",
            "SPOTSYNC_SINK_SECRET": SINK_SECRET,
            "SPOTSYNC_RECONCILE_INTERVAL": "300ms",
            # Bounds how long a restart waits on a create the killed process left open.
            "SPOTDRAFT_TIMEOUT": "3s",
            "SPOTSYNC_RECONCILE_STALE_AFTER": "1s",
        }
        yield Deployment(tmp_path, sandbox, sink, port, env)
