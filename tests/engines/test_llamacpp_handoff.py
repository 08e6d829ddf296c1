"""Events from the engine thread to the event loop: every event arrives, in order, with few wake-ups."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from interlock.engines.llamacpp.generation import Generation
from interlock.engines.llamacpp.handoff import Event, Finish, Outbox, wake_all
from interlock.engines.llamacpp.sampling import SamplingParams, TextAssembler
from interlock.engines.llamacpp.slots import Job


class FakeEngine:
    """Counts wake() calls (a cancellation) like the engine's Waker."""

    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


def new_job(outbox: Outbox) -> Job:
    sampler: Any = None  # the handoff never touches the sampler
    return Job([1, 2, 3], SamplingParams(max_tokens=8), 8, sampler, outbox, TextAssembler(()))


class CountingLoop:
    """Wraps a running loop and counts call_soon_threadsafe: one per wake-up of the loop thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.calls = 0

    def call_soon_threadsafe(self, *args: Any) -> Any:
        self.calls += 1
        return self._loop.call_soon_threadsafe(*args)

    def create_future(self) -> asyncio.Future[None]:
        return self._loop.create_future()


def produce(steps: list[list[tuple[Outbox, Event, bool]]]) -> threading.Thread:
    """An engine-like thread: each step puts its events, then wakes what needs waking once."""

    def run() -> None:
        for step in steps:
            to_wake = [box for box, event, last in step if box.put(event, last=last)]
            wake_all(to_wake)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


async def test_a_stream_gets_every_piece_in_order() -> None:
    box = Outbox(asyncio.get_running_loop())
    generation = Generation(FakeEngine(), new_job(box))
    pieces = [f"p{i}" for i in range(200)]
    steps = [[(box, p, False)] for p in pieces] + [[(box, Finish("length", 3, 200), True)]]
    thread = produce(steps)
    got = [event async for event in generation.events()]
    thread.join()
    assert got[:-1] == pieces
    assert got[-1] == Finish("length", 3, 200)
    assert generation.finished


async def test_one_wake_up_per_step_for_all_requests_of_a_loop() -> None:
    loop = CountingLoop(asyncio.get_running_loop())
    boxes = [Outbox(loop) for _ in range(4)]  # type: ignore[arg-type]
    gens = [Generation(FakeEngine(), new_job(b)) for b in boxes]
    steps = [[(b, "x", False) for b in boxes], [(b, Finish("stop", 3, 1), True) for b in boxes]]
    thread = produce(steps)
    results = await asyncio.gather(*(g.result() for g in gens))
    thread.join()
    assert results == [("x", Finish("stop", 3, 1))] * 4
    assert loop.calls <= 2  # one per step at most, whatever the number of requests


async def test_a_pending_wake_up_is_not_repeated() -> None:
    box = Outbox(asyncio.get_running_loop())
    assert box.put("a")  # the first event needs a wake-up
    assert not box.put("b")  # one is already scheduled: it will drain "b" too
    assert not box.put(Finish("stop", 1, 2), last=True)
    wake_all([box])
    generation = Generation(FakeEngine(), new_job(box))
    assert await generation.result() == ("ab", Finish("stop", 1, 2))


async def test_a_whole_answer_wakes_the_loop_once() -> None:
    loop = CountingLoop(asyncio.get_running_loop())
    box = Outbox(loop)  # type: ignore[arg-type]
    generation = Generation(FakeEngine(), new_job(box))
    waiting = asyncio.ensure_future(generation.result())
    await asyncio.sleep(0)  # result() is waiting now: it asked not to be woken for pieces
    steps = [[(box, str(i), False)] for i in range(50)] + [[(box, Finish("length", 3, 50), True)]]
    thread = produce(steps)
    text, finish = await waiting
    thread.join()
    assert text == "".join(str(i) for i in range(50))
    assert finish.completion_tokens == 50
    assert loop.calls == 1


async def test_an_error_is_raised_to_the_consumer() -> None:
    box = Outbox(asyncio.get_running_loop())
    generation = Generation(FakeEngine(), new_job(box))
    thread = produce([[(box, "partial", False)], [(box, RuntimeError("engine broke"), True)]])
    with pytest.raises(RuntimeError, match="engine broke"):
        await generation.result()
    thread.join()
    assert generation.finished


async def test_leaving_early_cancels_the_job() -> None:
    box = Outbox(asyncio.get_running_loop())
    engine = FakeEngine()
    job = new_job(box)
    generation = Generation(engine, job)
    thread = produce([[(box, "first", False)]])
    events = generation.events()
    assert await events.__anext__() == "first"
    await events.aclose()
    thread.join()
    assert job.cancelled
    assert engine.woken == 1


def test_a_closed_loop_is_reported_dead() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    box = Outbox(loop)
    assert box.put("x")
    assert wake_all([box]) == [box]
