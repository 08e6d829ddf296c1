"""Startup: import the `[plugins] modules`, then find each deployment's provider and validate its options.

`interlock.settings` validates the keys every deployment shares and keeps the rest of a model's table
as data; here that rest meets the `Options` model of the provider the table names. Every problem in
the config is reported at once, as settings errors are: `invalid config in FILE:` and one
`models.X.key: problem` line each.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from interlock.plugins.registry import PROVIDERS, Plugin, PluginError, ProviderFactory, Registry
from interlock.settings import ConfigError, ModelSettings, Settings, describe_errors


@dataclass(frozen=True)
class ProviderConfig:
    """One deployment of an alias: its self-contained settings, its provider plugin and that plugin's options."""

    where: str  # the key path of the deployment's table, such as "models.llama.deployments.1"
    model: ModelSettings
    plugin: Plugin[ProviderFactory]
    options: BaseModel


def import_plugin_modules(settings: Settings) -> None:
    """Import each module in `[plugins] modules`, so it can register plugins; a failed import is a config error."""
    problems = []
    for i, name in enumerate(settings.plugins.modules):
        try:
            importlib.import_module(name)
        except (ImportError, PluginError) as exc:
            problems.append(f"plugins.modules.{i}: cannot import {name!r}: {exc}")
    if problems:
        raise ConfigError.of(settings.source, problems)


def provider_configs(
    settings: Settings, registry: Registry[ProviderFactory] = PROVIDERS
) -> dict[str, list[ProviderConfig]]:
    """Per alias, its deployments with their plugins and validated options (none for a router alias).

    Imports `[plugins] modules` first. An unknown provider, or options its plugin rejects, is a
    config error naming the key; all of them are reported together.
    """
    import_plugin_modules(settings)
    problems: list[str] = []
    configs: dict[str, list[ProviderConfig]] = {}
    for alias, model in settings.models.items():
        configs[alias] = []
        if model.router is not None:
            # A router alias has no provider to accept options: every key beyond the shared ones is unknown.
            problems += [f"models.{alias}.{key}: unknown key" for key in model.model_extra or ()]
            continue
        for i, dep in enumerate(model.deployment_settings()):
            at: tuple[str | int, ...] = ("models", alias, "deployments", i) if model.deployments else ("models", alias)
            where = ".".join(map(str, at))
            try:
                plugin = registry.get(dep.provider)
            except PluginError as exc:
                problems.append(f"{where}.provider: {exc}")
                continue
            if plugin is None:
                names = ", ".join(registry.names()) or "none"
                problems.append(f"{where}.provider: unknown provider '{dep.provider}' (registered: {names})")
                continue
            try:
                options = dep.plugin_options(plugin.options)
            except ValidationError as exc:
                problems += describe_errors(exc, at)
                continue
            configs[alias].append(ProviderConfig(where, dep, plugin, options))
    if problems:
        raise ConfigError.of(settings.source, problems)
    return configs
