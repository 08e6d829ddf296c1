#!/usr/bin/env python3
"""Where the gateway's CPU goes per request: cProfile of a warm `interlock serve` under wrk.

Starts the stub and one Interlock (the benchmark's `gateway` target: auth, a budget on the key, ledger and
metrics on, guardrails off), warms it up, then switches cProfile on with SIGUSR1, runs wrk, switches it
off with SIGUSR2 (the gateway writes the profile) and prints the functions by self time and by cumulative
time, per request. Start-up is left out. cProfile inflates Python-level calls more than C calls: read
the shares, and time a piece alone before trusting its µs.

    .venv/bin/python bench/gateway/cpuprofile.py --mode json          # c=16, 6 s
    .venv/bin/python bench/gateway/cpuprofile.py --mode stream --concurrency 1 --out /tmp/stream.prof

`--serve` is used internally: the gateway process itself (interlock serve with the signal handlers).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def serve(out: str, argv: list[str]) -> None:
    """`interlock serve argv`, profiling between SIGUSR1 and SIGUSR2 (then dumping to `out`)."""
    prof = cProfile.Profile()

    def start(*_: object) -> None:
        prof.enable()

    def stop(*_: object) -> None:
        prof.disable()
        prof.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    from interlock.cli.main import main

    sys.argv = ["interlock", *argv]
    main()


def summary(path: str, requests: int, top: int) -> str:
    """The profile's functions by self and by cumulative time, in µs per request."""
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    rows = []
    for (file, line, fn), (_, calls, self_s, cum_s, _) in stats.items():
        name = f"{file.split('site-packages/')[-1].split('/src/')[-1]}:{line}({fn})"
        rows.append((self_s, cum_s, calls, name))
    total = sum(r[0] for r in rows)
    n = max(requests, 1)
    out = [f"{requests} requests; {total / n * 1e6:.0f} µs of profiled time per request", "", "by self time:"]
    for self_s, cum_s, calls, name in sorted(rows, reverse=True)[:top]:
        out.append(f"  {self_s / n * 1e6:7.1f} µs self {cum_s / n * 1e6:8.1f} cum {calls / n:6.1f} calls/req  {name}")
    out += ["", "interlock's functions by cumulative time:"]
    for self_s, cum_s, calls, name in sorted(rows, key=lambda r: -r[1]):
        if "interlock/" in name and cum_s / n * 1e6 >= 4 and "<module>" not in name:
            out.append(f"  {cum_s / n * 1e6:8.1f} µs cum {self_s / n * 1e6:7.1f} self {calls / n:5.1f}/req  {name}")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--mode", choices=["json", "stream"], default="json")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=int, default=6, help="profiled seconds of wrk (1..60)")
    p.add_argument("--out", default="/tmp/interlock-gateway.prof")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--serve", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve is not None:
        serve(os.environ["PROFILE_OUT"], args.serve)
        return 0
    import run  # bench/gateway/run.py

    real_which = shutil.which
    bench_args = argparse.Namespace(
        targets=["stub", "gateway"], variant=[], budgets=True, stub_port=0, gateway_port=0,
        wrk=real_which("wrk") or "wrk", wrk_cpu=None, duration=args.duration, modes=[args.mode], warmup=0,
    )  # fmt: skip
    bench = run.Bench(bench_args)
    os.environ["PROFILE_OUT"] = args.out
    # the gateway process: this file with --serve, i.e. interlock serve with the profiling signal handlers
    wrapper = Path(bench.home) / "interlock"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" --serve "$@"\n')
    wrapper.chmod(0o755)
    shutil.which = lambda name, *a, **k: str(wrapper) if name == "interlock" else real_which(name)  # type: ignore[assignment]
    try:
        bench.start()
        assert bench.gateway is not None
        _, token = bench.new_key("profile")
        url = bench.targets["gateway"].url
        run.run_wrk(bench_args, url, args.mode, args.concurrency, token, 2)  # warm up
        os.kill(bench.gateway.pid, signal.SIGUSR1)
        result, _ = run.run_wrk(bench_args, url, args.mode, args.concurrency, token, max(1, min(args.duration, 60)))
        os.kill(bench.gateway.pid, signal.SIGUSR2)
        time.sleep(1.0)
    finally:
        bench.stop_all()
        shutil.which = real_which
    print(summary(args.out, int(result["requests"]), args.top))
    print(f"\nprofile: {args.out} (python -m pstats {args.out})")
    shutil.rmtree(bench.home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
