"""What the event loop holds of the engine: a submitted request (`Generation`), its events, and the engine's stats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from interlock.engines.llamacpp.slots import Finish, Job


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
    prompt_tokens_reused: int  # prompt tokens whose KV cells the slot still held from its last request
    prompt_tokens_shared: int  # prompt tokens whose KV cells were copied from another slot
    tokens_kept: int  # cells saved in the prompt cache before a new job overwrote them (`worth_keeping`)
    prompt_tokens_cached: int  # prompt tokens whose KV cells were loaded from the prompt cache
    prompt_cache_entries: int
    prompt_cache_bytes: int
    filler_tokens: int  # tokens decoded only to keep a batch's sequence ids consecutive
    completion_tokens: int
    requests_done: int


class Generation:
    """A submitted request, seen from the event loop.

    Read it either as a stream (`events`: each piece as it is generated) or whole (`result`: the
    event loop is woken once, at the end, which leaves the CPU to llama.cpp while it generates).
    """

    def __init__(self, engine: Waker, job: Job) -> None:
        self._engine = engine
        self._job = job
        self._outbox = job.outbox
        self.prompt_tokens = len(job.prompt)
        self.finished = False

    def cancel(self) -> None:
        """Stop generating; the slot is freed at the engine's next step."""
        if not self.finished:
            self._job.cancelled = True
            self._engine.wake()

    async def _next(self) -> str | Finish:
        box = self._outbox
        while not box.events:
            await box.wait()
        event = box.events.popleft()
        if isinstance(event, BaseException):
            self.finished = True
            raise event
        if isinstance(event, Finish):
            self.finished = True
        return event

    async def events(self) -> AsyncIterator[str | Finish]:
        """Text pieces as they are generated, then one `Finish`. Closing it early cancels."""
        try:
            while True:
                event = await self._next()
                yield event
                if isinstance(event, Finish):
                    return
        finally:
            self.cancel()

    async def result(self) -> tuple[str, Finish]:
        """The whole text and the `Finish`. Cancelled if the caller is."""
        self._outbox.streaming = False
        parts: list[str] = []
        try:
            while True:
                event = await self._next()
                if isinstance(event, Finish):
                    return "".join(parts), event
                parts.append(event)
        finally:
            self.cancel()
