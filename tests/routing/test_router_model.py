"""Classifiers, training, the router file and model choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from interlock.routing.router.classifiers import KNN
from interlock.routing.router.data import LabelledSet
from interlock.routing.router.features import COMBINED_STATIC, MiniLMEmbedder, StaticEmbedder, load_embedder
from interlock.routing.router.metrics import routing_curve
from interlock.routing.router.model import LearnedRouter, RouterFileError, RouterModel, sidecar_path
from interlock.routing.router.prompt import STATS_VERSION
from interlock.routing.router.train import STATS_WEIGHT, fold_ids, isotonic, order_models, train_router


def _synthetic(n: int = 400, seed: int = 0) -> tuple[LabelledSet, np.ndarray]:
    """Two topics in embedding space; the cheap model fails topic B, which the strong one solves."""
    rng = np.random.default_rng(seed)
    topic = rng.random(n) < 0.4
    x = rng.normal(0, 1, (n, 16)) + np.where(topic[:, None], 2.0, -2.0) * np.eye(16)[0]
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    cheap = np.where(topic, rng.random(n) < 0.2, rng.random(n) < 0.9).astype(float)
    mid = np.where(topic, rng.random(n) < 0.5, rng.random(n) < 0.9).astype(float)
    strong = np.where(topic, rng.random(n) < 0.9, rng.random(n) < 0.9).astype(float)
    prompts = tuple(f"p{i}" for i in range(n))
    return LabelledSet(prompts, ("strong", "cheap", "mid"), np.stack([strong, cheap, mid], 1)), x


def test_order_models() -> None:
    data, _ = _synthetic()
    assert order_models(data, "cheap", "strong") == ("cheap", "mid", "strong")
    with pytest.raises(ValueError, match="name the cheap and the strong"):
        order_models(data)
    pair = data.complete_for(["strong", "cheap"])
    assert order_models(pair) == ("cheap", "strong")
    assert order_models(pair, strong="cheap") == ("strong", "cheap")


def test_train_round_trip_and_choose(tmp_path: Path) -> None:
    data, x = _synthetic()
    model = train_router(
        data.subset(range(300)), x[:300], "test", cheap="cheap", strong="strong", repeats=1, stats_weight=None
    )
    assert model.models == ("cheap", "mid", "strong")
    held = data.complete_for(["cheap", "strong"]).scores[300:]
    assert routing_curve(model.scores(x[300:]), held[:, 0], held[:, 1]).apgr() > 0.65
    path = tmp_path / "router.json"
    model.save(path)
    assert path.read_text().startswith("{")
    # The kNN's vectors live in the binary sidecar, not in the JSON.
    assert sidecar_path(path).stat().st_size > 300 * 16 * 2 > path.stat().st_size / 4
    again = RouterModel.read(path)
    # kNN points are stored as float16: scores move by well under 1e-2
    np.testing.assert_allclose(again.scores(x[300:]), model.scores(x[300:]), atol=3e-3)
    assert again.training["chosen"] == model.training["chosen"]
    # The probability rises with the score, stays in [0, 1] and is calibrated on the training outcomes:
    # topic B (cheap right 20%, strong 90%) should come out near 0.9 * 0.8 = 0.72, topic A near 0.09.
    p = again.probability(again.scores(x[300:]))
    assert ((p >= 0) & (p <= 1)).all()
    s = again.scores(x[300:])
    assert (np.diff(p[np.argsort(s)]) >= -1e-12).all()
    topic_b = x[300:, 0] > 0
    assert p[topic_b].mean() > 0.5 > 0.25 > p[~topic_b].mean()
    # The calibrated gain: about 0.9 - 0.2 = 0.7 on topic B, about 0 on topic A.
    g = again.gain(s)
    assert g[topic_b].mean() > 0.45 and abs(g[~topic_b].mean()) < 0.15
    # Half the (out-of-fold) training prompts sit above the default threshold.
    assert again.threshold == pytest.approx(again.threshold_for_share(0.5))
    assert again.threshold_for_share(0.2) > again.threshold_for_share(0.8)
    q = np.array([[0.2, 0.5, 0.9], [0.85, 0.9, 0.9], [0.2, 0.85, 0.9]])
    assert again.choose(q, 0.1) == ["strong", "cheap", "mid"]
    assert again.choose(q, -np.inf) == ["strong"] * 3


def test_isotonic_pools_violators() -> None:
    fit = isotonic(np.array([3.0, 1.0, 2.0, 4.0]), np.array([0.0, 1.0, 0.0, 1.0]))
    np.testing.assert_allclose(fit, [1 / 3, 1 / 3, 1 / 3, 1.0])


def test_multiscale_knn_is_the_mean_of_single_scales() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.random((50, 2))
    both = KNN.fit(x, y, ks=(5, 20), temperature=0.1).predict(x[:7])
    each = [KNN.fit(x, y, ks=(k,), temperature=0.1).predict(x[:7]) for k in (5, 20)]
    np.testing.assert_allclose(both, (each[0] + each[1]) / 2)


def test_bad_router_file(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"format": "interlock-router", "version": 99}')
    with pytest.raises(RouterFileError, match="version"):
        RouterModel.read(path)


class _FakeEmbedder:
    """Hashes characters into 16 dimensions; `identity` stands for the weights behind it."""

    name = "fake"

    def __init__(self, identity: str = "weights-a") -> None:
        self.identity = identity

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 16), dtype=np.float32)
        for i, t in enumerate(texts):
            for c in t:
                out[i, ord(c) % 16] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def _fake_router(tmp_path: Path) -> Path:
    prompts = [f"Compute {i} * {i + 7} - {3 * i} = ?" for i in range(40)] + [
        f"hello friend {'a' * i}" for i in range(40)
    ]
    scores = np.array([[0.0, 1.0]] * 40 + [[1.0, 1.0]] * 40)
    data = LabelledSet(tuple(prompts), ("weak", "strong"), scores)
    emb = _FakeEmbedder()
    model = train_router(
        data, emb.embed(prompts), emb.name, identity=emb.identity, repeats=1, stats_weight=STATS_WEIGHT
    )
    assert model.stats is not None
    model.save(tmp_path / "r.json")
    return tmp_path / "r.json"


def test_router_refuses_features_from_other_weights(tmp_path: Path) -> None:
    path = _fake_router(tmp_path)
    model = RouterModel.read(path)
    router = LearnedRouter(model, _FakeEmbedder())  # type: ignore[arg-type]
    assert router.score(["Compute 3 * 4 - 2 = ?"])[0] > router.score(["hello friend"])[0]
    with pytest.raises(RouterFileError, match="model file behind them changed"):
        LearnedRouter(model, _FakeEmbedder("weights-b"))  # type: ignore[arg-type]


def test_router_file_checks_its_sidecar_and_stats_version(tmp_path: Path) -> None:
    path = _fake_router(tmp_path)
    meta = json.loads(path.read_text())
    assert meta["features"]["stats"]["version"] == STATS_VERSION and meta["features"]["identity"] == "weights-a"
    meta["features"]["stats"]["version"] = "prompt-stats-0"
    path.write_text(json.dumps(meta))
    with pytest.raises(RouterFileError, match="prompt statistics"):
        RouterModel.read(path)
    sidecar_path(path).write_bytes(sidecar_path(path).read_bytes()[:-1] + b" ")
    with pytest.raises(RouterFileError, match="sha256"):
        RouterModel.read(path)
    sidecar_path(path).unlink()
    with pytest.raises(RouterFileError, match="arrays file"):
        RouterModel.read(path)


def test_router_reads_a_conversation_bounded(tmp_path: Path) -> None:
    model = RouterModel.read(_fake_router(tmp_path))
    router = LearnedRouter(model, _FakeEmbedder())  # type: ignore[arg-type]
    long_history = [("user", "hello friend " * 500), ("assistant", "hi " * 500)] * 20
    hard = [*long_history, ("user", "Compute 3 * 4 - 2 = ?")]
    easy = [*long_history, ("user", "hello friend")]
    assert router.score([hard])[0] > router.score([easy])[0]
    # A one-message conversation reads exactly as its prompt.
    assert router.decide([("user", "Compute 3 * 4 - 2 = ?")]) == router.decide("Compute 3 * 4 - 2 = ?")


def test_grouped_folds_keep_groups_whole() -> None:
    groups = np.array(["a", "b", "c", "d", "e", "f"] * 5)
    fold = fold_ids(len(groups), 3, seed=0, groups=groups)
    for g in set(groups):
        assert len(set(fold[groups == g])) == 1
    assert len(set(fold)) == 3
    few = fold_ids(30, 5, seed=0, groups=np.array(["a", "b"] * 15))  # fewer groups than folds: random folds
    assert len(set(few)) == 5


def test_learned_router_with_static_embedder(tmp_path: Path) -> None:
    embedder = StaticEmbedder.load()
    prompts = [f"Solve for x: {i} x + {i + 3} = {2 * i}" for i in range(30)]
    prompts += [f"Which city is the capital of country number {i}?" for i in range(30)]
    scores = np.array([[0.0, 1.0]] * 30 + [[1.0, 1.0]] * 30)
    data = LabelledSet(tuple(prompts), ("weak", "strong"), scores)
    model = train_router(data, embedder.embed(prompts), embedder.name, repeats=1, identity=embedder.identity)
    model.save(tmp_path / "r.json")
    router = LearnedRouter.load(tmp_path / "r.json")
    s = router.score(["Solve for x: 7 x + 1 = 3", "Which city is the capital of France?"])
    assert s[0] > s[1]
    assert router.route(["Solve for x: 7 x + 1 = 3"], threshold=0.0) == ["strong"]
    for text in ("Solve for x: 7 x + 1 = 3", "Which city is the capital of France?"):
        for threshold in (-1.0, 0.0, float(np.median(s)), 2.0):
            choice, score = router.decide(text, threshold)  # one pass: the same answers as route() and score()
            assert (choice, score) == (
                router.route([text], threshold)[0],
                pytest.approx(float(router.score([text])[0])),
            )


def test_combined_static_embedder_reads_smollm2() -> None:
    embedder = load_embedder(COMBINED_STATIC, max_tokens=64)
    e = embedder.embed(["What is the derivative of x^3?", "What is the derivative of x^4?", "Name a red fruit", ""])
    assert e.shape == (4, 384 + 576)
    np.testing.assert_allclose(np.linalg.norm(e[:3], axis=1), 1.0, atol=1e-5)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2])
    # Both halves carry signal: the SmolLM2 half alone also puts the two derivatives closest.
    smol = e[:, 384:] / np.linalg.norm(e[:, 384:], axis=1, keepdims=True).clip(1e-9)
    assert float(smol[0] @ smol[1]) > float(smol[0] @ smol[2])


def test_minilm_embedder_real_model() -> None:
    embedder = MiniLMEmbedder.load(max_tokens=32)
    texts = [f"Question {i}: what is the derivative of x^{i}?" for i in range(18)] + ["a " * 200, "hello"]
    e = embedder.embed(texts)
    assert e.shape == (20, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    assert float(e[0] @ e[1]) > float(e[0] @ e[19])
