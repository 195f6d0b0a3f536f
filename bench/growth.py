"""Appends as the log grows: concurrent webhook-like appends to an empty SQLite store and
to one that already holds a long log, side by side in one run.

    .venv/bin/python -m bench.growth [--events 1000000] [--keep DIR]

The long log is built as ``bench.replay`` builds it (``bench.logs``: whole contract
lifecycles, realistic payloads). Each measurement runs on a fresh copy of its file: 32
appenders, each appending one event at a time (as webhook deliveries do), the store's
group commit batching them. Measured three ways:

- empty: a new store;
- long log: the long log, with the event ids spotsync makes (UUIDv7, ordered by time);
- long log, random ids: the same, each event given a random (v4) id instead, as ids
  were made before, and as a log imported from such a store still has them.

Figures: appends/s, and the long log's rate as a ratio to the empty store's (1.0: the
log's length costs appends nothing). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

from bench.replay import build
from eventstore import NewEvent, open_store

APPENDERS = 32
EACH = 600


def _event(n: int, random_id: bool) -> NewEvent:
    data = {"activity": "CONTRACT_SIGNED", "raw_body": "x" * 800, "n": n}
    if random_id:
        return NewEvent("WebhookReceived", data, "webhook", event_id=str(uuid.uuid4()))
    return NewEvent("WebhookReceived", data, "webhook")


async def appends_per_second(database: str, random_ids: bool) -> float:
    async with await open_store(database) as store:

        async def appender(a: int) -> None:
            for i in range(EACH):
                stream = f"contract-growth-{a}-{i % 50}"
                await store.append(stream, [_event(i, random_ids)], expected_version=None)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for a in range(APPENDERS):
                tg.start_soon(appender, a)
        return APPENDERS * EACH / (time.perf_counter() - started)


def measure(directory: Path, source: Path | None, random_ids: bool) -> float:
    """Appends/s on a fresh copy of ``source`` (None: a new store)."""
    target = directory / "measured.db"
    for leftover in directory.glob("measured.db*"):
        leftover.unlink()
    if source is not None:
        shutil.copyfile(source, target)
        wal = source.with_name(source.name + "-wal")
        if wal.exists():  # left by a build cut short: it holds the log's last pages
            shutil.copyfile(wal, target.with_name(target.name + "-wal"))
    try:
        return anyio.run(appends_per_second, str(target), random_ids)
    finally:
        for leftover in directory.glob("measured.db*"):
            leftover.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the long log")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the long log here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        log = directory / f"growth-{args.events}.db"
        started = time.perf_counter()
        events = anyio.run(build, str(log), args.events)
        print(f"long log: {events:,} events, built in {time.perf_counter() - started:.0f}s")
        figures: dict[str, Any] = {"bench": "growth", "log_events": events}
        runs = {
            "empty": (None, False),
            "long_log": (log, False),
            "long_log_random_ids": (log, True),
        }
        for name, (source, random_ids) in runs.items():
            rate = measure(directory, source, random_ids)
            figures[f"{name}_appends_per_s"] = round(rate)
            ratio = rate / figures["empty_appends_per_s"]
            if source is not None:
                figures[f"{name}_ratio"] = round(ratio, 3)
            print(f"{name:<22} {rate:>9,.0f} appends/s  {ratio:.2f} of the empty store's")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
