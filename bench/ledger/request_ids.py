#!/usr/bin/env python3
"""Ledger writer cost per row: random request ids vs time-ordered ones, on a ledger that already holds rows.

The SQLite store's `usage` table has `request_id TEXT PRIMARY KEY`. With random ids every insert lands on a
different page of that index, which the WAL then writes out page by page; time-ordered ids (what
`settlement.new_request_id` makes) append at the end. For each kind this fills a fresh ledger with --rows rows,
then times --batches commits of --batch rows through the store's own writer (`SqliteStore._commit`), and prints
the writer thread's CPU and wall time per row. The kinds alternate, so drifting machine load hits both.

    .venv/bin/python bench/ledger/request_ids.py                 # 300,000 rows before, 2 rounds
    .venv/bin/python bench/ledger/request_ids.py --rows 1000000  # a bigger ledger
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from interlock.store.records import UsageRecord
from interlock.store.sqlite import SqliteStore, _connect


def request_id(kind: str, ts: float) -> str:
    if kind == "random":
        return f"req_{random.getrandbits(128):032x}"
    return f"req_{int(ts * 1000):012x}{random.getrandbits(80):020x}"


def record(kind: str, ts: float) -> UsageRecord:
    return UsageRecord(
        request_id=request_id(kind, ts),
        ts=ts,
        key_id="key_bench",
        endpoint="chat",
        alias="stub",
        provider="openai_compatible",
        upstream_model="stub",
        stream=True,
        prompt_tokens=12,
        completion_tokens=6,
        usage_source="provider",
        cost_micros=90,
        price_version="config",
        latency_ms=1.2,
        ttft_ms=0.8,
        status=200,
        deployment="stub",
    )


def measure(kind: str, rows: int, batch: int, batches: int) -> tuple[float, float, float]:
    home = Path(tempfile.mkdtemp(prefix="interlock-ledger-bench-"))
    try:
        store = SqliteStore(home / "ledger.db")
        store.open_sync()
        store.close_sync()  # migrations applied; the writer below is driven by hand
        conn = _connect(home / "ledger.db")
        ts = time.time() - 86_400
        for start in range(0, rows, 5_000):
            store._commit(conn, [record(kind, ts + (start + i) * 0.001) for i in range(min(5_000, rows - start))])
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        ts = time.time()
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        for b in range(batches):
            store._commit(conn, [record(kind, ts + (b * batch + i) * 0.001) for i in range(batch)])
        cpu1, wall1 = time.thread_time(), time.perf_counter()
        conn.close()
        n = batch * batches
        return 1e6 * (cpu1 - cpu0) / n, 1e6 * (wall1 - wall0) / n, os.path.getsize(home / "ledger.db") / 1e6
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=300_000, help="rows in the ledger before timing")
    parser.add_argument("--batch", type=int, default=80, help="rows per commit (the writer's batch)")
    parser.add_argument("--batches", type=int, default=300, help="commits timed")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for rnd in range(1, args.rounds + 1):
        for kind in ("random", "ordered"):
            cpu, wall, size = measure(kind, args.rows, args.batch, args.batches)
            print(f"round {rnd} {kind:8s} {cpu:6.1f} us CPU/row  {wall:6.1f} us wall/row  (ledger {size:.0f} MB)")


if __name__ == "__main__":
    main()
