"""The queue between the request path and a store's ledger writer thread.

Requests put rows without blocking. The writer takes them in batches: it waits for a first row, sleeps
`interval` seconds once, then takes everything queued (up to `max_rows`). It does not wake for each row,
or poll: every wake-up of the writer takes the GIL from the event loop (a futex hand-off each way),
which measurably slowed the request path. A row is therefore committed at most `interval` plus one
commit after it was queued. While a backlog of `max_rows` or more waits, the writer skips the sleep.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Literal

from interlock.store.records import UsageRecord
from interlock.store.spool import LedgerSpool, Row

log = logging.getLogger(__name__)

LedgerState = Literal["ok", "spooling", "full"]
PROBE_FIRST_S = 0.5  # while spooling, the database is tried again after this, doubling up to PROBE_MAX_S
PROBE_MAX_S = 10.0


class LedgerUnavailable(Exception):
    """The database refuses ledger writes for now (locked, unreachable, read-only); the rows are intact."""


class LedgerQueue:
    """Rows waiting for the ledger writer, handed out in batches, with a way to wait for commits."""

    def __init__(self, interval: float, max_rows: int) -> None:
        self.interval = interval
        self.max_rows = max_rows
        self._queue: queue.SimpleQueue[UsageRecord | None] = queue.SimpleQueue()
        self._committed_cv = threading.Condition()
        self._enqueued = 0
        self._committed = 0
        self._closed = False
        self._stopping = threading.Event()  # cuts the writer's sleep short at shutdown
        self.idle_wake: Callable[[], float | None] = lambda: None  # seconds to wait for a row before an empty batch

    def put(self, row: UsageRecord) -> None:
        """Queue one row; never blocks."""
        self._enqueued += 1
        self._queue.put(row)

    def stop(self) -> None:
        """Ask the writer to commit what is queued and end its loop."""
        self._queue.put(None)
        self._stopping.set()

    def batches(self) -> Iterator[list[UsageRecord]]:
        """Batches until `stop()`, then whatever was queued after it; for the writer thread."""
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self.idle_wake())
            except queue.Empty:
                yield []  # nothing queued: the writer may retry the database now
                continue
            if first is None:
                break
            if self._queue.qsize() < self.max_rows:
                self._stopping.wait(self.interval)
            batch = [first]
            while len(batch) < self.max_rows:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            yield batch
        rest = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                rest.append(item)
        if rest:
            yield rest
        with self._committed_cv:
            self._closed = True
            self._committed_cv.notify_all()

    def committed(self, n: int) -> None:
        """The writer committed (or gave up on) `n` more rows."""
        with self._committed_cv:
            self._committed += n
            self._committed_cv.notify_all()

    def mark(self) -> int:
        """The number of rows queued so far, to wait for with `wait`."""
        return self._enqueued

    def wait(self, target: int, timeout: float = 30.0) -> None:
        """Block until `target` rows are committed or the writer has ended."""
        with self._committed_cv:
            self._committed_cv.wait_for(lambda: self._committed >= target or self._closed, timeout=timeout)


class BatchedLedger:
    """What the stores share: a writer thread fed by a LedgerQueue, and the async wrappers around it.

    A store sets `_rows` (and `_spool`) in its constructor, implements `open_sync`/`close_sync` (calling
    `_start_writer` and `_stop_writer`) and `_insert_rows` (one batch in one transaction, raising
    `LedgerUnavailable` when the database refuses writes). The writer thread never dies of a failed write:
    rows the database will not take go to the spool, and are replayed when it takes them again.
    """

    _rows: LedgerQueue
    _writer: threading.Thread | None = None
    _spool: LedgerSpool | None = None
    _next_probe: float = 0.0
    _probe_wait: float = PROBE_FIRST_S
    _refused = False  # rows were lost: the database refused them and the spool could not take them

    def open_sync(self) -> None:
        """Open the store (blocking)."""
        raise NotImplementedError

    def close_sync(self) -> None:
        """Flush and close the store (blocking)."""
        raise NotImplementedError

    def _insert_rows(self, rows: list[Row], *, replay: bool = False) -> None:
        """Insert rows in one transaction (with `replay`, ignoring request ids already present); raise
        `LedgerUnavailable` when the database refuses writes. Store-specific."""
        raise NotImplementedError

    def ledger_state(self) -> LedgerState:
        """`ok`; `spooling` while rows wait in the spool for the database; `full` when the spool takes no more."""
        spool = self._spool
        if self._refused:
            return "full"
        if spool is None or not spool.pending:
            return "ok"
        return "full" if spool.full else "spooling"

    def _deliver(self, batch: list[UsageRecord]) -> None:
        """Write a batch to the database, or to the spool while the database refuses writes; for the writer."""
        try:
            if self._spool is not None and self._spool.pending and not self._replay():
                self._to_spool([r.to_row() for r in batch])
                return
            if not batch and self._refused:
                self._probe()  # rows were lost and nothing is spooled: is the database back?
                return
            if batch:
                rows = [r.to_row() for r in batch]
                try:
                    self._insert_rows(rows)
                    self._refused = False
                except LedgerUnavailable as exc:
                    log.error("ledger: the database refuses writes (%s); spooling %d rows to disk", exc, len(rows))
                    self._next_probe = time.monotonic() + self._probe_wait
                    self._to_spool(rows)
        except Exception:
            log.exception("ledger: writing a batch of %d rows failed", len(batch))
            self._to_spool([r.to_row() for r in batch])

    def _replay(self) -> bool:
        """Replay the spool if it is time to try; whether the spool is empty now."""
        assert self._spool is not None
        now = time.monotonic()
        if now < self._next_probe:
            return False
        try:
            self._spool.replay(lambda rows: self._insert_rows(rows, replay=True))
        except LedgerUnavailable as exc:
            self._probe_wait = min(self._probe_wait * 2, PROBE_MAX_S)
            self._next_probe = now + self._probe_wait
            log.warning("ledger: the database still refuses writes (%s); %d rows spooled", exc, self._spool.pending)
            return False
        self._probe_wait = PROBE_FIRST_S
        self._refused = False
        return True

    def _probe(self) -> None:
        now = time.monotonic()
        if now < self._next_probe:
            return
        try:
            self._insert_rows([])
        except LedgerUnavailable:
            self._probe_wait = min(self._probe_wait * 2, PROBE_MAX_S)
            self._next_probe = now + self._probe_wait
            return
        self._probe_wait, self._refused = PROBE_FIRST_S, False

    def _to_spool(self, rows: list[Row]) -> None:
        """Spool `rows` (as many as fit); the rest are lost, logged, and the ledger reports `full`."""
        if not rows:
            return
        kept = 0
        if self._spool is not None:
            if self._spool.append(rows):
                kept = len(rows)
            else:
                while kept < len(rows) and self._spool.append(rows[kept : kept + 1]):
                    kept += 1
        if kept < len(rows):
            self._refused = True
            where = "full" if self._spool is not None else "not configured"
            log.error("ledger: %d rows lost: the database refuses writes and the spool is %s", len(rows) - kept, where)

    def _write_loop(self) -> None:
        """Deliver every batch until the queue stops; while rows are spooled, wake up to retry the database."""
        self._rows.idle_wake = lambda: self._probe_wait if self.ledger_state() != "ok" else None
        if self._spool is not None and self._spool.pending:  # left by an earlier run (a crash during an outage)
            self._replay()
        for batch in self._rows.batches():
            self._deliver(batch)
            self._rows.committed(len(batch))
        self._close_writer()

    def _close_writer(self) -> None:
        """Release the writer's connection, if any."""

    def _start_writer(self) -> None:
        self._writer = threading.Thread(target=self._write_loop, name="interlock-ledger", daemon=True)
        self._writer.start()

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._rows.stop()
            self._writer.join()
            self._writer = None

    async def open(self) -> None:
        """Open the store: migrations, connections and the ledger writer."""
        await asyncio.to_thread(self.open_sync)

    async def close(self) -> None:
        """Flush every queued row, then stop."""
        await asyncio.to_thread(self.close_sync)

    def is_open(self) -> bool:
        """Whether the writer is running."""
        return self._writer is not None and self._writer.is_alive()

    def record_usage(self, row: UsageRecord) -> None:
        """Queue one ledger row; it is committed within the flush interval. Never blocks."""
        self._rows.put(row)

    async def flush(self) -> None:
        """Wait until every row queued so far is committed."""
        await asyncio.to_thread(self._rows.wait, self._rows.mark())
