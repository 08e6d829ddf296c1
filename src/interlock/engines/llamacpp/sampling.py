"""Per-request sampling: the llama.cpp sampler chain, stop strings and incremental UTF-8."""

from __future__ import annotations

import codecs
import ctypes
import math
from dataclasses import dataclass
from typing import Any

import llama_cpp
import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """How one request samples and when it stops.

    `top_k` 0 and `min_p` 0 are off. `logit_bias` pairs a token id with a bias added to its logit
    (OpenAI's `logit_bias`: -100 all but bans a token).
    """

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    grammar: str | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    top_k: int = 0
    min_p: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()


class GrammarError(ValueError):
    """llama.cpp could not parse a GBNF grammar."""


class LogitBiasError(ValueError):
    """A logit bias names a token the model does not have."""


def _chain(stages: list[Any]) -> Any:
    params = llama_cpp.llama_sampler_chain_default_params()
    params.no_perf = True
    chain = llama_cpp.llama_sampler_chain_init(params)
    for stage in stages:
        llama_cpp.llama_sampler_chain_add(chain, stage)
    return chain


def _bias_stage(n_vocab: int, bias: tuple[tuple[int, float], ...]) -> Any:
    entries = (llama_cpp.llama_logit_bias * len(bias))()
    for entry, (token, value) in zip(entries, bias, strict=True):
        entry.token, entry.bias = token, value
    return llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(bias), entries)  # copies the entries


def _stages(params: SamplingParams, n_vocab: int) -> list[Any]:
    """The chain in llama.cpp's usual order: bias, truncation, temperature, the draw."""
    stages = []
    if params.logit_bias:
        stages.append(_bias_stage(n_vocab, params.logit_bias))
    if params.temperature <= 0:
        return [*stages, llama_cpp.llama_sampler_init_greedy()]
    if params.top_k > 0:
        stages.append(llama_cpp.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1.0:
        stages.append(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
    if params.min_p > 0.0:
        stages.append(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
    stages.append(llama_cpp.llama_sampler_init_temp(params.temperature))
    seed = llama_cpp.LLAMA_DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
    stages.append(llama_cpp.llama_sampler_init_dist(seed))
    return stages


class RequestSampler:
    """The llama.cpp sampler chain of one request, with an optional grammar.

    The chain runs in C through `llama_sampler_sample` on the logits at the request's batch index:
    no logits are copied to Python. The chain accepts the token it draws, which advances its random
    state. What is left in Python is measured cheaper there (`bench/RESULTS.md`, issue 18):

    - Plain greedy decoding (no bias, no grammar) is numpy's argmax over a view of llama.cpp's
      logits row (no copy): 3 µs, where the greedy chain copies the row into a candidate array
      first (35 µs). Both take the first of equal maxima, so the tokens are the same.
    - Presence and frequency penalties follow OpenAI's definition: before each step, the logit of
      every token already generated in this answer is lowered by `count * frequency_penalty +
      presence_penalty` (negative values favour repetition). They are written into llama.cpp's
      logits buffer, so both chains see them, and they count the token actually chosen, grammar
      resample included. llama.cpp's own penalty stage scans the whole vocabulary each step
      (0.14 ms here, where this costs 0.1 µs per distinct token generated) and would count the
      token the first chain drew even when the grammar then rejects it.
    - The grammar check of a drawn token. Applying a grammar to the whole vocabulary every step is
      slow, so (like llama.cpp's own common sampler) we sample without it first and only resample
      through the grammar when the grammar rejects that token.
    """

    def __init__(self, vocab: Any, params: SamplingParams) -> None:
        n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        for token, _ in params.logit_bias:
            if not 0 <= token < n_vocab:  # llama.cpp indexes its logits with it unchecked
                raise LogitBiasError(f"logit_bias names token {token}, but this model's tokens are 0 to {n_vocab - 1}")
        self._grammar: Any = None
        self._full: Any = None
        if params.grammar is not None:
            grammar = llama_cpp.llama_sampler_init_grammar(vocab, params.grammar.encode(), b"root")
            if not grammar:
                raise GrammarError("the output grammar could not be parsed")
            # The full chain owns the grammar; the grammar goes first so later stages only see
            # tokens it allows.
            self._full = _chain([grammar, *_stages(params, n_vocab)])
            self._grammar = grammar
        self._fast = _chain(_stages(params, n_vocab))
        self._argmax = params.temperature <= 0 and not params.logit_bias and params.grammar is None
        self._row: Any = ctypes.c_float * n_vocab
        self._presence, self._frequency = params.presence_penalty, params.frequency_penalty
        self._counts: dict[int, int] | None = {} if (self._presence or self._frequency) else None
        self._one: Any = llama_cpp.llama_token_data()
        self._candidates: Any = llama_cpp.llama_token_data_array(
            data=ctypes.pointer(self._one), size=1, selected=-1, sorted=False
        )

    def sample(self, ctx: Any, index: int) -> int:
        """Sample from the logits at batch `index` and advance the chain (and the grammar)."""
        counts = self._counts
        if counts:
            self._penalize(ctx, index, counts)
        if self._argmax:
            logits = llama_cpp.llama_get_logits_ith(ctx, index)
            row = self._row.from_address(ctypes.addressof(logits.contents))
            token = int(np.frombuffer(row, dtype=np.float32).argmax())
        elif self._grammar is None:
            token = int(llama_cpp.llama_sampler_sample(self._fast, ctx, index))
        else:
            token = self._choose(ctx, index)
        if counts is not None:
            counts[token] = counts.get(token, 0) + 1
        return token

    def _choose(self, ctx: Any, index: int) -> int:
        token = int(llama_cpp.llama_sampler_sample(self._fast, ctx, index))
        if self._grammar is None:
            return token
        self._one.id, self._one.logit, self._one.p = token, 0.0, 0.0
        self._candidates.size, self._candidates.selected = 1, -1
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(self._candidates))
        if math.isfinite(self._one.logit):
            llama_cpp.llama_sampler_accept(self._grammar, token)
            return token
        return int(llama_cpp.llama_sampler_sample(self._full, ctx, index))

    def _penalize(self, ctx: Any, index: int, counts: dict[int, int]) -> None:
        logits = llama_cpp.llama_get_logits_ith(ctx, index)
        presence, frequency = self._presence, self._frequency
        for token, n in counts.items():
            logits[token] -= n * frequency + presence

    def free(self) -> None:
        """Free the chains and the samplers they own."""
        for chain in (self._fast, self._full):
            if chain:
                llama_cpp.llama_sampler_free(chain)
        self._fast = self._full = self._grammar = None


class TextAssembler:
    """Turns token bytes into text that is safe to emit.

    Bytes are decoded incrementally, so a character split across tokens is emitted whole. Text that
    could be the start of a stop string is held back until it is known not to be one.
    """

    def __init__(self, stop: tuple[str, ...]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = tuple(s for s in stop if s)
        self._held = ""
        self.stopped = False

    def feed(self, data: bytes) -> str:
        """Add a token's bytes; returns the text that can be emitted now."""
        if self.stopped:
            return ""
        self._held += self._decoder.decode(data)
        if not self._stop:
            out, self._held = self._held, ""
            return out
        cut = self._first_stop()
        if cut is not None:
            self.stopped = True
            out, self._held = self._held[:cut], ""
            return out
        keep = self._partial_stop_len()
        out = self._held[: len(self._held) - keep]
        self._held = self._held[len(self._held) - keep :]
        return out

    def flush(self) -> str:
        """The text still held back when generation ends without a stop string."""
        if self.stopped:
            return ""
        # Held text is only ever a partial stop string, so all of it belongs to the answer.
        out = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return out

    def _first_stop(self) -> int | None:
        found = [i for i in (self._held.find(s) for s in self._stop) if i >= 0]
        return min(found) if found else None

    def _partial_stop_len(self) -> int:
        """Length of the longest tail of the held text that begins some stop string."""
        best = 0
        for s in self._stop:
            for n in range(min(len(s) - 1, len(self._held)), best, -1):
                if self._held.endswith(s[:n]):
                    best = n
                    break
        return best
