"""The embedded chat engine against the real SmolLM2 model: batching, limits, cancellation, determinism."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import aclosing

import pytest

from interlock.engines.llamacpp.engine import ChatEngine
from interlock.engines.llamacpp.generation import Generation
from interlock.engines.llamacpp.model import default_model_path
from interlock.engines.llamacpp.sampling import SamplingParams
from interlock.engines.llamacpp.slots import Finish
from interlock.engines.llamacpp.template import ChatTemplate
from interlock.errors import BadRequest, RateLimited, Unavailable
from interlock.settings import EngineSettings

pytestmark = pytest.mark.model

SLOTS = 4
QUEUE = 2
CTX = 256


@pytest.fixture(scope="module")
def engine() -> Iterator[ChatEngine]:
    # The engine is not tied to an event loop (each request brings its own), so one engine can
    # serve every test's loop.
    eng = ChatEngine(
        default_model_path(),
        EngineSettings(slots=SLOTS, n_ctx_per_slot=CTX, queue_size=QUEUE, n_batch=128, max_tokens_default=16),
    )
    eng.load()
    yield eng
    eng.close()


def prompt_of(engine: ChatEngine, text: str) -> list[int]:
    model = engine.model
    assert model is not None
    template = ChatTemplate(
        model.meta("tokenizer.chat_template"), bos_token=model.bos_text(), eos_token=model.eos_text()
    )
    rendered = template.render([{"role": "user", "content": text}])
    return model.tokenize(rendered, add_special=model.adds_bos(), parse_special=True)


async def collect(generation: Generation) -> tuple[str, Finish]:
    parts: list[str] = []
    finish: Finish | None = None
    async with aclosing(generation.events()) as events:
        async for event in events:
            if isinstance(event, Finish):
                finish = event
            else:
                parts.append(event)
    assert finish is not None
    return "".join(parts), finish


async def generate(engine: ChatEngine, text: str, **kw: object) -> tuple[str, Finish]:
    params = SamplingParams(**{"max_tokens": 16, "temperature": 0.0, **kw})  # type: ignore[arg-type]
    return await collect(engine.submit(prompt_of(engine, text), params))


async def wait_idle(engine: ChatEngine) -> None:
    for _ in range(200):  # bounded: at most ~10 s
        stats = engine.stats()
        if stats.slots_busy == 0 and stats.queue_length == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"engine still busy: {engine.stats()}")


async def test_length_and_exact_usage(engine: ChatEngine) -> None:
    prompt = prompt_of(engine, "Write a long story about a dragon.")
    text, finish = await collect(engine.submit(prompt, SamplingParams(max_tokens=5, temperature=0)))
    assert finish.reason == "length"
    assert finish.completion_tokens == 5
    assert finish.prompt_tokens == len(prompt)
    assert text


async def test_end_of_generation_is_stop(engine: ChatEngine) -> None:
    _, finish = await generate(engine, "Hi", max_tokens=64)
    assert finish.reason == "stop"
    assert 0 < finish.completion_tokens < 64


async def test_stop_string_is_never_emitted(engine: ChatEngine) -> None:
    text, finish = await generate(engine, "Count from 1 to 10, one number per line.", max_tokens=32, stop=("\n",))
    assert finish.reason == "stop"
    assert "\n" not in text


async def test_same_seed_same_output(engine: ChatEngine) -> None:
    a = await generate(engine, "Tell me a joke.", temperature=0.9, seed=1234)
    b = await generate(engine, "Tell me a joke.", temperature=0.9, seed=1234)
    assert a == b


async def test_greedy_alone_equals_batched(engine: ChatEngine) -> None:
    alone = await generate(engine, "What is the capital of France?", max_tokens=16)
    others = ["Write a haiku about the sea.", "List three fruits.", "Explain gravity."]
    batched = await asyncio.gather(
        generate(engine, "What is the capital of France?", max_tokens=16),
        *(generate(engine, q, max_tokens=16) for q in others),
    )
    assert batched[0] == alone
    assert engine.stats().max_batch_seqs > 1


async def test_seeded_sampling_alone_equals_batched(engine: ChatEngine) -> None:
    # Each request has its own sampler chain (its own random state) and, with the per-sequence KV
    # cache, logits that do not depend on its neighbours: the same seed gives the same answer.
    ask = {"temperature": 1.0, "top_p": 0.95, "seed": 42, "max_tokens": 16}
    alone = await generate(engine, "Tell me a story.", **ask)
    others = ["Write a haiku about the sea.", "List three fruits.", "Explain gravity."]
    batched = await asyncio.gather(
        generate(engine, "Tell me a story.", **ask),
        *(generate(engine, q, temperature=1.0, seed=i, max_tokens=16) for i, q in enumerate(others)),
    )
    assert batched[0] == alone


async def test_whole_result_matches_the_stream(engine: ChatEngine) -> None:
    prompt = prompt_of(engine, "What is the capital of France?")
    streamed = await collect(engine.submit(prompt, SamplingParams(max_tokens=12, temperature=0)))
    whole = await engine.submit(prompt, SamplingParams(max_tokens=12, temperature=0)).result()
    assert whole == streamed


async def test_logit_bias_outside_the_vocabulary_is_bad_request(engine: ChatEngine) -> None:
    with pytest.raises(BadRequest) as info:
        engine.submit(prompt_of(engine, "hi"), SamplingParams(max_tokens=4, logit_bias=((10**9, 1.0),)))
    assert info.value.param == "logit_bias"


def _tokens(engine: ChatEngine, text: str) -> list[int]:
    model = engine.model
    assert model is not None
    return model.tokenize(text, add_special=False, parse_special=False)


def _most_repeated(engine: ChatEngine, text: str) -> int:
    tokens = _tokens(engine, text)
    return max(tokens.count(t) for t in set(tokens))


async def test_frequency_penalty_cuts_repetition(engine: ChatEngine) -> None:
    ask = "Repeat the word hello thirty times, separated by spaces."
    plain, _ = await generate(engine, ask, max_tokens=40)
    penalized, _ = await generate(engine, ask, max_tokens=40, frequency_penalty=2.0)
    # Greedy decoding with no penalty repeats; a strong frequency penalty lowers a token's logit by 2
    # for each time it was already generated, so no token can keep winning.
    assert _most_repeated(engine, plain) >= 10
    assert _most_repeated(engine, penalized) < _most_repeated(engine, plain) // 2


async def test_negative_presence_penalty_favours_what_was_said(engine: ChatEngine) -> None:
    ask = "Write a short poem about the sea."
    plain, _ = await generate(engine, ask, max_tokens=40)
    sticky, _ = await generate(engine, ask, max_tokens=40, presence_penalty=-2.0)
    # Every token already said gets a bonus of 2, so the answer keeps to fewer distinct tokens.
    assert sticky != plain
    assert len(set(_tokens(engine, sticky))) < len(set(_tokens(engine, plain)))


async def test_cancelled_request_frees_its_slot(engine: ChatEngine) -> None:
    await wait_idle(engine)
    generation = engine.submit(prompt_of(engine, "Write a long essay."), SamplingParams(max_tokens=400))
    async with aclosing(generation.events()) as events:
        async for _ in events:
            assert engine.stats().slots_busy == 1
            break  # the client goes away after the first piece
    await wait_idle(engine)
    assert engine.stats().slots_busy == 0


async def test_queue_full_is_rate_limited(engine: ChatEngine) -> None:
    await wait_idle(engine)
    prompt = prompt_of(engine, "Write a long essay.")
    accepted = [engine.submit(prompt, SamplingParams(max_tokens=400)) for _ in range(SLOTS + QUEUE)]
    try:
        with pytest.raises(RateLimited) as info:
            engine.submit(prompt, SamplingParams(max_tokens=4))
        assert int(info.value.headers["Retry-After"]) >= 1
        assert engine.stats().queue_length + engine.stats().slots_busy == SLOTS + QUEUE
    finally:
        for generation in accepted:
            generation.cancel()
    await wait_idle(engine)


async def test_prompt_longer_than_slot_context(engine: ChatEngine) -> None:
    prompt = prompt_of(engine, "word " * CTX)
    with pytest.raises(BadRequest) as info:
        engine.submit(prompt, SamplingParams(max_tokens=4))
    assert str(len(prompt)) in info.value.message
    assert str(CTX) in info.value.message


async def test_max_tokens_is_capped_by_the_slot_context(engine: ChatEngine) -> None:
    prompt = prompt_of(engine, "word " * (CTX - 40))
    room = CTX - len(prompt)
    assert 0 < room < 20
    _, finish = await collect(engine.submit(prompt, SamplingParams(max_tokens=1000, temperature=0)))
    assert finish.completion_tokens <= room


async def test_bad_grammar_is_bad_request(engine: ChatEngine) -> None:
    with pytest.raises(BadRequest):
        engine.submit(prompt_of(engine, "hi"), SamplingParams(max_tokens=4, grammar="root ::= ("))


async def test_not_loaded_is_unavailable() -> None:
    idle = ChatEngine(default_model_path(), EngineSettings(slots=1))
    with pytest.raises(Unavailable):
        idle.submit([1, 2, 3], SamplingParams(max_tokens=4))


async def test_a_failing_engine_fails_running_and_waiting_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = ChatEngine(default_model_path(), EngineSettings(slots=1, n_ctx_per_slot=CTX, queue_size=4, n_batch=64))
    broken.load()
    try:
        monkeypatch.setattr("interlock.engines.llamacpp.engine.llama_cpp.llama_decode", lambda ctx, batch: -3)
        prompt = prompt_of(broken, "Hello")
        # Each request fails with 503, at submit (if the engine already failed) or while waiting for
        # its answer (in the slot or in the queue); none may hang.
        generations = []
        for _ in range(3):  # one for the slot, two for the queue, submitted before any step can fail
            with contextlib.suppress(Unavailable):  # the engine may already have failed: that is a 503 too
                generations.append(broken.submit(prompt, SamplingParams(max_tokens=4)))
        assert generations
        for generation in generations:
            with pytest.raises(Unavailable):
                await asyncio.wait_for(collect(generation), timeout=30)
        assert broken.state.startswith("failed")
        with pytest.raises(Unavailable):
            broken.submit(prompt, SamplingParams(max_tokens=4))
    finally:
        monkeypatch.undo()
        broken.close()
