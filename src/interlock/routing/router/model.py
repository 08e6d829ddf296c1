"""A trained router: its file format and its runtime scorer.

A router file is a JSON object (`router.json`) plus a binary sidecar next to it (`router.safetensors`)
holding every array (kNN points as float16, the rest float32); never a pickle. The JSON names the
sidecar and its sha256, the feature spec (embedder name, token window, the fingerprint of the weights
behind it, and the prompt statistics' version and scaling), so a router never silently reads features
that changed under it: if the engine's weight file is swapped, loading refuses with the reason.

The classifier predicts every model's expected quality on a prompt. The routing score is the quality
the strong model adds over the cheap one; a router sends a prompt to the cheapest model whose predicted
shortfall against the strong model is below the threshold, so two or more models route the same way.
The file also maps the score to two calibrated numbers (see `RouterModel.probability` and
`RouterModel.gain`). Those maps never decrease, but their isotonic steps tie prompts, so routing uses
the score itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from interlock.routing.router.classifiers import KNN, Blend, Logistic, Predictor
from interlock.routing.router.features import DEFAULT_MAX_TOKENS, Embedder, embed_conversations, load_embedder
from interlock.routing.router.prompt import STATS_VERSION, conversation_text, prompt_stats

FORMAT = "interlock-router"
VERSION = 3

Floats = npt.NDArray[np.float64]
Floats32 = npt.NDArray[np.float32]
Arrays = dict[str, npt.NDArray[Any]]


class RouterFileError(ValueError):
    """A router file that cannot be loaded."""


def sidecar_path(path: Path) -> Path:
    """Where the arrays of the router file at `path` live."""
    return Path(path).with_suffix(".safetensors")


def predictor_to_json(p: Predictor, arrays: Arrays, key: str = "p") -> dict[str, Any]:
    """The JSON form of a classifier; its arrays go into `arrays` under keys starting with `key`."""
    if isinstance(p, KNN):
        arrays[f"{key}.points"] = np.ascontiguousarray(p.points, dtype=np.float16)
        arrays[f"{key}.targets"] = np.ascontiguousarray(p.targets, dtype=np.float32)
        return {
            "kind": "knn",
            "ks": list(p.ks),
            "temperature": p.temperature,
            "prior_weight": p.prior_weight,
            "key": key,
        }
    if isinstance(p, Logistic):
        arrays[f"{key}.weights"] = np.ascontiguousarray(p.weights, dtype=np.float32)
        return {"kind": "logistic", "l2": p.l2, "key": key}
    if isinstance(p, Blend):
        parts = [predictor_to_json(q, arrays, f"{key}.{i}") for i, q in enumerate(p.parts)]
        return {"kind": "blend", "mix": list(p.mix), "parts": parts}
    raise TypeError(f"cannot save a {type(p).__name__}")


def predictor_from_json(obj: dict[str, Any], arrays: Arrays) -> Predictor:
    """A classifier from its JSON form and the sidecar's arrays."""
    kind = obj.get("kind")
    if kind == "knn":
        key = obj["key"]
        return KNN(
            np.ascontiguousarray(arrays[f"{key}.points"], dtype=np.float32),
            arrays[f"{key}.targets"].astype(np.float64),
            tuple(int(k) for k in obj["ks"]),
            float(obj["temperature"]),
            float(obj["prior_weight"]),
        )
    if kind == "logistic":
        return Logistic(arrays[f"{obj['key']}.weights"].astype(np.float64), float(obj["l2"]))
    if kind == "blend":
        parts = tuple(predictor_from_json(q, arrays) for q in obj["parts"])
        return Blend(parts, tuple(float(m) for m in obj["mix"]))
    raise RouterFileError(f"unknown classifier kind {kind!r}")


@dataclass(frozen=True)
class StatsBlock:
    """How prompt statistics join the embedding: standardised by the training mean and sd, times `weight`."""

    mean: tuple[float, ...]
    sd: tuple[float, ...]
    weight: float
    version: str = STATS_VERSION

    @classmethod
    def fit(cls, stats: Floats32, weight: float) -> StatsBlock:
        """The scaling of the training prompts' statistics."""
        return cls(tuple(map(float, stats.mean(0))), tuple(float(v) + 1e-6 for v in stats.std(0)), weight)

    def apply(self, stats: Floats32) -> Floats32:
        """The block of feature columns for these statistics."""
        z = (np.asarray(stats, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.sd)
        return np.asarray(self.weight * z, dtype=np.float32)


def join_features(embeddings: Floats32, texts: Sequence[str], stats: StatsBlock | None) -> Floats32:
    """The classifier's input: the embedding, then the scaled prompt statistics (if the router uses them)."""
    if stats is None:
        return np.asarray(embeddings, dtype=np.float32)
    return np.hstack([np.asarray(embeddings, dtype=np.float32), stats.apply(prompt_stats(texts))])


def _calibrated(scores: Floats, quantiles: tuple[float, ...], values: tuple[float, ...]) -> Floats:
    return np.asarray(np.interp(scores, quantiles, values))


@dataclass(frozen=True)
class RouterModel:
    """Everything a router file holds, without the embedder."""

    embedder: str
    models: tuple[str, ...]  # cheapest first, strongest last
    predictor: Predictor
    threshold: float
    score_quantiles: tuple[float, ...]  # of out-of-fold training scores, at 0%, 1%, ..., 100%
    shortfall_probabilities: tuple[float, ...]  # P(cheap not good enough) at each of those scores
    gains: tuple[float, ...] = ()  # E[strong - cheap] at each of those scores (empty: the score itself)
    max_tokens: int = DEFAULT_MAX_TOKENS
    embedder_identity: str = ""  # `Embedder.identity` at training time; "" skips the check
    stats: StatsBlock | None = None
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def cheap(self) -> str:
        """The cheapest model."""
        return self.models[0]

    @property
    def strong(self) -> str:
        """The strongest model."""
        return self.models[-1]

    def qualities(self, features: Floats32) -> Floats:
        """Predicted expected quality of every model, shape (n, models), from `join_features` rows."""
        return self.predictor.predict(features)

    def scores(self, features: Floats32) -> Floats:
        """The routing score: predicted quality of the strong model minus that of the cheap one."""
        q = self.qualities(features)
        return np.asarray(q[:, -1] - q[:, 0])

    def probability(self, scores: Floats) -> Floats:
        """P(the cheap model is not good enough where the strong one is), from routing scores.

        For right/wrong labels, the probability that the cheap model fails and the strongest one succeeds;
        for graded scores in [0, 1], the expected max(0, strong - cheap). It is the isotonic fit of that
        outcome on the out-of-fold training scores, so it is calibrated on the training distribution.
        """
        return _calibrated(scores, self.score_quantiles, self.shortfall_probabilities)

    def gain(self, scores: Floats) -> Floats:
        """The expected quality the strong model adds over the cheap one (in [-1, 1]), from routing scores.

        The isotonic fit of the observed strong - cheap difference on the out-of-fold training scores: a
        calibrated version of the score, on the training distribution.
        """
        if not self.gains:
            return np.asarray(scores, dtype=np.float64)
        return _calibrated(scores, self.score_quantiles, self.gains)

    def threshold_for_share(self, share: float) -> float:
        """The threshold that sent `share` of the training prompts (out of fold) past the cheap model.

        That is `strong_share`: the share of strong calls on the training distribution; on traffic of
        another kind the share moves with how hard that traffic looks to the router.
        """
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

    def to_json(self, arrays: Arrays) -> dict[str, Any]:
        """The file's JSON object; the arrays go into `arrays` (the sidecar)."""
        stats = None
        if self.stats is not None:
            s = self.stats
            stats = {"version": s.version, "mean": list(s.mean), "sd": list(s.sd), "weight": s.weight}
        return {
            "format": FORMAT,
            "version": VERSION,
            "features": {
                "embedder": self.embedder,
                "max_tokens": self.max_tokens,
                "identity": self.embedder_identity,
                "stats": stats,
            },
            "models": list(self.models),
            "cheap": self.cheap,
            "strong": self.strong,
            "classifier": predictor_to_json(self.predictor, arrays),
            "threshold": self.threshold,
            "score_quantiles": list(self.score_quantiles),
            "shortfall_probabilities": list(self.shortfall_probabilities),
            "gains": list(self.gains),
            "training": self.training,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], arrays: Arrays) -> RouterModel:
        """Read the file's JSON object with its sidecar's arrays."""
        if obj.get("format") != FORMAT:
            raise RouterFileError("not an Interlock router file")
        if obj.get("version") != VERSION:
            raise RouterFileError(
                f"router file version {obj.get('version')} is not supported (expected {VERSION}); train it again"
            )
        try:
            spec = obj["features"]
            stats = spec.get("stats")
            block = None
            if stats is not None:
                if stats["version"] != STATS_VERSION:
                    raise RouterFileError(
                        f"router uses prompt statistics {stats['version']!r}; this Interlock computes "
                        f"{STATS_VERSION!r}; train it again"
                    )
                block = StatsBlock(tuple(stats["mean"]), tuple(stats["sd"]), float(stats["weight"]), stats["version"])
            return cls(
                embedder=str(spec["embedder"]),
                max_tokens=int(spec.get("max_tokens", DEFAULT_MAX_TOKENS)),
                embedder_identity=str(spec.get("identity", "")),
                stats=block,
                models=tuple(str(m) for m in obj["models"]),
                predictor=predictor_from_json(obj["classifier"], arrays),
                threshold=float(obj["threshold"]),
                score_quantiles=tuple(float(v) for v in obj["score_quantiles"]),
                shortfall_probabilities=tuple(float(v) for v in obj["shortfall_probabilities"]),
                gains=tuple(float(v) for v in obj.get("gains", ())),
                training=dict(obj.get("training", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, RouterFileError):
                raise
            raise RouterFileError(f"malformed router file: {exc!r}") from exc

    def save(self, path: Path) -> None:
        """Write the router file and its sidecar (`sidecar_path`)."""
        arrays: Arrays = {}
        obj = self.to_json(arrays)
        blob = save_arrays(arrays)
        side = sidecar_path(path)
        side.write_bytes(blob)
        obj["sidecar"] = {"file": side.name, "sha256": hashlib.sha256(blob).hexdigest()}
        Path(path).write_text(json.dumps(obj), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> RouterModel:
        """Read a router file and its sidecar."""
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RouterFileError(f"{path}: not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise RouterFileError(f"{path}: not a router file")
        if obj.get("format") == FORMAT and obj.get("version") == VERSION:
            side = Path(path).parent / str(obj.get("sidecar", {}).get("file", sidecar_path(path).name))
            try:
                blob = side.read_bytes()
            except OSError as exc:
                raise RouterFileError(f"{path}: cannot read its arrays file {side}: {exc.strerror}") from None
            if hashlib.sha256(blob).hexdigest() != obj.get("sidecar", {}).get("sha256"):
                raise RouterFileError(f"{side} does not belong to {path} (sha256 differs); copy both files together")
            return cls.from_json(obj, load_arrays(blob))
        return cls.from_json(obj, {})


def _conversation(item: str | Sequence[tuple[str, str]]) -> str:
    return item if isinstance(item, str) else conversation_text(item)


class LearnedRouter:
    """A router file plus its embedder: prompts in, scores and model choices out. Immutable; thread-safe.

    Every method takes prompts as strings or conversations as (role, text) pairs; a conversation is read
    through `conversation_text` (the last user turn plus a bounded summary of the earlier ones).
    """

    def __init__(self, model: RouterModel, embedder: Embedder) -> None:
        if embedder.name != model.embedder:
            raise RouterFileError(f"router was trained on {model.embedder!r} embeddings, not {embedder.name!r}")
        if model.embedder_identity and embedder.identity != model.embedder_identity:
            raise RouterFileError(
                f"router was trained on {model.embedder!r} features from other weights (fingerprint "
                f"{model.embedder_identity}, now {embedder.identity}): the model file behind them changed; "
                "train the router again on the current files"
            )
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

    def embed(self, items: Sequence[str | Sequence[tuple[str, str]]]) -> Floats32:
        """The router's features for prompts or conversations."""
        texts = [_conversation(t) for t in items]
        return join_features(embed_conversations(self.embedder, texts), texts, self.model.stats)

    def score_embeddings(self, features: Floats32) -> Floats:
        """Routing scores of featurised prompts; higher means the strong model is more worth it."""
        return self.model.scores(features)

    def score(self, items: Sequence[str | Sequence[tuple[str, str]]]) -> Floats:
        """Routing scores: predicted quality of the strong model minus that of the cheap one."""
        return self.score_embeddings(self.embed(items))

    def probability(self, items: Sequence[str | Sequence[tuple[str, str]]]) -> Floats:
        """Per prompt, the estimated probability that the cheap model is not good enough (see `RouterModel`)."""
        return self.model.probability(self.score(items))

    def threshold_for_share(self, share: float) -> float:
        """The threshold expected to send `share` of calls past the cheap model (on the training distribution)."""
        return self.model.threshold_for_share(share)

    def decide(self, item: str | Sequence[tuple[str, str]], threshold: float | None = None) -> tuple[str, float]:
        """For one prompt or conversation, the model to call and its routing score, featurising it once."""
        q = self.model.qualities(self.embed([item]))
        return self.model.choose(q, threshold)[0], float(q[0, -1] - q[0, 0])

    def route(self, items: Sequence[str | Sequence[tuple[str, str]]], threshold: float | None = None) -> list[str]:
        """The model to call for each prompt (the file's default threshold unless one is given)."""
        return self.model.choose(self.model.qualities(self.embed(items)), threshold)
