#!/usr/bin/env python3
"""Gateway overhead benchmark: the stub upstream alone vs the gateway (auth + ledger on) in front of it.

Starts the stub upstream and `interlock serve` on free loopback ports, creates real virtual keys through
`POST /admin/keys`, then for each mode (json, stream) and concurrency (1, 16, 64) runs wrk against the
stub alone and against the gateway, interleaved (the order alternates between rounds), so that load from
other processes on the machine hits both sides alike. Prints a Markdown table, checks that the ledger
holds one row per request the gateway was sent, and stops everything.

    .venv/bin/python bench/gateway/run.py                    # 3 rounds x 10 s per run (~7 minutes)
    .venv/bin/python bench/gateway/run.py --duration 3 --rounds 1   # a quick look

Everything is on 127.0.0.1; every wrk run is bounded by --duration (at most 120 s) and a hard timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
MODES = {"json": HERE / "chat.lua", "stream": HERE / "chat_stream.lua"}
ALIAS = "stub"  # the gateway alias has the stub's model name, so one request body serves both targets
MAX_DURATION = 120.0

CONFIG = """\
[server]
host = "127.0.0.1"

[models.{alias}]
provider = "openai_compatible"
base_url = "http://127.0.0.1:{stub_port}/v1"
model = "stub"
price_input_per_mtok = 2.5
price_output_per_mtok = 10
"""


# --- processes and /proc ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_busy_s() -> float:
    """CPU time spent by everything on the machine (all cores), in seconds."""
    with open("/proc/stat", encoding="ascii") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    steal_guest = sum(vals[7:]) if len(vals) > 7 else 0  # steal, guest, guest_nice
    return (sum(vals) - idle - steal_guest) / CLK_TCK


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def http(method: str, url: str, token: str | None = None, body: Any = None, timeout: float = 5) -> tuple[int, Any]:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"loopback only: {url}")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback http only
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode} before it was ready")
        with contextlib.suppress(OSError, urllib.error.URLError):
            status, _ = http("GET", url, timeout=1)
            if status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{what} not ready at {url} after {timeout} s")


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    """SIGINT (uvicorn's graceful shutdown: the gateway flushes its ledger), then SIGKILL if needed."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# --- wrk ----------------------------------------------------------------------------------------


@dataclass
class Run:
    target: str  # "stub" or "gateway"
    mode: str
    conc: int
    round: int
    key_id: str | None
    wrk: dict[str, Any]
    seconds: float
    cpu_gateway_s: float
    cpu_stub_s: float
    cpu_wrk_s: float
    cpu_system_s: float
    ledger: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return float(self.wrk["requests"]) / (self.wrk["duration_us"] / 1e6)

    def cpu_ms_per_req(self, which: str) -> float:
        n = max(int(self.wrk["requests"]), 1)
        return getattr(self, f"cpu_{which}_s") * 1000 / n

    @property
    def other_cores(self) -> float:
        """Average cores used by processes other than wrk, the stub and the gateway during the run."""
        mine = self.cpu_gateway_s + self.cpu_stub_s + self.cpu_wrk_s
        return max(self.cpu_system_s - mine, 0.0) / self.seconds


def run_wrk(
    args: argparse.Namespace, url: str, mode: str, conc: int, token: str | None, duration: float
) -> tuple[dict[str, Any], str]:
    cmd = [
        args.wrk,
        "-t1",
        f"-c{conc}",
        f"-d{duration:g}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(MODES[mode]),
        url,
    ]
    if args.wrk_cpu is not None:
        cmd = ["taskset", "-c", str(args.wrk_cpu), *cmd]
    env = {**os.environ, "BENCH_KEY": token or "", "BENCH_MODEL": ALIAS}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 30, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON ") :]), out.stdout
    raise SystemExit(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.home = Path(tempfile.mkdtemp(prefix="interlock-bench-"))
        self.admin = "sk-il-bench-admin-" + os.urandom(8).hex()
        self.stub_port = args.stub_port or free_port()
        self.gw_port = args.gateway_port or free_port()
        self.stub: subprocess.Popen[bytes] | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.runs: list[Run] = []
        self.keys: dict[str, str] = {}  # key id -> token

    @property
    def stub_url(self) -> str:
        return f"http://127.0.0.1:{self.stub_port}/v1/chat/completions"

    @property
    def gw_url(self) -> str:
        return f"http://127.0.0.1:{self.gw_port}/v1/chat/completions"

    def start(self) -> None:
        py = sys.executable
        interlock = shutil.which("interlock", path=str(Path(py).parent)) or shutil.which("interlock")
        if interlock is None:
            raise SystemExit("the `interlock` command is not installed in this environment")
        config = self.home / "bench.toml"
        config.write_text(CONFIG.format(alias=ALIAS, stub_port=self.stub_port), encoding="utf-8")
        log = open(self.home / "processes.log", "ab")  # noqa: SIM115 - kept open for the children
        self.stub = subprocess.Popen(
            [py, "-m", "interlock.testing.stub_upstream", "--port", str(self.stub_port)],
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )
        wait_ready(f"http://127.0.0.1:{self.stub_port}/readyz", self.stub, "the stub upstream")
        env = {**os.environ, "INTERLOCK_HOME": str(self.home), "INTERLOCK_ADMIN_KEY": self.admin}
        env.pop("INTERLOCK_CONFIG", None)
        self.gateway = subprocess.Popen(
            [interlock, "serve", "--config", str(config), "--port", str(self.gw_port), "--log-level", "warning"],
            stdout=log,
            stderr=log,
            cwd=ROOT,
            env=env,
        )
        wait_ready(f"http://127.0.0.1:{self.gw_port}/readyz", self.gateway, "the gateway")

    def new_key(self, name: str) -> tuple[str, str]:
        status, body = http("POST", f"http://127.0.0.1:{self.gw_port}/admin/keys", self.admin, {"name": name})
        if status != 201:
            raise SystemExit(f"POST /admin/keys answered {status}: {body!r}")
        self.keys[body["id"]] = body["key"]
        return body["id"], body["key"]

    def measure(self, target: str, mode: str, conc: int, rnd: int) -> Run:
        assert self.stub is not None and self.gateway is not None
        key_id, token = (None, None)
        if target == "gateway":
            key_id, token = self.new_key(f"bench-{mode}-c{conc}-r{rnd}")
        url = self.gw_url if target == "gateway" else self.stub_url
        g0, s0, w0, y0, t0 = (
            proc_cpu_s(self.gateway.pid),
            proc_cpu_s(self.stub.pid),
            children_cpu_s(),
            system_busy_s(),
            time.monotonic(),
        )
        result, _ = run_wrk(self.args, url, mode, conc, token, self.args.duration)
        g1, s1, w1, y1, t1 = (
            proc_cpu_s(self.gateway.pid),
            proc_cpu_s(self.stub.pid),
            children_cpu_s(),
            system_busy_s(),
            time.monotonic(),
        )
        run = Run(target, mode, conc, rnd, key_id, result, t1 - t0, g1 - g0, s1 - s0, w1 - w0, y1 - y0)
        self.runs.append(run)
        print(
            f"  round {rnd} {mode:6s} c={conc:<3d} {target:7s} {run.rps:8.0f} req/s  "
            f"p50 {result['p50_us'] / 1000:6.2f} ms  p99 {result['p99_us'] / 1000:6.2f} ms  "
            f"cpu gw {run.cpu_ms_per_req('gateway'):.3f} stub {run.cpu_ms_per_req('stub'):.3f} ms/req  "
            f"non-2xx {result['non2xx']}  other load {run.other_cores:.2f} cores",
            flush=True,
        )
        return run

    def warm_up(self) -> None:
        _, token = self.new_key("bench-warmup")
        for mode in self.args.modes:
            for url, tok in ((self.stub_url, None), (self.gw_url, token)):
                run_wrk(self.args, url, mode, 16, tok, self.args.warmup)

    def run_all(self) -> None:
        if self.args.warmup > 0:
            print(f"warming up ({self.args.warmup:g} s per mode and target)", flush=True)
            self.warm_up()
        for rnd in range(1, self.args.rounds + 1):
            order = ("stub", "gateway") if rnd % 2 else ("gateway", "stub")
            for mode in self.args.modes:
                for conc in self.args.concurrency:
                    for target in order:
                        self.measure(target, mode, conc, rnd)

    def check_ledger(self) -> bool:
        """After the gateway has stopped (and flushed): one ledger row per request each key sent."""
        db = sqlite3.connect(self.home / "interlock.db")
        try:
            rows = dict(db.execute("SELECT key_id, count(*) FROM usage GROUP BY key_id").fetchall())
            by_status = db.execute("SELECT key_id, status, count(*) FROM usage GROUP BY key_id, status").fetchall()
        finally:
            db.close()
        statuses: dict[str, dict[int, int]] = {}
        for key_id, status, n in by_status:
            statuses.setdefault(key_id, {})[int(status)] = int(n)
        ok = True
        for run in self.runs:
            if run.target != "gateway":
                continue
            n = int(rows.get(run.key_id, 0))
            st = statuses.get(run.key_id or "", {})
            ok_2xx, completed = int(run.wrk["ok_2xx"]), int(run.wrk["requests"])
            rows_2xx = sum(v for k, v in st.items() if 200 <= k < 300)
            # One row per request put on the wire: the ones wrk completed (each 2xx needs a 2xx row) and
            # the ones still in flight when its clock ran out (at most one per connection), which the
            # gateway finishes and records (200, or 499 if a stream was cut).
            valid = completed <= n <= completed + run.conc and rows_2xx >= ok_2xx and run.wrk["non2xx"] == 0
            run.ledger = {"rows": n, "statuses": st, "in_flight_at_stop": n - completed}
            run.ledger["valid"] = valid
            ok = ok and valid
        return ok


# --- report -------------------------------------------------------------------------------------


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def report(bench: Bench, ledger_ok: bool) -> str:
    args = bench.args
    lines = [
        f"wrk -t1, {args.duration:g} s per run, {args.rounds} round(s) interleaved (median shown); "
        "latency = time to the full response (last SSE byte for streams); CPU = utime+stime of that "
        "process from /proc.",
        "",
        "| mode | c | stub req/s | gateway req/s | gw/stub | stub p50 ms | gw p50 ms | added p50 ms "
        "| stub p99 ms | gw p99 ms | stub CPU ms/req | gw CPU ms/req | gw req/s per core | other load (cores) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for mode in args.modes:
        for conc in args.concurrency:
            st = [r for r in bench.runs if r.target == "stub" and r.mode == mode and r.conc == conc]
            gw = [r for r in bench.runs if r.target == "gateway" and r.mode == mode and r.conc == conc]
            pairs = list(zip(sorted(st, key=lambda r: r.round), sorted(gw, key=lambda r: r.round), strict=True))
            ratio = med([g.rps / s.rps for s, g in pairs])
            added = med([(g.wrk["p50_us"] - s.wrk["p50_us"]) / 1000 for s, g in pairs])
            lines.append(
                f"| {mode} | {conc} | {med([r.rps for r in st]):,.0f} | {med([r.rps for r in gw]):,.0f} "
                f"| {ratio:.2f} | {med([r.wrk['p50_us'] / 1000 for r in st]):.2f} "
                f"| {med([r.wrk['p50_us'] / 1000 for r in gw]):.2f} | {added:+.2f} "
                f"| {med([r.wrk['p99_us'] / 1000 for r in st]):.2f} "
                f"| {med([r.wrk['p99_us'] / 1000 for r in gw]):.2f} "
                f"| {med([r.cpu_ms_per_req('stub') for r in st]):.3f} "
                f"| {med([r.cpu_ms_per_req('gateway') for r in gw]):.3f} "
                f"| {1000 / med([r.cpu_ms_per_req('gateway') for r in gw]):,.0f} "
                f"| {med([r.other_cores for r in st + gw]):.2f} |"
            )
    lines.append("")
    lines.append(
        "Added p50 = gateway p50 - stub p50 of the same round (median over rounds). "
        "gw req/s per core = 1000 / gw CPU ms/req: what one core given to the gateway alone could serve."
    )
    lines.append("")

    def cell(mode: str, conc: int, what: str) -> float:
        gw = [r for r in bench.runs if r.target == "gateway" and r.mode == mode and r.conc == conc]
        st = [r for r in bench.runs if r.target == "stub" and r.mode == mode and r.conc == conc]
        if what == "rps":
            return med([r.rps for r in gw])
        pairs = zip(sorted(st, key=lambda r: r.round), sorted(gw, key=lambda r: r.round), strict=True)
        return med([(g.wrk["p50_us"] - s.wrk["p50_us"]) / 1000 for s, g in pairs])

    targets = []
    if 16 in args.concurrency:
        if "json" in args.modes:
            v = cell("json", 16, "rps")
            targets.append(f"- JSON at c=16 >= 2,000 req/s: {v:,.0f} -> {'met' if v >= 2000 else 'NOT met'}")
        if "stream" in args.modes:
            v = cell("stream", 16, "rps")
            targets.append(f"- streaming at c=16 >= 1,500 req/s: {v:,.0f} -> {'met' if v >= 1500 else 'NOT met'}")
    if 1 in args.concurrency:
        for mode in args.modes:
            v = cell(mode, 1, "added")
            targets.append(f"- added p50 at c=1 ({mode}) <= 1 ms: {v:+.2f} ms -> {'met' if v <= 1.0 else 'NOT met'}")
    lines += ["Targets:", *targets, ""]

    gw_runs = [r for r in bench.runs if r.target == "gateway"]
    total_ok = sum(int(r.wrk["ok_2xx"]) for r in gw_runs)
    total_rows = sum(int(r.ledger.get("rows", 0)) for r in gw_runs)
    in_flight = sum(int(r.ledger.get("in_flight_at_stop", 0)) for r in gw_runs)
    non2xx = sum(int(r.wrk["non2xx"]) for r in bench.runs)
    sock = sum(int(r.wrk[k]) for r in bench.runs for k in ("err_connect", "err_read", "err_write", "err_timeout"))
    lines.append(
        f"Ledger: {total_rows:,} rows for the measured gateway runs; wrk completed {total_ok:,} 2xx and left "
        f"{in_flight} in flight when its clock ran out (those get a row too: 200, or 499 for a cut stream); "
        f"check: completed <= rows <= completed + c, per run -> "
        f"{'VALID' if ledger_ok else 'INVALID (rows missing or non-2xx answers)'}. "
        f"Non-2xx answers (all runs): {non2xx}; socket errors: {sock}."
    )
    lines.append("")
    lines.append("Per gateway run: wrk 2xx / ledger rows (by status):")
    for r in gw_runs:
        lines.append(
            f"- {r.mode} c={r.conc} round {r.round}: {r.wrk['ok_2xx']} / "
            f"{r.ledger.get('rows')} {r.ledger.get('statuses')}{'' if r.ledger.get('valid') else '  <- INVALID'}"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (max 120; default 10)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported (default 3)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per mode and target (default 3)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["json", "stream"])
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="the wrk binary")
    p.add_argument("--wrk-cpu", type=int, default=None, help="pin wrk to this CPU with taskset (default: no pin)")
    p.add_argument("--stub-port", type=int, default=0, help="default: a free port")
    p.add_argument("--gateway-port", type=int, default=0, help="default: a free port")
    p.add_argument("--json", type=Path, default=None, help="also write every run's raw numbers here")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    p.add_argument("--keep-home", action="store_true", help="keep INTERLOCK_HOME (the ledger) afterwards")
    args = p.parse_args()
    if not 0.5 <= args.duration <= MAX_DURATION or not 0 <= args.warmup <= 30 or not 1 <= args.rounds <= 10:
        p.error(f"--duration must be 0.5..{MAX_DURATION:g}, --warmup 0..30, --rounds 1..10")
    if any(not 1 <= c <= 1024 for c in args.concurrency):
        p.error("--concurrency values must be 1..1024")
    if shutil.which(args.wrk) is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    bench = Bench(args)
    print(f"INTERLOCK_HOME={bench.home}  stub :{bench.stub_port}  gateway :{bench.gw_port}", flush=True)
    try:
        bench.start()
        bench.run_all()
    finally:
        stop(bench.gateway)  # graceful: the ledger writer commits every queued row before exit
        stop(bench.stub)
    ledger_ok = bench.check_ledger()
    table = report(bench, ledger_ok)
    print()
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    if args.json:
        raw = [{**asdict(r), "rps": r.rps, "other_cores": r.other_cores} for r in bench.runs]
        args.json.write_text(json.dumps(raw, indent=1), encoding="utf-8")
    if not args.keep_home:
        shutil.rmtree(bench.home, ignore_errors=True)
    else:
        print(f"ledger kept in {bench.home / 'interlock.db'}")
    return 0 if ledger_ok else 1


if __name__ == "__main__":
    sys.exit(main())
