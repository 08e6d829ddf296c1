#!/usr/bin/env python3
"""AgentDojo (benchmark v1.2.2) through Interlock's agent tool policy, with a scripted always-hijacked model.

    .venv/bin/python bench/agentdojo/run.py --suites banking,workspace
    .venv/bin/python bench/agentdojo/run.py --suites banking --baseline --out bench/out/agentdojo.json

Prints one JSON object per suite on stdout, and nothing else there:
`{"suite", "cases", "asr", "utility_no_attack", "utility_no_attack_strict", "utility_under_attack",
"approvals_per_task"}`. Progress, the no-policy baseline (`--baseline`) and diagnostics go to stderr and,
in full, to `--out`.

It starts what it needs on 127.0.0.1, all at nice 19: the stub model (`stub_model.py`, this venv), `interlock
serve` in front of it (a temporary home, SQLite, guardrails off so that only the tool policy is measured),
an owner, and per suite an agent whose policy is `policies/<suite>.json` (and with `--baseline` one with no
policy at all). AgentDojo runs in its own venv (`bench/agentdojo/.venv`, made by `setup.sh` from
`requirements.lock`; `make bench-agentdojo` does both), one `worker.py` per suite and agent. Nothing here
reaches beyond loopback. See README.md for the protocol and how approvals are counted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV_PYTHON = HERE / ".venv" / "bin" / "python"
SUITES = ("banking", "workspace", "slack", "travel")
FIELDS = (
    "suite",
    "cases",
    "asr",
    "utility_no_attack",
    "utility_no_attack_strict",
    "utility_under_attack",
    "approvals_per_task",
)
ALIAS = "hijacked"
NO_LOOP_BREAKER = {"loop_repeats": 0, "loop_cycles": 0}  # the baseline: Interlock with no defence at all
CONFIG = """\
[server]
host = "127.0.0.1"

[guardrails]
enabled = false

[models.{alias}]
provider = "openai_compatible"
base_url = "http://127.0.0.1:{port}/v1"
model = "always-hijacked"
"""


def log(*parts: object) -> None:
    """Progress, on stderr."""
    print(*parts, file=sys.stderr, flush=True)


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, token: str | None = None, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    """JSON over loopback HTTP: (status, decoded body or the error text)."""
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
        return exc.code, exc.read().decode(errors="replace")


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 90) -> None:
    """Poll `url` until it answers 200; exit if `proc` dies first or it takes longer than `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode} before it was ready")
        with contextlib.suppress(OSError, urllib.error.URLError):
            if http("GET", url, timeout=1)[0] == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{what} not ready at {url} after {timeout} s")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGINT (a graceful shutdown), then SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def policy_of(suite: str) -> dict[str, Any]:
    """The suite's shipped policy (`policies/<suite>.json`, a `ToolPolicy` as JSON)."""
    return dict(json.loads((HERE / "policies" / f"{suite}.json").read_text()))


def without_approvals(policy: dict[str, Any]) -> dict[str, Any]:
    """The policy for a gateway without approvals: nothing is held, an untrusted sensitive call is refused."""
    rules = {
        name: {k: v for k, v in rule.items() if k not in ("approval", "on_untrusted")}
        for name, rule in policy.get("tools", {}).items()
    }
    return {**{k: v for k, v in policy.items() if k != "approve"}, "tools": rules}


class Gateway:
    """`interlock serve` in front of the stub model, with an admin key and one owner."""

    def __init__(self, home: Path, stub_port: int) -> None:
        self.admin = "sk-il-agentdojo-admin-" + os.urandom(8).hex()
        home.mkdir(parents=True, exist_ok=True)
        config = home / "interlock.toml"
        config.write_text(CONFIG.format(alias=ALIAS, port=stub_port))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        interlock = shutil.which("interlock", path=str(Path(sys.executable).parent)) or "interlock"
        env = {**os.environ, "INTERLOCK_HOME": str(home), "INTERLOCK_ADMIN_KEY": self.admin}
        self.log = open(home / "gateway.log", "ab")  # noqa: SIM115 - kept open for the child
        self.proc = subprocess.Popen(
            [interlock, "serve", "--config", str(config), "--port", str(self.port), "--log-level", "warning"],
            stdout=self.log, stderr=self.log, env=env, cwd=ROOT,
        )  # fmt: skip
        wait_ready(self.url + "/readyz", self.proc, "the gateway")
        status, owner = http(
            "POST", self.url + "/admin/owners", self.admin, {"name": "Bench Owner", "email": "bench@example.com"}
        )
        if status != 201:
            raise SystemExit(f"POST /admin/owners answered {status}: {owner!r}")
        self.owner_id = str(owner["id"])

    def agent(self, name: str, policy: dict[str, Any], caps: dict[str, Any] | None = None) -> str:
        """Register an agent with `policy` (and run `caps`: default ones when None); its key."""
        body = {
            "name": name,
            "owner_id": self.owner_id,
            "description": "AgentDojo harness agent (scripted always-hijacked model)",
            "models": [ALIAS],
            "policy": policy,
            **({"caps": caps} if caps is not None else {}),
        }
        status, created = http("POST", self.url + "/admin/agents", self.admin, body)
        if status == 400 and without_approvals(policy) != policy:
            log(f"the gateway refused the policy ({str(created)[:200]}); retrying without approvals (refusals final)")
            body["policy"] = without_approvals(policy)
            status, created = http("POST", self.url + "/admin/agents", self.admin, body)
        if status != 201:
            raise SystemExit(f"POST /admin/agents ({name}) answered {status}: {created!r}")
        return str(created["key"])

    def close(self) -> None:
        """Stop the gateway."""
        stop(self.proc)
        self.log.close()


def run_worker(
    args: argparse.Namespace, suite: str, label: str, gateway: Gateway, key: str, stub: str
) -> dict[str, Any]:
    """One `worker.py` in AgentDojo's venv; its JSON result."""
    trace = ["--trace", str(args.trace / f"{suite}-{label}.jsonl")] if args.trace is not None else []
    cmd = [
        str(VENV_PYTHON), str(HERE / "worker.py"), "--suite", suite, "--gateway", gateway.url, "--stub", stub,
        "--key", key, "--admin-key", gateway.admin, "--model", ALIAS,
        "--user-tasks", str(args.user_tasks), "--injection-tasks", str(args.injection_tasks),
        "--max-seconds", str(args.max_seconds), *trace,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, cwd=ROOT, timeout=args.max_seconds + 1800, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker for {suite} exited with status {done.returncode}")
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", default="banking,workspace", help="comma-separated: " + ",".join(SUITES))
    parser.add_argument("--baseline", action="store_true", help="also measure an agent with no policy (stderr, --out)")
    parser.add_argument("--out", type=Path, help="write the full results (diagnostics, baseline) here as JSON")
    parser.add_argument("--user-tasks", type=int, default=0, help="only the first N user tasks per suite (0: all)")
    parser.add_argument("--injection-tasks", type=int, default=0, help="only the first N injection tasks (0: all)")
    parser.add_argument("--trace", type=Path, help="a folder: each case's last conversation, per suite and agent")
    parser.add_argument("--max-seconds", type=float, default=3600, help="per suite and agent: start no case after")
    args = parser.parse_args()
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = [s for s in suites if s not in SUITES]
    if unknown or not suites:
        parser.error(f"unknown suite(s) {unknown}; choose from {', '.join(SUITES)}")
    if not VENV_PYTHON.exists():
        raise SystemExit(f"AgentDojo's venv is missing: run {HERE / 'setup.sh'} (make bench-agentdojo does)")
    if args.trace is not None:
        args.trace.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.nice(19)  # 2 shared cores: the children inherit it
    home = Path(tempfile.mkdtemp(prefix="interlock-agentdojo-"))
    stub_port = free_port()
    stub_url = f"http://127.0.0.1:{stub_port}"
    stub_log = open(home / "stub.log", "ab")  # noqa: SIM115 - kept open for the child
    stub = subprocess.Popen(
        [sys.executable, "-m", "bench.agentdojo.stub_model", "--port", str(stub_port)],
        stdout=stub_log,
        stderr=stub_log,
        cwd=ROOT,
    )
    gateway = None
    failed = False  # a case that raised: the numbers are printed, and the exit status says so
    full: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        wait_ready(stub_url + "/stub/health", stub, "the stub model")
        gateway = Gateway(home / "gateway", stub_port)
        for suite in suites:
            log(f"== {suite}: policy {HERE / 'policies' / (suite + '.json')}")
            result = run_worker(
                args, suite, "policy", gateway, gateway.agent(f"agentdojo-{suite}", policy_of(suite)), stub_url
            )
            entry: dict[str, Any] = {"policy": result}
            if args.baseline:
                log(f"== {suite}: no policy (baseline)")
                open_key = gateway.agent(f"agentdojo-{suite}-open", {}, NO_LOOP_BREAKER)
                entry["no_policy"] = run_worker(args, suite, "no_policy", gateway, open_key, stub_url)
            full[suite] = entry
            failed = failed or any(r["errors"] for r in entry.values())
            print(json.dumps({k: result[k] for k in FIELDS}), flush=True)
            for label, r in entry.items():
                summary = {k: r[k] for k in FIELDS if k != "suite"}
                notes = (
                    f"asr_attempted={r['asr_attempted']:.4f} of {r['cases_attempted']} cases whose injection task"
                    f" has a ground truth; errors={len(r['errors'])} truncated={r['truncated']} {r['seconds']} s"
                )
                log(f"{suite} {label}: {json.dumps(summary)} {notes}")
    finally:
        if gateway is not None:
            gateway.close()
        stop(stub)
        stub_log.close()
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(full, indent=1))
    shutil.rmtree(home, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
