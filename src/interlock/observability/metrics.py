"""Prometheus metrics of one app, in a registry of its own (never the process-wide default).

Recording on the request path is one `finish` hook (`MetricsHook`) reading the request's `Outcome`:
a handful of dictionary look-ups and counter increments, nothing that waits. Everything that is
*state* rather than an event (budgets left, breakers, engine load) is read at scrape time by the
collectors in `observability.collectors`.

Label cardinality is bounded by construction: label values come from the config (aliases,
deployments), from small fixed sets (endpoints, statuses, error codes), or from the few callers
of the public recording API below; a model name a client made up is `unknown`; no request id or
key secret is ever a label, and key *names* are one only with `[metrics] key_names = true`. As a
last guard every labelled metric keeps at most `max_series` label sets; further ones are counted
under `other`.

The API other packages call (guardrails, agents), each cheap enough for the request path:

- `verdict(guardrail, direction, entity, action, count)`: findings a guardrail acted on (entity: the kind of
  thing found, such as `EMAIL_ADDRESS`, never the matched text; action: `allow`, `redact`, `block` …);
- `agent_halt(reason)`: an agent run halted (`kill_switch`, `loop`, `run_cap` …); a request refused or cut
  with one of `HALT_REASONS`' codes counts by itself.

The tool calls waiting for an approval are counted from the store at each scrape (`bind_pending`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.process_collector import ProcessCollector

from interlock.governance.admission import BudgetStore, Governance
from interlock.observability.collectors import BudgetCollector, RoutesCollector
from interlock.observability.context import ObservedContext
from interlock.plugins.hooks import Hook, Outcome
from interlock.routing.deployments import ModelRoute
from interlock.settings import MetricsSettings

M = TypeVar("M", bound=MetricWrapperBase)

OTHER = "other"  # the label value of series past `max_series`
UNKNOWN = "unknown"  # a model alias that is not configured (a client's typo is not a series)
MAX_LABEL_CHARS = 100
# Seconds; time to first token and whole-request latency share them.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
RATE_LIMIT_STATUS = 429
ROUTE_HEADER = "x-interlock-route"


# Error codes that mean an agent's run was stopped, and the `reason` label each counts under.
HALT_REASONS = {
    "agent_halted": "kill_switch",
    "run_loop": "loop",
    "run_step_cap": "run_cap",
    "run_spend_cap": "run_cap",
    "run_token_cap": "run_cap",
    "run_time_cap": "run_cap",
}


class Series(Generic[M]):
    """The children of one labelled metric, cached by label values, at most `limit` of them."""

    def __init__(self, metric: M, limit: int) -> None:
        self._metric = metric
        self._limit = limit
        self._children: dict[tuple[str, ...], M] = {}

    def get(self, *values: str) -> M:
        """The child for these label values (`other` for all of them once the limit is reached)."""
        child = self._children.get(values)
        if child is not None:
            return child
        if len(self._children) >= self._limit:
            values = (OTHER,) * len(values)
            child = self._children.get(values)
            if child is not None:
                return child
        child = self._metric.labels(*(v[:MAX_LABEL_CHARS] for v in values))
        self._children[values] = child
        return child


class Metrics:
    """The app's Prometheus registry, what the request path records into it, and the public recording API."""

    def __init__(self, settings: MetricsSettings, routes: Mapping[str, ModelRoute], max_series: int = 1000) -> None:
        self.registry = CollectorRegistry()
        self._token = settings.token.get_secret_value().encode() if settings.token else None
        self._key_names = settings.key_names
        self._routes: Callable[[], Mapping[str, ModelRoute]] = lambda: routes  # the gateway's, once bound
        r, n = self.registry, max_series
        key = ("key",) if settings.key_names else ()
        self.requests = Series(
            Counter(
                "interlock_requests",
                "Model requests, once each when settled (authenticated requests: one per ledger row).",
                ["alias", "deployment", "provider", "endpoint", "status", *key],
                registry=r,
            ),
            n,
        )
        self.latency = Series(
            Histogram(
                "interlock_request_duration_seconds",
                "Whole-request latency, from arrival to the last byte.",
                ["alias", "deployment", "endpoint"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            ),
            n,
        )
        self.ttft = Series(
            Histogram(
                "interlock_time_to_first_token_seconds",
                "Time from arrival to the first streamed chunk (streams only).",
                ["alias", "deployment"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            ),
            n,
        )
        self.tokens = Series(
            Counter(
                "interlock_tokens",
                "Tokens billed, by type (input, output).",
                ["alias", "deployment", "type", *key],
                registry=r,
            ),
            n,
        )
        self.cost = Series(
            Counter(
                "interlock_cost_usd",
                "Cost in USD, as the ledger records it.",
                ["alias", "deployment", *key],
                registry=r,
            ),
            n,
        )
        self.rate_limited = Series(
            Counter(
                "interlock_rate_limited",
                "Requests refused with 429, by error code (budget, rate limit, concurrency, upstream, engine queue).",
                ["code"],
                registry=r,
            ),
            n,
        )
        self.cache = Series(
            Counter(
                "interlock_cache_lookups",
                "Response cache look-ups, by result (hit, miss).",
                ["alias", "result"],
                registry=r,
            ),
            n,
        )
        self.router = Series(
            Counter(
                "interlock_router_decisions",
                "Learned-router decisions, by router alias and the model it chose.",
                ["router", "model"],
                registry=r,
            ),
            n,
        )
        self.verdicts = Series(
            Counter(
                "interlock_guardrail_verdicts",
                "Guardrail findings acted on, by guardrail, direction (input, output, untrusted), entity kind, action.",
                ["guardrail", "direction", "entity", "action"],
                registry=r,
            ),
            n,
        )
        self.halts = Series(
            Counter("interlock_agent_halts", "Agent runs halted, by reason.", ["reason"], registry=r), n
        )
        self.pending = Gauge("interlock_approvals_pending", "Tool calls waiting for an approval.", registry=r)
        self.routes = RoutesCollector(lambda: self._routes())
        self._pending: Callable[[], Awaitable[int]] | None = None
        r.register(self.routes)
        self.budgets = BudgetCollector()
        r.register(self.budgets)
        ProcessCollector(registry=r)
        self.hook = MetricsHook(self)

    # the API other packages call --------------------------------------------------------------

    def verdict(self, guardrail: str, direction: str, entity: str, action: str, count: int) -> None:
        """Count `count` findings of one request (`entity` is a kind, such as `EMAIL_ADDRESS`; never the matched
        text); the guardrail hook's `Observer`."""
        self.verdicts.get(guardrail, direction, entity, action).inc(count)

    def agent_halt(self, reason: str) -> None:
        """Count one halted agent run (`reason` from a small fixed set: `kill_switch`, `loop`, `run_cap` …)."""
        self.halts.get(reason).inc()

    def agent_refused(self, code: str | None) -> None:
        """Count an agent's request refused outside the model path (an MCP call) if `code` is a halt's."""
        if code in HALT_REASONS:
            self.halts.get(HALT_REASONS[code]).inc()

    # the request path -------------------------------------------------------------------------

    def record(self, ctx: ObservedContext, outcome: Outcome) -> None:
        """Count one settled request."""
        alias = ctx.alias if ctx.alias in self._routes() else UNKNOWN
        dep = outcome.deployment
        key = (ctx.principal.name,) if self._key_names else ()
        self.requests.get(alias, dep, outcome.provider, ctx.endpoint, str(outcome.status), *key).inc()
        self.latency.get(alias, dep, ctx.endpoint).observe(outcome.latency_ms / 1000)
        if outcome.ttft_ms is not None:
            self.ttft.get(alias, dep).observe(outcome.ttft_ms / 1000)
        usage = outcome.usage
        if usage.prompt_tokens:
            self.tokens.get(alias, dep, "input", *key).inc(usage.prompt_tokens)
        if usage.completion_tokens:
            self.tokens.get(alias, dep, "output", *key).inc(usage.completion_tokens)
        if outcome.cost_micros:
            self.cost.get(alias, dep, *key).inc(outcome.cost_micros / 1_000_000)
        err = outcome.error
        if err is not None:
            self.agent_refused(err.code)
        if outcome.status == RATE_LIMIT_STATUS:
            self.rate_limited.get(outcome.error.code if outcome.error and outcome.error.code else UNKNOWN).inc()
        if ctx.cache:
            self.cache.get(alias, ctx.cache).inc()
        route = ctx.route
        if route is not None and ROUTE_HEADER in ctx.headers:
            self.router.get(alias, route.alias).inc()

    # scraping ---------------------------------------------------------------------------------

    def bind_budgets(self, store: BudgetStore, governance: Governance) -> None:
        """Where scrapes read the budgets from (set once the services have started)."""
        self.budgets.bind(store, governance)

    def bind_routes(self, routes: Callable[[], Mapping[str, ModelRoute]]) -> None:
        """Where the routes are read from (the gateway's table, which a config reload replaces)."""
        self._routes = routes

    def bind_pending(self, pending: Callable[[], Awaitable[int]]) -> None:
        """How a scrape counts the tool calls waiting for an approval (a store read)."""
        self._pending = pending

    def token_matches(self, token: str | None) -> bool:
        """Whether `token` is the configured `[metrics] token` (compared in constant time)."""
        return self._token is not None and token is not None and hmac.compare_digest(self._token, token.encode())

    async def render(self) -> bytes:
        """The exposition text: the budgets are read first (the only state that needs I/O)."""
        await self.budgets.refresh()
        if self._pending is not None:
            self.pending.set(await self._pending())
        return generate_latest(self.registry)


class MetricsHook(Hook[ObservedContext]):
    """Records every settled request into `Metrics` (a `finish` hook only: nothing else on the path)."""

    name = "metrics"

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def finish(self, ctx: ObservedContext, outcome: Outcome) -> None:
        """Count the request."""
        self._metrics.record(ctx, outcome)
