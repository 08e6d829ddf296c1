"""Deployments: where an alias is served, with live load and health numbers for the balancer."""

from __future__ import annotations

from dataclasses import dataclass, field

from interlock.providers.base import Provider
from interlock.routing.breaker import CircuitBreaker
from interlock.routing.router import LearnedRouter
from interlock.routing.variants import VariantSet
from interlock.settings import ModelSettings
from interlock.types import Price

EWMA_ALPHA = 0.2


@dataclass(eq=False)
class Deployment:
    """One provider serving an alias, its price, and its live state."""

    alias: str
    name: str
    provider: Provider
    model: ModelSettings
    price: Price
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    outstanding: int = 0
    latency_ms: float | None = None  # EWMA of time to first byte

    @property
    def weight(self) -> float:
        """Relative share of traffic among equals."""
        return self.model.weight

    @property
    def priority(self) -> int:
        """Lower is preferred."""
        return self.model.priority

    def observe_latency(self, ms: float) -> None:
        """Fold one time-to-first-byte into the moving average."""
        self.latency_ms = ms if self.latency_ms is None else (1 - EWMA_ALPHA) * self.latency_ms + EWMA_ALPHA * ms


@dataclass
class ModelRoute:
    """An alias: its deployments and the aliases to fall back to."""

    alias: str
    model: ModelSettings
    deployments: list[Deployment]
    fallbacks: list[str]
    router: LearnedRouter | None = None
    variants: VariantSet | None = None  # an alias served by other aliases (see `routing.variants`)

    @property
    def tags(self) -> list[str]:
        """The alias's tags."""
        return self.model.tags
