"""Where the engine's time goes, per step and per token, with closed-loop clients in process.

Wraps the engine's phases with `time.perf_counter` (about 1 µs of overhead per wrapped call):
`llama_decode`, sampling, taking a token (detokenise, stop strings, emit), the hand-off to the event
loop, admission, and the rest of the step (building the batch). The event loop's own CPU time is
read with `time.thread_time` in the loop's thread. `--cprofile` also runs the engine thread under
cProfile and prints its top functions by own time. Each level runs for at most `--duration`
seconds and `--max-requests` requests; nothing leaves the process.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import llama_cpp
from common import load_average, machine, stamp, story_prompt

from interlock.engines.llamacpp import engine as engine_module
from interlock.engines.llamacpp.engine import ChatEngine
from interlock.engines.llamacpp.generation import Generation
from interlock.engines.llamacpp.model import default_model_path
from interlock.engines.llamacpp.sampling import SamplingParams
from interlock.engines.llamacpp.slots import Finish
from interlock.engines.llamacpp.template import ChatTemplate
from interlock.settings import EngineSettings

SPENT: dict[str, float] = defaultdict(float)  # wall seconds per phase
CPU: dict[str, float] = defaultdict(float)  # CPU seconds of the calling thread per phase
CALLS: dict[str, int] = defaultdict(int)


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, adding its wall time to SPENT[name] and its thread's CPU time to CPU[name]."""

    def wrapper(*args: Any, **kw: Any) -> Any:
        t, c = time.perf_counter(), time.thread_time()
        t_decode, c_decode = SPENT["decode"], CPU["decode"]
        try:
            return fn(*args, **kw)
        finally:
            wall, cpu = time.perf_counter() - t, time.thread_time() - c
            SPENT[name] += wall
            CPU[name] += cpu
            CALLS[name] += 1
            if name == "step":  # the step's own time, without the llama_decode inside it
                SPENT["step_without_decode"] += wall - (SPENT["decode"] - t_decode)
                CPU["step_without_decode"] += cpu - (CPU["decode"] - c_decode)

    return wrapper


def instrument(cprofile: cProfile.Profile | None) -> None:
    """Patch the phases of the engine (this process only)."""
    decode = timed("decode", llama_cpp.llama_decode)

    def counted(ctx: Any, batch: Any) -> Any:
        CALLS["batch_tokens"] += batch.n_tokens
        return decode(ctx, batch)

    engine_module.llama_cpp.llama_decode = counted  # type: ignore[attr-defined]
    for cls, attr, name in [
        (ChatEngine, "_step", "step"),
        (ChatEngine, "_advance", "take_token"),
        (ChatEngine, "_emit", "emit"),
        (ChatEngine, "_admit", "admit"),
    ]:
        setattr(cls, attr, timed(name, getattr(cls, attr)))
    for attr in ("_flush",):  # present in some versions only
        if hasattr(ChatEngine, attr):
            setattr(ChatEngine, attr, timed(attr.strip("_"), getattr(ChatEngine, attr)))
    sampler_cls = getattr(engine_module, "RequestSampler", None)
    if sampler_cls is not None and hasattr(sampler_cls, "sample"):
        sampler_cls.sample = timed("sample", sampler_cls.sample)
    if cprofile is not None:
        run = ChatEngine._run

        def profiled(self: ChatEngine) -> None:
            cprofile.runcall(run, self)

        ChatEngine._run = profiled  # type: ignore[method-assign]


async def level(
    engine: ChatEngine,
    template: ChatTemplate,
    clients: int,
    duration: float,
    max_requests: int,
    whole: bool,
    jitter: float = 0.0,
) -> dict[str, Any]:
    model = engine.model
    assert model is not None
    tokens = issued = 0
    # Prompts are tokenised before the clock starts: the event loop's CPU below is the engine's.
    prompts = [
        model.tokenize(
            template.render([{"role": "user", "content": story_prompt(i)}]), add_special=False, parse_special=True
        )
        for i in range(16)
    ]
    deadline = time.monotonic() + duration

    async def client() -> None:
        nonlocal tokens, issued
        while time.monotonic() < deadline and issued < max_requests:
            issued += 1
            if jitter:  # staggered arrivals, as over HTTP; in lockstep every job lands in the same slots
                await asyncio.sleep(random.random() * jitter)
            gen = engine.submit(prompts[issued % 16], SamplingParams(max_tokens=32, temperature=0))
            if whole:  # the whole answer at once (what a non-streamed chat completion needs)
                _, finish = await gen.result()
                tokens += finish.completion_tokens
                continue
            async with aclosing(gen.events()) as events:
                async for event in events:
                    if isinstance(event, Finish):
                        tokens += event.completion_tokens

    # The engine thread may still be inside a step: take differences, never clear the counters.
    spent0, cpu0_, calls0 = dict(SPENT), dict(CPU), dict(CALLS)
    steps0 = engine.stats().steps
    fillers0 = engine.stats().__dict__.get("filler_tokens", 0)
    load = load_average()
    cpu0, t0 = time.thread_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall, loop_cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    steps = engine.stats().steps - steps0
    spent = {k: v - spent0.get(k, 0.0) for k, v in SPENT.items()}
    cpu = {k: v - cpu0_.get(k, 0.0) for k, v in CPU.items()}
    calls = {k: v - calls0.get(k, 0) for k, v in CALLS.items()}
    per_token = {k: round(v / tokens * 1e3, 3) for k, v in sorted(spent.items())}
    per_step = {k: round(v / steps * 1e3, 3) for k, v in sorted(spent.items())}
    cpu_per_token = {k: round(v / tokens * 1e3, 3) for k, v in sorted(cpu.items())}
    # The step's own code, without the wrapped parts inside it: building the batch and the slot loop.
    inner = sum(spent.get(k, 0.0) for k in ("take_token", "sample", "flush"))
    rest = spent["step_without_decode"] - inner
    rest_cpu = cpu["step_without_decode"] - sum(cpu.get(k, 0.0) for k in ("take_token", "sample", "flush"))
    return {
        "clients": clients,
        "load": float(load),
        "tokens": tokens,
        "steps": steps,
        "tok_s": round(tokens / wall, 1),
        # Everything llama_decode saw (prompt, generated and filler tokens) per generated token.
        "batch_tokens_per_token": round(calls.get("batch_tokens", 0) / tokens, 2),
        "filler_tokens_per_token": round((engine.stats().__dict__.get("filler_tokens", 0) - fillers0) / tokens, 2),
        "ms_per_token_wall": round(wall / tokens * 1e3, 3),
        "ms_per_step_wall": round(wall / steps * 1e3, 3),
        "ms_per_token": per_token,
        "ms_per_step": per_step,
        "cpu_ms_per_token": cpu_per_token,
        # CPU the engine thread spends per token outside llama_decode: the Python cost per token
        # (sampling in C included), and the same per step.
        "python_cpu_ms_per_token": round((cpu["step_without_decode"] + cpu["admit"]) / tokens * 1e3, 3),
        "python_cpu_ms_per_step": round((cpu["step_without_decode"] + cpu["admit"]) / steps * 1e3, 3),
        "ms_per_step_batch_build_and_loop": round(rest / steps * 1e3, 3),
        "cpu_ms_per_step_batch_build_and_loop": round(rest_cpu / steps * 1e3, 3),
        "ms_per_step_outside_step": round((wall - spent.get("step", 0.0)) / steps * 1e3, 3),
        "event_loop_cpu_ms_per_token": round(loop_cpu / tokens * 1e3, 3),
        "calls": calls,
    }


async def run(args: argparse.Namespace, cprofile: cProfile.Profile | None) -> list[dict[str, Any]]:
    settings = EngineSettings(slots=16, n_ctx_per_slot=1024, n_batch=512, threads=args.threads)
    engine = ChatEngine(Path(args.model), settings)
    await asyncio.to_thread(engine.load)
    model = engine.model
    assert model is not None
    template = ChatTemplate(model.meta("tokenizer.chat_template"), bos_token="", eos_token="")
    out = []
    try:
        whole = args.whole and hasattr(Generation, "result")
        random.seed(1)
        await level(engine, template, 1, 3, 5, whole)  # warm-up
        for clients in args.clients:
            got = await level(engine, template, clients, args.duration, args.max_requests, whole, args.jitter)
            got = {"whole": whole, **got}
            print(json.dumps(got), flush=True)
            out.append(got)
    finally:
        await asyncio.to_thread(engine.close)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(default_model_path()))
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8, 16])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=200)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cprofile", action="store_true", help="also profile the engine thread with cProfile")
    parser.add_argument("--whole", action="store_true", help="read answers with Generation.result(), where it exists")
    parser.add_argument("--jitter", type=float, default=0.0, help="wait up to this many seconds before each request")
    args = parser.parse_args()
    cprofile = cProfile.Profile() if args.cprofile else None
    instrument(cprofile)
    print(json.dumps({"date": stamp(), "machine": machine(), "args": vars(args)}), flush=True)
    asyncio.run(run(args, cprofile))
    if cprofile is not None:
        buf = io.StringIO()
        pstats.Stats(cprofile, stream=buf).sort_stats("tottime").print_stats(25)
        print(buf.getvalue())


if __name__ == "__main__":
    main()
