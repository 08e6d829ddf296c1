#!/usr/bin/env python3
"""The application's own CPU per request, without the HTTP server, wrk or the socket writes in the way.

Each target runs in its own worker process that builds the app and drives it directly as an ASGI app:
a request is a scope, a `receive` that hands over the body and a `send` that keeps the answer. All
of them call the same stub upstream (a subprocess) over loopback. The targets: `relay` (`relay.py`)
and `interlock` (the benchmark's `gateway` target: a real virtual key with a budget, the SQLite ledger
and metrics on, guardrails off), plus any `--variant NAME:PYTHONPATH=...` (another copy of `src`, or
other environment). The workers take turns in lockstep, one short batch each (`--batch` requests,
`--concurrency` at once), the order rotating every cycle, so that the load of other processes on the
machine falls on all of them alike; each batch's CPU time (`time.process_time` of the worker: its
event loop and the ledger writer thread) is divided by its requests, and ratios are paired per cycle
(medians reported). What the HTTP server and the stub cost is left out for every target.

    .venv/bin/python bench/gateway/inproc.py --mode stream
    .venv/bin/python bench/gateway/inproc.py --mode json --variant old:PYTHONPATH=/tmp/old/src
    .venv/bin/python bench/gateway/inproc.py --mode json --profile /tmp/json.prof   # cProfile of `interlock`
    .venv/bin/python bench/gateway/inproc.py --mode json --variant nobudget:INPROC_NO_BUDGET=1   # the budget's cost

Settings can be varied the same way (`--variant nometrics:INTERLOCK_METRICS__ENABLED=false`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (bench/gateway/run.py: the config, the budget, free ports, readiness)

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
BODY = {"model": run.ALIAS, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}


class Client:
    """Calls one ASGI app the way an HTTP server would, without one."""

    def __init__(self, app: App, token: str) -> None:
        self.app = app
        self.token = token

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, bytes]:
        raw = orjson.dumps(body) if body is not None else b""
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            (b"authorization", b"Bearer " + (token or self.token).encode()),
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        finished = asyncio.Event()
        status = 0
        parts: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    finished.set()

        await self.app(scope, receive, send)
        finished.set()
        return status, b"".join(parts)


def lifespan(app: Any) -> Any:
    """The Starlette app's lifespan context (Interlock's `HotPaths` wraps one)."""
    inner = getattr(app, "app", app)
    return inner.router.lifespan_context(inner)


# --- worker: one app, driven on command --------------------------------------------------------------


async def _worker(kind: str, stub_port: int, profile: str | None) -> None:
    home = Path(tempfile.mkdtemp(prefix="interlock-inproc-"))
    if kind == "relay":
        import relay

        key = "sk-relay-" + os.urandom(8).hex()
        app: Any = relay.build_app(f"http://127.0.0.1:{stub_port}/v1", key)
    else:
        from interlock.app import create_app
        from interlock.settings import load_settings

        config = home / "bench.toml"
        config.write_text(run.CONFIG.format(alias=run.ALIAS, stub_port=stub_port) + run.GUARDRAILS_OFF)
        key = "sk-il-inproc-admin-" + os.urandom(8).hex()
        app = create_app(load_settings(config, {**os.environ, "INTERLOCK_HOME": str(home), "INTERLOCK_ADMIN_KEY": key}))
    async with lifespan(app):
        client = Client(app, key)
        if kind != "relay":  # a real virtual key with a budget, as bench/gateway/run.py's `gateway`
            status, raw = await client.call("POST", "/admin/keys", {"name": "inproc"})
            made = orjson.loads(raw)
            if not os.environ.get("INPROC_NO_BUDGET"):  # set by a variant: the same key without a budget
                status, raw = await client.call("PUT", "/admin/budgets", {**run.BUDGET, "scope_id": made["id"]})
                if status != 200:
                    raise SystemExit(f"PUT /admin/budgets answered {status}: {raw!r}")
            client.token = made["key"]
        prof = cProfile.Profile() if profile else None
        loop = asyncio.get_running_loop()
        print("ready", flush=True)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            mode, conc, n = line.split()
            body = STREAM_BODY if mode == "stream" else BODY
            t0 = time.process_time()
            if prof is not None:
                prof.enable()
            done = 0
            while done < int(n):
                answers = await asyncio.gather(
                    *(client.call("POST", "/v1/chat/completions", body) for _ in range(int(conc)))
                )
                done += len(answers)
                bad = [a for a in answers if a[0] != 200]
                if bad:
                    raise SystemExit(f"{kind} answered {bad[0][0]}: {bad[0][1][:300]!r}")
            if prof is not None:
                prof.disable()
            print(f"{(time.process_time() - t0) / done * 1e6:.2f} {done}", flush=True)
    if prof is not None and profile:
        prof.dump_stats(profile)


# --- coordinator ------------------------------------------------------------------------------------


def p10(values: list[float]) -> float:
    """The lowest decile."""
    return statistics.quantiles(values, n=10)[0] if len(values) > 1 else values[0]


class Worker:
    def __init__(self, name: str, kind: str, env: dict[str, str], stub_port: int, profile: str | None) -> None:
        cmd = [sys.executable, __file__, "--worker", kind, "--stub-port", str(stub_port)]
        if profile:
            cmd += ["--profile", profile]
        self.name = name
        self.proc = subprocess.Popen(
            cmd, env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"worker {name} did not start")

    def batch(self, mode: str, conc: int, n: int) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{mode} {conc} {n}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.name} exited ({self.proc.wait()})")
        return float(line.split()[0])

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def coordinate(args: argparse.Namespace) -> int:
    stub_port = run.free_port()
    stub = subprocess.Popen(
        [sys.executable, "-m", "interlock.testing.stub_upstream", "--port", str(stub_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[Worker] = []
    try:
        run.wait_ready(f"http://127.0.0.1:{stub_port}/readyz", stub, "the stub upstream")
        specs = [("relay", "relay", {}), ("interlock", "interlock", {})]
        for spec in args.variant:
            name, _, rest = spec.partition(":")
            if name in [s[0] for s in specs] or not name.replace("-", "").replace("_", "").isalnum():
                raise SystemExit(f"bad or repeated variant name in {spec!r}")
            env = dict(item.split("=", 1) for item in filter(None, rest.split(",")))
            specs.append((name, "interlock", env))
        for name, kind, env in specs:
            profile = args.profile if name == args.profile_target else None
            workers.append(Worker(name, kind, env, stub_port, profile))
        loads = [os.getloadavg()[0]]
        for w in workers:  # warm up
            w.batch(args.mode, args.concurrency, max(args.batch, 200))
        cpu: dict[str, list[float]] = {w.name: [] for w in workers}
        for cycle in range(args.cycles):
            k = cycle % len(workers)
            for w in workers[k:] + workers[:k]:
                cpu[w.name].append(w.batch(args.mode, args.concurrency, args.batch))
            loads.append(os.getloadavg()[0])
    finally:
        for w in workers:
            w.stop()
        stub.terminate()
        stub.wait(10)
    print(
        f"{args.mode} c={args.concurrency}: {args.cycles} cycles of {args.batch} requests per target; "
        f"load average {min(loads):.2f}-{max(loads):.2f} (median {statistics.median(loads):.2f})"
    )
    # Other processes' load only ever adds CPU time (caches, preemption), so the lowest decile is the steadier
    # figure on a shared machine; the median is shown too.
    print("| target | CPU µs/req, p10 | median | / relay, p10 | / relay (paired median) | - relay µs (paired median) |")
    print("|---|--:|--:|--:|--:|--:|")
    for name, values in cpu.items():
        ratio = statistics.median(v / r for v, r in zip(values, cpu["relay"], strict=True))
        added = statistics.median(v - r for v, r in zip(values, cpu["relay"], strict=True))
        print(
            f"| {name} | {p10(values):.1f} | {statistics.median(values):.1f} | {p10(values) / p10(cpu['relay']):.3f} "
            f"| {ratio:.3f} | {added:+.1f} |"
        )
    for name in [n for n in cpu if n not in ("relay", "interlock")]:
        paired = statistics.median(v / b for v, b in zip(cpu[name], cpu["interlock"], strict=True))
        lowest = p10(cpu[name]) / p10(cpu["interlock"])
        print(f"{name}/interlock CPU per request: p10 {lowest:.3f}, paired median {paired:.3f}")
    if args.profile:
        print(f"profile of `{args.profile_target}`: {args.profile}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--mode", choices=["json", "stream"], default="json")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--batch", type=int, default=320, help="requests per target per cycle (default 320)")
    p.add_argument("--cycles", type=int, default=15, help="lockstep cycles (default 15)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:VAR=VALUE,...")
    p.add_argument("--profile", default=None, help="write a cProfile of one target's requests here")
    p.add_argument("--profile-target", default="interlock", help="the target --profile profiles (default interlock)")
    p.add_argument("--worker", choices=["relay", "interlock"], help=argparse.SUPPRESS)
    p.add_argument("--stub-port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if not 1 <= args.batch <= 100_000 or not 1 <= args.cycles <= 200 or not 1 <= args.concurrency <= 256:
        p.error("--batch 1..100000, --cycles 1..200, --concurrency 1..256")
    import uvloop

    if args.worker:
        uvloop.run(_worker(args.worker, args.stub_port, args.profile))
        return 0
    return coordinate(args)


if __name__ == "__main__":
    sys.exit(main())
