"""How often greedy output differs between a request run alone and the same request batched.

For each prompt: generate greedily alone, then again while 3 other requests run in the same
batch, and compare the texts. Runs with the unified and the per-sequence KV cache.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from contextlib import aclosing

from common import TOPICS, stamp

from interlock.engines.llamacpp.engine import ChatEngine
from interlock.engines.llamacpp.model import default_model_path
from interlock.engines.llamacpp.sampling import SamplingParams
from interlock.engines.llamacpp.template import ChatTemplate
from interlock.settings import EngineSettings

QUESTIONS = ["What is {}?", "Write a poem about {}.", "Describe {} in three sentences.", "Tell a joke about {}."]


async def generate(engine: ChatEngine, template: ChatTemplate, text: str, max_tokens: int) -> str:
    model = engine.model
    assert model is not None
    prompt = model.tokenize(template.render([{"role": "user", "content": text}]), add_special=False, parse_special=True)
    parts: list[str] = []
    async with aclosing(engine.submit(prompt, SamplingParams(max_tokens=max_tokens, temperature=0)).events()) as ev:
        async for item in ev:
            if isinstance(item, str):
                parts.append(item)
    return "".join(parts)


async def measure(kv_unified: bool, prompts: list[str], max_tokens: int) -> dict[str, object]:
    engine = ChatEngine(
        default_model_path(), EngineSettings(slots=4, n_ctx_per_slot=512, n_batch=256), kv_unified=kv_unified
    )
    engine.load()
    model = engine.model
    assert model is not None
    template = ChatTemplate(model.meta("tokenizer.chat_template"), bos_token="", eos_token="")
    differ = 0
    try:
        for i, p in enumerate(prompts):
            alone = await generate(engine, template, p, max_tokens)
            others = [prompts[(i + k) % len(prompts)] for k in (1, 2, 3)]
            batched = await asyncio.gather(*(generate(engine, template, q, max_tokens) for q in [p, *others]))
            differ += batched[0] != alone
    finally:
        engine.close()
    return {"kv_unified": kv_unified, "prompts": len(prompts), "differ": differ}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    prompts = [QUESTIONS[i % len(QUESTIONS)].format(TOPICS[i % len(TOPICS)]) for i in range(args.prompts)]
    results = [asyncio.run(measure(kv, prompts, args.max_tokens)) for kv in (False, True)]
    print(json.dumps({"date": stamp(), "max_tokens": args.max_tokens, "results": results}, indent=2))


if __name__ == "__main__":
    main()
