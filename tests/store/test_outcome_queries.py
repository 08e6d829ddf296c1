"""Outcomes, run ids on ledger rows, ledger pages and budget-alert claims, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from interlock.store import Store
from interlock.store.outcome_queries import OutcomeRecord
from interlock.store.postgres import PostgresStore
from interlock.store.records import UsageRecord
from interlock.store.spool import LedgerSpool
from interlock.store.sqlite import SqliteStore

T0 = 1_767_225_600.0


def _row(i: int, key: str | None, cost: int, run: str = "", ts: float = T0) -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{i:032x}", ts=ts, key_id=key, endpoint="chat", alias="echo", provider="fake",
        upstream_model="echo", stream=False, prompt_tokens=3, completion_tokens=2, usage_source="provider",
        cost_micros=cost, price_version="config", latency_ms=1.0, ttft_ms=None, status=200, run_id=run,
        reference_cost_micros=cost * 3,
    )  # fmt: skip


def _outcome(key: str, kind: str, subject: str, task: str, status: str, at: float = T0) -> OutcomeRecord:
    return OutcomeRecord(key, kind, subject, task, status, None, None, at, at)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of each kind, with ledger rows for two keys and the admin key."""
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "db.sqlite", flush_interval_ms=5)
    else:
        s = PostgresStore(request.getfixturevalue("pg_url"), flush_interval_ms=5)
    await s.open()
    rows = [
        _row(1, "key_a", 100, run="run-1"),
        _row(2, "key_a", 200, run="run-1"),
        _row(3, "key_a", 400),
        _row(4, "key_b", 800, run="run-1"),  # another key's run of the same name
        _row(5, None, 1600, run="run-9"),  # the admin key
    ]
    for r in rows:
        s.record_usage(r)
    await s.flush()
    try:
        yield s
    finally:
        await s.close()


async def test_run_ids_are_stored_and_read_back(store: Store) -> None:
    assert sorted(r.run_id for r in await store.usage_rows()) == ["", "run-1", "run-1", "run-1", "run-9"]


async def test_has_usage_sees_only_the_keys_own_rows(store: Store) -> None:
    assert await store.has_usage("key_a", "run", "run-1")
    assert await store.has_usage("key_a", "request", f"req_{3:032x}")
    assert not await store.has_usage("key_a", "request", f"req_{4:032x}")  # key_b's
    assert not await store.has_usage("key_a", "run", "run-9")
    assert await store.has_usage("", "run", "run-9")  # the admin key's rows have no key id
    assert not await store.has_usage("key_a", "run", "")


async def test_an_outcome_upserts_and_costs_its_own_rows(store: Store) -> None:
    assert await store.upsert_outcome(_outcome("key_a", "run", "run-1", "invoice", "failed"))
    assert not await store.upsert_outcome(_outcome("key_a", "run", "run-1", "invoice", "completed", T0 + 5))
    assert await store.upsert_outcome(_outcome("key_a", "request", f"req_{3:032x}", "invoice", "completed"))
    assert await store.upsert_outcome(_outcome("key_b", "run", "run-1", "triage", "completed"))
    assert await store.upsert_outcome(_outcome("", "run", "run-9", "triage", "failed"))
    (first, *_) = await store.list_outcomes()
    assert len(await store.list_outcomes()) == 4 and len(await store.list_outcomes(T0 + 1)) == 1
    assert first.created_at == T0
    costs = {(c.task_type, c.key_id, c.status): (c.outcomes, c.cost_micros, c.reference_cost_micros)
             for c in await store.outcome_costs()}  # fmt: skip
    assert costs == {
        ("invoice", "key_a", "completed"): (2, 300 + 400, 2100),  # run-1 of key_a only, and request 3
        ("triage", "key_b", "completed"): (1, 800, 2400),
        ("triage", "", "failed"): (1, 1600, 4800),
    }
    assert [c.outcomes for c in await store.outcome_costs(T0 + 1)] == [1]


async def test_ledger_pages_cover_every_row_once_in_order(store: Store) -> None:
    for i in range(6, 12):
        store.record_usage(_row(i, "key_c", 1, ts=T0 + 10))  # ties on ts: ordered by request id
    await store.flush()
    seen, after = [], None
    while page := await store.usage_page(None, after, 4):
        seen += [r.request_id for r in page]
        after = (page[-1].ts, page[-1].request_id)
    assert seen == [f"req_{i:032x}" for i in range(1, 12)]
    assert [r.request_id for r in await store.usage_page(T0 + 1)] == [f"req_{i:032x}" for i in range(6, 12)]


async def test_a_budget_alert_is_claimed_once(store: Store) -> None:
    assert await store.claim_budget_alert("key", "key_a", "day", "d:2026-01-01", 0.8, T0)
    assert not await store.claim_budget_alert("key", "key_a", "day", "d:2026-01-01", 0.8, T0 + 1)
    assert await store.claim_budget_alert("key", "key_a", "day", "d:2026-01-01", 1.0, T0)
    assert await store.claim_budget_alert("key", "key_a", "day", "d:2026-01-02", 0.8, T0)


def test_a_row_spooled_before_the_run_id_column_replays_with_its_default(tmp_path: Path) -> None:
    spool = LedgerSpool(tmp_path / "spool.jsonl", 1 << 20)
    old = _row(1, "key_a", 5).to_row()[:-1]  # as spooled by a release without `run_id`
    (tmp_path / "spool.jsonl").write_bytes(orjson.dumps(list(old)) + b"\n")
    got: list[tuple[object, ...]] = []
    assert spool.replay(got.extend) == 1
    assert got == [(*old, "")]
