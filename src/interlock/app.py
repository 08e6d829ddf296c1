"""create_app(settings) -> the ASGI app. Wiring only: every behaviour lives in the layers below."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from interlock import __version__
from interlock.admin import AdminContext
from interlock.agents.hook import ToolPolicyHook
from interlock.agents.registry import Policies
from interlock.api import admin, agents, anthropic, completions, openai, outcomes, responses
from interlock.api import governance as governance_api
from interlock.api.count_tokens import count_tokens
from interlock.api.hotpaths import HotPaths
from interlock.api.http import JSONResponse, error_response, flavor_of
from interlock.api.metrics import metrics
from interlock.api.openapi import openapi_document
from interlock.api.state import AppState
from interlock.api.usage import usage
from interlock.audit.log import AuditLog
from interlock.audit.stores import open_audit_store
from interlock.auth.keys import Keys, load_admin_key
from interlock.errors import BadRequest, GatewayError, NotFound
from interlock.gateway.context import RequestContext
from interlock.gateway.gateway import Gateway
from interlock.gateway.pricing import reference_price
from interlock.gateway.routes import build_routes
from interlock.gateway.settlement import TokenCounter
from interlock.gateway.stages import Admission, Background, Cache, DenialAudit, Ledger, Residency
from interlock.governance.admission import Governance
from interlock.governance.alerts import BudgetAlerts, webhook_failure_auditor
from interlock.governance.counters import open_counters
from interlock.governance.reconcile import Reconciler
from interlock.governance.velocity import VelocityGuard
from interlock.governance.webhook import Webhook
from interlock.guardrails.service import GuardrailService
from interlock.observability import Observability
from interlock.plugins.hooks import Hook
from interlock.providers.base import Provider, ProviderContext
from interlock.routing.cache import open_cache
from interlock.routing.deployments import ModelRoute
from interlock.settings import Settings
from interlock.store import open_store
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


def _fallback_counter(routes: dict[str, ModelRoute]) -> tuple[str, Any] | None:
    """The embedded model's tokenizer, for upstreams that report no usage."""
    for route in routes.values():
        for dep in route.deployments:
            if dep.provider.kind == "local" and dep.model.mode == "chat":
                return route.alias, dep.provider.count_tokens
    return None


async def _start_providers(providers: dict[str, Provider]) -> None:
    results = await asyncio.gather(*(p.start() for p in providers.values()), return_exceptions=True)
    for alias, result in zip(providers, results, strict=True):
        if isinstance(result, BaseException):
            log.error("model %r failed to start: %s", alias, result)


class _HttpSessions:
    """One shared upstream connection pool, created on first use inside the running loop."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.trace_configs: list[aiohttp.TraceConfig] = []  # the traceparent of each call, when tracing

    def __call__(self) -> aiohttp.ClientSession:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            # No cookie jar: a cookie one upstream answer sets must not ride along on other callers' requests.
            self.session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                cookie_jar=aiohttp.DummyCookieJar(),
                trace_configs=self.trace_configs or None,
            )
        return self.session

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def _lifespan(
    settings: Settings,
    routes: dict[str, ModelRoute],
    http: _HttpSessions,
    hooks: Sequence[Hook[RequestContext]],
    guardrails: GuardrailService | None,
    observability: Observability,
    dashboard: Dashboard,
) -> Any:
    providers = {d.name: d.provider for r in routes.values() for d in r.deployments}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = open_store(settings)
        await store.open()
        audit = AuditLog(
            open_audit_store(settings),
            settings.audit_dir(),
            checkpoint_every=settings.audit.checkpoint_every,
            checkpoint_interval_s=settings.audit.checkpoint_interval_s,
        )
        await audit.open()  # refuses to extend a log that was cut behind its signed head
        admin = load_admin_key(settings.home, settings.admin_key.get_secret_value() if settings.admin_key else None)
        keys = Keys(store, admin, settings.store.key_refresh_interval_s)
        await keys.start()
        cache = open_cache(settings.cache.url, settings.cache.max_entries)
        governance = Governance(
            store,
            open_counters(
                settings.governance.redis_url, settings.governance.redis_prefix, settings.governance.rate_limit_window_s
            ),
            refresh_s=settings.governance.refresh_s,
            reservation_ttl_s=settings.governance.reservation_ttl_s,
            default_output_cap=settings.governance.output_cap,
            fail_open=settings.governance.fail_open,
        )
        await governance.start()
        reconciler = Reconciler(governance, store, audit, settings.governance.reconcile_s)
        reconciler.start()
        background = Background()
        if guardrails is not None:
            await guardrails.start(store)
        counter = TokenCounter(_fallback_counter(routes))
        gateway = Gateway(
            routes,
            settings.routing,
            counter,
            input_hooks=[
                *([guardrails.hook(audit.record, observability.metrics)] if guardrails is not None else []),
                *(h for h in hooks if h.phase == "input"),
            ],
            policy_hooks=[
                Residency(),
                *(h for h in hooks if h.phase == "policy"),
                ToolPolicyHook(Policies(keys.agents), audit.record),
                Cache(cache, background),
                Admission(governance, counter, background, settings.governance.image_tokens),
            ],
            output_hooks=[
                Ledger(store.record_usage, reference_price(settings), store.ledger_state),
                DenialAudit(audit),
                *observability.hooks,
            ],
            first_token_timeout=settings.server.first_token_timeout,
        )
        g = settings.governance
        velocity = VelocityGuard(
            store,
            keys,
            audit,
            factor=g.velocity_factor,
            min_micros=int(g.velocity_min_usd * 1_000_000),
            history_min=g.velocity_history_min,
            suspend=g.velocity_suspend,
            interval_s=g.velocity_interval_s,
        )
        velocity.start()
        a = settings.alerts
        webhook = (
            Webhook(
                a.webhook_url,
                a.webhook_secret.get_secret_value().encode(),
                attempts=a.webhook_attempts,
                on_failure=webhook_failure_auditor(audit),
            )
            if a.webhook_url and a.webhook_secret
            else None
        )
        alerts = BudgetAlerts(store, governance, audit, a.budget_thresholds, webhook=webhook, interval_s=a.interval_s)
        alerts.start()
        observability.bind(store, governance)
        app.state.interlock = AppState(
            settings,
            store,
            keys,
            gateway,
            providers,
            int(time.time()),
            governance,
            audit,
            guardrails,
            observability=observability,
        )
        dashboard.bind(AdminContext(settings, store, keys, governance, audit, guardrails), audit)
        loading = asyncio.create_task(_start_providers(providers), name="interlock-load-models")
        try:
            yield
        finally:
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
            await asyncio.gather(*(p.close() for p in providers.values()), return_exceptions=True)
            await velocity.close()
            await alerts.close()
            if guardrails is not None:
                await guardrails.close()
            await reconciler.close()
            await http.close()
            await background.drain()
            await governance.close()
            await cache.close()
            await keys.close()
            await audit.close()
            await store.close()
            await observability.close()

    return lifespan


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
    http = _HttpSessions()
    models = build_routes(settings, ProviderContext(settings=settings, http=http))
    observability = Observability(settings, models)
    http.trace_configs = observability.trace_configs()
    guardrails = GuardrailService(settings.guardrails, settings.source) if settings.guardrails.enabled else None
    dashboard = Dashboard()
    endpoints = [
        Route("/v1/chat/completions", openai.chat_completions, methods=["POST"]),
        Route("/v1/embeddings", openai.embeddings, methods=["POST"]),
        Route("/v1/completions", completions.completions, methods=["POST"]),
        Route("/v1/models", openai.list_models, methods=["GET"]),
        Route("/v1/usage", usage, methods=["GET"]),
        Route("/v1/outcomes", outcomes.outcomes, methods=["POST"]),
        Route("/v1/models/{model:path}", openai.get_model, methods=["GET"]),
        Route("/v1/messages", anthropic.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/responses", responses.create_response, methods=["POST"]),
        Route("/v1/responses/{response_id}", responses.get_response, methods=["GET"]),
        Route("/v1/responses/{response_id}", responses.delete_response, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", responses.list_input_items, methods=["GET"]),
        Route("/admin/keys", admin.create_key, methods=["POST"]),
        *agents.ROUTES,
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
        lifespan=_lifespan(settings, models, http, hooks, guardrails, observability, dashboard),
        exception_handlers={HTTPException: _http_error, GatewayError: admin.gateway_error, Exception: _server_error},
    )
    hot = {
        ("POST", "/v1/chat/completions"): openai.chat_completions,
        ("POST", "/v1/messages"): anthropic.messages,
        ("POST", "/v1/responses"): responses.create_response,
        ("POST", "/v1/embeddings"): openai.embeddings,
        ("POST", "/v1/completions"): completions.completions,
    }
    return HotPaths(app, observability.traced(hot), _server_error)
