"""The app's lifespan: every service opened in order at start, wired into the gateway, closed at the end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
from starlette.applications import Starlette

from interlock.admin import AdminContext
from interlock.agents.approvals import Approvals
from interlock.agents.hook import ToolPolicyHook
from interlock.agents.registry import Policies
from interlock.agents.run_hook import RunHook
from interlock.agents.runs import open_run_counters
from interlock.agents.shadow import TrafficSignals
from interlock.api.state import AppState
from interlock.audit.log import AuditLog
from interlock.audit.stores import open_audit_store
from interlock.auth.keys import Keys, load_admin_key
from interlock.auth.tokens import TokenSigner
from interlock.errors import GatewayError
from interlock.flywheel.capture import Capture, CaptureWriter
from interlock.flywheel.rollout import Rollouts
from interlock.gateway.context import RequestContext
from interlock.gateway.gateway import Gateway
from interlock.gateway.pricing import reference_price
from interlock.gateway.reload import Reloader
from interlock.gateway.settlement import TokenCounter
from interlock.gateway.stages import Admission, Background, Cache, DenialAudit, Ledger, Residency
from interlock.governance.admission import Governance
from interlock.governance.alerts import BudgetAlerts, webhook_failure_auditor
from interlock.governance.counters import open_counters
from interlock.governance.reconcile import Reconciler
from interlock.governance.velocity import VelocityGuard
from interlock.governance.webhook import Webhook
from interlock.guardrails.service import GuardrailService
from interlock.mcp.gateway import McpGateway
from interlock.mcp.provenance import McpProvenance
from interlock.mcp.server import McpService
from interlock.observability import Observability
from interlock.plugins.hooks import Hook
from interlock.providers.base import Provider, ProviderContext
from interlock.routing.cache import open_cache
from interlock.routing.deployments import ModelRoute
from interlock.settings import Settings
from interlock.store import open_store
from interlock.ui import Dashboard

log = logging.getLogger(__name__)


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


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class HttpSessions:
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


def _reload_on_signal(reloader: Reloader) -> None:
    """SIGHUP: reload the config in the background (the outcome goes to the log)."""

    async def run() -> None:
        try:
            await reloader.reload()
        except GatewayError as exc:
            log.error("SIGHUP: %s", exc.message)

    task = asyncio.get_running_loop().create_task(run(), name="interlock-reload")
    _RELOADS.add(task)
    task.add_done_callback(_RELOADS.discard)


_RELOADS: set[asyncio.Task[None]] = set()


def lifespan_of(
    settings: Settings,
    routes: dict[str, ModelRoute],
    provider_context: ProviderContext,
    http: HttpSessions,
    hooks: Sequence[Hook[RequestContext]],
    guardrails: GuardrailService | None,
    observability: Observability,
    dashboard: Dashboard,
) -> Any:
    providers = {d.name: d.provider for r in routes.values() for d in r.deployments}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Each service's close is pushed as soon as it has started, so a start that fails closes what
        # already runs, and shutdown runs in reverse: what takes requests stops before what they use.
        async with contextlib.AsyncExitStack() as stack:
            await _serve(app, stack)
            yield

    async def _serve(app: Starlette, stack: contextlib.AsyncExitStack) -> None:
        stack.push_async_callback(observability.close)
        stack.push_async_callback(http.close)  # the providers' connection pool: closed after everything
        store = open_store(settings)
        await store.open()
        stack.push_async_callback(store.close)
        audit = AuditLog(
            open_audit_store(settings),
            settings.audit_dir(),
            checkpoint_every=settings.audit.checkpoint_every,
            checkpoint_interval_s=settings.audit.checkpoint_interval_s,
        )
        await audit.open()  # refuses to extend a log that was cut behind its signed head
        stack.push_async_callback(audit.close)
        admin = load_admin_key(settings.home, settings.admin_key.get_secret_value() if settings.admin_key else None)
        keys = Keys(store, admin, settings.store.key_refresh_interval_s, TokenSigner.at(settings.home))
        await keys.start()
        stack.push_async_callback(keys.close)
        cache = open_cache(settings.cache.url, settings.cache.max_entries)
        stack.push_async_callback(cache.close)
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
        stack.push_async_callback(governance.close)
        capture = CaptureWriter(store, settings.flywheel.capture) if settings.flywheel.capture.enabled else None
        if capture is not None:
            capture.start()
            stack.push_async_callback(capture.close)
            app.state.capture = capture  # tests flush it
        background = Background()
        stack.push_async_callback(background.drain)  # settlements and cache writes, before what they write to
        reconciler = Reconciler(governance, store, audit, settings.governance.reconcile_s)
        reconciler.start()
        stack.push_async_callback(reconciler.close)
        if guardrails is not None:
            await guardrails.start(store)
            stack.push_async_callback(guardrails.close)
        # The MCP gateway: upstream servers connected (and their tools listed) before the first request.
        mcp_gateway = McpGateway(settings.mcp, store, audit.record, guardrails)
        mcp_gateway.ledger = store.record_usage  # every MCP call or read leaves one ledger row
        mcp_gateway.ledger_state = store.ledger_state
        await mcp_gateway.start()
        stack.push_async_callback(mcp_gateway.close)
        counter = TokenCounter(_fallback_counter(routes))
        o = settings.oversight  # the webhook announcing approval requests and halts
        oversight = (
            Webhook(o.webhook_url, o.webhook_secret.get_secret_value().encode(), attempts=o.webhook_attempts,
                    on_failure=webhook_failure_auditor(audit))
            if o.webhook_url and o.webhook_secret
            else None
        )  # fmt: skip
        if oversight is not None:
            oversight.start()
            stack.push_async_callback(oversight.close)
        approvals = Approvals(store, o.approval_ttl_s, audit.record, oversight.send if oversight else None)
        mcp_gateway.approvals = approvals  # MCP calls are held for approval like model tool calls
        runs = RunHook(
            keys.agents,
            open_run_counters(settings.governance.redis_url, settings.governance.redis_prefix),
            store,
            audit.record,
            fail_open=settings.governance.fail_open,
        )
        stack.push_async_callback(runs.close)
        mcp_gateway.runs = runs  # MCP calls are steps of their run: the same caps and loop breaker
        signals = TrafficSignals(store)  # shadow-agent discovery: request shapes of keys that are not agents
        capture_hook = Capture(settings.flywheel.capture, capture) if capture is not None else None
        admission = Admission(governance, counter, background, settings.governance.image_tokens)
        ledger = Ledger(store.record_usage, reference_price(settings), store.ledger_state)
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
                *([capture_hook] if capture_hook is not None else []),
                *(h for h in hooks if h.phase == "policy"),
                ToolPolicyHook(Policies(keys.agents), audit.record, approvals),
                McpProvenance(mcp_gateway.results),  # after the agent policy: MCP results count as untrusted
                runs,
                Cache(cache, background),
                admission,
            ],
            output_hooks=[ledger, DenialAudit(audit), signals, *observability.hooks],
            # A shadow variant's answer is accounted for (residency, budget, ledger, capture), nothing else.
            shadow_hooks=[
                Residency(),
                *([capture_hook] if capture_hook else []),
                admission,
                ledger,
                *observability.hooks,
            ],
            first_token_timeout=settings.server.first_token_timeout,
            cache_scope=settings.engine.cache_scope,
        )

        async def close_providers() -> None:  # those the config started with and those a reload brought
            serving = {d.provider for r in gateway.routes.values() for d in r.deployments} | set(providers.values())
            await asyncio.gather(*(p.close() for p in serving), return_exceptions=True)

        stack.push_async_callback(close_providers)
        stack.push_async_callback(gateway.close)  # shadow answers still running, before their providers close
        rollouts = Rollouts(lambda: gateway.routes, store, audit.record, settings.store.key_refresh_interval_s)
        with contextlib.suppress(Exception):  # the store answers later: the config's weights meanwhile
            await rollouts.refresh()
            await rollouts.step()  # records the canaries that start now
        rollouts.start()
        stack.push_async_callback(rollouts.close)
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
        stack.push_async_callback(velocity.close)
        signals.start()
        stack.push_async_callback(signals.close)
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
        stack.push_async_callback(alerts.close)

        async def pending_approvals() -> int:
            now = time.time()
            return sum(a.expires_at > now for a in await store.list_approvals(status="pending", limit=10_000))

        observability.bind(store, governance, lambda: gateway.routes, pending_approvals)
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
            oversight=oversight,
        )
        announce = oversight.send if oversight is not None else None  # halts made on the dashboard too
        dashboard.bind(AdminContext(settings, store, keys, governance, audit, guardrails, announce), audit, mcp_gateway)
        state = app.state.interlock

        def swapped(new: Settings, fresh: dict[str, ModelRoute]) -> None:
            state.settings = new
            state.providers = {d.name: d.provider for r in fresh.values() for d in r.deployments}

        reloader = Reloader(settings, gateway, provider_context, swapped)
        state.reloader = reloader
        stack.push_async_callback(reloader.close)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
            loop.add_signal_handler(signal.SIGHUP, _reload_on_signal, reloader)
            stack.callback(loop.remove_signal_handler, signal.SIGHUP)
        mcp_service: McpService = app.state.mcp
        metrics = observability.metrics
        await stack.enter_async_context(
            mcp_service.run(mcp_gateway, Policies(keys.agents), metrics.agent_refused if metrics else None)
        )  # `/mcp` serves from here on, and stops first
        loading = asyncio.create_task(_start_providers(providers), name="interlock-load-models")
        stack.push_async_callback(_cancelled, loading)

    return lifespan
