"""The ledger explorer's queries: filters, counts, keyset pages and runs, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from interlock.store import Store
from interlock.store.ledger_queries import LedgerFilter
from interlock.store.postgres import PostgresStore
from interlock.store.records import UsageRecord
from interlock.store.sqlite import SqliteStore

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def _row(
    i: int, key: str | None, *, ts: float, alias: str = "echo", status: int = 200, team: str | None = None,
    run: str = "", agent: str = "", cost: int = 10, deployment: str | None = None,
) -> UsageRecord:  # fmt: skip
    return UsageRecord(
        request_id=f"req_{i:04d}", ts=ts, key_id=key, endpoint="chat", alias=alias, provider="fake",
        upstream_model=alias, stream=False, prompt_tokens=3, completion_tokens=2, usage_source="provider",
        cost_micros=cost, price_version="config", latency_ms=1.0, ttft_ms=None, status=status, team_id=team,
        run_id=run, agent_id=agent, owner_id="own_1" if agent else "",
        deployment=alias if deployment is None else deployment,
    )  # fmt: skip


ROWS = [
    _row(1, "key_a", ts=T0, team="team_x"),
    _row(2, "key_a", ts=T0 + 10, alias="big", status=429, team="team_x"),
    _row(3, "key_b", ts=T0 + 10, status=500),  # same ts as row 2: the keyset orders by request id
    _row(4, None, ts=T0 + 86_400),  # the admin key, the next day
    _row(5, "key_c", ts=T0 + 20, run="run-1", agent="agt_1", cost=100),
    _row(6, "key_c", ts=T0 + 30, alias="big", run="run-1", agent="agt_1", status=403, cost=200),
    _row(7, "key_c", ts=T0 + 40, run="run-2", agent="agt_1", cost=1),
    _row(8, "key_d", ts=T0 + 50, run="run-1", agent="agt_2", cost=5),  # another agent's run of that name
]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "db.sqlite", flush_interval_ms=5)
    else:
        s = PostgresStore(request.getfixturevalue("pg_url"), flush_interval_ms=5)
    await s.open()
    for r in ROWS:
        s.record_usage(r)
    await s.flush()
    try:
        yield s
    finally:
        await s.close()


async def _ids(store: Store, where: LedgerFilter, limit: int = 100) -> list[str]:
    return [r.request_id for r in await store.ledger_search(where, limit)]


async def test_each_filter(store: Store) -> None:
    assert await _ids(store, LedgerFilter()) == [f"req_{i:04d}" for i in (4, 8, 7, 6, 5, 3, 2, 1)]
    assert await _ids(store, LedgerFilter(key_id="key_a")) == ["req_0002", "req_0001"]
    assert await _ids(store, LedgerFilter(key_id="")) == ["req_0004"]  # the admin key's rows
    assert await _ids(store, LedgerFilter(team_id="team_x", alias="big")) == ["req_0002"]
    assert await _ids(store, LedgerFilter(status="error")) == ["req_0006", "req_0003", "req_0002"]
    assert await _ids(store, LedgerFilter(status="ok", alias="echo", key_id="key_c")) == ["req_0007", "req_0005"]
    assert await _ids(store, LedgerFilter(status=429)) == ["req_0002"]
    assert await _ids(store, LedgerFilter(since=T0 + 86_400)) == ["req_0004"]
    assert await _ids(store, LedgerFilter(since=T0 + 10, until=T0 + 30)) == ["req_0005", "req_0003", "req_0002"]
    assert await _ids(store, LedgerFilter(run_id="run-1", agent_id="agt_1")) == ["req_0006", "req_0005"]
    assert await _ids(store, LedgerFilter(key_id="key_nobody")) == []


async def test_counts_match_the_rows(store: Store) -> None:
    for where in (LedgerFilter(), LedgerFilter(status="error"), LedgerFilter(key_id=""), LedgerFilter(alias="x")):
        assert await store.ledger_count(where) == len(await _ids(store, where))
    assert await store.ledger_count(LedgerFilter(), cap=3) == 4  # counting stops one past the cap
    assert await store.ledger_count(LedgerFilter(status="error"), cap=3) == 3


async def test_keyset_pages_cover_every_row_once(store: Store) -> None:
    seen: list[str] = []
    before: tuple[float, str] | None = None
    while True:
        page = await store.ledger_search(LedgerFilter(), 3, before)
        seen += [r.request_id for r in page]
        if len(page) < 3:
            break
        before = (page[-1].ts, page[-1].request_id)
    assert seen == await _ids(store, LedgerFilter())
    assert len(set(seen)) == len(ROWS)


async def test_one_row_by_request_id(store: Store) -> None:
    row = await store.ledger_row("req_0006")
    assert row is not None and row.alias == "big" and row.status == 403 and row.run_id == "run-1"
    assert await store.ledger_row("req_nope") is None


async def test_runs_with_their_steps_and_cost(store: Store) -> None:
    runs = await store.ledger_runs()
    assert [(r.run_id, r.agent_id) for r in runs] == [("run-1", "agt_2"), ("run-2", "agt_1"), ("run-1", "agt_1")]
    one = runs[2]
    assert (one.steps, one.errors, one.cost_micros, one.owner_id, one.key_id) == (2, 1, 300, "own_1", "key_c")
    assert (one.first_ts, one.last_ts, one.models) == (T0 + 20, T0 + 30, ("big", "echo"))
    assert (one.prompt_tokens, one.completion_tokens) == (6, 4)
    assert [r.run_id for r in await store.ledger_runs(agent_id="agt_1")] == ["run-2", "run-1"]
    assert [r.run_id for r in await store.ledger_runs(limit=1)] == ["run-1"]


async def test_routes_per_day_alias_and_deployment(store: Store) -> None:
    store.record_usage(_row(9, "key_a", ts=T0 + 60, alias="auto", deployment="cheap#1"))
    store.record_usage(_row(10, "key_a", ts=T0 + 60, alias="auto", deployment="", status=403))  # refused early
    await store.flush()
    routes = await store.ledger_routes(T0)
    got = [(r.day, r.alias, r.deployment, r.requests, r.errors) for r in routes]
    assert ("2026-01-01", "echo", "echo", 5, 1) in got and ("2026-01-02", "echo", "echo", 1, 0) in got
    assert ("2026-01-01", "big", "big", 2, 2) in got and ("2026-01-01", "auto", "cheap#1", 1, 0) in got
    assert len(got) == 4
    assert await store.ledger_routes(T0 + 86_400) == [r for r in routes if r.day == "2026-01-02"]
