"""SQLite storage for the audit log: tables `audit` and `audit_checkpoints` in the main database file.

It uses its own connection with synchronous=FULL, so a committed checkpoint survives a power loss before
the head file that copies it is written (otherwise the head could end up ahead of the table). Rows are read
back without casts, so a value whose type was changed no longer hashes to the stored hash.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from interlock.audit.chain import GENESIS, AuditEntry, Checkpoint
from interlock.settings import ConfigError, Settings
from interlock.store.schema import migrate
from interlock.store.sqlite import DEFAULT_BUSY_TIMEOUT_MS, connect

ENTRY_COLUMNS = "seq, ts, actor_id, actor_name, action, target, decision, reason, metadata, prev_hash, hash"
CHECKPOINT_COLUMNS = "id, ts, seq, hash, count, prev, key, signature"


def entry_row(e: AuditEntry) -> tuple[object, ...]:
    """An entry's values, in ENTRY_COLUMNS order (every backend)."""
    return (
        e.seq,
        e.ts,
        e.actor_id,
        e.actor_name,
        e.action,
        e.target,
        e.decision,
        e.reason,
        e.metadata,
        e.prev_hash,
        e.hash,
    )


def checkpoint_row(c: Checkpoint) -> tuple[object, ...]:
    """A checkpoint's values, in CHECKPOINT_COLUMNS order (every backend)."""
    return (c.id, c.ts, c.seq, c.hash, c.count, c.prev, c.key, c.signature)


class SqliteAuditStore:
    """The audit tables in SQLite; blocking, used by one thread at a time."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SqliteAuditStore:
        """The store in the database that `settings.store.url` names."""
        url = settings.store_url()
        if not url.startswith("sqlite:///"):
            raise ConfigError(f"invalid config in {settings.source}: store.url: the audit log needs sqlite:///PATH")
        return cls(Path(url[len("sqlite:///") :]).expanduser(), busy_timeout_ms=settings.store.busy_timeout_ms)

    @classmethod
    def over(cls, conn: sqlite3.Connection) -> SqliteAuditStore:
        """A store over an open connection whose tables exist (an in-memory copy, say)."""
        conn.isolation_level = None
        store = cls(Path(":memory:"))
        store._conn = conn
        return store

    def open(self) -> None:
        """Connect and apply migrations (which make the tables append-only)."""
        if self._conn is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path, busy_timeout_ms=self.busy_timeout_ms, synchronous="FULL")
        migrate(conn, "sqlite")
        self._conn = conn

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection."""
        assert self._conn is not None, "audit store is not open"
        return self._conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[None]:
        self.conn.execute(begin)
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction; IMMEDIATE takes the database's write lock, which serialises processes too."""
        return self._transaction("BEGIN IMMEDIATE")

    def snapshot(self) -> AbstractContextManager[None]:
        """A read transaction: in WAL mode every read inside it sees one committed state."""
        return self._transaction("BEGIN")

    def tail(self) -> tuple[int, str]:
        """(seq, hash) of the newest entry; (0, GENESIS) when there is none."""
        row = self.conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (row[0], row[1])

    def hash_at(self, seq: int) -> str | None:
        """The stored hash of entry `seq`."""
        row = self.conn.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else str(row[0])

    def insert_entries(self, entries: Sequence[AuditEntry]) -> None:
        """Insert entries (inside a transaction)."""
        self.conn.executemany(
            f"INSERT INTO audit ({ENTRY_COLUMNS}) VALUES ({', '.join('?' * 11)})",
            [entry_row(e) for e in entries],
        )

    def insert_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Insert a checkpoint (inside a transaction)."""
        self.conn.execute(
            f"INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
        for row in self.conn.execute(f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY id"):
            yield Checkpoint(*row)

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry, by seq, streamed."""
        for row in self.conn.execute(f"SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq"):
            yield AuditEntry(*row)

    def recent(self, limit: int) -> list[AuditEntry]:
        """The newest `limit` entries, newest first."""
        rows = self.conn.execute(f"SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq DESC LIMIT ?", (limit,))
        return [AuditEntry(*row) for row in rows]
