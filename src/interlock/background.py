"""A periodic background job: run a coroutine every N seconds in a task of its own, until closed.

Caches refreshed from the store, the audit checkpoint timer and the spend-velocity check all run this
way. A run that fails is logged and the next one comes on time: a periodic job never stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]


class Periodic:
    """Runs `job` every `interval_s` seconds (the first run one interval after `start`); 0 or less: never.

    A failed run is logged as `failure`, with its traceback, to `log` (default: the job's module's logger).
    """

    def __init__(
        self,
        job: Callable[[], Awaitable[object]],
        interval_s: float,
        *,
        name: str,
        failure: str,
        log: logging.Logger | None = None,
    ) -> None:
        self._job = job
        self.interval_s = interval_s
        self.name = name
        self._failure = failure
        self._log = log or logging.getLogger(getattr(job, "__module__", None) or __name__)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the task is started and not yet closed."""
        return self._task is not None

    def start(self) -> None:
        """Start the task in the running loop (a second start, or an interval of 0 or less, does nothing)."""
        if self._task is None and self.interval_s > 0:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def begin(self) -> None:
        """Run the job once now, then `start`: a failure of this first run propagates (nothing is started)."""
        await self._job()
        self.start()

    async def close(self) -> None:
        """Cancel the task and wait until it has stopped (a run in progress is cancelled too)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self._job()
            except Exception:
                self._log.exception(self._failure)
