"""RouteLLM's routing metrics: the PGR curve, APGR, CPT(p), with bootstrap confidence intervals.

The prompts with the highest scores go to the strong model. A run of tied scores is routed as if in
random order, so the curve is linear across it (the expectation over tie-breaks); the curve is exact
at every threshold and linear in between, so APGR is its exact trapezoid area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

SHARES = tuple(i / 10 for i in range(11))


@dataclass(frozen=True)
class Curve:
    """Quality as a function of the share of calls sent to the strong model."""

    share: Floats
    quality: Floats
    weak_quality: float
    strong_quality: float

    @property
    def pgr(self) -> Floats:
        """Performance gap recovered at each point of the curve."""
        gap = self.strong_quality - self.weak_quality
        return (self.quality - self.weak_quality) / (gap if gap != 0 else np.nan)

    def pgr_at(self, shares: npt.ArrayLike) -> Floats:
        """PGR at the given strong shares, interpolated."""
        return np.interp(np.asarray(shares, dtype=np.float64), self.share, self.pgr)

    def apgr(self) -> float:
        """Area under the PGR curve for strong shares from 0 to 1."""
        pgr, x = self.pgr, self.share
        return float(np.sum((pgr[1:] + pgr[:-1]) * np.diff(x)) / 2)

    def share_for_pgr(self, target: float) -> float:
        """CPT(target): the smallest strong share at which PGR reaches `target` (1.0 if never)."""
        return _first_crossing(self.share, self.pgr, target)

    def share_for_quality(self, fraction: float) -> float:
        """The smallest strong share at which quality reaches `fraction` of the strong model's quality."""
        return _first_crossing(self.share, self.quality, fraction * self.strong_quality)


def _first_crossing(x: Floats, y: Floats, target: float) -> float:
    hits = np.flatnonzero(y >= target - 1e-12)
    if hits.size == 0:
        return 1.0
    i = int(hits[0])
    if i == 0:
        return float(x[0])
    # Linear within the segment, as the curve is.
    frac = (target - y[i - 1]) / (y[i] - y[i - 1])
    return float(x[i - 1] + frac * (x[i] - x[i - 1]))


def routing_curve(
    scores: npt.ArrayLike, weak: npt.ArrayLike, strong: npt.ArrayLike, weights: npt.ArrayLike | None = None
) -> Curve:
    """The quality curve when the highest `scores` go to the strong model; `weights` count each prompt (bootstrap)."""
    s = np.asarray(scores, dtype=np.float64)
    w_ok = np.asarray(weak, dtype=np.float64)
    s_ok = np.asarray(strong, dtype=np.float64)
    wt = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s, gain, wt_sorted = s[order], (s_ok - w_ok)[order] * wt[order], wt[order]
    # Keep only the last index of each run of equal scores: the curve's corners.
    ends = np.append(np.flatnonzero(np.diff(s) != 0), len(s) - 1) if len(s) else np.array([], dtype=np.intp)
    total = wt.sum()
    weak_q = float((w_ok * wt).sum() / total)
    strong_q = float((s_ok * wt).sum() / total)
    share = np.concatenate([[0.0], np.cumsum(wt_sorted)[ends] / total])
    quality = weak_q + np.concatenate([[0.0], np.cumsum(gain)[ends] / total])
    return Curve(share, quality, weak_q, strong_q)


@dataclass(frozen=True)
class Summary:
    """The headline numbers of one routing curve."""

    apgr: float
    cpt50: float
    cpt80: float
    share95: float
    pgr: tuple[float, ...]

    @classmethod
    def of(cls, curve: Curve) -> Summary:
        """Summarise a curve."""
        return cls(
            apgr=curve.apgr(),
            cpt50=curve.share_for_pgr(0.5),
            cpt80=curve.share_for_pgr(0.8),
            share95=curve.share_for_quality(0.95),
            pgr=tuple(float(v) for v in curve.pgr_at(SHARES)),
        )


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval."""

    value: float
    low: float
    high: float


def bootstrap(
    scores: npt.ArrayLike,
    weak: npt.ArrayLike,
    strong: npt.ArrayLike,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """APGR, CPT(50%), CPT(80%) and the 95%-quality share, each with a bootstrap interval over the prompts."""
    s = np.asarray(scores, dtype=np.float64)
    point = Summary.of(routing_curve(s, weak, strong))
    rng = np.random.default_rng(seed)
    names = ("apgr", "cpt50", "cpt80", "share95")
    draws = np.empty((resamples, len(names)))
    n = len(s)
    for r in range(resamples):
        counts = rng.multinomial(n, np.full(n, 1.0 / n)) if n else np.zeros(0)
        summary = Summary.of(routing_curve(s, weak, strong, counts))
        draws[r] = [getattr(summary, k) for k in names]
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail], axis=0)
    return {k: Interval(float(getattr(point, k)), float(low[i]), float(high[i])) for i, k in enumerate(names)}


def random_summary(weak: npt.ArrayLike, strong: npt.ArrayLike) -> Summary:
    """The expected numbers of a router that picks the strong model at random: PGR(x) = x."""
    w, s = np.asarray(weak, dtype=np.float64), np.asarray(strong, dtype=np.float64)
    curve = Curve(np.array([0.0, 1.0]), np.array([w.mean(), s.mean()]), float(w.mean()), float(s.mean()))
    return Summary.of(curve)
