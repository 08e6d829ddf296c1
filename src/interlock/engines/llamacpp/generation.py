"""What the event loop holds of the engine: a submitted request (`Generation`), its events, and the engine's stats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from interlock.engines.llamacpp.slots import Event, Finish, Job


class Waker(Protocol):
    """The engine as a generation sees it: it can be woken to notice a cancellation."""

    def wake(self) -> None: ...


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of the engine for /readyz and tests."""

    state: str
    slots: int
    slots_busy: int
    queue_length: int
    queue_size: int
    n_ctx_per_slot: int
    steps: int
    max_batch_seqs: int
    prompt_tokens: int
    prompt_tokens_reused: int
    completion_tokens: int
    requests_done: int


def _threadsafe_put(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Event]) -> Callable[[Event], None]:
    """A callable for the engine thread that puts an event on `queue` inside `loop`."""

    def put(event: Event) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    return put


class Generation:
    """A submitted request, seen from the event loop."""

    def __init__(self, engine: Waker, job: Job, queue: asyncio.Queue[Event]) -> None:
        self._engine = engine
        self._job = job
        self._queue = queue
        self.prompt_tokens = len(job.prompt)
        self.finished = False

    def cancel(self) -> None:
        """Stop generating; the slot is freed at the engine's next step."""
        if not self.finished:
            self._job.cancelled = True
            self._engine.wake()

    async def events(self) -> AsyncIterator[str | Finish]:
        """Text pieces as they are generated, then one `Finish`. Closing it early cancels."""
        try:
            while True:
                event = await self._queue.get()
                if isinstance(event, BaseException):
                    self.finished = True
                    raise event
                if isinstance(event, Finish):
                    self.finished = True
                    yield event
                    return
                yield event
        finally:
            self.cancel()
