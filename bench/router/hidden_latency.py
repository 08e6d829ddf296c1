"""Latency of the optional difficulty feature that was measured and not built: SmolLM2's hidden states.

Usage: OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/router/hidden_latency.py [--threads 2] [--prompts 20]
Runs the engine's GGUF in llama.cpp's embedding mode (mean-pooled last hidden state) on the last N tokens
of MMLU prompts, one at a time, and prints p50/p99 milliseconds per prefix length.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import llama_cpp
import numpy as np

from interlock.engines.gguf import default_model_path
from interlock.routing.router.data import load_labelled

DATA = Path("/work/shared/data/routellm/mmlu")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=20)
    args = parser.parse_args()
    prompts = load_labelled([DATA / "mmlu_college_physics.csv"]).prompts[: args.prompts]
    model = llama_cpp.Llama(
        model_path=str(default_model_path()),
        embedding=True,
        n_ctx=512,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        verbose=False,
    )
    print(f"model {default_model_path().name}, {args.threads} threads, {len(prompts)} prompts")
    for n in (32, 64, 128):
        times = []
        for p in prompts:
            tokens = model.tokenize(p.encode(), add_bos=False)[-n:]
            start = time.perf_counter()
            model.embed(model.detokenize(tokens).decode(errors="ignore"))
            times.append((time.perf_counter() - start) * 1000)
        print(f"last {n} tokens: p50 {np.percentile(times, 50):.0f} ms, p99 {np.percentile(times, 99):.0f} ms")


if __name__ == "__main__":
    main()
