"""Builds each alias's route: its deployments, made by the provider plugins of `interlock.plugins.PROVIDERS`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from interlock.gateway.pricing import resolve_price
from interlock.plugins import provider_configs
from interlock.providers.base import Provider, ProviderContext
from interlock.routing.breaker import CircuitBreaker
from interlock.routing.deployments import Deployment, ModelRoute
from interlock.routing.router import LearnedRouter, RouterFileError
from interlock.routing.variants import VariantSet
from interlock.settings import ConfigError

if TYPE_CHECKING:
    from interlock.settings import ModelSettings, Settings


def build_routes(settings: Settings, context: ProviderContext) -> dict[str, ModelRoute]:
    """Every alias with a provider per deployment; an unknown provider or a bad option is a config error."""
    configs = provider_configs(settings)
    routes: dict[str, ModelRoute] = {}
    breaker = settings.routing
    for alias, model in settings.models.items():
        deployments = []
        for i, config in enumerate(configs[alias]):
            provider = config.plugin.factory(alias, config.model, context, config.options)
            if not isinstance(provider, Provider):
                raise TypeError(
                    f"{config.where}: provider plugin {config.plugin.name!r} made a {type(provider).__name__}, "
                    "not a Provider"
                )
            deployments.append(
                Deployment(
                    alias=alias,
                    name=alias if len(configs[alias]) == 1 else f"{alias}#{i}",
                    provider=provider,
                    model=config.model,
                    price=resolve_price(alias, config.model),
                    breaker=CircuitBreaker(breaker.breaker_failures, breaker.breaker_cooldown_s),
                )
            )
        routes[alias] = ModelRoute(
            alias,
            _with_context_window(model, deployments),
            deployments,
            list(model.fallbacks),
            _load_router(settings, alias),
            VariantSet(alias, list(model.variants)) if model.variants else None,
        )
    return routes


def _with_context_window(model: ModelSettings, deployments: list[Deployment]) -> ModelSettings:
    """The alias's settings, with the smallest window its providers know of when the config sets none.

    A provider reports one on its own settings (the local one reads it from the GGUF); the smallest is
    the one every deployment the alias may reach can hold.
    """
    windows = [d.provider.model.context_window for d in deployments]
    if model.context_window is not None or not windows or None in windows:
        return model
    return model.model_copy(update={"context_window": min(w for w in windows if w is not None)})


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
