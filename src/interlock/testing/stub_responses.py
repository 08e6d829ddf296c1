"""The stub upstream's `POST /v1/responses`: OpenAI's Responses API, plain and streamed (`stub_upstream`).

The same model names select the same faults as on chat (`stub-cut`, `stub-burst`, `stub-badjson`,
`stub-nousage`, ...), plus `stub-failed` (a stream that ends with `response.failed`); `stub-reasoning`
answers with a reasoning item first (its text as `reasoning_text` content, as vLLM serves open-weight
reasoning models), then the message. A request with
function tools (and `tool_choice` other than "none") is answered with a call to the first tool, with
the arguments `{"city": "Paris"}`; otherwise the answer is the stub's usual text, cut to
`max_output_tokens` words (status `incomplete`) when that is smaller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

WORDS = ["Hello", " from", " the", " stub", " upstream", "."]
THOUGHTS = ["The user", " greets me;", " I greet", " them back."]
ARGUMENTS = ['{"city": ', '"Paris"}']
USAGE = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 6,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 18,
}


def _tool(req: dict[str, Any]) -> str | None:
    tools = req.get("tools") or []
    if not tools or req.get("tool_choice") == "none":
        return None
    return str(tools[0].get("name", "tool"))


def _words(req: dict[str, Any]) -> tuple[list[str], bool]:
    limit = req.get("max_output_tokens")
    if isinstance(limit, int) and limit < len(WORDS):
        return WORDS[:limit], True
    return WORDS, False


def response_object(req: dict[str, Any], fault: str) -> dict[str, Any]:
    """The finished Responses object the stub answers `req` with."""
    tool = _tool(req)
    words, cut = _words(req)
    item: dict[str, Any]
    if tool is not None:
        item = {
            "id": "fc_stub",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_stub",
            "name": tool,
            "arguments": "".join(ARGUMENTS),
        }
    else:
        part = {"type": "output_text", "text": "".join(words), "annotations": []}
        item = {"id": "msg_stub", "type": "message", "role": "assistant", "status": "completed", "content": [part]}
    return {
        "id": "resp_stub",
        "object": "response",
        "created_at": 1700000000,
        "model": str(req.get("model", "stub")),
        "status": "incomplete" if cut and tool is None else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if cut and tool is None else None,
        "error": None,
        "output": [_reasoning(), item] if fault == "reasoning" else [item],
        "store": req.get("store", True),
        "usage": None if fault == "nousage" else USAGE,
    }


def _reasoning() -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": "".join(THOUGHTS)}]
    return {"id": "rs_stub", "type": "reasoning", "status": "completed", "summary": [], "content": content}


def _reasoning_events() -> list[tuple[str, dict[str, Any]]]:
    item = _reasoning()
    at = {"output_index": 0, "item_id": item["id"]}
    return [
        ("response.output_item.added", {"output_index": 0, "item": {**item, "content": []}}),
        *[("response.reasoning_text.delta", {**at, "content_index": 0, "delta": t}) for t in THOUGHTS],
        ("response.reasoning_text.done", {**at, "content_index": 0, "text": "".join(THOUGHTS)}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
    ]


def _frame(kind: str, seq: int, **fields: Any) -> bytes:
    data = {"type": kind, "sequence_number": seq, **fields}
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def stream_frames(req: dict[str, Any], fault: str) -> list[bytes]:
    """The event stream for `req`, faults applied."""
    final = response_object(req, fault)
    item = final["output"][-1]
    started = {**final, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": started}),
        ("response.in_progress", {"response": started}),
    ]
    if fault == "reasoning":
        events += _reasoning_events()
    index = len(final["output"]) - 1
    at = {"output_index": index, "item_id": item["id"]}
    if item["type"] == "function_call":
        events.append(("response.output_item.added", {"output_index": index, "item": {**item, "arguments": ""}}))
        events += [("response.function_call_arguments.delta", {**at, "delta": a}) for a in ARGUMENTS]
        events.append(("response.function_call_arguments.done", {**at, "arguments": item["arguments"]}))
    else:
        text = item["content"][0]["text"]
        events.append(("response.output_item.added", {"output_index": index, "item": {**item, "content": []}}))
        events.append(("response.content_part.added", {**at, "content_index": 0, "part": {"type": "output_text"}}))
        words, _ = _words(req)
        events += [("response.output_text.delta", {**at, "content_index": 0, "delta": w}) for w in words]
        events.append(("response.output_text.done", {**at, "content_index": 0, "text": text}))
    events.append(("response.output_item.done", {"output_index": index, "item": item}))
    events.append((f"response.{'incomplete' if final['status'] == 'incomplete' else 'completed'}", {"response": final}))
    if fault == "failed":
        error = {"code": "server_error", "message": "the stub failed mid-stream"}
        events = [*events[:5], ("response.failed", {"response": {**started, "status": "failed", "error": error}})]
    frames = [_frame(kind, i, **fields) for i, (kind, fields) in enumerate(events)]
    if fault == "cut":
        frames = frames[:5]
    elif fault == "badjson":
        frames = [*frames[:4], b"event: response.output_text.delta\ndata: {not json\n\n", *frames[4:]]
    if fault == "burst":
        frames = [b"".join(frames)]
    return frames


async def respond(send: Send, req: dict[str, Any], fault: str) -> None:
    """Answer one `POST /v1/responses`."""
    if not req.get("stream"):
        body = b"<html>not json</html>" if fault == "badjson" else orjson.dumps(response_object(req, fault))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    for frame in stream_frames(req, fault):
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
