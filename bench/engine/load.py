"""Aggregate throughput and latency under concurrent clients, each asking for 32-token answers.

Targets: `engine` (our LocalChatProvider, in process), `server` (`python -m llama_cpp.server` in a
subprocess), `llama-server` (llama.cpp's own C++ server with continuous batching, built from the same
vendored source by `scripts/build-llama-tools.sh`, with the same slots, context per slot and threads as
Interlock) and `http` (`interlock serve` in a subprocess, through the whole gateway; `http=DIR` runs
it with `PYTHONPATH=DIR`, another copy of `src`, to compare two versions in one run). All targets
start first; then each concurrency level runs on every target in turn, so that load from other
jobs on the machine hits them alike. A level runs for at most `--duration` seconds and
`--max-requests` requests; only loopback is used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from common import load_average, machine, percentile, stamp, story_prompt

from interlock.engines.llamacpp.model import default_model_path
from interlock.providers.local import LocalChatProvider
from interlock.settings import EngineSettings, ModelSettings
from interlock.types import ChatRequest

Ask = Callable[[int], Awaitable[int]]  # prompt index -> completion tokens
ADMIN_KEY = "sk-il-admin-bench-key"
SLOTS = 16
PIDS: dict[str, int] = {}  # server process of each subprocess target, for its CPU time
COUNTERS: dict[str, Callable[[], Awaitable[dict[str, float]]]] = {}  # what each server has decoded so far


async def interlock_counters(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """The embedded engine's decode counters, from /readyz."""
    async with http.get(base + "/readyz") as r:
        engine = (await r.json())["models"]["smollm2"]["engine"]
    keys = ("steps", "prompt_tokens", "filler_tokens", "completion_tokens")
    return {k: float(engine[k]) for k in keys}


async def llama_server_counters(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """llama-server's decode counters, from its Prometheus /metrics (`--metrics`)."""
    names = {"llamacpp:n_decode_total": "steps", "llamacpp:prompt_tokens_total": "prompt_tokens",
             "llamacpp:tokens_predicted_total": "completion_tokens"}  # fmt: skip
    async with http.get(base + "/metrics") as r:
        text = await r.text()
    out = {"filler_tokens": 0.0}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            out[names[name]] = float(value)
    return out


def decoded(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What a server decoded during a level: steps, tokens per step and tokens decoded per token generated."""
    d = {k: after[k] - before.get(k, 0.0) for k in after}
    generated = max(d["completion_tokens"], 1.0)
    total = d["prompt_tokens"] + d["filler_tokens"] + d["completion_tokens"]
    return {
        "steps": d["steps"],
        "prompt_decoded": d["prompt_tokens"],
        "fillers": d["filler_tokens"],
        "tokens_per_step": round(total / max(d["steps"], 1.0), 2),
        "decoded_per_generated": round(total / generated, 3),
    }


def _stat(path: str) -> tuple[str, float]:
    """The name and CPU seconds (user + system) in a /proc `stat` file."""
    stat = Path(path).read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return stat[stat.index("(") + 1 : stat.rindex(")")], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used: others' load moves it far less than wall time."""
    return _stat(f"/proc/{pid}/stat")[1]


def thread_cpu_s(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds of each thread of a process, with its name: which thread takes what under load."""
    out: dict[int, tuple[str, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):  # a thread may end between the listing and the read
            out[int(tid)] = _stat(f"/proc/{pid}/task/{tid}/stat")
    return out


def busiest_threads(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> list[str]:
    """The four threads that used the most CPU between two `thread_cpu_s` readings, as "name:seconds"."""
    used = sorted(((cpu - before.get(tid, (name, 0.0))[1], name) for tid, (name, cpu) in after.items()), reverse=True)
    return [f"{name}:{cpu:.2f}" for cpu, name in used[:4] if cpu > 0]


async def run_level(ask: Ask, clients: int, duration: float, max_requests: int) -> dict[str, float]:
    """`clients` closed-loop clients until the deadline or the request budget runs out."""
    latencies: list[float] = []
    tokens = 0
    issued = 0
    deadline = time.monotonic() + duration

    async def client() -> None:
        nonlocal tokens, issued
        while time.monotonic() < deadline and issued < max_requests:
            issued += 1
            t = time.monotonic()
            n = await ask(issued)  # not `tokens += await ...`: that reads `tokens` before the await
            tokens += n
            latencies.append(time.monotonic() - t)

    load = load_average()
    start = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(clients))), duration + 120)
    wall = time.monotonic() - start
    return {
        "clients": clients,
        "requests": len(latencies),
        "tokens": tokens,
        "tok_s": round(tokens / wall, 1),
        "req_s": round(len(latencies) / wall, 2),
        "p50_s": round(percentile(latencies, 50), 2),
        "p99_s": round(percentile(latencies, 99), 2),
        "load": float(load),
    }


@contextlib.asynccontextmanager
async def engine_target(args: argparse.Namespace) -> AsyncIterator[Ask]:
    """Our provider, called directly."""
    settings = EngineSettings(slots=SLOTS, n_ctx_per_slot=1024, n_batch=512, queue_size=64, threads=args.threads)
    provider = LocalChatProvider("smollm2", ModelSettings(provider="local", path=args.model), settings)
    await provider.start()

    async def ask(i: int) -> int:
        messages = [{"role": "user", "content": story_prompt(i)}]
        req = ChatRequest(model="smollm2", messages=messages, max_tokens=32, temperature=0)  # type: ignore[arg-type]
        answer = await provider.chat(req)
        assert answer.usage is not None
        return answer.usage.completion_tokens

    try:
        yield ask
    finally:
        await provider.close()


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Poll `url` until it answers 200, the process dies, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout} s")


async def new_key(base: str) -> str:
    """A virtual key from the gateway's admin API, so requests take the normal path."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        aiohttp.ClientSession(headers=admin) as http,
        http.post(base + "/admin/keys", json={"name": "bench-engine"}) as r,
    ):
        body = await r.json()
        if r.status != 201:
            raise RuntimeError(f"POST /admin/keys answered {r.status}: {body}")
        return str(body["key"])


@contextlib.asynccontextmanager
async def http_target(args: argparse.Namespace, target: str) -> AsyncIterator[Ask]:
    """`llama_cpp.server` or `interlock serve` in a subprocess, called over loopback HTTP."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ}
    headers: dict[str, str] = {}
    threads = str(args.threads)
    with tempfile.TemporaryDirectory() as home:
        if target == "server":
            # By default the server cuts a running answer short whenever another request waits,
            # which would make its answers shorter than 32 tokens; here every client gets 32.
            cmd = [sys.executable, "-m", "llama_cpp.server", "--model", args.model, "--host", "127.0.0.1",
                   "--port", str(port), "--n_ctx", "2048", "--n_batch", "512", "--n_threads", threads,
                   "--n_threads_batch", threads, "--flash_attn", args.server_flash_attn,
                   "--interrupt_requests", "false"]  # fmt: skip
            ready = base + "/v1/models"
        elif target == "llama-server":
            tools = subprocess.run(["scripts/build-llama-tools.sh"], check=True, capture_output=True, text=True)
            binary = tools.stdout.strip().splitlines()[-1] + "/llama-server"
            cmd = [binary, "-m", args.model, "--host", "127.0.0.1", "--port", str(port), "-np", str(SLOTS),
                   "-c", str(SLOTS * 1024), "-t", threads, "-tb", threads, "-fa", "on" if args.server_flash_attn
                   == "true" else "off", "-cb", "--no-webui", "--no-kv-unified", "--metrics"]  # fmt: skip
            ready = base + "/health"
        else:
            if target.startswith("http="):  # another copy of the source tree, for before/after in one run
                env["PYTHONPATH"] = target.split("=", 1)[1]
            cmd = [sys.executable, "-m", "interlock.cli.main", "serve", "--port", str(port), "--log-level", "warning"]
            env.update(INTERLOCK_HOME=home, INTERLOCK_ADMIN_KEY=ADMIN_KEY, INTERLOCK_ENGINE__SLOTS=str(SLOTS),
                       INTERLOCK_ENGINE__N_CTX_PER_SLOT="1024", INTERLOCK_ENGINE__THREADS=threads)  # fmt: skip
            ready = base + "/readyz"
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        PIDS[target] = proc.pid
        try:
            await wait_ready(ready, proc)
            if target.startswith("http"):
                headers["Authorization"] = f"Bearer {await new_key(base)}"
            async with aiohttp.ClientSession(headers=headers) as http:
                if target == "llama-server":
                    COUNTERS[target] = lambda: llama_server_counters(http, base)
                elif target.startswith("http"):
                    COUNTERS[target] = lambda: interlock_counters(http, base)

                async def ask(i: int) -> int:
                    messages = [{"role": "user", "content": story_prompt(i)}]
                    body = {"model": "smollm2", "messages": messages, "max_tokens": 32, "temperature": 0}
                    timeout = aiohttp.ClientTimeout(total=300)
                    async with http.post(base + "/v1/chat/completions", json=body, timeout=timeout) as r:
                        data = await r.json()
                        if r.status != 200:
                            raise RuntimeError(f"HTTP {r.status}: {data}")
                        return int(data["usage"]["completion_tokens"])

                yield ask
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def bench(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Start every target, then run each level on each target in turn."""
    results: dict[str, list[dict[str, Any]]] = {t: [] for t in args.targets}
    async with contextlib.AsyncExitStack() as stack:
        asks: dict[str, Ask] = {}
        for target in args.targets:
            cm = engine_target(args) if target == "engine" else http_target(args, target)
            asks[target] = await stack.enter_async_context(cm)
            await asks[target](0)  # warm-up
        for clients in args.clients:
            for target in args.targets:
                pid = PIDS.get(target)
                cpu = cpu_s(pid) if pid else 0.0
                threads = thread_cpu_s(pid) if pid else {}
                counters = COUNTERS.get(target)
                before = await counters() if counters else {}
                level: dict[str, Any] = await run_level(asks[target], clients, args.duration, args.max_requests)
                if pid:  # tokens per CPU-second of the server: with one thread, nearly immune to others' load
                    cpu = cpu_s(pid) - cpu
                    level.update(cpu_s=round(cpu, 2), tok_per_cpu_s=round(level["tokens"] / max(cpu, 0.01), 1))
                    level["threads"] = busiest_threads(threads, thread_cpu_s(pid))
                if counters:
                    level.update(decoded(before, await counters()))
                results[target].append(level)
                print(target, json.dumps(level), file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=lambda s: s.split(","), default=["engine", "server"])
    parser.add_argument("--model", default=str(default_model_path()))
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8, 16])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per level and target")
    parser.add_argument("--max-requests", type=int, default=400, help="requests per level and target at most")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--server-flash-attn", choices=["true", "false"], default="true")
    args = parser.parse_args()
    results = asyncio.run(bench(args))
    print(json.dumps({"date": stamp(), "machine": machine(), "args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
