"""A stub OpenAI- and Anthropic-compatible upstream, for tests and benchmarks (no network here).

It is a bare ASGI app (fast enough to benchmark the gateway against) that answers
`/v1/chat/completions`, `/v1/embeddings`, `/v1/messages` and `/v1/responses` (`stub_responses`).
It records the last `RECORDED` request bodies it received: `GET /stub/received` lists them (oldest
first, each `{"path", "body"}`), so a test can check what the gateway sent upstream. The requested
model name selects a fault, so a gateway config can point one alias at each behaviour:

    stub             a normal answer ("Hello from the stub upstream." in 6 chunks when streamed)
    stub-500         HTTP 500 before anything is sent
    stub-429         HTTP 429 with Retry-After: 7
    stub-reset       the connection is closed without an answer
    stub-hang        nothing is sent until the client gives up
    stub-cut         a stream that stops after two chunks, without [DONE]
    stub-slow        a stream with 0.2 s between chunks
    stub-burst       a stream sent in one write, so it arrives in one read ([DONE] included)
    stub-badjson     a 200 whose body is not JSON (a stream frame that is not JSON)
    stub-badsse      a stream with a frame that is not a data line ever terminated
    stub-nousage     an answer without a usage report
    stub-reasoning   a reasoning model's answer (DeepSeek / vLLM style `reasoning_content`), without usage
    stub-failed      on /v1/responses: a stream that ends with `response.failed` (see `stub_responses`)
    stub-bill        bills like a real model: the prompt at one token per byte of every string it was sent
                     (`testing.billing`), and exactly `max_tokens` (default 256) output tokens, generated

Run it with `python -m interlock.testing.stub_upstream --port 9100`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from interlock.testing import stub_responses
from interlock.testing.billing import prompt_tokens

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

WORDS = ["Hello", " from", " the", " stub", " upstream", "."]
TEXT = "".join(WORDS)
THOUGHTS = ["The user", " greets me;", " I should", " greet them", " back", " politely."]
RECORDED = 256  # request bodies kept for `GET /stub/received`


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _send(
    send: Send, status: int, body: bytes, ctype: bytes = b"application/json", extra: list[Any] | None = None
) -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _openai_completion(model: str, usage: bool) -> bytes:
    out: dict[str, Any] = {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}],
    }
    if usage:
        out["usage"] = {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
    return orjson.dumps(out)


def _openai_reasoning_completion(model: str) -> bytes:
    out = orjson.loads(_openai_completion(model, usage=False))
    out["choices"][0]["message"]["reasoning_content"] = "".join(THOUGHTS)
    return orjson.dumps(out)


def _openai_chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _billed(req: dict[str, Any]) -> tuple[int, int]:
    """(prompt, completion) tokens a real model would bill, honouring max_tokens."""
    limit = req.get("max_completion_tokens") or req.get("max_tokens") or 256
    return prompt_tokens(req), int(limit)


def _bill_completion(model: str, req: dict[str, Any]) -> bytes:
    prompt, completion = _billed(req)
    out = orjson.loads(_openai_completion(model, usage=False))
    out["choices"][0]["message"]["content"] = " w" * completion
    out["choices"][0]["finish_reason"] = "length"
    out["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return orjson.dumps(out)


async def _stream_bill(send: Send, model: str, req: dict[str, Any]) -> None:
    prompt, completion = _billed(req)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    frames = [_openai_chunk(model, {"role": "assistant", "content": ""})]
    frames += [_openai_chunk(model, {"content": " w" * min(16, completion - i)}) for i in range(0, completion, 16)]
    frames.append(_openai_chunk(model, {}, "length"))
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    chunk = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    frames.append(b"data: " + orjson.dumps({**chunk, "choices": [], "usage": usage}) + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    for frame in frames:
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _stream_openai(send: Send, model: str, fault: str) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    frames = [_openai_chunk(model, {"role": "assistant", "content": ""})]
    if fault == "reasoning":
        frames += [_openai_chunk(model, {"content": None, "reasoning_content": t}) for t in THOUGHTS]
    frames += [_openai_chunk(model, {"content": w}) for w in WORDS]
    frames.append(_openai_chunk(model, {}, "stop"))
    if fault not in ("nousage", "reasoning"):
        usage = {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
        }
        frames.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    if fault == "cut":
        frames = frames[:3]
    elif fault == "badjson":
        frames = [*frames[:2], b"data: {not json\n\n", *frames[2:]]
    elif fault == "badsse":
        frames = [*frames[:2], b'data: {"unterminated']
    if fault == "burst":
        frames = [b"".join(frames)]
    for i, frame in enumerate(frames):
        if fault == "slow" and i:
            await asyncio.sleep(0.2)
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _anthropic_events(model: str) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_stub",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": 12, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}},
        )
        for w in WORDS
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


async def _anthropic(send: Send, req: dict[str, Any], fault: str) -> None:
    model = str(req.get("model", "stub"))
    if not req.get("stream"):
        body = {
            "id": "msg_stub",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 6},
        }
        await _send(send, 200, orjson.dumps(body))
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    events = _anthropic_events(model)
    if fault == "cut":
        events = events[:4]
    frames = [b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n" for name, data in events]
    if fault == "burst":
        frames = [b"".join(frames)]
    for frame in frames:
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _reset(receive: Receive) -> None:
    """Abort the TCP connection with an RST (SO_LINGER 0), as a crashed upstream or proxy would.

    ASGI has no way to do this; uvicorn's `receive` is a bound method of the connection's cycle,
    which holds the transport.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionResetError("stub resets the connection")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class StubUpstream:
    """The stub as an ASGI app; `received` holds the last request bodies, for `GET /stub/received`."""

    def __init__(self) -> None:
        self.received: deque[dict[str, Any]] = deque(maxlen=RECORDED)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (or the lifespan)."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        path = scope["path"]
        raw = await _body(receive)
        if path == "/stub/received":
            await _send(send, 200, orjson.dumps({"data": list(self.received)}))
            return
        req = orjson.loads(raw) if raw else {}
        self.received.append({"path": path, "body": req})
        await _answer(send, receive, path, req)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _answer(send: Send, receive: Receive, path: str, req: dict[str, Any]) -> None:
    model = str(req.get("model", "stub"))
    fault = model.split("stub-", 1)[1] if model.startswith("stub-") else ""
    if fault == "500":
        await _send(send, 500, b'{"error": {"message": "stub internal error", "type": "server_error"}}')
        return
    if fault == "429":
        await _send(send, 429, b'{"error": {"message": "slow down"}}', extra=[(b"retry-after", b"7")])
        return
    if fault == "reset":
        _reset(receive)
        return
    if fault == "hang":
        await asyncio.sleep(3600)
    if path.endswith("/responses"):
        await stub_responses.respond(send, req, fault)
    elif path.endswith("/messages"):
        await _anthropic(send, req, fault)
    elif path.endswith("/embeddings"):
        raw_input = req.get("input")
        inputs: list[Any] = raw_input if isinstance(raw_input, list) else [raw_input]
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))]
        await _send(
            send,
            200,
            orjson.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": model,
                    "usage": {"prompt_tokens": 3, "total_tokens": 3},
                }
            ),
        )
    elif fault == "bill":
        if req.get("stream"):
            await _stream_bill(send, model, req)
        else:
            await _send(send, 200, _bill_completion(model, req))
    elif req.get("stream"):
        await _stream_openai(send, model, fault)
    elif fault == "badjson":
        await _send(send, 200, b"<html>not json</html>")
    elif fault == "reasoning":
        await _send(send, 200, _openai_reasoning_completion(model))
    else:
        await _send(send, 200, _openai_completion(model, usage=fault != "nousage"))


def main() -> None:
    """Serve the stub."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    uvicorn.run(
        StubUpstream(),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
