"""SQLite store: keys and the usage ledger in one WAL database under INTERLOCK_HOME.

Ledger writes never block a request: `record_usage` puts the row on a queue, and one writer thread
commits queued rows in batches. A row is committed at most `flush_interval_ms` (plus the time of one
commit) after it was queued. WAL with synchronous=NORMAL survives a killed process (kill -9) for every
committed transaction; only a power loss can roll back the last transactions.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Literal

from interlock.store.agent_queries import AgentQueries
from interlock.store.approval_queries import ApprovalQueries
from interlock.store.batching import BatchedLedger, LedgerQueue, LedgerUnavailable
from interlock.store.flywheel_queries import FlywheelQueries
from interlock.store.governance_queries import Dialect, GovernanceQueries
from interlock.store.guardrail_queries import GuardrailQueries
from interlock.store.ledger_queries import LedgerQueries
from interlock.store.mcp_queries import McpQueries
from interlock.store.outcome_queries import OutcomeQueries
from interlock.store.records import USAGE_COLUMN_COUNT, USAGE_COLUMNS
from interlock.store.response_queries import ResponseQueries
from interlock.store.run_queries import RunQueries
from interlock.store.schema import migrate
from interlock.store.signal_queries import SignalQueries
from interlock.store.spool import LedgerSpool, Row
from interlock.store.variant_queries import VariantQueries

log = logging.getLogger(__name__)

_ROW = f"({', '.join('?' * USAGE_COLUMN_COUNT)})"
_INSERT_USAGE = f"INSERT INTO usage ({USAGE_COLUMNS}) VALUES {_ROW}"
_INSERT_USAGE_IGNORING = _INSERT_USAGE.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
# Rows per INSERT statement: 23 parameters each, under SQLite's 32,766-parameter limit.
_ROWS_PER_INSERT = 500
DEFAULT_BUSY_TIMEOUT_MS = 30_000
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024


def _insert_many(n: int) -> str:
    """One INSERT of `n` rows. `executemany` would run one statement per row, and Python's sqlite3
    releases and retakes the GIL around each, handing it back and forth with the event loop."""
    return f"INSERT INTO usage ({USAGE_COLUMNS}) VALUES {', '.join([_ROW] * n)}"


def _insert_many_ignoring(n: int) -> str:
    """The same, skipping request ids already in the ledger (a spool replayed again after a crash)."""
    return _insert_many(n).replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open (a BEGIN that timed out opened none, and ROLLBACK would raise)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def connect(
    path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
) -> sqlite3.Connection:
    """A WAL connection to `path` that waits up to `busy_timeout_ms` for another writer's lock.

    A new database file is created readable by its owner only (0600): it holds the ledger, captured prompts
    and answers, and the audit log; SQLite gives its -wal and -shm files the same mode.
    """
    if str(path) != ":memory:" and not Path(path).exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return conn


_connect = connect  # bench/ledger opens its connections the way the store does


SQLITE = Dialect(
    day="date(u.ts, 'unixepoch')", minute="CAST(ts / 60 AS INTEGER)", collate="", duplicate=(sqlite3.IntegrityError,)
)


class SqliteStore(
    BatchedLedger,
    GovernanceQueries,
    ResponseQueries,
    GuardrailQueries,
    LedgerQueries,
    OutcomeQueries,
    AgentQueries,
    ApprovalQueries,
    FlywheelQueries,
    McpQueries,
    RunQueries,
    SignalQueries,
    VariantQueries,
):
    """Keys and ledger in SQLite. Reads run in worker threads; ledger writes go through one writer."""

    dialect = SQLITE

    def __init__(
        self,
        path: Path,
        *,
        flush_interval_ms: int = 100,
        flush_max_rows: int = 512,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        spool: Path | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
    ) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.flush_interval = flush_interval_ms / 1000
        self.flush_max_rows = flush_max_rows
        self._rows = LedgerQueue(self.flush_interval, self.flush_max_rows)
        self._read: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._wconn: sqlite3.Connection | None = None
        self._spool = LedgerSpool(spool, spool_max_bytes) if spool is not None else None

    # lifecycle -------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        return connect(self.path, busy_timeout_ms=self.busy_timeout_ms)

    def open_sync(self) -> None:
        """Create the database and apply migrations (blocking)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connection()
        migrate(conn, "sqlite")
        conn.close()
        self._read = self._connection()
        self._start_writer()

    def close_sync(self) -> None:
        """Flush every queued row, then stop (blocking)."""
        self._stop_writer()
        if self._read is not None:
            self._read.close()
            self._read = None

    # ledger ----------------------------------------------------------------------------------

    def _insert_rows(self, rows: list[Row], *, replay: bool = False) -> None:
        """One transaction per batch; a bad row does not take the batch with it (row by row)."""
        if self._wconn is None:
            self._wconn = self._connection()
        conn = self._wconn
        statement = _insert_many if not replay else _insert_many_ignoring
        try:
            conn.execute("BEGIN IMMEDIATE")
            for i in range(0, len(rows), _ROWS_PER_INSERT):
                part = rows[i : i + _ROWS_PER_INSERT]
                conn.execute(statement(len(part)), [v for row in part for v in row])
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # locked past busy_timeout, disk I/O, read-only: the database
            _rollback(conn)
            raise LedgerUnavailable(str(exc)) from exc
        except sqlite3.Error:
            _rollback(conn)
            for row in rows:
                try:
                    conn.execute(_INSERT_USAGE_IGNORING if replay else _INSERT_USAGE, row)
                except sqlite3.OperationalError as exc:
                    raise LedgerUnavailable(str(exc)) from exc
                except sqlite3.Error as exc:
                    log.error("ledger row %s not written: %s", row[0], exc)

    def _close_writer(self) -> None:
        if self._wconn is not None:
            self._wconn.close()
            self._wconn = None

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        assert self._read is not None, "store is not open"
        with self._read_lock:
            return list(self._read.execute(sql, params).fetchall())

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        assert self._read is not None, "store is not open"
        with self._read_lock:
            cur = self._read.execute(sql, params)
            return cur.rowcount
