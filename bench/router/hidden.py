"""The embedded SmolLM2's hidden states as router features, measured out of domain (issue 17, item 2).

Usage: OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/router/hidden.py [--prompts 3000] [--tokens 64]

The engine's Q8_0 conversion of the packaged GGUF (`engines.weights.served_file`: 1.5x the packaged Q4_1's
prompt speed here, and a function of the packaged file alone) in llama.cpp's embedding mode, mean-pooled
last hidden state over the last `--tokens` tokens of each prompt (the question
and its options sit at the end). A forward pass per prompt is hundreds of times the router's 5 ms budget
here, so the features are computed for a seeded sample of `--prompts` distinct MMLU prompts only (cached in
`cache/`), and the comparison runs on that sample alone: the shipped features, the hidden states alone, and
both (the hidden vector unit-normed, scaled by `w`, joined to the shipped one), with the shipped ensemble,
on leave-subjects-out (the 5 subject folds of `run.py`, training on at most 1,000 sampled prompts of the
other subjects, evaluating on the sampled rows of the fold's subjects) and a random split (3 seeds, 1,000
prompts). Prints a markdown table and the measured cost per prompt.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import llama_cpp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embed_cache import cached_embed
from protocols import load_with_subjects, subject_folds, summary
from run import DATA

from interlock.engines.gguf import default_model_path
from interlock.engines.weights import served_file
from interlock.routing.router.data import load_excluded
from interlock.routing.router.features import COMBINED_STATIC, _unit_rows, load_embedder
from interlock.routing.router.train import ensemble, gain_scores


class Hidden:
    """Mean-pooled last hidden states of the packaged SmolLM2 over each text's last `tokens` tokens."""

    def __init__(self, tokens: int, threads: int) -> None:
        self.name = f"SmolLM2-135M-Q8_0/hidden-last{tokens}"
        self.tokens = tokens
        self.seconds = 0.0
        self.count = 0
        self._model = llama_cpp.Llama(
            model_path=str(served_file(default_model_path(), "q8_0").path),
            embedding=True,
            n_ctx=256,  # 4 sequences per batch: attention over a wider batch costs more than it saves here
            n_batch=256,
            n_ubatch=256,
            n_seq_max=4,
            n_threads=threads,
            n_threads_batch=threads,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            verbose=False,
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        m = self._model
        tails = [
            m.detokenize(m.tokenize(t.encode(), add_bos=False)[-self.tokens :]).decode(errors="ignore") for t in texts
        ]
        start = time.perf_counter()
        vectors = np.asarray(m.embed(tails, normalize=False), dtype=np.float32)
        self.seconds += time.perf_counter() - start
        self.count += len(texts)
        return vectors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=3000)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train", type=int, default=1000)
    args = parser.parse_args()
    files = sorted(DATA.glob("mmlu_*.csv"))
    data, subjects = load_with_subjects(files, load_excluded(DATA / "contaminated_prompts.jsonl"))
    first: dict[str, int] = {}
    for i, p in enumerate(data.prompts):
        first.setdefault(p, i)
    rows = np.sort(np.random.default_rng(17).choice(sorted(first.values()), args.prompts, replace=False))
    prompts = [data.prompts[i] for i in rows]
    y, subj = data.scores[rows], subjects[rows]
    static = cached_embed(load_embedder(COMBINED_STATIC), prompts)
    hidden_model = Hidden(args.tokens, args.threads)
    hidden = _unit_rows(cached_embed(hidden_model, prompts, chunk=64))
    views = {"shipped (static vectors)": static, "hidden states alone": hidden}
    for w in (0.5, 1.0):
        views[f"static + hidden (w={w:g})"] = (np.hstack([static, w * hidden]) / np.sqrt(1 + w * w)).astype(np.float32)
    fold = subject_folds(subj, 5)
    rng = np.random.default_rng(0)
    lso = []
    for k in range(5):
        pool = np.flatnonzero(fold != k)
        lso.append((np.sort(rng.choice(pool, min(args.train, len(pool)), replace=False)), np.flatnonzero(fold == k)))
    rand = []
    for s in range(3):
        perm = np.random.default_rng(s).permutation(len(rows))
        rand.append((np.sort(perm[: args.train]), np.sort(perm[args.train :])))
    print(f"{len(rows)} sampled prompts, {args.train} to train; hidden states: last {args.tokens} tokens")
    if hidden_model.count:
        print(f"hidden-state cost: {1000 * hidden_model.seconds / hidden_model.count:.1f} ms per prompt, batched")
    print("\n| features | protocol | APGR | CPT(50%) | per part APGR |\n|---|---|---|---|---|")
    for proto, splits in (("leave subjects out", lso), ("random", rand)):
        for name, x in views.items():
            got = []
            for tr, te in splits:
                cand = ensemble(columns=x.shape[1])
                got.append(summary(gain_scores(cand.fit(x[tr], y[tr]).predict(x[te])), y[te]))
            per = " ".join(f"{g.apgr:.3f}" for g in got)
            apgr, cpt = np.mean([g.apgr for g in got]), np.mean([g.cpt50 for g in got])
            print(f"| {name} | {proto} | {apgr:.3f} | {100 * cpt:.1f}% | {per} |", flush=True)


if __name__ == "__main__":
    main()
