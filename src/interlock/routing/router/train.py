"""Training a router: order the models, fit the ensemble, and set the threshold and the probability scale.

The features are the embedding followed by the scaled prompt statistics (`model.join_features`); the
logistic models read both, the kNN only the embedding. With `groups` (a subject, a tenant, a source) the
out-of-fold scores leave whole groups out, so the threshold quantiles and the calibration describe
prompts of a kind the fold has not seen, closer to new traffic than a random split.

The classifier is a fixed ensemble rather than one chosen by cross-validation: on 1,500 prompts the CV
ranking of hyper-parameters is noisier than the differences it ranks (bench/router/README.md), so the
router averages a small neighbourhood of settings instead. Cross-validation still runs, for the
out-of-fold scores that set the threshold quantiles and calibrate the probability.
"""

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
from interlock.routing.router.model import RouterModel, StatsBlock, join_features
from interlock.routing.router.prompt import prompt_stats

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
    return Candidate(f"knn(k={k}, t={temperature})", lambda x, y: KNN.fit(x, y, ks=(k,), temperature=temperature))


def logistic(l2: float) -> Candidate:
    """A logistic-regression candidate."""
    return Candidate(f"logistic(l2={l2:g})", lambda x, y: Logistic.fit(x, y, l2=l2))


def blend(a: Candidate, b: Candidate) -> Candidate:
    """The average of two candidates."""
    return Candidate(f"mean[{a.name}, {b.name}]", lambda x, y: Blend((a.fit(x, y), b.fit(x, y)), (0.5, 0.5)))


ENSEMBLE_L2 = (3e-4, 1e-3, 3e-3)
ENSEMBLE_KS = (50, 100, 200)
ENSEMBLE_TEMPERATURE = 0.05
# The weight of the standardised prompt statistics next to the unit-norm embedding when they are used,
# chosen by the leave-subjects-out score inside the training prompts (bench/router: `--select`). They
# are off by default: on the held-out subjects they did not beat the embedding alone (bench/RESULTS.md).
STATS_WEIGHT = 0.3


def ensemble(
    l2s: tuple[float, ...] = ENSEMBLE_L2,
    ks: tuple[int, ...] = ENSEMBLE_KS,
    temperature: float = ENSEMBLE_TEMPERATURE,
    columns: int | None = None,
) -> Candidate:
    """Half the mean of logistic models at each L2, half a kNN averaged over the neighbourhood sizes `ks`.

    The kNN reads the first `columns` feature columns (the embedding), the logistic models all of them.
    """

    def fit(x: Floats32, y: Floats) -> Predictor:
        parts: list[Predictor] = [Logistic.fit(x, y, l2=l2) for l2 in l2s]
        parts.append(KNN.fit(x, y, ks=ks, temperature=temperature, columns=columns))
        return Blend(tuple(parts), tuple([0.5 / len(l2s)] * len(l2s) + [0.5]))

    l2_text, k_text = ", ".join(f"{v:g}" for v in l2s), ", ".join(map(str, ks))
    name = f"mean[logistic(l2 in {l2_text}), knn(k in {k_text}, t={temperature})]"
    return Candidate(name, fit)


def default_candidates() -> list[Candidate]:
    """A grid for comparing one-setting models by cross-validation (bench/router)."""
    return [knn(k, t) for k in (25, 50, 100, 200) for t in (0.05, 1.0)] + [logistic(l2) for l2 in (1e-3, 3e-3, 1e-2)]


def fold_ids(n: int, folds: int, seed: int, groups: npt.ArrayLike | None = None) -> npt.NDArray[np.intp]:
    """A fold per row: at random, or whole groups per fold when there are at least `folds` groups."""
    rng = np.random.default_rng(seed)
    if groups is not None:
        names, index = np.unique(np.asarray(groups), return_inverse=True)
        if len(names) >= folds:
            return np.asarray(rng.permutation(len(names))[index] % folds, dtype=np.intp)
    return np.asarray(rng.permutation(n) % folds, dtype=np.intp)


def out_of_fold(fit: Fit, x: Floats32, y: Floats, folds: int, seed: int, groups: npt.ArrayLike | None = None) -> Floats:
    """Predictions for every row from a model fitted without that row's fold (grouped if `groups`)."""
    fold = fold_ids(len(x), folds, seed, groups)
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
    cands: list[Candidate],
    x: Floats32,
    y: Floats,
    *,
    folds: int,
    repeats: int,
    seed: int,
    groups: npt.ArrayLike | None = None,
) -> list[CVResult]:
    """Each candidate's out-of-fold APGR on the cheap-vs-strong pair, averaged over repeated k-fold splits."""
    results = []
    for c in cands:
        apgrs, scores = [], np.zeros(len(x))
        for r in range(repeats):
            s = gain_scores(out_of_fold(c.fit, x, y, folds, seed + r, groups))
            apgrs.append(routing_curve(s, y[:, 0], y[:, -1]).apgr())
            scores += s / repeats
        results.append(CVResult(c.name, float(np.mean(apgrs)), scores))
    return results


def isotonic(x: Floats, y: Floats) -> Floats:
    """The non-decreasing fit of `y` against `x` (pool adjacent violators), at each `x`."""
    order = np.argsort(x, kind="stable")
    means: list[float] = []
    sizes: list[int] = []
    for v in y[order]:
        means.append(float(v))
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            n = sizes[-2] + sizes[-1]
            means[-2] = (means[-2] * sizes[-2] + means[-1] * sizes[-1]) / n
            sizes[-2] = n
            means.pop()
            sizes.pop()
    out = np.empty(len(x))
    out[order] = np.repeat(means, sizes)
    return out


def shortfall(y: Floats) -> Floats:
    """How much better the strongest model did than the cheapest, or 0: 1 exactly when only the strong one was right."""
    return np.asarray(np.clip(y[:, -1] - y[:, 0], 0.0, 1.0))


def train_router(
    data: LabelledSet,
    embeddings: Floats32,
    embedder: str,
    *,
    cheap: str | None = None,
    strong: str | None = None,
    candidate: Candidate | None = None,
    folds: int = 5,
    repeats: int = 2,
    seed: int = 0,
    max_tokens: int = 256,
    identity: str = "",
    stats_weight: float | None = None,
    stats: Floats32 | None = None,
    groups: npt.ArrayLike | None = None,
) -> RouterModel:
    """Fit the ensemble (or `candidate`); its out-of-fold scores set the threshold and the calibration.

    `embeddings` are the embedder's rows for `data.prompts`; with `stats_weight` (e.g. `STATS_WEIGHT`) the
    prompt statistics join them (`stats`: their `prompt_stats`, computed when not given). `groups`, one
    label per prompt, makes the cross-validation leave whole groups out. `identity` is the embedder's
    fingerprint, for the file.
    """
    started = time.perf_counter()
    models = order_models(data, cheap, strong)
    usable = data.complete_for(models)
    cols = [data.models.index(m) for m in models]
    keep = np.flatnonzero(~np.isnan(data.scores[:, cols]).any(axis=1))
    if len(usable) < 2 * folds:
        raise ValueError(f"need at least {2 * folds} prompts scored for every model, got {len(usable)}")
    emb = np.asarray(embeddings[keep], dtype=np.float32)
    block = None
    if stats_weight is not None:
        raw = prompt_stats(usable.prompts) if stats is None else np.asarray(stats, dtype=np.float32)[keep]
        block = StatsBlock.fit(raw, stats_weight)
        x = np.hstack([emb, block.apply(raw)])
    else:
        x = join_features(emb, usable.prompts, None)
    y = usable.scores
    group_labels = None if groups is None else np.asarray(groups)[keep]
    chosen = candidate if candidate is not None else ensemble(columns=emb.shape[1])
    (cv,) = cross_validate([chosen], x, y, folds=folds, repeats=repeats, seed=seed, groups=group_labels)
    predictor = chosen.fit(x, y)
    levels = np.linspace(0, 1, 101)
    quantiles = np.quantile(cv.oof_scores, levels)
    # P(the cheap model is not good enough) and the expected gain, as functions of the score: isotonic fits
    # of the observed outcomes on the out-of-fold scores, read at the score quantiles (non-decreasing).
    ordered = np.sort(cv.oof_scores)
    probabilities = np.interp(quantiles, ordered, np.sort(isotonic(cv.oof_scores, shortfall(y))))
    gains = np.interp(quantiles, ordered, np.sort(isotonic(cv.oof_scores, y[:, -1] - y[:, 0])))
    training: dict[str, Any] = {
        "prompts": len(usable),
        "mean_scores": {m: float(y[:, j].mean()) for j, m in enumerate(models)},
        "cv": {
            "folds": folds,
            "repeats": repeats,
            "seed": seed,
            "grouped": group_labels is not None and len(np.unique(group_labels)) >= folds,
            "apgr": {cv.name: round(cv.apgr, 4)},
        },
        "chosen": cv.name,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return RouterModel(
        embedder=embedder,
        models=models,
        predictor=predictor,
        threshold=float(np.quantile(cv.oof_scores, 0.5)),
        score_quantiles=tuple(float(q) for q in quantiles),
        shortfall_probabilities=tuple(float(p) for p in probabilities),
        gains=tuple(float(g) for g in gains),
        max_tokens=max_tokens,
        embedder_identity=identity,
        stats=block,
        training=training,
    )
