"""Reconciliation raises a budget counter that fell behind the ledger, audits it, and never lowers one."""

from __future__ import annotations

import time
from pathlib import Path

from interlock.audit.log import AuditLog
from interlock.audit.sqlite_store import SqliteAuditStore
from interlock.governance.admission import Governance, budget_bucket
from interlock.governance.counters import LocalCounters
from interlock.governance.reconcile import Reconciler
from interlock.store.records import BudgetRecord, UsageRecord
from interlock.store.sqlite import SqliteStore


def _row(i: int, cost: int) -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{i:032x}", ts=time.time(), key_id="key_1", endpoint="chat", alias="echo", provider="fake",
        deployment="echo", attempts=1, upstream_model="echo", stream=False, prompt_tokens=3, completion_tokens=2,
        usage_source="provider", cost_micros=cost, price_version="config", latency_ms=1.0, ttft_ms=None, status=200,
        error=None, team_id=None, org_id=None, reference_cost_micros=0,
    )  # fmt: skip


async def test_a_counter_behind_the_ledger_is_raised_and_audited(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite", flush_interval_ms=5)
    await store.open()
    audit = AuditLog(SqliteAuditStore(tmp_path / "db.sqlite"), tmp_path)
    await audit.open()
    try:
        counters = LocalCounters()
        governance = Governance(store, counters)
        rule = BudgetRecord("key", "key_1", "total", 1_000_000, time.time())
        await store.upsert_budget(rule)
        name = budget_bucket(rule, time.time())
        await counters.seed(name, 100)  # the counter knows of 100 micro-dollars ...
        for i, cost in enumerate((300, 200)):  # ... the ledger of 500: two settlements were lost
            store.record_usage(_row(i, cost))
        reconciler = Reconciler(governance, store, audit, interval_s=0)
        assert await reconciler.reconcile() == [(name, 100, 500)]
        assert await counters.spent(name) == (500, 0)
        entries = await audit.recent(5)
        assert entries[0].action == "budget.reconciled" and '"ledger_micros":500' in entries[0].metadata.replace(
            " ", ""
        )
        # A counter ahead of the ledger (rows not flushed on another replica) is left alone.
        assert await counters.raise_spent(name, 900) == 500
        assert await reconciler.reconcile() == []
        assert await counters.spent(name) == (900, 0)
    finally:
        await audit.close()
        await store.close()
