"""GET /metrics after real traffic: the values (not only the names), its auth, and bounded labels."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import Counter

from interlock.observability.metrics import OTHER, Metrics, Series
from interlock.plugins.hooks import Outcome
from interlock.settings import MetricsSettings
from interlock.store.records import UsageRecord
from interlock.types import Usage
from tests.conftest import free_port
from tests.observability.conftest import CHAT, AppFactory, scrape, value

STREAM = {**CHAT, "stream": True}


def _rows(client: object) -> list[UsageRecord]:
    store = client.app.state.interlock.store  # type: ignore[attr-defined]
    client.portal.call(store.flush)  # type: ignore[attr-defined]
    return client.portal.call(store.usage_rows)  # type: ignore[attr-defined,no-any-return]


def test_requests_tokens_cost_and_latency_after_traffic(make_app: AppFactory) -> None:
    client = make_app()
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert client.post("/v1/chat/completions", json=STREAM).status_code == 200
    assert client.post("/v1/chat/completions", json={**CHAT, "model": "no-such-model"}).status_code == 404
    assert client.post("/v1/embeddings", json={"model": "vectors", "input": "a b c"}).status_code == 200

    m = scrape(client)
    ok = {"alias": "echo", "deployment": "echo", "provider": "fake", "endpoint": "chat", "status": "200"}
    assert value(m, "interlock_requests_total", **ok) == 2
    assert value(m, "interlock_requests_total", alias="unknown", status="404") == 1
    assert value(m, "interlock_requests_total", alias="vectors", endpoint="embeddings", status="200") == 1
    rows = [r for r in _rows(client) if r.alias == "echo"]
    assert value(m, "interlock_tokens_total", alias="echo", type="input") == sum(r.prompt_tokens for r in rows) > 0
    assert value(m, "interlock_tokens_total", alias="echo", type="output") == sum(r.completion_tokens for r in rows)
    cost = value(m, "interlock_cost_usd_total", alias="echo")
    assert abs(cost - sum(r.cost_micros for r in rows) / 1e6) < 1e-12 and cost > 0
    assert value(m, "interlock_request_duration_seconds_count", alias="echo", endpoint="chat") == 2
    assert value(m, "interlock_time_to_first_token_seconds_count", alias="echo") == 1  # the stream only
    assert value(m, "interlock_breaker_state", deployment="echo", state="closed") == 1
    assert value(m, "interlock_deployment_outstanding", deployment="echo") == 0


def test_labels_hold_no_request_id_key_secret_or_key_name(make_app: AppFactory) -> None:
    client = make_app()
    created = client.post("/admin/keys", json={"name": "billing-app"}).json()
    r = client.post("/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {created['key']}"})
    assert r.status_code == 200
    labels = {v for (_, ls) in scrape(client) for _, v in ls}
    keys = {k for (_, ls) in scrape(client) for k, _ in ls}
    assert r.headers["x-request-id"] not in labels and not any(v.startswith("req_") for v in labels)
    assert not any(created["key"] in v for v in labels)
    assert "key" not in keys and "billing-app" not in labels


def test_key_names_only_when_configured(make_app: AppFactory) -> None:
    client = make_app("[metrics]\nkey_names = true\n")
    created = client.post("/admin/keys", json={"name": "billing-app"}).json()
    client.post("/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {created['key']}"})
    m = scrape(client)
    assert value(m, "interlock_requests_total", alias="echo", key="billing-app") == 1
    assert value(m, "interlock_cost_usd_total", alias="echo", key="billing-app") > 0


def test_metrics_needs_admin_read_only_admin_or_the_token(make_app: AppFactory) -> None:
    client = make_app('[metrics]\ntoken = "scrape-token-123"\n')
    plain = client.post("/admin/keys", json={"name": "app"}).json()["key"]
    reader = client.post("/admin/keys", json={"name": "reader", "role": "admin_read"}).json()["key"]

    anonymous = client.get("/metrics", headers={"authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"]
    wrong = client.get("/metrics", headers={"authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    refused = client.get("/metrics", headers={"authorization": f"Bearer {plain}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    assert scrape(client, authorization=f"Bearer {reader}")
    assert scrape(client, authorization="Bearer scrape-token-123")
    assert scrape(client)  # the admin key


def test_metrics_can_be_turned_off(make_app: AppFactory) -> None:
    client = make_app("[metrics]\nenabled = false\n")
    r = client.get("/metrics")
    assert r.status_code == 404 and r.json()["error"]["code"] == "metrics_disabled"
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_budget_remaining_rate_limits_and_cache(make_app: AppFactory) -> None:
    client = make_app("[models.cached]\nprovider = 'fake'\ncache_ttl_s = 60\nprice_input_per_mtok = 1\n")
    created = client.post("/admin/keys", json={"name": "budgeted"}).json()
    budget = {"scope": "key", "scope_id": created["id"], "period": "day", "limit_usd": "1"}
    assert client.put("/admin/budgets", json=budget).status_code == 200
    limit = {"scope": "model", "scope_id": "echo-remote", "rpm": 1}
    assert client.put("/admin/rate-limits", json=limit).status_code == 200
    key = {"authorization": f"Bearer {created['key']}"}
    assert client.post("/v1/chat/completions", json=CHAT, headers=key).status_code == 200
    remote = {**CHAT, "model": "echo-remote"}
    assert client.post("/v1/chat/completions", json=remote).status_code == 200
    assert client.post("/v1/chat/completions", json=remote).status_code == 429
    for _ in range(2):
        assert client.post("/v1/chat/completions", json={**CHAT, "model": "cached"}).status_code == 200

    m = scrape(client)
    spent = sum(r.cost_micros for r in _rows(client) if r.key_id == created["id"]) / 1e6
    budget_labels = {"scope": "key", "scope_id": created["id"], "period": "day"}
    assert spent > 0
    assert value(m, "interlock_budget_limit_usd", **budget_labels) == 1
    assert abs(value(m, "interlock_budget_spent_usd", **budget_labels) - spent) < 1e-9
    assert abs(value(m, "interlock_budget_remaining_usd", **budget_labels) - (1 - spent)) < 1e-9
    assert value(m, "interlock_rate_limited_total", code="rate_limit_exceeded") == 1
    assert value(m, "interlock_cache_lookups_total", alias="cached", result="miss") == 1
    assert value(m, "interlock_cache_lookups_total", alias="cached", result="hit") == 1
    assert value(m, "interlock_requests_total", alias="cached", provider="cache") == 1


def test_an_open_breaker_shows(make_app: AppFactory) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    routing = "[routing]\nbreaker_failures = 1\nretries = 0\n"
    client = make_app(routing + f"[models.dead]\nprovider = 'openai_compatible'\nbase_url = '{dead}'\n")
    assert client.post("/v1/chat/completions", json={**CHAT, "model": "dead"}).status_code == 503
    m = scrape(client)
    assert value(m, "interlock_breaker_state", deployment="dead", state="open") == 1
    assert value(m, "interlock_breaker_state", deployment="dead", state="closed") == 0
    assert value(m, "interlock_requests_total", alias="dead", status="503") == 1


def test_the_api_for_guardrails_and_agents(make_app: AppFactory) -> None:
    client = make_app()
    metrics: Metrics = client.app.state.interlock.observability.metrics  # type: ignore[attr-defined]
    metrics.verdict("guardrails", "input", "EMAIL_ADDRESS", "redact", 1)
    metrics.verdict("guardrails", "input", "EMAIL_ADDRESS", "redact", 1)
    metrics.agent_halt("kill_switch")
    m = scrape(client)
    assert (
        value(
            m,
            "interlock_guardrail_verdicts_total",
            guardrail="guardrails",
            direction="input",
            entity="EMAIL_ADDRESS",
            action="redact",
        )
        == 2
    )
    assert value(m, "interlock_agent_halts_total", reason="kill_switch") == 1
    assert value(m, "interlock_approvals_pending") == 0  # read from the store at each scrape


def test_series_past_the_limit_are_counted_as_other() -> None:
    from prometheus_client import CollectorRegistry

    series = Series(Counter("t", "t", ["a", "b"], registry=CollectorRegistry()), limit=2)
    for name in ("x", "y", "z", "w"):
        series.get(name, "1").inc()
    assert series.get(OTHER, OTHER)._value.get() == 2  # z and w
    assert series.get("x", "1")._value.get() == 1


@dataclass
class _Caller:
    key_id: str | None = None
    name: str = "admin"
    is_admin: bool = True
    team_id: str | None = None
    org_id: str | None = None


@dataclass
class _Route:
    alias: str
    deployments: list[object] = field(default_factory=list)


@dataclass
class _Ctx:
    """Just what `Metrics.record` reads; a router's pick is known by its route header."""

    alias: str
    route: _Route | None
    headers: dict[str, str] = field(default_factory=dict)
    request_id: str = "req_x"
    endpoint: str = "chat"
    principal: _Caller = field(default_factory=_Caller)
    stream: bool = False
    restricted: bool = False
    notes: dict[str, object] = field(default_factory=dict)
    deployment: None = None
    cache: str = ""
    tally: None = None


def test_router_decisions_by_chosen_model() -> None:
    metrics = Metrics(MetricsSettings(), {a: _Route(a) for a in ("auto", "small", "big")})  # type: ignore[misc]
    done = Outcome(200, Usage.of(1, 1), "provider", 0, deployment="small", provider="fake", attempts=1)
    for chosen in ("small", "small", "big"):
        ctx = _Ctx("auto", _Route(chosen), {"x-interlock-route": f"model={chosen}"})
        metrics.record(ctx, done)  # type: ignore[arg-type]
    metrics.record(_Ctx("small", _Route("small")), done)  # type: ignore[arg-type]  # no router: no decision
    samples = [s for f in metrics.registry.collect() for s in f.samples if s.name == "interlock_router_decisions_total"]
    assert {(s.labels["router"], s.labels["model"]): s.value for s in samples} == {
        ("auto", "small"): 2,
        ("auto", "big"): 1,
    }
