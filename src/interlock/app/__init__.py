"""create_app(settings) -> the ASGI app. Wiring only: every behaviour lives in the layers below."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from interlock import __version__
from interlock.api import admin, agents, anthropic, completions, openai, outcomes, responses
from interlock.api import feedback as feedback_api
from interlock.api import governance as governance_api
from interlock.api import mcp as mcp_api
from interlock.api import shadow as shadow_api
from interlock.api import variants as variants_api
from interlock.api.count_tokens import count_tokens, input_tokens
from interlock.api.hotpaths import HotPaths
from interlock.api.http import JSONResponse, error_response, flavor_of
from interlock.api.metrics import metrics
from interlock.api.openapi import openapi_document
from interlock.api.state import AppState
from interlock.api.usage import usage
from interlock.app.lifespan import HttpSessions, lifespan_of
from interlock.errors import BadRequest, GatewayError, NotFound
from interlock.gateway.context import RequestContext
from interlock.gateway.routes import build_routes
from interlock.guardrails.service import GuardrailService
from interlock.mcp.server import McpService
from interlock.observability import Observability
from interlock.plugins.hooks import Hook
from interlock.providers.base import ProviderContext
from interlock.settings import Settings
from interlock.ui import Dashboard

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok", "version": __version__})


async def readyz(request: Request) -> Response:
    """Readiness: the store is open and every model is loaded."""
    state: AppState = request.app.state.interlock
    models: dict[str, Any] = {}
    ready = state.store.is_open()
    for alias, provider in state.providers.items():
        ok, detail = provider.readiness()
        entry: dict[str, Any] = {"ready": ok, "state": detail}
        stats = getattr(provider, "stats", None)
        if callable(stats):
            entry["engine"] = stats()
        models[alias] = entry
        ready = ready and ok
    ledger = state.store.ledger_state()
    ready = ready and ledger != "full"
    body = {
        "status": "ready" if ready else "not_ready",
        "store": "open" if state.store.is_open() else "closed",
        "ledger": ledger,
        "models": models,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def openapi_json(request: Request) -> Response:
    """The OpenAPI document."""
    return JSONResponse(openapi_document(__version__))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    flavor = flavor_of(request.url.path)
    if exc.status_code == 404:
        return error_response(NotFound(f"no route {request.method} {request.url.path}", code="unknown_route"), flavor)
    if exc.status_code == 405:
        err = BadRequest(f"method {request.method} is not allowed on {request.url.path}", code="method_not_allowed")
        err.status = 405
        # Starlette's `Allow` names the first route on the path only; here a path has a route per method.
        routes = request.app.router.routes
        allowed = {m for r in routes if r.matches(request.scope)[0] != Match.NONE for m in getattr(r, "methods", ())}
        allow = ", ".join(sorted(allowed)) if allowed else (exc.headers or {}).get("Allow", "")
        return error_response(err, flavor, headers={"Allow": allow})
    return error_response(GatewayError(str(exc.detail)), flavor)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    err = GatewayError("internal error; the details are in the server log")
    return error_response(err, flavor_of(request.url.path))


def create_app(settings: Settings, hooks: Sequence[Hook[RequestContext]] = ()) -> HotPaths:
    """The gateway as an ASGI app. Config errors raise here; services start in the lifespan.

    `hooks` join the request path of every model endpoint (see `interlock.plugins.hooks`): those of
    phase "input" first, before routing and residency; those of phase "policy" after residency and
    before the cache and governance. Their `on_batch`, `after` and `finish` run in the same order.
    """
    http = HttpSessions()
    provider_context = ProviderContext(settings=settings, http=http)
    models = build_routes(settings, provider_context)
    observability = Observability(settings, models)
    http.trace_configs = observability.trace_configs()
    guardrails = GuardrailService(settings.guardrails, settings.source) if settings.guardrails.enabled else None
    dashboard = Dashboard(routes=models)
    mcp_service = McpService()
    endpoints = [
        Route("/v1/chat/completions", openai.chat_completions, methods=["POST"]),
        Route("/v1/embeddings", openai.embeddings, methods=["POST"]),
        Route("/v1/completions", completions.completions, methods=["POST"]),
        Route("/v1/models", openai.list_models, methods=["GET"]),
        Route("/v1/usage", usage, methods=["GET"]),
        Route("/v1/outcomes", outcomes.outcomes, methods=["POST"]),
        Route("/v1/feedback", feedback_api.feedback, methods=["POST"]),
        Route("/v1/models/{model:path}", openai.get_model, methods=["GET"]),
        Route("/v1/messages", anthropic.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/responses", responses.create_response, methods=["POST"]),
        Route("/v1/responses/input_tokens", input_tokens, methods=["POST"]),
        Route("/v1/responses/{response_id}", responses.get_response, methods=["GET"]),
        Route("/v1/responses/{response_id}", responses.delete_response, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", responses.list_input_items, methods=["GET"]),
        Route("/admin/keys", admin.create_key, methods=["POST"]),
        *agents.ROUTES,
        *mcp_api.ROUTES,
        Route("/mcp", mcp_api.McpEndpoint(mcp_service)),  # every method: the SDK's streamable HTTP transport
        *shadow_api.ROUTES,
        *variants_api.ROUTES,
        Route("/admin/reload", variants_api.reload, methods=["POST"]),
        Route("/admin/keys", admin.list_keys, methods=["GET"]),
        Route("/admin/keys/{key_id}/revoke", admin.revoke_key, methods=["POST"]),
        Route("/admin/keys/{key_id}/suspend", admin.suspend_key, methods=["POST"]),
        Route("/admin/keys/{key_id}/resume", admin.resume_key, methods=["POST"]),
        Route("/admin/spend", admin.spend, methods=["GET"]),
        Route("/admin/roi", outcomes.roi, methods=["GET"]),
        Route("/admin/orgs", governance_api.create_org, methods=["POST"]),
        Route("/admin/orgs", governance_api.list_orgs, methods=["GET"]),
        Route("/admin/teams", governance_api.create_team, methods=["POST"]),
        Route("/admin/teams", governance_api.list_teams, methods=["GET"]),
        Route("/admin/budgets", governance_api.set_budget, methods=["PUT"]),
        Route("/admin/budgets", governance_api.delete_budget, methods=["DELETE"]),
        Route("/admin/budgets", governance_api.list_budgets, methods=["GET"]),
        Route("/admin/rate-limits", governance_api.set_rate_limit, methods=["PUT"]),
        Route("/admin/rate-limits", governance_api.delete_rate_limit, methods=["DELETE"]),
        Route("/admin/rate-limits", governance_api.list_rate_limits, methods=["GET"]),
        Route("/admin/guardrails", governance_api.set_guardrail_policy, methods=["PUT"]),
        Route("/admin/guardrails", governance_api.delete_guardrail_policy, methods=["DELETE"]),
        Route("/admin/guardrails", governance_api.list_guardrail_policies, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *dashboard.routes(),
    ]
    app = Starlette(
        routes=endpoints,
        lifespan=lifespan_of(settings, models, provider_context, http, hooks, guardrails, observability, dashboard),
        exception_handlers={HTTPException: _http_error, GatewayError: admin.gateway_error, Exception: _server_error},
    )
    app.state.mcp = mcp_service  # the lifespan binds it to the MCP gateway
    hot = {
        ("POST", "/v1/chat/completions"): openai.chat_completions,
        ("POST", "/v1/messages"): anthropic.messages,
        ("POST", "/v1/responses"): responses.create_response,
        ("POST", "/v1/embeddings"): openai.embeddings,
        ("POST", "/v1/completions"): completions.completions,
    }
    return HotPaths(app, observability.traced(hot), _server_error)
