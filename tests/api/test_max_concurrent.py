"""A cap on requests in flight per key (or team, or model alias), shared through the counters, with 429."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.governance.counters import LocalCounters
from interlock.settings import load_settings
from tests.conftest import ADMIN_KEY

CONFIG = """
[models.slow]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub-slow"
price_input_per_mtok = 1
price_output_per_mtok = 1
"""


@pytest.mark.slow
def test_a_third_request_in_flight_is_refused_until_one_finishes(tmp_path: Path, stub_upstream: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(stub=stub_upstream))
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as app:
        created = app.post("/admin/keys", json={"name": "agent"}).json()
        limit = {"scope": "key", "scope_id": created["id"], "max_concurrent": 2}
        assert app.put("/admin/rate-limits", json=limit).status_code == 200
        assert app.get("/admin/rate-limits").json()["data"][0]["max_concurrent"] == 2
        headers = {"authorization": f"Bearer {created['key']}"}
        body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        with app.stream("POST", "/v1/chat/completions", json=body, headers=headers) as one:
            with app.stream("POST", "/v1/chat/completions", json=body, headers=headers) as two:
                assert one.status_code == two.status_code == 200
                third = app.post("/v1/chat/completions", json={**body, "stream": False}, headers=headers)
                assert third.status_code == 429
                assert third.json()["error"]["code"] == "concurrency_limit_exceeded"
                assert third.headers["retry-after"] == "1"
                two.read()
            one.read()
        deadline = time.monotonic() + 10
        while (r := app.post("/v1/chat/completions", json=body, headers=headers)).status_code == 429:
            assert time.monotonic() < deadline, "the slots were never given back"
            time.sleep(0.05)
        assert r.status_code == 200


@pytest.mark.parametrize("ttl", [60])
async def test_a_slot_held_by_a_dead_replica_expires(ttl: int) -> None:
    counters = LocalCounters()
    assert await counters.acquire("key:k", 1, "r1", ttl, now=100.0) == 1
    assert await counters.acquire("key:k", 1, "r2", ttl, now=101.0) is None
    assert await counters.acquire("key:k", 1, "r2", ttl, now=100.0 + ttl) == 1  # r1 never released: expired
