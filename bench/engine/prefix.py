"""Time to first token for concurrent requests that share a long prompt prefix, sharing off and on.

Eight agents with the same system prompt and tool list (about 1,500 tokens) send their first step at
once, each with its own question. Without sharing every slot decodes the prefix itself; with
`share_prefixes` the first slot decodes it and the others copy its KV cells. Rounds alternate between
two engines (off, on) and each round uses a prefix no slot has seen, so a slot's own cache never helps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from contextlib import aclosing

from common import TOPICS, load_average, machine, percentile, stamp

from interlock.engines.llamacpp.engine import ChatEngine
from interlock.engines.llamacpp.model import default_model_path
from interlock.engines.llamacpp.sampling import SamplingParams
from interlock.engines.llamacpp.template import ChatTemplate
from interlock.settings import EngineSettings

WORDS = [
    "order",
    "invoice",
    "refund",
    "customer",
    "account",
    "payment",
    "shipping",
    "address",
    "status",
    "delivery",
    "parcel",
]


def system_prompt(seed: int, tokens: int, engine: ChatEngine) -> str:
    """A system prompt with a tool list, about `tokens` tokens long, different for every seed."""
    model = engine.model
    assert model is not None
    rng = random.Random(seed)
    tools: list[dict[str, object]] = []
    text = ""
    while len(model.tokenize(text, add_special=False, parse_special=False)) < tokens:
        name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{len(tools)}"
        params = {w: {"type": "string", "description": f"the {w} of the {rng.choice(WORDS)}"} for w in WORDS[:4]}
        tools.append({"name": name, "description": f"Looks up the {rng.choice(WORDS)}.", "parameters": params})
        text = f"You are support agent {seed}. Tools:\n" + json.dumps(tools)
    return text


async def first_token(engine: ChatEngine, prompt: list[int]) -> float:
    t = time.perf_counter()
    async with aclosing(engine.submit(prompt, SamplingParams(max_tokens=8, temperature=0)).events()) as events:
        async for event in events:
            if isinstance(event, str):
                ttft = time.perf_counter() - t
                break
        else:
            ttft = time.perf_counter() - t
    return ttft


async def round_(engine: ChatEngine, template: ChatTemplate, system: str, clients: int) -> dict[str, float]:
    model = engine.model
    assert model is not None
    prompts = [
        model.tokenize(
            template.render(
                [{"role": "system", "content": system}, {"role": "user", "content": f"Tell me about {TOPICS[i]}."}]
            ),
            add_special=model.adds_bos(),
            parse_special=True,
        )
        for i in range(clients)
    ]
    before = engine.stats()
    t = time.perf_counter()
    ttfts = await asyncio.gather(*(first_token(engine, p) for p in prompts))
    wall = time.perf_counter() - t
    after = engine.stats()
    return {
        "prompt_tokens": len(prompts[0]),
        "ttft_mean_s": sum(ttfts) / len(ttfts),
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_max_s": max(ttfts),
        "wall_s": wall,
        "decoded_prompt_tokens": after.prompt_tokens - before.prompt_tokens,
        "shared_prompt_tokens": after.prompt_tokens_shared - before.prompt_tokens_shared,
    }


async def main_async(args: argparse.Namespace) -> None:
    engines = {}
    for name, share in (("off", False), ("on", True)):
        settings = EngineSettings(slots=args.clients, n_ctx_per_slot=2048, n_batch=512, threads=args.threads)
        engine = ChatEngine(default_model_path(), settings.model_copy(update={"share_prefixes": share}))
        engine.load()
        engines[name] = engine
    model = engines["on"].model
    assert model is not None
    template = ChatTemplate(model.meta("tokenizer.chat_template"), bos_token=model.bos_text(), eos_token="")
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    try:
        for r in range(args.rounds):
            for name in ("off", "on"):
                system = system_prompt(1000 * r + (name == "on"), args.prefix_tokens, engines[name])
                results[name].append(await round_(engines[name], template, system, args.clients))
                print(name, json.dumps(results[name][-1]), flush=True)
    finally:
        for engine in engines.values():
            engine.close()
    summary = {name: {k: percentile([row[k] for row in rows], 50) for k in rows[0]} for name, rows in results.items()}
    print(
        json.dumps(
            {
                "date": stamp(),
                "machine": machine(),
                "load_average": load_average(),
                "clients": args.clients,
                "rounds": args.rounds,
                "median_of_rounds": summary,
                "ttft_mean_ratio_off_over_on": round(summary["off"]["ttft_mean_s"] / summary["on"]["ttft_mean_s"], 2),
            },
            indent=2,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--prefix-tokens", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
