"""Three replicas on one PostgreSQL and one Redis: a shared budget and a shared TPM limit hold.

64 concurrent streaming clients spread over three `interlock serve` processes. Half spend from one
team budget; the other half call a model with one tokens-per-minute limit. Checked afterwards:
spend stays within the budget, accepted tokens within the limit (not three times it), and every
response the clients saw has exactly one ledger row.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import ADMIN_KEY, REDIS
from tests.e2e.conftest import Server, start_server

pytestmark = pytest.mark.subprocess

POSTGRES = os.environ.get("INTERLOCK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BUDGET_USD = "1.0"  # each request costs 12 x $1000/M + 6 x $1000/M = $0.018
TPM = 600  # each request uses 18 tokens
CLIENTS = 64
DURATION_S = 12.0


@pytest.fixture
def schema() -> Iterator[str]:
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(POSTGRES, autocommit=True) as conn:  # an unreachable server fails the test
        conn.execute(f"CREATE SCHEMA {name}")
    yield name
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def _config(stub: str, schema: str, audit_dir: Path) -> str:
    return f"""
[store]
url = "{POSTGRES}?options=-csearch_path%3D{schema}"
flush_interval_ms = 20
key_refresh_interval_s = 0.5

[audit]
dir = "{audit_dir}"

[governance]
redis_url = "{REDIS}"
redis_prefix = "{schema}:"
refresh_s = 0.5
output_cap = 64

[models.remote]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub"
price_input_per_mtok = 1000
price_output_per_mtok = 1000

[models.remote-tpm]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub"
price_input_per_mtok = 0
price_output_per_mtok = 0
"""


@pytest.fixture
def replicas(stub_upstream: str, schema: str, tmp_path: Path) -> Iterator[list[Server]]:
    config = _config(stub_upstream, schema, tmp_path / "shared-audit")
    servers = [start_server(tmp_path, config, i) for i in range(3)]
    yield servers
    for s in servers:
        s.proc.terminate()
    for s in servers:
        s.proc.wait(20)


async def _client(urls: list[str], index: int, key: str, model: str, deadline: float, seen: dict[str, int]) -> None:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(timeout=30) as http:
        for n in range(200):  # bounded in count as well as time
            if time.monotonic() > deadline:
                return
            url = urls[(index + n) % len(urls)]
            async with http.stream(
                "POST", f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
            ) as r:
                text = (await r.aread()).decode()
            seen[r.headers["x-request-id"]] = r.status_code if "data: [DONE]" in text or r.status_code != 200 else 599
            if r.status_code == 429:
                await asyncio.sleep(0.05)


def test_shared_budget_and_tpm_hold_across_three_replicas(replicas: list[Server], schema: str) -> None:
    admin = httpx.Client(base_url=replicas[0].url, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    org = admin.post("/admin/orgs", json={"name": "acme"}).json()["id"]
    team = admin.post("/admin/teams", json={"org_id": org, "name": "agents"}).json()["id"]
    budget_key = admin.post("/admin/keys", json={"name": "spender", "team_id": team}).json()["key"]
    tpm_key = admin.post("/admin/keys", json={"name": "chatty"}).json()["key"]
    assert (
        admin.put(
            "/admin/budgets", json={"scope": "team", "scope_id": team, "period": "total", "limit_usd": BUDGET_USD}
        ).status_code
        == 200
    )
    assert (
        admin.put("/admin/rate-limits", json={"scope": "model", "scope_id": "remote-tpm", "tpm": TPM}).status_code
        == 200
    )
    admin.close()
    time.sleep(1.0)  # every replica re-reads keys and rules within 0.5 s

    urls = [s.url for s in replicas]
    seen: dict[str, int] = {}
    deadline = time.monotonic() + DURATION_S

    plans = [(budget_key, "remote") if i % 2 == 0 else (tpm_key, "remote-tpm") for i in range(CLIENTS)]

    async def run() -> None:
        await asyncio.gather(*(_client(urls, i, key, model, deadline, seen) for i, (key, model) in enumerate(plans)))

    asyncio.run(run())
    for s in replicas:  # graceful stop: every replica flushes its ledger
        s.proc.terminate()
    for s in replicas:
        assert s.proc.wait(20) in (0, -15)  # uvicorn re-raises SIGTERM after its graceful shutdown

    with psycopg.connect(POSTGRES, options=f"-csearch_path={schema}") as conn:
        rows = conn.execute(
            "SELECT request_id, alias, status, prompt_tokens + completion_tokens, cost_micros, team_id FROM usage"
        ).fetchall()
    by_id = {r[0]: r for r in rows}
    # Exactly one ledger row per response any client saw, and no other rows.
    assert len(rows) == len(by_id) == len(seen)
    assert set(by_id) == set(seen)
    assert all(by_id[rid][2] == status for rid, status in seen.items() if status != 599)
    budget_rows = [r for r in rows if r[1] == "remote"]
    spent = sum(r[4] for r in budget_rows)
    assert spent <= 1_000_000, f"spent {spent} micro-dollars of a 1,000,000 budget"
    assert sum(1 for r in budget_rows if r[2] == 429) > 0, "the budget never ran out; the test proves nothing"
    assert spent >= 1_000_000 - 90_000 * 3, "the budget was under-used: reservations leaked"
    tpm_rows = [r for r in rows if r[1] == "remote-tpm"]
    accepted = sum(r[3] for r in tpm_rows if r[2] == 200)
    assert sum(1 for r in tpm_rows if r[2] == 429) > 0
    # One shared window: at most the limit (with 10% for the sliding-window estimate at a minute
    # boundary), where per-replica limits would have let through up to three times as much.
    assert accepted <= TPM * 1.1, f"{accepted} tokens accepted under a {TPM} TPM limit"
    print(f"replicas: {len(rows)} rows; budget spent {spent}/1000000 micro-dollars; {accepted}/{TPM} tokens accepted")
