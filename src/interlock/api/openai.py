"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from interlock.api.http import (
    EventStreamResponse,
    JSONResponse,
    bearer_token,
    error_response,
    first_batch,
    is_policy_denial,
    model_response,
    parse_json,
    read_body,
    sse_frame,
    validate,
)
from interlock.api.state import AppState
from interlock.errors import BadRequest, GatewayError
from interlock.audit.log import AuditEvent
from interlock.gateway.settlement import RequestContext
from interlock.types import ChatChunk, ChatRequest, EmbeddingRequest

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


RESIDENCY_HEADER = "x-interlock-residency"


def _headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-request-id": ctx.request_id, **ctx.headers}
    if ctx.cache:
        headers["x-interlock-cache"] = ctx.cache
    if ctx.deployment is not None:
        headers["x-interlock-model"] = ctx.deployment.alias
        headers["x-interlock-deployment"] = ctx.deployment.name
        headers["x-interlock-provider"] = ctx.deployment.provider.kind
        headers["x-interlock-attempts"] = str(ctx.attempts)
    return headers


def fail(
    state: AppState, request: Request, ctx: RequestContext | None, exc: GatewayError, flavor: str = "openai"
) -> Response:
    """The error response; the ledger row for an authenticated request, and an audit entry for a denial."""
    if ctx is not None:
        state.gateway.settlement.settle_error(ctx, exc)
    if is_policy_denial(exc, ctx is not None and ctx.deployment is not None):
        principal = ctx.principal if ctx else None
        state.audit.record(
            AuditEvent.denial(
                f"{request.method} {request.url.path}",
                actor_id=principal.key_id if principal else None,
                actor_name=principal.name if principal else "anonymous",
                reason=exc.message,
                target=ctx.alias if ctx else "",
                status=exc.status,
                code=exc.code or "",
            )
        )
    headers = {"x-request-id": ctx.request_id, **ctx.headers} if ctx else None
    return error_response(exc, flavor=flavor, headers=headers)


async def authenticate(state: AppState, request: Request, endpoint: str) -> RequestContext:
    """The request's context: who is calling, and whether the request is restricted to resident models."""
    principal = await state.keys.authenticate(bearer_token(request))
    residency = request.headers.get(RESIDENCY_HEADER, "").strip().lower()
    if residency not in ("", "restricted", "unrestricted"):
        raise BadRequest(f"header {RESIDENCY_HEADER} must be 'restricted' (or absent), not {residency!r}")
    # A key marked restricted cannot lift its own restriction with the header.
    return RequestContext(
        principal=principal, endpoint=endpoint, restricted=principal.restricted or residency == "restricted"
    )


async def chat_completions(request: Request) -> Response:
    """POST /v1/chat/completions, plain or streamed."""
    state: AppState = request.app.state.interlock
    ctx: RequestContext | None = None
    try:
        ctx = await authenticate(state, request, "chat")
        data = parse_json(await read_body(request, state.settings.server.max_body_bytes))
        if isinstance(data.get("model"), str):
            ctx.alias = data["model"]
        req = validate(ChatRequest, data)
        if not req.stream:
            response = await state.gateway.chat(ctx, req)
            return model_response(response, _headers(ctx))
        stream = state.gateway.stream(ctx, req)
        first = await first_batch(stream)
    except GatewayError as exc:
        return fail(state, request, ctx, exc)
    include_usage = req.wants_usage_in_stream()

    def encode(chunk: ChatChunk) -> list[bytes]:
        if not chunk.choices and not include_usage:
            return []
        return [b"data: " + chunk.__pydantic_serializer__.to_json(chunk) + b"\n\n"]

    def on_error(exc: GatewayError) -> bytes:
        return sse_frame(orjson.dumps(exc.openai_body()))

    return EventStreamResponse(first, stream, encode, on_error, lambda: [DONE], _headers(ctx))


async def embeddings(request: Request) -> Response:
    """POST /v1/embeddings."""
    state: AppState = request.app.state.interlock
    ctx: RequestContext | None = None
    try:
        ctx = await authenticate(state, request, "embeddings")
        data = parse_json(await read_body(request, state.settings.server.max_body_bytes))
        if isinstance(data.get("model"), str):
            ctx.alias = data["model"]
        response = await state.gateway.embed(ctx, validate(EmbeddingRequest, data))
        return model_response(response, _headers(ctx))
    except GatewayError as exc:
        return fail(state, request, ctx, exc)


def _model_entry(alias: str, state: AppState) -> dict[str, Any]:
    route = state.gateway.routes[alias]
    return {
        "id": alias,
        "object": "model",
        "created": state.started,
        "owned_by": ",".join(sorted({d.provider.kind for d in route.deployments})),
        "mode": route.model.mode,
        "tags": route.tags,
        "context_window": route.model.context_window,
        "deployments": len(route.deployments),
        "router": [route.model.router.models.get(m, m) for m in route.router.models]
        if route.router and route.model.router
        else None,
        "fallbacks": route.fallbacks,
    }


async def list_models(request: Request) -> Response:
    """GET /v1/models: the aliases this key may use."""
    state: AppState = request.app.state.interlock
    try:
        principal = await state.keys.authenticate(bearer_token(request))
    except GatewayError as exc:
        return fail(state, request, None, exc)
    data = [
        _model_entry(alias, state)
        for alias, route in state.gateway.routes.items()
        if principal.may_use(alias, route.tags)
    ]
    return JSONResponse({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    """GET /v1/models/{model}."""
    state: AppState = request.app.state.interlock
    alias = request.path_params["model"]
    try:
        principal = await state.keys.authenticate(bearer_token(request))
        ctx = RequestContext(principal=principal, endpoint="models")
        route = state.gateway.routes.get(alias)
        state.gateway.resolve(ctx, alias, route.model.mode if route else "chat")
    except GatewayError as exc:
        return fail(state, request, None, exc)
    return JSONResponse(_model_entry(alias, state))
