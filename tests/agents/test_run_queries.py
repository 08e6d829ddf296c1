"""The ledger queries of runs and per-agent velocity, on SQLite and on a real PostgreSQL (the same answers)."""

from __future__ import annotations

from interlock.store import Store
from interlock.store.records import UsageRecord
from tests.store.conftest import pg_url as pg_url
from tests.store.conftest import store as store  # an open store of each kind

T0 = 1_767_225_600.0  # a minute boundary


def _row(i: int, ts: float, key: str, agent: str, run: str, cost: int, deployment: str = "echo") -> UsageRecord:
    return UsageRecord(
        f"req_{i}", ts, key, "chat", "echo", "fake", "m", False, 2, 3, "provider", cost, "v1", 1.0, None,
        200 if deployment else 403, deployment=deployment, run_id=run, agent_id=agent, owner_id="own_1",
    )  # fmt: skip


async def test_a_runs_rows_and_an_agents_spend_per_minute(store: Store) -> None:
    rows = [
        _row(1, T0 + 1, "key_a", "agt_1", "r1", 10),
        _row(2, T0 + 2, "key_b", "agt_1", "r1", 20),
        _row(3, T0 + 3, "key_a", "agt_1", "r1", 0, deployment=""),  # refused before any model
        _row(4, T0 + 4, "key_a", "agt_1", "r2", 40),
        _row(5, T0 + 61, "key_c", "agt_2", "r1", 80),
        _row(6, T0 + 62, "key_d", "", "", 160),  # no agent
    ]
    for r in rows:
        store.record_usage(r)
    await store.flush()
    got = await store.run_rows("agt_1", "r1", T0, 100)
    assert got == [(T0 + 3, 0, 5, False), (T0 + 2, 20, 5, True), (T0 + 1, 10, 5, True)]
    assert await store.run_rows("agt_1", "r1", T0 + 2, 1) == [(T0 + 3, 0, 5, False)]
    assert await store.run_rows("agt_2", "r2", T0, 100) == []
    minute = int(T0 // 60)
    assert sorted(await store.agent_spend_by_minute(T0)) == [("agt_1", minute, 70), ("agt_2", minute + 1, 80)]
