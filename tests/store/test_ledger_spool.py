"""The ledger writer cannot die silently (issue finding 4): a lock held past busy_timeout spools rows to disk,
the writer recovers by itself when the lock goes away, and a crash during the outage loses nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from interlock.store.records import UsageRecord
from interlock.store.spool import LedgerSpool
from interlock.store.sqlite import SqliteStore


def _row(i: int) -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{i:032x}", ts=time.time(), key_id="k", endpoint="chat", alias="echo", provider="fake",
        deployment="echo", attempts=1, upstream_model="echo", stream=False, prompt_tokens=3, completion_tokens=2,
        usage_source="provider", cost_micros=7, price_version="config", latency_ms=1.0, ttft_ms=None, status=200,
        error=None, team_id=None, org_id=None, reference_cost_micros=0,
    )  # fmt: skip


def _store(tmp_path: Path, spool_max_bytes: int = 1 << 20) -> SqliteStore:
    return SqliteStore(
        tmp_path / "db.sqlite",
        flush_interval_ms=5,
        busy_timeout_ms=50,
        spool=tmp_path / "spool.jsonl",
        spool_max_bytes=spool_max_bytes,
    )


def _ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT request_id FROM usage ORDER BY request_id")]


def _hold_lock(db: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a backup, a VACUUM, another process: the writer cannot write
    return holder


async def _eventually(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_a_lock_held_past_busy_timeout_spools_and_the_writer_recovers(tmp_path: Path) -> None:
    store = _store(tmp_path)
    await store.open()
    try:
        holder = _hold_lock(store.path)
        for i in range(50):
            store.record_usage(_row(i))
        await store.flush()  # returns: the rows are durable in the spool
        assert store.is_open() and store.ledger_state() == "spooling"
        assert LedgerSpool(tmp_path / "spool.jsonl", 1 << 20).pending == 50
        holder.execute("ROLLBACK")
        holder.close()
        # No new row arrives: the writer wakes up by itself, replays the spool and empties it.
        await _eventually(lambda: store.ledger_state() == "ok")
        store.record_usage(_row(50))
        await store.flush()
        assert _ids(store.path) == [f"req_{i:032x}" for i in range(51)]  # each exactly once, none lost
        assert not (tmp_path / "spool.jsonl").exists()
    finally:
        await store.close()


async def test_a_crash_during_the_outage_loses_nothing_and_writes_nothing_twice(tmp_path: Path) -> None:
    store = _store(tmp_path)
    await store.open()
    holder = _hold_lock(store.path)
    for i in range(10):
        store.record_usage(_row(i))
    await store.flush()
    assert store.ledger_state() == "spooling"
    # As after a kill -9 partway through a replay: some rows are in the database, all still in the spool.
    holder.execute("ROLLBACK")
    holder.execute(
        "INSERT INTO usage (request_id, ts, key_id, endpoint, alias, provider, upstream_model, stream, prompt_tokens,"
        " completion_tokens, usage_source, cost_micros, price_version, latency_ms, status, deployment, attempts,"
        " reference_cost_micros) SELECT ?, 1, 'k', 'chat', 'echo', 'fake', 'echo', 0, 3, 2, 'provider', 7, 'c', 1,"
        " 200, 'echo', 1, 0",
        (f"req_{3:032x}",),
    )
    holder.close()
    store._rows.stop()  # the writer thread ends without a clean close
    again = _store(tmp_path)
    await again.open()  # replays what the spool holds
    try:
        await _eventually(lambda: again.ledger_state() == "ok")
        assert _ids(again.path) == [f"req_{i:032x}" for i in range(10)]
    finally:
        await again.close()


async def test_a_full_spool_is_reported(tmp_path: Path) -> None:
    store = _store(tmp_path, spool_max_bytes=4096)
    await store.open()
    try:
        holder = _hold_lock(store.path)
        for i in range(200):  # far more than 4 KB of rows
            store.record_usage(_row(i))
        await store.flush()
        assert store.ledger_state() == "full"
        holder.execute("ROLLBACK")
        holder.close()
        await _eventually(lambda: store.ledger_state() == "ok")
    finally:
        await store.close()


async def test_when_nothing_could_be_spooled_the_writer_still_notices_the_database_is_back(tmp_path: Path) -> None:
    store = _store(tmp_path, spool_max_bytes=10)  # not even one row fits
    await store.open()
    try:
        holder = _hold_lock(store.path)
        store.record_usage(_row(0))
        await store.flush()
        assert store.ledger_state() == "full"  # the row is lost (logged); new requests are refused upstream
        holder.execute("ROLLBACK")
        holder.close()
        await _eventually(lambda: store.ledger_state() == "ok")
    finally:
        await store.close()
