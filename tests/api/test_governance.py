"""Budgets, rate limits, the hierarchy and the savings report through the admin and chat APIs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import load_settings
from tests.conftest import ADMIN_KEY

CONFIG = """
[plugins]
modules = ["interlock.testing.fake"]  # the fake provider is not a production entry point

[store]
flush_interval_ms = 5

[governance]
refresh_s = 0.2
output_cap = 50

[models.echo]
provider = "fake"
price_input_per_mtok = 1000
price_output_per_mtok = 2000

[models.vectors]
provider = "fake"
mode = "embedding"
price_input_per_mtok = 0.02
"""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TestClient]:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


def _team_key(app: TestClient) -> tuple[str, str, str]:
    org = app.post("/admin/orgs", json={"name": "acme"}).json()["id"]
    team = app.post("/admin/teams", json={"org_id": org, "name": "search"}).json()["id"]
    key = app.post("/admin/keys", json={"name": "svc", "team_id": team}).json()["key"]
    return org, team, key


def _chat(app: TestClient, key: str, words: int = 3, stream: bool = False, max_tokens: int | None = None) -> object:
    body: dict[str, object] = {"model": "echo", "messages": [{"role": "user", "content": " ".join(["w"] * words)}]}
    if stream:
        body["stream"] = True
    if max_tokens:
        body["max_tokens"] = max_tokens
    return app.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})


def test_hierarchy_validation(app: TestClient) -> None:
    assert app.post("/admin/teams", json={"org_id": "org_nope", "name": "x"}).status_code == 404
    org = app.post("/admin/orgs", json={"name": "acme"}).json()["id"]
    assert app.post("/admin/orgs", json={"name": "acme"}).status_code == 400
    assert app.post("/admin/keys", json={"name": "k", "team_id": "team_nope"}).status_code == 400
    assert (
        app.put(
            "/admin/budgets", json={"scope": "team", "scope_id": "nope", "period": "day", "limit_usd": 1}
        ).status_code
        == 404
    )
    assert app.get("/admin/orgs").json()["data"][0]["id"] == org


def test_team_budget_is_a_hard_limit(app: TestClient) -> None:
    org, team, key = _team_key(app)
    # $0.10 a day for the team; each request costs about $0.01-0.02 at these prices.
    r = app.put("/admin/budgets", json={"scope": "team", "scope_id": team, "period": "day", "limit_usd": "0.1"})
    assert r.status_code == 200 and r.json()["limit_micros"] == 100_000
    statuses = [_chat(app, key).status_code for _ in range(40)]  # type: ignore[attr-defined]
    assert 200 in statuses and statuses[-1] == 429
    denied = _chat(app, key)
    err = denied.json()["error"]  # type: ignore[attr-defined]
    assert err["code"] == "budget_exceeded" and err["type"] == "insufficient_quota" and team in err["message"]
    assert int(denied.headers["retry-after"]) > 0  # type: ignore[attr-defined]
    budgets = app.get("/admin/budgets").json()["data"]
    assert budgets[0]["spent_micros"] <= 100_000 and budgets[0]["reserved_micros"] == 0
    spend = app.get("/admin/spend?group=team").json()
    row = next(r for r in spend["data"] if r["group"] == team)
    assert row["cost_micros"] <= 100_000 and row["extra"]["name"] == "search"
    by_org = app.get("/admin/spend?group=org").json()["data"]
    assert by_org[0]["group"] == org and by_org[0]["cost_micros"] == row["cost_micros"]


def test_budget_lowers_max_tokens_to_what_is_affordable(app: TestClient) -> None:
    _, team, key = _team_key(app)
    # The prompt bound (the messages as JSON, 102 bytes, + 24 overhead = 126 tokens, $0.126) fits, plus 12
    # output tokens; not the default cap.
    app.put("/admin/budgets", json={"scope": "team", "scope_id": team, "period": "total", "limit_usd": "0.15"})
    r = _chat(app, key, words=30)
    assert r.status_code == 200  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["choices"][0]["finish_reason"] == "length"
    spent = app.get("/admin/budgets").json()["data"][0]["spent_micros"]
    assert 0 < spent <= 150_000
    assert r.headers["x-interlock-max-tokens"] == "12; requested=none"  # type: ignore[attr-defined]


def test_key_budget_on_streams(app: TestClient) -> None:
    key_id_key = app.post("/admin/keys", json={"name": "streamer"}).json()
    app.put(
        "/admin/budgets", json={"scope": "key", "scope_id": key_id_key["id"], "period": "month", "limit_usd": "0.05"}
    )
    for _ in range(30):
        r = _chat(app, key_id_key["key"], stream=True)
        if r.status_code == 429:  # type: ignore[attr-defined]
            break
        events = [e for e in r.text.split("\n") if e.startswith("data: ")]  # type: ignore[attr-defined]
        assert events[-1] == "data: [DONE]" or "error" in orjson.loads(events[-1][6:])
    else:
        raise AssertionError("the budget never ran out")
    assert app.get("/admin/budgets").json()["data"][0]["spent_micros"] <= 50_000


def test_rate_limit_rpm_with_headers(app: TestClient) -> None:
    created = app.post("/admin/keys", json={"name": "limited"}).json()
    r = app.put("/admin/rate-limits", json={"scope": "key", "scope_id": created["id"], "rpm": 3})
    assert r.status_code == 200
    ok = [_chat(app, created["key"]) for _ in range(3)]
    assert all(x.status_code == 200 for x in ok)  # type: ignore[attr-defined]
    assert ok[-1].headers["x-ratelimit-limit-requests"] == "3"  # type: ignore[attr-defined]
    assert ok[-1].headers["x-ratelimit-remaining-requests"] == "0"  # type: ignore[attr-defined]
    denied = _chat(app, created["key"])
    assert denied.status_code == 429  # type: ignore[attr-defined]
    assert denied.json()["error"]["code"] == "rate_limit_exceeded"  # type: ignore[attr-defined]
    assert int(denied.headers["retry-after"]) >= 1 and "x-ratelimit-reset-requests" in denied.headers  # type: ignore[attr-defined]
    assert app.delete(f"/admin/rate-limits?scope=key&scope_id={created['id']}").status_code == 200
    assert _chat(app, created["key"]).status_code == 200  # type: ignore[attr-defined]


def test_model_tpm_limit_counts_tokens(app: TestClient) -> None:
    app.put("/admin/rate-limits", json={"scope": "model", "scope_id": "echo", "tpm": 200})
    key = app.post("/admin/keys", json={"name": "k"}).json()["key"]
    first = _chat(app, key, max_tokens=20)
    assert first.status_code == 200  # type: ignore[attr-defined]
    too_big = _chat(app, key, words=400, max_tokens=20)
    assert too_big.status_code == 429 and "alone needs" in too_big.json()["error"]["message"]  # type: ignore[attr-defined]


def test_savings_line(app: TestClient) -> None:
    key = app.post("/admin/keys", json={"name": "k"}).json()["key"]
    _chat(app, key)
    summary = app.get("/admin/spend?group=model").json()["summary"]
    assert summary["reference_model"] == "gpt-4o" and summary["reference_cost_micros"] > 0
    assert "would have cost" in summary["text"]


def test_spend_by_endpoint_and_filtered_to_endpoints(app: TestClient) -> None:
    key = app.post("/admin/keys", json={"name": "k"}).json()["key"]
    _chat(app, key)
    _chat(app, key)
    vectors = {"model": "vectors", "input": "a few words"}
    assert app.post("/v1/embeddings", json=vectors, headers={"authorization": f"Bearer {key}"}).status_code == 200
    by_endpoint = {r["group"]: r["requests"] for r in app.get("/admin/spend?group=endpoint").json()["data"]}
    assert by_endpoint == {"chat": 2, "embeddings": 1}
    chat_only = app.get("/admin/spend?group=model&endpoint=chat").json()["data"]
    assert [(r["group"], r["requests"]) for r in chat_only] == [("echo", 2)]
    both = app.get("/admin/spend?group=model&endpoint=chat,embeddings").json()["data"]
    assert {r["group"] for r in both} == {"echo", "vectors"}
    assert app.get("/admin/spend?group=model&endpoint=mcp").json()["data"] == []
    typo = app.get("/admin/spend", params={"endpoint": "chat,message"})
    assert typo.status_code == 400 and "unknown endpoint message" in typo.json()["error"]["message"]
    for hostile in ("chat;drop", ",".join(["chat"] * 60), "chat,", "ch\u00e4t"):
        bad = app.get("/admin/spend", params={"endpoint": hostile})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "endpoint", hostile[:20]


def test_deletes_need_a_whole_reference(app: TestClient) -> None:
    for path in ("/admin/budgets?scope=team&scope_id=x", "/admin/budgets?scope=nope&scope_id=x&period=day"):
        r = app.delete(path)
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", path
    assert app.delete("/admin/budgets?scope=team&scope_id=x&period=day").json()["error"]["code"] == "budget_not_found"
    assert app.delete("/admin/rate-limits?scope=model").status_code == 400
    assert app.delete("/admin/rate-limits?scope=model&scope_id=echo").status_code == 404


def test_a_budgeted_key_may_use_a_free_model(tmp_path: Path) -> None:
    """A zero-price model (the embedded one by default) costs nothing: a budget has nothing to reserve."""
    cfg = tmp_path / "free.toml"
    cfg.write_text(CONFIG + '\n[models.free]\nprovider = "fake"\nprice_input_per_mtok = 0\nprice_output_per_mtok = 0\n')
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as app:
        _, team, key = _team_key(app)
        budget = {"scope": "team", "scope_id": team, "period": "day", "limit_usd": "25"}
        assert app.put("/admin/budgets", json=budget).status_code == 200
        body = {"model": "free", "messages": [{"role": "user", "content": "hi"}]}
        r = app.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
