"""Budgets hold when the upstream bills everything it is sent (issue: tool-call arguments were not reserved).

The `stub-bill` upstream charges one token per byte of every string in the request and exactly the
`max_tokens` asked for, as a real model may; the gateway must never let such traffic past a budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import load_settings
from tests.conftest import ADMIN_KEY

CONFIG = """
[store]
flush_interval_ms = 5

[models.billed]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub-bill"
price_input_per_mtok = 10
price_output_per_mtok = 20
"""
BUDGET_MICROS = 500_000  # $0.50


@pytest.fixture
def app(tmp_path: Path, stub_upstream: str) -> Iterator[TestClient]:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(stub=stub_upstream))
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


def _agent_turn(arguments_bytes: int, stream: bool) -> dict[str, object]:
    """An agent's request: its history holds a tool call with large arguments (a file, a table)."""
    args = '{"content": "' + "x" * arguments_bytes + '"}'
    return {
        "model": "billed",
        "max_tokens": 64,
        "stream": stream,
        "messages": [
            {"role": "user", "content": "save the report"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "write_file", "arguments": args}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "saved"},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": {"type": "object", "description": "y" * 2000}},
        },
    }


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_heavy_traffic_cannot_overspend_a_budget(app: TestClient, stream: bool) -> None:
    created = app.post("/admin/keys", json={"name": "agent"}).json()
    budget = {"scope": "key", "scope_id": created["id"], "period": "total", "limit_usd": "0.5"}
    assert app.put("/admin/budgets", json=budget).status_code == 200
    headers = {"authorization": f"Bearer {created['key']}"}
    statuses = []
    for _ in range(60):  # each turn bills about $0.02: the budget runs out well before 60
        r = app.post("/v1/chat/completions", json=_agent_turn(20_000, stream), headers=headers)
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "budget_exceeded"
            break
    assert 200 in statuses and statuses[-1] == 429
    state = app.app.state.interlock  # type: ignore[attr-defined]
    app.portal.call(state.store.flush)  # type: ignore[union-attr]
    rows = app.portal.call(state.store.usage_rows)  # type: ignore[union-attr]
    billed = [row for row in rows if row.status == 200]
    assert billed and all(row.usage_source == "provider" for row in billed)
    assert all(row.prompt_tokens > 20_000 for row in billed)  # the stub billed the arguments
    assert sum(row.cost_micros for row in rows) <= BUDGET_MICROS
    listed = app.get("/admin/budgets").json()["data"][0]
    assert listed["spent_micros"] <= BUDGET_MICROS and listed["reserved_micros"] == 0


def test_a_lowered_max_tokens_is_announced(app: TestClient) -> None:
    created = app.post("/admin/keys", json={"name": "tight"}).json()
    # Enough for the prompt and a few output tokens, not for the 64 asked.
    budget = {"scope": "key", "scope_id": created["id"], "period": "total", "limit_usd": "0.0012"}
    assert app.put("/admin/budgets", json=budget).status_code == 200
    body = {"model": "billed", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    r = app.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {created['key']}"})
    assert r.status_code == 200, r.text
    granted, requested = r.headers["x-interlock-max-tokens"].split("; ")
    assert requested == "requested=64" and 1 <= int(granted) < 64
    assert r.json()["usage"]["completion_tokens"] == int(granted)  # the stub honoured the lowered limit
