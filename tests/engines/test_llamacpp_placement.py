"""Which free slot a new job gets (prompt reuse against the gaps that cost a filler token per step), and which
other slot it copies a prompt prefix from."""

from __future__ import annotations

from typing import Any

from interlock.engines.llamacpp.handoff import Outbox
from interlock.engines.llamacpp.sampling import SamplingParams, TextAssembler
from interlock.engines.llamacpp.slots import (
    MIN_COPIED,
    Job,
    Slot,
    choose_slot,
    common_prefix,
    find_share,
    worth_keeping,
)

SYSTEM = list(range(100, 120))  # a shared system prompt: every used slot holds it


def job(prompt: list[int], max_tokens: int = 32, partition: str = "") -> Job:
    sampler: Any = None  # placement never samples
    outbox: Any = Outbox.__new__(Outbox)  # nor talks to an event loop
    params = SamplingParams(max_tokens=max_tokens)
    return Job(prompt, params, max_tokens, sampler, outbox, TextAssembler(()), partition=partition)


def slots_of(n: int, busy: list[int], cached: dict[int, list[int]]) -> list[Slot]:
    slots = [Slot(seq_id=i, cached=list(cached.get(i, SYSTEM))) for i in range(n)]
    for slot in slots:
        if slot.seq_id in busy:
            slot.job = job([*slot.cached, 1])
    return slots


def place(slots: list[Slot], new: Job, *, kv_unified: bool = False, share: bool = False) -> int:
    free = [s for s in slots if s.job is None]
    return choose_slot(slots, free, new, kv_unified=kv_unified, share=share).seq_id


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


def test_with_sharing_a_long_prefix_is_copied_next_to_the_busy_slots() -> None:
    tools = list(range(1000, 1600))
    slots = slots_of(8, busy=[0, 1], cached={6: [*SYSTEM, *tools]})
    # Slot 2 copies slot 6's cells (find_share) instead of opening a gap of fillers at 2-5.
    assert place(slots, job([*SYSTEM, *tools, 5], max_tokens=32), share=True) == 2


def test_with_sharing_the_own_prefix_breaks_ties() -> None:
    tools = list(range(1000, 1600))
    slots = slots_of(8, busy=[0, 1, 4], cached={3: [*SYSTEM, *tools], 5: [*SYSTEM, *tools, 9]})
    # Slots 2 and 3 both fill a gap; 3 holds the prefix itself, so nothing needs copying.
    assert place(slots, job([*SYSTEM, *tools, 9, 5], max_tokens=32), share=True) == 3


def test_the_unified_cache_has_no_gaps_to_pay_for() -> None:
    prompt = [*SYSTEM, 7, 8, 9, 10]
    slots = slots_of(8, busy=[0, 1], cached={6: [*SYSTEM, 7, 8, 9]})
    assert place(slots, job(prompt), kv_unified=True) == 6


TOOLS = list(range(2000, 2300))  # a 300-token tool list


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 3, 4]) == 3
    assert common_prefix([1, 2, 3], [1, 9, 3]) == 1
    assert common_prefix([], [1]) == 0
    assert common_prefix([5], [6]) == 0


def test_an_idle_slot_holding_the_prefix_is_copied_from_now() -> None:
    slots = slots_of(4, busy=[], cached={0: [], 1: [*SYSTEM, *TOOLS, 7], 2: [], 3: []})
    new = job([*SYSTEM, *TOOLS, 8, 9])
    slots[0].assign(new)
    share = find_share(slots, slots[0], new)
    assert share is not None and share.donor is slots[1] and share.job is None
    assert share.length == len(SYSTEM) + len(TOOLS) and share.due()


def test_a_slot_still_decoding_the_prefix_is_waited_for() -> None:
    slots = slots_of(4, busy=[], cached={i: [] for i in range(4)})
    first = job([*SYSTEM, *TOOLS, 7])
    slots[0].assign(first)
    slots[0].fed = 40  # decoded 40 of its prompt tokens so far
    slots[0].cached = first.prompt[:40]
    new = job([*SYSTEM, *TOOLS, 8])
    slots[1].assign(new)
    share = find_share(slots, slots[1], new)
    assert share is not None and share.donor is slots[0] and share.job is first
    assert share.length == len(SYSTEM) + len(TOOLS) and not share.due()
    slots[0].fed = len(first.prompt)
    assert share.due()


def test_a_stopped_donor_leaves_what_it_decoded() -> None:
    slots = slots_of(2, busy=[], cached={0: [], 1: []})
    first = job([*SYSTEM, *TOOLS, 7])
    slots[0].assign(first)
    new = job([*SYSTEM, *TOOLS, 8])
    slots[1].assign(new)
    share = find_share(slots, slots[1], new)
    assert share is not None and not share.due()
    slots[0].cached = first.prompt[:100]  # cancelled after 100 tokens
    slots[0].clear()
    assert share.due() and share.available(new) == 100


def test_waiting_slots_are_no_donors_and_short_gains_are_not_copied() -> None:
    slots = slots_of(3, busy=[], cached={0: [], 1: [], 2: []})
    first = job([*SYSTEM, *TOOLS, 7])
    slots[0].assign(first)
    second = job([*SYSTEM, *TOOLS, 8])
    slots[1].assign(second)
    slots[1].share = find_share(slots, slots[1], second)
    third = job([*SYSTEM, *TOOLS, 9])
    slots[2].assign(third)
    share = find_share(slots, slots[2], third)
    assert share is not None and share.donor is slots[0]  # not slots[1], itself waiting
    short = job([*TOOLS[: MIN_COPIED - 1], 5])
    slots[2].clear()
    slots[2].assign(short)
    slots[0].cached = list(TOOLS)
    slots[0].clear()
    assert find_share(slots, slots[2], short) is None
    enough = job([*TOOLS[:MIN_COPIED], 5])
    slots[2].clear()
    slots[2].assign(enough)
    share = find_share(slots, slots[2], enough)
    assert share is not None and share.donor is slots[0] and share.length == MIN_COPIED


def test_a_few_tokens_held_now_are_copied_but_not_waited_for() -> None:
    # The same short prompt ran on slot 5; the next one like it goes next to the busy slots (2) and
    # copies slot 5's cells instead of decoding the 4 tokens: they would cost an extra pass.
    prompt = [*SYSTEM, 7, 8, 9, 10]
    slots = slots_of(8, busy=[0, 1], cached={5: prompt})
    new = job(prompt)
    free = [s for s in slots if s.job is None]
    slot = choose_slot(slots, free, new, kv_unified=False, share=True)
    assert slot.seq_id == 2
    slot.assign(new)
    share = find_share(slots, slot, new)
    assert share is not None and share.donor is slots[5] and share.job is None
    assert share.length == len(prompt) - 1  # all but the last token, whose logits are needed
    # A donor still decoding the same 4 tokens is not waited for: they are decoded in the same step.
    slots[5].cached = list(SYSTEM)
    slots[5].assign(job(prompt))
    assert find_share(slots, slot, new) is None


def test_cells_about_to_be_overwritten_are_worth_keeping_when_no_other_slot_holds_them() -> None:
    held = [*SYSTEM, *range(500, 540)]
    slots = slots_of(4, busy=[0], cached={1: held, 2: [], 3: []})
    slots[1].prompt_len = len(SYSTEM) + 8  # its last job's prompt; 32 tokens of answer follow
    assert worth_keeping(slots, slots[1], reused=len(SYSTEM))  # a new prompt after the system prompt
    # The same question again keeps the whole last prompt; only the old answer would go.
    assert not worth_keeping(slots, slots[1], reused=len(SYSTEM) + 7)
    assert not worth_keeping(slots, slots[1], reused=len(held) - 7)  # 7 tokens lost: less than 4 copies' worth
    slots[2].cached = [*held, 9]  # another slot holds all of it
    assert not worth_keeping(slots, slots[1], reused=len(SYSTEM))


def test_cells_are_reused_and_shared_only_within_one_partition() -> None:
    """Another key's prompt in a slot is no prefix for this key's job: reused, it would answer sooner."""
    theirs = job([*SYSTEM, *TOOLS, 7, 8], partition="key:a")
    slots = slots_of(3, busy=[], cached={0: [], 1: [], 2: []})
    slots[1].assign(theirs)
    slots[1].cached = list(theirs.prompt)
    slots[1].clear()  # idle, holding key a's cells
    mine = job([*SYSTEM, *TOOLS, 9], partition="key:b")
    assert slots[1].shared_prefix(mine) == 0
    assert place(slots, mine) == 0  # no slot holds anything of key b's: the lowest id
    slots[0].assign(mine)
    assert find_share(slots, slots[0], mine) is None  # neither held cells nor ...
    decoding = job([*SYSTEM, *TOOLS, 5], partition="key:a")
    slots[2].assign(decoding)  # ... a prompt another key is decoding now
    assert find_share(slots, slots[0], mine) is None
    again = job([*SYSTEM, *TOOLS, 7, 9], partition="key:a")
    assert slots[1].shared_prefix(again) == len(SYSTEM) + len(TOOLS) + 1  # the same key reuses its own
    assert place(slots, again) == 1
