"""The router benchmark's splits and statistics: a random split, leave-subjects-out folds, bootstrap CIs, ECE."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interlock.routing.router.data import LabelledSet, load_labelled
from interlock.routing.router.metrics import Summary, routing_curve

KEYS = ("apgr", "cpt50", "cpt80", "share95")


def load_with_subjects(files: list[Path], exclude: set[str]) -> tuple[LabelledSet, np.ndarray]:
    """All rows of RouteLLM's per-subject files, and each row's subject (from the file name)."""
    data = load_labelled(files, exclude)
    subjects = np.concatenate(
        [np.full(len(load_labelled([f], exclude)), f.stem.removeprefix("mmlu_"), dtype=object) for f in files]
    )
    return data, subjects


def sample_distinct(data: LabelledSet, pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` distinct prompts drawn from the rows `pool` (one row each), sorted."""
    first: dict[str, int] = {}
    for i in pool:
        first.setdefault(data.prompts[i], int(i))
    unique = sorted(first)
    chosen = np.random.default_rng(seed).choice(len(unique), min(n, len(unique)), replace=False)
    return np.sort([first[unique[i]] for i in chosen])


def random_split(data: LabelledSet, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` distinct prompts to train on; every row of every other prompt to evaluate on."""
    train = sample_distinct(data, np.arange(len(data)), n, seed)
    chosen = {data.prompts[i] for i in train}
    return train, np.array([i for i, p in enumerate(data.prompts) if p not in chosen])


def subject_folds(subjects: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold per row: whole subjects per fold, subjects dealt to folds in a seeded random order."""
    names = sorted(set(subjects))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[i]: rank % folds for rank, i in enumerate(order)}
    return np.array([fold_of[s] for s in subjects])


def leave_subjects_out(data: LabelledSet, fold: np.ndarray, k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` distinct prompts from the subjects outside fold `k`; the rows of fold `k` (minus those prompts)."""
    train = sample_distinct(data, np.flatnonzero(fold != k), n, seed)
    chosen = {data.prompts[i] for i in train}
    return train, np.array([i for i in np.flatnonzero(fold == k) if data.prompts[i] not in chosen])


def summary(scores: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> Summary:
    """The headline numbers, cheap model in column 0 and strong in column 1."""
    return Summary.of(routing_curve(scores, y[:, 0], y[:, 1], weights))


@dataclass(frozen=True)
class Estimate:
    """The mean over parts (seeds or folds) of each metric, with a bootstrap 95% interval."""

    value: dict[str, float]
    low: dict[str, float]
    high: dict[str, float]
    per_part: list[Summary]

    def cell(self, key: str) -> str:
        """`value [low, high]`, APGR as a fraction and the shares as percentages."""
        fmt = (lambda v: f"{v:.3f}") if key == "apgr" else (lambda v: f"{100 * v:.1f}%")
        return f"{fmt(self.value[key])} [{fmt(self.low[key])}, {fmt(self.high[key])}]"


def estimate(parts: list[tuple[np.ndarray, np.ndarray]], resamples: int, seed: int = 0) -> Estimate:
    """Metrics averaged over parts (each: scores, outcomes); the interval resamples rows within every part."""
    per_part = [summary(s, y) for s, y in parts]
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, len(KEYS)))
    for r in range(resamples):
        got = []
        for s, y in parts:
            counts = rng.multinomial(len(s), np.full(len(s), 1.0 / len(s)))
            got.append(summary(s, y, counts))
        draws[r] = [np.mean([getattr(g, k) for g in got]) for k in KEYS]
    low, high = np.nanpercentile(draws, [2.5, 97.5], axis=0)
    value = {k: float(np.mean([getattr(p, k) for p in per_part])) for k in KEYS}
    return Estimate(
        value, dict(zip(KEYS, map(float, low), strict=True)), dict(zip(KEYS, map(float, high), strict=True)), per_part
    )


def ece(probability: np.ndarray, outcome: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-count bins of the predicted probability."""
    order = np.argsort(probability, kind="stable")
    total = 0.0
    for part in np.array_split(order, bins):
        if len(part):
            total += len(part) * abs(float(probability[part].mean()) - float(outcome[part].mean()))
    return total / len(probability)
