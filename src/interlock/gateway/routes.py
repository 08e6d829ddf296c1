"""Finds provider factories through the `interlock.providers` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from interlock.gateway.pricing import resolve_price
from interlock.providers.base import ProviderContext, ProviderFactory
from interlock.routing.breaker import CircuitBreaker
from interlock.routing.deployments import Deployment, ModelRoute
from interlock.routing.router import LearnedRouter, RouterFileError
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
        routes[alias] = ModelRoute(alias, model, deployments, list(model.fallbacks), _load_router(settings, alias))
    return routes


def _load_router(settings: Settings, alias: str) -> LearnedRouter | None:
    """The learned router of a router alias; a bad file or an unmapped model is a config error."""
    spec = settings.models[alias].router
    if spec is None:
        return None
    where = f"invalid config in {settings.source}: models.{alias}.router"
    try:
        router = LearnedRouter.load(Path(spec.file).expanduser())
    except (OSError, RouterFileError) as exc:
        raise ConfigError(f"{where}.file: cannot load {spec.file}: {exc}") from None
    for name in router.models:
        target = spec.models.get(name, name)
        if target not in settings.models:
            raise ConfigError(
                f'{where}.models: the router\'s model {name!r} maps to no alias; add {name!r} = "<alias>"'
            )
    return router
