"""SQLite store: keys and the usage ledger in one WAL database under INTERLOCK_HOME.

Ledger writes never block a request: `record_usage` puts the row on a queue, and one writer thread
commits queued rows in batches. A row is committed at most `flush_interval_ms` (plus the time of one
commit) after it was queued. WAL with synchronous=NORMAL survives a killed process (kill -9) for every
committed transaction; only a power loss can roll back the last transactions.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from interlock.store.batching import BatchedLedger, LedgerQueue
from interlock.store.governance_queries import Dialect, GovernanceQueries
from interlock.store.records import USAGE_COLUMNS, UsageRecord

log = logging.getLogger(__name__)

_ROW = f"({', '.join('?' * 22)})"
_INSERT_USAGE = f"INSERT INTO usage ({USAGE_COLUMNS}) VALUES {_ROW}"
# Rows per INSERT statement: 22 parameters each, under SQLite's 32,766-parameter limit.
_ROWS_PER_INSERT = 500


def _insert_many(n: int) -> str:
    """One INSERT of `n` rows. `executemany` would run one statement per row, and Python's sqlite3
    releases and retakes the GIL around each, handing it back and forth with the event loop."""
    return f"INSERT INTO usage ({USAGE_COLUMNS}) VALUES {', '.join([_ROW] * n)}"


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the numbered migrations that are not applied yet; return the schema version."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    applied = {int(r[0]) for r in conn.execute("SELECT version FROM schema_version")}
    files = sorted(
        (f for f in resources.files("interlock.store.migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    for f in files:
        number = int(f.name.split("_", 1)[0])
        if number in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript() would commit on its own; split statements to keep one transaction.
            lines = [ln for ln in f.read_text(encoding="utf-8").splitlines() if not ln.lstrip().startswith("--")]
            for statement in "\n".join(lines).split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.add(number)
    return max(applied, default=0)


SQLITE = Dialect(
    day="date(u.ts, 'unixepoch')", minute="CAST(ts / 60 AS INTEGER)", collate="", duplicate=(sqlite3.IntegrityError,)
)


class SqliteStore(BatchedLedger, GovernanceQueries):
    """Keys and ledger in SQLite. Reads run in worker threads; ledger writes go through one writer."""

    dialect = SQLITE

    def __init__(self, path: Path, *, flush_interval_ms: int = 100, flush_max_rows: int = 512) -> None:
        self.path = path
        self.flush_interval = flush_interval_ms / 1000
        self.flush_max_rows = flush_max_rows
        self._rows = LedgerQueue(self.flush_interval, self.flush_max_rows)
        self._read: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()

    # lifecycle -------------------------------------------------------------------------------

    def open_sync(self) -> None:
        """Create the database and apply migrations (blocking)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path)
        migrate(conn)
        conn.close()
        self._read = _connect(self.path)
        self._start_writer()

    def close_sync(self) -> None:
        """Flush every queued row, then stop (blocking)."""
        self._stop_writer()
        if self._read is not None:
            self._read.close()
            self._read = None

    # ledger ----------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        conn = _connect(self.path)
        for batch in self._rows.batches():
            self._commit(conn, batch)
        conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[UsageRecord]) -> None:
        rows = [r.to_row() for r in batch]
        try:
            conn.execute("BEGIN IMMEDIATE")
            for i in range(0, len(rows), _ROWS_PER_INSERT):
                part = rows[i : i + _ROWS_PER_INSERT]
                conn.execute(_insert_many(len(part)), [v for row in part for v in row])
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            # One bad row must not take the batch with it: retry row by row.
            for row in rows:
                try:
                    conn.execute(_INSERT_USAGE, row)
                except sqlite3.Error as exc:
                    log.error("ledger row %s not written: %s", row[0], exc)
        self._rows.committed(len(batch))

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        assert self._read is not None, "store is not open"
        with self._read_lock:
            return list(self._read.execute(sql, params).fetchall())

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        assert self._read is not None, "store is not open"
        with self._read_lock:
            cur = self._read.execute(sql, params)
            return cur.rowcount
