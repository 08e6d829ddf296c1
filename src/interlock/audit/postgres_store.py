"""PostgreSQL storage for the audit log: tables `audit` and `audit_checkpoints`, shared by several replicas.

Replicas append to one chain: `transaction()` takes a transaction-level advisory lock before `AuditLog` reads
the tail, so seq and prev_hash are assigned by one process at a time, and the lock is released by the
commit that makes the new entries visible to the next holder (READ COMMITTED reads after the lock see them).
The tables are append-only through the triggers of migration 0003.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg

from interlock.audit.chain import GENESIS, AuditEntry, Checkpoint
from interlock.audit.sqlite_store import CHECKPOINT_COLUMNS, ENTRY_COLUMNS, checkpoint_row, entry_row
from interlock.store.postgres import connect, lock_key, migrate

_STREAM_ROWS = 1000


class PostgresAuditStore:
    """The audit tables in PostgreSQL; blocking, used by one thread at a time, on one connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lock_key = 0

    def open(self) -> None:
        """Connect and apply migrations."""
        if self._conn is not None:
            return
        migrate(self.url)
        conn = connect(self.url)
        self._lock_key = lock_key(conn, "interlock.audit")
        self._conn = conn

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The open connection."""
        assert self._conn is not None, "audit store is not open"
        return self._conn

    @contextmanager
    def _transaction(self, begin: str, lock: bool) -> Iterator[None]:
        self.conn.execute(begin)
        try:
            if lock:
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            yield
        except BaseException:
            if not (self.conn.closed or self.conn.broken):
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction holding the log's advisory lock, which serialises every replica's writers."""
        return self._transaction("BEGIN", lock=True)

    def snapshot(self) -> AbstractContextManager[None]:
        """A read transaction: REPEATABLE READ makes every read inside it see one committed state."""
        return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", lock=False)

    def tail(self) -> tuple[int, str]:
        """(seq, hash) of the newest entry; (0, GENESIS) when there is none."""
        row = self.conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    def hash_at(self, seq: int) -> str | None:
        """The stored hash of entry `seq`."""
        row = self.conn.execute("SELECT hash FROM audit WHERE seq = %s", (seq,)).fetchone()
        return None if row is None else str(row[0])

    def insert_entries(self, entries: Sequence[AuditEntry]) -> None:
        """Insert entries (inside a transaction)."""
        with self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO audit ({ENTRY_COLUMNS}) VALUES ({', '.join(['%s'] * 11)})",
                [entry_row(e) for e in entries],
            )

    def insert_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Insert a checkpoint (inside a transaction)."""
        self.conn.execute(
            f"INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            checkpoint_row(checkpoint),
        )

    def last_checkpoint(self) -> Checkpoint | None:
        """The checkpoint with the highest id."""
        row = self.conn.execute(
            f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else Checkpoint(*row)

    def checkpoints(self) -> Iterator[Checkpoint]:
        """Every checkpoint, by id."""
        for row in self._stream(f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY id"):
            yield Checkpoint(*row)

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry, by seq, streamed."""
        for row in self._stream(f"SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq"):
            yield AuditEntry(*row)

    def _stream(self, sql: str) -> Iterator[tuple[Any, ...]]:
        # A server-side cursor keeps a long log out of memory; it needs a transaction, so open one if none is.
        if self.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            with self.snapshot():
                yield from self._cursor_rows(sql)
        else:
            yield from self._cursor_rows(sql)

    def _cursor_rows(self, sql: str) -> Iterator[tuple[Any, ...]]:
        with self.conn.cursor(name="interlock_audit_stream") as cur:
            cur.itersize = _STREAM_ROWS
            cur.execute(sql)
            yield from cur

    def recent(self, limit: int) -> list[AuditEntry]:
        """The newest `limit` entries, newest first."""
        rows = self.conn.execute(f"SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq DESC LIMIT %s", (limit,))
        return [AuditEntry(*row) for row in rows]
