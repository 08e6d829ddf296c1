"""The PostgreSQL store against a running server: migrations, keys, ledger, spend parity, governance, audit.

Every test works in a fresh schema (dropped afterwards, `pg_url` in conftest.py) of the database at
INTERLOCK_TEST_POSTGRES.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from interlock.app import create_app
from interlock.audit.log import AuditEvent, AuditLog, verify_home
from interlock.audit.postgres_store import PostgresAuditStore
from interlock.cli.main import app as cli
from interlock.settings import load_settings
from interlock.store import Store
from interlock.store.migrations import MIGRATIONS
from interlock.store.postgres import PostgresStore, migrate
from interlock.store.records import (
    BudgetRecord,
    DuplicateError,
    KeyRecord,
    OrgRecord,
    RateLimitRecord,
    Scope,
    TeamRecord,
    UsageRecord,
)
from interlock.store.sqlite import SqliteStore
from tests.conftest import ADMIN_KEY, FAKE_CONFIG
from tests.store.conftest import pg_admin

DAY = 86400.0
T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[PostgresStore]:
    """An open PostgresStore with a short flush interval."""
    store = PostgresStore(pg_url, flush_interval_ms=20)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def _usage(i: int, **changes: Any) -> UsageRecord:
    row = UsageRecord(
        request_id=f"req-{i}", ts=T0 + i, key_id="key_a", endpoint="/v1/chat/completions", alias="echo",
        provider="fake", upstream_model="echo-1", stream=bool(i % 2), prompt_tokens=10 + i, completion_tokens=i,
        usage_source="reported", cost_micros=100 * i, price_version="test-1", latency_ms=12.5, ttft_ms=None,
        status=200, reference_cost_micros=300 * i,
    )  # fmt: skip
    return replace(row, **changes)


def _key(i: int, team_id: str | None = None) -> KeyRecord:
    return KeyRecord(f"key_{i}", f"app {i}", "ops", f"hash-{i}", "sk-il-ab", ("echo", "tag:local"), T0 + i,
                     team_id=team_id)  # fmt: skip


def test_migrations_are_idempotent_and_concurrent(pg_url: str) -> None:
    latest = MIGRATIONS[-1].number
    # Three replicas starting at once: the advisory lock lets one migrate while the others wait.
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(lambda _: migrate(pg_url), range(3))) == [latest] * 3
    assert migrate(pg_url) == latest
    versions = [r[0] for r in _rows(pg_url, "SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, latest + 1))


def test_an_unreachable_server_fails_loudly() -> None:
    with pytest.raises(psycopg.OperationalError):
        PostgresStore("postgresql://postgres@127.0.0.1:1/test").open_sync()


async def test_keys_crud(pg: PostgresStore) -> None:
    await pg.insert_org(OrgRecord("org_1", "Acme", T0))
    await pg.insert_team(TeamRecord("team_1", "org_1", "billing", T0))
    await pg.insert_key(_key(2, team_id="team_1"))
    await pg.insert_key(_key(1))
    assert [k.id for k in await pg.list_keys()] == ["key_1", "key_2"]
    assert await pg.key_by_hash("hash-2") == _key(2, team_id="team_1")
    assert await pg.key_by_hash("nope") is None
    assert await pg.revoke_key("key_1", T0 + 5) is True
    assert await pg.revoke_key("key_1", T0 + 6) is False
    assert await pg.revoke_key("key_9", T0 + 6) is False
    assert await pg.suspend_key("key_2", T0 + 7, "velocity") is True
    stored = await pg.key_by_hash("hash-2")
    assert stored is not None and (stored.suspended_at, stored.suspended_reason) == (T0 + 7, "velocity")
    assert await pg.suspend_key("key_2", None) is True
    assert (await pg.list_keys())[0].revoked_at == T0 + 5
    with pytest.raises(psycopg.errors.UniqueViolation):
        await pg.insert_key(replace(_key(3), hash="hash-1"))


async def test_ledger_batches_flushes_and_never_duplicates(pg: PostgresStore, pg_url: str) -> None:
    batches: list[int] = []
    insert = pg._insert_rows

    def counting(rows: list[Any], *, replay: bool = False) -> None:
        batches.append(len(rows))
        insert(rows, replay=replay)

    pg._insert_rows = counting  # type: ignore[method-assign]
    rows = [_usage(i) for i in range(300)]
    for row in rows:
        pg.record_usage(row)
    await pg.flush()
    assert sum(batches) == 300 and len(batches) <= 10, batches  # batched, not a transaction per row
    assert sorted(await pg.usage_rows(1000), key=lambda r: r.ts) == rows  # every field round-trips
    # A batch retried after a lost connection (or a replica replaying) must not double the ledger.
    for row in rows[:50]:
        pg.record_usage(row)
    # One bad row (PostgreSQL text cannot hold NUL) fails its batch; the others are retried one by one.
    pg.record_usage(_usage(300, endpoint="bad\x00"))
    pg.record_usage(_usage(301))
    await pg.flush()
    assert _rows(pg_url, "SELECT count(*), count(DISTINCT request_id) FROM usage") == [(301, 301)]
    # close() flushes what is still queued; another replica sees it.
    pg.record_usage(_usage(302))
    await pg.close()
    other = PostgresStore(pg_url)
    await other.open()
    try:
        assert (await other.usage_rows(1))[0] == _usage(302)
    finally:
        await other.close()


async def test_the_writer_and_the_pool_survive_lost_connections(pg: PostgresStore, pg_url: str) -> None:
    pg.record_usage(_usage(1))
    await pg.flush()
    app = _rows(pg_url, "SELECT current_setting('application_name')")[0][0]
    with pg_admin() as conn:  # a database restart, as the store sees it
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchall()
    assert killed[0][0] >= 2  # the writer's connection and the pool's
    pg.record_usage(_usage(2))
    await pg.flush()
    assert [r.request_id for r in await pg.usage_rows()] == ["req-2", "req-1"]
    assert await pg.list_keys() == []


def _governance_fixture() -> tuple[list[OrgRecord], list[TeamRecord], list[KeyRecord], list[UsageRecord]]:
    orgs = [OrgRecord("org_b", "Beta", T0), OrgRecord("org_a", "alpha", T0 + 1)]
    teams = [TeamRecord("team_x", "org_a", "x", T0), TeamRecord("team_y", "org_b", "Y", T0 + 1)]
    keys = [_key(1, "team_x"), _key(2, "team_y"), _key(3), replace(_key(4), name="B")]
    usage = []
    for i in range(400):
        key = ["key_1", "key_2", "key_3", "key_4", None][i % 5]
        team = {"key_1": "team_x", "key_2": "team_y"}.get(key or "")
        org = {"team_x": "org_a", "team_y": "org_b"}.get(team or "")
        usage.append(
            _usage(
                i,
                ts=T0 + (i % 4) * DAY - 1800 + i * 7.5,  # straddles UTC midnights
                key_id=key,
                team_id=team,
                org_id=org,
                alias=["echo", "Echo", "_echo", "b"][i % 4],
                cost_micros=[0, 250, 250, 1_000_000_007][i % 4] + (i % 3),
                status=[200, 200, 429, 500][i % 7 % 4],
                reference_cost_micros=i * 11,
                endpoint=["chat", "responses", "mcp"][i % 3],
            )
        )
    return orgs, teams, keys, usage


async def test_spend_matches_sqlite_on_the_same_rows(pg: PostgresStore, tmp_path: Path) -> None:
    lite = SqliteStore(tmp_path / "interlock.db", flush_interval_ms=5)
    await lite.open()
    try:
        orgs, teams, keys, usage = _governance_fixture()
        for store in (lite, pg):
            for org in orgs:
                await store.insert_org(org)
            for team in teams:
                await store.insert_team(team)
            for key in keys:
                await store.insert_key(key)
            for row in usage:
                store.record_usage(row)
            await store.flush()
        for since in (None, T0 + 1.5 * DAY):
            for group in ("org", "team", "key", "model", "endpoint", "day"):
                expected = await lite.spend(group, since)
                assert await pg.spend(group, since) == expected, (group, since)
                assert len(expected) > 1
                only = await lite.spend(group, since, ("chat", "mcp"))
                assert await pg.spend(group, since, ("chat", "mcp")) == only, (group, since)
                assert sum(r.requests for r in only) < sum(r.requests for r in expected)
        scopes: list[tuple[Scope, str]] = [("org", "org_a"), ("team", "team_y"), ("key", "key_3"), ("model", "Echo")]
        for scope, ident in scopes:
            for since in (0.0, T0 + DAY + 0.5):
                assert await pg.spent_since(scope, ident, since) == await lite.spent_since(scope, ident, since)
        assert sorted(await pg.key_spend_by_minute(T0)) == sorted(await lite.key_spend_by_minute(T0))
    finally:
        await lite.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def either(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each backend in turn, opened."""
    store: Store
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "interlock.db")
    else:
        store = PostgresStore(request.getfixturevalue("pg_url"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_governance_crud_and_duplicates(either: Store) -> None:
    store = either
    await store.insert_org(OrgRecord("org_1", "Acme", T0))
    await store.insert_org(OrgRecord("org_2", "Other", T0 + 1))
    with pytest.raises(DuplicateError):
        await store.insert_org(OrgRecord("org_3", "Acme", T0 + 2))
    await store.insert_team(TeamRecord("team_1", "org_1", "billing", T0))
    await store.insert_team(TeamRecord("team_2", "org_2", "billing", T0 + 1))  # same name, other org
    with pytest.raises(DuplicateError):
        await store.insert_team(TeamRecord("team_3", "org_1", "billing", T0 + 2))
    assert [o.name for o in await store.list_orgs()] == ["Acme", "Other"]
    assert [t.id for t in await store.list_teams()] == ["team_1", "team_2"]

    await store.upsert_budget(BudgetRecord("team", "team_1", "month", 5_000_000, T0))
    await store.upsert_budget(BudgetRecord("team", "team_1", "month", 7_000_000, T0 + 1))
    await store.upsert_budget(BudgetRecord("org", "org_1", "total", 2**40, T0))
    assert await store.list_budgets() == [
        BudgetRecord("org", "org_1", "total", 2**40, T0),
        BudgetRecord("team", "team_1", "month", 7_000_000, T0 + 1),
    ]
    assert await store.delete_budget("org", "org_1", "total") is True
    assert await store.delete_budget("org", "org_1", "total") is False

    await store.upsert_rate_limit(RateLimitRecord("model", "echo", 60, None, T0))
    await store.upsert_rate_limit(RateLimitRecord("key", "key_1", None, 10_000, T0))
    await store.upsert_rate_limit(RateLimitRecord("model", "echo", 30, 3_000_000_000, T0 + 1))
    assert await store.list_rate_limits() == [
        RateLimitRecord("key", "key_1", None, 10_000, T0),
        RateLimitRecord("model", "echo", 30, 3_000_000_000, T0 + 1),
    ]
    assert await store.delete_rate_limit("key", "key_1") is True
    assert await store.delete_rate_limit("key", "key_1") is False


def _event(i: int) -> AuditEvent:
    if i % 13 == 0:
        return AuditEvent.admin("key.revoke", actor_id=None, actor_name="admin", target=f"key_{i}")
    return AuditEvent.denial("chat.completions", actor_id=f"key_{i % 5}", actor_name="app", reason="over budget",
                             attempt=i, ratio=i / 7)  # fmt: skip


async def test_two_replicas_appending_at_once_keep_one_chain(pg_url: str, tmp_path: Path) -> None:
    first = AuditLog(PostgresAuditStore(pg_url), tmp_path, checkpoint_every=7)
    second = AuditLog(PostgresAuditStore(pg_url), tmp_path, checkpoint_every=5)
    await first.open()
    await second.open()
    await asyncio.gather(*(log.append(_event(i)) for i in range(60) for log in (first, second)))
    await first.close()
    await second.close()
    store = PostgresAuditStore(pg_url)
    store.open()
    try:
        result = verify_home(store, tmp_path)
        assert result.ok and result.entries == 120 and result.unsigned == 0, result
        assert [e.seq for e in store.recent(3)] == [120, 119, 118]
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            store.conn.execute("UPDATE audit SET reason = 'edited' WHERE seq = 1")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            store.conn.execute("DELETE FROM audit_checkpoints")
    finally:
        store.close()


@pytest.fixture
def pg_client(pg_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """The app in-process with its store (keys, ledger, audit) in PostgreSQL."""
    config = tmp_path / "interlock.toml"
    config.write_text(FAKE_CONFIG.replace("[store]\n", f'[store]\nurl = "{pg_url}"\n'))
    settings = load_settings(config, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


def test_the_app_runs_on_postgres(pg_client: TestClient, pg_url: str, tmp_path: Path) -> None:
    created = pg_client.post("/admin/keys", json={"name": "app"}).json()
    r = pg_client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {created['key']}"},
    )
    assert r.status_code == 200, r.text
    store = pg_client.app.state.interlock.store  # type: ignore[attr-defined]
    assert isinstance(store, PostgresStore)
    pg_client.portal.call(store.flush)  # type: ignore[union-attr]
    ledger = _rows(pg_url, "SELECT key_id, alias, prompt_tokens, cost_micros FROM usage")
    assert len(ledger) == 1 and ledger[0][:2] == (created["id"], "echo") and ledger[0][3] > 0
    assert _rows(pg_url, "SELECT id FROM keys") == [(created["id"],)]
    assert ("key.create", created["id"]) in _rows(pg_url, "SELECT action, target FROM audit")
    assert not (tmp_path / "home" / "interlock.db").exists()  # nothing went to SQLite
    assert pg_client.post("/admin/orgs", json={"name": "Acme"}).status_code == 201
    duplicate = pg_client.post("/admin/orgs", json={"name": "Acme"})
    assert duplicate.status_code == 400 and "exists" in duplicate.json()["error"]["message"]


def test_the_cli_runs_on_postgres(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "interlock.toml"
    config.write_text(FAKE_CONFIG.replace("[store]\n", f'[store]\nurl = "{pg_url}"\n'))
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INTERLOCK_CONFIG", str(config))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "billing-app", "-m", "echo"])  # open_sync, then asyncio.run
    assert created.exit_code == 0, created.output
    listed = runner.invoke(cli, ["keys", "list"])
    key_id = next(w for w in listed.stdout.split() if w.startswith("key_"))
    assert runner.invoke(cli, ["keys", "revoke", key_id]).exit_code == 0
    assert _rows(pg_url, "SELECT id FROM keys WHERE revoked_at IS NOT NULL") == [(key_id,)]
    verified = runner.invoke(cli, ["audit", "verify", "--json"])
    assert verified.exit_code == 0 and '"entries": 2' in verified.stdout, verified.output


def test_both_stores_have_the_same_api() -> None:
    def api(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(member)
            for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")
        }

    lite, pg, protocol = api(SqliteStore), api(PostgresStore), api(Store)
    assert lite.keys() == pg.keys() == protocol.keys()
    for name in lite:
        assert str(lite[name]) == str(pg[name]) == str(protocol[name]), name


@pytest.mark.slow
async def test_an_unreachable_database_spools_the_ledger_and_replays_it(pg_url: str, tmp_path: Path) -> None:
    """The writer retries a lost server briefly, then spools to disk; when the server is back, the spool
    is replayed into the ledger once (ids already there are skipped)."""
    import time

    from tests.conftest import free_port

    store = PostgresStore(pg_url, flush_interval_ms=5, spool=tmp_path / "spool.jsonl")
    await store.open()
    try:
        real_url = store.url
        store.url = f"postgresql://127.0.0.1:{free_port()}/test"  # the server is gone (a failover, a restart)
        if store._wconn is not None:
            store._wconn.close()
        rows = [_usage(1000 + i) for i in range(5)]
        for row in rows:
            store.record_usage(row)
        await store.flush()
        assert store.ledger_state() == "spooling" and store.is_open()
        store.url = real_url  # it is back
        deadline = time.monotonic() + 30
        while store.ledger_state() != "ok":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        wanted = [r.request_id for r in rows]
        found = _rows(pg_url, f"SELECT request_id FROM usage WHERE request_id IN ({', '.join(map(repr, wanted))})")
        assert sorted(r[0] for r in found) == sorted(wanted)
    finally:
        await store.close()


async def test_the_response_store_works_on_both_databases(pg: PostgresStore, tmp_path: Path) -> None:
    from interlock.store.response_queries import ResponseRecord

    lite = SqliteStore(tmp_path / "interlock.db", flush_interval_ms=5)
    await lite.open()
    try:
        for store in (lite, pg):
            rid = f"resp_{uuid.uuid4().hex}"
            await store.save_response(ResponseRecord(rid, "key_a", 100.0, 200.0, '{"id": 1}', "[]"))
            assert await store.get_response(rid, "key_b", 150.0) is None  # another key's
            assert await store.get_response(rid, "key_a", 250.0) is None  # expired
            found = await store.get_response(rid, "key_a", 150.0)
            assert found is not None and found.body == '{"id": 1}'
            assert await store.delete_response(rid, "key_b") is False
            assert await store.delete_response(rid, "key_a") is True
            assert await store.get_response(rid, "key_a", 150.0) is None
    finally:
        await lite.close()
