#!/usr/bin/env python3
"""Soak: the gateway at c=16 for a long time with budgets and rate limits on; does its memory plateau?

Starts the stub upstream and `interlock serve` (auth, SQLite ledger, a budget and a rate limit on the
key that is used, both far from being reached, so every request is admitted, reserved and settled),
then runs wrk in segments of `--segment` seconds, alternating plain and streamed chat, until
`--duration` has passed. Every `--sample` seconds it reads the gateway's RSS from /proc. At the end it
prints the RSS after warm-up, the last RSS and the growth, the requests and every error, and checks
that the ledger holds one row per request.

    .venv/bin/python bench/soak/run.py                       # one hour (the issue's soak)
    .venv/bin/python bench/soak/run.py --duration 300 --warmup 60   # a quick look

Loopback only; every wrk run is bounded by its segment length and a hard timeout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))

from run import Bench, http, run_wrk  # bench/gateway/run.py


def rss_kib(pid: int) -> int:
    """The process's resident set size in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=3600.0, help="seconds of load (default 3600)")
    p.add_argument("--warmup", type=float, default=300.0, help="seconds before the RSS baseline (default 300)")
    p.add_argument("--segment", type=float, default=60.0, help="seconds per wrk run (default 60)")
    p.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples (default 10)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--json", type=Path, default=None, help="also write the samples and totals here")
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    args = p.parse_args()
    args.wrk_cpu, args.stub_port, args.gateway_port = None, 0, 0

    bench = Bench(args)
    bench.start()
    assert bench.gateway is not None
    key_id, token = bench.new_key("soak")
    gw = f"http://127.0.0.1:{bench.gw_port}"
    budget = {"scope": "key", "scope_id": key_id, "period": "total", "limit_usd": "1000000"}
    limit = {"scope": "key", "scope_id": key_id, "rpm": 100_000_000, "tpm": 1_000_000_000_000}
    for path, body in (("/admin/budgets", budget), ("/admin/rate-limits", limit)):
        status, answer = http("PUT", gw + path, bench.admin, body)
        if status != 200:
            raise SystemExit(f"PUT {path} answered {status}: {answer!r}")

    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    stop = threading.Event()

    def sample() -> None:
        assert bench.gateway is not None
        while not stop.is_set():
            samples.append((time.monotonic() - started, rss_kib(bench.gateway.pid)))
            stop.wait(args.sample)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    totals = {"requests": 0, "non2xx": 0, "errors": 0, "segments": 0}
    mode = "json"
    try:
        while time.monotonic() - started < args.duration:
            left = int(args.duration - (time.monotonic() - started))  # wrk takes whole seconds
            if left < 1:
                break
            result, _ = run_wrk(
                args, f"{gw}/v1/chat/completions", mode, args.concurrency, token, min(args.segment, left)
            )
            totals["requests"] += int(result["requests"])
            totals["non2xx"] += int(result["non2xx"])
            totals["errors"] += sum(int(result[k]) for k in ("err_connect", "err_read", "err_write", "err_timeout"))
            totals["segments"] += 1
            rps = result["requests"] / (result["duration_us"] / 1e6)
            elapsed = time.monotonic() - started
            rss = samples[-1][1] / 1024
            print(
                f"{elapsed:7.0f} s  {mode:6s} {rps:7.0f} req/s  non-2xx {result['non2xx']}  rss {rss:.1f} MiB",
                flush=True,
            )
            mode = "stream" if mode == "json" else "json"
    finally:
        stop.set()
        sampler.join()
        time.sleep(1.0)
        bench_home = bench.home
        from run import stop as stop_proc

        stop_proc(bench.gateway)
        stop_proc(bench.stub)
    with sqlite3.connect(bench_home / "interlock.db") as db:
        rows = db.execute("SELECT count(*) FROM usage WHERE key_id = ?", (key_id,)).fetchone()[0]
    base = next((kib for t, kib in samples if t >= args.warmup), samples[0][1])
    last = samples[-1][1]
    growth = (last - base) / base * 100
    print(
        f"\nRSS after {args.warmup:.0f} s warm-up {base / 1024:.1f} MiB, at the end {last / 1024:.1f} MiB: "
        f"{growth:+.1f}% (peak {max(k for _, k in samples) / 1024:.1f} MiB)"
    )
    in_flight = args.concurrency * totals["segments"]  # cut off at each segment's end: they get a row too
    valid = totals["requests"] <= rows <= totals["requests"] + in_flight
    print(
        f"requests {totals['requests']:,} in {totals['segments']} segments; non-2xx {totals['non2xx']}; "
        f"socket errors {totals['errors']}; ledger rows {rows:,} ({'valid' if valid else 'INVALID'})"
    )
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "totals": totals, "rows": rows, "growth_pct": growth}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
