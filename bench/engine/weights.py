"""Which weights to serve: quality and speed of the packaged Q4_1 file against its requantisations.

`quality`: each variant (the packaged Q4_1 `original`, and Q8_0, Q4_0 and F16 converted from it by
`interlock.engines.weights.convert`) runs in its own process through llama-cpp-python with
`logits_all=True` over a fixed public-domain text (`declaration.txt`: the Declaration of Independence
and the Gettysburg Address, ~2,000 tokens, one window). It reports the perplexity, and against the
original: the share of positions whose most likely next token is the same (top-1 agreement) and the mean
KL divergence KL(original || variant) of the next-token distributions; then the share of identical
greedy chat answers (`--prompts` story prompts, `--max-tokens` tokens) and the memory (file size, RSS).

`speed`: one `interlock serve` per weights choice (`weights = "original"` and `"q8_0"` in its config),
the same slots, context and threads, both started first; then each concurrency level runs on each in
turn, the order flipped every round, with closed-loop clients asking 32-token answers as `load.py` does.
Reports tok/s per level, the q8_0/original ratio, and each server's RSS. Loopback only; every level is
bounded in time and requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from common import load_average, machine, stamp, story_prompt
from load import ADMIN_KEY, Ask, free_port, new_key, run_level, wait_ready

from interlock.engines.gguf import default_model_path
from interlock.engines.weights import convert, served_file

TEXT = Path(__file__).with_name("declaration.txt")
SLOTS = 16


def rss_mib(pid: int | str = "self", field: str = "VmRSS") -> float:
    """A process's resident memory (or `VmHWM`, its peak), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used: unlike wall time, others' load barely moves it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- quality: one child process per variant ----


def child(args: argparse.Namespace) -> None:
    """Score the text and answer the prompts with one GGUF file; print JSON."""
    import llama_cpp

    before = rss_mib()
    text = TEXT.read_text(encoding="utf-8")
    llm = llama_cpp.Llama(
        args.model, n_ctx=args.tokens + 64, n_batch=512, logits_all=True, n_threads=args.threads, verbose=False
    )
    tokens = llm.tokenize(text.encode(), add_bos=True)[: args.tokens]
    t = time.monotonic()
    llm.eval(tokens)
    eval_s = time.monotonic() - t
    after_eval = rss_mib()
    n = len(tokens) - 1
    logp = np.empty((n, llm.n_vocab()), dtype=np.float32)
    for i in range(0, n, 256):  # log-softmax a block of rows at a time
        rows = np.asarray(llm.scores[i : min(i + 256, n)], dtype=np.float64)
        rows -= rows.max(axis=1, keepdims=True)
        logp[i : i + len(rows)] = rows - np.log(np.exp(rows).sum(axis=1, keepdims=True))
    targets = np.asarray(tokens[1:])
    nll = -logp[np.arange(n), targets]
    out: dict[str, Any] = {
        "tokens": n,
        "perplexity": round(float(np.exp(nll.mean())), 3),
        "eval_tok_s": round(len(tokens) / eval_s, 1),
        "file_mib": round(Path(args.model).stat().st_size / 2**20, 1),
        "rss_mib_model_and_logits": round(after_eval - before, 1),
    }
    if args.save_ref:
        np.save(args.save_ref, logp)
    else:
        ref = np.load(args.ref, mmap_mode="r")
        out["top1_agreement"] = round(float((ref.argmax(axis=1) == logp.argmax(axis=1)).mean()), 4)
        kl = [float((np.exp(r) * (r - q)).sum()) for r, q in zip(ref, logp, strict=True)]
        out["mean_kl"] = round(float(np.mean(kl)), 5)
        out["max_kl"] = round(float(np.max(kl)), 4)
    del logp
    answers = []
    for i in range(args.prompts):
        messages = [{"role": "user", "content": story_prompt(i)}]
        reply = llm.create_chat_completion(messages, temperature=0.0, max_tokens=args.max_tokens, seed=0)  # type: ignore[arg-type]
        answers.append(reply["choices"][0]["message"]["content"])  # type: ignore[index]
    out["answers"] = answers
    out["answer_tokens"] = [llm.tokenize(a.encode(), add_bos=False) for a in answers]
    print(json.dumps(out))


def prefix_share(a: list[int], b: list[int]) -> float:
    """How much of the longer answer the two share from the start."""
    same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return same / max(len(a), len(b), 1)


def quality(args: argparse.Namespace) -> dict[str, Any]:
    """Each variant in its own process, the original first (its distributions are the reference)."""
    source = default_model_path()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "ref.npy"
        for variant in ["original", *[v for v in args.variants if v != "original"]]:
            if variant == "original":
                path = source
            elif variant == "q8_0":
                path = served_file(source, "q8_0").path  # the file Interlock serves, from the cache
            else:
                path = Path(tmp) / f"{variant}.gguf"
                t = time.monotonic()
                convert(source, path, variant)
                print(f"converted {variant} in {time.monotonic() - t:.1f} s", file=sys.stderr)
            cmd = [sys.executable, __file__, "child", "--model", str(path), "--tokens", str(args.tokens),
                   "--threads", str(args.threads), "--prompts", str(args.prompts),
                   "--max-tokens", str(args.max_tokens)]  # fmt: skip
            cmd += ["--save-ref", str(ref)] if variant == "original" else ["--ref", str(ref)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{variant}: {done.stderr[-2000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["load"] = load_average()
            results[variant] = row
            print(variant, {k: v for k, v in row.items() if "answer" not in k}, file=sys.stderr, flush=True)
    base = results["original"]["answer_tokens"]
    for row in results.values():
        pairs = list(zip(base, row.pop("answer_tokens"), strict=True))
        row["identical_answers"] = f"{sum(a == b for a, b in pairs)}/{len(pairs)}"
        row["answer_prefix_share"] = round(float(np.mean([prefix_share(a, b) for a, b in pairs])), 3)
        row.pop("answers")
    return results


# ---- speed: one `interlock serve` per weights choice ----


CONFIG = """[models.smollm2]
provider = "local"
model = "SmolLM2-135M-Instruct"
weights = "{weights}"
price_input_per_mtok = 0
price_output_per_mtok = 0
"""


@contextlib.asynccontextmanager
async def server(weights: str, args: argparse.Namespace) -> AsyncIterator[tuple[Ask, int]]:
    """`interlock serve` with `weights`, and a client that asks it for 32 tokens; yields it and the pid."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home:
        config = Path(home) / "interlock.toml"
        config.write_text(CONFIG.format(weights=weights))
        env = {**os.environ, "INTERLOCK_HOME": home, "INTERLOCK_ADMIN_KEY": ADMIN_KEY, "INTERLOCK_CONFIG": str(config),
               "INTERLOCK_ENGINE__SLOTS": str(SLOTS), "INTERLOCK_ENGINE__N_CTX_PER_SLOT": "1024",
               "INTERLOCK_ENGINE__THREADS": str(args.threads)}  # fmt: skip
        cmd = [sys.executable, "-m", "interlock.cli.main", "serve", "--port", str(port), "--log-level", "warning"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await wait_ready(base + "/readyz", proc, timeout=300)
            headers = {"Authorization": f"Bearer {await new_key(base)}"}
            async with aiohttp.ClientSession(headers=headers) as http:
                async with http.get(base + "/v1/models") as r:
                    listed = await r.json()
                print(weights, json.dumps(listed["data"][0]), file=sys.stderr)

                async def ask(i: int) -> int:
                    messages = [{"role": "user", "content": story_prompt(i)}]
                    body = {"model": "smollm2", "messages": messages, "max_tokens": 32, "temperature": 0}
                    timeout = aiohttp.ClientTimeout(total=300)
                    async with http.post(base + "/v1/chat/completions", json=body, timeout=timeout) as r:
                        data = await r.json()
                        if r.status != 200:
                            raise RuntimeError(f"HTTP {r.status}: {data}")
                        return int(data["usage"]["completion_tokens"])

                yield ask, proc.pid
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Both servers up, then per round and level each in turn (the order flipped every round)."""
    choices = ["original", "q8_0"]
    levels: dict[str, dict[int, list[float]]] = {c: {n: [] for n in args.clients} for c in choices}
    per_cpu: dict[str, dict[int, list[float]]] = {c: {n: [] for n in args.clients} for c in choices}
    rows: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        targets = {c: await stack.enter_async_context(server(c, args)) for c in choices}
        for ask, _ in targets.values():
            await ask(0)  # warm-up
        for rnd in range(args.rounds):
            for clients in args.clients:
                for choice in choices if rnd % 2 == 0 else reversed(choices):
                    ask, pid = targets[choice]
                    tokens = 0

                    async def counted(i: int, ask: Ask = ask) -> int:
                        nonlocal tokens
                        n = await ask(i)
                        tokens += n
                        return n

                    cpu = cpu_s(pid)
                    level = await run_level(counted, clients, args.duration, args.max_requests)
                    cpu = cpu_s(pid) - cpu
                    level.update(weights=choice, round=rnd, cpu_s=round(cpu, 1), tok_per_cpu_s=round(tokens / cpu, 1),
                                 rss_mib=rss_mib(pid), peak_rss_mib=rss_mib(pid, "VmHWM"))  # fmt: skip
                    rows.append(level)
                    levels[choice][clients].append(level["tok_s"])
                    per_cpu[choice][clients].append(level["tok_per_cpu_s"])
                    print(json.dumps(level), file=sys.stderr, flush=True)

    def ratio(of: dict[str, dict[int, list[float]]], n: int) -> dict[str, float]:
        original, q8 = float(np.median(of["original"][n])), float(np.median(of["q8_0"][n]))
        return {"original": round(original, 1), "q8_0": round(q8, 1), "ratio": round(q8 / original, 2)}

    summary = {str(n): {"tok_s": ratio(levels, n), "tok_per_cpu_s": ratio(per_cpu, n)} for n in args.clients}
    return {"summary": summary, "levels": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--variants", type=lambda s: s.split(","), default=["original", "q8_0", "q4_0", "f16"])
    s = sub.add_parser("speed")
    s.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8])
    s.add_argument("--duration", type=float, default=15.0, help="seconds per level, weights and round")
    s.add_argument("--max-requests", type=int, default=300, help="requests per level, weights and round at most")
    s.add_argument("--rounds", type=int, default=2)
    c = sub.add_parser("child")
    c.add_argument("--model", required=True)
    c.add_argument("--ref")
    c.add_argument("--save-ref")
    for p in (q, c):
        p.add_argument("--tokens", type=int, default=2048)
        p.add_argument("--prompts", type=int, default=16)
        p.add_argument("--max-tokens", type=int, default=48)
    for p in (q, s, c):
        p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.mode == "child":
        child(args)
        return
    load = load_average()
    results = quality(args) if args.mode == "quality" else asyncio.run(speed(args))
    report = {"date": stamp(), "machine": machine(), "load_at_start": load, "args": vars(args), "results": results}
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
