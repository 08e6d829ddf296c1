"""Which free slot a new job gets: prompt reuse against the gaps that cost a filler token per step."""

from __future__ import annotations

from typing import Any

from interlock.engines.llamacpp.handoff import Outbox
from interlock.engines.llamacpp.sampling import SamplingParams, TextAssembler
from interlock.engines.llamacpp.slots import Job, Slot, choose_slot

SYSTEM = list(range(100, 120))  # a shared system prompt: every used slot holds it


def job(prompt: list[int], max_tokens: int = 32) -> Job:
    sampler: Any = None  # placement never samples
    outbox: Any = Outbox.__new__(Outbox)  # nor talks to an event loop
    return Job(prompt, SamplingParams(max_tokens=max_tokens), max_tokens, sampler, outbox, TextAssembler(()))


def slots_of(n: int, busy: list[int], cached: dict[int, list[int]]) -> list[Slot]:
    slots = [Slot(seq_id=i, cached=list(cached.get(i, SYSTEM))) for i in range(n)]
    for slot in slots:
        if slot.seq_id in busy:
            slot.job = job([*slot.cached, 1])
    return slots


def place(slots: list[Slot], new: Job, *, kv_unified: bool = False) -> int:
    free = [s for s in slots if s.job is None]
    return choose_slot(slots, free, new, kv_unified=kv_unified).seq_id


def test_idle_engine_takes_the_longest_prefix() -> None:
    prompt = [*SYSTEM, 7, 8, 9, 10]
    slots = slots_of(8, busy=[], cached={5: [*SYSTEM, 7, 8, 9]})
    assert place(slots, job(prompt)) == 5


def test_a_few_reused_tokens_do_not_open_a_gap() -> None:
    prompt = [*SYSTEM, 7, 8, 9, 10]
    # Slot 6 holds 3 more tokens of this prompt, but running there puts fillers on slots 2-5 for
    # every step of a 32-token answer: the slot next to the busy ones wins.
    slots = slots_of(8, busy=[0, 1], cached={6: [*SYSTEM, 7, 8, 9]})
    assert place(slots, job(prompt)) == 2


def test_a_gap_is_filled_first() -> None:
    slots = slots_of(8, busy=[0, 1, 3], cached={})
    assert place(slots, job([*SYSTEM, 5])) == 2


def test_a_long_reused_prefix_is_worth_a_gap() -> None:
    tools = list(range(1000, 1600))  # a 600-token tool list only slot 6 has seen
    slots = slots_of(8, busy=[0, 1], cached={6: [*SYSTEM, *tools]})
    assert place(slots, job([*SYSTEM, *tools, 5], max_tokens=32)) == 6


def test_the_unified_cache_has_no_gaps_to_pay_for() -> None:
    prompt = [*SYSTEM, 7, 8, 9, 10]
    slots = slots_of(8, busy=[0, 1], cached={6: [*SYSTEM, 7, 8, 9]})
    assert place(slots, job(prompt), kv_unified=True) == 6
