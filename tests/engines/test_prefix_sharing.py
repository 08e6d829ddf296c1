"""Prompt prefixes shared between slots: copied KV cells must give the answers decoding them gives."""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Iterator
from typing import Any

import pytest

from interlock.engines.llamacpp import cells
from interlock.engines.llamacpp.engine import ChatEngine
from interlock.engines.llamacpp.generation import EngineStats
from interlock.engines.llamacpp.model import default_model_path
from interlock.engines.llamacpp.sampling import SamplingParams
from interlock.engines.llamacpp.slots import MIN_SHARED
from interlock.engines.llamacpp.template import ChatTemplate
from interlock.settings import EngineSettings

pytestmark = pytest.mark.model

SYSTEM = (
    "You are the support agent of a bicycle shop. You answer briefly and politely. The shop opens at nine "
    "and closes at six, sells road bikes, mountain bikes and children's bikes, repairs any bike within two "
    "days, and offers a free safety check every spring. Tools: look_up_order(order_id), book_repair(date). "
) * 3
QUESTIONS = ["When do you open?", "Do you sell road bikes?", "Can you repair my bike?", "What is the spring offer?"]


def settings(**kw: object) -> EngineSettings:
    return EngineSettings(**{"slots": 4, "n_ctx_per_slot": 512, "n_batch": 64, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def alone() -> Iterator[ChatEngine]:
    """Answers computed one at a time without sharing: the reference."""
    eng = ChatEngine(default_model_path(), settings(share_prefixes=False))
    eng.load()
    yield eng
    eng.close()


def prompt_of(engine: ChatEngine, question: str, system: str = SYSTEM) -> list[int]:
    model = engine.model
    assert model is not None
    template = ChatTemplate(model.meta("tokenizer.chat_template"), bos_token=model.bos_text(), eos_token="")
    rendered = template.render([{"role": "system", "content": system}, {"role": "user", "content": question}])
    return model.tokenize(rendered, add_special=model.adds_bos(), parse_special=True)


async def answer(engine: ChatEngine, question: str, system: str = SYSTEM) -> str:
    params = SamplingParams(max_tokens=12, temperature=0.0)
    text, _ = await engine.submit(prompt_of(engine, question, system), params).result()
    return text


async def reference(engine: ChatEngine, system: str = SYSTEM) -> list[str]:
    return [await answer(engine, q, system) for q in QUESTIONS]


async def concurrently(
    engine_settings: EngineSettings, *, kv_unified: bool = False, system: str = SYSTEM
) -> tuple[list[str], EngineStats]:
    """Every question at once on a fresh engine (no slot holds anything yet): the answers and the stats."""
    engine = ChatEngine(default_model_path(), engine_settings, kv_unified=kv_unified)
    engine.load()
    try:
        got = await asyncio.gather(*(answer(engine, q, system) for q in QUESTIONS))
        return list(got), engine.stats()
    finally:
        engine.close()


@pytest.mark.parametrize("kv_unified", [False, True], ids=["per-sequence", "unified"])
async def test_concurrent_requests_decode_a_shared_prefix_once(alone: ChatEngine, kv_unified: bool) -> None:
    expected = await reference(alone)
    got, stats = await concurrently(settings(), kv_unified=kv_unified)
    assert got == expected
    prefix = len(prompt_of(alone, "x")) - 10  # the system prompt and template, a little less
    # Three of the four requests copied the prefix (arriving together, none could reuse its own slot).
    assert stats.prompt_tokens_shared >= 3 * prefix
    total = sum(len(prompt_of(alone, q)) for q in QUESTIONS)
    assert stats.prompt_tokens == total - stats.prompt_tokens_shared - stats.prompt_tokens_reused
    assert stats.prompt_tokens < total / 2


async def test_a_prefix_another_slot_holds_is_copied_when_its_own_slot_is_busy(alone: ChatEngine) -> None:
    expected = await reference(alone)
    engine = ChatEngine(default_model_path(), settings())
    engine.load()
    try:
        first = await answer(engine, QUESTIONS[0])  # slot 0 now holds the prefix and is idle
        before = engine.stats()
        # A long answer keeps slot 0 busy; the next request goes to another slot and copies from it.
        long = engine.submit(prompt_of(engine, QUESTIONS[0]), SamplingParams(max_tokens=64, temperature=0.0))
        second = await answer(engine, QUESTIONS[1])
        await long.result()
        after = engine.stats()
    finally:
        engine.close()
    assert [first, second] == expected[:2]
    prefix = len(prompt_of(alone, "x")) - 10
    assert after.prompt_tokens_shared - before.prompt_tokens_shared >= prefix
    # Of the second prompt only what follows the prefix was decoded (the first one's last token too).
    assert after.prompt_tokens - before.prompt_tokens <= len(prompt_of(alone, QUESTIONS[1])) - prefix + 1


async def test_waiting_requests_survive_a_cancelled_donor(alone: ChatEngine) -> None:
    expected = await reference(alone)
    engine = ChatEngine(default_model_path(), settings())
    engine.load()
    try:
        donor = engine.submit(prompt_of(engine, "Tell me everything."), SamplingParams(max_tokens=12, temperature=0))
        waiters = [asyncio.ensure_future(answer(engine, q)) for q in QUESTIONS[1:]]
        await asyncio.sleep(0)  # the others are queued behind the donor
        donor.cancel()
        got = await asyncio.gather(*waiters)
    finally:
        engine.close()
    # Whatever the donor had decoded when it stopped was copied; the rest was decoded by the waiters.
    assert got == expected[1:]


async def test_short_common_prefixes_give_the_same_answers(alone: ChatEngine) -> None:
    # Too short to wait for while another slot decodes them (MIN_SHARED), long enough to copy once
    # a slot holds them (MIN_COPIED): whichever way each request got them, the answers are the same.
    texts, stats = await concurrently(settings(), system="Be brief.")
    prompt = prompt_of(alone, "x", system="Be brief.")
    assert len(prompt) < MIN_SHARED
    assert stats.prompt_tokens_shared <= 3 * (len(prompt) - 1)
    assert texts == await reference(alone, system="Be brief.")


async def test_sharing_can_be_turned_off(alone: ChatEngine) -> None:
    got, stats = await concurrently(settings(share_prefixes=False))
    assert stats.prompt_tokens_shared == 0
    assert got == await reference(alone)


async def test_cells_a_new_job_overwrites_are_saved_in_the_prompt_cache(alone: ChatEngine) -> None:
    # One request at a time goes to the slot with the longest prefix: prompts that share only the
    # template all land on slot 0. Each overwrites the last one's cells, which are saved in the
    # prompt cache first, so the first conversation, coming back, decodes only its last prompt token.
    systems = [f"You are agent number {n}. {SYSTEM}" for n in ("one", "two", "three")]
    expected = await answer(alone, QUESTIONS[0], systems[0])
    engine = ChatEngine(default_model_path(), settings())
    engine.load()
    try:
        first = [await answer(engine, QUESTIONS[0], system) for system in systems]
        before = engine.stats()
        again = await answer(engine, QUESTIONS[0], systems[0])
        after = engine.stats()
    finally:
        engine.close()
    assert first[0] == again == expected
    n = len(prompt_of(alone, QUESTIONS[0], systems[0]))
    assert before.tokens_kept >= 2 * n and before.prompt_cache_entries == 2 and before.prompt_cache_bytes > 0
    assert after.prompt_tokens - before.prompt_tokens == 1
    assert after.prompt_tokens_cached - before.prompt_tokens_cached >= n - 10  # all but the template and the last


async def test_the_prompt_cache_keeps_to_its_budget(alone: ChatEngine) -> None:
    engine = ChatEngine(default_model_path(), settings(prompt_cache_mib=8))
    engine.load()
    try:
        for n in range(8):  # each saved sequence is ~6 MiB here (about 23 KB a token)
            await answer(engine, QUESTIONS[0], f"You are agent number {n}. {SYSTEM}")
        stats = engine.stats()
    finally:
        engine.close()
    assert stats.tokens_kept > 0 and 0 < stats.prompt_cache_bytes <= 8 << 20
    assert stats.prompt_cache_entries < 7  # the oldest were evicted


async def test_without_sharing_nothing_is_kept(alone: ChatEngine) -> None:
    systems = [f"You are agent number {n}. {SYSTEM}" for n in ("one", "two")]
    for system in systems:
        await answer(alone, QUESTIONS[0], system)
    assert alone.stats().tokens_kept == 0 and alone.stats().prompt_cache_entries == 0


async def test_conversations_loaded_from_the_prompt_cache_under_load_answer_as_alone(alone: ChatEngine) -> None:
    # Four conversations on two slots, twice: the second time round each finds its cells in the
    # prompt cache (its slot went to another conversation meanwhile) while the other slot decodes.
    systems = [f"You are agent number {n}. {SYSTEM}" for n in ("one", "two", "three", "four")]
    expected = [await answer(alone, QUESTIONS[i], systems[i]) for i in range(4)]
    engine = ChatEngine(default_model_path(), settings(slots=2))
    engine.load()
    try:
        rounds = [await asyncio.gather(*(answer(engine, QUESTIONS[i], systems[i]) for i in range(4))) for _ in range(2)]
        stats = engine.stats()
    finally:
        engine.close()
    assert rounds == [expected, expected]
    assert stats.prompt_tokens_cached >= len(prompt_of(alone, QUESTIONS[0], systems[0])) - 10


async def test_a_saved_state_llama_cpp_refuses_is_decoded_instead(
    alone: ChatEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cells.load_sequence

    def garbled(ctx: Any, seq_id: int, state: Any, n: int) -> bool:
        return real(ctx, seq_id, (ctypes.c_uint8 * 16)(), n)  # no state magic: llama.cpp refuses it

    monkeypatch.setattr(cells, "load_sequence", garbled)
    systems = [f"You are agent number {n}. {SYSTEM}" for n in ("one", "two")]
    expected = await answer(alone, QUESTIONS[0], systems[0])
    engine = ChatEngine(default_model_path(), settings())
    engine.load()
    try:
        for system in systems:
            await answer(engine, QUESTIONS[0], system)
        before = engine.stats()
        again = await answer(engine, QUESTIONS[0], systems[0])  # found in the cache, refused, decoded
        after = engine.stats()
    finally:
        engine.close()
    assert again == expected and after.state == "ready"
    assert after.prompt_tokens_cached == 0
    # The second conversation's cells were saved as its slot was overwritten; the refused entry was dropped.
    assert after.tokens_kept > before.tokens_kept and after.prompt_cache_entries == before.prompt_cache_entries
    assert after.prompt_tokens - before.prompt_tokens == len(prompt_of(alone, QUESTIONS[0], systems[0]))
