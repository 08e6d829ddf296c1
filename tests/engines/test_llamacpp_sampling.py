"""The C sampler chain of one request against the real model's logits: greedy, seeds, top-k, bias, grammar."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import llama_cpp
import numpy as np
import pytest

from interlock.engines.llamacpp.model import GgufModel, default_model_path, quiet_llama_logs
from interlock.engines.llamacpp.sampling import LogitBiasError, RequestSampler, SamplingParams

pytestmark = pytest.mark.model

PROMPT = "<|im_start|>user\nWrite a long story about a dragon.<|im_end|>\n<|im_start|>assistant\nOnce upon a time"


@dataclass
class Decoded:
    """A context holding the logits of every position of PROMPT."""

    model: GgufModel
    ctx: Any
    n: int

    def logits(self, i: int) -> np.ndarray:
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, i), shape=(self.model.n_vocab,)).copy()


@pytest.fixture(scope="module")
def decoded() -> Iterator[Decoded]:
    quiet_llama_logs()
    llama_cpp.llama_backend_init()
    model = GgufModel(default_model_path())
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = 256, 128, 128
    ctx = llama_cpp.llama_init_from_model(model.ptr, params)
    tokens = model.tokenize(PROMPT, add_special=False, parse_special=True)
    batch = llama_cpp.llama_batch_init(128, 0, 1)
    for i, t in enumerate(tokens):
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = t, i, 1, True
        batch.seq_id[i][0] = 0
    batch.n_tokens = len(tokens)
    assert llama_cpp.llama_decode(ctx, batch) == 0
    yield Decoded(model, ctx, len(tokens))
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    model.close()


def draws(d: Decoded, params: SamplingParams) -> list[int]:
    """One token from each position's logits, through one sampler (its state carries over)."""
    sampler = RequestSampler(d.model.vocab, params)
    try:
        return [sampler.sample(d.ctx, i) for i in range(d.n)]
    finally:
        sampler.free()


def test_greedy_is_the_argmax(decoded: Decoded) -> None:
    argmax = [int(np.argmax(decoded.logits(i))) for i in range(decoded.n)]
    assert draws(decoded, SamplingParams(max_tokens=1, temperature=0)) == argmax
    # A logit bias (here a neutral one) sends greedy through llama.cpp's greedy chain instead of
    # the argmax shortcut: both must pick the same tokens.
    assert draws(decoded, SamplingParams(max_tokens=1, temperature=0, logit_bias=((0, 0.0),))) == argmax


def test_same_seed_same_draws_and_another_seed_differs(decoded: Decoded) -> None:
    params = SamplingParams(max_tokens=1, temperature=1.5, seed=7)
    first = draws(decoded, params)
    assert draws(decoded, params) == first
    # At temperature 1.5 over a 49,152-token vocabulary, two seeds agree on every one of the
    # prompt's positions only by a vanishing chance.
    assert draws(decoded, SamplingParams(max_tokens=1, temperature=1.5, seed=8)) != first


def test_top_k_one_is_greedy(decoded: Decoded) -> None:
    greedy = draws(decoded, SamplingParams(max_tokens=1, temperature=0))
    assert draws(decoded, SamplingParams(max_tokens=1, temperature=1.0, top_k=1, seed=3)) == greedy


def test_tiny_top_p_is_greedy(decoded: Decoded) -> None:
    greedy = draws(decoded, SamplingParams(max_tokens=1, temperature=0))
    assert draws(decoded, SamplingParams(max_tokens=1, temperature=1.0, top_p=1e-6, seed=3)) == greedy


def test_min_p_keeps_only_tokens_near_the_top(decoded: Decoded) -> None:
    got = draws(decoded, SamplingParams(max_tokens=1, temperature=1.0, min_p=0.5, seed=5))
    for i, token in enumerate(got):
        logits = decoded.logits(i)
        # min-p 0.5 keeps tokens at least half as likely as the best: within log(2) of its logit.
        assert logits[token] >= logits.max() - np.log(2) - 1e-4


def test_logit_bias_bans_the_greedy_choice(decoded: Decoded) -> None:
    last = decoded.n - 1
    order = np.argsort(decoded.logits(last))[::-1]
    sampler = RequestSampler(
        decoded.model.vocab, SamplingParams(max_tokens=1, temperature=0, logit_bias=((int(order[0]), -100.0),))
    )
    try:
        assert sampler.sample(decoded.ctx, last) == int(order[1])
    finally:
        sampler.free()


def test_logit_bias_outside_the_vocabulary_is_refused(decoded: Decoded) -> None:
    with pytest.raises(LogitBiasError, match=str(decoded.model.n_vocab - 1)):
        RequestSampler(decoded.model.vocab, SamplingParams(max_tokens=1, logit_bias=((decoded.model.n_vocab, 1.0),)))


def test_grammar_limits_the_draw(decoded: Decoded) -> None:
    for params in (
        SamplingParams(max_tokens=1, temperature=0, grammar='root ::= "yes" | "no"'),
        SamplingParams(max_tokens=1, temperature=1.0, seed=1, grammar='root ::= "yes" | "no"'),
    ):
        sampler = RequestSampler(decoded.model.vocab, params)
        try:
            piece = decoded.model.piece(sampler.sample(decoded.ctx, decoded.n - 1))
            # The grammar allows any token that starts one of its words ("y", "ye", "yes", "n", ...).
            assert piece and (b"yes".startswith(piece) or b"no".startswith(piece))
        finally:
            sampler.free()


def test_frequency_penalty_lowers_a_generated_token(decoded: Decoded) -> None:
    last = decoded.n - 1
    logits = decoded.logits(last)
    best, runner_up = (int(t) for t in np.argsort(logits)[::-1][:2])
    penalty = float(logits[best] - logits[runner_up]) + 1.0
    sampler = RequestSampler(
        decoded.model.vocab, SamplingParams(max_tokens=4, temperature=0, frequency_penalty=penalty)
    )
    buffer = llama_cpp.llama_get_logits_ith(decoded.ctx, last)
    try:
        assert sampler.sample(decoded.ctx, last) == best  # nothing generated yet: no penalty
        assert sampler.sample(decoded.ctx, last) == runner_up  # `best` was generated once: it lost `penalty`
    finally:
        sampler.free()
        buffer[best] = logits[best]  # the penalty is written into the shared logits: undo it for other tests
