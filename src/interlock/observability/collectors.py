"""Metrics read at scrape time from the state that already exists: nothing is recorded on the request path.

- `RoutesCollector`: each deployment's circuit breaker and requests outstanding, and the load of
  every embedded engine (slots busy, queue, tokens, decode speed) from its provider's `stats()`.
- `BudgetCollector`: every budget's limit, spend, reservations and what is left in its current
  period, read by `refresh()` (asynchronous: the counters may live in Redis) just before a scrape.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from interlock.governance.admission import BudgetStore, Governance
from interlock.routing.breaker import State
from interlock.routing.deployments import ModelRoute

BREAKER_STATES: tuple[State, ...] = ("closed", "open", "half_open")
MICROS = 1_000_000


class RoutesCollector(Collector):
    """Breakers, outstanding requests and engine load, per deployment."""

    def __init__(
        self, routes: Callable[[], Mapping[str, ModelRoute]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._routes = routes  # read at each scrape: a config reload swaps the table
        self._clock = clock
        self._last_tokens: dict[
            str, tuple[float, int]
        ] = {}  # deployment -> (when, completion tokens) at the last scrape

    def collect(self) -> Iterator[Metric]:
        """The families, built from the live objects."""
        breaker = GaugeMetricFamily(
            "interlock_breaker_state",
            "Circuit breaker state per deployment: 1 for the current state, 0 for the others.",
            labels=["alias", "deployment", "state"],
        )
        outstanding = GaugeMetricFamily(
            "interlock_deployment_outstanding", "Requests in flight on a deployment.", labels=["alias", "deployment"]
        )
        engine = _EngineFamilies()
        now = self._clock()
        for dep in (d for r in self._routes().values() for d in r.deployments):
            state = dep.breaker.state
            for s in BREAKER_STATES:
                breaker.add_metric([dep.alias, dep.name, s], 1.0 if s == state else 0.0)
            outstanding.add_metric([dep.alias, dep.name], dep.outstanding)
            stats_of = getattr(dep.provider, "stats", None)
            stats = stats_of() if callable(stats_of) else None
            if isinstance(stats, dict) and "slots_busy" in stats:
                engine.add(
                    dep.alias, dep.name, stats, self._rate(dep.name, now, int(stats.get("completion_tokens", 0)))
                )
        yield breaker
        yield outstanding
        yield from engine.families()

    def _rate(self, name: str, now: float, tokens: int) -> float:
        """Completion tokens per second since the previous scrape (0 on the first)."""
        last = self._last_tokens.get(name)
        self._last_tokens[name] = (now, tokens)
        if last is None or now <= last[0] or tokens < last[1]:
            return 0.0
        return (tokens - last[1]) / (now - last[0])


class _EngineFamilies:
    """The engine's gauges and counters for one scrape."""

    def __init__(self) -> None:
        labels = ["alias", "deployment"]
        self.slots = GaugeMetricFamily(
            "interlock_engine_slots", "Engine slots (requests decoded together).", labels=labels
        )
        self.busy = GaugeMetricFamily(
            "interlock_engine_slots_busy", "Engine slots decoding a request now.", labels=labels
        )
        self.queue = GaugeMetricFamily("interlock_engine_queue_length", "Requests waiting for a slot.", labels=labels)
        self.queue_size = GaugeMetricFamily("interlock_engine_queue_size", "Waiting room before 429.", labels=labels)
        self.speed = GaugeMetricFamily(
            "interlock_engine_decode_tokens_per_second",
            "Completion tokens per second since the previous scrape (rate(interlock_engine_completion_tokens_total) "
            "says the same over any window).",
            labels=labels,
        )
        self.completion = CounterMetricFamily(
            "interlock_engine_completion_tokens", "Tokens the engine generated.", labels=labels
        )
        self.prompt = CounterMetricFamily(
            "interlock_engine_prompt_tokens",
            "Prompt tokens the engine decoded (reused prefixes excluded).",
            labels=labels,
        )
        self.skipped = CounterMetricFamily(
            "interlock_engine_prompt_tokens_skipped",
            "Prompt tokens not decoded because their KV cells were there: the slot's own (reused), copied from "
            "another slot (shared) or loaded from the prompt cache (cached).",
            labels=[*labels, "source"],
        )
        self.cache_bytes = GaugeMetricFamily(
            "interlock_engine_prompt_cache_bytes", "Host memory the engine's prompt cache holds.", labels=labels
        )
        self.done = CounterMetricFamily("interlock_engine_requests", "Requests the engine finished.", labels=labels)

    def add(self, alias: str, deployment: str, stats: dict[str, Any], speed: float) -> None:
        """One engine's numbers."""
        values = [alias, deployment]
        self.slots.add_metric(values, float(stats.get("slots", 0)))
        self.busy.add_metric(values, float(stats["slots_busy"]))
        self.queue.add_metric(values, float(stats.get("queue_length", 0)))
        self.queue_size.add_metric(values, float(stats.get("queue_size", 0)))
        self.speed.add_metric(values, speed)
        self.completion.add_metric(values, float(stats.get("completion_tokens", 0)))
        self.prompt.add_metric(values, float(stats.get("prompt_tokens", 0)))
        for source in ("reused", "shared", "cached"):
            self.skipped.add_metric([*values, source], float(stats.get(f"prompt_tokens_{source}", 0)))
        self.cache_bytes.add_metric(values, float(stats.get("prompt_cache_bytes", 0)))
        self.done.add_metric(values, float(stats.get("requests_done", 0)))

    def families(self) -> Iterator[Metric]:
        """Every family (an empty one when no engine runs)."""
        yield from (
            self.slots,
            self.busy,
            self.queue,
            self.queue_size,
            self.speed,
            self.completion,
            self.prompt,
            self.skipped,
            self.cache_bytes,
            self.done,
        )


@dataclass(frozen=True, slots=True)
class BudgetLevel:
    """One budget in its current period, in micro-dollars."""

    scope: str
    scope_id: str
    period: str
    limit: int
    spent: int
    reserved: int

    @property
    def remaining(self) -> int:
        """What is left to spend (never below 0)."""
        return max(0, self.limit - self.spent - self.reserved)


class BudgetCollector(Collector):
    """Every budget's limit, spend, reservations and remaining, as read by the last `refresh()`."""

    def __init__(self) -> None:
        self._source: tuple[BudgetStore, Governance] | None = None
        self._levels: list[BudgetLevel] = []

    def bind(self, store: BudgetStore, governance: Governance) -> None:
        """Read the budgets from `store` and their counters through `governance`."""
        self._source = (store, governance)

    async def refresh(self) -> None:
        """Read every budget's current period (as `GET /admin/budgets` does)."""
        if self._source is None:
            return
        store, governance = self._source
        now, levels = time.time(), []
        for b in await store.list_budgets():
            spent, reserved = await governance.budget_spent(b, now)
            levels.append(BudgetLevel(b.scope, b.scope_id, b.period, b.limit_micros, spent, reserved))
        self._levels = levels

    def collect(self) -> Iterator[Metric]:
        """Four gauges per budget, in USD."""
        labels = ["scope", "scope_id", "period"]
        families = {
            "limit": GaugeMetricFamily("interlock_budget_limit_usd", "A budget's limit per period.", labels=labels),
            "spent": GaugeMetricFamily("interlock_budget_spent_usd", "Spent in the current period.", labels=labels),
            "reserved": GaugeMetricFamily(
                "interlock_budget_reserved_usd", "Held for requests in flight.", labels=labels
            ),
            "remaining": GaugeMetricFamily(
                "interlock_budget_remaining_usd", "Left to spend in the current period.", labels=labels
            ),
        }
        for level in self._levels:
            values = [level.scope, level.scope_id, level.period]
            families["limit"].add_metric(values, level.limit / MICROS)
            families["spent"].add_metric(values, level.spent / MICROS)
            families["reserved"].add_metric(values, level.reserved / MICROS)
            families["remaining"].add_metric(values, level.remaining / MICROS)
        yield from families.values()
