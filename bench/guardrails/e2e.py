#!/usr/bin/env python3
"""Guardrails end to end: what reaches the upstream, what comes back, and what it costs.

1. **Leaks**: `interlock serve` with a bench policy (e-mail and phone pseudonymised; cards, IBANs and
   secrets redacted) in front of an echo upstream that records every body (`echo_stub.py`). Prompts
   carry Faker values of several locales; each is sent with the official `openai` and `anthropic` SDKs,
   plain and streamed. Counted: raw values of those types found in what the upstream received (must be
   0), and pseudonymised values restored in the answer the client got (must be all).
2. **Hook latency**: the guardrail hook's `before` (the input scan and rewrite) and `after` (the answer
   scan and restore) in-process with the shipped default policy, for a 1 KB and a 16 KB prompt: p50, p95.
3. **Throughput**: wrk against two gateways in front of the same stub upstream, one with the default
   guardrails and one with `[guardrails] enabled = false`, interleaved; a 1 KB prompt with an e-mail.

    .venv/bin/python bench/guardrails/e2e.py                 # ~2 minutes
    .venv/bin/python bench/guardrails/e2e.py --prompts 20 --duration 3 --rounds 1   # a quick look

Everything runs on 127.0.0.1 and every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "bench" / "gateway"))

from run import free_port, http, stop, wait_ready  # noqa: E402 - bench/gateway/run.py's helpers

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL"]
ADMIN = "sk-il-bench-admin-" + os.urandom(8).hex()
BENCH_POLICY = """
[guardrails.policy.input]
EMAIL_ADDRESS = "pseudonymise"
PHONE_NUMBER = "pseudonymise"
CREDIT_CARD = "redact"
IBAN_CODE = "redact"
"SECRET_*" = "redact"
"*" = "log"
"""
MODELS = """
[server]
host = "127.0.0.1"

[models.gpt]
provider = "openai_compatible"
base_url = "http://127.0.0.1:{port}/v1"
model = "gpt-echo"
price_input_per_mtok = 2.5
price_output_per_mtok = 10

[models.claude]
provider = "anthropic"
base_url = "http://127.0.0.1:{port}"
model = "claude-echo"
price_input_per_mtok = 3
price_output_per_mtok = 15
"""


@dataclass
class Case:
    prompt: str
    pseudonymised: list[str]  # values that must come back restored
    redacted: list[str]  # values that must come back as placeholders
    raw: list[str]  # every value that must not reach the upstream


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def make_cases(n: int, seed: int) -> list[Case]:
    from faker import Faker

    cases = []
    for i in range(n):
        fake = Faker(LOCALES[i % len(LOCALES)])
        fake.seed_instance(seed + i)
        email, phone = fake.email(), fake.phone_number()
        card, iban = fake.credit_card_number(), fake.iban()
        secret = (
            "sk-proj-" + fake.pystr(min_chars=48, max_chars=48) + "T3BlbkFJ" + fake.pystr(min_chars=24, max_chars=24)
        )
        prompt = (
            f"Hi, this is {fake.name()}. Reach me at {email} or on {phone}. My card {card} was charged twice "
            f"and the refund should go to {iban}. The integration key is {secret} if you need it. "
            f"{fake.sentence(nb_words=12)}"
        )
        cases.append(Case(prompt, [email, phone], [card, iban, secret], [email, phone, card, iban, secret]))
    return cases


def leaked(bodies: list[Any], case: Case) -> list[str]:
    """The raw values of `case` that appear in any of the upstream's received bodies (cards and IBANs by digits)."""
    text = json.dumps(bodies, ensure_ascii=False)
    digits = _digits(text)
    out = []
    for v in case.raw:
        if v in text or (len(_digits(v)) >= 12 and _digits(v) in digits and not v.startswith("sk-")):
            out.append(v)
    return out


async def run_leaks(gw: str, stub: str, token: str, cases: list[Case]) -> dict[str, Any]:
    import anthropic
    import openai

    oai = openai.AsyncOpenAI(base_url=gw + "/v1", api_key=token, max_retries=0)
    ant = anthropic.AsyncAnthropic(base_url=gw, api_key=token, max_retries=0)
    results: dict[str, dict[str, int]] = {}
    for api in ("openai", "openai-stream", "anthropic", "anthropic-stream"):
        r = results[api] = {"requests": 0, "leaked_values": 0, "restored": 0, "to_restore": 0, "redacted_shown": 0}
        for case in cases:
            http("DELETE", stub + "/received")
            if api == "openai":
                c = await oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": case.prompt}])
                answer = c.choices[0].message.content or ""
            elif api == "openai-stream":
                answer = ""
                stream = await oai.chat.completions.create(
                    model="gpt", messages=[{"role": "user", "content": case.prompt}], stream=True
                )
                async for chunk in stream:
                    answer += "".join(ch.delta.content or "" for ch in chunk.choices)
            elif api == "anthropic":
                m = await ant.messages.create(
                    model="claude", max_tokens=400, messages=[{"role": "user", "content": case.prompt}]
                )
                answer = "".join(b.text for b in m.content if b.type == "text")
            else:
                answer = ""
                async with ant.messages.stream(
                    model="claude", max_tokens=400, messages=[{"role": "user", "content": case.prompt}]
                ) as s:
                    async for text in s.text_stream:
                        answer += text
            _, bodies = http("GET", stub + "/received")
            r["requests"] += 1
            r["leaked_values"] += len(leaked(bodies, case))
            r["to_restore"] += len(case.pseudonymised)
            r["restored"] += sum(v in answer for v in case.pseudonymised)
            r["redacted_shown"] += sum(v not in answer for v in case.redacted)
    return results


def hook_latency(sizes: list[int], iterations: int) -> dict[int, dict[str, float]]:
    """The guardrail hook's before+after on a prompt of each size, with the default policy, in-process."""
    from faker import Faker

    from interlock.guardrails.service import GuardrailService
    from interlock.settings import GuardrailSettings
    from interlock.types import AssistantMessage, ChatRequest, ChatResponse, Choice

    service = GuardrailService(GuardrailSettings(enabled=True))
    hook = service.hook(None)
    fake = Faker("en_US")
    fake.seed_instance(7)

    @dataclass
    class Principal:
        key_id: str | None = "k1"
        name: str = "bench"
        agent_id: str | None = None
        owner_id: str | None = None
        is_admin: bool = False
        team_id: str | None = None
        org_id: str | None = None

    @dataclass
    class Ctx:
        request_id: str = "req_bench"
        endpoint: str = "chat"
        principal: Principal = field(default_factory=Principal)
        alias: str = "gpt"
        stream: bool = False
        restricted: bool = False
        cacheable: bool = True
        headers: dict[str, str] | None = None
        notes: dict[str, object] | None = None

    out = {}
    for size in sizes:
        text = ""
        while len(text) < size:
            text += fake.paragraph(nb_sentences=5) + " "
        text = text[: size - 60] + f" Contact {fake.email()} or {fake.phone_number()}."
        request = ChatRequest(model="gpt", messages=[{"role": "user", "content": text}])  # type: ignore[list-item]
        answer = ChatResponse(
            id="x", created=0, model="gpt", choices=[Choice(message=AssistantMessage(content=text[: size // 2]))]
        )
        times: list[float] = []

        async def once(request: ChatRequest = request, answer: ChatResponse = answer) -> float:
            ctx = Ctx(headers={}, notes={})
            t0 = time.perf_counter()
            await hook.before(ctx, request)  # type: ignore[arg-type]
            await hook.after(ctx, answer)  # type: ignore[arg-type]
            return (time.perf_counter() - t0) * 1000

        async def loop(times: list[float] = times, once: Any = once) -> None:
            for _ in range(min(iterations, 20)):
                await once()  # warm-up
            for _ in range(iterations):
                times.append(await once())

        asyncio.run(loop())
        times.sort()
        out[size] = {"p50_ms": statistics.median(times), "p95_ms": times[int(len(times) * 0.95) - 1], "n": len(times)}
    return out


def holdback_delay(samples: int) -> dict[str, dict[str, float]]:
    """Characters held back behind the model while streaming word by word: prose, and prose with numbers,
    dates and e-mail addresses in it (words that may start an entity), under the default policy's output
    rules (secrets) and under output rules on PII too."""
    from faker import Faker

    from interlock.guardrails.ports import prefilter
    from interlock.guardrails.service import GuardrailService
    from interlock.guardrails.transform import HoldBack
    from interlock.settings import GuardrailSettings

    pii_out = {
        "output": {"SECRET_*": "redact", "CREDIT_CARD": "block", "EMAIL_ADDRESS": "redact", "PHONE_NUMBER": "redact"}
    }
    out = {}
    for rules, kind in [({}, "prose"), ({}, "with numbers"), (pii_out, "prose"), (pii_out, "with numbers")]:
        service = GuardrailService(GuardrailSettings(enabled=True, policy=rules))
        policy = service.book.resolve(key_id=None, team_id=None, org_id=None, model=None)
        scanner = service.scanners.output(policy)
        fake = Faker("en_US")
        fake.seed_instance(5)
        held: list[int] = []
        for _ in range(samples):
            words = fake.paragraph(nb_sentences=6).split(" ")
            if kind == "with numbers":
                words[3:3] = [f"on {fake.date()}", f"order {fake.random_int(1000, 99999)},", f"mail {fake.email()}"]
            hb = HoldBack(
                scanner.scan, policy.output_action, None, service.settings.hold_back_chars,
                could_match=prefilter(scanner, policy),
            )  # fmt: skip
            for i, word in enumerate(words):
                hb.feed(word if i == 0 else " " + word)
                held.append(hb.pending)
        held.sort()
        out[f"{'PII and secrets' if rules else 'default (secrets)'} output rules, {kind}"] = {
            "mean_chars": statistics.fmean(held),
            "p95_chars": float(held[int(len(held) * 0.95) - 1]),
            "window_chars": float(service.settings.hold_back_chars),
        }
    return out


WRK_LUA = """package.path = "{gateway_dir}/?.lua;" .. package.path
require("common").install({body})
"""


def throughput(args: argparse.Namespace, home: Path, stub_port: int) -> dict[str, Any]:
    """wrk req/s against a gateway with the default guardrails and one without, interleaved rounds."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(3)
    text = ""
    while len(text) < 960:
        text += fake.paragraph(nb_sentences=4) + " "
    prompt = text[:960] + ("" if args.no_entity else f" Mail {fake.email()}.")
    body = json.dumps({"model": "gpt", "messages": [{"role": "user", "content": prompt}], "max_tokens": 16})
    lua = home / "guarded.lua"
    lua.write_text(WRK_LUA.format(gateway_dir=ROOT / "bench" / "gateway", body=json.dumps(body)))
    stub_models = MODELS.format(port=stub_port)
    procs: dict[str, tuple[subprocess.Popen[bytes], int, str]] = {}
    results: dict[str, list[float]] = {"on": [], "off": []}
    try:
        for name, extra in (("on", ""), ("off", "\n[guardrails]\nenabled = false\n")):
            procs[name] = start_gateway(home / name, stub_models + extra)
        for rnd in range(args.rounds):
            for name in ("on", "off") if rnd % 2 == 0 else ("off", "on"):
                _, port, token = procs[name]
                env = {**os.environ, "BENCH_KEY": token}
                cmd = [args.wrk, "-t1", "-c16", f"-d{args.duration:g}s", "--timeout", "5s", "-s", str(lua),
                       f"http://127.0.0.1:{port}/v1/chat/completions"]  # fmt: skip
                done = subprocess.run(
                    cmd, env=env, capture_output=True, text=True, timeout=args.duration + 30, check=False
                )
                line = next((x for x in done.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
                if line is None:
                    raise SystemExit(f"wrk failed: {done.stdout}{done.stderr}")
                data = json.loads(line[len("BENCHJSON ") :])
                if data["non2xx"]:
                    raise SystemExit(f"{name}: {data['non2xx']} non-2xx answers")
                rps = data["requests"] / (data["duration_us"] / 1e6)
                results[name].append(rps)
                print(
                    f"  round {rnd + 1} guardrails {name:3s} {rps:8.0f} req/s  p50 {data['p50_us'] / 1000:.2f} ms",
                    flush=True,
                )
    finally:
        for proc, _, _ in procs.values():
            stop(proc)
    on, off = statistics.median(results["on"]), statistics.median(results["off"])
    return {"on_rps": on, "off_rps": off, "ratio": on / off, "rounds": args.rounds, "duration_s": args.duration}


def start_gateway(home: Path, config_text: str, policy: str = "") -> tuple[subprocess.Popen[bytes], int, str]:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "interlock.toml"
    config.write_text(config_text + policy)
    port = free_port()
    interlock = shutil.which("interlock", path=str(Path(sys.executable).parent)) or "interlock"
    env = {**os.environ, "INTERLOCK_HOME": str(home), "INTERLOCK_ADMIN_KEY": ADMIN}
    log = open(home / "gateway.log", "ab")  # noqa: SIM115 - kept open for the child
    proc = subprocess.Popen(
        [interlock, "serve", "--config", str(config), "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=log, env=env, cwd=ROOT,
    )  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}/readyz", proc, "the gateway", timeout=90)
    status, key = http("POST", f"http://127.0.0.1:{port}/admin/keys", ADMIN, {"name": "bench"})
    if status != 201:
        raise SystemExit(f"POST /admin/keys answered {status}: {key!r}")
    return proc, port, str(key["key"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=60)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    parser.add_argument("--no-entity", action="store_true", help="throughput prompt without the e-mail address")
    parser.add_argument("--only-throughput", action="store_true")
    args = parser.parse_args()
    args.duration = min(args.duration, 60.0)
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    home = Path(tempfile.mkdtemp(prefix="interlock-guardrails-"))
    stub_port = free_port()
    stub = subprocess.Popen([sys.executable, str(HERE / "echo_stub.py"), "--port", str(stub_port)], cwd=ROOT)
    stub_url = f"http://127.0.0.1:{stub_port}"
    gateway = None
    try:
        wait_ready(stub_url + "/received", stub, "the echo stub", timeout=30)
        if args.only_throughput:
            print(json.dumps(throughput(args, home, stub_port), indent=1), flush=True)
            return 0
        gateway, port, token = start_gateway(home / "leaks", MODELS.format(port=stub_port), BENCH_POLICY)
        print(f"leaks: {args.prompts} prompts x 4 APIs", flush=True)
        leaks = asyncio.run(run_leaks(f"http://127.0.0.1:{port}", stub_url, token, make_cases(args.prompts, args.seed)))
        stop(gateway)
        gateway = None
        print(json.dumps(leaks, indent=1), flush=True)
        print("hook latency", flush=True)
        latency = hook_latency([1024, 16384], args.iterations)
        print(json.dumps(latency, indent=1), flush=True)
        print("hold-back delay", flush=True)
        print(json.dumps(holdback_delay(40), indent=1), flush=True)
        print("throughput", flush=True)
        rps = throughput(args, home, stub_port) if shutil.which(args.wrk) else {"skipped": "wrk not installed"}
        print(json.dumps(rps, indent=1), flush=True)
    finally:
        stop(gateway)
        stub.terminate()
        stub.wait(10)
    bad = sum(r["leaked_values"] for r in leaks.values()) + sum(r["to_restore"] - r["restored"] for r in leaks.values())
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
