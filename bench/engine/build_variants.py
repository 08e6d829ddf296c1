"""Raw llama-cpp-python speed of the installed build, optionally with llama.cpp's extra buffer types off.

Used to compare build variants (see bench/engine/README.md, "Build variants"): run it with the Python of
each venv that has a different llama-cpp-python wheel installed. Prints one JSON line: prompt and decode
tokens per second (best of `--repeats`), and the CPU features the build reports.
"""

from __future__ import annotations

import argparse
import json
import time

import llama_cpp
import llama_cpp.llama_cpp as low

from interlock.engines.llamacpp.model import default_model_path

PROMPT = "Summarise this text. " + "The quick brown fox jumps over the lazy dog near the river bank. " * 30


def main() -> None:
    """Measure prompt and decode speed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-extra-bufts", action="store_true", help="set use_extra_bufts = false")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    defaults = low.llama_model_default_params

    def params() -> low.llama_model_params:
        p = defaults()
        p.use_extra_bufts = not args.no_extra_bufts
        return p

    low.llama_model_default_params = params  # Llama() reads its model params from here
    llm = llama_cpp.Llama(
        str(default_model_path()),
        n_ctx=2048,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    tokens = llm.tokenize(PROMPT.encode())[:400]
    best_prompt = best_decode = 0.0
    for _ in range(args.repeats):
        llm.reset()
        t = time.perf_counter()
        llm.eval(tokens)
        best_prompt = max(best_prompt, len(tokens) / (time.perf_counter() - t))
        llm.reset()
        t, n = 0.0, 0
        for _ in llm.generate(tokens[:16], temp=0.0):
            n += 1
            if n == 1:
                t = time.perf_counter()  # decode speed counts from the first generated token
            if n == 129:
                break
        best_decode = max(best_decode, (n - 1) / (time.perf_counter() - t))
    info = low.llama_print_system_info().decode()
    print(
        json.dumps(
            {
                "extra_bufts": not args.no_extra_bufts,
                "prompt_tok_s": round(best_prompt, 1),
                "decode_tok_s": round(best_decode, 1),
                "system_info": info.strip(),
            }
        )
    )


if __name__ == "__main__":
    main()
