"""An upstream that echoes the last user message back and records every body it receives.

OpenAI chat completions and Anthropic messages, plain and streamed (one word per event), on 127.0.0.1.
`GET /received` returns the bodies received so far and `DELETE /received` forgets them, so a benchmark
can check what reached "the proprietary API".

    python bench/guardrails/echo_stub.py --port 9101
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

from aiohttp import web

RECEIVED: list[dict[str, Any]] = []
MAX_KEPT = 10_000


def _last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


def _record(body: dict[str, Any]) -> None:
    if len(RECEIVED) < MAX_KEPT:
        RECEIVED.append(body)


async def _sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await resp.prepare(request)
    return resp


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    _record(body)
    text = "echo: " + _last_user(body.get("messages", []))
    words = len(text.split())
    prompt = sum(len(json.dumps(m).split()) for m in body.get("messages", []))
    cid, now, model = "chatcmpl-" + uuid.uuid4().hex[:12], int(time.time()), body.get("model", "echo")
    usage = {"prompt_tokens": prompt, "completion_tokens": words, "total_tokens": prompt + words}
    if not body.get("stream"):
        return web.json_response(
            {
                "id": cid,
                "object": "chat.completion",
                "created": now,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage,
            }
        )
    resp = await _sse(request)

    async def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
        chunk = {"id": cid, "object": "chat.completion.chunk", "created": now, "model": model}
        chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}] if delta or finish else []
        chunk.update(extra)
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

    await event({"role": "assistant", "content": ""})
    for i, word in enumerate(text.split(" ")):
        await event({"content": word if i == 0 else " " + word})
    await event({}, "stop")
    await event({}, usage=usage)
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def messages(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    _record(body)
    text = "echo: " + _last_user(body.get("messages", []))
    mid, model = "msg_" + uuid.uuid4().hex[:12], body.get("model", "echo")
    usage = {"input_tokens": len(json.dumps(body.get("messages", [])).split()), "output_tokens": len(text.split())}
    message = {"id": mid, "type": "message", "role": "assistant", "model": model, "stop_reason": None,
               "stop_sequence": None, "content": [], "usage": {**usage, "output_tokens": 0}}  # fmt: skip
    if not body.get("stream"):
        done = {**message, "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "usage": usage}
        return web.json_response(done)
    resp = await _sse(request)

    async def event(name: str, data: dict[str, Any]) -> None:
        await resp.write(f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode())

    await event("message_start", {"message": message})
    await event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    for i, word in enumerate(text.split(" ")):
        await event(
            "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word if i == 0 else " " + word}}
        )
    await event("content_block_stop", {"index": 0})
    await event(
        "message_delta",
        {
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    await event("message_stop", {})
    return resp


async def received(request: web.Request) -> web.Response:
    if request.method == "DELETE":
        RECEIVED.clear()
        return web.json_response({"cleared": True})
    return web.json_response(RECEIVED)


def make_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/received", received)
    app.router.add_delete("/received", received)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
