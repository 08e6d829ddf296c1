"""How a request's events cross from the engine thread to the event loop, in few wake-ups.

The engine thread appends events to a request's `Outbox` and wakes the event loop at most once
per step for all the requests it touched (`wake_all`), and not at all while a wake-up is still
pending: the loop then drains whatever has piled up. A consumer that only wants the whole answer
(`Generation.result`) is woken once, by the last event. Every wake-up of the loop thread costs
CPU that the two llama.cpp threads need on a small machine, and one per token per request used
to be the largest Python cost per token.

Thread rules: `events` is a deque (append and popleft are atomic); `pending` and `streaming` are
plain attributes whose reads and writes are atomic under the GIL; `waiter` is touched only by the
event loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Finish:
    """The last event of a generation: why it ended and the exact token counts."""

    reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int


Event = str | Finish | BaseException
"""What the engine hands to the event loop: a piece of text, the finish, or an error."""


class Outbox:
    """One request's events on their way to its consumer in `loop`."""

    __slots__ = ("events", "loop", "pending", "streaming", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events: deque[Event] = deque()
        self.streaming = True  # False: the consumer waits for the end, so wake it only then
        self.pending = False  # a wake-up is scheduled in `loop` and has not run yet
        self.waiter: asyncio.Future[None] | None = None

    # ---- the engine thread ----

    def put(self, event: Event, *, last: bool = False) -> bool:
        """Queue `event`; True when the loop must be woken for it (then call `wake_all`)."""
        self.events.append(event)
        if self.pending or not (self.streaming or last):
            return False
        self.pending = True  # set after the append: a wake-up that sees it drains this event
        return True

    # ---- the event loop ----

    def _wake(self) -> None:
        self.pending = False  # cleared before the consumer drains, so nothing appended after is missed
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until `events` has something (returns at once if it has)."""
        if self.events:
            return
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None


def _wake_each(boxes: list[Outbox]) -> None:
    for box in boxes:
        box._wake()


def wake_all(boxes: Iterable[Outbox]) -> list[Outbox]:
    """Wake the consumers of `boxes`: one `call_soon_threadsafe` per event loop.

    Returns the boxes whose loop is closed: nobody will read them, so their requests can stop.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[Outbox]] = {}
    for box in boxes:
        by_loop.setdefault(box.loop, []).append(box)
    dead: list[Outbox] = []
    for loop, group in by_loop.items():
        try:
            loop.call_soon_threadsafe(_wake_each, group)
        except RuntimeError:  # the loop is closed
            dead.extend(group)
    return dead
