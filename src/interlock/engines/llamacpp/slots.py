"""Requests in flight (jobs), the slots that run them, what a job reports back, and prefixes shared between slots."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interlock.engines.llamacpp.handoff import Event, Finish, Outbox
from interlock.engines.llamacpp.sampling import RequestSampler, SamplingParams, TextAssembler

__all__ = [
    "MIN_COPIED",
    "MIN_SHARED",
    "BatchWriter",
    "Event",
    "Finish",
    "Job",
    "Share",
    "Slot",
    "choose_slot",
    "find_share",
    "shareable",
    "worth_keeping",
]

# A slot waits for another slot that is still decoding a prompt prefix only when the wait saves at
# least this many tokens: jobs admitted together decode their prompts in the same steps, so waiting for
# a short prefix saves little and costs the waiter a step.
MIN_SHARED = 32


# Cells another slot holds now (or the prompt cache) are copied when they save at least this many
# tokens. A copy moves only the cells copied (`context.copy_prefix`): about 23 KB a token for
# SmolLM2-135M, a fraction of a millisecond for a prompt, while each prompt token decoded next to
# generating slots costs ~1.7 ms on 2 cores, and a prompt chunk longer than one token an extra pass
# over the weights (~18 ms: llama.cpp splits such a batch into ubatches of equal tokens per sequence).
MIN_COPIED = 2


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` have in common."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the usual case, compared in C
        return n
    return int(np.argmax(np.asarray(a[:n]) != np.asarray(b[:n])))


@dataclass(eq=False)
class Job:
    """One request from admission to finish; owned by the engine thread once admitted."""

    prompt: list[int]
    params: SamplingParams
    max_tokens: int
    sampler: RequestSampler
    outbox: Outbox
    assembler: TextAssembler
    submitted_at: float = field(default_factory=time.monotonic)
    # Written by the event loop, read by the engine thread; a bool store is atomic in CPython.
    cancelled: bool = False
    n_generated: int = 0
    # Whose prompt this is (`types.tenancy`): KV cells are reused only between jobs of one partition.
    partition: str = ""


@dataclass(eq=False)
class Slot:
    """One sequence of the shared llama context (its own KV cells), running at most one job.

    A slot keeps the KV cells of its last job when it goes idle: the next job that starts with the
    same tokens (typically the same system prompt) skips decoding them again.
    """

    seq_id: int
    job: Job | None = None
    cached: list[int] = field(default_factory=list)  # tokens whose KV cells this sequence holds
    fed: int = 0  # prompt tokens already in the KV cells
    next_token: int = -1  # sampled, not yet decoded
    logits_index: int = -1  # where this slot's logits are in the current batch, -1 for none
    share: Share | None = None  # waiting for another slot to decode this job's prompt prefix
    prompt_len: int = 0  # the last job's prompt length: the cells after it hold that job's answer
    partition: str = ""  # the partition of the jobs whose tokens `cached` holds

    @property
    def pos(self) -> int:
        """Position of the next token in this sequence."""
        return len(self.cached)

    def prefilling(self) -> bool:
        """Whether prompt tokens remain to be decoded."""
        return self.job is not None and self.fed < len(self.job.prompt)

    def ready(self) -> bool:
        """Whether this slot has tokens to decode in the next step (a job, not waiting for a share)."""
        return self.job is not None and self.share is None

    def shared_prefix(self, job: Job) -> int:
        """How many leading tokens of `job`'s prompt are already in this slot's KV cells (none when they
        are another partition's: a prefix found in the cache answers sooner, which would tell its caller
        what someone else's prompt starts with)."""
        if self.partition != job.partition:
            return 0
        # The last prompt token is always decoded again: its logits give the first new token.
        return min(common_prefix(self.cached, job.prompt), len(job.prompt) - 1)

    def assign(self, job: Job) -> int:
        """Start running `job`; returns how many prompt tokens it reuses (the caller trims the KV)."""
        reused = self.shared_prefix(job)
        self.job, self.fed, self.next_token, self.logits_index = job, reused, -1, -1
        self.prompt_len, self.partition = len(job.prompt), job.partition
        del self.cached[reused:]
        return reused

    def feed(self, writer: BatchWriter, token: int, logits: bool) -> int:
        """Put `token` into the batch at this sequence's next position; returns its batch index."""
        index = writer.add(token, self.pos, self.seq_id, logits)
        self.cached.append(token)
        return index

    def clear(self) -> Job | None:
        """Detach and return the job; the KV cells stay for the next job to reuse."""
        job, self.job, self.logits_index, self.share = self.job, None, -1, None
        return job


@dataclass(frozen=True, eq=False)
class Share:
    """A slot's plan to take its job's first `length` prompt tokens from `donor`'s KV cells.

    `job` is the donor's job while that job is still decoding them (the slot waits, decoding
    nothing), None when the cells are there now.
    """

    donor: Slot
    job: Job | None
    length: int

    def due(self) -> bool:
        """Whether to copy now: the donor has decoded the prefix, or stopped before it (then less is copied)."""
        return self.job is None or self.donor.job is not self.job or self.donor.fed >= self.length

    def available(self, job: Job) -> int:
        """How many of `job`'s prompt tokens the donor's cells hold now (never the last one)."""
        return min(self.length, self.donor.shared_prefix(job))


def _candidates(slots: list[Slot], job: Job, exclude: Slot | None) -> Iterator[Share]:
    """What each slot but `exclude` could give `job`: the cells it holds now, and those it is decoding."""
    limit = len(job.prompt) - 1
    for other in slots:
        if other is exclude or other.share is not None:  # a slot itself waiting for a share is no donor
            continue
        yield Share(other, None, other.shared_prefix(job))
        if other.job is not None and other.prefilling() and other.job.partition == job.partition:
            yield Share(other, other.job, min(common_prefix(other.job.prompt, job.prompt), limit))


def _worth(candidate: Share, held: int) -> bool:
    """Whether `candidate` saves enough over the `held` tokens: MIN_COPIED for cells there now, MIN_SHARED to wait."""
    return candidate.length >= held + (MIN_COPIED if candidate.job is None else MIN_SHARED)


def find_share(slots: list[Slot], slot: Slot, job: Job) -> Share | None:
    """Another slot whose KV cells hold, or are about to hold, a longer prefix of `job`'s prompt.

    Eight agents sharing one system prompt and tool list arrive together: the first decodes the
    prefix, the other seven wait for it and copy its cells instead of each decoding the same
    tokens (issue 18). A donor that is still decoding its own prompt counts for what it will
    hold, if that saves at least MIN_SHARED tokens over what `slot` already holds (`slot.fed`);
    cells held now are copied if they save MIN_COPIED: a conversation that goes on in another slot
    than its last turn's. The longest wins, cells held now on a tie.
    """
    best: Share | None = None
    for candidate in _candidates(slots, job, slot):
        if _worth(candidate, slot.fed) and (best is None or candidate.length > best.length):
            best = candidate
    return best


def shareable(slots: list[Slot], job: Job) -> int:
    """The longest prefix of `job`'s prompt any slot holds or is decoding, if worth a copy; else 0."""
    return max((c.length for c in _candidates(slots, job, None) if _worth(c, 0)), default=0)


def worth_keeping(slots: list[Slot], slot: Slot, reused: int) -> bool:
    """Whether to save the cells `slot` holds before a job that reuses `reused` of them overwrites the rest.

    With the per-sequence cache a new job goes next to the busy slots (`choose_slot`), so the same
    few slots are overwritten again and again, and a conversation that comes back a turn later would
    decode its whole history again; the engine saves what would be lost in its prompt cache
    (`prompt_cache.PromptCache`), as llama.cpp's server saves a slot before giving it a new prompt.
    Worth it when at least `4 * MIN_COPIED` tokens would be lost that no other slot holds, and not
    when the new job keeps the whole of the last one's prompt (the same question again): an answer
    alone is not worth another prompt's place in the cache.
    """
    held = len(slot.cached)
    if held - reused < 4 * MIN_COPIED or reused >= slot.prompt_len - 1:
        return False
    others = (o for o in slots if o is not slot and o.partition == slot.partition)
    elsewhere = max((common_prefix(o.cached, slot.cached) for o in others), default=0)
    return held - max(reused, elsewhere) >= 4 * MIN_COPIED


def choose_slot(
    slots: list[Slot], free: list[Slot], job: Job, *, kv_unified: bool, share: bool = False, saved: int = 0
) -> Slot:
    """The free slot for `job`: the most prompt tokens reused, less what new gaps would cost.

    With the per-sequence KV cache a batch is one pass over the weights only if its sequence ids
    are consecutive, so each idle slot between busy ones carries a filler token every step (the
    engine's `_step`). A reused prefix saves its tokens once; a new gap costs a token per step while
    the job runs, counted as its `max_tokens` (at most 256) steps. Placing by prefix alone scattered
    jobs once a burst had used every slot (each prompt went back to the slot that last saw it):
    4 clients on 16 slots then decoded 1.66 tokens per generated token, most of the excess
    fillers; placed this way, 1.23, and 36% more tokens per second (issue 18, bench/RESULTS.md).
    With `share` (prefixes copied between slots, `find_share`) any free slot can have the longest
    prefix another slot holds or is decoding, or that the prompt cache has `saved`, so that counts
    for every slot: placement then avoids gaps first, and a slot's own prefix only breaks ties (it
    saves the copy). Ties then go to the lowest id; with nothing running, or with the unified cache,
    this is the longest prefix.
    """
    weight = 0 if kv_unified else min(job.max_tokens, 256)
    busy = [s.seq_id for s in slots if s.job is not None]
    if not busy or not weight:
        return max(free, key=lambda s: (s.shared_prefix(job), -s.seq_id))
    lo, hi = busy[0], busy[-1]
    floor = max(shareable(slots, job), saved) if share else 0

    def score(slot: Slot) -> tuple[int, int, int]:
        i = slot.seq_id
        added = (max(hi, i) - min(lo, i)) - (hi - lo) - 1  # filler tokens per step it adds (-1: fills a gap)
        own = slot.shared_prefix(job)
        return max(own, floor) - added * weight, own, -i

    return max(free, key=score)


class BatchWriter:
    """Fills a `llama_batch` allocated with `llama_batch_init` for one `llama_decode` call."""

    def __init__(self, batch: Any, capacity: int) -> None:
        self.batch = batch
        self.capacity = capacity
        self.n = 0

    def reset(self) -> None:
        """Start an empty batch."""
        self.n = 0

    def add(self, token: int, pos: int, seq_id: int, logits: bool) -> int:
        """Append one token; returns its index in the batch."""
        b, i = self.batch, self.n
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq_id
        b.logits[i] = logits
        self.n = i + 1
        b.n_tokens = self.n
        return i
