"""Rebuild and full replay over long realistic logs, against raw read + decode.

    .venv/bin/python -m bench.replay [--sizes 250000,1000000] [--rounds 3] [--keep DIR]

For each size a log is built in a fresh SQLite file (``bench.logs``: whole contract
lifecycles, interleaved, realistic payloads). Then, each in a child process of its own
so its peak memory is its own:

- raw: ``sqlite3`` select of every event + ``orjson.loads`` of data and metadata, the
  least any reader of the log must do (the reference of the ratios);
- store_read: the store's own ``read_all`` (envelopes decoded), for where the time goes;
- rebuild: ``projections.rebuild.rebuild`` (what ``spotsync projections rebuild`` runs);
- replay: ``handlers.replay.replay_log`` (what ``spotsync replay`` runs on the whole log);
- raw_pair: two raw runs side by side, for what the machine's cores give together: their
  events/s summed, over twice raw's alone (1.0: each ran as fast as one alone). Rebuild
  and replay fold in one worker process per core, so their ratios follow this figure: on
  a shared machine a second process may get much less than a core of its own.

They run one after the other, in ``--rounds`` rounds, with a raw run before and after
each of the others: each ratio is taken against the mean of the two raw runs around
it, and the median of the rounds is reported. A shared machine's speed drifts by half
from one minute to the next (raw at 156k events/s, then 330k, in one run): a single run
of raw set every ratio of the run, and one per round still set three, the last of them
measured 15 s after it.

Figures: events/s, the ratio to raw (target at least 0.8), and peak RSS (target under
200 MB, flat from the small log to the big one). Rebuild and replay may fold in worker
processes: the peak is then the sum of every process's own peak (the measuring process
and each worker, read from ``/proc/PID/status`` while they run), not the largest one.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import orjson

TARGET_RATIO = 0.8
TARGET_RSS_MB = 200.0
# How often the peaks of a run's processes are read. VmHWM is the kernel's high-water
# mark, so a sparse poll misses only what a process adds in its last moments; a dense one
# takes from the run it measures (a scan of /proc costs 1.4 ms: every 20 ms, 7% of a core).
POLL_SECONDS = 0.1


def _peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child forked from
    # this big parent (it has just built the log) would count the parent's size as its own.
    peak = _peak_mb(os.getpid())
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raw(database: str) -> int:
    db = sqlite3.connect(database)
    count = 0
    loads = orjson.loads
    query = "SELECT position, stream, version, type, data, metadata, recorded_at FROM events"
    for row in db.execute(query + " ORDER BY position"):
        loads(row[4])
        loads(row[5])
        count += 1
    db.close()
    return count


async def store_read(database: str) -> int:
    from eventstore import open_store

    count = 0
    async with await open_store(database) as store:
        async for _ in store.read_all(page_size=2000):
            count += 1
    return count


async def rebuild_log(database: str) -> int:
    from eventstore import open_store
    from projections.rebuild import rebuild

    async with await open_store(database) as store:
        report = await rebuild(store)
    return report.position


async def replay_whole_log(database: str) -> int:
    from eventstore import open_store
    from handlers.replay import replay_log as replay

    async with await open_store(database) as store:
        differences = 0
        async for contract in replay(store, states=False):  # as `spotsync replay` does
            differences += contract.difference_count
        if differences:
            raise SystemExit(f"replay found {differences} differences in a generated log")
        return await store.last_position()


def child(kind: str, database: str) -> None:
    """Run one measurement in this process; print its figures as JSON."""
    if kind != "raw":
        # Loaded before the clock starts, as raw's sqlite3 and orjson are.
        import eventstore  # noqa: F401
        import handlers.replay  # noqa: F401
        import projections.rebuild  # noqa: F401
    started = time.perf_counter()
    if kind == "raw":
        events = raw(database)
    elif kind == "store_read":
        events = anyio.run(store_read, database)
    elif kind == "rebuild":
        events = anyio.run(rebuild_log, database)
    else:
        events = anyio.run(replay_whole_log, database)
    seconds = time.perf_counter() - started
    print(json.dumps({"events": events, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}))


def measure(kind: str, database: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.replay", "--child", kind, database]
    peaks: dict[int, float] = {}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        while child.poll() is None:
            for pid in _process_tree(child.pid):
                peak = _peak_mb(pid)
                if peak is not None:
                    peaks[pid] = max(peak, peaks.get(pid, 0.0))
            time.sleep(POLL_SECONDS)
        output = child.stdout.read() if child.stdout else ""
    if child.returncode:
        raise SystemExit(f"{kind} failed (exit status {child.returncode})")
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    figures["events_per_s"] = figures["events"] / figures["seconds"]
    # The child's own figure covers its last moments too; workers count as sampled.
    peaks[child.pid] = max(figures["peak_rss_mb"], peaks.get(child.pid, 0.0))
    figures["processes"] = len(peaks)
    figures["peak_rss_mb"] = sum(peaks.values())
    return figures


def measure_pair(database: str) -> dict[str, Any]:
    """Two raw runs at once, each in a process of its own: their events/s summed."""
    command = [sys.executable, "-m", "bench.replay", "--child", "raw", database]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    runs = []
    for child in children:
        output, _ = child.communicate()
        if child.returncode:
            raise SystemExit(f"raw_pair failed (exit status {child.returncode})")
        runs.append(json.loads(output.strip().splitlines()[-1]))
    return {
        "events_per_s": sum(run["events"] / run["seconds"] for run in runs),
        "peak_rss_mb": sum(run["peak_rss_mb"] for run in runs),
        "processes": 2,
    }


def _process_tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _peak_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def build(database: str, events: int) -> int:
    from bench.logs import fill
    from eventstore import open_store

    async with await open_store(database) as store:
        present = await store.last_position()
        if present:
            return present  # kept from an earlier run (--keep)
        return await fill(store, events, group=4)


KINDS = ("raw", "raw_pair", "store_read", "rebuild", "replay")


def run_size(directory: Path, size: int, rounds: int) -> dict[str, Any]:
    database = str(directory / f"log-{size}.db")
    started = time.perf_counter()
    events = anyio.run(build, database, size)
    print(f"{size:>9,}: built {events:,} events in {time.perf_counter() - started:.0f}s")
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for number in range(1, rounds + 1):
        print(f"{'':>11}round {number}:")
        before = _raw_run(database, runs)
        for kind in KINDS[1:]:
            result = measure_pair(database) if kind == "raw_pair" else measure(kind, database)
            runs[kind].append(result)
            after = _raw_run(database, runs)
            reference = (before["events_per_s"] + after["events_per_s"]) / 2
            if kind == "raw_pair":
                reference *= 2  # two processes: each against one alone
            result["ratio"] = result["events_per_s"] / reference
            _show(kind, result)
            before = after
    figures: dict[str, Any] = {"events": events}
    for kind, results in runs.items():
        figures[kind] = {
            "events_per_s": statistics.median(r["events_per_s"] for r in results),
            "ratio": statistics.median(r["ratio"] for r in results),
            "ratios": [round(r["ratio"], 3) for r in results],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        }
    print(
        f"{'':>11}median of {rounds}: "
        + ", ".join(f"{kind} ratio {figures[kind]['ratio']:.2f}" for kind in KINDS[1:])
    )
    return figures


def _raw_run(database: str, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    result = measure("raw", database)
    result["ratio"] = 1.0
    runs["raw"].append(result)
    _show("raw", result)
    return result


def _show(kind: str, result: dict[str, Any]) -> None:
    print(
        f"{'':>13}{kind:<10} {result['events_per_s']:>10,.0f} events/s  "
        f"ratio {result['ratio']:.2f}  peak {result['peak_rss_mb']:.0f} MB "
        f"({result['processes']} process{'es' if result['processes'] > 1 else ''})"
    )


def summary(results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    line: dict[str, Any] = {"bench": "replay"}
    for size, figures in results.items():
        line[str(size)] = {
            "events": figures["events"],
            "raw_events_per_s": round(figures["raw"]["events_per_s"]),
            **{
                f"{kind}_{name}": value
                for kind in ("raw_pair", "store_read", "rebuild", "replay")
                for name, value in (
                    ("events_per_s", round(figures[kind]["events_per_s"])),
                    ("ratio", round(figures[kind]["ratio"], 3)),
                    ("ratios", figures[kind]["ratios"]),
                    ("peak_rss_mb", round(figures[kind]["peak_rss_mb"], 1)),
                )
            },
        }
    biggest = results[max(results)]
    line["targets"] = {
        "ratio": TARGET_RATIO,
        "peak_rss_mb": TARGET_RSS_MB,
        "ratio_met": all(biggest[kind]["ratio"] >= TARGET_RATIO for kind in ("rebuild", "replay")),
        "memory_met": all(
            f[kind]["peak_rss_mb"] < TARGET_RSS_MB
            for f in results.values()
            for kind in ("rebuild", "replay")
        ),
    }
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="250000,1000000", help="log sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, side by side")
    parser.add_argument("--keep", metavar="DIR", help="build the logs in DIR and keep them")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="spotsync-bench-") as scratch:
        directory = Path(args.keep) if args.keep else Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        results = {size: run_size(directory, size, args.rounds) for size in sizes}
    print(json.dumps(summary(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
