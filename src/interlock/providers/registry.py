"""Finds provider factories through the `interlock.providers` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from interlock.providers.base import Provider, ProviderContext, ProviderFactory
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


def build_providers(settings: Settings, context: ProviderContext) -> dict[str, Provider]:
    """One provider per configured model alias; an unknown provider name is a config error."""
    providers: dict[str, Provider] = {}
    for alias, model in settings.models.items():
        factory = load_factory(model.provider)
        if factory is None:
            known = ", ".join(available_providers())
            raise ConfigError(
                f"invalid config in {settings.source}: models.{alias}.provider: "
                f"unknown provider '{model.provider}' (registered: {known})"
            )
        providers[alias] = factory(alias, model, context)
    return providers
