"""Requests in flight (jobs), the slots that run them, and what a job reports back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from interlock.engines.llamacpp.sampling import RequestSampler, SamplingParams, TextAssembler


@dataclass(frozen=True)
class Finish:
    """The last event of a generation: why it ended and the exact token counts."""

    reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int


Event = str | Finish | BaseException
"""What the engine hands to the event loop: a piece of text, the finish, or an error."""


@dataclass(eq=False)
class Job:
    """One request from admission to finish; owned by the engine thread once admitted."""

    prompt: list[int]
    params: SamplingParams
    max_tokens: int
    sampler: RequestSampler
    emit: Callable[[Event], None]
    assembler: TextAssembler
    submitted_at: float = field(default_factory=time.monotonic)
    # Written by the event loop, read by the engine thread; a bool store is atomic in CPython.
    cancelled: bool = False
    n_generated: int = 0


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

    @property
    def pos(self) -> int:
        """Position of the next token in this sequence."""
        return len(self.cached)

    def prefilling(self) -> bool:
        """Whether prompt tokens remain to be decoded."""
        return self.job is not None and self.fed < len(self.job.prompt)

    def shared_prefix(self, prompt: list[int]) -> int:
        """How many leading tokens of `prompt` are already in this slot's KV cells."""
        n = 0
        for a, b in zip(self.cached, prompt, strict=False):
            if a != b:
                break
            n += 1
        # The last prompt token is always decoded again: its logits give the first new token.
        return min(n, len(prompt) - 1)

    def assign(self, job: Job) -> int:
        """Start running `job`; returns how many prompt tokens it reuses (the caller trims the KV)."""
        reused = self.shared_prefix(job.prompt)
        self.job, self.fed, self.next_token, self.logits_index = job, reused, -1, -1
        del self.cached[reused:]
        return reused

    def feed(self, writer: BatchWriter, token: int, logits: bool) -> int:
        """Put `token` into the batch at this sequence's next position; returns its batch index."""
        index = writer.add(token, self.pos, self.seq_id, logits)
        self.cached.append(token)
        return index

    def clear(self) -> Job | None:
        """Detach and return the job; the KV cells stay for the next job to reuse."""
        job, self.job, self.logits_index = self.job, None, -1
        return job


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
