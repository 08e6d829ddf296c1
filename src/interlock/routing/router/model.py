"""A trained router: its file format (JSON, arrays as base64 float32; never a pickle) and its runtime scorer.

The classifier predicts every model's expected quality on a prompt. The routing score is the quality
the strong model adds over the cheap one; a router sends a prompt to the cheapest model whose predicted
shortfall against the strong model is below the threshold, so two or more models route the same way.
The file also maps the score to a probability that the cheap model is not good enough (see
`RouterModel.probability`). That map never decreases, but its isotonic steps tie prompts, so routing
uses the score itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from interlock.routing.router.classifiers import KNN, Blend, Logistic, Predictor
from interlock.routing.router.features import DEFAULT_MAX_TOKENS, Embedder, load_embedder

FORMAT = "interlock-router"
VERSION = 2

Floats = npt.NDArray[np.float64]
Floats32 = npt.NDArray[np.float32]


class RouterFileError(ValueError):
    """A router file that cannot be loaded."""


def _pack(a: npt.NDArray[Any]) -> dict[str, Any]:
    data = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(data.shape), "dtype": "float32", "base64": base64.b64encode(data.tobytes()).decode()}


def _unpack(obj: dict[str, Any]) -> Floats32:
    raw = base64.b64decode(obj["base64"])
    return np.frombuffer(raw, dtype="<f4").reshape(obj["shape"]).astype(np.float32)


def predictor_to_json(p: Predictor) -> dict[str, Any]:
    """The JSON form of a classifier."""
    if isinstance(p, KNN):
        return {
            "kind": "knn",
            "ks": list(p.ks),
            "temperature": p.temperature,
            "prior_weight": p.prior_weight,
            "points": _pack(p.points),
            "targets": _pack(p.targets),
        }
    if isinstance(p, Logistic):
        return {"kind": "logistic", "l2": p.l2, "weights": _pack(p.weights)}
    if isinstance(p, Blend):
        return {"kind": "blend", "mix": list(p.mix), "parts": [predictor_to_json(q) for q in p.parts]}
    raise TypeError(f"cannot save a {type(p).__name__}")


def predictor_from_json(obj: dict[str, Any]) -> Predictor:
    """A classifier from its JSON form."""
    kind = obj.get("kind")
    if kind == "knn":
        return KNN(
            _unpack(obj["points"]),
            _unpack(obj["targets"]).astype(np.float64),
            tuple(int(k) for k in obj["ks"]),
            float(obj["temperature"]),
            float(obj["prior_weight"]),
        )
    if kind == "logistic":
        return Logistic(_unpack(obj["weights"]).astype(np.float64), float(obj["l2"]))
    if kind == "blend":
        return Blend(tuple(predictor_from_json(q) for q in obj["parts"]), tuple(float(m) for m in obj["mix"]))
    raise RouterFileError(f"unknown classifier kind {kind!r}")


@dataclass(frozen=True)
class RouterModel:
    """Everything a router file holds, without the embedder."""

    embedder: str
    models: tuple[str, ...]  # cheapest first, strongest last
    predictor: Predictor
    threshold: float
    score_quantiles: tuple[float, ...]  # of out-of-fold training scores, at 0%, 1%, ..., 100%
    shortfall_probabilities: tuple[float, ...]  # P(cheap not good enough) at each of those scores
    max_tokens: int = DEFAULT_MAX_TOKENS
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def cheap(self) -> str:
        """The cheapest model."""
        return self.models[0]

    @property
    def strong(self) -> str:
        """The strongest model."""
        return self.models[-1]

    def qualities(self, embeddings: Floats32) -> Floats:
        """Predicted expected quality of every model, shape (n, models)."""
        return self.predictor.predict(embeddings)

    def scores(self, embeddings: Floats32) -> Floats:
        """The routing score: predicted quality of the strong model minus that of the cheap one."""
        q = self.qualities(embeddings)
        return np.asarray(q[:, -1] - q[:, 0])

    def probability(self, scores: Floats) -> Floats:
        """P(the cheap model is not good enough where the strong one is), from routing scores.

        For right/wrong labels, the probability that the cheap model fails and the strongest one succeeds;
        for graded scores in [0, 1], the expected max(0, strong - cheap). It is the isotonic fit of that
        outcome on the out-of-fold training scores, so it is calibrated on the training distribution.
        """
        return np.asarray(np.interp(scores, self.score_quantiles, self.shortfall_probabilities))

    def threshold_for_share(self, share: float) -> float:
        """The threshold that sent `share` of the training prompts (out of fold) past the cheap model."""
        if not 0.0 <= share <= 1.0:
            raise ValueError("share must be in [0, 1]")
        if share >= 1.0:
            return -np.inf
        if share <= 0.0:
            return np.inf
        levels = np.linspace(0.0, 1.0, len(self.score_quantiles))
        return float(np.interp(1.0 - share, levels, self.score_quantiles))

    def choose(self, qualities: Floats, threshold: float | None = None) -> list[str]:
        """Per prompt, the cheapest model whose predicted shortfall against the strong model is below `threshold`."""
        t = self.threshold if threshold is None else threshold
        shortfall = qualities[:, -1:] - qualities  # (n, models); 0 for the strong model
        ok = shortfall < t
        ok[:, -1] = True
        return [self.models[int(np.argmax(row))] for row in ok]

    def to_json(self) -> dict[str, Any]:
        """The file's JSON object."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "embedder": {"name": self.embedder, "max_tokens": self.max_tokens},
            "models": list(self.models),
            "cheap": self.cheap,
            "strong": self.strong,
            "classifier": predictor_to_json(self.predictor),
            "threshold": self.threshold,
            "score_quantiles": list(self.score_quantiles),
            "shortfall_probabilities": list(self.shortfall_probabilities),
            "training": self.training,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RouterModel:
        """Read the file's JSON object."""
        if obj.get("format") != FORMAT:
            raise RouterFileError("not an Interlock router file")
        if obj.get("version") != VERSION:
            raise RouterFileError(
                f"router file version {obj.get('version')} is not supported (expected {VERSION}); train it again"
            )
        try:
            return cls(
                embedder=str(obj["embedder"]["name"]),
                max_tokens=int(obj["embedder"].get("max_tokens", DEFAULT_MAX_TOKENS)),
                models=tuple(str(m) for m in obj["models"]),
                predictor=predictor_from_json(obj["classifier"]),
                threshold=float(obj["threshold"]),
                score_quantiles=tuple(float(v) for v in obj["score_quantiles"]),
                shortfall_probabilities=tuple(float(v) for v in obj["shortfall_probabilities"]),
                training=dict(obj.get("training", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RouterFileError(f"malformed router file: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the router file."""
        Path(path).write_text(json.dumps(self.to_json()), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> RouterModel:
        """Read a router file."""
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RouterFileError(f"{path}: not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise RouterFileError(f"{path}: not a router file")
        return cls.from_json(obj)


class LearnedRouter:
    """A router file plus its embedder: prompts in, scores and model choices out. Immutable; thread-safe."""

    def __init__(self, model: RouterModel, embedder: Embedder) -> None:
        if embedder.name != model.embedder:
            raise RouterFileError(f"router was trained on {model.embedder!r} embeddings, not {embedder.name!r}")
        self.model = model
        self.embedder = embedder

    @classmethod
    def load(cls, path: Path) -> LearnedRouter:
        """Load a router file and the embedder it names."""
        model = RouterModel.read(path)
        return cls(model, load_embedder(model.embedder, model.max_tokens))

    @property
    def models(self) -> tuple[str, ...]:
        """The models it routes between, cheapest first."""
        return self.model.models

    @property
    def threshold(self) -> float:
        """The default threshold stored in the file."""
        return self.model.threshold

    def embed(self, texts: Sequence[str]) -> Floats32:
        """The router's features for `texts`."""
        return self.embedder.embed(texts)

    def score_embeddings(self, embeddings: Floats32) -> Floats:
        """Routing scores of embedded prompts; higher means the strong model is more worth it."""
        return self.model.scores(embeddings)

    def score(self, texts: Sequence[str]) -> Floats:
        """Routing scores of prompts: predicted quality of the strong model minus that of the cheap one."""
        return self.score_embeddings(self.embed(texts))

    def probability(self, texts: Sequence[str]) -> Floats:
        """Per prompt, the estimated probability that the cheap model is not good enough (see `RouterModel`)."""
        return self.model.probability(self.score(texts))

    def threshold_for_share(self, share: float) -> float:
        """The threshold expected to send `share` of calls past the cheap model."""
        return self.model.threshold_for_share(share)

    def decide(self, text: str, threshold: float | None = None) -> tuple[str, float]:
        """For one prompt, the model to call and its routing score, embedding and scoring it once."""
        q = self.model.qualities(self.embed([text]))
        return self.model.choose(q, threshold)[0], float(q[0, -1] - q[0, 0])

    def route(self, texts: Sequence[str], threshold: float | None = None) -> list[str]:
        """The model to call for each prompt (the file's default threshold unless one is given)."""
        return self.model.choose(self.model.qualities(self.embed(texts)), threshold)
