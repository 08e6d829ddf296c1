"""MMLU benchmark of the learned router: a random split, leave-subjects-out folds, and training-size curves.

Usage: OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/router/run.py [--seeds 5] [--folds 5] [--select]
Every protocol compares the shipped features (the embedding, as before) with the embedding plus the
prompt statistics (`router train --stats`), measured in the same run. With --select it prints only the
selection table: candidate feature sets scored by leave-subjects-out cross-validation *inside the
training prompts* of each outer fold (the outer fold's rows are never looked at).
Prints a markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embed_cache import CACHE, cached_embed
from protocols import (
    Estimate,
    ece,
    estimate,
    leave_subjects_out,
    load_with_subjects,
    random_split,
    subject_folds,
    summary,
)

from interlock.routing.router.data import load_excluded
from interlock.routing.router.features import COMBINED_STATIC, load_embedder
from interlock.routing.router.model import LearnedRouter, StatsBlock
from interlock.routing.router.prompt import STATS_VERSION, prompt_stats
from interlock.routing.router.train import STATS_WEIGHT, ensemble, fold_ids, gain_scores, shortfall, train_router

DATA = Path("/work/shared/data/routellm/mmlu")
TRAIN = 1500
SIZES = (100, 300, 1000)
TARGETS = {"random": {"apgr": 0.658}, "lso": {"apgr": 0.62, "cpt50": 0.33}}


class StatsView:
    """Prompt statistics behind the embedding cache's interface (name + embed)."""

    name = STATS_VERSION

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return prompt_stats(texts)


Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (train rows, eval rows) -> eval scores


def make_scorer(emb: np.ndarray, stats: np.ndarray, y: np.ndarray, weight: float | None) -> Scorer:
    """The ensemble on the embedding, plus the prompt statistics at `weight` (None: embedding only)."""

    def score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        def features(rows: np.ndarray) -> np.ndarray:
            if weight is None:
                return emb[rows]
            return np.hstack([emb[rows], block.apply(stats[rows])]).astype(np.float32)

        block = StatsBlock.fit(stats[train], weight if weight is not None else 0.0)
        model = ensemble(columns=emb.shape[1]).fit(features(train), y[train])
        return gain_scores(model.predict(features(test)))

    return score


def select_table(
    scorers: dict[str, Scorer], y: np.ndarray, subjects: np.ndarray, outer: list[tuple[np.ndarray, np.ndarray]]
) -> list[str]:
    """Inner APGR of each candidate on the training prompts of each outer fold only (its eval rows unseen).

    Primary: 3 folds leaving whole subjects out. Tie-break (within 0.002 of the best): 3 random folds.
    Both pool the out-of-fold scores: one inner fold of a few subjects can have a tiny cheap-strong gap,
    which makes its own APGR explode (1.14 on one fold), so per-fold means are not used here.
    """
    ood: dict[str, list[float]] = {name: [] for name in scorers}
    iid: dict[str, list[float]] = {name: [] for name in scorers}
    for k, (train, _) in enumerate(outer):
        for table, groups in ((ood, subjects[train]), (iid, None)):
            inner = fold_ids(len(train), 3, seed=k, groups=groups)
            for name, score in scorers.items():
                oof = np.zeros(len(train))
                for f in range(3):
                    oof[inner == f] = score(train[inner != f], train[inner == f])
                table[name].append(summary(oof, y[train]).apgr)
    top = max(np.mean(v) for v in ood.values())
    best = max((n for n in ood if np.mean(ood[n]) >= top - 0.002), key=lambda n: np.mean(iid[n]))
    return [
        f"| {name} | {np.mean(ood[name]):.3f} | {' '.join(f'{x:.3f}' for x in ood[name])} | "
        f"{np.mean(iid[name]):.3f} | {'chosen' if name == best else ''} |"
        for name in scorers
    ]


def overhead(router: LearnedRouter, prompts: list[str], n: int = 300) -> tuple[float, float]:
    """p50 and p99 milliseconds of scoring one prompt (features + classifier), one call at a time."""
    times = []
    for p in prompts[:n]:
        start = time.perf_counter()
        router.score([p])
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--select", action="store_true", help="print only the inner-CV selection table")
    args = parser.parse_args()
    started = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - started:5.0f} s] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    files = sorted(DATA.glob("mmlu_*.csv"))
    data, subjects = load_with_subjects(files, load_excluded(DATA / "contaminated_prompts.jsonl"))
    embedder = load_embedder(COMBINED_STATIC)
    emb = cached_embed(embedder, list(data.prompts))
    stats = cached_embed(StatsView(), list(data.prompts))  # type: ignore[arg-type]
    y = data.scores
    configs = {
        "embedding only (previous; shipped)": None,
        f"embedding + prompt stats (w={STATS_WEIGHT:g}, opt-in)": STATS_WEIGHT,
    }
    scorers = {name: make_scorer(emb, stats, y, w) for name, w in configs.items()}
    fold = subject_folds(subjects, args.folds)
    lso_splits = [leave_subjects_out(data, fold, k, TRAIN, seed=k) for k in range(args.folds)]

    if args.select:
        log("selection (inner leave-subjects-out CV)")
        candidates: dict[str, Scorer] = {"embedding only": make_scorer(emb, stats, y, None)}
        candidates["stats only (logistic, l2=1e-2)"] = _stats_only(stats, y)
        candidates.update({f"embedding + stats w={w:g}": make_scorer(emb, stats, y, w) for w in (0.3, 1.0, 3.0)})
        print("| candidate | inner leave-subjects-out APGR | per outer fold | inner random-fold APGR | |")
        print("|---|---|---|---|---|")
        print("\n".join(select_table(candidates, y, subjects, lso_splits)))
        log("done")
        return

    def run(splits: list[tuple[np.ndarray, np.ndarray]], resamples: int) -> dict[str, tuple[Estimate, Estimate]]:
        """Per config: the mean over parts, and the pooled curve of all parts' eval rows."""
        out = {}
        for name, score in scorers.items():
            parts = [(score(tr, te), y[te]) for tr, te in splits]
            pooled = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
            out[name] = (estimate(parts, resamples), estimate([pooled], resamples))
        return out

    log("random split")
    random_splits = [random_split(data, TRAIN, seed) for seed in range(args.seeds)]
    random_est = run(random_splits, args.resamples)
    log("leave subjects out")
    lso_est = run(lso_splits, args.resamples)

    log("calibration on held-out subjects")
    cal_rows = []
    for k, (tr, te) in enumerate(lso_splits):
        model = train_router(
            data.subset(tr), emb[tr], embedder.name, stats=stats[tr], groups=subjects[tr], repeats=1, seed=k
        )
        feats = np.hstack([emb[te], model.stats.apply(stats[te])]) if model.stats else emb[te]
        s = model.scores(feats.astype(np.float32))
        share = float((s > model.threshold_for_share(0.3)).mean())
        cal_rows.append(
            (
                ece(model.probability(s), shortfall(y[te])),
                float(model.probability(s).mean()),
                float(shortfall(y[te]).mean()),
                share,
            )
        )
    curves: dict[str, dict[int, dict[str, tuple[Estimate, Estimate]]]] = {"random": {}, "lso": {}}
    for n in SIZES:
        log(f"training-size curve: {n}")
        curves["random"][n] = run([random_split(data, n, seed) for seed in range(args.seeds)], args.resamples // 4)
        curves["lso"][n] = run(
            [leave_subjects_out(data, fold, k, n, seed=k) for k in range(args.folds)], args.resamples // 4
        )

    log("router file and overhead")
    tr, te = random_splits[0]
    model = train_router(data.subset(tr), emb[tr], embedder.name, identity=embedder.identity, stats=stats[tr])
    router_file = CACHE / "mmlu_router.json"
    model.save(router_file)
    router = LearnedRouter.load(router_file)
    p50, p99 = overhead(router, [data.prompts[i] for i in te])
    side = router_file.with_suffix(".safetensors")
    sizes_kb = (router_file.stat().st_size / 1024, side.stat().st_size / 1024)

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    machine = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")), "?")
    print(f"- machine: {machine}, {os.cpu_count()} cores; features `{embedder.name}` + `{STATS_VERSION}`")
    print(f"- random split: {TRAIN} distinct prompts, the rest to evaluate, seeds 0-{args.seeds - 1}")
    print(
        f"- leave-subjects-out: 57 subjects dealt into {args.folds} folds; train on {TRAIN} prompts of the other "
        "subjects, evaluate on every row of the fold's subjects; mean over folds"
    )
    print(f"- 95% bootstrap intervals of the mean ({args.resamples} resamples, rows resampled within each part)\n")
    print("| protocol | features | APGR | CPT(50%) | CPT(80%) | per part APGR |")
    print("|---|---|---|---|---|---|")
    for label, est in (("random split", random_est), ("leave subjects out", lso_est)):
        for name, (e, pooled) in est.items():
            per = " ".join(f"{p.apgr:.3f}" for p in e.per_part)
            print(
                f"| {label}, mean of parts | {name} | "
                f"{e.cell('apgr')} | {e.cell('cpt50')} | {e.cell('cpt80')} | {per} |"
            )
            if label != "random split":
                cells = " | ".join(pooled.cell(k) for k in ("apgr", "cpt50", "cpt80"))
                print(f"| {label}, pooled rows | {name} | {cells} | - |")
    print(f"\nTraining-set size ({args.resamples // 4} resamples; mean of parts):\n")
    print(
        "| protocol | prompts | features | APGR | CPT(50%) | leave-subjects-out pooled APGR |\n"
        "|---|---|---|---|---|---|"
    )
    for proto, by_n in curves.items():
        full = {n: est for n, est in by_n.items()} | {TRAIN: random_est if proto == "random" else lso_est}
        for n, est in full.items():
            for name, (e, pooled) in est.items():
                extra = pooled.cell("apgr") if proto == "lso" else "-"
                print(f"| {proto} | {n} | {name} | {e.cell('apgr')} | {e.cell('cpt50')} | {extra} |")
    e, pm, om, sh = (float(np.mean(c)) for c in zip(*cal_rows, strict=True))
    print(
        f"\nCalibration on held-out subjects (shipped router, grouped out-of-fold calibration; mean of folds): "
        f"ECE of p_cheap_not_good_enough {e:.3f}; mean predicted {pm:.3f} vs observed {om:.3f}; "
        f"strong_share=0.3 sends {100 * sh:.1f}% of the held-out prompts to the strong model"
    )
    print(
        f"\nRouter overhead (shipped, one prompt at a time, features + classifier): p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms; router file {sizes_kb[0]:.0f} KB JSON + {sizes_kb[1]:.0f} KB safetensors sidecar"
    )
    log("done")


def _stats_only(stats: np.ndarray, y: np.ndarray) -> Scorer:
    """Logistic models on the standardised statistics alone."""
    from interlock.routing.router.classifiers import Logistic

    def score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        block = StatsBlock.fit(stats[train], 1.0)
        model = Logistic.fit(block.apply(stats[train]), y[train], l2=1e-2)
        return gain_scores(model.predict(block.apply(stats[test])))

    return score


if __name__ == "__main__":
    main()
