"""SQLite store benchmark: write throughput, paced write latency and disk use under churn.

Prints one JSON object per line:
  creates_per_s        sequential (each create awaited before the next) and concurrent (N in flight)
  paced_create_latency p50/p99 of creates issued at a fixed rate
  disk_ratio           (db + -wal + -shm bytes) / (live key+value bytes) after U updates to O objects,
                       for each --history setting: `value` right after the last update, `peak` the
                       largest ratio sampled during the run (every 1,000 updates), `rest` once the
                       store has checkpointed and truncated its WAL after writes paused

Usage: python benchmarks/store_sqlite.py [--quick] [--sequential N] [--concurrent N] [--in-flight N]
       [--paced-rate R] [--paced-seconds S] [--objects O] [--updates U] [--value-bytes B] [--history H,H]
       [--history-ratio R]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

# Import this checkout's pyk8s even when the virtualenv's editable install points at another one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyk8s.store.sqlite import SQLiteStore


def emit(**fields: object) -> None:
    sys.stdout.write(json.dumps({"benchmark": "store_sqlite", **fields}) + "\n")
    sys.stdout.flush()


def value_of(size: int, name: str, generation: int) -> bytes:
    head = f'{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","generation":{generation}}},'
    body = '"data":{"k":"' + "x" * max(0, size - len(head) - 14) + '"}}'
    return (head + body).encode()


def files_size(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, f"{path}-wal", f"{path}-shm") if os.path.exists(p))


async def run_in_flight(count: int, in_flight: int, make_call: Callable[[int], Awaitable[object]]) -> float:
    """Runs `count` calls keeping `in_flight` outstanding; returns elapsed seconds."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await make_call(index)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return time.perf_counter() - start


async def bench_creates(workdir: str, args: argparse.Namespace) -> None:
    store = SQLiteStore(os.path.join(workdir, "creates.db"))
    await store.start()
    try:
        value = value_of(args.value_bytes, "c", 1)
        start = time.perf_counter()
        for i in range(args.sequential):
            await store.create(f"/registry/configmaps/seq/cm-{i}", value)
        elapsed = time.perf_counter() - start
        emit(
            metric="creates_per_s",
            mode="sequential",
            count=args.sequential,
            value=round(args.sequential / elapsed),
        )

        elapsed = await run_in_flight(
            args.concurrent,
            args.in_flight,
            lambda i: store.create(f"/registry/configmaps/conc/cm-{i}", value),
        )
        emit(
            metric="creates_per_s",
            mode="concurrent",
            in_flight=args.in_flight,
            count=args.concurrent,
            value=round(args.concurrent / elapsed),
        )

        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        total = int(args.paced_rate * args.paced_seconds)

        async def timed_create(i: int) -> None:
            start = time.perf_counter()
            await store.create(f"/registry/configmaps/paced/cm-{i}", value)
            latencies.append(time.perf_counter() - start)

        tasks = []
        begin = loop.time()
        for i in range(total):
            await asyncio.sleep(max(0.0, begin + i / args.paced_rate - loop.time()))
            tasks.append(asyncio.create_task(timed_create(i)))
        await asyncio.gather(*tasks)
        cuts = statistics.quantiles(latencies, n=100)
        emit(
            metric="paced_create_latency",
            rate_per_s=args.paced_rate,
            count=total,
            p50_ms=round(cuts[49] * 1000, 3),
            p99_ms=round(cuts[98] * 1000, 3),
        )
    finally:
        await store.close()


async def bench_churn(workdir: str, args: argparse.Namespace, history: int) -> None:
    path = os.path.join(workdir, f"churn-{history}.db")
    store = SQLiteStore(path, history_revisions=history, history_ratio=args.history_ratio)
    await store.start()
    try:
        names = [f"/registry/configmaps/churn/cm-{i:04d}" for i in range(args.objects)]
        revisions = {}
        for name in names:
            revisions[name] = (await store.create(name, value_of(args.value_bytes, name, 0))).mod_revision
        live = sum(len(name) + len(value_of(args.value_bytes, name, 0)) for name in names)
        peak = 0

        async def update(i: int) -> None:
            nonlocal peak
            name = names[i % len(names)]
            kv = await store.update(name, value_of(args.value_bytes, name, i), revisions[name])
            revisions[name] = kv.mod_revision
            if i % 1000 == 0:
                peak = max(peak, files_size(path))

        # Each worker owns a disjoint set of names, so guarded updates never conflict.
        in_flight = min(args.in_flight, len(names))
        per_worker = (args.updates + in_flight - 1) // in_flight

        async def worker(w: int) -> None:
            for n in range(per_worker):
                i = w + n * in_flight
                if i < args.updates:
                    await update(i)

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(in_flight)))
        elapsed = time.perf_counter() - start
        size = files_size(path)
        # At rest: once writes pause, the store checkpoints and truncates its WAL.
        waited = time.perf_counter()
        while os.path.exists(f"{path}-wal") and os.path.getsize(f"{path}-wal") and time.perf_counter() - waited < 5:
            await asyncio.sleep(0.05)
        rest = files_size(path)
        emit(
            metric="disk_ratio",
            objects=args.objects,
            updates=args.updates,
            value_bytes=args.value_bytes,
            history_revisions=history,
            history_ratio=args.history_ratio,
            live_bytes=live,
            files_bytes=size,
            value=round(size / live, 2),
            peak=round(max(peak, size) / live, 2),
            rest=round(rest / live, 2),
            updates_per_s=round(args.updates / elapsed),
        )
    finally:
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few-second smoke configuration")
    parser.add_argument("--sequential", type=int, default=5_000)
    parser.add_argument("--concurrent", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--paced-rate", type=float, default=200)
    parser.add_argument("--paced-seconds", type=float, default=10)
    parser.add_argument("--objects", type=int, default=1_000)
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=1_000)
    parser.add_argument("--history", default="100,10000", help="history_revisions settings for the churn run")
    parser.add_argument(
        "--history-ratio",
        type=float,
        default=inspect.signature(SQLiteStore).parameters["history_ratio"].default,
        help="history_ratio for the churn run (default: the store's)",
    )
    parser.add_argument("--dir", default=None, help="where the databases go (default: a temporary directory)")
    args = parser.parse_args()
    if args.quick:
        args.sequential, args.concurrent, args.paced_seconds, args.updates = 1_000, 5_000, 3, 20_000
    with tempfile.TemporaryDirectory(dir=args.dir) as workdir:
        await bench_creates(workdir, args)
        for history in (int(h) for h in args.history.split(",")):
            await bench_churn(workdir, args, history)


if __name__ == "__main__":
    asyncio.run(main())
