#!/usr/bin/env python3
"""Hot-path cost of metrics and tracing: the same gateway with both off, metrics on, and metrics + tracing on.

Starts the stub upstream and three `interlock serve` processes on free loopback ports, identical but
for `[metrics]` and `[tracing]`, each with real virtual keys (auth + ledger on), then runs wrk against
each in turn, the order rotating every round so that drifting load from other processes hits all
three alike. Prints a Markdown table of medians; "vs off" is paired per round. Tracing runs with no
exporter configured: spans are built, sampled, attributed and propagated upstream, not sent anywhere.

    .venv/bin/python bench/observability/run.py                       # 3 rounds x 5 s, json and stream, c=16
    .venv/bin/python bench/observability/run.py --duration 3 --rounds 2

Reuses bench/gateway/run.py's helpers (wrk scripts, process and HTTP plumbing). Loopback only; every
wrk run is bounded by --duration and a hard timeout.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from run import ALIAS, CONFIG, free_port, http, run_wrk, stop, wait_ready

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {
    "off": "[metrics]\nenabled = false\n",
    "metrics": "[metrics]\nenabled = true\n",
    "metrics+tracing": "[metrics]\nenabled = true\n[tracing]\nenabled = true\n",
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, nargs="+", default=[16])
    p.add_argument("--modes", nargs="+", default=["json", "stream"], choices=["json", "stream"])
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    p.add_argument("--wrk-cpu", type=int, default=None)
    args = p.parse_args()
    args.duration = min(max(args.duration, 0.5), 60.0)

    home = Path(tempfile.mkdtemp(prefix="interlock-bench-obs-"))
    admin = "sk-il-bench-admin-" + os.urandom(8).hex()
    py, interlock = sys.executable, str(Path(sys.executable).with_name("interlock"))
    log = open(home / "processes.log", "ab")  # noqa: SIM115 - kept open for the children
    stub_port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    keys: dict[str, str] = {}
    try:
        stub = subprocess.Popen(
            [py, "-m", "interlock.testing.stub_upstream", "--port", str(stub_port)], stdout=log, stderr=log, cwd=ROOT
        )
        procs.append(stub)
        wait_ready(f"http://127.0.0.1:{stub_port}/readyz", stub, "the stub upstream")
        for name, extra in VARIANTS.items():
            vhome = home / name.replace("+", "-")
            vhome.mkdir()
            config = vhome / "interlock.toml"
            config.write_text(CONFIG.format(alias=ALIAS, stub_port=stub_port) + extra, encoding="utf-8")
            env = {**os.environ, "INTERLOCK_HOME": str(vhome), "INTERLOCK_ADMIN_KEY": admin}
            env.pop("INTERLOCK_CONFIG", None)
            port = ports[name] = free_port()
            gw = subprocess.Popen(
                [interlock, "serve", "--config", str(config), "--port", str(port), "--log-level", "warning"],
                stdout=log, stderr=log, cwd=ROOT, env=env,
            )  # fmt: skip
            procs.append(gw)
            wait_ready(f"http://127.0.0.1:{port}/readyz", gw, f"the gateway ({name})")
            status, body = http("POST", f"http://127.0.0.1:{port}/admin/keys", admin, {"name": "bench"})
            assert status == 201, body
            keys[name] = body["key"]
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            for mode in args.modes:  # warm-up
                run_wrk(args, url, mode, 4, keys[name], 1.0)
        results: dict[tuple[str, str, int], list[float]] = {}
        order = list(VARIANTS)
        for rnd in range(args.rounds):
            for mode in args.modes:
                for conc in args.concurrency:
                    for name in order[rnd % 3 :] + order[: rnd % 3]:
                        url = f"http://127.0.0.1:{ports[name]}/v1/chat/completions"
                        wrk, _ = run_wrk(args, url, mode, conc, keys[name], args.duration)
                        rps = float(wrk["requests"]) / (wrk["duration_us"] / 1e6)
                        assert wrk["non2xx"] == 0, wrk
                        results.setdefault((name, mode, conc), []).append(rps)
                        print(
                            f"round {rnd + 1} {mode:6} c={conc:<3} {name:16} {rps:8.0f} req/s",
                            flush=True,
                        )
    finally:
        for proc in reversed(procs):
            stop(proc)
        log.close()
    print()
    print("| mode | c | " + " | ".join(f"{n} req/s" for n in VARIANTS) + " | metrics vs off | metrics+tracing vs off |")
    print("|---|---|" + "---|" * (len(VARIANTS) + 2))
    for mode in args.modes:
        for conc in args.concurrency:
            base = results[("off", mode, conc)]
            cells = [f"{statistics.median(results[(n, mode, conc)]):,.0f}" for n in VARIANTS]
            ratios = [
                statistics.median(a / b for a, b in zip(results[(n, mode, conc)], base, strict=True))
                for n in ("metrics", "metrics+tracing")
            ]
            print(f"| {mode} | {conc} | " + " | ".join(cells) + " | " + " | ".join(f"{r:.3f}" for r in ratios) + " |")
    print(f"\n{time.strftime('%Y-%m-%d %H:%M:%S')}; logs in {home}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
