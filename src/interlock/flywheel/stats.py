"""Bootstrap confidence intervals for eval scores (percentile method, seeded, so a report is reproducible)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000


@dataclass(frozen=True, slots=True)
class Interval:
    """A mean and its confidence interval."""

    mean: float
    low: float
    high: float
    n: int

    def show(self) -> str:
        """`0.82 [0.71, 0.90]`."""
        if self.n == 0:
            return "-"
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap(
    scores: Sequence[float], *, confidence: float = 0.95, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """The mean of `scores` and its percentile-bootstrap interval at `confidence`."""
    n = len(scores)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    values = np.asarray(scores, dtype=float)
    mean = float(values.mean())
    if n == 1:
        return Interval(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(mean, float(low), float(high), n)


def paired_difference(
    a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """The mean of `b - a` over the same items, with its bootstrap interval (the items resampled together)."""
    if len(a) != len(b):
        raise ValueError("paired scores need the same items on both sides")
    return bootstrap([y - x for x, y in zip(a, b, strict=True)], confidence=confidence, resamples=resamples, seed=seed)
