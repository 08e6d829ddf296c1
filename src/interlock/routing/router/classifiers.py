"""Per-model quality predictors on prompt embeddings: kNN, L2 logistic regression, and their average.

Each predicts, for every model, the expected score in [0, 1] that model gets on a prompt. A router
compares those predictions; fitting every model at once is what lets a router span more than two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Floats32 = npt.NDArray[np.float32]


class Predictor(Protocol):
    """Expected per-model scores for embedded prompts."""

    def predict(self, x: Floats32) -> Floats:
        """Shape (len(x), models), each in [0, 1]."""
        ...


@dataclass(frozen=True)
class KNN:
    """Similarity-weighted mean of the nearest training prompts' scores (cosine), shrunk to the prior.

    With several neighbourhood sizes in `ks` it averages the estimates at each scale: on 1,500 prompts the
    best single k is noisy to pick, and the average is about as good as the best one (bench/router).
    It reads the first `points.shape[1]` columns of a feature row: the unit-norm embedding, not the
    prompt statistics that may follow it.
    """

    points: Floats32
    targets: Floats
    ks: tuple[int, ...]
    temperature: float
    prior_weight: float

    @classmethod
    def fit(
        cls,
        x: Floats32,
        y: Floats,
        *,
        ks: tuple[int, ...],
        temperature: float,
        prior_weight: float = 0.0,
        columns: int | None = None,
    ) -> KNN:
        """Store the training points (the first `columns` columns, unit-norm rows) and their scores."""
        if not ks or min(ks) < 1:
            raise ValueError("ks must be positive neighbourhood sizes")
        return cls(
            np.ascontiguousarray(np.asarray(x)[:, :columns], dtype=np.float32),
            np.asarray(y, dtype=np.float64),
            tuple(ks),
            temperature,
            prior_weight,
        )

    def predict(self, x: Floats32) -> Floats:
        """See `Predictor.predict`."""
        x = np.asarray(x, dtype=np.float32)[:, : self.points.shape[1]]
        sims = x @ self.points.T
        widest = min(max(self.ks), self.points.shape[0])
        top = np.argpartition(-sims, widest - 1, axis=1)[:, :widest]
        top_sims = np.take_along_axis(sims, top, axis=1).astype(np.float64)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        top, top_sims = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)
        prior = self.targets.mean(0)
        out = np.zeros((len(sims), self.targets.shape[1]))
        for k in self.ks:
            k = min(k, widest)
            # Softmax over similarity: nearer neighbours count more; temperature 0 would be 1-NN.
            weights = np.exp((top_sims[:, :k] - top_sims[:, :1]) / self.temperature)
            weights /= weights.sum(1, keepdims=True)
            # Shrink towards the overall mean as if `prior_weight` extra neighbours sat at it.
            votes = np.einsum("nk,nkm->nm", weights * k, self.targets[top[:, :k]])
            out += (votes + self.prior_weight * prior) / (k + self.prior_weight)
        return np.asarray(out / len(self.ks))


def _sigmoid(z: Floats) -> Floats:
    return np.asarray(0.5 * (1 + np.tanh(0.5 * z)))


def _fit_logistic(x: Floats, y: Floats, l2: float, iterations: int = 15) -> Floats:
    """Newton's method for L2-penalised logistic regression with soft labels; the bias is not penalised."""
    n, d = x.shape
    w = np.zeros(d)
    w[-1] = np.log((y.mean() + 1e-3) / (1 - y.mean() + 1e-3))
    penalty = np.full(d, l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = _sigmoid(x @ w)
        grad = x.T @ (p - y) / n + penalty * w
        hess = (x * (p * (1 - p))[:, None]).T @ x / n + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-4:
            break
    return w


@dataclass(frozen=True)
class Logistic:
    """One L2 logistic regression per model on the embedding (plus a bias), soft labels allowed."""

    weights: Floats
    l2: float

    @classmethod
    def fit(cls, x: Floats32, y: Floats, *, l2: float) -> Logistic:
        """Fit every model's column of `y`."""
        xb = np.hstack([np.asarray(x, dtype=np.float64), np.ones((len(x), 1))])
        return cls(np.stack([_fit_logistic(xb, y[:, j], l2) for j in range(y.shape[1])], axis=1), l2)

    def predict(self, x: Floats32) -> Floats:
        """See `Predictor.predict`."""
        return _sigmoid(np.asarray(x, dtype=np.float64) @ self.weights[:-1] + self.weights[-1])


@dataclass(frozen=True)
class Blend:
    """A weighted average of predictors' outputs."""

    parts: tuple[Predictor, ...]
    mix: tuple[float, ...]

    def predict(self, x: Floats32) -> Floats:
        """See `Predictor.predict`."""
        return np.asarray(sum(m * p.predict(x) for m, p in zip(self.mix, self.parts, strict=True)))
