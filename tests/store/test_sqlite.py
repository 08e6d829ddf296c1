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
