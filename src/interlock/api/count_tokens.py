"""`POST /v1/messages/count_tokens` and `POST /v1/responses/input_tokens`: a prompt's tokens, counted
without calling a model.

The count uses the model's own tokenizer where the gateway has one (local models), else the embedded
model's tokenizer, else an estimate; `x-interlock-token-count-source` says which. It is authenticated
and scope-checked like every model endpoint, and its 401/403 refusals are audited; no ledger row is
written, because no model is called and nothing is billed. A Responses prompt counts what the model
would be sent: `instructions`, the stored conversation of `previous_response_id` (the caller's own),
the input and the tools.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from interlock.api.http import JSONResponse, error_response, parse_json, read_body, validate
from interlock.api.openai import authenticate, refuse
from interlock.api.responses import owner_of, stored_conversation
from interlock.api.state import AppState
from interlock.errors import GatewayError
from interlock.gateway.stages import denial_event, is_policy_denial
from interlock.routing.deployments import Deployment, ModelRoute
from interlock.translate.anthropic import (
    AnthropicPrompt,
    count_text,
    dumps_json,
    prompt_messages,
    prompt_text,
    prompt_tools,
)
from interlock.translate.responses import parse_request, to_chat_request
from interlock.types import ChatRequest, Message, Tool

SOURCE_HEADER = "x-interlock-token-count-source"


def _deployment(state: AppState, route: ModelRoute) -> Deployment | None:
    """The deployment whose tokenizer counts: the alias's first, or a router alias's first target's."""
    if route.deployments:
        return route.deployments[0]
    spec = route.model.router
    for name in spec.models.values() if spec else ():
        target = state.gateway.routes.get(name)
        if target is not None and target.deployments:
            return target.deployments[0]
    return None


def _templated(dep: Deployment, model: str, messages: list[Message], tools: list[Tool]) -> int | None:
    """The prompt's tokens as the model sees them (its chat template applied), where the provider knows."""
    body = {"model": model, "messages": [m.model_dump(exclude_none=True) for m in messages]}
    if tools:
        body["tools"] = [t.model_dump(exclude_none=True) for t in tools]
    try:
        return dep.provider.count_prompt(ChatRequest.model_validate(body))
    except (GatewayError, ValidationError):  # the model cannot render this prompt: count its text instead
        return None


def _count(
    state: AppState, route: ModelRoute, model: str, messages: list[Message], tools: list[Tool], text: str
) -> tuple[int, str]:
    """The count and where it came from (the `x-interlock-token-count-source` header)."""
    dep = _deployment(state, route)
    if dep is None:
        return (len(text) + 3) // 4, "estimate:chars/4"
    templated = _templated(dep, model, messages, tools)
    if templated is not None:
        return templated, f"tokenizer:{dep.alias}+template"
    return state.gateway.counter.count(dep, text)


async def count_tokens(request: Request) -> Response:
    """The input tokens of a Messages API prompt: `{"input_tokens": N}`."""
    state: AppState = request.app.state.interlock
    try:
        ctx = await authenticate(state, request, "count_tokens")
    except GatewayError as exc:
        return refuse(state, request, exc, "anthropic")
    try:
        data = parse_json(await read_body(request, state.settings.server.max_body_bytes))
        prompt = validate(AnthropicPrompt, data)
        route = state.gateway.resolve(ctx, prompt.model, "chat")  # 404 unknown, 403 out of the key's scope
        text = count_text(prompt)
    except GatewayError as exc:
        if is_policy_denial(exc, False):
            state.audit.record(denial_event(ctx.operation, exc, ctx))
        return error_response(exc, "anthropic", ctx.response_headers())
    n, source = _count(state, route, prompt.model, prompt_messages(prompt), prompt_tools(prompt), text)
    return JSONResponse({"input_tokens": n}, headers={SOURCE_HEADER: source, "x-request-id": ctx.request_id})


async def input_tokens(request: Request) -> Response:
    """The input tokens of a Responses API prompt: `{"object": "response.input_tokens", "input_tokens": N}`."""
    state: AppState = request.app.state.interlock
    try:
        ctx = await authenticate(state, request, "input_tokens")
    except GatewayError as exc:
        return refuse(state, request, exc)
    try:
        data = parse_json(await read_body(request, state.settings.server.max_body_bytes))
        req = parse_request(data)  # a create request's fields: those that only a model call uses mean nothing here
        route = state.gateway.resolve(ctx, req.model, "chat")  # 404 unknown, 403 out of the key's scope
        previous = req.previous_response_id
        history = await stored_conversation(state.store, owner_of(ctx.principal), previous) if previous else []
        chat = to_chat_request(req, history)
    except GatewayError as exc:
        if is_policy_denial(exc, False):
            state.audit.record(denial_event(ctx.operation, exc, ctx))
        return error_response(exc, "openai", ctx.response_headers())
    tools = chat.tools or []
    text = prompt_text(chat.messages, tools)
    if chat.response_format is not None and chat.response_format.json_schema is not None:
        text += "\n" + dumps_json(chat.response_format.json_schema.schema_)  # the schema reaches the model too
    n, source = _count(state, route, req.model, chat.messages, tools, text)
    body = {"object": "response.input_tokens", "input_tokens": n}
    return JSONResponse(body, headers={SOURCE_HEADER: source, "x-request-id": ctx.request_id})
