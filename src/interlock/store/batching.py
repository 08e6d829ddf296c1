"""The queue between the request path and a store's ledger writer thread.

Requests put rows without blocking. The writer takes them in batches: it waits for a first row, sleeps
`interval` seconds once, then takes everything queued (up to `max_rows`). It does not wake for each row,
or poll: every wake-up of the writer takes the GIL from the event loop (a futex hand-off each way),
which measurably slowed the request path. A row is therefore committed at most `interval` plus one
commit after it was queued. While a backlog of `max_rows` or more waits, the writer skips the sleep.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator

from interlock.store.records import UsageRecord


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
            first = self._queue.get()
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

    A store sets `_rows` in its constructor, implements `open_sync`/`close_sync` (calling `_start_writer`
    and `_stop_writer`) and `_write_loop` (committing each batch of `_rows.batches()`).
    """

    _rows: LedgerQueue
    _writer: threading.Thread | None = None

    def open_sync(self) -> None:
        """Open the store (blocking)."""
        raise NotImplementedError

    def close_sync(self) -> None:
        """Flush and close the store (blocking)."""
        raise NotImplementedError

    def _write_loop(self) -> None:
        raise NotImplementedError

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
