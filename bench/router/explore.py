"""Variants of the router measured against the shipped one and not shipped (issue 17, session 7).

Usage: OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/router/explore.py [--seeds 3]
Prints a markdown table: APGR and CPT(50%) (mean of parts) for the random split and leave-subjects-out, at
500 and 1,500 training prompts, for the shipped ensemble and each variant, measured in the same run on the
same splits as `run.py`; then, per prompt statistic, its AUC for "only the strong model was right" within
each subject (mean over subjects) and the correlation of its subject means with the subjects' gaps.
Variants:
- `k by n`: the kNN's neighbourhood sizes scaled with the training set (n/30, n/15, n/7.5; at 1,500 the
  shipped 50, 100, 200);
- `stacked`: kNN, logistic-on-embedding and logistic-on-statistics combined with weights chosen on a 0.1
  grid by out-of-fold APGR inside the training prompts;
- `rarity-weighted`: token vectors averaged with weight log(1 + token id) (both vocabularies are roughly
  in frequency order, so rarer tokens count more);
- `mean+max`: the mean joined by the signed max over tokens of each dimension.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embed_cache import cached_embed
from protocols import leave_subjects_out, load_with_subjects, random_split, subject_folds, summary
from run import DATA, StatsView

from interlock.routing.router.classifiers import KNN, Logistic
from interlock.routing.router.data import load_excluded
from interlock.routing.router.features import COMBINED_STATIC, StaticEmbedder, _unit_rows, load_embedder
from interlock.routing.router.metrics import routing_curve
from interlock.routing.router.model import StatsBlock
from interlock.routing.router.prompt import STAT_NAMES
from interlock.routing.router.train import ENSEMBLE_KS, ensemble, fold_ids, gain_scores

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def shipped(emb: np.ndarray, y: np.ndarray, ks: Callable[[int], tuple[int, ...]] | None = None) -> Scorer:
    def score(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
        chosen = ensemble(ks=ks(len(tr))) if ks else ensemble()
        return gain_scores(chosen.fit(emb[tr], y[tr]).predict(emb[te]))

    return score


def stacked(emb: np.ndarray, stats: np.ndarray, y: np.ndarray) -> Scorer:
    def knn(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
        return gain_scores(KNN.fit(emb[tr], y[tr], ks=ENSEMBLE_KS, temperature=0.05).predict(emb[te]))

    def log_emb(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
        fits = [Logistic.fit(emb[tr], y[tr], l2=l2) for l2 in (3e-4, 1e-3, 3e-3)]
        return gain_scores(sum(f.predict(emb[te]) for f in fits) / 3)

    def log_stats(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
        block = StatsBlock.fit(stats[tr], 1.0)
        return gain_scores(Logistic.fit(block.apply(stats[tr]), y[tr], l2=1e-2).predict(block.apply(stats[te])))

    bases = (knn, log_emb, log_stats)
    grid = [np.array(w) for w in itertools.product(np.arange(11) / 10, repeat=3) if abs(sum(w) - 1) < 1e-9]

    def score(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
        fold = fold_ids(len(tr), 5, 0)
        oof = np.zeros((len(tr), len(bases)))
        for f in range(5):
            for j, base in enumerate(bases):
                oof[fold == f, j] = base(tr[fold != f], tr[fold == f])
        mu, sd = oof.mean(0), oof.std(0) + 1e-9
        z = (oof - mu) / sd
        best = max(grid, key=lambda w: routing_curve(z @ w, y[tr, 0], y[tr, 1]).apgr())
        return ((np.stack([b(tr, te) for b in bases], 1) - mu) / sd) @ best

    return score


def pooled_views(prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(rarity-weighted mean, signed max) of both static tables, each unit-norm, joined as the default is."""
    rare, top = [], []
    for se in (StaticEmbedder.load(), StaticEmbedder.load_smollm2()):
        table = se._table
        w_rows = np.zeros((len(prompts), table.shape[1]), np.float32)
        m_rows = np.zeros_like(w_rows)
        for r, enc in enumerate(se._tokenizer.encode_batch(prompts, add_special_tokens=False)):
            ids = np.array([i for i in enc.ids if i not in se._special][-256:], dtype=np.int64)
            if len(ids):
                v = table[ids].astype(np.float32)
                w = np.log1p(ids.astype(np.float32))
                w_rows[r] = (v * w[:, None]).sum(0) / w.sum()
                arg = np.abs(v).argmax(0)
                m_rows[r] = v[arg, np.arange(v.shape[1])]
        rare.append(_unit_rows(w_rows))
        top.append(_unit_rows(m_rows))
    return np.hstack(rare) / np.sqrt(2), np.hstack(top) / np.sqrt(2)


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Mann-Whitney AUC (ties broken by a fixed jitter)."""
    jitter = 1e-9 * np.random.default_rng(0).random(len(score))
    rank = np.empty(len(score))
    rank[np.argsort(score + jitter, kind="stable")] = np.arange(1, len(score) + 1)
    pos = label.sum()
    return float((rank[label == 1].sum() - pos * (pos + 1) / 2) / (pos * (len(label) - pos)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    files = sorted(DATA.glob("mmlu_*.csv"))
    data, subjects = load_with_subjects(files, load_excluded(DATA / "contaminated_prompts.jsonl"))
    prompts = list(data.prompts)
    emb = cached_embed(load_embedder(COMBINED_STATIC), prompts)
    stats = cached_embed(StatsView(), prompts)  # type: ignore[arg-type]
    y = data.scores
    rare, top = pooled_views(prompts)
    mean_max = (np.hstack([emb, top]) / np.sqrt(2)).astype(np.float32)
    scorers = {
        "shipped": shipped(emb, y),
        "k by n": shipped(emb, y, lambda n: tuple(max(3, round(n * f)) for f in (1 / 30, 1 / 15, 1 / 7.5))),
        "stacked": stacked(emb, stats, y),
        "rarity-weighted": shipped(rare.astype(np.float32), y),
        "mean+max": shipped(mean_max, y),
    }
    fold = subject_folds(subjects, 5)
    print("| variant | protocol | prompts | APGR | CPT(50%) | per part APGR |\n|---|---|---|---|---|---|")
    for proto, n in (("random", 500), ("lso", 500), ("random", 1500), ("lso", 1500)):
        if proto == "random":
            splits = [random_split(data, n, s) for s in range(args.seeds)]
        else:
            splits = [leave_subjects_out(data, fold, k, n, seed=k) for k in range(5)]
        for name, score in scorers.items():
            got = [summary(score(tr, te), y[te]) for tr, te in splits]
            per = " ".join(f"{g.apgr:.3f}" for g in got)
            apgr, cpt = np.mean([g.apgr for g in got]), np.mean([g.cpt50 for g in got])
            print(f"| {name} | {proto} | {n} | {apgr:.3f} | {100 * cpt:.1f}% | {per} |", flush=True)
    only_strong = np.clip(y[:, 1] - y[:, 0], 0, 1)
    names = sorted(set(subjects))
    gaps = np.array([only_strong[subjects == s].mean() for s in names])
    print("\n| statistic | AUC, all rows | AUC within subjects (mean) | subject means vs gaps (r) |\n|---|---|---|---|")
    for j, stat in enumerate(STAT_NAMES):
        within = [
            auc(stats[subjects == s, j], only_strong[subjects == s])
            for s in names
            if 0 < only_strong[subjects == s].sum() < (subjects == s).sum() and stats[subjects == s, j].std() > 0
        ]
        means = np.array([stats[subjects == s, j].mean() for s in names])
        r = np.corrcoef(means, gaps)[0, 1] if means.std() > 0 else float("nan")
        mean_within = f"{np.mean(within):.3f}" if within else "-"
        print(f"| {stat} | {auc(stats[:, j], only_strong):.3f} | {mean_within} | {r:+.2f} |")


if __name__ == "__main__":
    main()
