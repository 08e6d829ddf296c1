"""The ledger's durable spool: rows the database could not take yet, on local disk until it can.

When the database refuses the ledger writer (a lock held past `busy_timeout`, a backup, a VACUUM, a
PostgreSQL failover), the writer appends the batch here instead and fsyncs it, so the `kill -9`
promise of the ledger (a row is durable within the flush interval) holds during the outage. Once the
database takes writes again the spool is replayed, in order, with an insert that ignores request ids
already present: a replay cut short by a crash is simply run again, and no row is written twice.
When the spool reaches `max_bytes` it takes no more rows and the gateway refuses new requests (503)
rather than serving them unmetered.

Format: one JSON array per line, the values of `USAGE_COLUMNS`. The file is created with mode 0600.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import orjson

from interlock.store.records import USAGE_COLUMN_COUNT

log = logging.getLogger(__name__)

Row = tuple[object, ...]


class LedgerSpool:
    """An append-only file of ledger rows, fsynced per batch, replayed and emptied when the database is back."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._rows = self._count()

    def _count(self) -> int:
        try:
            with self.path.open("rb") as f:
                return sum(1 for line in f if line.strip())
        except FileNotFoundError:
            return 0

    @property
    def pending(self) -> int:
        """Rows waiting in the spool."""
        return self._rows

    @property
    def full(self) -> bool:
        """Whether the spool has reached its size limit."""
        try:
            return self.path.stat().st_size >= self.max_bytes
        except FileNotFoundError:
            return False

    def append(self, rows: list[Row]) -> bool:
        """Store `rows` durably; False when the spool is full (nothing stored)."""
        data = b"".join(orjson.dumps(list(row)) + b"\n" for row in rows)
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(data) > self.max_bytes:
                return False
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._rows += len(rows)
        return True

    def replay(self, insert: Callable[[list[Row]], None], chunk: int = 500) -> int:
        """Insert every spooled row in order with `insert` (which must ignore ids already present), then empty
        the spool. An exception from `insert` leaves the spool as it was (replayed again later)."""
        with self._lock:
            try:
                lines = self.path.read_bytes().splitlines()
            except FileNotFoundError:
                return 0
            rows: list[Row] = []
            for n, line in enumerate(lines):
                try:
                    row = tuple(orjson.loads(line))
                    # A row spooled before the ledger gained a column (`run_id`, m0012): its default.
                    rows.append(row + ("",) * (USAGE_COLUMN_COUNT - len(row)))
                except orjson.JSONDecodeError:
                    if n != len(lines) - 1:
                        raise
                    # A write cut by a crash: it was never fsynced, so never reported as committed.
                    log.warning("ledger spool: dropping a torn last line in %s", self.path)
            for i in range(0, len(rows), chunk):
                insert(rows[i : i + chunk])
            self.path.unlink()
            self._rows = 0
            log.warning("ledger: %d spooled rows replayed into the database", len(rows))
            return len(rows)
