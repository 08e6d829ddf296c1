"""GET /v1/usage: a key's own requests, tokens and cost per model, and every budget that applies to it."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.testclient import TestClient

from interlock.store.records import UsageRecord

Ledger = Callable[[], list[UsageRecord]]


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _key(client: TestClient, **body: object) -> tuple[str, str]:
    r = client.post("/admin/keys", json={"name": "app", **body})
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), str(r.json()["key"])


def _chat(client: TestClient, token: str, model: str = "echo", words: int = 3) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": " ".join(["word"] * words)}]}
    return client.post("/v1/chat/completions", json=body, headers=_auth(token)).status_code


def _usage(client: TestClient, token: str, **params: object) -> dict:  # type: ignore[type-arg]
    r = client.get("/v1/usage", params=params, headers=_auth(token))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_key_sees_its_own_requests_per_model_and_no_one_elses(client: TestClient, ledger: Ledger) -> None:
    mine, token = _key(client)
    _, other = _key(client)
    assert [_chat(client, token), _chat(client, token, words=40), _chat(client, token, "echo-remote")] == [200] * 3
    assert _chat(client, token, "nope") == 404
    assert _chat(client, other) == 200 and _chat(client, client.headers["authorization"][7:]) == 200

    usage = _usage(client, token)
    rows = [r for r in ledger() if r.key_id == mine]
    assert usage["object"] == "usage" and usage["key_id"] == mine and usage["since"] is None
    assert usage["requests"] == 4 and usage["errors"] == 1
    assert usage["prompt_tokens"] == sum(r.prompt_tokens for r in rows) > 0
    assert usage["completion_tokens"] == sum(r.completion_tokens for r in rows) > 0
    assert usage["cost_micros"] == sum(r.cost_micros for r in rows) > 0
    assert usage["cost_usd"] == round(usage["cost_micros"] / 1e6, 6)
    by_model = {m["model"]: m for m in usage["models"]}
    assert set(by_model) == {"echo", "echo-remote", "nope"}
    assert by_model["echo"]["requests"] == 2 and by_model["nope"] == {
        "model": "nope",
        "requests": 1,
        "errors": 1,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_micros": 0,
        "cost_usd": 0.0,
    }
    echo = [r for r in rows if r.alias == "echo"]
    assert by_model["echo"]["cost_micros"] == sum(r.cost_micros for r in echo)
    costs = [m["cost_micros"] for m in usage["models"]]
    assert costs == sorted(costs, reverse=True)  # the most expensive first
    assert usage["budgets"] == []


def test_since_counts_only_later_requests(client: TestClient) -> None:
    _, token = _key(client)
    assert _chat(client, token) == 200
    assert _usage(client, token, since=0)["requests"] == 1
    later = _usage(client, token, since=time.time() + 3600)
    assert later["requests"] == 0 and later["cost_micros"] == 0 and later["models"] == []
    assert later["since"] > time.time()


def test_the_admin_key_sees_the_admin_keys_requests(client: TestClient) -> None:
    _, token = _key(client)
    assert _chat(client, token) == 200 and _chat(client, token) == 200
    admin_chat = {"model": "echo", "messages": [{"role": "user", "content": "a"}]}
    assert client.post("/v1/chat/completions", json=admin_chat).status_code == 200
    usage = client.get("/v1/usage").json()  # the client authenticates as admin
    assert usage["key_id"] is None and usage["requests"] == 1 and usage["budgets"] == []


def test_every_budget_that_applies_is_listed_with_what_is_left(client: TestClient, ledger: Ledger) -> None:
    org = client.post("/admin/orgs", json={"name": "acme"}).json()["id"]
    team = client.post("/admin/teams", json={"org_id": org, "name": "search"}).json()["id"]
    other_team = client.post("/admin/teams", json={"org_id": org, "name": "ads"}).json()["id"]
    key_id, token = _key(client, team_id=team)
    budgets = [
        ("key", key_id, "day", "1.5"),
        ("team", team, "month", "10"),
        ("org", org, "total", "100"),
        ("team", other_team, "day", "1"),  # not this key's
    ]
    for scope, ident, period, usd in budgets:
        r = client.put("/admin/budgets", json={"scope": scope, "scope_id": ident, "period": period, "limit_usd": usd})
        assert r.status_code == 200, r.text
    assert _chat(client, token, words=50) == 200
    spent = sum(r.cost_micros for r in ledger() if r.key_id == key_id)
    assert spent > 0

    listed = {(b["scope"], b["period"]): b for b in _usage(client, token)["budgets"]}
    assert set(listed) == {("key", "day"), ("team", "month"), ("org", "total")}
    day = listed[("key", "day")]
    assert day["scope_id"] == key_id and day["limit_micros"] == 1_500_000 and day["limit_usd"] == 1.5
    assert day["spent_micros"] == spent and day["reserved_micros"] == 0
    assert day["remaining_micros"] == 1_500_000 - spent and day["remaining_usd"] == round((1_500_000 - spent) / 1e6, 6)
    assert day["resets_at"] > time.time() and day["resets_at"] % 86400 == 0
    assert listed[("team", "month")]["remaining_micros"] == 10_000_000 - spent
    assert listed[("org", "total")]["resets_at"] is None


def test_refusals(client: TestClient) -> None:
    key_id, token = _key(client)
    for bad in ("yesterday", "-1", "nan", "inf"):
        r = client.get("/v1/usage", params={"since": bad}, headers=_auth(token))
        assert r.status_code == 400 and r.json()["error"]["param"] == "since", (bad, r.text)
    assert client.get("/v1/usage", headers={"authorization": ""}).status_code == 401
    assert client.post(f"/admin/keys/{key_id}/revoke").status_code == 200
    assert client.get("/v1/usage", headers=_auth(token)).status_code == 401
