"""Anthropic's Messages API (`POST /v1/messages`), translated onto the same pipeline."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from interlock.api.http import (
    EventStreamResponse,
    JSONResponse,
    first_batch,
    parse_json,
    read_body,
    sse_frame,
    validate,
)
from interlock.api.openai import authenticate, fail
from interlock.api.state import AppState
from interlock.errors import GatewayError
from interlock.gateway.settlement import RequestContext
from interlock.translate.anthropic import (
    AnthropicRequest,
    AnthropicStreamWriter,
    anthropic_to_chat_request,
    chat_response_to_anthropic,
)
from interlock.types import ChatChunk


def _event(name: str, data: dict[str, object]) -> bytes:
    return sse_frame(orjson.dumps(data), event=name)


async def messages(request: Request) -> Response:
    """POST /v1/messages, plain or streamed."""
    state: AppState = request.app.state.interlock
    ctx: RequestContext | None = None
    try:
        ctx = await authenticate(state, request, "messages")
        data = parse_json(await read_body(request, state.settings.server.max_body_bytes))
        if isinstance(data.get("model"), str):
            ctx.alias = data["model"]
        areq = validate(AnthropicRequest, data)
        req = anthropic_to_chat_request(areq)
        headers = {"x-request-id": ctx.request_id}
        if not req.stream:
            response = await state.gateway.chat(ctx, req)
            return JSONResponse(chat_response_to_anthropic(response, areq.model), headers=headers)
        stream = state.gateway.stream(ctx, req)
        first = await first_batch(stream)
    except GatewayError as exc:
        return fail(state, request, ctx, exc, flavor="anthropic")

    writer = AnthropicStreamWriter(areq.model, "msg_" + ctx.request_id.removeprefix("req_"))
    opened = False

    def encode(chunk: ChatChunk) -> list[bytes]:
        nonlocal opened
        events = [] if opened else writer.start()
        opened = True
        events += writer.feed(chunk)
        return [_event(name, data) for name, data in events]

    def on_error(exc: GatewayError) -> bytes:
        return _event("error", exc.anthropic_body())

    def closing() -> list[bytes]:
        return [_event(name, data) for name, data in writer.finish()]

    return EventStreamResponse(first, stream, encode, on_error, closing, {**headers, **ctx.headers})
