"""The flywheel end to end: teacher traffic through Interlock with capture on → dataset → CPU fine-tune → evals.

    nice -n 19 timeout 5400 .venv/bin/python bench/flywheel/run.py [--docs 260] [--work /tmp/flywheel-bench]

1. Generates invoices and support tickets with known fields (`data.py`, fixed seed).
2. Starts the teacher stub (`teacher.py`, always right) and `interlock serve` with `[flywheel.capture]` on
   for the `teacher` alias, and sends every document through the gateway with the OpenAI SDK.
3. Builds a dataset from the captures (`interlock datasets create`, hash split train/eval) and exports both
   splits (`interlock datasets export --format openai`).
4. Fine-tunes SmolLM2 on the train split (`interlock tune`, LoRA, CPU).
5. Evaluates on the held-out split, in-process on the embedded engine: the base model, the in-context
   variant (`in-context` provider, k nearest train examples) and the fine-tuned adapter (and the merged
   GGUF, to compare serving costs). Field-level exact match per field, tokens per second, load time.
6. Prints a JSON summary (also written to WORK/summary.json).

Every step reuses what a previous run of the same inputs left in WORK (the tune resumes or is skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import FIELDS, generate, parse_fields

from interlock.engines.gguf import default_model_path
from interlock.flywheel.icl import InContextProvider
from interlock.flywheel.icl import Options as IclOptions
from interlock.providers.local import LocalChatProvider
from interlock.providers.local import Options as LocalOptions
from interlock.settings import EngineSettings, ModelSettings
from interlock.types import ChatRequest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ADMIN = "sk-il-flywheel-bench-admin"
TEACHER_PRICE = (2.50, 10.00)  # $/Mtok in, out: a GPT-4o-class list price


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not up in {timeout} s")


def _interlock(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(BIN / "interlock"), *args], env=env, text=True, capture_output=True, **kw)
    if out.returncode != 0:
        raise SystemExit(f"interlock {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out


def capture_dataset(work: Path, docs: list[Any], eval_fraction: float, seed: int) -> tuple[Path, Path, dict[str, Any]]:
    """Steps 2-3: teacher traffic through the gateway with capture on, then the dataset's two splits."""
    train_file, eval_file = work / "train.jsonl", work / "eval.jsonl"
    info_file = work / "capture.json"
    if train_file.exists() and eval_file.exists() and info_file.exists():
        return train_file, eval_file, json.loads(info_file.read_text())
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    (work / "answers.json").write_text(json.dumps({d.text: d.answer() for d in docs}))
    stub_port, gw_port = _free_port(), _free_port()
    config = work / "interlock.toml"
    config.write_text(
        f"""
[flywheel.capture]
enabled = true
models = ["teacher"]
flush_interval_ms = 20

[models.teacher]
provider = "openai_compatible"
base_url = "http://127.0.0.1:{stub_port}/v1"
model = "strong-1"
price_input_per_mtok = {TEACHER_PRICE[0]}
price_output_per_mtok = {TEACHER_PRICE[1]}
"""
    )
    env = {**os.environ, "INTERLOCK_HOME": str(home), "INTERLOCK_ADMIN_KEY": ADMIN, "INTERLOCK_CONFIG": str(config)}
    logs = (work / "teacher.log").open("wb"), (work / "gateway.log").open("wb")
    stub = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench/flywheel/teacher.py"),
            "--port",
            str(stub_port),
            "--answers",
            str(work / "answers.json"),
        ],
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    gateway = subprocess.Popen(
        [str(BIN / "interlock"), "serve", "--port", str(gw_port), "--log-level", "warning"],
        env=env,
        stdout=logs[1],
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(f"http://127.0.0.1:{stub_port}/v1/models", stub)
        _wait(f"http://127.0.0.1:{gw_port}/readyz", gateway)
        client = OpenAI(base_url=f"http://127.0.0.1:{gw_port}/v1", api_key=ADMIN)
        usage = [0, 0]
        t0 = time.monotonic()
        for d in docs:
            r = client.chat.completions.create(model="teacher", messages=d.messages(), temperature=0)
            assert r.usage is not None
            usage[0] += r.usage.prompt_tokens
            usage[1] += r.usage.completion_tokens
        teacher_s = time.monotonic() - t0
        time.sleep(1.0)  # the capture writer flushes every 20 ms; give it a moment after the last answer
    finally:
        gateway.terminate()
        stub.terminate()
        gateway.wait(30)
        stub.wait(30)
    _interlock(
        [
            "datasets",
            "create",
            "invoices",
            "--alias",
            "teacher",
            "--eval-fraction",
            str(eval_fraction),
            "--seed",
            str(seed),
        ],
        env,
    )
    _interlock(["datasets", "export", "invoices", "--format", "openai", "--split", "train", "-o", str(train_file)], env)
    _interlock(["datasets", "export", "invoices", "--format", "openai", "--split", "eval", "-o", str(eval_file)], env)
    info = {
        "requests": len(docs),
        "teacher_prompt_tokens": usage[0],
        "teacher_completion_tokens": usage[1],
        "teacher_seconds": round(teacher_s, 1),
    }
    info_file.write_text(json.dumps(info, indent=2))
    return train_file, eval_file, info


def tune(work: Path, train_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Step 4: `interlock tune --dataset invoices` (skipped when WORK already holds this recipe's result)."""
    out = work / "tuned"
    cmd = [
        str(BIN / "interlock"), "tune", "--dataset", "invoices", "--out", str(out), "--name", "smollm2-invoices",
        "--epochs", str(args.epochs), "--lr", str(args.lr), "--rank", str(args.rank), "--alpha", str(args.alpha),
        "--batch-size", str(args.batch_size), "--layers", str(args.layers), "--seed", "0",
        "--checkpoint-every", "5", "--merge",
    ]  # fmt: skip
    # The dataset's train split, read from the store the captures went to (the same rows as train.jsonl).
    env = {**os.environ, "INTERLOCK_HOME": str(work / "home"), "INTERLOCK_ADMIN_KEY": ADMIN}
    env.pop("INTERLOCK_CONFIG", None)
    t0 = time.monotonic()
    subprocess.run(cmd, env=env, check=True)
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    result["command_seconds"] = round(time.monotonic() - t0, 1)
    return result


async def _evaluate(name: str, provider: Any, examples: list[dict[str, Any]]) -> dict[str, Any]:
    t0 = time.monotonic()
    await provider.start()
    load_s = time.monotonic() - t0
    hits = {f: 0 for f in FIELDS}
    exact = completion = 0
    gen_s = 0.0
    samples: list[dict[str, str]] = []
    try:
        for ex in examples:
            request = ChatRequest.model_validate(
                {
                    "model": name,
                    "messages": ex["messages"][:-1],
                    "temperature": 0,
                    "max_tokens": 96,
                    "response_format": {"type": "json_object"},
                }
            )
            t1 = time.monotonic()
            response = await provider.chat(request)
            gen_s += time.monotonic() - t1
            text = response.choices[0].message.content or ""
            completion += response.usage.completion_tokens if response.usage else 0
            got, want = parse_fields(text), parse_fields(ex["messages"][-1]["content"])
            ok = [got[f] == want[f] for f in FIELDS]
            for f, good in zip(FIELDS, ok, strict=True):
                hits[f] += good
            exact += all(ok)
            if len(samples) < 3:
                samples.append({"answer": text, "want": ex["messages"][-1]["content"]})
    finally:
        await provider.close()
    n = len(examples)
    per_field = {f: round(hits[f] / n, 3) for f in FIELDS}
    return {
        "variant": name,
        "field_exact_match": round(sum(hits.values()) / (n * len(FIELDS)), 3),
        "per_field": per_field,
        "all_fields_exact": round(exact / n, 3),
        "load_seconds": round(load_s, 2),
        "seconds_per_request": round(gen_s / n, 3),
        "completion_tokens_per_second": round(completion / gen_s, 1) if gen_s else None,
        "samples": samples,
    }


def evaluate(work: Path, train_file: Path, eval_file: Path, k: int, which: set[str]) -> list[dict[str, Any]]:
    """Step 5: base, in-context, fine-tuned (adapter) and fine-tuned (merged) on the held-out split."""
    examples = [json.loads(line) for line in eval_file.read_text().splitlines() if line.strip()]
    engine = EngineSettings(slots=1, n_ctx_per_slot=2048, threads=2)
    base = ModelSettings(provider="local")
    tuned = work / "tuned"
    variants: list[tuple[str, Any]] = []
    if "base" in which:
        variants.append(("base", LocalChatProvider("base", base, engine, LocalOptions())))
    if "icl" in which:
        inner = LocalChatProvider("icl", base, engine, LocalOptions())
        icl = InContextProvider("icl", base, inner, IclOptions(examples=str(train_file), k=k))
        variants.append((f"in-context-k{k}", icl))
    if "adapter" in which:
        adapter = LocalOptions(lora=str(tuned / "adapter.gguf"))
        variants.append(("fine-tuned (LoRA adapter)", LocalChatProvider("tuned", base, engine, adapter)))
    if "merged" in which and (tuned / "merged.gguf").exists():
        merged = LocalOptions(path=str(tuned / "merged.gguf"))
        variants.append(("fine-tuned (merged GGUF)", LocalChatProvider("merged", base, engine, merged)))

    async def run_all() -> list[dict[str, Any]]:
        return [await _evaluate(name, p, examples) for name, p in variants]

    return asyncio.run(run_all())


def main() -> None:
    """Run the bench and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/flywheel-bench"))
    parser.add_argument("--docs", type=int, default=170)
    parser.add_argument("--eval-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=32.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument(
        "--variants", default="base,icl,adapter,merged", help="which to evaluate (no tune without a fine-tune)"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_before = os.getloadavg()
    docs = generate(args.docs, args.seed)
    train_file, eval_file, capture = capture_dataset(args.work, docs, args.eval_fraction, args.seed)
    which = set(args.variants.split(","))
    result = tune(args.work, train_file, args) if which & {"adapter", "merged"} else None
    load_during = os.getloadavg()
    evals = evaluate(args.work, train_file, eval_file, args.k, which)
    n_prompt = capture["teacher_prompt_tokens"] / capture["requests"]
    n_completion = capture["teacher_completion_tokens"] / capture["requests"]
    teacher_per_1k = 1000 * (n_prompt * TEACHER_PRICE[0] + n_completion * TEACHER_PRICE[1]) / 1e6
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": {"start": load_before[0], "after_training": load_during[0], "end": os.getloadavg()[0]},
        "base_model": str(default_model_path().name),
        "capture": capture,
        "train_examples": sum(1 for _ in train_file.open()),
        "eval_examples": sum(1 for _ in eval_file.open()),
        "training": result,
        "teacher_cost_per_1k_requests_usd": round(teacher_per_1k, 4),
        "evals": evals,
    }
    suffix = "" if which == {"base", "icl", "adapter", "merged"} else "-" + "-".join(sorted(which))
    (args.work / f"summary{suffix}.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
