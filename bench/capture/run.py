#!/usr/bin/env python3
"""Capture's cost per request: on the event loop (the hook's `before`, `after` and `finish`) and in the
writer's thread (`Pending.record`: serialising, masking, hashing the prompt), for a ~1.4 KB prompt.

    .venv/bin/python bench/capture/run.py [--requests 20000]

No store is touched: the writer only queues. Run it on an idle machine; the numbers are per request.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from types import SimpleNamespace

from interlock.flywheel.capture import Capture, CaptureWriter
from interlock.plugins.hooks import Outcome
from interlock.settings import CaptureSettings
from interlock.types import AssistantMessage, ChatRequest, ChatResponse, Choice, Usage


async def measure(n: int) -> tuple[float, float]:
    """(µs on the loop, µs in the writer) per request."""
    settings = CaptureSettings(enabled=True, models=["m"])
    writer = CaptureWriter(None, settings, max_pending=n)  # type: ignore[arg-type]  # never flushed here
    hook = Capture(settings, writer)
    messages = [
        {"role": "system", "content": "Be brief. " * 20},
        {"role": "user", "content": "Extract the invoice fields from: " + "lorem ipsum " * 80},
    ]
    request = ChatRequest.model_validate({"model": "m", "messages": messages})
    answer = AssistantMessage(content='{"date": "2026-01-01", "amount": 12.5}')
    response = ChatResponse(id="x", created=0, model="m", choices=[Choice(message=answer)])
    usage = Usage(prompt_tokens=300, completion_tokens=20, total_tokens=320)
    outcome = Outcome(200, usage, "provider", 100, deployment="d", provider="p", attempts=1, latency_ms=50)
    principal = SimpleNamespace(key_id="k", team_id=None, org_id=None, agent_id=None)
    started = time.perf_counter()
    for i in range(n):
        ctx = SimpleNamespace(principal=principal, alias="m", notes={}, request_id=f"r{i}", endpoint="chat", ts=1.0)
        await hook.before(ctx, request)  # type: ignore[arg-type]
        await hook.after(ctx, response)  # type: ignore[arg-type]
        hook.finish(ctx, outcome)  # type: ignore[arg-type]
    on_loop = (time.perf_counter() - started) / n * 1e6
    pending = writer._pending
    started = time.perf_counter()
    for item in pending:
        item.record(settings.max_chars)
    return on_loop, (time.perf_counter() - started) / len(pending) * 1e6


def main() -> None:
    """Print the two costs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    on_loop, off_loop = asyncio.run(measure(parser.parse_args().requests))
    print(f"on the event loop: {on_loop:.1f} µs/request; in the writer thread: {off_loop:.1f} µs/request")


if __name__ == "__main__":
    main()
