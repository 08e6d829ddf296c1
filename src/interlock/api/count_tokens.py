"""`POST /v1/messages/count_tokens`: the tokens of an Anthropic prompt, counted without calling a model.

The count uses the model's own tokenizer where the gateway has one (local models), else the embedded
model's tokenizer, else an estimate; `x-interlock-token-count-source` says which. It is authenticated
and scope-checked like every model endpoint, and its 401/403 refusals are audited; no ledger row is
written, because no model is called and nothing is billed.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from interlock.api.http import JSONResponse, error_response, parse_json, read_body, validate
from interlock.api.openai import authenticate, refuse
from interlock.api.state import AppState
from interlock.errors import GatewayError
from interlock.gateway.stages import denial_event, is_policy_denial
from interlock.routing.deployments import Deployment, ModelRoute
from interlock.translate.anthropic import AnthropicPrompt, count_text, prompt_messages, prompt_tools
from interlock.types import ChatRequest

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


def _templated(dep: Deployment, prompt: AnthropicPrompt) -> int | None:
    """The prompt's tokens as the model sees them (its chat template applied), where the provider knows."""
    tools = [t.model_dump(exclude_none=True) for t in prompt_tools(prompt)]
    body = {"model": prompt.model, "messages": [m.model_dump(exclude_none=True) for m in prompt_messages(prompt)]}
    try:
        return dep.provider.count_prompt(ChatRequest.model_validate({**body, **({"tools": tools} if tools else {})}))
    except (GatewayError, ValidationError):  # the model cannot render this prompt: count its text instead
        return None


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
    dep = _deployment(state, route)
    if dep is None:
        n, source = (len(text) + 3) // 4, "estimate:chars/4"
    else:
        templated = _templated(dep, prompt)
        if templated is not None:
            n, source = templated, f"tokenizer:{dep.alias}+template"
        else:
            n, source = state.gateway.counter.count(dep, text)
    return JSONResponse({"input_tokens": n}, headers={SOURCE_HEADER: source, "x-request-id": ctx.request_id})
