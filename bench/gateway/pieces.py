#!/usr/bin/env python3
"""What each stage of Interlock's request path costs alone, in µs per call, on the real objects.

Builds the benchmark's `gateway` target in this process (a real virtual key with a budget, the SQLite
ledger and metrics on, guardrails off, the stub upstream in a subprocess), sends one request through it
so that every stage has met a real context, then times each stage on its own: the best of `--repeat`
runs of `--number` calls (the least disturbed by other processes on a shared machine). Stages that start
background work (the budget settlement) are timed with that work drained.

    .venv/bin/python bench/gateway/pieces.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import inproc  # noqa: E402
import run  # noqa: E402


async def best(fn: Callable[[], Any], number: int, repeat: int, drain: bool = False) -> float:
    """Best-of-`repeat` µs per call of `fn` (awaited when it returns an awaitable)."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            r = fn()
            if isinstance(r, Awaitable):
                await r
        if drain:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        out.append((time.perf_counter() - t0) / number * 1e6)
    return min(out)


async def main_async(args: argparse.Namespace) -> None:
    from starlette.requests import Request

    from interlock.api.exchange import _JSON, _head
    from interlock.api.http import bearer_token, parse_json, validate
    from interlock.api.openai import ChatWire, authenticate
    from interlock.gateway.context import RequestContext, new_request_id
    from interlock.gateway.settlement import outcome
    from interlock.governance.bounds import chat_prompt_bound
    from interlock.plugins.hooks import Hook
    from interlock.translate.openai import chat_payload, parse_chat_response
    from interlock.types import ChatRequest, Price, Usage

    stub_port = run.free_port()
    stub = subprocess.Popen(
        [sys.executable, "-m", "interlock.testing.stub_upstream", "--port", str(stub_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run.wait_ready(f"http://127.0.0.1:{stub_port}/readyz", stub, "the stub upstream")
        home = Path(tempfile.mkdtemp(prefix="interlock-pieces-"))
        config = home / "bench.toml"
        config.write_text(run.CONFIG.format(alias=run.ALIAS, stub_port=stub_port) + run.GUARDRAILS_OFF)
        admin = "sk-il-pieces-admin-" + os.urandom(8).hex()
        from interlock.app import create_app
        from interlock.settings import load_settings

        app = create_app(
            load_settings(config, {**os.environ, "INTERLOCK_HOME": str(home), "INTERLOCK_ADMIN_KEY": admin})
        )
        async with inproc.lifespan(app):
            client = inproc.Client(app, admin)
            _, raw = await client.call("POST", "/admin/keys", {"name": "pieces"})
            made = orjson.loads(raw)
            await client.call("PUT", "/admin/budgets", {**run.BUDGET, "scope_id": made["id"]})
            client.token = made["key"]
            for _ in range(50):
                await client.call("POST", "/v1/chat/completions", inproc.BODY)
            state = app.state.interlock
            gateway = state.gateway
            body = orjson.dumps(inproc.BODY)
            scope = {
                "type": "http", "method": "POST", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
                "query_string": b"", "headers": [
                    (b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), (b"authorization", b"Bearer " + made["key"].encode()),
                ], "app": app.app,
            }  # fmt: skip
            hooks = gateway.hooks("chat")
            state.gateway_governance = next(h for h in hooks.before if h.name == "governance")._gov
            n, r = args.number, args.repeat
            rows: list[tuple[str, float]] = []

            async def add(name: str, fn: Callable[[], Any], drain: bool = False) -> None:
                rows.append((name, await best(fn, n, r, drain)))

            await add("Request(scope).headers + bearer_token", lambda: bearer_token(Request(scope)))
            await add("keys.authenticate(token)", lambda: state.keys.authenticate(made["key"]))
            await add(
                "authenticate(): bearer, key, headers, RequestContext",
                lambda: authenticate(state, Request(scope), "chat"),
            )
            principal = await state.keys.authenticate(made["key"])
            await add("RequestContext(...) alone", lambda: RequestContext(principal=principal, endpoint="chat"))
            data = parse_json(body)
            await add("parse_json(body)", lambda: parse_json(body))
            await add("validate(ChatRequest)", lambda: validate(ChatRequest, data))
            req = validate(ChatRequest, data)
            await add("chat_payload + orjson.dumps", lambda: orjson.dumps(chat_payload(req, "stub", stream=False)))
            await add("orjson loads + dumps of the body (the relay)", lambda: orjson.dumps(orjson.loads(body)))

            def fresh() -> RequestContext:
                return RequestContext(principal=principal, endpoint="chat", operation="POST /v1/chat/completions")

            await add("gateway._route", lambda: gateway._route(fresh(), req))
            ctx = fresh()
            await gateway._route(ctx, req)
            plan = ctx.plan

            async def before(hook: Any) -> None:
                c = fresh()
                c.route, c.plan, c.alias = ctx.route, plan, ctx.alias
                await hook.before(c, req)
                if c.admission is not None:  # settled at once: reservations left open would pile up
                    await state.gateway_governance.settle(c.admission, 0, 0)

            await add("  (a fresh RequestContext with the route, in each `before` below)", lambda: before(Hook()))
            for hook in hooks.before_input + hooks.before:
                await add(f"before: {hook.name} ({type(hook).__name__})", lambda h=hook: before(h), drain=True)
            admission = next(h for h in hooks.before if h.name == "governance")
            gov, counter = admission._gov, admission._counter
            reach = plan
            await add(
                "  Admission: the worst-case Price",
                lambda: Price(
                    max(d.price.input_per_mtok for d in reach),
                    max(d.price.output_per_mtok for d in reach),
                    "worst-case",
                ),
            )
            worst = Price(max(d.price.input_per_mtok for d in reach), max(d.price.output_per_mtok for d in reach), "w")
            await add(
                "  Admission: the token estimate",
                lambda: counter.estimate(plan[0], "\n".join(m.text() for m in req.messages)),
            )
            await add("  Admission: chat_prompt_bound", lambda: chat_prompt_bound(req, 2500))

            async def admit_settle() -> None:
                await gov.settle(await gov.admit(new_request_id(), principal, "stub", worst, 100, 10, 16), 0, 0)

            await add("  Admission: Governance.admit + Governance.settle", admit_settle)
            message = {"role": "assistant", "content": "Hello from the stub upstream."}
            raw_answer = orjson.dumps(
                {"id": "x", "object": "chat.completion", "created": 1, "model": "stub",
                 "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}}
            )  # fmt: skip
            await add("parse_chat_response", lambda: parse_chat_response(raw_answer, "stub"))
            answer = parse_chat_response(raw_answer, "stub")
            wire = ChatWire(ctx)
            await add("ChatWire.render", lambda: wire.render(answer))
            await add("orjson loads + dumps of the answer (the relay)", lambda: orjson.dumps(orjson.loads(raw_answer)))
            for hook in hooks.after:
                await add(f"after: {hook.name} ({type(hook).__name__})", lambda h=hook: h.after(ctx, answer))
            done = fresh()
            done.route, done.plan, done.alias, done.deployment, done.attempts = ctx.route, plan, ctx.alias, plan[0], 1
            await admission.before(done, req)  # for the settlement

            def finish(hook: Any) -> None:
                done.request_id = new_request_id()  # one ledger row each
                hook.finish(done, result)

            usage = Usage.of(12, 6)
            await add("settlement.outcome()", lambda: outcome(done, usage, "provider", status=200))
            result = outcome(done, usage, "provider", status=200)
            await add("  (a new request id, in each `finish` below)", lambda: finish(Hook()))
            for hook in hooks.finish:
                await add(f"finish: {hook.name} ({type(hook).__name__})", lambda h=hook: finish(h), drain=True)
            await add(
                "response_headers + _head",
                lambda: _head(done.response_headers(), [*_JSON, (b"content-length", b"300")]),
            )
            await add(
                "whole request through the ASGI app (wall time, one at a time, the stub included)",
                lambda: client.call("POST", "/v1/chat/completions", inproc.BODY),
            )
            await state.store.flush()
        print(f"µs per call, best of {r} x {n}; load average {os.getloadavg()[0]:.2f}")
        print("| stage | µs |")
        print("|---|--:|")
        for name, us in rows:
            print(f"| {name} | {us:.1f} |")
    finally:
        stub.terminate()
        stub.wait(10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--number", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    import uvloop

    uvloop.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
