"""Event store throughput, side by side with raw sqlite3 on the same ~2 KB events.

    .venv/bin/python bench/eventstore.py [--quick]

Both sides write the same rows into the same kind of table (the store's own schema,
WAL, synchronous=FULL), in fresh files in a temporary directory. With
SPOTSYNC_TEST_POSTGRES_URL set, PostgreSQL appends are measured too (in a throwaway
schema). The last line printed is one JSON object with every figure and ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

# Run as a script, this file's folder comes first on the import path, and the file's
# name would shadow the eventstore package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from eventstore import EventStore, NewEvent, open_store
from eventstore.envelope import format_timestamp, utcnow
from eventstore.migrations import migrations, sqlite_statements

TARGETS = {"one_writer": 0.4, "concurrent_100": 0.6, "read_all": 0.8}


def payload(n: int) -> dict[str, Any]:
    """A ~2 KB webhook-like event body."""
    return {
        "activity": "CONTRACT_STATUS_UPDATED",
        "contract_id": 100000 + n,
        "external_id": f"hubspot-deal-{n}",
        "status": "SIGN",
        "counterparties": [{"name": f"Party {i}", "email": f"p{i}@example.com"} for i in range(4)],
        "raw_body": ("lorem ipsum dolor sit amet " * 70)[:1800],
    }


def new_event(n: int) -> NewEvent:
    return NewEvent("WebhookReceived", payload(n), "webhook")


# -- raw sqlite3 ---------------------------------------------------------------------------


def raw_connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    for migration in migrations("sqlite"):
        for statement in sqlite_statements(migration.sql):
            db.execute(statement)
    return db


def raw_rows(start: int, count: int, streams: int | None = None) -> list[tuple[Any, ...]]:
    """Rows as the store writes them: one stream per event, or ``streams`` round-robin."""
    at = format_timestamp(utcnow())
    rows = []
    for n in range(start, start + count):
        event = new_event(n)
        stream, version = (
            (f"one-{n}", 1) if streams is None else (f"writer-{(n - 1) % streams}",
                                                      (n - 1) // streams + 1)
        )
        rows.append((n, stream, version, event.type, json.dumps(event.data),
                     json.dumps(event.metadata()), event.event_id, at))
    return rows


INSERT = ("INSERT INTO events (position, stream, version, type, data, metadata, event_id,"
          " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def raw_single_commits(path: Path, count: int) -> float:
    db = raw_connect(path)
    rows = raw_rows(1, count)
    started = time.perf_counter()
    for row in rows:
        db.execute("BEGIN")
        db.execute(INSERT, row)
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return count / elapsed


def raw_batched(path: Path, batches: int, size: int = 1000) -> float:
    db = raw_connect(path)
    # The same streams as the 100 concurrent appenders write.
    all_rows = [raw_rows(1 + b * size, size, streams=100) for b in range(batches)]
    started = time.perf_counter()
    for rows in all_rows:
        db.execute("BEGIN")
        db.executemany(INSERT, rows)
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return batches * size / elapsed


def raw_read(path: Path) -> float:
    db = sqlite3.connect(path)
    started = time.perf_counter()
    rows = db.execute(
        "SELECT position, stream, version, type, data, metadata, recorded_at FROM events"
        " ORDER BY position"
    ).fetchall()
    decoded = [(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6]) for r in rows]
    elapsed = time.perf_counter() - started
    db.close()
    return len(decoded) / elapsed


# -- the store -----------------------------------------------------------------------------


async def store_one_writer(store: EventStore, count: int) -> float:
    events = [new_event(n) for n in range(count)]
    started = time.perf_counter()
    for n, event in enumerate(events):
        await store.append(f"one-{n}", [event], expected_version=0)
    return count / (time.perf_counter() - started)


async def store_concurrent(store: EventStore, writers: int, each: int) -> float:
    events = [[new_event(w * each + n) for n in range(each)] for w in range(writers)]

    async def write(w: int) -> None:
        for n, event in enumerate(events[w]):
            await store.append(f"writer-{w}", [event], expected_version=n)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for w in range(writers):
            tg.start_soon(write, w)
    return writers * each / (time.perf_counter() - started)


async def store_read(store: EventStore) -> float:
    started = time.perf_counter()
    count = 0
    async for _ in store.read_all():
        count += 1
    return count / (time.perf_counter() - started)


async def with_store(url: str, fn: Callable[[EventStore], Awaitable[float]]) -> float:
    async with await open_store(url) as store:
        return await fn(store)


async def postgres_figures(url: str, single: int, writers: int, each: int) -> dict[str, float]:

    from eventstore.postgres import temporary_schema

    async with temporary_schema(url, "bench") as schema_url, await open_store(schema_url) as store:
        one = await store_one_writer(store, single)
        many = await store_concurrent(store, writers, each)
    return {"pg_one_writer_per_s": one, "pg_concurrent_100_per_s": many}


async def main(quick: bool) -> dict[str, Any]:
    """Each pair runs ``rounds`` times, alternating, and keeps its best: the machine is shared."""
    single, batches, each, rounds = (300, 4, 40, 1) if quick else (1000, 10, 100, 3)
    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = max(best.get(name, 0.0), value)

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for r in range(rounds):
            keep("raw_single_commit_per_s", raw_single_commits(tmp / f"raw1-{r}.db", single))
            keep("one_writer_per_s", await with_store(
                str(tmp / f"one-{r}.db"), lambda s: store_one_writer(s, single)
            ))
            keep("raw_batched_1000_per_s", raw_batched(tmp / f"raw2-{r}.db", batches))
            keep("concurrent_100_per_s", await with_store(
                str(tmp / f"many-{r}.db"), lambda s: store_concurrent(s, 100, each)
            ))
            # Read what each side wrote: the same number of the same events.
            keep("raw_read_json_per_s", raw_read(tmp / f"raw2-{r}.db"))
            keep("read_all_per_s", await with_store(str(tmp / f"many-{r}.db"), store_read))
    figures: dict[str, Any] = dict(best)
    figures["rounds"] = rounds
    figures["ratio_one_writer"] = figures["one_writer_per_s"] / figures["raw_single_commit_per_s"]
    figures["ratio_concurrent_100"] = (
        figures["concurrent_100_per_s"] / figures["raw_batched_1000_per_s"]
    )
    figures["ratio_read_all"] = figures["read_all_per_s"] / figures["raw_read_json_per_s"]
    postgres_url = os.environ.get("SPOTSYNC_TEST_POSTGRES_URL")
    if postgres_url:
        figures.update(await postgres_figures(postgres_url, single // 2, 100, each // 4))
    figures["targets"] = TARGETS
    figures["targets_met"] = all(
        figures[f"ratio_{name}"] >= target for name, target in TARGETS.items()
    )
    return figures


def report(figures: dict[str, Any]) -> None:
    rows = [
        ("durable appends, one writer", "one_writer_per_s", "raw single-row commits",
         "raw_single_commit_per_s", "ratio_one_writer"),
        ("durable appends, 100 concurrent", "concurrent_100_per_s", "raw 1000-row batches",
         "raw_batched_1000_per_s", "ratio_concurrent_100"),
        ("read_all + decode", "read_all_per_s", "raw select + json.loads",
         "raw_read_json_per_s", "ratio_read_all"),
    ]
    print(f"{'spotsync SQLite':<34}{'events/s':>10}   {'raw sqlite3':<26}{'rows/s':>10}  ratio")
    for label, key, raw_label, raw_key, ratio in rows:
        target = TARGETS[ratio.removeprefix("ratio_")]
        print(f"{label:<34}{figures[key]:>10.0f}   {raw_label:<26}{figures[raw_key]:>10.0f}"
              f"  {figures[ratio]:.2f} (target {target})")
    if "pg_one_writer_per_s" in figures:
        print(f"{'PostgreSQL appends, one writer':<34}{figures['pg_one_writer_per_s']:>10.0f}")
        print(f"{'PostgreSQL appends, 100 concurrent':<34}"
              f"{figures['pg_concurrent_100_per_s']:>10.0f}")
    else:
        print("PostgreSQL: skipped (SPOTSYNC_TEST_POSTGRES_URL is not set)")
    rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
    print(json.dumps(rounded, sort_keys=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events, for a smoke run")
    report(anyio.run(main, parser.parse_args().quick))
