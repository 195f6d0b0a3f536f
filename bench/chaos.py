"""Crash run: N contracts through a faulty sandbox while the daemon is SIGKILLed K times.

The sandbox (``spotsync sandbox``) and the daemon (``spotsync run``) are separate
processes on loopback; the source system's notification endpoint runs here. The
sandbox answers 5xx (10 %), hangs past the client's timeout (5 %), holds each
create's 201 for 300 ms after committing it, drops (20 %), duplicates (30 %), reorders
and delays webhooks. The daemon is killed at random moments, each while the sandbox
is answering one of its calls (the first while contracts are still being submitted),
and restarted on the same database each time. At the end every promise of SPEC
section 2 is checked and printed; the last line is one JSON object, ``"ok": true``
when all held.

    python -m bench.chaos --contracts 200 --kills 5
    python -m bench.chaos --database postgresql://postgres@127.0.0.1:5432/test

A PostgreSQL URL gets a fresh schema (through ``search_path``), dropped afterwards.
The CI version is ``tests/acceptance/test_chaos.py`` (30 contracts, 2 kills, SQLite).
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from daemon.demo_contracts import ACME
from daemon.serving import serving
from projections.events import EventType

# Distinctive values, so that a leak is found by a plain substring search.
CLIENT_ID = "chaos-client"
CLIENT_SECRET = "chaos-client-secret-Qv7Zx1Lm"
HMAC_KEY_BYTES = b"chaos-hmac-key-Wm47Lk-9b2Rt"
HMAC_KEY = base64.b64encode(HMAC_KEY_BYTES).decode("ascii")
API_TOKEN = "chaos-api-token-Pt93HdKs"
SINK_SECRET = "whsec_" + base64.b64encode(b"chaos-sink-secret-Yr26Qa").decode("ascii")
SECRETS = {
    "client secret": CLIENT_SECRET,
    "HMAC key": HMAC_KEY,
    "HMAC key bytes": HMAC_KEY_BYTES.decode("ascii"),
    "API token": API_TOKEN,
    "sink secret": SINK_SECRET,
    "sink secret bytes": "chaos-sink-secret-Yr26Qa",
}

# The sandbox hangs a "timeout" for 60 s; the daemon gives up after 2 s, so timeouts
# happen, and a create left open by a killed process is leased only 7 s.
SPOTDRAFT_TIMEOUT = "2s"
SANDBOX_FAULTS = [
    "--api-error-rate", "0.10",
    "--api-timeout-rate", "0.05",
    "--latency-ms", "0,80",
    "--webhook-drop-rate", "0.20",
    "--webhook-duplicate-rate", "0.30",
    "--webhook-reorder",
    "--webhook-delay-ms", "0,40",
]
CREATE_HOLD_MS = 300
FINAL_NOTIFICATION = "contract.synced"


@dataclass(frozen=True)
class ChaosOptions:
    workdir: Path
    contracts: int = 200
    kills: int = 5
    # A SQLite path, a postgresql:// URL, or "" for workdir/spotsync.db.
    database: str = ""
    seed: int = 1
    auto_sign: float = 0.3


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class ChaosResult:
    summary: dict[str, Any]
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def failures(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]


@dataclass
class SinkLog:
    """Every notification the source system received, duplicates included."""

    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def notify(request: Request) -> Response:
            body = orjson.loads(await request.body())
            self.received.append((request.headers.get("webhook-id", ""), body))
            return Response(status_code=204)

        return Starlette(routes=[Route("/notify", notify, methods=["POST"])])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def contract_request(external_id: str) -> dict[str, Any]:
    request = copy.deepcopy(ACME)
    request["external_metadata"]["id"] = external_id
    request["contract_name"] = f"Chaos agreement {external_id}"
    request["send_to_counterparties"] = {}
    return request


class DaemonProcess:
    """``spotsync run`` as a child process: started, SIGKILLed, restarted, stopped."""

    def __init__(self, env: dict[str, str], url: str, logs: Path) -> None:
        self.env = env
        self.url = url
        self.logs = logs
        self.process: anyio.abc.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        log = self.logs / f"daemon-{self.starts}.log"
        self.starts += 1
        with log.open("wb") as out:
            self.process = await anyio.open_process(
                [sys.executable, "-m", "daemon", "run"],
                env=self.env,
                stdout=out,
                stderr=out,
            )
        await wait_ready(self.process, f"{self.url}/readyz", what="spotsync run")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        with anyio.fail_after(10):
            await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM, and the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            return await self.process.wait()

    async def aclose(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def wait_ready(process: anyio.abc.Process, url: str, *, what: str) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        with anyio.fail_after(60):
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"{what} exited with {process.returncode} before ready")
                try:
                    if (await http.get(url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.05)


async def until(probe: Callable[[], Awaitable[Any]], *, seconds: float, what: str) -> Any:
    """Poll ``probe`` until it returns something truthy; TimeoutError naming ``what``."""
    try:
        with anyio.fail_after(seconds):
            while True:
                result = await probe()
                if result:
                    return result
                await anyio.sleep(0.2)
    except TimeoutError:
        raise TimeoutError(f"after {seconds:.0f}s still waiting for {what}") from None


@asynccontextmanager
async def database_for(options: ChaosOptions) -> AsyncIterator[str]:
    """The database URL or path the run uses; a PostgreSQL one in a schema of its own."""
    if not options.database.startswith(("postgresql://", "postgres://")):
        yield options.database or str(options.workdir / "spotsync.db")
        return
    from eventstore.postgres import temporary_schema

    async with temporary_schema(options.database, "chaos") as url:
        yield url


async def run_chaos(options: ChaosOptions, *, say: Callable[[str], None] = print) -> ChaosResult:
    """The crash run; ``say`` reports progress."""
    rng = random.Random(options.seed)
    started = time.monotonic()
    workdir = options.workdir
    logs = workdir / "logs"
    await anyio.Path(logs).mkdir(parents=True, exist_ok=True)
    documents = workdir / "documents"
    sink = SinkLog()
    daemon_port, sandbox_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    external_ids = [f"chaos-{options.seed}-{n:04d}" for n in range(options.contracts)]
    kill_moments: list[str] = []

    async with AsyncExitStack() as stack:
        database = await stack.enter_async_context(database_for(options))
        sink_url = await stack.enter_async_context(serving(sink.app()))
        sandbox = await stack.enter_async_context(
            sandbox_process(sandbox_port, daemon_port, options, logs / "sandbox.log")
        )
        env = daemon_env(database, daemon_port, sandbox_url, documents, sink_url)
        daemon = DaemonProcess(env, f"http://127.0.0.1:{daemon_port}", logs)
        stack.push_async_callback(daemon.aclose)
        await daemon.start()
        say(f"sandbox {sandbox_url} (pid {sandbox.pid}), daemon {daemon.url}, {database}")

        api = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=daemon.url, headers={"authorization": f"Bearer {API_TOKEN}"}, timeout=10
            )
        )
        control = await stack.enter_async_context(
            httpx.AsyncClient(base_url=sandbox_url, timeout=10)
        )
        # Every create commits, then holds its 201: kills often land in that window.
        held = await control.put("/_sandbox/faults", json={"create_delay_ms": CREATE_HOLD_MS})
        held.raise_for_status()
        accepted: set[str] = set()
        first_kill_at = rng.randint(1, max(1, options.contracts // 2))
        reached_first_kill = anyio.Event()
        kills_done = anyio.Event()
        mid_request_kills = 0
        # Spread the later kills over the time the work should take at 10 calls/s.
        span = max(2.0, options.contracts * 0.6 / max(1, options.kills))

        async def submit() -> None:
            for external_id in external_ids:
                await submit_one(api, external_id)
                accepted.add(external_id)
                if len(accepted) >= first_kill_at:
                    reached_first_kill.set()
            reached_first_kill.set()

        async def killer() -> None:
            nonlocal mid_request_kills
            for k in range(options.kills):
                if k == 0:
                    await reached_first_kill.wait()
                else:
                    await anyio.sleep(rng.uniform(0.5, span))
                stats = await mid_request(control)
                await daemon.kill()
                calls = sum(sum(s.values()) for s in stats["calls"].values())
                moment = (
                    f"kill {k + 1} at {time.monotonic() - started:.1f}s: "
                    f"{stats['in_flight']} SpotDraft requests in flight, {len(accepted)} "
                    f"submitted, {calls} SpotDraft calls and "
                    f"{stats['webhooks']['sent']} webhook attempts so far"
                )
                mid_request_kills += stats["in_flight"] > 0
                kill_moments.append(moment)
                say(moment)
                await daemon.start()
            kills_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(killer)
            await submit()
        # Every kill has happened; the last daemon now has to finish the work.

        async def all_synced() -> bool:
            try:
                syncs = await contracts_by_sync(api)
            except httpx.TransportError:
                return False
            return all(syncs.get(i) == "synced" for i in external_ids)

        await until(
            all_synced,
            seconds=120 + options.contracts * 3.0,
            what=f"{options.contracts} contracts synced",
        )
        say(f"all {options.contracts} contracts synced at {time.monotonic() - started:.1f}s")
        projections = await contract_views(api)
        metrics = (await api.get("/metrics")).text
        exit_status = await daemon.stop()
        # The daemon is down: the sandbox's list of acknowledged deliveries is final.
        deliveries = (await control.get("/_sandbox/webhooks")).json()["deliveries"]
        sandbox_contracts = (await control.get("/_sandbox/contracts")).json()["contracts"]
        stats = await sandbox_stats(control)
        export_path = workdir / "export.jsonl"
        await spotsync(env, "export", "--output", str(export_path))
        events = [orjson.loads(line) for line in export_path.read_bytes().splitlines()]
        verify = await spotsync(env, "projections", "rebuild", "--verify", check=False)

        checks = [
            Check("daemon exits 0 on SIGTERM", exit_status == 0, f"exit status {exit_status}"),
            check_synced(projections, external_ids),
            check_one_contract_each(sandbox_contracts, external_ids),
            check_deliveries_logged(deliveries, events),
            check_positions(events),
            Check(
                "projections rebuild --verify: no difference",
                verify.returncode == 0,
                verify.stdout.decode(errors="replace").strip().splitlines()[-1],
            ),
            check_documents(projections, sandbox_contracts, documents),
            check_sink(sink, external_ids),
            check_no_secrets(logs, export_path, metrics, projections),
            check_owner_only(database, documents),
        ]
        webhook_attempts = Counter(
            "acknowledged" if d["delivered"] else "never acknowledged" for d in deliveries
        )
        api_statuses: Counter[str] = Counter()
        for by_status in stats["calls"].values():
            api_statuses.update(by_status)
        summary = {
            "ok": all(c.ok for c in checks),
            "contracts": options.contracts,
            "kills": options.kills,
            "database": "postgresql" if database.startswith("postgres") else "sqlite",
            "seed": options.seed,
            "seconds": round(time.monotonic() - started, 1),
            "checks": {c.name: c.ok for c in checks},
            "events": len(events),
            "webhook_deliveries": dict(webhook_attempts),
            "sandbox_api_calls_by_status": dict(sorted(api_statuses.items())),
            "sandbox_webhooks": stats["webhooks"],
            "sink_notifications": len(sink.received),
            "kills_mid_request": mid_request_kills,
            "kill_moments": kill_moments,
        }
        return ChaosResult(summary, checks)
    raise AssertionError("unreachable")  # pragma: no cover - the block always returns


@asynccontextmanager
async def sandbox_process(
    port: int, daemon_port: int, options: ChaosOptions, log: Path
) -> AsyncIterator[anyio.abc.Process]:
    command = [
        sys.executable, "-m", "daemon", "sandbox",
        "--port", str(port),
        "--webhook-url", f"http://127.0.0.1:{daemon_port}/webhooks/spotdraft",
        "--client-id", CLIENT_ID,
        "--client-secret", CLIENT_SECRET,
        "--hmac-key", HMAC_KEY,
        "--auto-sign", str(options.auto_sign),
        "--seed", str(options.seed),
        *SANDBOX_FAULTS,
    ]
    with log.open("wb") as out:
        process = await anyio.open_process(command, stdout=out, stderr=out)
    try:
        await wait_ready(process, f"http://127.0.0.1:{port}/_sandbox/stats", what="sandbox")
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with anyio.move_on_after(10, shield=True):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


def daemon_env(
    database: str, port: int, sandbox_url: str, documents: Path, sink_url: str
) -> dict[str, str]:
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(("SPOTSYNC_", "SPOTDRAFT_"))
    }
    return {
        **inherited,
        "SPOTSYNC_DATABASE": database,
        "SPOTSYNC_LISTEN": f"127.0.0.1:{port}",
        "SPOTSYNC_API_TOKEN": API_TOKEN,
        "SPOTDRAFT_BASE_URL": sandbox_url,
        "SPOTDRAFT_CLIENT_ID": CLIENT_ID,
        "SPOTDRAFT_CLIENT_SECRET": CLIENT_SECRET,
        "SPOTDRAFT_HMAC_KEY": HMAC_KEY,
        "SPOTDRAFT_TIMEOUT": SPOTDRAFT_TIMEOUT,
        "SPOTSYNC_DOCUMENTS_DIR": str(documents),
        "SPOTSYNC_SINK_URL": f"{sink_url}/notify",
        "SPOTSYNC_SINK_SECRET": SINK_SECRET,
        "SPOTSYNC_RECONCILE_INTERVAL": "500ms",
        "SPOTSYNC_RECONCILE_STALE_AFTER": "3s",
    }


async def spotsync(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(
        [sys.executable, "-m", "daemon", *args], env=env, check=check
    )


async def submit_one(api: httpx.AsyncClient, external_id: str) -> None:
    """Submit until the daemon answers 200/202: a kill may cut any attempt short."""
    body = contract_request(external_id)

    async def accepted() -> bool:
        try:
            response = await api.post("/v1/contracts", json=body)
        except httpx.TransportError:
            return False
        if response.status_code in (200, 202):
            return True
        if response.status_code == 503:
            return False
        raise RuntimeError(f"intake of {external_id}: {response.status_code} {response.text}")

    await until(accepted, seconds=120, what=f"the intake of {external_id}")


async def mid_request(control: httpx.AsyncClient, seconds: float = 3.0) -> dict[str, Any]:
    """The sandbox's stats at a moment it is answering a SpotDraft call, if one comes soon."""
    stats = await sandbox_stats(control)
    with anyio.move_on_after(seconds):
        while not stats["in_flight"]:
            await anyio.sleep(0.002)
            stats = await sandbox_stats(control)
    return stats


async def sandbox_stats(control: httpx.AsyncClient) -> dict[str, Any]:
    response = await control.get("/_sandbox/stats")
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


async def contract_views(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every contract's projection, page by page."""
    views: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = await api.get("/v1/contracts", params=params)
        response.raise_for_status()
        page = response.json()
        views.extend(page["contracts"])
        cursor = page["next_cursor"]
        if not cursor:
            return views


async def contracts_by_sync(api: httpx.AsyncClient) -> dict[str, str]:
    return {c["external_id"]: c["sync"] for c in await contract_views(api)}


# -- the end checks ----------------------------------------------------------------------


def check_synced(projections: list[dict[str, Any]], external_ids: list[str]) -> Check:
    syncs = {c["external_id"]: c["sync"] for c in projections}
    behind = {i: syncs.get(i) for i in external_ids if syncs.get(i) != "synced"}
    return Check(
        "every contract synced", not behind, f"{len(external_ids) - len(behind)} synced"
        + (f"; not: {dict(list(behind.items())[:5])}" if behind else "")
    )


def check_one_contract_each(sandbox_contracts: list[dict[str, Any]], ids: list[str]) -> Check:
    counts = Counter(c["external_metadata"].get("id") for c in sandbox_contracts)
    wrong = {i: counts[i] for i in ids if counts[i] != 1}
    extra = set(counts) - set(ids)
    return Check(
        "exactly one SpotDraft contract per external id",
        not wrong and not extra,
        f"{len(sandbox_contracts)} sandbox contracts"
        + (f"; counts off: {wrong}" if wrong else "")
        + (f"; unknown ids: {sorted(extra)[:5]}" if extra else ""),
    )


def _logged_body(data: dict[str, Any]) -> bytes:
    if data.get("raw_body") is not None:
        return str(data["raw_body"]).encode("utf-8")
    return base64.b64decode(data.get("raw_body_base64") or "")


def check_deliveries_logged(
    deliveries: list[dict[str, Any]], events: list[dict[str, Any]]
) -> Check:
    logged = Counter(
        (_logged_body(e["data"]), e["data"].get("signature"))
        for e in events
        if e["type"] == EventType.WEBHOOK_RECEIVED
    )
    acknowledged = [d for d in deliveries if d["delivered"]]
    missing = [
        d for d in acknowledged if (d["body"].encode("utf-8"), d["signature"]) not in logged
    ]
    return Check(
        "every delivery acknowledged 2xx is in the log",
        bool(acknowledged) and not missing,
        f"{len(acknowledged)} acknowledged, {sum(logged.values())} stored"
        + (f"; missing {len(missing)}: {[(m['activity'], m['contract_id']) for m in missing[:5]]}"
           if missing else ""),
    )


def check_positions(events: list[dict[str, Any]]) -> Check:
    positions = [e["position"] for e in events]
    expected = list(range(1, len(events) + 1))
    return Check(
        "positions gap-free 1..N",
        positions == expected,
        f"{len(events)} events"
        + ("" if positions == expected else f"; first wrong at {_first_difference(positions)}"),
    )


def _first_difference(positions: list[int]) -> int:
    for index, position in enumerate(positions, start=1):
        if position != index:
            return index
    return len(positions) + 1


def check_documents(
    projections: list[dict[str, Any]], sandbox_contracts: list[dict[str, Any]], documents: Path
) -> Check:
    expected = {c["id"]: c["document_sha256"] for c in sandbox_contracts}
    root = documents.resolve()
    problems: list[str] = []
    for view in projections:
        document = view.get("document") or {}
        path = (documents / str(document.get("path"))).resolve()
        if not path.is_relative_to(root):
            problems.append(f"{view['external_id']}: {path} is outside {root}")
            continue
        if not path.is_file():
            problems.append(f"{view['external_id']}: no file at {path}")
            continue
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        composite_id = (view.get("spotdraft") or {}).get("id")
        if not actual == document.get("sha256") == expected.get(composite_id):
            problems.append(f"{view['external_id']}: sha256 differs")
    return Check(
        "every document's sha256 matches SpotDraft's",
        not problems,
        f"{len(projections) - len(problems)} documents match" + "; ".join(["", *problems[:3]]),
    )


def check_sink(sink: SinkLog, external_ids: list[str]) -> Check:
    ids_by_contract: defaultdict[str, set[str]] = defaultdict(set)
    for webhook_id, body in sink.received:
        if body.get("type") == FINAL_NOTIFICATION:
            ids_by_contract[body["data"]["external_id"]].add(webhook_id)
    missing = [i for i in external_ids if i not in ids_by_contract]
    differing = {i: n for i, n in ids_by_contract.items() if len(n) != 1}
    finals = sum(1 for _, b in sink.received if b.get("type") == FINAL_NOTIFICATION)
    return Check(
        "the sink received each final notification (repeats share a webhook-id)",
        not missing and not differing,
        f"{finals} final notifications for {len(ids_by_contract)} contracts"
        + (f"; missing {missing[:5]}" if missing else "")
        + (f"; several webhook-ids: {list(differing)[:5]}" if differing else ""),
    )


def check_no_secrets(
    logs: Path, export: Path, metrics: str, projections: list[dict[str, Any]]
) -> Check:
    places: dict[str, bytes] = {
        path.name: path.read_bytes() for path in sorted(logs.glob("daemon-*.log"))
    }
    places["export"] = export.read_bytes()
    places["/metrics"] = metrics.encode()
    places["query API"] = orjson.dumps(projections)
    found = [
        f"{name} in {place}"
        for place, text in places.items()
        for name, secret in SECRETS.items()
        if secret.encode() in text
    ]
    return Check(
        "no secret in logs, events, export, /metrics or the query API",
        not found,
        f"searched {len(places)} places for {len(SECRETS)} secrets"
        + (f"; found: {found}" if found else ""),
    )


def check_owner_only(database: str, documents: Path) -> Check:
    paths = [documents, *sorted(documents.iterdir())]
    if "://" not in database:
        paths += [Path(f"{database}{suffix}") for suffix in ("", "-wal", "-shm")]
    loose = []
    for path in paths:
        if not path.exists():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = 0o700 if path.is_dir() else 0o600
        if mode != wanted:
            loose.append(f"{path.name} {mode:o}")
    return Check(
        "database and documents owner-only", not loose, f"{len(paths)} paths"
        + (f"; too open: {loose[:5]}" if loose else "")
    )


# -- command line ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--contracts", type=int, default=200)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument(
        "--database", default="", help="SQLite path or postgresql:// URL (default: a temp file)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", help="keep logs, export and documents here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spotsync-chaos-") as tmp:
        workdir = Path(args.workdir or tmp)
        options = ChaosOptions(
            workdir=workdir,
            contracts=args.contracts,
            kills=args.kills,
            database=args.database,
            seed=args.seed,
        )
        result = anyio.run(run_chaos, options)
    for check in result.checks:
        print(f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    print(orjson.dumps(result.summary).decode())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
