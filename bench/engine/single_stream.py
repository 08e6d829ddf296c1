"""Single-stream speed: raw llama-cpp-python (`Llama`) against our engine, same GGUF, same threads.

Prompt speed is a 400-token prompt evaluated from an empty cache; decode speed is greedy tokens
per second after the first one. Each side runs `--repeats` times and reports its best run, which is
the fairest figure on a machine that other people share. Rounds alternate between the sides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from contextlib import aclosing
from pathlib import Path

from common import load_average, machine, stamp
from llama_cpp import Llama

from interlock.engines.llamacpp.engine import ChatEngine
from interlock.engines.llamacpp.model import default_model_path
from interlock.engines.llamacpp.sampling import SamplingParams
from interlock.engines.llamacpp.slots import Finish
from interlock.engines.llamacpp.template import ChatTemplate
from interlock.settings import EngineSettings

LONG = "Summarise this text. " + "The quick brown fox jumps over the lazy dog near the river bank. " * 30
STORY = "Write a long story about a dragon."


def raw(path: str, threads: int, flash: bool, decode_n: int, repeats: int) -> dict[str, float]:
    llm = Llama(
        path, n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads, flash_attn=flash, verbose=False
    )
    best_p = best_d = 0.0
    for _ in range(repeats):
        tokens = llm.tokenize(chat(llm, LONG).encode(), add_bos=False, special=True)[:400]
        llm.reset()
        t = time.perf_counter()
        llm.eval(tokens)
        best_p = max(best_p, len(tokens) / (time.perf_counter() - t))
        llm.reset()
        llm.eval(llm.tokenize(chat(llm, STORY).encode(), add_bos=False, special=True))
        tok = llm.sample(temp=0)
        t, n = time.perf_counter(), 0
        while n < decode_n and tok != llm.token_eos():
            llm.eval([tok])
            tok = llm.sample(temp=0)
            n += 1
        best_d = max(best_d, n / (time.perf_counter() - t))
    return {"prompt_tps": best_p, "decode_tps": best_d}


def chat(llm: Llama, text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


async def ours(path: str, threads: int, decode_n: int, repeats: int) -> dict[str, float]:
    engine = ChatEngine(
        Path(path),
        EngineSettings(slots=16, n_ctx_per_slot=2048, n_batch=512, threads=threads),
    )
    engine.load()
    model = engine.model
    assert model is not None
    template = ChatTemplate(model.meta("tokenizer.chat_template"), bos_token="", eos_token="")

    def tokens(text: str) -> list[int]:
        rendered = template.render([{"role": "user", "content": text}])
        return model.tokenize(rendered, add_special=False, parse_special=True)

    best_p = best_d = 0.0
    try:
        for _ in range(repeats):
            long = tokens(LONG)[:400]
            t = time.perf_counter()
            async with aclosing(engine.submit(long, SamplingParams(max_tokens=1, temperature=0)).events()) as ev:
                async for _ in ev:
                    break
            best_p = max(best_p, len(long) / (time.perf_counter() - t))
            first = last = 0.0
            n = 0
            gen = engine.submit(tokens(STORY), SamplingParams(max_tokens=decode_n + 1, temperature=0))
            async with aclosing(gen.events()) as ev:
                async for item in ev:
                    if isinstance(item, Finish):
                        n = item.completion_tokens - 1
                    elif not first:
                        first = time.perf_counter()
                    else:
                        last = time.perf_counter()
            best_d = max(best_d, n / (last - first))
    finally:
        engine.close()
    return {"prompt_tps": best_p, "decode_tps": best_d}


def measure_side(args: argparse.Namespace) -> dict[str, float]:
    """One side, in this process."""
    if args.side == "engine":
        return asyncio.run(ours(args.model, args.threads, args.decode_tokens, 1))
    return raw(args.model, args.threads, args.side == "raw_fa_on", args.decode_tokens, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(default_model_path()))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--side", choices=["raw_fa_on", "raw_fa_off", "engine"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(measure_side(args)))
        return
    # Each side runs in its own process: once a thread has run llama.cpp compute, another thread of
    # the same process decodes markedly slower, which would penalise whichever side runs second.
    # Rounds alternate between the sides so that load from other jobs hits them alike.
    best: dict[str, dict[str, float]] = {}
    load_before = load_average()
    for _ in range(args.repeats):
        for side in ("raw_fa_on", "engine", "raw_fa_off"):
            cmd = [sys.executable, __file__, "--side", side, "--model", args.model, "--threads", str(args.threads),
                   "--decode-tokens", str(args.decode_tokens)]  # fmt: skip
            got = json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout)
            old = best.setdefault(side, got)
            best[side] = {k: max(v, old[k]) for k, v in got.items()}
    result: dict[str, object] = {"date": stamp(), "machine": machine(), "load_before": load_before, **best}
    result["load_after"] = load_average()
    eng, base = best["engine"], best["raw_fa_on"]
    result["ratio_prompt"] = eng["prompt_tps"] / base["prompt_tps"]
    result["ratio_decode"] = eng["decode_tps"] / base["decode_tps"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
