"""N contracts through the whole flow against the sandbox: how well spotsync spends its budget.

Prints SpotDraft calls per contract (target <= 4.1 on a clean run), 429s served
(target 0), API budget utilisation at the configured rate (target >= 95 %), and the
time from the first CONTRACT_EXECUTED webhook to ``synced`` (median, p99). The last
line is one JSON object of those figures.

    python -m bench.flow --contracts 100
"""

from __future__ import annotations

import argparse
import copy
import logging
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson

from daemon.config import Settings
from daemon.demo import SinkRecorder
from daemon.demo_contracts import ACME
from daemon.logging import configure_logging
from daemon.runtime import running_daemon
from daemon.sandbox import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_HMAC_KEY,
    Sandbox,
    SandboxOptions,
)
from daemon.serving import bind, serving
from eventstore import RecordedEvent
from projections.events import EventType, contract_stream


def request(n: int) -> dict[str, Any]:
    body = copy.deepcopy(ACME)
    body["external_metadata"]["id"] = f"bench-deal-{n:05d}"
    body["send_to_counterparties"] = {}
    return body


async def run(contracts: int, rate: float, auto_sign: float) -> dict[str, Any]:
    token = secrets.token_urlsafe(16)
    sink = SinkRecorder()
    bound = bind()
    options = SandboxOptions(webhook_url=f"{bound.url}/webhooks/spotdraft", auto_sign=auto_sign)
    with tempfile.TemporaryDirectory() as tmp:
        async with serving(sink.app()) as sink_url, Sandbox.serve(options) as sandbox:
            settings = Settings(
                database=str(Path(tmp) / "bench.db"),
                listen=f"127.0.0.1:{bound.port}",
                api_token=token,
                base_url=sandbox.url,
                client_id=DEFAULT_CLIENT_ID,
                client_secret=DEFAULT_CLIENT_SECRET,
                hmac_key=DEFAULT_HMAC_KEY,
                documents_dir=str(Path(tmp) / "documents"),
                sink_url=f"{sink_url}/notify",
                sink_secret="bench-sink-secret",
                rate_limit=rate,
            )
            started = time.perf_counter()
            async with running_daemon(settings, bound=bound) as daemon:
                headers = {"authorization": f"Bearer {token}"}
                async with httpx.AsyncClient(base_url=daemon.url, headers=headers) as http:
                    for n in range(contracts):
                        (await http.post("/v1/contracts", json=request(n))).raise_for_status()
                    with anyio.fail_after(60 + contracts * 6 / rate):
                        while True:
                            listing = (
                                await http.get("/v1/contracts", params={"limit": 500})
                            ).json()["contracts"]
                            done = [c for c in listing if c["sync"] == "synced"]
                            if len(done) == contracts:
                                break
                            await anyio.sleep(0.2)
                elapsed = time.perf_counter() - started
                streams = [
                    await daemon.store.read_stream(contract_stream(f"bench-deal-{n:05d}"))
                    for n in range(contracts)
                ]
            stats = sandbox.stats.to_json()
    return figures(streams, stats, contracts, rate, elapsed)


def figures(
    streams: list[list[RecordedEvent]],
    stats: dict[str, Any],
    contracts: int,
    rate: float,
    elapsed: float,
) -> dict[str, Any]:
    calls = [
        e
        for stream in streams
        for e in stream
        if e.type == EventType.SPOTDRAFT_CALL_RECORDED
        and str(e.data.get("path", "")).startswith("/api/")
    ]
    times = sorted(e.recorded_at.timestamp() for e in calls)
    window = times[-1] - times[0] if len(times) > 1 else 0.0
    # n calls evenly spaced at the budget take (n - 1) / rate seconds.
    utilisation = (len(times) - 1) / (window * rate) if window else 0.0
    latencies = sorted(executed_to_synced(stream) for stream in streams)
    api_calls = sum(
        n
        for endpoint, by_status in stats["calls"].items()
        if endpoint.split(" ", 1)[-1].startswith("/api/")
        for n in by_status.values()
    )
    return {
        "contracts": contracts,
        "rate_limit": rate,
        "seconds": round(elapsed, 2),
        "calls_per_contract": round(api_calls / contracts, 3),
        "recorded_calls_per_contract": round(len(calls) / contracts, 3),
        "served_429": stats["rate_limited"],
        "budget_utilisation": round(utilisation, 4),
        "executed_to_synced_median_s": round(statistics.median(latencies), 3),
        "executed_to_synced_p99_s": round(
            latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3
        ),
    }


def executed_to_synced(stream: list[RecordedEvent]) -> float:
    executed = next(
        e.recorded_at
        for e in stream
        if e.type == EventType.WEBHOOK_RECEIVED and e.data.get("activity") == "CONTRACT_EXECUTED"
    )
    synced = next(
        e.recorded_at
        for e in stream
        if e.type == EventType.SINK_DELIVERED and e.data.get("milestone") == "synced"
    )
    return (synced - executed).total_seconds()


def main() -> None:
    configure_logging(json=False, level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contracts", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--auto-sign", type=float, default=0.05)
    args = parser.parse_args()
    result = anyio.run(run, args.contracts, args.rate, args.auto_sign)
    print(f"contracts                 {result['contracts']} in {result['seconds']} s")
    print(f"SpotDraft calls/contract  {result['calls_per_contract']}  (target <= 4.1)")
    print(f"429s served               {result['served_429']}  (target 0)")
    print(
        f"budget utilisation        {result['budget_utilisation']:.1%} of {args.rate:g} req/s"
        "  (target >= 95 %)"
    )
    print(
        f"EXECUTED -> synced        median {result['executed_to_synced_median_s']} s,"
        f" p99 {result['executed_to_synced_p99_s']} s"
    )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
