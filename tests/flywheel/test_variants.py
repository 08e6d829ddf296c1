"""Variants and rollouts: the sticky choice, shadows, the canary rule, and all of it through the app."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from interlock.app import create_app
from interlock.cli.main import app as cli
from interlock.flywheel.rollout import Rollouts, decide
from interlock.routing.variants import VariantSet
from interlock.settings import ConfigError, RolloutSettings, VariantSettings, load_settings
from interlock.store.flywheel_queries import FeedbackRecord
from interlock.store.variant_queries import VariantStats
from tests.conftest import ADMIN_KEY, FAKE_CONFIG


def _set(*variants: VariantSettings) -> VariantSet:
    return VariantSet("chat", list(variants))


def test_choice_is_sticky_and_follows_the_weights() -> None:
    vs = _set(VariantSettings(name="base", model="a", weight=3), VariantSettings(name="new", model="b", weight=1))
    assert all(vs.choose("run-7") == vs.choose("run-7") for _ in range(20))  # one run, one variant
    picks = [vs.choose(f"key_{i}").name for i in range(4000)]
    assert 0.22 < picks.count("new") / len(picks) < 0.28  # a quarter of the keys
    vs.set_overrides({"new": 0, "ghost": 5})  # unknown names are ignored
    assert vs.weights() == {"base": 3, "new": 0}
    assert {vs.choose(f"key_{i}").name for i in range(200)} == {"base"}
    vs.set_overrides({"base": 0, "new": 0})
    assert vs.choose("x").name == "base"  # all at 0: the config's first serving variant


def test_shadows_answer_their_share_and_never_serve() -> None:
    vs = _set(
        VariantSettings(name="base", model="a"),
        VariantSettings(name="cand", model="b", shadow=True, shadow_share=0.5, weight=100),
    )
    assert {vs.choose(f"k{i}").name for i in range(200)} == {"base"}
    shadowed = sum(bool(vs.shadows(f"req_{i}")) for i in range(2000))
    assert 850 < shadowed < 1150
    assert vs.shadows("req_1") == vs.shadows("req_1")


def test_config_errors_name_what_to_fix(tmp_path: Path) -> None:
    def load(extra: str) -> None:
        path = tmp_path / "c.toml"
        path.write_text(FAKE_CONFIG + extra)
        load_settings(path, {"INTERLOCK_HOME": str(tmp_path)})

    with pytest.raises(ConfigError, match="not a model alias with a provider"):
        load('[models.chat]\nvariants = [{name = "a", model = "nope"}]\n')
    with pytest.raises(ConfigError, match="at least one variant must serve"):
        load('[models.chat]\nvariants = [{name = "a", model = "echo", shadow = true}]\n')
    with pytest.raises(ConfigError, match="is a embedding model"):
        load('[models.chat]\nvariants = [{name = "a", model = "vectors"}]\n')
    with pytest.raises(ConfigError, match=r"rollout\.canary"):
        load(
            '[models.chat]\nvariants = [{name = "a", model = "echo"}]\n'
            '[models.chat.rollout]\ncanary = "b"\nbaseline = "a"\n'
        )


RULE = RolloutSettings(canary="new", baseline="base", min_samples=100, max_error_increase=0.01)


def test_canary_rule_waits_then_rolls_back_a_worse_error_rate_and_promotes_an_equal_one() -> None:
    assert decide(RULE, VariantStats(99), VariantStats(1000)) is None  # too few requests
    worse = decide(RULE, VariantStats(400, errors=40), VariantStats(400, errors=2))
    assert worse is not None and worse.state == "rolled_back" and "10.00% vs 0.50%" in worse.reason
    equal = decide(RULE, VariantStats(400, errors=0), VariantStats(400, errors=0))
    assert equal is not None and equal.state == "promoted"
    unclear = decide(RULE, VariantStats(150, errors=3), VariantStats(150, errors=1))  # could be up to +4%
    assert unclear is None


def _metric(n: int, mean: float, spread: float) -> VariantStats:
    """n values alternating mean ± spread."""
    values = [mean + (spread if i % 2 else -spread) for i in range(n)]
    return VariantStats(n, 0, n, sum(values), sum(v * v for v in values))


def test_canary_rule_on_a_feedback_metric() -> None:
    rule = RULE.model_copy(update={"metric": "correct", "margin": 0.02})
    assert decide(rule, VariantStats(500), VariantStats(500)) is None  # no ratings yet
    worse = decide(rule, _metric(400, 0.70, 0.3), _metric(400, 0.90, 0.3))
    assert worse is not None and worse.state == "rolled_back" and "correct 0.7 vs 0.9" in worse.reason
    same = decide(rule, _metric(4000, 0.90, 0.3), _metric(4000, 0.90, 0.3))
    assert same is not None and same.state == "promoted"
    close = decide(rule, _metric(200, 0.89, 0.3), _metric(200, 0.90, 0.3))  # interval straddles -margin
    assert close is None


VARIANTS = """
[models.chat]
variants = [
  {name = "base", model = "echo", weight = 1},
  {name = "new", model = "echo-remote", weight = 0},
  {name = "cand", model = "echo-remote", shadow = true},
]

[models.chat.rollout]
canary = "new"
baseline = "base"
min_samples = 10

[models.broken]
provider = "fake"
fail = true
price_input_per_mtok = 1
price_output_per_mtok = 1

[models.chat2]
variants = [{name = "base", model = "echo"}, {name = "new", model = "broken"}]

[models.chat2.rollout]
canary = "new"
baseline = "base"
min_samples = 10
"""


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    config = tmp_path / "interlock.toml"
    config.write_text(FAKE_CONFIG + VARIANTS)
    monkeypatch.setenv("INTERLOCK_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))  # the command line's store is the app's
    settings = load_settings(config, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as c:
        c.config_path = config  # type: ignore[attr-defined]
        yield c


def _chat(client: TestClient, text: str = "hi", run: str | None = None) -> Any:
    headers = {"x-interlock-run-id": run} if run else {}
    return client.post(
        "/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": text}]}, headers=headers
    )


def _rows(client: TestClient) -> list[Any]:
    state = client.app.state.interlock  # type: ignore[attr-defined]
    client.portal.call(state.store.flush)  # type: ignore[union-attr]
    for _ in range(100):  # shadow answers finish in the background
        if not state.gateway.shadows.tasks:
            break
        time.sleep(0.02)
    client.portal.call(state.store.flush)  # type: ignore[union-attr]
    return list(client.portal.call(state.store.usage_rows))  # type: ignore[union-attr]


def test_variants_serve_by_weight_shadows_are_ledgered_and_weights_change_at_run_time(client: TestClient) -> None:
    r = _chat(client, "hello", run="run-1")
    assert r.status_code == 200, r.text
    assert r.headers["x-interlock-variant"] == "base" and r.headers["x-interlock-deployment"] == "echo"
    assert r.json()["model"] == "echo"  # the answer names the alias that served it, as a router alias does
    rows = _rows(client)
    served = [x for x in rows if x.endpoint == "chat"]
    shadows = [x for x in rows if x.endpoint == "shadow"]
    assert [(x.alias, x.variant, x.deployment) for x in served] == [("chat", "base", "echo")]
    assert [(x.alias, x.variant, x.deployment, x.status) for x in shadows] == [("chat", "cand", "echo-remote", 200)]
    assert shadows[0].run_id == "run-1" and shadows[0].cost_micros > 0  # the experiment's spend is spend

    models = client.get("/v1/models/chat").json()
    assert [(v["name"], v["weight"], v["shadow"]) for v in models["variants"]] == [
        ("base", 1.0, False), ("new", 0.0, False), ("cand", 0.0, True)
    ]  # fmt: skip

    bad = client.put("/admin/variants/chat", json={"weights": {"cand": 1}})
    assert bad.status_code == 400 and "not serving variants" in bad.json()["error"]["message"]
    assert client.put("/admin/variants/chat", json={"weights": {"base": 0}}).status_code == 400  # none left
    assert client.put("/admin/variants/echo", json={"weights": {"a": 1}}).status_code == 404
    ok = client.put("/admin/variants/chat", json={"weights": {"base": 0, "new": 1}})
    assert ok.status_code == 200 and ok.json()["weights"] == {"base": 0.0, "new": 1.0}
    r = _chat(client, run="run-1")
    assert r.headers["x-interlock-variant"] == "new" and r.headers["x-interlock-deployment"] == "echo-remote"
    listed = client.get("/admin/variants").json()["data"][0]
    assert listed["alias"] == "chat" and listed["rollout"]["state"] == "running"
    assert client.delete("/admin/variants/chat").json()["weights"] == {"base": 1.0, "new": 0.0}


def test_the_canary_is_promoted_once_its_numbers_hold_up(client: TestClient) -> None:
    state = client.app.state.interlock  # type: ignore[attr-defined]
    client.put("/admin/variants/chat", json={"weights": {"base": 1, "new": 1}})
    for i in range(60):
        assert _chat(client, run=f"r{i}").status_code == 200
    _rows(client)
    # The app runs this every refresh interval; here it is stepped by hand.
    controller = Rollouts(lambda: state.gateway.routes, state.store, state.audit.record)
    made = client.portal.call(controller.step)  # type: ignore[union-attr]
    assert [(alias, d.state) for alias, d in made] == [("chat", "promoted")]
    assert state.gateway.routes["chat"].variants.weights() == {"base": 0.0, "new": 2.0}
    assert client.portal.call(controller.step) == []  # type: ignore[union-attr]  # decided once
    assert client.post("/admin/variants/chat/rollback").status_code == 400  # decided already


def test_a_failing_canary_is_rolled_back_by_its_errors_and_feedback_is_joined(client: TestClient) -> None:
    state = client.app.state.interlock  # type: ignore[attr-defined]
    store = state.store
    for i in range(60):
        r = client.post(
            "/v1/chat/completions",
            json={"model": "chat2", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-interlock-run-id": f"r{i}"},
        )
        # the canary fails: 502 from the upstream, then 503 once its circuit breaker opens
        assert r.status_code in ((200,) if r.headers["x-interlock-variant"] == "base" else (502, 503)), r.text
    rows = [x for x in _rows(client) if x.alias == "chat2"]
    now = time.time()
    for x in rows:  # a rating on every request, joined to its variant by request id
        rating = FeedbackRecord("request", x.request_id, "", "correct", 1.0, "", "", now, "t")
        client.portal.call(store.insert_feedback, rating)  # type: ignore[union-attr]
    stats = client.portal.call(store.variant_stats, "chat2", 0.0, "correct")  # type: ignore[union-attr]
    assert sum(s.requests for s in stats.values()) == 60 and stats["base"].errors == 0
    assert stats["new"].errors == stats["new"].requests >= 10
    assert all(s.n == s.requests and s.total == s.requests for s in stats.values())

    controller = Rollouts(lambda: state.gateway.routes, store, state.audit.record)
    made = client.portal.call(controller.step)  # type: ignore[union-attr]
    assert [(alias, d.state) for alias, d in made] == [("chat2", "rolled_back")]
    assert "more than 1.00% worse" in made[0][1].reason
    assert state.gateway.routes["chat2"].variants.weights() == {"base": 1.0, "new": 0.0}
    assert client.post("/admin/variants/chat2/promote").status_code == 400  # decided already
    assert client.post("/admin/variants/chat/rollback").json()["state"] == "rolled_back"  # by hand


def test_reload_applies_new_models_and_refuses_a_bad_file(client: TestClient) -> None:
    path: Path = client.config_path  # type: ignore[attr-defined]
    engine_before = client.app.state.interlock.gateway.routes["echo"].deployments[0]  # type: ignore[attr-defined]
    path.write_text(
        FAKE_CONFIG + VARIANTS.replace("weight = 0}", "weight = 3}") + '\n[models.extra]\nprovider = "fake"\n'
    )
    r = client.post("/admin/reload")
    assert r.status_code == 200, r.text
    assert r.json()["added"] == ["extra"] and r.json()["changed"] == ["chat"]
    routes = client.app.state.interlock.gateway.routes  # type: ignore[attr-defined]
    assert routes["echo"].deployments[0] is engine_before  # unchanged deployments keep their provider
    assert routes["chat"].variants.weights() == {"base": 1.0, "new": 3.0}
    assert (
        client.post(
            "/v1/chat/completions", json={"model": "extra", "messages": [{"role": "user", "content": "x"}]}
        ).status_code
        == 200
    )
    scraped = client.get("/metrics").text  # the metrics follow the new table: its aliases and deployments
    assert 'interlock_requests_total{alias="extra",deployment="extra"' in scraped
    assert 'interlock_breaker_state{alias="extra",deployment="extra",state="closed"} 1.0' in scraped

    path.write_text(FAKE_CONFIG + "[models.broken]\nfallbacks = ['nope']\n")
    r = client.post("/admin/reload")
    assert r.status_code == 400 and r.json()["error"]["code"] == "config_invalid"
    assert "old one keeps serving" in r.json()["error"]["message"]
    assert _chat(client).status_code == 200  # still served by the previous config
    path.write_text("not toml [")
    assert client.post("/admin/reload").status_code == 400


def test_cli_sets_lists_and_decides(client: TestClient) -> None:
    runner, config = CliRunner(), str(client.config_path)  # type: ignore[attr-defined]
    out = runner.invoke(cli, ["variants", "set", "chat", "base=2", "new=1", "--config", config])
    assert out.exit_code == 0, out.output
    out = runner.invoke(cli, ["variants", "list", "--config", config])
    assert out.exit_code == 0, out.output
    listed = {v["alias"]: {x["name"]: x["weight"] for x in v["variants"]} for v in json.loads(out.output)}
    assert listed["chat"] == {"base": 2.0, "new": 1.0, "cand": 0.0}
    assert runner.invoke(cli, ["variants", "set", "chat", "base", "--config", config]).exit_code == 1
    out = runner.invoke(cli, ["variants", "promote", "chat2", "--config", config])
    assert out.exit_code == 0 and '"promoted"' in out.output
    assert runner.invoke(cli, ["variants", "promote", "chat2", "--config", config]).exit_code == 1  # decided
    state = client.app.state.interlock  # type: ignore[attr-defined]
    controller = Rollouts(lambda: state.gateway.routes, state.store, state.audit.record)
    client.portal.call(controller.refresh)  # type: ignore[union-attr]  # what the server does every interval
    assert state.gateway.routes["chat"].variants.weights() == {"base": 2.0, "new": 1.0}
    assert state.gateway.routes["chat2"].variants.weights() == {"base": 0.0, "new": 2.0}
