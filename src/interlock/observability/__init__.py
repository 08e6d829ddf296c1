"""Seeing the gateway run: Prometheus metrics (`metrics`) and OpenTelemetry traces (`tracing`).

`Observability` is what `create_app` builds from `[metrics]` and `[tracing]`: the hooks that
record each settled request, the wrappers that trace the model endpoints and the provider calls,
and the aiohttp hook that passes the trace context upstream. Either half may be off; when both are,
nothing of this package is on the request path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import aiohttp

from interlock.governance.admission import BudgetStore, Governance
from interlock.observability.context import ObservedContext
from interlock.observability.metrics import Metrics
from interlock.observability.traced_provider import TracedProvider
from interlock.observability.tracing import Handler, Tracing
from interlock.plugins.hooks import Hook
from interlock.routing.deployments import ModelRoute
from interlock.settings import Settings

__all__ = ["Metrics", "Observability", "ObservedContext", "Tracing"]


class Observability:
    """The metrics and traces of one app."""

    def __init__(self, settings: Settings, routes: Mapping[str, ModelRoute]) -> None:
        self.metrics = Metrics(settings.metrics, routes) if settings.metrics.enabled else None
        self.tracing = Tracing(settings.tracing) if settings.tracing.enabled else None
        if self.tracing is not None:
            for route in routes.values():
                for dep in route.deployments:
                    dep.provider = TracedProvider(dep.provider, self.tracing.tracer)

    @property
    def hooks(self) -> list[Hook[ObservedContext]]:
        """The `finish` (and, for traces, `after`) hooks to run on every model endpoint."""
        found: list[Hook[ObservedContext]] = []
        if self.metrics is not None:
            found.append(self.metrics.hook)
        if self.tracing is not None:
            found.append(self.tracing.hook)
        return found

    def trace_configs(self) -> list[aiohttp.TraceConfig]:
        """What the upstream HTTP session needs (the `traceparent` of each call)."""
        return [self.tracing.trace_config()] if self.tracing is not None else []

    def traced(self, handlers: Mapping[tuple[str, str], Handler]) -> dict[tuple[str, str], Handler]:
        """The model endpoints' handlers, each request a span when tracing is on."""
        return self.tracing.traced(handlers) if self.tracing is not None else dict(handlers)

    def bind(
        self,
        store: BudgetStore,
        governance: Governance,
        routes: Callable[[], Mapping[str, ModelRoute]] | None = None,
        pending: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        """Services that exist only once the app has started: the budgets a scrape reads, the gateway's route
        table (a reload replaces it), and the count of tool calls waiting for an approval."""
        if self.metrics is not None:
            self.metrics.bind_budgets(store, governance)
            if routes is not None:
                self.metrics.bind_routes(routes)
            if pending is not None:
                self.metrics.bind_pending(pending)

    async def close(self) -> None:
        """Flush and stop the span exporter."""
        if self.tracing is not None:
            await self.tracing.close()
