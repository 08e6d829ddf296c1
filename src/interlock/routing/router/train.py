"""Training a router: order the models, choose a classifier by cross-validated APGR, fit it, set the threshold."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from interlock.routing.router.classifiers import KNN, Blend, Logistic, Predictor
from interlock.routing.router.data import LabelledSet
from interlock.routing.router.metrics import routing_curve
from interlock.routing.router.model import RouterModel

Floats = npt.NDArray[np.float64]
Floats32 = npt.NDArray[np.float32]
Fit = Callable[[Floats32, Floats], Predictor]


def order_models(data: LabelledSet, cheap: str | None = None, strong: str | None = None) -> tuple[str, ...]:
    """Models cheapest first: `cheap` first and `strong` last; others (or an unnamed pair) by mean score."""
    if len(data.models) < 2:
        raise ValueError("a router needs scores for at least two models")
    for name in (cheap, strong):
        if name is not None and name not in data.models:
            raise ValueError(f"model {name!r} is not in the data (models: {', '.join(data.models)})")
    if len(data.models) > 2 and (cheap is None or strong is None):
        raise ValueError("with more than two models, name the cheap and the strong one")
    means = {m: float(np.nanmean(data.column(m))) for m in data.models}
    if len(data.models) == 2 and (cheap is None) != (strong is None):
        other = next(m for m in data.models if m not in (cheap, strong))
        cheap, strong = (cheap, other) if cheap else (other, strong)
    middle = sorted((m for m in data.models if m not in (cheap, strong)), key=means.__getitem__)
    return tuple(([cheap] if cheap else []) + middle + ([strong] if strong else []))


@dataclass(frozen=True)
class Candidate:
    """A named classifier configuration."""

    name: str
    fit: Fit


def knn(k: int, temperature: float) -> Candidate:
    """A kNN candidate."""
    return Candidate(
        f"knn(k={k}, t={temperature})", lambda x, y: KNN.fit(x, y, k=k, temperature=temperature, prior_weight=0.0)
    )


def logistic(l2: float) -> Candidate:
    """A logistic-regression candidate."""
    return Candidate(f"logistic(l2={l2:g})", lambda x, y: Logistic.fit(x, y, l2=l2))


def blend(a: Candidate, b: Candidate) -> Candidate:
    """The average of two candidates."""
    return Candidate(f"mean[{a.name}, {b.name}]", lambda x, y: Blend((a.fit(x, y), b.fit(x, y)), (0.5, 0.5)))


def default_candidates() -> list[Candidate]:
    """The grid cross-validation chooses from."""
    return [knn(k, t) for k in (25, 50, 100, 200) for t in (0.05, 1.0)] + [logistic(l2) for l2 in (1e-3, 3e-3, 1e-2)]


def out_of_fold(fit: Fit, x: Floats32, y: Floats, folds: int, seed: int) -> Floats:
    """Predictions for every row from a model fitted without that row's fold."""
    fold = np.random.default_rng(seed).permutation(len(x)) % folds
    out = np.zeros_like(y)
    for f in range(folds):
        out[fold == f] = fit(x[fold != f], y[fold != f]).predict(x[fold == f])
    return out


def gain_scores(predicted: Floats) -> Floats:
    """The routing score from predicted qualities (cheapest column first, strongest last)."""
    return np.asarray(predicted[:, -1] - predicted[:, 0])


@dataclass(frozen=True)
class CVResult:
    """Mean out-of-fold APGR of one candidate over the repeats."""

    name: str
    apgr: float
    oof_scores: Floats


def cross_validate(
    cands: list[Candidate], x: Floats32, y: Floats, *, folds: int, repeats: int, seed: int
) -> list[CVResult]:
    """Each candidate's out-of-fold APGR on the cheap-vs-strong pair, averaged over repeated k-fold splits."""
    results = []
    for c in cands:
        apgrs, scores = [], np.zeros(len(x))
        for r in range(repeats):
            s = gain_scores(out_of_fold(c.fit, x, y, folds, seed + r))
            apgrs.append(routing_curve(s, y[:, 0], y[:, -1]).apgr())
            scores += s / repeats
        results.append(CVResult(c.name, float(np.mean(apgrs)), scores))
    return results


def train_router(
    data: LabelledSet,
    embeddings: Floats32,
    embedder: str,
    *,
    cheap: str | None = None,
    strong: str | None = None,
    candidates: list[Candidate] | None = None,
    folds: int = 5,
    repeats: int = 2,
    seed: int = 0,
    max_tokens: int = 256,
) -> RouterModel:
    """Fit the mean of the best kNN and the best logistic model (each chosen by cross-validated APGR)."""
    started = time.perf_counter()
    models = order_models(data, cheap, strong)
    usable = data.complete_for(models)
    cols = [data.models.index(m) for m in models]
    keep = np.flatnonzero(~np.isnan(data.scores[:, cols]).any(axis=1))
    x = np.asarray(embeddings[keep], dtype=np.float32)
    y = usable.scores
    if len(usable) < 2 * folds:
        raise ValueError(f"need at least {2 * folds} prompts scored for every model, got {len(usable)}")
    cands = candidates if candidates is not None else default_candidates()
    results = cross_validate(cands, x, y, folds=folds, repeats=repeats, seed=seed)
    by_name = {c.name: c for c in cands}
    best_knn = max((r for r in results if r.name.startswith("knn")), key=lambda r: r.apgr, default=None)
    best_lr = max((r for r in results if r.name.startswith("logistic")), key=lambda r: r.apgr, default=None)
    if best_knn and best_lr:
        mixed = blend(by_name[best_knn.name], by_name[best_lr.name])
        by_name[mixed.name] = mixed
        results += cross_validate([mixed], x, y, folds=folds, repeats=repeats, seed=seed)
    # On 1,500 prompts the CV ranking is noisy; the mean of the two families' best was the most robust choice
    # across splits (bench/router/README.md), so it wins whenever both families are in the grid.
    best = results[-1] if best_knn and best_lr else max(results, key=lambda r: r.apgr)
    predictor = by_name[best.name].fit(x, y)
    quantiles = np.quantile(best.oof_scores, np.linspace(0, 1, 101))
    training: dict[str, Any] = {
        "prompts": len(usable),
        "mean_scores": {m: float(y[:, j].mean()) for j, m in enumerate(models)},
        "cv": {"folds": folds, "repeats": repeats, "seed": seed, "apgr": {r.name: round(r.apgr, 4) for r in results}},
        "chosen": best.name,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return RouterModel(
        embedder=embedder,
        models=models,
        predictor=predictor,
        threshold=float(np.quantile(best.oof_scores, 0.5)),
        score_quantiles=tuple(float(q) for q in quantiles),
        max_tokens=max_tokens,
        training=training,
    )
