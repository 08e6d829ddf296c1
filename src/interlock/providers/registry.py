"""Finds provider factories through the `interlock.providers` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from interlock.pricing import resolve_price
from interlock.providers.base import ProviderContext, ProviderFactory
from interlock.routing.breaker import CircuitBreaker
from interlock.routing.deployments import Deployment, ModelRoute
from interlock.settings import ConfigError

if TYPE_CHECKING:
    from interlock.settings import Settings

GROUP = "interlock.providers"


def available_providers() -> list[str]:
    """The names of every registered provider, built-ins included."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load_factory(name: str) -> ProviderFactory | None:
    """The factory registered as `name`, imported only when a model uses it."""
    for ep in entry_points(group=GROUP, name=name):
        factory: ProviderFactory = ep.load()
        return factory
    return None


def build_routes(settings: Settings, context: ProviderContext) -> dict[str, ModelRoute]:
    """Every alias with a provider per deployment; an unknown provider name is a config error."""
    routes: dict[str, ModelRoute] = {}
    breaker = settings.routing
    for alias, model in settings.models.items():
        deployments = []
        configs = model.deployment_settings()
        for i, dep in enumerate(configs):
            factory = load_factory(dep.provider)
            where = f"models.{alias}" + (f".deployments[{i}]" if model.deployments else "")
            if factory is None:
                raise ConfigError(
                    f"invalid config in {settings.source}: {where}.provider: "
                    f"unknown provider '{dep.provider}' (registered: {', '.join(available_providers())})"
                )
            name = alias if len(configs) == 1 else f"{alias}#{i}"
            deployments.append(
                Deployment(
                    alias=alias,
                    name=name,
                    provider=factory(alias, dep, context),
                    model=dep,
                    price=resolve_price(alias, dep),
                    breaker=CircuitBreaker(breaker.breaker_failures, breaker.breaker_cooldown_s),
                )
            )
        routes[alias] = ModelRoute(alias, model, deployments, list(model.fallbacks))
    return routes
