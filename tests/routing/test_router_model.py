"""Classifiers, training, the router file and model choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from interlock.routing.router.data import LabelledSet
from interlock.routing.router.features import MiniLMEmbedder, StaticEmbedder
from interlock.routing.router.metrics import routing_curve
from interlock.routing.router.model import LearnedRouter, RouterFileError, RouterModel
from interlock.routing.router.train import order_models, train_router


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
    model = train_router(data.subset(range(300)), x[:300], "test", cheap="cheap", strong="strong", repeats=1)
    assert model.models == ("cheap", "mid", "strong")
    held = data.complete_for(["cheap", "strong"]).scores[300:]
    assert routing_curve(model.scores(x[300:]), held[:, 0], held[:, 1]).apgr() > 0.65
    path = tmp_path / "router.json"
    model.save(path)
    assert path.read_text().startswith("{")
    again = RouterModel.read(path)
    np.testing.assert_allclose(again.scores(x[300:]), model.scores(x[300:]), atol=1e-5)
    assert again.training["chosen"] == model.training["chosen"]
    # Half the (out-of-fold) training prompts sit above the default threshold.
    assert again.threshold == pytest.approx(again.threshold_for_share(0.5))
    assert again.threshold_for_share(0.2) > again.threshold_for_share(0.8)
    q = np.array([[0.2, 0.5, 0.9], [0.85, 0.9, 0.9], [0.2, 0.85, 0.9]])
    assert again.choose(q, 0.1) == ["strong", "cheap", "mid"]
    assert again.choose(q, -np.inf) == ["strong"] * 3


def test_bad_router_file(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"format": "interlock-router", "version": 99}')
    with pytest.raises(RouterFileError, match="version"):
        RouterModel.read(path)


def test_learned_router_with_static_embedder(tmp_path: Path) -> None:
    embedder = StaticEmbedder.load()
    prompts = [f"Solve for x: {i} x + {i + 3} = {2 * i}" for i in range(30)]
    prompts += [f"Which city is the capital of country number {i}?" for i in range(30)]
    scores = np.array([[0.0, 1.0]] * 30 + [[1.0, 1.0]] * 30)
    data = LabelledSet(tuple(prompts), ("weak", "strong"), scores)
    model = train_router(data, embedder.embed(prompts), embedder.name, repeats=1)
    model.save(tmp_path / "r.json")
    router = LearnedRouter.load(tmp_path / "r.json")
    s = router.score(["Solve for x: 7 x + 1 = 3", "Which city is the capital of France?"])
    assert s[0] > s[1]
    assert router.route(["Solve for x: 7 x + 1 = 3"], threshold=0.0) == ["strong"]


def test_minilm_embedder_real_model() -> None:
    embedder = MiniLMEmbedder.load(max_tokens=32)
    texts = [f"Question {i}: what is the derivative of x^{i}?" for i in range(18)] + ["a " * 200, "hello"]
    e = embedder.embed(texts)
    assert e.shape == (20, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    assert float(e[0] @ e[1]) > float(e[0] @ e[19])
