"""PGR, APGR and CPT against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from interlock.routing.router.metrics import Summary, bootstrap, random_summary, routing_curve


def _outcomes(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weak = (rng.random(n) < 0.6).astype(float)
    strong = np.maximum(weak, (rng.random(n) < 0.5).astype(float))
    strong[rng.random(n) < 0.05] = 0.0
    return weak, strong


def test_hand_computed_curve() -> None:
    # Four prompts: only prompt 0 gains from the strong model; prompt 3 loses.
    weak = np.array([0.0, 1.0, 1.0, 1.0])
    strong = np.array([1.0, 1.0, 1.0, 0.0])
    curve = routing_curve([0.9, 0.5, 0.4, 0.1], weak, strong)
    assert curve.weak_quality == 0.75
    assert curve.strong_quality == 0.75
    curve = routing_curve([0.9, 0.5, 0.4, 0.1], weak, np.array([1.0, 1.0, 1.0, 1.0]))
    # q: 0.75 -> 1.0 after the first prompt, flat after; PGR = 1 from share 0.25 on.
    np.testing.assert_allclose(curve.pgr, [0, 1, 1, 1, 1])
    assert curve.apgr() == pytest.approx(1 - 0.25 / 2)
    assert curve.share_for_pgr(0.5) == pytest.approx(0.125)
    assert curve.share_for_pgr(1.0) == pytest.approx(0.25)


def test_ties_are_routed_as_if_random() -> None:
    weak = np.array([0.0, 1.0])
    strong = np.array([1.0, 1.0])
    curve = routing_curve([0.5, 0.5], weak, strong)
    np.testing.assert_allclose(curve.share, [0, 1])
    assert curve.apgr() == pytest.approx(0.5)


def test_oracle_router() -> None:
    weak, strong = _outcomes()
    summary = Summary.of(routing_curve(strong - weak, weak, strong))
    fixable = float(np.mean((strong == 1) & (weak == 0)))
    gap = strong.mean() - weak.mean()
    assert summary.apgr > 0.9
    # PGR reaches 1 after the fixable prompts; it crosses 0.5 at half the gap's worth of them.
    assert summary.cpt50 == pytest.approx(0.5 * gap, abs=1e-9)
    assert summary.cpt50 <= fixable


def test_random_and_reversed_router() -> None:
    weak, strong = _outcomes()
    rng = np.random.default_rng(1)
    apgrs = [routing_curve(rng.random(len(weak)), weak, strong).apgr() for _ in range(20)]
    assert np.mean(apgrs) == pytest.approx(0.5, abs=0.03)
    assert routing_curve(weak - strong, weak, strong).apgr() < 0.5
    rand = random_summary(weak, strong)
    assert rand.apgr == pytest.approx(0.5)
    assert rand.cpt50 == pytest.approx(0.5)
    assert rand.cpt80 == pytest.approx(0.8)


def test_bootstrap_interval_contains_point() -> None:
    weak, strong = _outcomes(500)
    scores = strong - weak + np.random.default_rng(2).normal(0, 0.8, len(weak))
    ci = bootstrap(scores, weak, strong, resamples=200)
    for interval in ci.values():
        assert interval.low <= interval.value <= interval.high
    assert 0.5 < ci["apgr"].value < 1.0
