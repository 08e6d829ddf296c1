"""SQLite's lock wait comes from `[store] busy_timeout_ms`, for the store and the audit store alike, so a test
that holds the write lock sees "database is locked" in milliseconds, not after the default 30 s."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from interlock.audit.sqlite_store import SqliteAuditStore
from interlock.settings import Settings, StoreSettings, load_settings
from interlock.store import open_store
from interlock.store.records import OrgRecord
from interlock.store.signal_queries import SignalRow
from interlock.store.sqlite import SqliteStore


@pytest.fixture
def quick(tmp_path: Path) -> Settings:
    """Settings whose SQLite connections wait 50 ms for a lock."""
    config = tmp_path / "interlock.toml"
    config.write_text("[store]\nbusy_timeout_ms = 50\n")
    return load_settings(config, {"INTERLOCK_HOME": str(tmp_path / "home")})


def _hold_write_lock(settings: Settings) -> sqlite3.Connection:
    conn = sqlite3.connect(settings.home / "interlock.db", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_the_default_wait_is_unchanged() -> None:
    assert StoreSettings().busy_timeout_ms == 30_000


async def test_the_store_waits_as_long_as_configured(quick: Settings) -> None:
    store = open_store(quick)
    await store.open()
    holder = _hold_write_lock(quick)
    try:
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await store.insert_org(OrgRecord("org_1", "Acme", 1.0))
        assert time.monotonic() - started < 5
    finally:
        holder.close()
        await store.close()


def test_the_audit_store_waits_as_long_as_configured(quick: Settings) -> None:
    store = SqliteAuditStore.from_settings(quick)
    store.open()
    holder = _hold_write_lock(quick)
    try:
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"), store.transaction():
            pass
        assert time.monotonic() - started < 5
    finally:
        holder.close()
        store.close()


async def test_a_new_database_and_its_wal_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    """It holds the ledger, captured prompts and answers: not for other users of the machine."""
    store = SqliteStore(tmp_path / "home" / "interlock.db", flush_interval_ms=5)
    await store.open()
    try:
        await store.add_traffic_signals([SignalRow("k", 1, 1)])  # a write: the -wal file exists now
        files = sorted((tmp_path / "home").iterdir())
        assert [f.name for f in files] == ["interlock.db", "interlock.db-shm", "interlock.db-wal"]
        assert {oct(f.stat().st_mode & 0o777) for f in files} == {"0o600"}
    finally:
        await store.close()
