"""Progress bars for long command-line work (audit verify over a large log), on stderr so stdout stays data."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from interlock.audit.chain import AuditEntry, AuditStore, Checkpoint

Advance = Callable[[int], None]
_EVERY = 1000  # entries between updates: a bar redrawn per entry would cost more than the check


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, *, quiet: bool = False) -> Iterator[Advance]:
    """A transient bar on stderr; yields `advance(n)`. Quiet, or stderr not a terminal: no bar."""
    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


class CountedEntries:
    """An audit store whose `entries()` reports its progress; everything else is the store's."""

    def __init__(self, store: AuditStore, advance: Advance) -> None:
        self._store = store
        self._advance = advance

    def entries(self) -> Iterator[AuditEntry]:
        """The store's entries, counted."""
        n = 0
        for entry in self._store.entries():
            yield entry
            n += 1
            if n == _EVERY:
                self._advance(n)
                n = 0
        self._advance(n)

    def open(self) -> None:
        """The store's."""
        self._store.open()

    def close(self) -> None:
        """The store's."""
        self._store.close()

    def transaction(self) -> AbstractContextManager[None]:
        """The store's."""
        return self._store.transaction()

    def snapshot(self) -> AbstractContextManager[None]:
        """The store's."""
        return self._store.snapshot()

    def tail(self) -> tuple[int, str]:
        """The store's."""
        return self._store.tail()

    def hash_at(self, seq: int) -> str | None:
        """The store's."""
        return self._store.hash_at(seq)

    def insert_entries(self, entries: Sequence[AuditEntry]) -> None:
        """The store's."""
        self._store.insert_entries(entries)

    def insert_checkpoint(self, checkpoint: Checkpoint) -> None:
        """The store's."""
        self._store.insert_checkpoint(checkpoint)

    def last_checkpoint(self) -> Checkpoint | None:
        """The store's."""
        return self._store.last_checkpoint()

    def checkpoints(self) -> Iterator[Checkpoint]:
        """The store's."""
        return self._store.checkpoints()

    def recent(self, limit: int) -> list[AuditEntry]:
        """The store's."""
        return self._store.recent(limit)
