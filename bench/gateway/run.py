#!/usr/bin/env python3
"""Gateway overhead benchmark: Interlock next to a bare relay and the stub upstream, interleaved.

Starts the stub upstream, a bare relay (`relay.py`: Starlette + aiohttp, bearer check, JSON parsed and
re-serialised, streams passed through, no ledger) and `interlock serve` in front of the same stub, all
under uvicorn with `interlock serve`'s options, on free loopback ports. Interlock runs with auth (real
virtual keys from `POST /admin/keys`), a budget on every key, the SQLite ledger and metrics on, and
guardrails off (target `gateway`); target `guardrails` is a second Interlock with the default guardrail
policy on. `--variant` adds more Interlock processes (other code through PYTHONPATH, other env), for
A/B runs of a change in the same invocation. For each round, mode (json, stream) and concurrency, wrk
runs against every target in turn, the order rotating between rounds, so that load from other
processes on the machine hits all alike; ratios are paired per round, medians reported. Prints a
Markdown table, checks that each Interlock's ledger holds one row per request it was sent, and stops
everything.

    .venv/bin/python bench/gateway/run.py                    # 3 rounds x 10 s per run
    .venv/bin/python bench/gateway/run.py --duration 5 --rounds 3 --concurrency 1 16
    .venv/bin/python bench/gateway/run.py --targets relay gateway --variant old:PYTHONPATH=/tmp/old/src

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
ALIAS = "stub"  # the gateway alias has the stub's model name, so one request body serves every target
MAX_DURATION = 120.0
TARGETS = ("stub", "relay", "gateway", "guardrails")
BASELINE = "gateway"  # what `guardrails` and the variants are compared with

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
GUARDRAILS_OFF = "\n[guardrails]\nenabled = false\n"
# A budget on every key, far from being reached: every request is admitted, reserved and settled.
BUDGET = {"scope": "key", "period": "total", "limit_usd": "1000000"}


# --- processes and /proc ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as f:
                    todo += [int(c) for c in f.read().split()]
    return out


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads) and of its live child processes (a granian worker), in s."""
    total = 0
    for p in _descendants(pid):
        with contextlib.suppress(OSError), open(f"/proc/{p}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


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


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 240) -> None:
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


# --- targets ------------------------------------------------------------------------------------


@dataclass
class Target:
    """One server wrk is pointed at: the stub, the relay, or an Interlock process."""

    name: str
    kind: str  # "stub", "relay" or "interlock"
    env: dict[str, str] = field(default_factory=dict)  # extra environment (an Interlock variant's PYTHONPATH...)
    guardrails: bool = False
    budgets: bool = True  # a budget on each of its keys (when --budgets)
    server: str = "uvicorn"  # or "granian" (measure only; granian must be importable)
    port: int = 0
    home: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def parse_variant(spec: str) -> Target:
    """`NAME:VAR=VALUE,VAR=VALUE`: another Interlock (guardrails off) with extra environment variables.

    Pseudo-variables: `guardrails=on` turns the default guardrail policy on for it; `budgets=off` leaves
    its keys without a budget; `server=granian` serves it with granian instead of uvicorn.
    """
    name, _, rest = spec.partition(":")
    if not name or name in TARGETS or not name.replace("-", "").replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"bad variant name in {spec!r} (letters, digits, - and _; not {TARGETS})")
    t = Target(name, "interlock")
    for item in filter(None, rest.split(",")):
        var, eq, value = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"bad variant setting {item!r} in {spec!r}: expected VAR=VALUE")
        if var == "guardrails":
            t.guardrails = value == "on"
        elif var == "budgets":
            t.budgets = value != "off"
        elif var == "server":
            if value not in ("uvicorn", "granian"):
                raise argparse.ArgumentTypeError(f"server must be uvicorn or granian, not {value!r}")
            t.server = value
        else:
            t.env[var] = value
    return t


def granian_cmd(factory: str, port: int) -> list[str]:
    """granian serving one of `asgi_apps`' factories on 127.0.0.1:port, one worker, uvloop (measure only)."""
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--no-ws", "--log-level", "warning", "--factory",
        "--working-dir", str(HERE), f"asgi_apps:{factory}",
    ]  # fmt: skip


# --- wrk ----------------------------------------------------------------------------------------


@dataclass
class Run:
    target: str
    mode: str
    conc: int
    round: int
    key_id: str | None
    wrk: dict[str, Any]
    seconds: float
    cpu_target_s: float  # the measured server (all its threads)
    cpu_stub_s: float  # the stub behind it (when the target is not the stub itself)
    cpu_wrk_s: float
    cpu_system_s: float
    load1: float  # the 1-minute load average when the run started
    ledger: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return float(self.wrk["requests"]) / (float(self.wrk["duration_us"]) / 1e6)

    def cpu_ms_per_req(self, which: str = "target") -> float:
        n = max(int(self.wrk["requests"]), 1)
        return float(getattr(self, f"cpu_{which}_s")) * 1000 / n

    @property
    def other_cores(self) -> float:
        """Average cores used by processes other than wrk, the stub and the target during the run."""
        mine = self.cpu_target_s + self.cpu_wrk_s + (self.cpu_stub_s if self.target != "stub" else 0.0)
        return max(self.cpu_system_s - mine, 0.0) / self.seconds


def run_wrk(
    args: argparse.Namespace, url: str, mode: str, conc: int, token: str | None, duration: float
) -> tuple[dict[str, Any], str]:
    cmd = [
        args.wrk,
        "-t1",
        f"-c{conc}",
        f"-d{max(round(duration), 1)}s",  # wrk takes whole seconds
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
    """The processes of one benchmark run, and the runs measured against them.

    `stub`, `gateway`, `gw_port`, `admin`, `home` and `new_key` are the plain stub + gateway pair that
    other benchmarks (bench/soak) reuse.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.home = Path(tempfile.mkdtemp(prefix="interlock-bench-"))
        self.admin = "sk-il-bench-admin-" + os.urandom(8).hex()
        self.relay_key = "sk-relay-bench-" + os.urandom(8).hex()
        self.stub_port = getattr(args, "stub_port", 0) or free_port()
        names = list(getattr(args, "targets", None) or ["stub", "gateway"])
        if "stub" not in names:
            names.insert(0, "stub")  # always running: everything relays to it
        # Other benchmarks' plain pair (no --targets) keeps the shipped defaults, guardrails on.
        plain = not hasattr(args, "targets")
        self.targets: dict[str, Target] = {}
        for name in names:
            kind = name if name in ("stub", "relay") else "interlock"
            self.targets[name] = Target(name, kind, guardrails=name == "guardrails" or plain)
        for variant in getattr(args, "variant", None) or []:
            self.targets[variant.name] = variant
        if getattr(args, "relay_granian", False):  # the same relay under granian, as one more target
            self.targets["relay-granian"] = Target("relay-granian", "relay", server="granian")
        self.targets["stub"].port = self.stub_port
        gw_port = getattr(args, "gateway_port", 0)
        for t in self.targets.values():
            if t.kind != "stub":
                t.port = (gw_port if t.name == "gateway" and gw_port else 0) or free_port()
        self.measured = [n for n in names if n in self.targets] + [v.name for v in getattr(args, "variant", None) or []]
        if "relay-granian" in self.targets:
            self.measured.append("relay-granian")
        self.runs: list[Run] = []
        self.keys: dict[str, dict[str, str]] = {}  # target -> key id -> token

    # the plain pair, for other benchmarks
    @property
    def stub(self) -> subprocess.Popen[bytes] | None:
        return self.targets["stub"].proc

    @property
    def gateway(self) -> subprocess.Popen[bytes] | None:
        t = self.targets.get("gateway")
        return t.proc if t else None

    @property
    def gw_port(self) -> int:
        return self.targets["gateway"].port

    def start(self) -> None:
        py = sys.executable
        interlock = shutil.which("interlock", path=str(Path(py).parent)) or shutil.which("interlock")
        if interlock is None:
            raise SystemExit("the `interlock` command is not installed in this environment")
        log = open(self.home / "processes.log", "ab")  # noqa: SIM115 - kept open for the children
        stub = self.targets["stub"]
        stub.proc = subprocess.Popen(
            [py, "-m", "interlock.testing.stub_upstream", "--port", str(stub.port)], stdout=log, stderr=log, cwd=ROOT
        )
        wait_ready(f"{stub.base}/readyz", stub.proc, "the stub upstream")
        for t in self.targets.values():
            if t.kind == "relay":
                upstream = f"http://127.0.0.1:{self.stub_port}/v1"
                cmd = [
                    py,
                    str(HERE / "relay.py"),
                    "--port",
                    str(t.port),
                    "--upstream",
                    upstream,
                    "--key",
                    self.relay_key,
                ]
                t.proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=ROOT)
            elif t.kind == "interlock":
                # the gateway itself keeps the top folder (bench/soak reads bench.home / "interlock.db")
                t.home = self.home if t.name == "gateway" else self.home / t.name
                t.home.mkdir(exist_ok=True)
                config = t.home / "bench.toml"
                text = CONFIG.format(alias=ALIAS, stub_port=self.stub_port)
                config.write_text(text + ("" if t.guardrails else GUARDRAILS_OFF), encoding="utf-8")
                env = {**os.environ, "INTERLOCK_HOME": str(t.home), "INTERLOCK_ADMIN_KEY": self.admin, **t.env}
                env.pop("INTERLOCK_CONFIG", None)
                cmd = [interlock, "serve", "--config", str(config), "--port", str(t.port), "--log-level", "warning"]
                if t.server == "granian":
                    cmd, env["INTERLOCK_CONFIG"] = granian_cmd("interlock_app", t.port), str(config)
                t.proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=ROOT, env=env)
        for t in self.targets.values():
            if t.proc is not None and t.kind != "stub":
                wait_ready(f"{t.base}/readyz", t.proc, f"{t.name} ({t.kind})")

    def stop_all(self) -> None:
        """Interlock first (SIGINT: the ledger writer commits every queued row), the stub last."""
        for t in reversed(list(self.targets.values())):
            stop(t.proc)

    def new_key(self, name: str, target: str = "gateway") -> tuple[str, str]:
        """A virtual key on an Interlock target; with --budgets (the default), a budget on it."""
        base = self.targets[target].base
        status, body = http("POST", f"{base}/admin/keys", self.admin, {"name": name})
        if status != 201:
            raise SystemExit(f"POST /admin/keys answered {status}: {body!r}")
        if getattr(self.args, "budgets", False) and self.targets[target].budgets:
            status, answer = http("PUT", f"{base}/admin/budgets", self.admin, {**BUDGET, "scope_id": body["id"]})
            if status != 200:
                raise SystemExit(f"PUT /admin/budgets answered {status}: {answer!r}")
        self.keys.setdefault(target, {})[body["id"]] = body["key"]
        return body["id"], body["key"]

    def measure(self, name: str, mode: str, conc: int, rnd: int) -> Run:
        t, stub = self.targets[name], self.targets["stub"]
        assert t.proc is not None and stub.proc is not None
        key_id, token = (None, self.relay_key if t.kind == "relay" else None)
        if t.kind == "interlock":
            key_id, token = self.new_key(f"bench-{mode}-c{conc}-r{rnd}", name)
        load1 = os.getloadavg()[0]
        g0, s0, w0, y0, t0 = (
            proc_cpu_s(t.proc.pid),
            proc_cpu_s(stub.proc.pid),
            children_cpu_s(),
            system_busy_s(),
            time.monotonic(),
        )
        result, _ = run_wrk(self.args, t.url, mode, conc, token, self.args.duration)
        g1, s1, w1, y1, t1 = (
            proc_cpu_s(t.proc.pid),
            proc_cpu_s(stub.proc.pid),
            children_cpu_s(),
            system_busy_s(),
            time.monotonic(),
        )
        run = Run(name, mode, conc, rnd, key_id, result, t1 - t0, g1 - g0, s1 - s0, w1 - w0, y1 - y0, load1)
        self.runs.append(run)
        print(
            f"  round {rnd} {mode:6s} c={conc:<3d} {name:10s} {run.rps:8.0f} req/s  "
            f"p50 {result['p50_us'] / 1000:6.2f} ms  p99 {result['p99_us'] / 1000:6.2f} ms  "
            f"cpu {run.cpu_ms_per_req():.3f} ms/req  non-2xx {result['non2xx']}  "
            f"other load {run.other_cores:.2f} cores  load avg {load1:.2f}",
            flush=True,
        )
        return run

    def warm_up(self) -> None:
        for name in self.measured:
            t = self.targets[name]
            token = self.relay_key if t.kind == "relay" else None
            if t.kind == "interlock":
                _, token = self.new_key("bench-warmup", name)
            for mode in self.args.modes:
                run_wrk(self.args, t.url, mode, 16, token, self.args.warmup)

    def run_all(self) -> None:
        if self.args.warmup > 0:
            print(f"warming up ({self.args.warmup:g} s per mode and target)", flush=True)
            self.warm_up()
        names = self.measured
        for rnd in range(1, self.args.rounds + 1):
            k = (rnd - 1) % len(names)
            order = names[k:] + names[:k]
            for mode in self.args.modes:
                for conc in self.args.concurrency:
                    for name in order:
                        self.measure(name, mode, conc, rnd)

    def check_ledger(self) -> bool:
        """After the gateways have stopped (and flushed): one ledger row per request each key sent."""
        ok = True
        for t in self.targets.values():
            if t.kind != "interlock" or t.home is None:
                continue
            db = sqlite3.connect(t.home / "interlock.db")
            try:
                rows = dict(db.execute("SELECT key_id, count(*) FROM usage GROUP BY key_id").fetchall())
                by_status = db.execute("SELECT key_id, status, count(*) FROM usage GROUP BY key_id, status").fetchall()
            finally:
                db.close()
            statuses: dict[str, dict[int, int]] = {}
            for key_id, status, n in by_status:
                statuses.setdefault(key_id, {})[int(status)] = int(n)
            for run in self.runs:
                if run.target != t.name:
                    continue
                n = int(rows.get(run.key_id, 0))
                st = statuses.get(run.key_id or "", {})
                ok_2xx, completed = int(run.wrk["ok_2xx"]), int(run.wrk["requests"])
                rows_2xx = sum(v for k, v in st.items() if 200 <= k < 300)
                # One row per request put on the wire: the ones wrk completed (each 2xx needs a 2xx row) and
                # the ones still in flight when its clock ran out (at most one per connection), which the
                # gateway finishes and records (200, or 499 if it saw the client leave).
                valid = completed <= n <= completed + run.conc and rows_2xx >= ok_2xx and run.wrk["non2xx"] == 0
                run.ledger = {"rows": n, "statuses": st, "in_flight_at_stop": n - completed, "valid": valid}
                ok = ok and valid
        for run in self.runs:
            if self.targets[run.target].kind != "interlock" and run.wrk["non2xx"]:
                ok = False
        return ok


# --- report -------------------------------------------------------------------------------------


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"


def report(bench: Bench, ledger_ok: bool) -> str:
    args = bench.args
    names = bench.measured
    runs = bench.runs

    def cell(name: str, mode: str, conc: int) -> list[Run]:
        return sorted(
            (r for r in runs if r.target == name and r.mode == mode and r.conc == conc), key=lambda r: r.round
        )

    def ratio(a: str, b: str, mode: str, conc: int) -> float:
        pairs = zip(cell(a, mode, conc), cell(b, mode, conc), strict=True)
        return med([x.rps / y.rps for x, y in pairs])

    def cpu_ratio(a: str, b: str, mode: str, conc: int) -> float:
        pairs = zip(cell(a, mode, conc), cell(b, mode, conc), strict=True)
        return med([x.cpu_ms_per_req() / max(y.cpu_ms_per_req(), 1e-9) for x, y in pairs])

    def added(a: str, b: str, mode: str, conc: int) -> float:
        pairs = zip(cell(a, mode, conc), cell(b, mode, conc), strict=True)
        return med([(x.wrk["p50_us"] - y.wrk["p50_us"]) / 1000 for x, y in pairs])

    loads = [r.load1 for r in runs]
    lines = [
        f"wrk -t1, {args.duration:g} s per run, {args.rounds} round(s) interleaved (order rotating; medians shown); "
        f"{machine()}; load average {min(loads):.2f}-{max(loads):.2f} (median {med(loads):.2f}) at the runs' starts. "
        "Latency = time to the full response (last SSE byte for streams); CPU = utime+stime of that process "
        "from /proc, per request.",
        "",
        "| mode | c | target | req/s | p50 ms | p99 ms | CPU ms/req | other load (cores) |",
        "|---|--:|---|--:|--:|--:|--:|--:|",
    ]
    for mode in args.modes:
        for conc in args.concurrency:
            for name in names:
                c = cell(name, mode, conc)
                lines.append(
                    f"| {mode} | {conc} | {name} | {med([r.rps for r in c]):,.0f} "
                    f"| {med([r.wrk['p50_us'] / 1000 for r in c]):.2f} "
                    f"| {med([r.wrk['p99_us'] / 1000 for r in c]):.2f} "
                    f"| {med([r.cpu_ms_per_req() for r in c]):.3f} | {med([r.other_cores for r in c]):.2f} |"
                )
    lines.append("")
    # ratios, paired per round
    pairs: list[tuple[str, str]] = []
    interlocks = [n for n in names if bench.targets[n].kind == "interlock"]
    if "relay" in names:
        pairs += [(n, "relay") for n in interlocks]
        if "stub" in names:
            pairs.append(("relay", "stub"))
    elif "stub" in names:
        pairs += [(n, "stub") for n in interlocks]
    if BASELINE in names:
        pairs += [(n, BASELINE) for n in interlocks if n != BASELINE]
    if "relay-granian" in names and "relay" in names:
        pairs.append(("relay-granian", "relay"))
    if pairs:
        cols = " | ".join(f"{a}/{b}" for a, b in pairs)
        lines += ["req/s ratios, paired per round (median over rounds):", "", f"| mode | c | {cols} |"]
        lines.append("|---|--:|" + "--:|" * len(pairs))
        for mode in args.modes:
            for conc in args.concurrency:
                vals = " | ".join(f"{ratio(a, b, mode, conc):.3f}" for a, b in pairs)
                lines.append(f"| {mode} | {conc} | {vals} |")
        lines += [
            "",
            "CPU per request, a's / b's (paired per round, median; steadier than req/s on a busy machine):",
            "",
        ]
        lines += [f"| mode | c | {cols} |", "|---|--:|" + "--:|" * len(pairs)]
        for mode in args.modes:
            for conc in args.concurrency:
                vals = " | ".join(f"{cpu_ratio(a, b, mode, conc):.3f}" for a, b in pairs)
                lines.append(f"| {mode} | {conc} | {vals} |")
        lines += ["", "Added p50 latency in ms (a's p50 - b's p50 of the same round; median over rounds):", ""]
        lines += [f"| mode | c | {cols} |", "|---|--:|" + "--:|" * len(pairs)]
        for mode in args.modes:
            for conc in args.concurrency:
                vals = " | ".join(f"{added(a, b, mode, conc):+.3f}" for a, b in pairs)
                lines.append(f"| {mode} | {conc} | {vals} |")
        lines.append("")

    targets = []
    if "relay" in names and "gateway" in names:
        if 16 in args.concurrency:
            for mode in args.modes:
                v = ratio("gateway", "relay", mode, 16)
                targets.append(
                    f"- {mode} at c=16, gateway >= 0.8x relay: {v:.3f} -> {'met' if v >= 0.8 else 'NOT met'}"
                )
        if 1 in args.concurrency:
            for mode in args.modes:
                v = added("gateway", "relay", mode, 1)
                targets.append(
                    f"- {mode} added p50 at c=1 vs relay <= 0.3 ms: {v:+.3f} ms -> {'met' if v <= 0.3 else 'NOT met'}"
                )
    if "guardrails" in names and "gateway" in names and 16 in args.concurrency:
        for mode in args.modes:
            v = ratio("guardrails", "gateway", mode, 16)
            targets.append(
                f"- {mode} at c=16, guardrails on >= 0.9x off: {v:.3f} -> {'met' if v >= 0.9 else 'NOT met'}"
            )
    if targets:
        lines += ["Targets:", *targets, ""]

    il_runs = [r for r in runs if bench.targets[r.target].kind == "interlock"]
    total_ok = sum(int(r.wrk["ok_2xx"]) for r in il_runs)
    total_rows = sum(int(r.ledger.get("rows", 0)) for r in il_runs)
    in_flight = sum(int(r.ledger.get("in_flight_at_stop", 0)) for r in il_runs)
    non2xx = sum(int(r.wrk["non2xx"]) for r in runs)
    sock = sum(int(r.wrk[k]) for r in runs for k in ("err_connect", "err_read", "err_write", "err_timeout"))
    lines.append(
        f"Ledger: {total_rows:,} rows for the measured Interlock runs; wrk completed {total_ok:,} 2xx and left "
        f"{in_flight} in flight when its clock ran out (those get a row too: 200, or 499 for a cut request); "
        f"check: completed <= rows <= completed + c, per run -> "
        f"{'VALID' if ledger_ok else 'INVALID (rows missing or non-2xx answers)'}. "
        f"Non-2xx answers (all runs): {non2xx}; socket errors: {sock}."
    )
    bad = [r for r in il_runs if not r.ledger.get("valid")]
    for r in bad:
        lines.append(
            f"- INVALID: {r.target} {r.mode} c={r.conc} round {r.round}: wrk {r.wrk['ok_2xx']} 2xx / "
            f"{r.ledger.get('rows')} rows {r.ledger.get('statuses')}"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (max 120; default 10)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported (default 3)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per mode and target (default 3)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    p.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["json", "stream"])
    p.add_argument(
        "--targets", nargs="+", choices=TARGETS, default=list(TARGETS), help="what to measure (default: all four)"
    )
    p.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE,...",
        help="another Interlock (guardrails off) with extra env, e.g. old:PYTHONPATH=/tmp/old/src; repeatable",
    )
    p.add_argument(
        "--relay-granian", action="store_true", help="also measure the relay under granian (must be importable)"
    )
    p.add_argument("--no-budgets", dest="budgets", action="store_false", help="no budget on the Interlock keys")
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="the wrk binary")
    p.add_argument("--wrk-cpu", type=int, default=None, help="pin wrk to this CPU with taskset (default: no pin)")
    p.add_argument("--stub-port", type=int, default=0, help="default: a free port")
    p.add_argument("--gateway-port", type=int, default=0, help="default: a free port")
    p.add_argument("--json", type=Path, default=None, help="also write every run's raw numbers here")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    p.add_argument("--keep-home", action="store_true", help="keep INTERLOCK_HOME (the ledgers) afterwards")
    args = p.parse_args()
    if not 1 <= args.duration <= MAX_DURATION or not 0 <= args.warmup <= 30 or not 1 <= args.rounds <= 10:
        p.error(f"--duration must be 1..{MAX_DURATION:g}, --warmup 0..30, --rounds 1..10")
    if any(not 1 <= c <= 1024 for c in args.concurrency):
        p.error("--concurrency values must be 1..1024")
    if len({v.name for v in args.variant}) != len(args.variant):
        p.error("--variant names must differ")
    if shutil.which(args.wrk) is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    bench = Bench(args)
    ports = ", ".join(f"{t.name} :{t.port}" for t in bench.targets.values())
    print(f"INTERLOCK_HOME={bench.home}  {ports}", flush=True)
    try:
        bench.start()
        bench.run_all()
    finally:
        bench.stop_all()
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
        print(f"ledgers kept under {bench.home}")
    return 0 if ledger_ok else 1


if __name__ == "__main__":
    sys.exit(main())
