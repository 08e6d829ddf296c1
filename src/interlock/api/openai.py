"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response

from interlock.api.exchange import Exchange, Wire, error_body
from interlock.api.http import (
    JSONResponse,
    bearer_token,
    error_response,
    headers_named,
    sse_frame,
    token_from,
    validate,
)
from interlock.api.state import AppState
from interlock.errors import BadRequest, GatewayError
from interlock.gateway.context import RequestContext
from interlock.gateway.stages import denial_event, is_policy_denial
from interlock.plugins.hooks import ModelRequest, ModelResponse
from interlock.translate.openai_relay import RelayChunk
from interlock.types import ChatChunk, ChatRequest, EmbeddingRequest

DONE = b"data: [DONE]\n\n"
RESIDENCY_HEADER = "x-interlock-residency"
RUN_ID_HEADER = "x-interlock-run-id"
_RUN_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class ChatWire:
    """OpenAI's chat completions: JSON, or `data:` events ending in `[DONE]`."""

    flavor: ClassVar[str] = "openai"

    def __init__(self, ctx: RequestContext) -> None:
        self._usage = False

    def parse(self, data: dict[str, Any]) -> ModelRequest:
        """A ChatRequest."""
        request = validate(ChatRequest, data)
        self._usage = request.wants_usage_in_stream()
        return request

    def render(self, response: ModelResponse) -> bytes:
        """The answer as OpenAI's JSON."""
        return response.__pydantic_serializer__.to_json(response)

    def frames(self, chunk: ChatChunk) -> list[bytes]:
        """One `data:` event (a usage-only chunk only when the client asked for usage)."""
        if not chunk.choices and not self._usage:
            return []
        return [b"data: " + chunk.__pydantic_serializer__.to_json(chunk) + b"\n\n"]

    def relay_frames(self, batch: list[RelayChunk]) -> bytes:
        """`frames` of each relayed chunk (`api.exchange.RelayWire`)."""
        usage = self._usage
        return b"".join([chunk.frame() for chunk in batch if chunk.choices or usage])

    def closing(self) -> list[bytes]:
        """`data: [DONE]`."""
        return [DONE]

    def error_event(self, exc: GatewayError) -> bytes:
        """The error JSON as an event (no `[DONE]`, so the SDKs raise)."""
        return sse_frame(error_body(exc, "openai"))


class EmbeddingWire(ChatWire):
    """OpenAI's embeddings (never streamed)."""

    def parse(self, data: dict[str, Any]) -> ModelRequest:
        """An EmbeddingRequest whose input is well formed."""
        request = validate(EmbeddingRequest, data)
        try:
            request.texts()
        except ValueError as exc:
            raise BadRequest(str(exc), param="input") from None
        return request


def _path(request: Request) -> str:
    """The request's path (what `request.url.path` gives), without building a URL: about 9 us a request."""
    return str(request.scope["path"])


_CONTEXT_HEADERS = frozenset(
    {b"authorization", b"x-api-key", RESIDENCY_HEADER.encode(), RUN_ID_HEADER.encode(), b"user-agent"}
)


async def authenticate(state: AppState, request: Request, endpoint: str) -> RequestContext:
    """The request's context: who is calling, and whether the request is restricted to resident models."""
    headers = headers_named(request.scope, _CONTEXT_HEADERS)
    principal = await state.keys.authenticate(token_from(headers.get(b"authorization"), headers.get(b"x-api-key")))
    residency = headers.get(b"x-interlock-residency", "").strip().lower()
    if residency not in ("", "restricted", "unrestricted"):
        raise BadRequest(f"header {RESIDENCY_HEADER} must be 'restricted' (or absent), not {residency!r}")
    run_id = headers.get(b"x-interlock-run-id", "")
    if run_id and not _RUN_ID.fullmatch(run_id):
        raise BadRequest(f"header {RUN_ID_HEADER} must be 1 to 128 of A-Z a-z 0-9 . _ : -", param=RUN_ID_HEADER)
    # A key marked restricted cannot lift its own restriction with the header.
    return RequestContext(
        principal=principal,
        endpoint=endpoint,
        operation=f"{request.method} {_path(request)}",
        restricted=principal.restricted or residency == "restricted",
        run_id=run_id,
        user_agent=headers.get(b"user-agent", "")[:200],
    )


def refuse(state: AppState, request: Request, exc: GatewayError, flavor: str = "openai") -> Response:
    """The error for a request that never got a context (no or a bad key): audited, not ledgered."""
    if is_policy_denial(exc, False):
        state.audit.record(denial_event(f"{request.method} {_path(request)}", exc, None))
    return error_response(exc, flavor=flavor)


def model_endpoint(endpoint: str, wire: type[Wire]) -> Callable[[Request], Any]:
    """The handler of a model endpoint: authenticate, then hand the request to the gateway."""

    async def handler(request: Request) -> Response:
        state: AppState = request.app.state.interlock
        try:
            ctx = await authenticate(state, request, endpoint)
        except GatewayError as exc:
            return refuse(state, request, exc, wire.flavor)
        return Exchange(state.gateway, ctx, request, wire(ctx), state.settings.server.max_body_bytes)

    handler.__name__ = handler.__qualname__ = endpoint
    handler.__doc__ = f"The {endpoint} endpoint."
    return handler


chat_completions = model_endpoint("chat", ChatWire)
embeddings = model_endpoint("embeddings", EmbeddingWire)


def _model_entry(alias: str, state: AppState) -> dict[str, Any]:
    """One model, in a shape both SDKs read: OpenAI's (`object`, `created`) and Anthropic's (`type`,
    `display_name`, `created_at`), since `anthropic` clients list models on the same path."""
    route = state.gateway.routes[alias]
    return {
        "id": alias,
        "object": "model",
        "type": "model",
        "display_name": alias,
        "created": state.started,
        "created_at": datetime.fromtimestamp(state.started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "owned_by": ",".join(sorted({d.provider.kind for d in route.deployments})),
        "mode": route.model.mode,
        "tags": route.tags,
        "context_window": route.model.context_window,
        "deployments": len(route.deployments),
        "router": [route.model.router.models.get(m, m) for m in route.router.models]
        if route.router and route.model.router
        else None,
        "fallbacks": route.fallbacks,
        # the version of each model file served (local models: its SHA-256, 16 hex digits), per deployment
        "versions": {d.name: d.provider.model_version for d in route.deployments if d.provider.model_version},
        "variants": [
            {"name": v.name, "model": v.model, "weight": weights.get(v.name, 0.0), "shadow": v.shadow}
            for v in route.variants.variants
        ]
        if route.variants and (weights := route.variants.weights()) is not None
        else None,
    }


async def list_models(request: Request) -> Response:
    """GET /v1/models: the aliases this key may use."""
    state: AppState = request.app.state.interlock
    try:
        principal = await state.keys.authenticate(bearer_token(request))
    except GatewayError as exc:
        return refuse(state, request, exc, _models_flavor(request))
    data = [
        _model_entry(alias, state)
        for alias, route in state.gateway.routes.items()
        if principal.may_use(alias, route.tags)
    ]
    # Anthropic's list carries its paging fields; every model fits in one page.
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return JSONResponse({"object": "list", "data": data, "has_more": False, "first_id": first, "last_id": last})


def _models_flavor(request: Request) -> str:
    """/v1/models serves both SDKs: an Anthropic client (it always sends anthropic-version) gets its error shape."""
    return "anthropic" if "anthropic-version" in request.headers else "openai"


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
        return refuse(state, request, exc, _models_flavor(request))
    return JSONResponse(_model_entry(alias, state))
