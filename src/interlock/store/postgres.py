"""PostgreSQL store: the SQLite store's keys, ledger and governance tables, shared by several replicas.

Reads and admin writes run on a small connection pool in worker threads. Ledger writes never block a request:
`record_usage` queues the row and one writer thread inserts queued rows in batches, one transaction per batch,
at most `flush_interval_ms` (plus the time of one commit) after a row was queued. Inserts skip a request id
that is already stored, so a batch retried after a lost connection never duplicates rows.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from interlock.store import schema
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
from interlock.store.signal_queries import SignalQueries
from interlock.store.spool import LedgerSpool, Row
from interlock.store.sqlite import DEFAULT_SPOOL_MAX_BYTES
from interlock.store.variant_queries import VariantQueries

log = logging.getLogger(__name__)

_VALUES = ", ".join(["%s"] * USAGE_COLUMN_COUNT)
_INSERT_USAGE = f"INSERT INTO usage ({USAGE_COLUMNS}) VALUES ({_VALUES}) ON CONFLICT (request_id) DO NOTHING"
# How long a batch is retried while the server is unreachable before it goes to the spool (see store/spool.py).
_RETRY_FOR_S = 2.0
_CONNECT_TIMEOUT_S = 10


def connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A new autocommit connection to `url` (a postgresql:// URL or libpq conninfo)."""
    return psycopg.connect(url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)


def lock_key(conn: psycopg.Connection[tuple[Any, ...]], name: str) -> int:
    """An advisory-lock key for `name` in the connection's current schema (replicas share it, tests do not)."""
    row = conn.execute("SELECT hashtext(%s || ':' || coalesce(current_schema(), ''))", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def migrate(url: str) -> int:
    """Apply the numbered migrations that are not applied yet; return the schema version."""
    # Closing the connection releases the advisory lock `schema.migrate` holds, also when a migration fails.
    with connect(url) as conn:
        return schema.migrate(conn, "postgresql")


# floor(), not a cast: a PostgreSQL cast rounds where SQLite's truncates. COLLATE "C" orders ties by bytes, as
# SQLite does, whatever the database's collation.
POSTGRES = Dialect(
    day="to_char(to_timestamp(u.ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    minute="floor(ts / 60)::bigint",
    collate=' COLLATE "C"',
    duplicate=(psycopg.errors.UniqueViolation,),
)


def _placeholders(sql: str) -> str:
    """The shared queries' `?` placeholders in psycopg's style (no query here has a literal `?`)."""
    return sql.replace("?", "%s")


class PostgresStore(
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
    """Keys and ledger in PostgreSQL. Reads use a connection pool in worker threads; writes go through one writer."""

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        flush_interval_ms: int = 100,
        flush_max_rows: int = 512,
        pool_size: int = 4,
        spool: Path | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
    ) -> None:
        self.url = url
        self._wconn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._spool = LedgerSpool(spool, spool_max_bytes) if spool is not None else None
        self.flush_interval = flush_interval_ms / 1000
        self.flush_max_rows = flush_max_rows
        self.pool_size = pool_size
        self._rows = LedgerQueue(self.flush_interval, self.flush_max_rows)
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] | None = None

    # lifecycle -------------------------------------------------------------------------------

    def open_sync(self) -> None:
        """Apply migrations, open the pool and start the ledger writer (blocking)."""
        migrate(self.url)
        pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True, "connect_timeout": _CONNECT_TIMEOUT_S},
            # A replica outlives database restarts: hand out only connections that still work.
            check=ConnectionPool.check_connection,
            open=False,
            name="interlock-store",
        )
        pool.open(wait=True, timeout=_CONNECT_TIMEOUT_S)
        self._pool = pool
        self._start_writer()

    def close_sync(self) -> None:
        """Flush every queued row, then stop (blocking)."""
        self._stop_writer()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ledger ----------------------------------------------------------------------------------

    def _insert_rows(self, rows: list[Row], *, replay: bool = False) -> None:
        """One transaction per batch (ids already present are skipped); a short retry covers a reconnect,
        then `LedgerUnavailable` sends the batch to the spool. A bad row does not take the batch with it."""
        give_up, attempt = time.monotonic() + _RETRY_FOR_S, 0
        while True:
            try:
                if self._wconn is None or self._wconn.closed:
                    self._wconn = connect(self.url)
                with self._wconn.transaction(), self._wconn.cursor() as cur:
                    cur.executemany(_INSERT_USAGE, rows)
                return
            except psycopg.Error as exc:
                conn = self._wconn
                if conn is not None and not conn.closed and not conn.broken:
                    self._commit_rows(conn, rows)  # the server refused the batch itself
                    return
                if conn is not None:
                    conn.close()
                self._wconn = None
                if time.monotonic() >= give_up:
                    raise LedgerUnavailable(f"{type(exc).__name__}: {exc}") from exc
                time.sleep(min(0.1 * 2**attempt, 1.0))
                attempt += 1

    def _close_writer(self) -> None:
        if self._wconn is not None:
            self._wconn.close()
            self._wconn = None

    def _commit_rows(self, conn: psycopg.Connection[tuple[Any, ...]], rows: list[Row]) -> None:
        for row in rows:
            try:
                conn.execute(_INSERT_USAGE, row)
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    raise LedgerUnavailable(f"{type(exc).__name__}: {exc}") from exc
                log.error("ledger row %s not written: %s", row[0], exc)

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        assert self._pool is not None, "store is not open"
        with self._pool.connection() as conn:
            return conn.execute(_placeholders(sql), params).fetchall()

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        assert self._pool is not None, "store is not open"
        with self._pool.connection() as conn:
            return conn.execute(_placeholders(sql), params).rowcount
